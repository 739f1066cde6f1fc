"""
The BitTorrent peer wire (BEP 3): the handshake and the length-prefixed
messages, as plain values.

Nothing here knows about connections: L{btorrent.peer.protocol} frames the byte
stream and hands each message's payload to L{decodeMessageAt} (or
L{decodeMessage}); it writes what L{encodeMessage} and L{encodePieceHeader}
return.  Every decoder is strict: a message whose length does not fit its
type, or an id we do not know, raises L{WireError}.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Dict, Union

__all__ = [
    "BLOCK_MAX",
    "VIEW_MIN_BLOCK",
    "BitfieldMessage",
    "Cancel",
    "Choke",
    "HANDSHAKE_LENGTH",
    "HANDSHAKE_PREFIX",
    "KEEP_ALIVE",
    "Handshake",
    "Have",
    "Interested",
    "KeepAlive",
    "Message",
    "NotInterested",
    "PROTOCOL_NAME",
    "Piece",
    "Port",
    "Request",
    "Unchoke",
    "WireError",
    "AllowedFast",
    "Extended",
    "HaveAll",
    "HaveNone",
    "RejectRequest",
    "SuggestPiece",
    "FAST_IDS",
    "RESERVED_DHT",
    "RESERVED_EXTENDED",
    "RESERVED_FAST",
    "hasReserved",
    "reservedBytes",
    "decodeHandshake",
    "decodeMessage",
    "decodeMessageAt",
    "encodeHandshake",
    "encodeMessage",
    "encodePieceHeader",
]

#: The protocol string of the handshake.
PROTOCOL_NAME = b"BitTorrent protocol"
#: The first 20 bytes of every handshake: the length byte and the name.
HANDSHAKE_PREFIX = bytes([len(PROTOCOL_NAME)]) + PROTOCOL_NAME
#: The length of a whole handshake: prefix, reserved, info-hash, peer id.
HANDSHAKE_LENGTH = 68
#: The largest block a C{request} or C{piece} may carry (128 KiB).
BLOCK_MAX = 128 * 1024
#: The block size every client requests (16 KiB): the largest block we ask
#: for, so the largest C{piece} message we take in.
BLOCK_SIZE = 16 * 1024

# Message ids.
CHOKE = 0
UNCHOKE = 1
INTERESTED = 2
NOT_INTERESTED = 3
HAVE = 4
BITFIELD = 5
REQUEST = 6
PIECE = 7
CANCEL = 8
PORT = 9
# BEP 6 (Fast extension).
SUGGEST_PIECE = 0x0D
HAVE_ALL = 0x0E
HAVE_NONE = 0x0F
REJECT_REQUEST = 0x10
ALLOWED_FAST = 0x11
# BEP 10 (extension protocol).
EXTENDED = 20

#: The message ids of the Fast extension (BEP 6): valid only when both
#: handshakes set its reserved bit.
FAST_IDS = frozenset([SUGGEST_PIECE, HAVE_ALL, HAVE_NONE, REJECT_REQUEST, ALLOWED_FAST])

#: Reserved bits of the handshake: C{(byte index, mask)}.
RESERVED_DHT = (7, 0x01)
RESERVED_FAST = (7, 0x04)
RESERVED_EXTENDED = (5, 0x10)


def reservedBytes(
    dht: bool = False, fast: bool = False, extended: bool = False
) -> bytes:
    """
    The 8 reserved bytes of a handshake announcing the given extensions.
    """
    reserved = bytearray(8)
    for wanted, (byte, mask) in (
        (dht, RESERVED_DHT),
        (fast, RESERVED_FAST),
        (extended, RESERVED_EXTENDED),
    ):
        if wanted:
            reserved[byte] |= mask
    return bytes(reserved)


def hasReserved(reserved: bytes, bit) -> bool:
    """
    Whether the reserved bytes C{reserved} set C{bit} (one of
    L{RESERVED_DHT}, L{RESERVED_FAST}, L{RESERVED_EXTENDED}).
    """
    byte, mask = bit
    return bool(reserved[byte] & mask)


_LENGTH = struct.Struct(">I")
_HEADER = struct.Struct(">IB")  # length prefix and id
_INDEX = struct.Struct(">I")
_HAVE = struct.Struct(">IBI")
_TRIPLE = struct.Struct(">III")
_TRIPLE_MESSAGE = struct.Struct(">IBIII")
_PIECE_HEADER = struct.Struct(">IBII")
_PIECE_FIELDS = struct.Struct(">II")

#: The shortest block that L{decodeMessageAt} gives as a view of the read
#: rather than a copy.  A view costs about 180 bytes, more than a short
#: block: a peer sending 13-byte pieces with 1-byte blocks made a 4 MiB
#: read (the most the encryption hands over at once) 121 MB of views,
#: against 21 MB of copies.
VIEW_MIN_BLOCK = 1024
_PORT = struct.Struct(">H")
_PORT_MESSAGE = struct.Struct(">IBH")


class WireError(ValueError):
    """
    Bytes that are not a well-formed handshake or message, or a value that
    cannot be encoded.
    """


@dataclass(frozen=True)
class Handshake:
    """
    The 68-byte handshake.

    @ivar infoHash: the 20-byte info-hash.
    @ivar peerId: the sender's 20-byte peer id.
    @ivar reserved: the 8 reserved (extension) bytes, kept as given.
    """

    infoHash: bytes
    peerId: bytes
    reserved: bytes = bytes(8)

    def __post_init__(self) -> None:
        for name, value, size in (
            ("infoHash", self.infoHash, 20),
            ("peerId", self.peerId, 20),
            ("reserved", self.reserved, 8),
        ):
            if not isinstance(value, bytes) or len(value) != size:
                raise WireError(f"handshake {name} must be {size} bytes")


def encodeHandshake(handshake: Handshake) -> bytes:
    """
    Encode a handshake.

    @return: the 68 bytes.
    """
    return HANDSHAKE_PREFIX + handshake.reserved + handshake.infoHash + handshake.peerId


def decodeHandshake(data: bytes) -> Handshake:
    """
    Decode a handshake.

    @param data: exactly L{HANDSHAKE_LENGTH} bytes.
    @raise WireError: for the wrong length or protocol string.
    """
    if len(data) != HANDSHAKE_LENGTH:
        raise WireError(f"handshake of {len(data)} bytes, not {HANDSHAKE_LENGTH}")
    if data[:20] != HANDSHAKE_PREFIX:
        raise WireError("not a BitTorrent handshake")
    return Handshake(
        infoHash=bytes(data[28:48]),
        peerId=bytes(data[48:68]),
        reserved=bytes(data[20:28]),
    )


# Messages.  Each is a frozen value with __slots__; the ones without a
# payload are also module-level singletons that the decoder returns.


@dataclass(frozen=True)
class KeepAlive:
    """
    A message of length zero.
    """

    __slots__ = ()


@dataclass(frozen=True)
class Choke:
    """
    The sender will not answer requests.
    """

    __slots__ = ()


@dataclass(frozen=True)
class Unchoke:
    """
    The sender will answer requests.
    """

    __slots__ = ()


@dataclass(frozen=True)
class Interested:
    """
    The sender wants pieces the receiver has.
    """

    __slots__ = ()


@dataclass(frozen=True)
class NotInterested:
    """
    The sender wants nothing from the receiver.
    """

    __slots__ = ()


@dataclass(frozen=True)
class Have:
    """
    The sender has verified piece C{index}.
    """

    __slots__ = ("index",)
    index: int


@dataclass(frozen=True)
class BitfieldMessage:
    """
    The pieces the sender has, as raw bytes (high bit of the first byte is
    piece 0).  Its length is checked against the torrent by the receiver,
    not here.
    """

    __slots__ = ("bits",)
    bits: bytes


@dataclass(frozen=True)
class Request:
    """
    Ask for C{length} bytes at C{begin} within piece C{index}.
    """

    __slots__ = ("index", "begin", "length")
    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class Piece:
    """
    A block of data: C{block} at C{begin} within piece C{index}.  Decoded
    from a read, C{block} is a read-only C{memoryview} of the C{bytes} read
    (or C{bytes}); sending, it may be any buffer.
    """

    __slots__ = ("index", "begin", "block")
    index: int
    begin: int
    block: bytes


@dataclass(frozen=True)
class Cancel:
    """
    Withdraw a L{Request}.
    """

    __slots__ = ("index", "begin", "length")
    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class Port:
    """
    The sender's DHT port (BEP 5).
    """

    __slots__ = ("port",)
    port: int


@dataclass(frozen=True)
class SuggestPiece:
    """
    The sender suggests downloading piece C{index} (BEP 6).
    """

    __slots__ = ("index",)

    index: int


@dataclass(frozen=True)
class HaveAll:
    """
    The sender has every piece (BEP 6; instead of a bitfield).
    """

    __slots__ = ()


@dataclass(frozen=True)
class HaveNone:
    """
    The sender has no piece (BEP 6; instead of a bitfield).
    """

    __slots__ = ()


@dataclass(frozen=True)
class RejectRequest:
    """
    The sender will not answer a L{Request} (BEP 6).
    """

    __slots__ = ("index", "begin", "length")

    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class AllowedFast:
    """
    The sender will answer requests for piece C{index} even while choking
    (BEP 6).
    """

    __slots__ = ("index",)

    index: int


@dataclass(frozen=True)
class Extended:
    """
    A BEP 10 message: C{extendedId} 0 is the extension handshake, any other
    id names an extension by the receiver's numbering; C{payload} follows.
    """

    __slots__ = ("extendedId", "payload")

    extendedId: int
    payload: bytes


Message = Union[
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have,
    BitfieldMessage,
    Request,
    Piece,
    Cancel,
    Port,
    SuggestPiece,
    HaveAll,
    HaveNone,
    RejectRequest,
    AllowedFast,
    Extended,
]

# The singletons returned by the decoder.
KEEP_ALIVE = KeepAlive()
_CHOKE = Choke()
_UNCHOKE = Unchoke()
_INTERESTED = Interested()
_NOT_INTERESTED = NotInterested()
_NO_PAYLOAD = (_CHOKE, _UNCHOKE, _INTERESTED, _NOT_INTERESTED)
_HAVE_ALL = HaveAll()
_HAVE_NONE = HaveNone()
_NAMES = (
    "choke",
    "unchoke",
    "interested",
    "not interested",
    "have",
    "bitfield",
    "request",
    "piece",
    "cancel",
    "port",
)


def decodeMessageAt(buffer: bytes, start: int, end: int) -> Message:
    """
    Decode the message whose payload (the bytes after the 4-byte length
    prefix) is C{buffer[start:end]}, without copying anything but the
    payload's own fields: a L{Piece}'s block is a view of C{buffer} when
    C{buffer} is C{bytes} (which cannot change under it), else sliced out.

    @raise WireError: for an unknown id or a length that does not fit the
        message's type.
    """
    length = end - start
    if length == 0:
        return KEEP_ALIVE
    messageId = buffer[start]
    if messageId == PIECE:
        if length < 9:
            raise WireError(f"piece message of length {length}, at least 9")
        index, begin = _PIECE_FIELDS.unpack_from(buffer, start + 1)
        if type(buffer) is bytes and length - 9 >= VIEW_MIN_BLOCK:
            # A view of the read, which nothing can change: the block is
            # copied once, into its piece's buffer, not first into bytes.
            return Piece(index, begin, memoryview(buffer)[start + 9 : end])
        return Piece(index, begin, bytes(buffer[start + 9 : end]))
    if messageId <= NOT_INTERESTED:
        if length != 1:
            raise WireError(f"{_NAMES[messageId]} message of length {length}, not 1")
        return _NO_PAYLOAD[messageId]
    if messageId == HAVE:
        if length != 5:
            raise WireError(f"have message of length {length}, not 5")
        return Have(_INDEX.unpack_from(buffer, start + 1)[0])
    if messageId == REQUEST or messageId == CANCEL:
        if length != 13:
            raise WireError(f"{_NAMES[messageId]} message of length {length}, not 13")
        index, begin, blockLength = _TRIPLE.unpack_from(buffer, start + 1)
        if messageId == REQUEST:
            return Request(index, begin, blockLength)
        return Cancel(index, begin, blockLength)
    if messageId == BITFIELD:
        return BitfieldMessage(bytes(buffer[start + 1 : end]))
    if messageId == PORT:
        if length != 3:
            raise WireError(f"port message of length {length}, not 3")
        return Port(_PORT.unpack_from(buffer, start + 1)[0])
    if messageId == EXTENDED:
        if length < 2:
            raise WireError(f"extended message of length {length}, at least 2")
        return Extended(buffer[start + 1], bytes(buffer[start + 2 : end]))
    if messageId in FAST_IDS:
        return _decodeFast(messageId, buffer, start, length)
    raise WireError(f"unknown message id {messageId}")


def _decodeFast(messageId: int, buffer, start: int, length: int) -> Message:
    """
    Decode a message of the Fast extension (BEP 6).
    """
    if messageId == HAVE_ALL or messageId == HAVE_NONE:
        if length != 1:
            raise WireError(f"have-all/none message of length {length}, not 1")
        return _HAVE_ALL if messageId == HAVE_ALL else _HAVE_NONE
    if messageId == REJECT_REQUEST:
        if length != 13:
            raise WireError(f"reject message of length {length}, not 13")
        return RejectRequest(*_TRIPLE.unpack_from(buffer, start + 1))
    if length != 5:
        raise WireError(f"suggest/allowed-fast message of length {length}, not 5")
    index = _INDEX.unpack_from(buffer, start + 1)[0]
    if messageId == SUGGEST_PIECE:
        return SuggestPiece(index)
    return AllowedFast(index)


def decodeMessage(payload: bytes) -> Message:
    """
    Decode one message.

    @param payload: the bytes after the 4-byte length prefix (empty for a
        keep-alive).
    @raise WireError: for an unknown id or a length that does not fit the
        message's type.
    """
    return decodeMessageAt(payload, 0, len(payload))


def encodePieceHeader(index: int, begin: int, length: int) -> bytes:
    """
    Encode the 13 bytes that precede a block of C{length} bytes in a
    C{piece} message, so that the block itself can be written after them
    without being copied.
    """
    try:
        return _PIECE_HEADER.pack(9 + length, PIECE, index, begin)
    except struct.error as e:
        raise WireError(f"cannot encode piece header: {e}") from None


_KEEP_ALIVE_BYTES = _LENGTH.pack(0)
_SINGLE = {
    Choke: _HEADER.pack(1, CHOKE),
    Unchoke: _HEADER.pack(1, UNCHOKE),
    Interested: _HEADER.pack(1, INTERESTED),
    NotInterested: _HEADER.pack(1, NOT_INTERESTED),
    KeepAlive: _KEEP_ALIVE_BYTES,
    HaveAll: _HEADER.pack(1, HAVE_ALL),
    HaveNone: _HEADER.pack(1, HAVE_NONE),
}


def _encodeHave(msg: Have) -> bytes:
    return _HAVE.pack(5, HAVE, msg.index)


def _encodeBitfield(msg: BitfieldMessage) -> bytes:
    return _HEADER.pack(1 + len(msg.bits), BITFIELD) + msg.bits


def _encodeRequest(msg: Request) -> bytes:
    return _TRIPLE_MESSAGE.pack(13, REQUEST, msg.index, msg.begin, msg.length)


def _encodeCancel(msg: Cancel) -> bytes:
    return _TRIPLE_MESSAGE.pack(13, CANCEL, msg.index, msg.begin, msg.length)


def _encodePiece(msg: Piece) -> bytes:
    return encodePieceHeader(msg.index, msg.begin, len(msg.block)) + msg.block


def _encodePort(msg: Port) -> bytes:
    return _PORT_MESSAGE.pack(3, PORT, msg.port)


def _encodeReject(msg: RejectRequest) -> bytes:
    return _TRIPLE_MESSAGE.pack(13, REJECT_REQUEST, msg.index, msg.begin, msg.length)


def _encodeSuggest(msg: SuggestPiece) -> bytes:
    return _HAVE.pack(5, SUGGEST_PIECE, msg.index)


def _encodeAllowedFast(msg: AllowedFast) -> bytes:
    return _HAVE.pack(5, ALLOWED_FAST, msg.index)


def _encodeExtended(msg: Extended) -> bytes:
    return (
        _HEADER.pack(2 + len(msg.payload), EXTENDED)
        + bytes([msg.extendedId])
        + msg.payload
    )


_ENCODERS: Dict[type, Callable] = {
    Have: _encodeHave,
    BitfieldMessage: _encodeBitfield,
    Request: _encodeRequest,
    Cancel: _encodeCancel,
    Piece: _encodePiece,
    Port: _encodePort,
    RejectRequest: _encodeReject,
    SuggestPiece: _encodeSuggest,
    AllowedFast: _encodeAllowedFast,
    Extended: _encodeExtended,
}


def encodeMessage(msg: Message) -> bytes:
    """
    Encode one message, with its 4-byte length prefix.

    A L{Piece} is encoded by concatenation: to send a block without
    copying it, write L{encodePieceHeader} and the block separately.

    @raise WireError: for a value out of range or an unknown message type.
    """
    single = _SINGLE.get(type(msg))
    if single is not None:
        return single
    encoder = _ENCODERS.get(type(msg))
    if encoder is None:
        raise WireError(f"cannot encode {msg!r}")
    try:
        return encoder(msg)
    except struct.error as e:
        raise WireError(f"cannot encode {msg!r}: {e}") from None
