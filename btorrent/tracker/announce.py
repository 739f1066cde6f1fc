"""
Tracker messages as values, with pure codecs in both directions.

The HTTP tracker protocol (BEP 3, compact peers BEP 23, IPv6 peers BEP 7,
scrape BEP 48) and the UDP tracker protocol (BEP 15).  Every message a client
sends or a tracker answers has an encoder and a decoder here, so that the
clients in L{btorrent.tracker.http} and L{btorrent.tracker.udp} and the
tracker server share one implementation.

Decoders take untrusted bytes: on any problem they raise L{TrackerCodecError}
(a L{TrackerError}), never anything else.  Malformed peer entries (port 0,
wrong lengths, addresses that are not IP literals) are dropped, not fatal.
A tracker's C{failure reason} raises L{TrackerFailure}, also a
L{TrackerError}, carrying the tracker's words.

A hostile tracker controls every byte of its answer, so what a decoder keeps
is bounded beyond the size of the body: the tracker's own words (C{failure
reason}, C{warning message}, a UDP error) are cut to L{MAX_TRACKER_TEXT}
characters with their control characters escaped (L{trackerText}), and at
most L{MAX_RESPONSE_PEERS} peer entries of one answer are read (decoding a
1 MiB compact list whole costs about a second of CPU and 30 MB).  A C{tracker
id} is kept as given; L{MAX_TRACKER_ID} is the longest a client should send
back.

This module never imports C{twisted.internet}.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from btorrent.codec import bencode

__all__ = [
    "EVENTS",
    "MAX_ERROR_TEXT",
    "MAX_RESPONSE_PEERS",
    "MAX_TRACKER_ID",
    "MAX_TRACKER_TEXT",
    "UDP_PROTOCOL_ID",
    "UDP_MAX_SCRAPE",
    "ACTION_CONNECT",
    "ACTION_ANNOUNCE",
    "ACTION_SCRAPE",
    "ACTION_ERROR",
    "TrackerError",
    "TrackerCodecError",
    "TrackerFailure",
    "AnnounceRequest",
    "AnnounceResponse",
    "ScrapeStats",
    "Peer",
    "percentEncode",
    "parseQuery",
    "announceURL",
    "parseAnnounceQuery",
    "announceRequestFromArgs",
    "encodeHTTPResponse",
    "decodeHTTPResponse",
    "encodeFailure",
    "encodeCompactPeers",
    "decodeCompactPeers",
    "decodeDictionaryPeers",
    "scrapeURL",
    "scrapeRequestURL",
    "parseScrapeQuery",
    "encodeScrapeResponse",
    "decodeScrapeResponse",
    "UDPConnectRequest",
    "UDPAnnounceRequest",
    "UDPScrapeRequest",
    "UDPConnectResponse",
    "UDPAnnounceResponse",
    "UDPScrapeResponse",
    "UDPErrorResponse",
    "encodeUDPRequest",
    "decodeUDPRequest",
    "encodeUDPResponse",
    "decodeUDPResponse",
    "peekUDPResponse",
    "trackerText",
]

#: The announce events, as sent over HTTP ("" = a regular announce).
EVENTS = ("", "started", "completed", "stopped")

#: BEP 15 magic constant opening a connect request.
UDP_PROTOCOL_ID = 0x41727101980
ACTION_CONNECT = 0
ACTION_ANNOUNCE = 1
ACTION_SCRAPE = 2
ACTION_ERROR = 3
#: At most this many info-hashes fit one UDP scrape (BEP 15).
UDP_MAX_SCRAPE = 74

# BEP 15 event numbers.
_UDP_EVENTS = {"": 0, "completed": 1, "started": 2, "stopped": 3}
_UDP_EVENT_NAMES = {v: k for k, v in _UDP_EVENTS.items()}

_UNRESERVED = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_MAX_INT64 = 2**63 - 1

#: The most characters kept of a tracker's own words (a C{failure reason},
#: a C{warning message}, a UDP error message); the rest is cut, and the cut
#: said (L{trackerText}).
MAX_TRACKER_TEXT = 300
#: The most characters kept of an error message that quotes a tracker: its
#: words, already cut to L{MAX_TRACKER_TEXT} with the note of the cut, and
#: ours around them.
MAX_ERROR_TEXT = 2 * MAX_TRACKER_TEXT
#: The longest C{tracker id}, in bytes, worth sending back; a longer one is
#: dropped by the client (it would be sent with every announce).
MAX_TRACKER_ID = 256
#: The most peer entries read from one answer (compact IPv4, IPv6 and
#: dictionary entries together); trackers send at most C{numwant}, which
#: clients set to 50 (libtorrent: 200).
MAX_RESPONSE_PEERS = 1000

#: A peer: C{(host, port)}, C{host} an IP literal as C{str}.
Peer = Tuple[str, int]


class TrackerError(Exception):
    """
    A tracker request failed: the tracker's own words, a timeout, garbage.
    """


class TrackerCodecError(TrackerError):
    """
    Bytes that are not a valid tracker message.
    """


class TrackerFailure(TrackerError):
    """
    The tracker refused the request (C{failure reason}, or a UDP error).

    @ivar reason: the tracker's words, as C{str}.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AnnounceRequest:
    """
    An announce, as the client sends it.

    @ivar infoHash: 20 bytes.
    @ivar peerId: 20 bytes.
    @ivar port: our listening TCP port.
    @ivar event: one of L{EVENTS}.
    @ivar numwant: how many peers we would like.
    @ivar key: a 32-bit number identifying us across IP changes.
    @ivar compact: whether we accept compact peers (BEP 23).
    @ivar trackerId: the C{tracker id} a tracker gave us, or C{None}.
    @ivar ip: the address to report, as C{str}, or C{None}.
    """

    infoHash: bytes
    peerId: bytes
    port: int
    uploaded: int
    downloaded: int
    left: int
    event: str = ""
    numwant: int = 50
    key: int = 0
    compact: bool = True
    trackerId: Optional[bytes] = None
    ip: Optional[str] = None


