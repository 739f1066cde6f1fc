"""
KRPC, the DHT's message format (BEP 5), both directions.

A KRPC message is one bencoded dictionary per UDP datagram: C{t} (the
transaction id, echoed in the answer), C{y} (C{q} query, C{r} response,
C{e} error) and C{q}/C{a}, C{r} or C{e}.  The four BEP 5 queries are
L{Ping}, L{FindNode}, L{GetPeers} and L{AnnouncePeer}; every answer is a
L{Response} (which fields it carries depends on the query it answers) or an
L{Error}.

Decoding is strict where a mistake would matter (types, node ids, targets
and info-hashes of exactly 20 bytes, compact nodes in 26-byte records,
ports in range) and ignores keys it does not know: libtorrent adds C{ip}
(BEP 42), C{p}, C{v}, C{ro}, C{want}, C{seed}, C{n}...  Whatever the input,
L{decode} returns a message or raises L{KRPCError}; the error tells whether
the input was a query and its transaction id when it could be read, so that
the node can answer with a KRPC error (203 protocol error, 204 method
unknown) or stay silent.

Addresses are C{(host, port)} with C{host} a dotted-quad C{str}: this codec
speaks IPv4 only (BEP 32's C{nodes6} and 18-byte C{values} are ignored).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

from btorrent.codec import bencode

__all__ = [
    "Address",
    "AnnouncePeer",
    "COMPACT_NODE_LENGTH",
    "COMPACT_PEER_LENGTH",
    "ERROR_GENERIC",
    "ERROR_METHOD_UNKNOWN",
    "ERROR_PROTOCOL",
    "ERROR_SERVER",
    "Error",
    "FindNode",
    "GetPeers",
    "ID_LENGTH",
    "KRPCError",
    "MAX_DATAGRAM",
    "MAX_TRANSACTION_ID",
    "Message",
    "NodeInfo",
    "Ping",
    "Query",
    "Response",
    "decode",
    "decodeNodes",
    "decodePeer",
    "encode",
    "encodeNodes",
    "encodePeer",
]

#: Node ids, targets and info-hashes are 160 bits.
ID_LENGTH = 20
#: A compact node: 20-byte id, 4-byte IPv4 address, 2-byte port.
COMPACT_NODE_LENGTH = 26
#: A compact peer: 4-byte IPv4 address, 2-byte port.
COMPACT_PEER_LENGTH = 6
#: A BEP 32 compact IPv6 peer, skipped in C{values}.
_COMPACT_PEER6_LENGTH = 18
#: The largest datagram we decode.  A get_peers answer with 100 peers and 8
#: nodes is about 1 KiB; nothing in BEP 5 comes near this.
MAX_DATAGRAM = 4096
#: The longest transaction id we accept (and echo); clients use 2 to 4.
MAX_TRANSACTION_ID = 16
#: The longest token we accept in announce_peer (libtorrent's are 4 bytes).
MAX_TOKEN = 64
#: The deepest nesting a KRPC message needs (top dict, args, values list).
_MAX_DEPTH = 4

ERROR_GENERIC = 201
ERROR_SERVER = 202
ERROR_PROTOCOL = 203
ERROR_METHOD_UNKNOWN = 204

Address = Tuple[str, int]

_PORT = struct.Struct("!H")


class KRPCError(ValueError):
    """
    A datagram that is not a valid KRPC message.

    @ivar transactionId: the message's C{t} when it could be read, else
        C{None}.
    @ivar query: whether the message announced itself as a query (C{y=q}),
        so that an error answer is due.
    @ivar code: the KRPC error code that answer carries
        (L{ERROR_PROTOCOL} or L{ERROR_METHOD_UNKNOWN}).
    """

    def __init__(
        self,
        text: str,
        transactionId: Optional[bytes] = None,
        query: bool = False,
        code: int = ERROR_PROTOCOL,
    ) -> None:
        super().__init__(text)
        self.transactionId = transactionId
        self.query = query
        self.code = code


@dataclass(frozen=True)
class NodeInfo:
    """
    A node's contact: its id and UDP address.
    """

    nodeId: bytes
    address: Address


@dataclass(frozen=True)
class Ping:
    """
    C{ping}: are you there?
    """

    transactionId: bytes
    nodeId: bytes
    readOnly: bool = False
    method = b"ping"


@dataclass(frozen=True)
class FindNode:
    """
    C{find_node}: the nodes you know closest to C{target}.
    """

    transactionId: bytes
    nodeId: bytes
    target: bytes
    readOnly: bool = False
    method = b"find_node"


@dataclass(frozen=True)
class GetPeers:
    """
    C{get_peers}: peers of C{infoHash}, or the nodes closest to it, and a
    token to announce with.
    """

    transactionId: bytes
    nodeId: bytes
    infoHash: bytes
    readOnly: bool = False
    method = b"get_peers"


@dataclass(frozen=True)
class AnnouncePeer:
    """
    C{announce_peer}: the sender is a peer of C{infoHash} on TCP C{port}
    (or, with C{impliedPort}, on the UDP source port of the datagram).
    """

    transactionId: bytes
    nodeId: bytes
    infoHash: bytes
    port: int
    token: bytes
    impliedPort: bool = False
    readOnly: bool = False
    method = b"announce_peer"


Query = Union[Ping, FindNode, GetPeers, AnnouncePeer]


@dataclass(frozen=True)
class Response:
    """
    An answer to a query.

    @ivar nodes: compact nodes (C{find_node}, C{get_peers}); empty when the
        answer has none.
    @ivar values: peers (C{get_peers}); C{None} when the key is absent.
    @ivar token: the write token (C{get_peers}); C{None} when absent.
    @ivar ip: the address the answering node saw us at (BEP 42), if given.
    """

    transactionId: bytes
    nodeId: bytes
    nodes: Tuple[NodeInfo, ...] = ()
    values: Optional[Tuple[Address, ...]] = None
    token: Optional[bytes] = None
    ip: Optional[Address] = None


@dataclass(frozen=True)
class Error:
    """
    A KRPC error answer: C{code} (201 generic, 202 server, 203 protocol,
    204 method unknown) and a text.
    """

    transactionId: bytes
    code: int
    text: str


Message = Union[Ping, FindNode, GetPeers, AnnouncePeer, Response, Error]


def encodePeer(address: Address) -> bytes:
    """
    The 6-byte compact form of an IPv4 C{(host, port)}.

    @raise ValueError: if C{host} is not a dotted quad or C{port} is out of
        range.
    """
    host, port = address
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
    except (OSError, TypeError):
        raise ValueError(f"not an IPv4 address: {host!r}") from None
    if type(port) is not int or not 0 <= port <= 0xFFFF:
        raise ValueError(f"port out of range: {port!r}")
    return packed + _PORT.pack(port)


def decodePeer(data: bytes) -> Address:
    """
    The C{(host, port)} of a 6-byte compact peer.

    @raise ValueError: if C{data} is not 6 bytes.
    """
    if len(data) != COMPACT_PEER_LENGTH:
        raise ValueError(f"compact peer of {len(data)} bytes, expected 6")
    return socket.inet_ntoa(data[:4]), _PORT.unpack_from(data, 4)[0]


def encodeNodes(nodes) -> bytes:
    """
    The compact form of a sequence of L{NodeInfo}: 26 bytes each.

    @raise ValueError: for an id that is not 20 bytes or an address that is
        not IPv4.
    """
    parts = []
    for node in nodes:
        if type(node.nodeId) is not bytes or len(node.nodeId) != ID_LENGTH:
            raise ValueError(f"node id must be 20 bytes: {node.nodeId!r}")
        parts.append(node.nodeId)
        parts.append(encodePeer(node.address))
    return b"".join(parts)


def decodeNodes(data: bytes) -> Tuple[NodeInfo, ...]:
    """
    Read compact nodes (26 bytes each).

    @raise ValueError: if the length is not a multiple of 26.
    """
    if len(data) % COMPACT_NODE_LENGTH:
        raise ValueError(
            f"compact nodes of {len(data)} bytes, not a multiple of "
            f"{COMPACT_NODE_LENGTH}"
        )
    return tuple(
        NodeInfo(data[i : i + ID_LENGTH], decodePeer(data[i + ID_LENGTH : i + 26]))
        for i in range(0, len(data), COMPACT_NODE_LENGTH)
    )


def _checkId(value: Any, name: str) -> bytes:
    if type(value) is not bytes or len(value) != ID_LENGTH:
        raise ValueError(f"{name} must be 20 bytes, not {value!r}")
    return value


def encode(message: Message) -> bytes:
    """
    Bencode one KRPC message.

    @raise ValueError: for a field the protocol cannot carry (an id that is
        not 20 bytes, a non-IPv4 address, a port out of range).
    """
    if not isinstance(
        message, (Ping, FindNode, GetPeers, AnnouncePeer, Response, Error)
    ):
        raise ValueError(f"not a KRPC message: {message!r}")
    t = message.transactionId
    if type(t) is not bytes or len(t) > MAX_TRANSACTION_ID:
        raise ValueError(f"transaction id must be at most 16 bytes: {t!r}")
    out: Dict[bytes, Any] = {b"t": t}
    if isinstance(message, Response):
        r: Dict[bytes, Any] = {b"id": _checkId(message.nodeId, "node id")}
        if message.nodes:
            r[b"nodes"] = encodeNodes(message.nodes)
        if message.values is not None:
            r[b"values"] = [encodePeer(peer) for peer in message.values]
        if message.token is not None:
            r[b"token"] = bytes(message.token)
        out[b"y"] = b"r"
        out[b"r"] = r
        if message.ip is not None:
            out[b"ip"] = encodePeer(message.ip)
    elif isinstance(message, Error):
        if type(message.code) is not int:
            raise ValueError(f"error code must be an int: {message.code!r}")
        out[b"y"] = b"e"
        out[b"e"] = [message.code, message.text.encode("utf-8", "replace")]
    else:
        a: Dict[bytes, Any] = {b"id": _checkId(message.nodeId, "node id")}
        if isinstance(message, FindNode):
            a[b"target"] = _checkId(message.target, "target")
        elif isinstance(message, GetPeers):
            a[b"info_hash"] = _checkId(message.infoHash, "info_hash")
        elif isinstance(message, AnnouncePeer):
            a[b"info_hash"] = _checkId(message.infoHash, "info_hash")
            port = message.port
            if type(port) is not int or not 0 <= port <= 0xFFFF:
                raise ValueError(f"port out of range: {port!r}")
            a[b"port"] = port
            a[b"token"] = bytes(message.token)
            if message.impliedPort:
                a[b"implied_port"] = 1
        out[b"y"] = b"q"
        out[b"q"] = message.method
        out[b"a"] = a
        if message.readOnly:
            out[b"ro"] = 1
    return bencode.encode(out)


def _get(d: Dict[bytes, Any], key: bytes, kind: type, name: str) -> Any:
    """
    C{d[key]}, which must be of type C{kind}.

    @raise ValueError: if it is missing or of another type.
    """
    if key not in d:
        raise ValueError(f"missing {name}")
    value = d[key]
    if type(value) is not kind:
        raise ValueError(
            f"{name} is not {'an integer' if kind is int else 'a ' + kind.__name__}"
        )
    return value


def _optional(d: Dict[bytes, Any], key: bytes, kind: type, name: str) -> Any:
    return _get(d, key, kind, name) if key in d else None


def _id(d: Dict[bytes, Any], key: bytes, name: str) -> bytes:
    value = _get(d, key, bytes, name)
    if len(value) != ID_LENGTH:
        raise ValueError(f"{name} is {len(value)} bytes, expected 20")
    return value


def _decodeQuery(top: Dict[bytes, Any], t: bytes) -> Query:
    method = _get(top, b"q", bytes, "method name 'q'")
    args = _get(top, b"a", dict, "arguments 'a'")
    nodeId = _id(args, b"id", "node id")
    ro = _optional(top, b"ro", int, "'ro'")
    readOnly = bool(ro)
    if method == b"ping":
        return Ping(t, nodeId, readOnly)
    if method == b"find_node":
        return FindNode(t, nodeId, _id(args, b"target", "target"), readOnly)
    if method == b"get_peers":
        return GetPeers(t, nodeId, _id(args, b"info_hash", "info_hash"), readOnly)
    if method == b"announce_peer":
        infoHash = _id(args, b"info_hash", "info_hash")
        port = _get(args, b"port", int, "port")
        token = _get(args, b"token", bytes, "token")
        if len(token) > MAX_TOKEN:
            raise ValueError(f"token of {len(token)} bytes")
        implied = _optional(args, b"implied_port", int, "implied_port")
        impliedPort = bool(implied)
        if not 0 <= port <= 0xFFFF or (port == 0 and not impliedPort):
            raise ValueError(f"port out of range: {port}")
        return AnnouncePeer(t, nodeId, infoHash, port, token, impliedPort, readOnly)
    raise KRPCError(
        f"method unknown: {method[:32]!r}", t, query=True, code=ERROR_METHOD_UNKNOWN
    )


def _decodeResponse(top: Dict[bytes, Any], t: bytes) -> Response:
    r = _get(top, b"r", dict, "response 'r'")
    nodeId = _id(r, b"id", "node id")
    compact = _optional(r, b"nodes", bytes, "nodes")
    nodes = decodeNodes(compact) if compact else ()
    rawValues = _optional(r, b"values", list, "values")
    values: Optional[Tuple[Address, ...]] = None
    if rawValues is not None:
        peers: List[Address] = []
        for value in rawValues:
            if type(value) is not bytes:
                raise ValueError("a value is not a string")
            if len(value) == COMPACT_PEER_LENGTH:
                peers.append(decodePeer(value))
            elif len(value) != _COMPACT_PEER6_LENGTH:
                raise ValueError(f"a value of {len(value)} bytes, expected 6")
        values = tuple(peers)
    token = _optional(r, b"token", bytes, "token")
    ip = top.get(b"ip")
    address = (
        decodePeer(ip) if type(ip) is bytes and len(ip) == COMPACT_PEER_LENGTH else None
    )
    return Response(t, nodeId, nodes, values, token, address)


def _decodeError(top: Dict[bytes, Any], t: bytes) -> Error:
    e = _get(top, b"e", list, "error 'e'")
    if len(e) < 2 or type(e[0]) is not int or type(e[1]) is not bytes:
        raise ValueError("error 'e' is not [code, text]")
    return Error(t, e[0], e[1].decode("utf-8", "replace"))


def decode(data: bytes) -> Message:
    """
    Decode one datagram.

    @raise KRPCError: for anything that is not one valid KRPC message; the
        only exception raised, whatever C{data} is.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise KRPCError(f"expected bytes, not {type(data).__name__}")
    if len(data) > MAX_DATAGRAM:
        raise KRPCError(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    try:
        top = bencode.decode(bytes(data), maxDepth=_MAX_DEPTH)
    except bencode.BencodeError as e:
        raise KRPCError(f"not bencoded: {e}") from None
    if type(top) is not dict:
        raise KRPCError("not a dictionary")
    t = top.get(b"t")
    if type(t) is not bytes or len(t) > MAX_TRANSACTION_ID:
        raise KRPCError("missing or invalid transaction id 't'")
    y = top.get(b"y")
    query = y == b"q"
    try:
        if query:
            return _decodeQuery(top, t)
        if y == b"r":
            return _decodeResponse(top, t)
        if y == b"e":
            return _decodeError(top, t)
        raise ValueError(f"message type 'y' is {y!r}")
    except KRPCError:
        raise
    except ValueError as e:
        raise KRPCError(str(e), t, query=query) from None
