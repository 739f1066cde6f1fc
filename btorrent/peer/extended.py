"""
The extension protocol (BEP 10): the reserved bit, the C{extended} message
frame, and the extended handshake.

A peer that sets L{EXTENSION_BIT} in byte 5 of its handshake's reserved
bytes speaks extended messages: wire message id L{EXTENDED} (20), whose
payload starts with one byte, the extended message id, followed by the
extension's own payload.  Id 0 is the extended handshake, a bencoded
dictionary whose C{m} maps extension names to the ids I{the sender} wants
to receive them under.  So we send C{ut_metadata} messages to a peer with
the id from I{its} C{m}, and we receive them under I{our} id,
L{OUR_EXTENSION_IDS}.

Our ids are libtorrent's: C{ut_pex} 1, C{ut_metadata} 2.  Any distinct
non-zero bytes would do (the ids are ours to choose); taking the ones of
the most common client means a packet capture reads the same whichever of
the two is talking.

L{decodeExtendedHandshake} is tolerant, as BEP 10 asks: unknown keys are
ignored, and an optional field of the wrong type or out of range is dropped
(treated as absent) rather than failing the handshake.  It raises only
L{ExtendedError}: when the payload is not one bencoded dictionary, or is
larger than L{MAX_HANDSHAKE_SIZE}.

A peer may send its handshake again: BEP 10 makes C{m} additive (a name
with id 0 is disabled, others are added or changed).  L{mergeHandshake}
applies a later handshake to what we knew.

This module is pure: it never imports C{twisted.internet}.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Dict, Mapping, Optional, Tuple

from btorrent.codec import bencode

__all__ = [
    "EXTENDED",
    "EXTENSION_BIT",
    "EXTENSION_BYTE",
    "ExtendedError",
    "ExtendedHandshake",
    "HANDSHAKE_ID",
    "MAX_CLIENT_LENGTH",
    "MAX_HANDSHAKE_SIZE",
    "OUR_EXTENSION_IDS",
    "UT_METADATA",
    "UT_PEX",
    "decodeExtendedHandshake",
    "decodeExtendedMessage",
    "encodeExtendedHandshake",
    "encodeExtendedMessage",
    "localHandshake",
    "mergeExtensionIds",
    "mergeHandshake",
    "setExtensionBit",
    "supportsExtensions",
]

#: The wire message id of every extended message.
EXTENDED = 20
#: The extended message id of the extended handshake.
HANDSHAKE_ID = 0
#: The reserved byte and bit announcing BEP 10: C{reserved[5] & 0x10}.
EXTENSION_BYTE = 5
EXTENSION_BIT = 0x10

#: Extension names.
UT_METADATA = "ut_metadata"
UT_PEX = "ut_pex"

#: The ids we receive each extension under (libtorrent's numbers).
OUR_EXTENSION_IDS: Mapping[str, int] = {UT_PEX: 1, UT_METADATA: 2}

#: The largest extended handshake payload we accept.  Real ones are a few
#: hundred bytes (libtorrent's, with a dozen extensions, is under 300); 64
#: KiB leaves room for any honest client and bounds what a hostile one can
#: make us decode.
MAX_HANDSHAKE_SIZE = 64 * 1024
#: The longest C{v} (client name) we keep, in characters; longer is cut.
MAX_CLIENT_LENGTH = 100

_HEADER = struct.Struct(">IBB")


class ExtendedError(ValueError):
    """
    An extended message we cannot read (the peer should be dropped).
    """


def supportsExtensions(reserved: bytes) -> bool:
    """
    Whether a handshake's 8 reserved bytes announce BEP 10.
    """
    return len(reserved) == 8 and bool(reserved[EXTENSION_BYTE] & EXTENSION_BIT)


def setExtensionBit(reserved: bytes = bytes(8)) -> bytes:
    """
    C{reserved} (8 bytes) with the BEP 10 bit set.
    """
    if len(reserved) != 8:
        raise ValueError("reserved bytes must be 8 bytes")
    out = bytearray(reserved)
    out[EXTENSION_BYTE] |= EXTENSION_BIT
    return bytes(out)


def encodeExtendedMessage(extendedId: int, payload: bytes) -> bytes:
    """
    The whole wire message: length prefix, id 20, C{extendedId}, payload.

    @param extendedId: 0 for the handshake, else the id the receiving peer
        gave the extension in its C{m}.
    """
    if not 0 <= extendedId <= 255:
        raise ValueError(f"extended message id must be 0 to 255, not {extendedId}")
    return _HEADER.pack(2 + len(payload), EXTENDED, extendedId) + payload


def decodeExtendedMessage(payload: bytes) -> Tuple[int, bytes]:
    """
    Split the payload of a wire message of id 20 (after the id byte) into
    the extended message id and the extension's payload.

    @raise ExtendedError: if it is empty.
    """
    if not payload:
        raise ExtendedError("extended message without an extended id")
    return payload[0], bytes(payload[1:])


@dataclass(frozen=True)
class ExtendedHandshake:
    """
    One extended handshake.  Every field is optional on the wire; a field
    we could not read is C{None} (or empty, for C{m}).

    @ivar m: extension name to id (0 to 255; 0 means disabled): C{m}.
    @ivar port: the sender's TCP listen port, 1 to 65535: C{p}.
    @ivar client: its name and version: C{v} (at most L{MAX_CLIENT_LENGTH}
        characters, invalid UTF-8 replaced).
    @ivar reqq: how many outstanding requests it takes, at least 1: C{reqq}.
    @ivar yourip: the address it sees us as, 4 or 16 bytes: C{yourip}.
    @ivar metadataSize: the size of the info dictionary, at least 1:
        C{metadata_size} (BEP 9; absent when the sender lacks the metadata).
    @ivar ipv4: its IPv4 address, 4 bytes: C{ipv4}.
    @ivar ipv6: its IPv6 address, 16 bytes: C{ipv6}.
    @ivar uploadOnly: it only uploads (a seed, or a partial seed): C{upload_only}
        (BEP 21), used for PEX's seed flag.
    @ivar prefersEncryption: it prefers encrypted connections: C{e}, used
        for PEX's encryption flag.
    """

    m: Dict[str, int] = field(default_factory=dict)
    port: Optional[int] = None
    client: Optional[str] = None
    reqq: Optional[int] = None
    yourip: Optional[bytes] = None
    metadataSize: Optional[int] = None
    ipv4: Optional[bytes] = None
    ipv6: Optional[bytes] = None
    uploadOnly: Optional[bool] = None
    prefersEncryption: Optional[bool] = None

    def extensionId(self, name: str) -> int:
        """
        The id to send extension C{name} to this peer with, or 0 if it does
        not take it.
        """
        return self.m.get(name, 0)


def _isInt(value: object) -> bool:
    return type(value) is int


def localHandshake(
    port: Optional[int] = None,
    metadataSize: Optional[int] = None,
    client: Optional[str] = None,
    reqq: Optional[int] = None,
    yourip: Optional[bytes] = None,
    metadata: bool = True,
    pex: bool = True,
    uploadOnly: Optional[bool] = None,
) -> ExtendedHandshake:
    """
    The handshake we send: our ids from L{OUR_EXTENSION_IDS}.

    @param port: our listen port (send it on outgoing connections).
    @param metadataSize: the size of our info dictionary, once we have it
        (BEP 9: leave it out while we lack the metadata).
    @param yourip: the peer's address as we see it, 4 or 16 bytes.
    @param metadata: offer C{ut_metadata}; C{pex}: offer C{ut_pex}.  A
        private torrent (BEP 27) offers neither, as libtorrent does.
    """
    m = {
        name: number
        for name, number in OUR_EXTENSION_IDS.items()
        if (name != UT_METADATA or metadata) and (name != UT_PEX or pex)
    }
    return ExtendedHandshake(
        m=m,
        port=port,
        client=client,
        reqq=reqq,
        yourip=yourip,
        metadataSize=metadataSize if metadata else None,
        uploadOnly=uploadOnly,
    )


def encodeExtendedHandshake(handshake: ExtendedHandshake) -> bytes:
    """
    The bencoded payload of an extended handshake (without the frame: see
    L{encodeExtendedMessage}).  Fields that are C{None} are left out.

    @raise ValueError: for an id outside 0 to 255, a port outside 1 to
        65535, an address of the wrong length, a size below 1.
    """
    m = {}
    for name, number in handshake.m.items():
        if not isinstance(name, str) or not _isInt(number) or not 0 <= number <= 255:
            raise ValueError(f"extension {name!r}: id must be 0 to 255")
        m[name] = number
    out: Dict[str, object] = {"m": m}
    if handshake.port is not None:
        if not _isInt(handshake.port) or not 0 < handshake.port < 65536:
            raise ValueError(f"port must be 1 to 65535, not {handshake.port!r}")
        out["p"] = handshake.port
    if handshake.client is not None:
        out["v"] = handshake.client
    if handshake.reqq is not None:
        if not _isInt(handshake.reqq) or handshake.reqq < 1:
            raise ValueError(f"reqq must be at least 1, not {handshake.reqq!r}")
        out["reqq"] = handshake.reqq
    for key, value, lengths in [
        ("yourip", handshake.yourip, (4, 16)),
        ("ipv4", handshake.ipv4, (4,)),
        ("ipv6", handshake.ipv6, (16,)),
    ]:
        if value is not None:
            if not isinstance(value, bytes) or len(value) not in lengths:
                raise ValueError(
                    f"{key} must be {' or '.join(map(str, lengths))} bytes"
                )
            out[key] = value
    if handshake.metadataSize is not None:
        if not _isInt(handshake.metadataSize) or handshake.metadataSize < 1:
            raise ValueError("metadata_size must be at least 1")
        out["metadata_size"] = handshake.metadataSize
    if handshake.uploadOnly is not None:
        out["upload_only"] = int(bool(handshake.uploadOnly))
    if handshake.prefersEncryption is not None:
        out["e"] = int(bool(handshake.prefersEncryption))
    try:
        return bencode.encode(out)
    except bencode.BencodeError as e:
        raise ValueError(f"cannot encode the extended handshake: {e}") from None


def _bytesOf(d: dict, key: bytes, lengths: Tuple[int, ...]) -> Optional[bytes]:
    value = d.get(key)
    if isinstance(value, bytes) and len(value) in lengths:
        return value
    return None


def _flag(d: dict, key: bytes) -> Optional[bool]:
    value = d.get(key)
    return bool(value) if _isInt(value) else None


def decodeExtendedHandshake(payload: bytes) -> ExtendedHandshake:
    """
    Read an extended handshake payload (after the extended id byte).

    Unknown keys are ignored; a known key with a value of the wrong type or
    out of range is dropped; so is an C{m} entry whose name is not UTF-8 or
    whose id is not an integer from 0 to 255.  Bytes after the dictionary
    are ignored (as libtorrent ignores them).

    @raise ExtendedError: if C{payload} is larger than L{MAX_HANDSHAKE_SIZE}
        or does not start with one bencoded dictionary; never anything else.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ExtendedError(f"expected bytes, not {type(payload).__name__}")
    if len(payload) > MAX_HANDSHAKE_SIZE:
        raise ExtendedError(
            f"extended handshake too large: {len(payload)} bytes "
            f"(at most {MAX_HANDSHAKE_SIZE})"
        )
    try:
        top, _, _ = bencode.decodePrefixWithSpans(bytes(payload))
    except bencode.BencodeError as e:
        raise ExtendedError(f"extended handshake is not bencoded: {e}") from None
    if not isinstance(top, dict):
        raise ExtendedError("extended handshake is not a dictionary")
    m: Dict[str, int] = {}
    rawM = top.get(b"m")
    if isinstance(rawM, dict):
        for rawName, number in rawM.items():
            if not _isInt(number) or not 0 <= number <= 255:
                continue
            try:
                name = rawName.decode("utf-8")
            except UnicodeDecodeError:
                continue
            m[name] = number
    port = top.get(b"p")
    if not (_isInt(port) and 0 < port < 65536):
        port = None
    rawClient = top.get(b"v")
    client = None
    if isinstance(rawClient, bytes):
        client = rawClient[: 4 * MAX_CLIENT_LENGTH].decode("utf-8", "replace")
        client = client[:MAX_CLIENT_LENGTH]
    reqq = top.get(b"reqq")
    if not (_isInt(reqq) and reqq >= 1):
        reqq = None
    size = top.get(b"metadata_size")
    if not (_isInt(size) and size >= 1):
        size = None
    return ExtendedHandshake(
        m=m,
        port=port,
        client=client,
        reqq=reqq,
        yourip=_bytesOf(top, b"yourip", (4, 16)),
        metadataSize=size,
        ipv4=_bytesOf(top, b"ipv4", (4,)),
        ipv6=_bytesOf(top, b"ipv6", (16,)),
        uploadOnly=_flag(top, b"upload_only"),
        prefersEncryption=_flag(top, b"e"),
    )