@dataclass(frozen=True)
class AnnounceResponse:
    """
    A tracker's answer to an announce.

    @ivar interval: seconds until the next regular announce.
    @ivar minInterval: the least seconds between announces, or C{None}.
    @ivar peers: C{(host, port)} tuples (IPv4 and IPv6).
    @ivar complete: seeders, or C{None} if not given.
    @ivar incomplete: leechers, or C{None} if not given.
    @ivar warning: a C{warning message}, as C{str}, or C{None}.
    @ivar trackerId: a C{tracker id} to send back, or C{None}.
    """

    interval: int
    minInterval: Optional[int] = None
    peers: Tuple[Peer, ...] = field(default=())
    complete: Optional[int] = None
    incomplete: Optional[int] = None
    warning: Optional[str] = None
    trackerId: Optional[bytes] = None


@dataclass(frozen=True)
class ScrapeStats:
    """
    Scrape figures for one info-hash (BEP 48).

    @ivar complete: seeders.
    @ivar downloaded: completed downloads ever reported.
    @ivar incomplete: leechers.
    """

    complete: int
    downloaded: int
    incomplete: int


# --- helpers ---------------------------------------------------------------


def _checkHash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 20:
        raise TrackerCodecError(f"{what} must be 20 bytes")
    return value


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _escape(character: str) -> str:
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def trackerText(value: Union[bytes, str], limit: int = MAX_TRACKER_TEXT) -> str:
    """
    A tracker's words made safe to keep and to log: UTF-8 decoded (bad
    bytes replaced), at most C{limit} characters of them, anything not
    printable (newlines, terminal escapes, direction overrides) escaped as
    C{\\xNN}, C{\\uNNNN} or C{\\UNNNNNNNN}, and a cut said at the end, for
    example C{"…(cut, 1048576 characters)"}.
    """
    text = _text(value) if isinstance(value, (bytes, bytearray)) else value
    shown = "".join(c if c.isprintable() else _escape(c) for c in text[:limit])
    if len(text) > limit:
        shown += f"\u2026(cut, {len(text)} characters)"
    return shown


