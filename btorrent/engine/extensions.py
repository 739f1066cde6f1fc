"""
The extension protocol (BEP 10) of a torrent: what we offer, our extended
handshake, and the handlers a torrent with its metadata registers in its
L{btorrent.engine.downloader.Downloader}.

  - L{extensionFeatures}: the L{Features} of a connection with our two
    extensions, C{ut_pex} (id 1) and C{ut_metadata} (id 2), each with the
    longest payload we take for it (the connection refuses a longer one
    before buffering it).
  - L{handshakeFields}: our extended handshake besides C{m}: C{p} (our
    listen port), C{v} ("btorrent 0.1.0"), C{reqq} (the requests we queue
    for a peer), C{yourip} (the peer's address as we see it) and, once we
    have the info dictionary, C{metadata_size}.
  - L{btorrent.engine.extensionset.installExtensions}: what a torrent with
    its metadata runs (the handlers, above this module).

Every handler has the surface of L{btorrent.interfaces.IPeerExtension}.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any, Dict, Mapping, Optional, Tuple

from btorrent import __version__
from btorrent.engine.uploader import MAX_PEER_QUEUE
from btorrent.peer.connection import Features
from btorrent.peer.extended import OUR_EXTENSION_IDS, UT_METADATA, UT_PEX
from btorrent.peer.utmetadata import MAX_MESSAGE_SIZE
from btorrent.peer.utpex import MAX_PEX_SIZE

__all__ = [
    "CLIENT_NAME",
    "EXTENSIONS",
    "REQQ",
    "extensionFeatures",
    "handshakeFields",
    "handshakeInt",
    "listenAddress",
]

#: Our C{v}: client name and version.
CLIENT_NAME = f"btorrent {__version__}"
#: Our C{reqq}: the requests of one peer we queue before dropping it.
REQQ = MAX_PEER_QUEUE
#: Our extensions, as L{Features.extensions}: C{(name, our id, longest
#: payload)}.
EXTENSIONS: Tuple[Tuple[str, int, int], ...] = (
    (UT_PEX, OUR_EXTENSION_IDS[UT_PEX], MAX_PEX_SIZE),
    (UT_METADATA, OUR_EXTENSION_IDS[UT_METADATA], MAX_MESSAGE_SIZE),
)


def extensionFeatures(base: Optional[Features] = None, private: bool = False):
    """
    C{base} (the Fast extension, the DHT bit...) with our BEP 10
    extensions, or with none for a private torrent.
    """
    base = base if base is not None else Features()
    return replace(base, extensions=() if private else EXTENSIONS)


def _packedAddress(host: str) -> Optional[bytes]:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).packed


def handshakeFields(
    peer, listenPort: int, metadataSize: Optional[int] = None
) -> Dict[str, Any]:
    """
    Our extended handshake for C{peer}, besides C{m} (the connection adds
    it from its features).

    @param listenPort: our listen port (left out if 0: not listening).
    @param metadataSize: the size of our info dictionary, or C{None} while
        we lack it (BEP 9).
    """
    fields: Dict[str, Any] = {"v": CLIENT_NAME, "reqq": REQQ}
    if 0 < listenPort < 65536:
        fields["p"] = listenPort
    address = getattr(peer, "address", None)
    if address is not None:
        packed = _packedAddress(address[0])
        if packed is not None:
            fields["yourip"] = packed
    if metadataSize:
        fields["metadata_size"] = metadataSize
    return fields


def handshakeInt(fields: Mapping[str, Any], key: str) -> Optional[int]:
    """
    An integer field of a peer's extended handshake, or C{None} if it is
    absent or not an integer.
    """
    value = fields.get(key)
    return value if type(value) is int else None


def listenAddress(peer, fields: Optional[Mapping[str, Any]]) -> Optional[tuple]:
    """
    Where others can reach C{peer}: the address we dialled, or, for a peer
    that connected to us, its host with the C{p} of its extended handshake
    (C{None} while we do not know it).
    """
    address = getattr(peer, "address", None)
    if address is None:
        return None
    if getattr(peer, "outgoing", False):
        return address
    port = handshakeInt(fields or {}, "p")
    if port is None or not 0 < port < 65536:
        return None
    return (address[0], port)