def mergeExtensionIds(
    current: Mapping[str, int], update: Mapping[str, int]
) -> Dict[str, int]:
    """
    The peer's extension ids after a later handshake's C{m}: BEP 10's C{m}
    is additive, so names in C{update} are added or changed, a name with id
    0 is removed (disabled), and names not in C{update} stay.

    @return: a new dictionary, without ids of 0.
    """
    merged = {name: number for name, number in current.items() if number}
    for name, number in update.items():
        if number:
            merged[name] = number
        else:
            merged.pop(name, None)
    return merged


def mergeHandshake(
    current: Optional[ExtendedHandshake], later: ExtendedHandshake
) -> ExtendedHandshake:
    """
    What we know of a peer after its handshake C{later}, given what we knew
    (C{current}, or C{None} for its first handshake): C{m} merged by
    L{mergeExtensionIds}; every other field from C{later} where it has one,
    else kept from C{current}.
    """
    if current is None:
        return replace(later, m=mergeExtensionIds({}, later.m))
    changes = {
        name: getattr(later, name)
        for name in (
            "port",
            "client",
            "reqq",
            "yourip",
            "metadataSize",
            "ipv4",
            "ipv6",
            "uploadOnly",
            "prefersEncryption",
        )
        if getattr(later, name) is not None
    }
    return replace(current, m=mergeExtensionIds(current.m, later.m), **changes)