def _validIP(host: str) -> Optional[str]:
    """
    Normalise an IP literal usable as a peer address, or C{None}.  An
    IPv4-mapped IPv6 address (C{::ffff:127.0.0.1}) is the IPv4 address it
    maps: that is where a connection to it goes, and a check for our own
    address must see it so.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or address.is_multicast:
        return None
    if address.version == 4 and int(address) == 0xFFFFFFFF:
        return None
    return str(address)


def _validPeer(host: str, port: object) -> Optional[Peer]:
    if type(port) is not int or not 0 < port < 65536:
        return None
    ip = _validIP(host)
    if ip is None:
        return None
    return (ip, port)


def percentEncode(data: bytes) -> str:
    """
    Percent-encode binary data for a URL query: every byte outside the
    RFC 3986 unreserved set becomes C{%XX} (upper-case hex).
    """
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in data)


def parseQuery(query: Union[bytes, str]) -> Dict[bytes, List[bytes]]:
    """
    Split a URL query string into its percent-decoded fields.

    C{+} is decoded as a space, as in HTML forms; clients percent-encode
    binary C{+} as C{%2B}.

    @return: each field name mapped to the list of its values, in order.
    @raise TrackerCodecError: if C{query} is not ASCII.
    """
    if isinstance(query, str):
        try:
            query = query.encode("ascii")
        except UnicodeEncodeError:
            raise TrackerCodecError("query string is not ASCII") from None
    if not isinstance(query, (bytes, bytearray)):
        raise TrackerCodecError("query string must be bytes")
    out: Dict[bytes, List[bytes]] = {}
    for part in bytes(query).split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        name = unquote_to_bytes(name.replace(b"+", b" "))
        value = unquote_to_bytes(value.replace(b"+", b" "))
        out.setdefault(name, []).append(value)
    return out


def _joinQuery(base: str, fields: Sequence[Tuple[str, str]]) -> bytes:
    """
    Append C{fields} (already encoded) to C{base}, keeping any query it has.
    """
    base = base.split("#", 1)[0]
    query = "&".join(f"{k}={v}" for k, v in fields)
    if "?" in base:
        sep = "" if base.endswith(("?", "&")) else "&"
    else:
        sep = "?"
    try:
        return (base + sep + query).encode("ascii")
    except UnicodeEncodeError:
        raise TrackerCodecError(f"tracker URL is not ASCII: {base!r}") from None


# --- compact and dictionary peers -----------------------------------------


def encodeCompactPeers(peers: Iterable[Peer], v6: bool = False) -> bytes:
    """
    Pack peers into the compact form: 4 (or, for C{v6}, 16) address bytes
    and a 2-byte port each, network order (BEP 23, BEP 7).

    @raise TrackerCodecError: for an address of the other family or a port
        out of range.
    """
    out = []
    for host, port in peers:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise TrackerCodecError(f"not an IP address: {host!r}") from None
        if address.version != (6 if v6 else 4):
            raise TrackerCodecError(f"wrong address family: {host!r}")
        if type(port) is not int or not 0 <= port < 65536:
            raise TrackerCodecError(f"bad port: {port!r}")
        out.append(address.packed + struct.pack("!H", port))
    return b"".join(out)


def decodeCompactPeers(
    data: bytes, v6: bool = False, limit: Optional[int] = None
) -> Tuple[Peer, ...]:
    """
    Unpack compact peers; a trailing partial entry, port 0 and unusable
    addresses are dropped.

    @param limit: read at most this many entries (all by default).
    @raise TrackerCodecError: if C{data} is not bytes.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise TrackerCodecError("compact peers must be a string")
    size = 18 if v6 else 6
    factory = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
    peers = []
    end = len(data) - size + 1
    if limit is not None:
        end = min(end, max(limit, 0) * size)
    for offset in range(0, end, size):
        entry = bytes(data[offset : offset + size])
        port = struct.unpack("!H", entry[-2:])[0]
        peer = _validPeer(str(factory(entry[:-2])), port)
        if peer is not None:
            peers.append(peer)
    return tuple(peers)


def decodeDictionaryPeers(
    entries: object, limit: Optional[int] = None
) -> Tuple[Peer, ...]:
    """
    Read the original peer list model: a list of dictionaries with C{ip}
    and C{port} (and C{peer id}, ignored).  Malformed entries and host names
    (which we would have to resolve) are dropped.

    @param limit: read at most this many entries (all by default).
    @raise TrackerCodecError: if C{entries} is not a list.
    """
    if not isinstance(entries, list):
        raise TrackerCodecError("peers must be a list or a string")
    peers = []
    if limit is not None:
        entries = entries[: max(limit, 0)]
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        ip = entry.get(b"ip")
        if not isinstance(ip, bytes):
            continue
        try:
            host = ip.decode("ascii")
        except UnicodeDecodeError:
            continue
        peer = _validPeer(host, entry.get(b"port"))
        if peer is not None:
            peers.append(peer)
    return tuple(peers)


