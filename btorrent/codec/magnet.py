"""
Magnet links (BEP 9): parsing, formatting, and turning fetched metadata
into a torrent.

L{parseMagnet} reads a C{magnet:?} URI the way libtorrent's
C{parse_magnet_uri} does, where that is sound:

  - C{xt=urn:btih:} carries the info-hash as 40 hexadecimal or 32 base32
    characters (either case).  A link with only C{urn:btmh:} (a BitTorrent
    v2 multihash) is refused with "BitTorrent v2-only torrents are not
    supported yet"; a hybrid link with both uses the btih hash.  Other
    C{xt} namespaces are ignored; two different btih hashes are refused.
  - Parameter names may carry a numeric suffix (C{tr.1}, C{xt.2}); it is
    dropped, as libtorrent drops it.  Names are case-sensitive.
  - Every C{tr} becomes a tier of its own, in the order of the link
    (libtorrent gives each C{tr} the next tier number).  Repeated URLs are
    dropped, and so are unusable ones, as libtorrent 2.1 drops them: a bad
    percent-escape, a scheme other than http, https and udp, no host, white
    space or control characters.
  - C{x.pe} is C{host:port}, C{ipv4:port} or C{[ipv6]:port} (BEP 9); host
    names are kept (BEP 9 allows them; libtorrent silently drops them).
  - Values are percent-decoded with C{+} as a space (libtorrent's
    C{unescape_string}), then read as UTF-8.

Malformed links raise L{MagnetError} (a C{ValueError}) with a one-line
message: no C{xt}, a hash of the wrong length or with bad characters, a bad
percent-escape in C{xt} or C{x.pe}, a bad C{x.pe}.  Where libtorrent silently
drops a bad C{x.pe}, we refuse the link: a peer address is typed by hand (our
own links carry none), and a typo deserves an error, not a torrent that never
finds its peer.  A bad tracker is dropped, as libtorrent drops it: one dead
URL among many should not cost the user the link.  A bad escape in C{dn},
which is only for display, is kept literally.  Unknown
parameters (C{ws}, C{so}, C{dht}, C{xl}...) are ignored.

L{formatMagnet} writes our own links (the RPC's C{magnetLink}) and
L{isMagnet} tells a magnet link from a file name or URL.

L{metainfoFromMetadata} and L{torrentFromMetadata} build a C{.torrent} (and
its L{Metainfo}) around an info dictionary fetched with ut_metadata, placing
the fetched bytes verbatim so that the info-hash is the SHA-1 of exactly
those bytes.

This module is pure: it never imports C{twisted.internet}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from btorrent.codec import bencode, metainfo

__all__ = [
    "MAX_MAGNET_LENGTH",
    "Magnet",
    "MagnetError",
    "formatMagnet",
    "isMagnet",
    "metainfoFromMetadata",
    "parseMagnet",
    "torrentFromMetadata",
]

#: The longest magnet link we read, in characters.  Links in the wild are
#: well under 4 KiB even with dozens of trackers; 64 KiB bounds the work
#: and memory one pasted link can cost.
MAX_MAGNET_LENGTH = 64 * 1024

_PREFIX = "magnet:?"
_BTIH = "urn:btih:"
_BTMH = "urn:btmh:"
_HEX40 = re.compile(r"[0-9A-Fa-f]{40}")
_BASE32 = re.compile(r"[A-Za-z2-7]{32}")
# A v2 info-hash: multihash code 0x12 (SHA-256), length 0x20, 64 hex digits.
_BTMH_SHA256 = re.compile(r"1220[0-9A-Fa-f]{64}")
_SUFFIX = re.compile(r"\.[0-9]*")
_PORT = re.compile(r"[0-9]{1,5}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TRACKER = re.compile(r"(?i)(?:https?|udp)://[\x21-\x7e]")
_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")


class MagnetError(ValueError):
    """
    A magnet link we cannot use; the message says why, on one line.
    """


@dataclass(frozen=True)
class Magnet:
    """
    What a magnet link tells us.

    @ivar infoHash: the v1 info-hash, 20 bytes.
    @ivar name: the display name (C{dn}), or C{None}.
    @ivar trackers: tracker tiers (each C{tr} a tier of its own), the shape
        of L{btorrent.codec.metainfo.Metainfo.trackers}.
    @ivar peers: C{(host, port)} from C{x.pe}; C{host} is an IPv4 or IPv6
        address in its normal text form (no brackets) or a host name.
    """

    infoHash: bytes
    name: Optional[str] = None
    trackers: Tuple[Tuple[str, ...], ...] = ()
    peers: Tuple[Tuple[str, int], ...] = ()


def isMagnet(text: object) -> bool:
    """
    Whether C{text} looks like a magnet link (starts with C{magnet:?}, in any
    case, after leading white space).  Cheap: nothing else is checked, so
    L{parseMagnet} may still refuse it.
    """
    return isinstance(text, str) and text.lstrip()[: len(_PREFIX)].lower() == _PREFIX


def _utf8(text: str) -> bytes:
    """
    C{text} in UTF-8; lone surrogates from C{surrogateescape} (undecodable
    bytes of a torrent's name) become the bytes they stand for, any other
    lone surrogate a replacement.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _unescape(value: str, what: str, strict: bool = True) -> str:
    """
    Percent-decode C{value}, C{+} meaning a space, and read the bytes as
    UTF-8 (invalid sequences become U+FFFD).

    @param what: the parameter, for the error message.
    @param strict: refuse a C{%} not followed by two hexadecimal digits;
        otherwise keep it as it is.
    @raise MagnetError: for a bad escape, when C{strict}.
    """
    if "%" not in value and "+" not in value:
        return value
    raw = _utf8(value)
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 0x2B:  # +
            out.append(0x20)
            i += 1
        elif c == 0x25:  # %
            if i + 2 < n and raw[i + 1] in _HEXDIGITS and raw[i + 2] in _HEXDIGITS:
                out.append(int(raw[i + 1 : i + 3], 16))
                i += 3
            elif strict:
                raise MagnetError(f"{what}: malformed percent-escape at character {i}")
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", "replace")


def _infoHash(value: str) -> bytes:
    """
    The 20 bytes of a btih hash given in hex (40) or base32 (32 characters).
    """
    if len(value) == 40:
        if not _HEX40.fullmatch(value):
            raise MagnetError(
                "xt: the info-hash has a character that is not hexadecimal"
            )
        return bytes.fromhex(value)
    if len(value) == 32:
        if not _BASE32.fullmatch(value):
            raise MagnetError("xt: the info-hash has a character that is not base32")
        try:
            return base64.b32decode(value.upper())
        except (binascii.Error, ValueError):  # pragma: no cover: checked above
            raise MagnetError("xt: the info-hash is not valid base32") from None
    raise MagnetError(
        f"xt: the info-hash has {len(value)} characters "
        "(expected 40 hexadecimal or 32 base32)"
    )


def _tracker(value: str) -> Optional[str]:
    """
    The tracker URL of one C{tr} value, or C{None} if it is not a usable
    one: a bad escape, a scheme other than http, https or udp, no host,
    white space or control characters (libtorrent 2.1 drops these too).
    """
    try:
        url = _unescape(value, "tr")
    except MagnetError:
        return None
    if not _TRACKER.match(url) or any(c <= " " or c == "\x7f" for c in url):
        return None
    return url


def _host(text: str) -> Optional[str]:
    """
    C{text} as an IPv4 address or a host name in normal form, or C{None}.
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return str(address) if address.version == 4 else None
    if len(text) > 253 or not text:
        return None
    labels = text.rstrip(".").split(".")
    if all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit():
        return text.rstrip(".").lower()
    return None


def _peer(value: str) -> Tuple[str, int]:
    """
    One C{x.pe}: C{host:port}, C{ipv4:port} or C{[ipv6]:port}.
    """
    shown = value if len(value) <= 80 else value[:77] + "..."
    problem = MagnetError(
        f"x.pe {shown!r}: expected host:port, IPv4:port or [IPv6]:port"
    )
    if value.startswith("["):
        close = value.find("]")
        if close < 0 or value[close + 1 : close + 2] != ":":
            raise problem
        try:
            address = ipaddress.IPv6Address(value[1:close])
        except ValueError:
            raise problem from None
        # An IPv4-mapped address names an IPv4 peer: one form for it.
        host = str(address.ipv4_mapped or address)
        portText = value[close + 2 :]
    else:
        hostText, colon, portText = value.rpartition(":")
        maybeHost = _host(hostText) if colon else None
        if maybeHost is None:
            raise problem
        host = maybeHost
    if not _PORT.fullmatch(portText) or not 0 < int(portText) < 65536:
        raise problem
    return host, int(portText)


def parseMagnet(uri: Union[str, bytes]) -> Magnet:
    """
    Parse a magnet link.

    @param uri: the link (C{bytes} are read as UTF-8); white space around it
        is ignored.
    @raise MagnetError: if it is not a usable magnet link: not C{magnet:?},
        longer than L{MAX_MAGNET_LENGTH}, no C{xt=urn:btih:} (or only a v2
        C{urn:btmh:}), a malformed hash, a bad escape in C{xt} or C{x.pe}, a
        malformed C{x.pe}.
    """
    if isinstance(uri, (bytes, bytearray, memoryview)):
        if len(uri) > MAX_MAGNET_LENGTH:
            raise MagnetError(
                f"magnet link too long: {len(uri)} bytes (at most {MAX_MAGNET_LENGTH})"
            )
        try:
            uri = bytes(uri).decode("utf-8")
        except UnicodeDecodeError:
            raise MagnetError("magnet link is not valid UTF-8") from None
    if not isinstance(uri, str):
        raise MagnetError(f"expected a string, not {type(uri).__name__}")
    if len(uri) > MAX_MAGNET_LENGTH:
        raise MagnetError(
            f"magnet link too long: {len(uri)} characters (at most {MAX_MAGNET_LENGTH})"
        )
    uri = uri.strip()
    if uri[: len(_PREFIX)].lower() != _PREFIX:
        raise MagnetError("not a magnet link (expected magnet:?...)")

    infoHash: Optional[bytes] = None
    hasV2 = False
    name: Optional[str] = None
    trackers: Dict[str, None] = {}  # ordered sets
    peers: Dict[Tuple[str, int], None] = {}
    for part in uri[len(_PREFIX) :].split("&"):
        key, _, value = part.partition("=")
        dot = key.find(".")
        if dot >= 0 and _SUFFIX.fullmatch(key, dot):
            key = key[:dot]
        if key == "xt":
            value = _unescape(value, "xt") if "%" in value else value
            if value[: len(_BTIH)].lower() == _BTIH:
                found = _infoHash(value[len(_BTIH) :])
                if infoHash is not None and found != infoHash:
                    raise MagnetError("xt: two different urn:btih: info-hashes")
                infoHash = found
            elif value[: len(_BTMH)].lower() == _BTMH:
                if not _BTMH_SHA256.fullmatch(value[len(_BTMH) :]):
                    raise MagnetError(
                        "xt: urn:btmh: must be 1220 followed by 64 hexadecimal "
                        "characters (a SHA-256 multihash)"
                    )
                hasV2 = True
        elif key == "dn":
            name = _unescape(value, "dn", strict=False) or None
        elif key == "tr":
            url = _tracker(value)
            if url is not None and len(trackers) < metainfo.MAX_TRACKERS:
                trackers[url] = None
        elif key == "x.pe":
            peers[_peer(_unescape(value, "x.pe"))] = None
    if infoHash is None:
        if hasV2:
            raise MagnetError("BitTorrent v2-only torrents are not supported yet")
        raise MagnetError("no info-hash: the link has no xt=urn:btih: parameter")
    return Magnet(
        infoHash=infoHash,
        name=name,
        trackers=tuple((url,) for url in trackers),
        peers=tuple(peers),
    )


def _quote(text: str, safe: str = "") -> str:
    """
    Percent-encode C{text} for a magnet parameter value (C{+} included,
    since it reads back as a space); lone surrogates (undecodable bytes of a
    torrent's name) are written as the bytes they stand for.
    """
    return quote(_utf8(text), safe=safe)


def _flatten(trackers: Iterable[Union[str, Sequence[str]]]) -> List[str]:
    """
    Tracker URLs in order from tiers or plain URLs, without repeats.
    """
    urls: List[str] = []
    for entry in trackers:
        for url in (entry,) if isinstance(entry, str) else entry:
            if not isinstance(url, str):
                raise MagnetError(f"tracker URL must be a string, not {url!r}")
            if url and url not in urls:
                urls.append(url)
    return urls


def formatMagnet(
    infoHash: bytes,
    name: Optional[str] = None,
    trackers: Iterable[Union[str, Sequence[str]]] = (),
    peers: Iterable[Tuple[str, int]] = (),
) -> str:
    """
    Write a magnet link: C{xt=urn:btih:} in lower-case hex (as libtorrent
    writes it), then C{dn}, one C{tr} per tracker and one C{x.pe} per peer.

    @param trackers: tiers (L{Magnet.trackers}, L{Metainfo.trackers}) or
        plain URLs; written in order, each once.
    @param peers: C{(host, port)}; IPv6 addresses are bracketed.
    @raise MagnetError: for an info-hash that is not 20 bytes, a bad port,
        or a tracker that is not a string.
    """
    if not isinstance(infoHash, (bytes, bytearray)) or len(infoHash) != 20:
        raise MagnetError("info-hash must be 20 bytes")
    parts = [f"{_PREFIX}xt={_BTIH}{bytes(infoHash).hex()}"]
    if name:
        parts.append("dn=" + _quote(name))
    parts.extend("tr=" + _quote(url, ":/") for url in _flatten(trackers))
    for host, port in peers:
        if not isinstance(port, int) or not 0 < port < 65536:
            raise MagnetError(f"peer port must be 1 to 65535, not {port!r}")
        shown = f"[{host}]" if ":" in host else host
        parts.append("x.pe=" + _quote(f"{shown}:{port}", ":[]"))
    return "&".join(parts)


def torrentFromMetadata(
    infoBytes: bytes, trackers: Iterable[Union[str, Sequence[str]]] = ()
) -> bytes:
    """
    The bytes of a C{.torrent} holding C{infoBytes} verbatim as its C{info}
    (so that its info-hash is C{sha1(infoBytes)}) and C{trackers}:
    C{announce} is the first URL and C{announce-list} has one tier per
    entry of C{trackers} (a tier given as a plain URL is a tier of one).

    @param infoBytes: the bencoded info dictionary, as fetched.
    @raise metainfo.MetainfoError: if C{infoBytes} is not one bencoded
        dictionary.
    @raise MagnetError: if a tracker is not a string.
    """
    infoBytes = bytes(infoBytes)
    try:
        info = bencode.decode(infoBytes)
    except bencode.BencodeError as e:
        raise metainfo.MetainfoError(f"metadata is not valid bencoding: {e}") from None
    if not isinstance(info, dict):
        raise metainfo.MetainfoError("metadata is not a bencoded dictionary")
    tiers: List[List[str]] = []
    seen = set()
    for entry in trackers:
        tier = []
        for url in _flatten([entry]):
            if url not in seen:
                seen.add(url)
                tier.append(url)
        if tier:
            tiers.append(tier)
    # Keys in sorted order, so the file is canonical bencoding.
    out = [b"d"]
    if tiers:
        out.append(b"8:announce" + bencode.encode(tiers[0][0]))
        out.append(b"13:announce-list" + bencode.encode(tiers))
    out.append(b"4:info" + infoBytes + b"e")
    return b"".join(out)


def metainfoFromMetadata(
    infoBytes: bytes,
    trackers: Iterable[Union[str, Sequence[str]]] = (),
    infoHash: Optional[bytes] = None,
) -> Tuple[metainfo.Metainfo, bytes]:
    """
    Build the torrent of a magnet link once its metadata has arrived.

    The name comes from the info dictionary (a magnet's C{dn} is only a
    placeholder until then, as in libtorrent).

    @param infoBytes: the info dictionary exactly as fetched (verified by
        L{btorrent.peer.utmetadata.MetadataFetcher}).
    @param trackers: the magnet's L{Magnet.trackers}.
    @param infoHash: if given, the info-hash the result must have.
    @return: the L{Metainfo} and the C{.torrent} bytes to save in the state
        directory (C{metainfo.load} of them gives the same L{Metainfo}).
    @raise metainfo.MetainfoError: if the info dictionary is not a valid
        torrent (unsafe paths, bad piece hashes...), or its hash is not
        C{infoHash}, or it is not a bencoded dictionary at all.
    @raise MagnetError: if a tracker is not a string.
    """
    data = torrentFromMetadata(infoBytes, trackers)
    result = metainfo.load(data)
    expected = hashlib.sha1(bytes(infoBytes)).digest()
    if result.infoHash != expected or (
        infoHash is not None and result.infoHash != infoHash
    ):
        raise metainfo.MetainfoError(
            "metadata: the info-hash of the torrent built does not match"
        )
    return result, data