def _splitFamilies(peers: Iterable[Peer]) -> Tuple[List[Peer], List[Peer]]:
    v4, v6 = [], []
    for host, port in peers:
        try:
            version = ipaddress.ip_address(host).version
        except ValueError:
            raise TrackerCodecError(f"not an IP address: {host!r}") from None
        (v6 if version == 6 else v4).append((host, port))
    return v4, v6


# --- HTTP announce ---------------------------------------------------------


def announceURL(base: str, request: AnnounceRequest) -> bytes:
    """
    Build the HTTP GET URL of an announce.

    Binary fields are percent-encoded byte by byte; a query string already in
    C{base} is kept (the fields are appended with C{&}); a fragment is
    dropped.  C{key} is sent as 8 upper-case hex digits, like libtorrent.

    @return: the URL as ASCII C{bytes}, ready for an C{Agent}.
    """
    fields = [
        ("info_hash", percentEncode(request.infoHash)),
        ("peer_id", percentEncode(request.peerId)),
        ("port", str(int(request.port))),
        ("uploaded", str(int(request.uploaded))),
        ("downloaded", str(int(request.downloaded))),
        ("left", str(int(request.left))),
        ("corrupt", "0"),
        ("key", f"{request.key & 0xFFFFFFFF:08X}"),
    ]
    if request.event:
        if request.event not in EVENTS:
            raise TrackerCodecError(f"unknown event {request.event!r}")
        fields.append(("event", request.event))
    fields.append(("numwant", str(int(request.numwant))))
    fields.append(("compact", "1" if request.compact else "0"))
    fields.append(("no_peer_id", "1"))
    if request.trackerId is not None:
        fields.append(("trackerid", percentEncode(request.trackerId)))
    if request.ip is not None:
        fields.append(("ip", percentEncode(request.ip.encode("utf-8"))))
    return _joinQuery(base, fields)


def _one(args: Mapping[bytes, Sequence[bytes]], name: bytes) -> Optional[bytes]:
    values = args.get(name)
    if not values:
        return None
    return values[0]


def _number(
    args: Mapping[bytes, Sequence[bytes]],
    name: bytes,
    default: Optional[int] = None,
    low: int = 0,
    high: int = _MAX_INT64,
) -> int:
    raw = _one(args, name)
    if raw is None:
        if default is None:
            raise TrackerCodecError(f"missing {name.decode()}")
        return default
    if not raw or not (raw.isdigit() or (raw[:1] == b"-" and raw[1:].isdigit())):
        raise TrackerCodecError(f"{name.decode()} is not a number")
    if len(raw) > 20:
        raise TrackerCodecError(f"{name.decode()} is out of range")
    value = int(raw)
    if not low <= value <= high:
        raise TrackerCodecError(f"{name.decode()} is out of range")
    return value


def _parseKey(raw: Optional[bytes]) -> int:
    """
    Clients send C{key} as hex (libtorrent, Transmission) or as arbitrary
    text (aria2): hex up to 8 digits is read as a number, anything else is
    reduced to 32 bits by CRC-32.
    """
    if not raw:
        return 0
    if len(raw) <= 8:
        try:
            return int(raw, 16)
        except ValueError:
            pass
    return zlib.crc32(raw)


def announceRequestFromArgs(args: Mapping[bytes, Sequence[bytes]]) -> AnnounceRequest:
    """
    Build an L{AnnounceRequest} from decoded query fields, such as
    L{parseQuery} returns or C{twisted.web.server.Request.args} holds.

    A missing C{compact} means the client did not ask for compact peers;
    a missing C{numwant} means 50; C{event=empty} means no event.

    @raise TrackerCodecError: for a missing or malformed field.
    """
    infoHash = _checkHash(_one(args, b"info_hash"), "info_hash")
    peerId = _checkHash(_one(args, b"peer_id"), "peer_id")
    event = _one(args, b"event") or b""
    if event == b"empty":
        event = b""
    try:
        eventName = event.decode("ascii")
    except UnicodeDecodeError:
        raise TrackerCodecError("unknown event") from None
    if eventName not in EVENTS:
        raise TrackerCodecError(f"unknown event {eventName!r}")
    compact = _one(args, b"compact")
    ip = _one(args, b"ip")
    ipText = None
    if ip:
        try:
            ipText = ip.decode("ascii")
        except UnicodeDecodeError:
            raise TrackerCodecError("ip is not ASCII") from None
    return AnnounceRequest(
        infoHash=infoHash,
        peerId=peerId,
        port=_number(args, b"port", low=1, high=65535),
        uploaded=_number(args, b"uploaded", 0),
        downloaded=_number(args, b"downloaded", 0),
        left=_number(args, b"left", 0),
        event=eventName,
        numwant=_number(args, b"numwant", 50, low=-1, high=2**31 - 1),
        key=_parseKey(_one(args, b"key")),
        compact=compact == b"1",
        trackerId=_one(args, b"trackerid"),
        ip=ipText,
    )


def parseAnnounceQuery(query: Union[bytes, str]) -> AnnounceRequest:
    """
    Decode the query string of an HTTP announce (the part after C{?}), as a
    tracker server receives it.

    @raise TrackerCodecError: for a missing or malformed field.
    """
    return announceRequestFromArgs(parseQuery(query))


def encodeHTTPResponse(response: AnnounceResponse, compact: bool = True) -> bytes:
    """
    Bencode an announce response: IPv4 peers in C{peers}, IPv6 peers in
    C{peers6}, both compact; or, without C{compact}, one C{peers} list of
    C{ip}/C{port} dictionaries.
    """
    body: Dict[bytes, object] = {b"interval": int(response.interval)}
    if response.minInterval is not None:
        body[b"min interval"] = int(response.minInterval)
    if response.complete is not None:
        body[b"complete"] = int(response.complete)
    if response.incomplete is not None:
        body[b"incomplete"] = int(response.incomplete)
    if response.warning is not None:
        body[b"warning message"] = response.warning
    if response.trackerId is not None:
        body[b"tracker id"] = response.trackerId
    if compact:
        v4, v6 = _splitFamilies(response.peers)
        body[b"peers"] = encodeCompactPeers(v4)
        if v6:
            body[b"peers6"] = encodeCompactPeers(v6, v6=True)
    else:
        body[b"peers"] = [
            {b"ip": host, b"port": int(port)} for host, port in response.peers
        ]
    return bencode.encode(body)


def encodeFailure(reason: str) -> bytes:
    """
    Bencode a C{failure reason} response.
    """
    return bencode.encode({b"failure reason": reason})


def _decodeDict(body: bytes) -> dict:
    try:
        value = bencode.decode(body)
    except bencode.BencodeError as e:
        raise TrackerCodecError(f"tracker response is not bencoded: {e}") from None
    if not isinstance(value, dict):
        raise TrackerCodecError("tracker response is not a dictionary")
    reason = value.get(b"failure reason")
    if reason is not None:
        if isinstance(reason, bytes):
            raise TrackerFailure(trackerText(reason))
        raise TrackerFailure(f"a failure reason that is not text ({_kind(reason)})")
    return value


def _kind(value: object) -> str:
    """
    What a bencoded value is, in a word, for errors (never the value: it
    may be megabytes).
    """
    return {int: "an integer", list: "a list", dict: "a dictionary"}.get(
        type(value), type(value).__name__
    )


def _optionalCount(value: object) -> Optional[int]:
    if type(value) is int and 0 <= value <= _MAX_INT64:
        return value
    return None


def decodeHTTPResponse(body: bytes) -> AnnounceResponse:
    """
    Decode a tracker's bencoded answer to an announce.

    @raise TrackerFailure: for a C{failure reason}.
    @raise TrackerCodecError: for anything that is not a valid response.
    """
    value = _decodeDict(body)
    interval = value.get(b"interval")
    if type(interval) is not int or interval < 0:
        raise TrackerCodecError("tracker response has no valid interval")
    minInterval = _optionalCount(value.get(b"min interval"))
    peers: Tuple[Peer, ...] = ()
    # Entries read so far, valid or not, against MAX_RESPONSE_PEERS.
    read = 0
    raw = value.get(b"peers")
    if isinstance(raw, bytes):
        peers = decodeCompactPeers(raw, limit=MAX_RESPONSE_PEERS)
        read = min(len(raw) // 6, MAX_RESPONSE_PEERS)
    elif raw is not None:
        peers = decodeDictionaryPeers(raw, limit=MAX_RESPONSE_PEERS)
        read = min(len(raw), MAX_RESPONSE_PEERS)
    raw6 = value.get(b"peers6")
    if isinstance(raw6, bytes):
        peers += decodeCompactPeers(raw6, v6=True, limit=MAX_RESPONSE_PEERS - read)
    warning = value.get(b"warning message")
    trackerId = value.get(b"tracker id")
    return AnnounceResponse(
        interval=interval,
        minInterval=minInterval,
        peers=peers,
        complete=_optionalCount(value.get(b"complete")),
        incomplete=_optionalCount(value.get(b"incomplete")),
        warning=trackerText(warning) if isinstance(warning, bytes) else None,
        trackerId=trackerId if isinstance(trackerId, bytes) else None,
    )


# --- HTTP scrape -----------------------------------------------------------


def scrapeURL(announce: str) -> str:
    """
    Derive the scrape URL from an HTTP announce URL (BEP 48 convention): the
    last path component must begin with C{announce}, which becomes
    C{scrape}.

    @raise TrackerError: if the tracker cannot be scraped by convention.
    """
    parts = urlsplit(announce)
    head, sep, last = parts.path.rpartition("/")
    if not sep or not last.startswith("announce"):
        raise TrackerError(f"scrape is not supported by {announce}")
    path = head + "/scrape" + last[len("announce") :]
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def scrapeRequestURL(url: str, infoHashes: Sequence[bytes]) -> bytes:
    """
    Append one C{info_hash} field per info-hash to a scrape URL.
    """
    fields = [
        ("info_hash", percentEncode(_checkHash(h, "info_hash"))) for h in infoHashes
    ]
    return _joinQuery(url, fields)


def parseScrapeQuery(query: Union[bytes, str]) -> List[bytes]:
    """
    Read the info-hashes of an HTTP scrape query string (none = all).

    @raise TrackerCodecError: for an info-hash that is not 20 bytes.
    """
    return [_checkHash(h, "info_hash") for h in parseQuery(query).get(b"info_hash", [])]


def encodeScrapeResponse(files: Mapping[bytes, ScrapeStats]) -> bytes:
    """
    Bencode a scrape response: C{files} maps info-hashes to their figures.
    """
    return bencode.encode(
        {
            b"files": {
                _checkHash(h, "info_hash"): {
                    b"complete": s.complete,
                    b"downloaded": s.downloaded,
                    b"incomplete": s.incomplete,
                }
                for h, s in files.items()
            }
        }
    )


def decodeScrapeResponse(body: bytes) -> Dict[bytes, ScrapeStats]:
    """
    Decode a scrape response; entries with a bad info-hash are dropped,
    missing counts read as 0.

    @raise TrackerFailure: for a C{failure reason}.
    @raise TrackerCodecError: for anything that is not a scrape response.
    """
    value = _decodeDict(body)
    files = value.get(b"files")
    if not isinstance(files, dict):
        raise TrackerCodecError("scrape response has no files dictionary")
    out = {}
    for infoHash, stats in files.items():
        if len(infoHash) != 20 or not isinstance(stats, dict):
            continue
        out[infoHash] = ScrapeStats(
            complete=_optionalCount(stats.get(b"complete")) or 0,
            downloaded=_optionalCount(stats.get(b"downloaded")) or 0,
            incomplete=_optionalCount(stats.get(b"incomplete")) or 0,
        )
    return out


# --- UDP (BEP 15) ----------------------------------------------------------


@dataclass(frozen=True)
class UDPConnectRequest:
    """
    A connect request (action 0).
    """

    transactionId: int


@dataclass(frozen=True)
class UDPAnnounceRequest:
    """
    An announce request (action 1).  The C{ip} of C{request} must be an
    IPv4 literal or C{None}; C{trackerId} is not sent over UDP.
    """

    connectionId: int
    transactionId: int
    request: AnnounceRequest


@dataclass(frozen=True)
class UDPScrapeRequest:
    """
    A scrape request (action 2) for up to L{UDP_MAX_SCRAPE} info-hashes.
    """

    connectionId: int
    transactionId: int
    infoHashes: Tuple[bytes, ...]


@dataclass(frozen=True)
class UDPConnectResponse:
    """
    A connect response: the connection id to use for a minute.
    """

    transactionId: int
    connectionId: int


@dataclass(frozen=True)
class UDPAnnounceResponse:
    """
    An announce response; its peers are IPv4 when the tracker was reached
    over IPv4 and IPv6 when over IPv6.
    """

    transactionId: int
    response: AnnounceResponse


@dataclass(frozen=True)
class UDPScrapeResponse:
    """
    A scrape response: figures in the order of the request's info-hashes.
    """

    transactionId: int
    stats: Tuple[ScrapeStats, ...]


@dataclass(frozen=True)
class UDPErrorResponse:
    """
    An error (action 3) with the tracker's message.
    """

    transactionId: int
    message: str


UDPRequest = Union[UDPConnectRequest, UDPAnnounceRequest, UDPScrapeRequest]
UDPResponse = Union[
    UDPConnectResponse, UDPAnnounceResponse, UDPScrapeResponse, UDPErrorResponse
]

_U32 = 0xFFFFFFFF


def _u32(value: int, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _U32:
        raise TrackerCodecError(f"{what} must fit 32 bits")
    return value


def _u64(value: int, what: str) -> int:
    if type(value) is not int or not 0 <= value < 2**64:
        raise TrackerCodecError(f"{what} must fit 64 bits")
    return value


def encodeUDPRequest(message: UDPRequest) -> bytes:
    """
    Encode a client's UDP request.

    @raise TrackerCodecError: for values that do not fit the packet.
    """
    if isinstance(message, UDPConnectRequest):
        return struct.pack(
            "!QII",
            UDP_PROTOCOL_ID,
            ACTION_CONNECT,
            _u32(message.transactionId, "transaction id"),
        )
    if isinstance(message, UDPAnnounceRequest):
        r = message.request
        if r.event not in _UDP_EVENTS:
            raise TrackerCodecError(f"unknown event {r.event!r}")
        ip = 0
        if r.ip is not None:
            try:
                ip = int(ipaddress.IPv4Address(r.ip))
            except ValueError:
                raise TrackerCodecError(f"not an IPv4 address: {r.ip!r}") from None
        if not 0 <= r.port < 65536:
            raise TrackerCodecError("port out of range")
        if not -(2**31) <= r.numwant < 2**31:
            raise TrackerCodecError("numwant out of range")
        return struct.pack(
            "!QII20s20sqqqIIIiH",
            _u64(message.connectionId, "connection id"),
            ACTION_ANNOUNCE,
            _u32(message.transactionId, "transaction id"),
            _checkHash(r.infoHash, "info-hash"),
            _checkHash(r.peerId, "peer id"),
            r.downloaded,
            r.left,
            r.uploaded,
            _UDP_EVENTS[r.event],
            ip,
            r.key & _U32,
            r.numwant,
            r.port,
        )
    if isinstance(message, UDPScrapeRequest):
        if len(message.infoHashes) > UDP_MAX_SCRAPE:
            raise TrackerCodecError("too many info-hashes for one UDP scrape")
        return struct.pack(
            "!QII",
            _u64(message.connectionId, "connection id"),
            ACTION_SCRAPE,
            _u32(message.transactionId, "transaction id"),
        ) + b"".join(_checkHash(h, "info-hash") for h in message.infoHashes)
    raise TrackerCodecError(f"not a UDP request: {message!r}")


def decodeUDPRequest(data: bytes) -> UDPRequest:
    """
    Decode a UDP tracker request, as a tracker receives it.  Bytes after a
    98-byte announce (BEP 41 options) are ignored.

    @raise TrackerCodecError: for anything that is not a valid request.
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) < 16:
        raise TrackerCodecError("UDP request too short")
    data = bytes(data)
    connectionId, action, transactionId = struct.unpack_from("!QII", data)
    if action == ACTION_CONNECT:
        if connectionId != UDP_PROTOCOL_ID:
            raise TrackerCodecError("connect request without the protocol id")
        if len(data) != 16:
            raise TrackerCodecError("connect request of the wrong length")
        return UDPConnectRequest(transactionId)
    if action == ACTION_ANNOUNCE:
        if len(data) < 98:
            raise TrackerCodecError("announce request too short")
        (
            infoHash,
            peerId,
            downloaded,
            left,
            uploaded,
            event,
            ip,
            key,
            numwant,
            port,
        ) = struct.unpack_from("!20s20sqqqIIIiH", data, 16)
        if event not in _UDP_EVENT_NAMES:
            raise TrackerCodecError(f"unknown event {event}")
        if downloaded < 0 or uploaded < 0:
            raise TrackerCodecError("negative byte counts")
        return UDPAnnounceRequest(
            connectionId,
            transactionId,
            AnnounceRequest(
                infoHash=infoHash,
                peerId=peerId,
                port=port,
                uploaded=uploaded,
                downloaded=downloaded,
                left=left,
                event=_UDP_EVENT_NAMES[event],
                numwant=numwant,
                key=key,
                compact=True,
                ip=str(ipaddress.IPv4Address(ip)) if ip else None,
            ),
        )
    if action == ACTION_SCRAPE:
        hashes = data[16:]
        if len(hashes) % 20 or len(hashes) // 20 > UDP_MAX_SCRAPE:
            raise TrackerCodecError("scrape request of the wrong length")
        return UDPScrapeRequest(
            connectionId,
            transactionId,
            tuple(hashes[i : i + 20] for i in range(0, len(hashes), 20)),
        )
    raise TrackerCodecError(f"unknown UDP action {action}")


def encodeUDPResponse(message: UDPResponse, v6: bool = False) -> bytes:
    """
    Encode a tracker's UDP response; C{v6} selects 18-byte peers (for a
    request that came over IPv6).  Peers of the other family are left out.
    """
    if isinstance(message, UDPConnectResponse):
        return struct.pack(
            "!IIQ",
            ACTION_CONNECT,
            _u32(message.transactionId, "transaction id"),
            _u64(message.connectionId, "connection id"),
        )
    if isinstance(message, UDPAnnounceResponse):
        r = message.response
        v4peers, v6peers = _splitFamilies(r.peers)
        return struct.pack(
            "!IIIII",
            ACTION_ANNOUNCE,
            _u32(message.transactionId, "transaction id"),
            _u32(r.interval, "interval"),
            _u32(r.incomplete or 0, "leechers"),
            _u32(r.complete or 0, "seeders"),
        ) + encodeCompactPeers(v6peers if v6 else v4peers, v6=v6)
    if isinstance(message, UDPScrapeResponse):
        return struct.pack(
            "!II", ACTION_SCRAPE, _u32(message.transactionId, "transaction id")
        ) + b"".join(
            struct.pack(
                "!III",
                _u32(s.complete, "seeders"),
                _u32(s.downloaded, "completed"),
                _u32(s.incomplete, "leechers"),
            )
            for s in message.stats
        )
    if isinstance(message, UDPErrorResponse):
        return struct.pack(
            "!II", ACTION_ERROR, _u32(message.transactionId, "transaction id")
        ) + message.message.encode("utf-8")
    raise TrackerCodecError(f"not a UDP response: {message!r}")


def peekUDPResponse(data: bytes) -> Tuple[int, int]:
    """
    Read the action and transaction id of a UDP response.

    @raise TrackerCodecError: for fewer than 8 bytes.
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) < 8:
        raise TrackerCodecError("UDP response too short")
    return struct.unpack_from("!II", data)


def decodeUDPResponse(data: bytes, v6: bool = False) -> UDPResponse:
    """
    Decode a tracker's UDP response; C{v6} means the tracker was reached over
    IPv6, so its peers are 18 bytes each.  A trailing partial peer or scrape
    entry is ignored.

    @raise TrackerCodecError: for anything that is not a valid response.
    """
    action, transactionId = peekUDPResponse(data)
    data = bytes(data)
    if action == ACTION_CONNECT:
        if len(data) < 16:
            raise TrackerCodecError("connect response too short")
        return UDPConnectResponse(transactionId, struct.unpack_from("!Q", data, 8)[0])
    if action == ACTION_ANNOUNCE:
        if len(data) < 20:
            raise TrackerCodecError("announce response too short")
        interval, leechers, seeders = struct.unpack_from("!III", data, 8)
        return UDPAnnounceResponse(
            transactionId,
            AnnounceResponse(
                interval=interval,
                peers=decodeCompactPeers(data[20:], v6=v6, limit=MAX_RESPONSE_PEERS),
                complete=seeders,
                incomplete=leechers,
            ),
        )
    if action == ACTION_SCRAPE:
        body = data[8:]
        return UDPScrapeResponse(
            transactionId,
            tuple(
                ScrapeStats(*struct.unpack_from("!III", body, i))
                for i in range(0, len(body) - 11, 12)
            ),
        )
    if action == ACTION_ERROR:
        return UDPErrorResponse(transactionId, trackerText(data[8:]))
    raise TrackerCodecError(f"unknown UDP action {action}")
