"""
One peer connection as a state machine without I/O: bytes in, events out,
bytes queued to send.

L{PeerConnection} does what a connection must do whoever drives it: the
handshake, framing (a length prefix checked before anything is buffered),
strict decoding, the validation of every message against the torrent (piece
indexes, bitfield size and spare bits, block and request sizes, per-kind
length limits), the choke/interest flags, the peer's pieces, the extension
bits of the handshake, keep-alive and idle deadlines.  It never chooses
pieces, never touches a disk and never imports C{twisted.internet}: the
Twisted protocol (L{btorrent.peer.protocol}) feeds it what the transport
reads, writes what it queues, and hands its events to the torrent.

Events (what L{PeerConnection.receiveData} and L{PeerConnection.tick}
return, in order):
  - L{HandshakeReceived}: the peer's handshake.  Nothing after it is
    parsed until the driver L{PeerConnection.accept}s it (an incoming
    connection's info-hash has to be routed first; our handshake is queued
    then) and calls L{PeerConnection.resume}.
  - the messages of L{btorrent.codec.wire}, already applied to the state:
    a C{Have} of a piece already known and keep-alives are not reported; a
    bitfield (or C{HaveAll}/C{HaveNone}) is reported only as the first
    message; a later bitfield (aria2 sends them) is merged and reported as
    one C{Have} per new piece.
  - L{ExtensionHandshake}: a BEP 10 handshake (the peer's extension ids are
    already recorded).
  - L{ExtensionMessage}: a BEP 10 message for one of our extensions, by
    name, its length checked against that extension's limit.
  - C{KeepAlive}s only when L{PeerConnection.reportKeepAlives} is set.
  - L{Violation}: the peer broke the protocol (or went silent); the
    connection is closed and reports nothing more.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from btorrent.codec import bencode, wire
from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import (
    BLOCK_MAX,
    BLOCK_SIZE,
    HANDSHAKE_LENGTH,
    HANDSHAKE_PREFIX,
    AllowedFast,
    BitfieldMessage,
    Cancel,
    Choke,
    Extended,
    Handshake,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    NotInterested,
    Piece,
    RejectRequest,
    Request,
    SuggestPiece,
    Unchoke,
    WireError,
    decodeHandshake,
    decodeMessageAt,
    encodeHandshake,
    encodeMessage,
    encodePieceHeader,
)
from btorrent.util.rate import RateMeter

__all__ = [
    "ExtensionHandshake",
    "ExtensionMessage",
    "Features",
    "HANDSHAKE_TIMEOUT",
    "HandshakeReceived",
    "IDLE_TIMEOUT",
    "KEEPALIVE_BURST",
    "KEEPALIVE_INTERVAL",
    "MAX_EXTENSION_HANDSHAKE",
    "MAX_PIECES_UNKNOWN",
    "PeerConnection",
    "Violation",
    "maxMessageLength",
]

#: Send a keep-alive after this many seconds of our silence.
KEEPALIVE_INTERVAL = 120.0
#: Drop a peer silent for this many seconds.
IDLE_TIMEOUT = 180.0
#: Keep-alives a peer may send back to back; beyond that, one a second on
#: average (clients send one every minute or two).  A peer sending more is
#: dropped: a flood of 4-byte messages costs CPU and proves nothing.
KEEPALIVE_BURST = 100
#: Drop a connection whose handshake has not completed after this long.
HANDSHAKE_TIMEOUT = 20.0
#: The longest BEP 10 handshake we take (libtorrent's limit is 1000 bytes
#: of dictionary for its own, and rejects bigger ones from others).
MAX_EXTENSION_HANDSHAKE = 64 * 1024
#: The most pieces a torrent whose metadata we do not have yet may have:
#: metadata is at most 10 MB of 20-byte hashes (BEP 9 via ut_metadata).
MAX_PIECES_UNKNOWN = 10_000_000 // 20

_LENGTH = struct.Struct(">I")
_unpackLength = _LENGTH.unpack_from
# A whole request message: length prefix 13, id 6, index, begin, length.
_packRequest = struct.Struct(">IBIII").pack
# The pieces of a partial message kept as they came before the rest is
# gathered in one bytearray.
_MAX_PENDING_PIECES = 64
_KEEP_ALIVE = encodeMessage(wire.KEEP_ALIVE)
_FLAG_MESSAGES = {
    Choke: ("amChoking", True),
    Unchoke: ("amChoking", False),
    Interested: ("amInterested", True),
    NotInterested: ("amInterested", False),
}


def maxMessageLength(pieceCount: Optional[int], extensionLimit: int = 0) -> int:
    """
    The longest message a peer of a torrent of C{pieceCount} pieces
    (C{None}: not known yet) may send: its bitfield, a piece message with a
    block of the size we request (L{BLOCK_SIZE}), or an extension message
    within C{extensionLimit}; a longer length prefix closes the connection
    before anything is buffered.
    """
    pieces = MAX_PIECES_UNKNOWN if pieceCount is None else pieceCount
    return max(1 + (pieces + 7) // 8, 9 + BLOCK_SIZE, 13, 2 + extensionLimit)


@dataclass(frozen=True)
class Features:
    """
    What we offer on a connection.

    @ivar fast: the Fast extension (BEP 6).
    @ivar dht: we run a DHT (BEP 5): the reserved bit, and a C{Port}
        message after the handshake when the peer sets it too.
    @ivar extensions: BEP 10 extensions as C{(name, ourId, maxPayload)}:
        the id the peer must use to send us the extension's messages, and
        the longest payload we take for it.  Empty: no extension protocol.
    """

    fast: bool = False
    dht: bool = False
    extensions: Tuple[Tuple[str, int, int], ...] = ()

    @property
    def reserved(self) -> bytes:
        """
        The reserved bytes of our handshake.
        """
        return wire.reservedBytes(
            dht=self.dht, fast=self.fast, extended=bool(self.extensions)
        )


@dataclass(frozen=True)
class HandshakeReceived:
    """
    The peer's handshake.
    """

    infoHash: bytes
    peerId: bytes
    reserved: bytes


@dataclass(frozen=True)
class ExtensionHandshake:
    """
    A BEP 10 handshake: its decoded dictionary (keys as C{str}), the
    peer's extension ids already recorded in
    L{PeerConnection.peerExtensions}.
    """

    fields: Dict[str, Any]


@dataclass(frozen=True)
class ExtensionMessage:
    """
    A BEP 10 message for our extension C{name}.
    """

    name: str
    payload: bytes


@dataclass(frozen=True)
class Violation:
    """
    The connection is over: the peer broke the protocol (C{reason} says
    how) or went silent.
    """

    reason: str


class PeerConnection:
    """
    The state of one connection to a peer.

    @ivar outgoing: we dialled.
    @ivar infoHash: the torrent's info-hash (an incoming connection learns
        it from the handshake).
    @ivar pieceCount: the torrent's piece count, or C{None} while we do not
        have its metadata.
    @ivar amChoking: we are choking the peer (initially C{True}).
    @ivar amInterested: we told the peer we are interested.
    @ivar peerChoking: the peer is choking us (initially C{True}).
    @ivar peerInterested: the peer is interested in us.
    @ivar peerPieces: the peer's pieces (a L{Bitfield}; C{None} until the
        handshake, and while the piece count is unknown).
    @ivar peerId: the peer's id (C{None} until the handshake).
    @ivar peerReserved: the reserved bytes of the peer's handshake.
    @ivar fast: both sides offered the Fast extension.
    @ivar extended: both sides offered the extension protocol.
    @ivar peerDHT: the peer runs a DHT (reserved bit).
    @ivar peerExtensions: the peer's BEP 10 ids, C{name -> id}.
    @ivar downloadRate: a L{RateMeter} of block bytes received.
    @ivar uploadRate: a L{RateMeter} of block bytes sent.
    @ivar bytesDownloaded: block bytes received in C{Piece} messages of a
        plausible shape (1 to L{BLOCK_SIZE} bytes); whether a block was
        requested is the owner's question.
    @ivar bytesUploaded: block bytes sent.
    @ivar open: the handshake was accepted and the connection is not over.
    @ivar closed: the connection is over (a violation, or L{close}).
    """

    def __init__(
        self,
        clock,
        peerId: bytes,
        features: Features = Features(),
        infoHash: Optional[bytes] = None,
        pieceCount: Optional[int] = None,
    ) -> None:
        """
        @param clock: provides C{seconds()} (rates, deadlines).
        @param peerId: our peer id.
        @param features: what we offer.
        @param infoHash: the torrent, for an outgoing connection; C{None} for
            an incoming one (see L{accept}).
        @param pieceCount: the torrent's piece count for an outgoing
            connection (C{None} while its metadata is unknown).
        """
        self.clock = clock
        self.ourPeerId = peerId
        self.features = features
        self.outgoing = infoHash is not None
        self.infoHash = infoHash
        self.pieceCount = pieceCount
        self.amChoking = True
        self.amInterested = False
        self.peerChoking = True
        self.peerInterested = False
        self.peerPieces: Optional[Bitfield] = None
        self.peerId: Optional[bytes] = None
        self.peerReserved: Optional[bytes] = None
        self.fast = False
        self.extended = False
        self.peerDHT = False
        self.peerExtensions: Dict[str, int] = {}
        self.downloadRate = RateMeter(clock)
        self.uploadRate = RateMeter(clock)
        self.bytesDownloaded = 0
        self.bytesUploaded = 0
        self.open = False
        self.closed = False
        #: Report keep-alives as events too (for a debug log).
        self.reportKeepAlives = False
        self._ourIds: Dict[int, Tuple[str, int]] = {}
        self._extensionLimit = 0
        self._readFeatures()
        self._handshaking = True
        self._awaitingAccept = False
        self._handshakeBuffer = b""
        self._gotMessage = False  # any message but a keep-alive received
        self._sentMessage = False  # any message but a keep-alive sent
        self._maxLength = 0
        self._leftover = b""
        self._pending: list = []
        self._pendingSize = 0
        self._pendingNeed = 0
        # Pieces announced while the piece count is unknown (magnet links):
        # the raw bitfield and the indexes of Have messages, checked once the
        # metadata gives the count.
        self._unknownBits: Optional[bytes] = None
        self._unknownHaves: set = set()
        self._haveAllUnknown = False
        self._out: List[bytes] = []
        now = clock.seconds()
        self._started = now
        self._lastReceived = now
        self._lastSent = now
        # A token bucket for keep-alives: tokens left, and when it was last
        # refilled (lazily, when it runs dry).
        self._keepAliveTokens = KEEPALIVE_BURST
        self._keepAliveRefilled = now

    # Life.

    def start(self) -> None:
        """
        The transport is connected: the deadlines start, and an outgoing
        connection queues its handshake.
        """
        now = self.clock.seconds()
        self._started = self._lastReceived = self._lastSent = now
        self._keepAliveRefilled = now
        if self.outgoing:
            self._queueHandshake()

    def _queueHandshake(self) -> None:
        self._out.append(
            encodeHandshake(
                Handshake(self.infoHash, self.ourPeerId, self.features.reserved)
            )
        )
        self._lastSent = self.clock.seconds()

    def accept(
        self, infoHash: Optional[bytes] = None, pieceCount: Optional[int] = None
    ) -> None:
        """
        Accept the peer's handshake: the connection is open.  An incoming
        connection learns its torrent here (C{infoHash} and C{pieceCount},
        C{None} while the metadata is unknown) and queues our handshake.
        Nothing received after the handshake is parsed before
        L{resume}.
        """
        if not self._awaitingAccept or self.closed:
            return
        if not self.outgoing:
            self.infoHash = infoHash
            self.pieceCount = pieceCount
            self._queueHandshake()
        self._awaitingAccept = False
        self._opened()

    def resume(self) -> List[Any]:
        """
        Parse what arrived after the handshake (once L{accept}ed).

        @return: its events.
        """
        events: List[Any] = []
        if self._awaitingAccept or not self.open:
            return events
        rest, self._leftover = self._leftover, b""
        if rest:
            self._framesReceived(rest, events)
        return events

    def _readFeatures(self) -> None:
        """
        Our extension ids and the longest extension message, from
        L{features} (an incoming connection learns them when routed).
        """
        extensions = self.features.extensions
        self._ourIds = {ourId: (name, limit) for name, ourId, limit in extensions}
        self._extensionLimit = max(
            [limit for _, _, limit in extensions]
            + ([MAX_EXTENSION_HANDSHAKE] if extensions else [0])
        )

    def _opened(self) -> None:
        self._readFeatures()
        self.open = True
        self._handshaking = False
        reserved = self.peerReserved
        ours = self.features
        self.fast = ours.fast and wire.hasReserved(reserved, wire.RESERVED_FAST)
        self.extended = bool(ours.extensions) and wire.hasReserved(
            reserved, wire.RESERVED_EXTENDED
        )
        self.peerDHT = wire.hasReserved(reserved, wire.RESERVED_DHT)
        if self.pieceCount is not None:
            self.peerPieces = Bitfield(self.pieceCount)
        self._maxLength = maxMessageLength(self.pieceCount, self._extensionLimit)

    def close(self) -> None:
        """
        This side is closing the connection: forget every buffered byte and
        report nothing more.
        """
        self.open = False
        self.closed = True
        self._clearBuffers()

    def _violation(self, reason: str, events: List[Any]) -> None:
        if not self.closed:
            self.close()
            events.append(Violation(reason))

    def _clearBuffers(self) -> None:
        self._handshakeBuffer = b""
        self._leftover = b""
        self._pending = []
        self._pendingSize = 0
        self._pendingNeed = 0
        self._unknownBits = None
        self._unknownHaves = set()

    def setPieceCount(self, pieceCount: int) -> List[Any]:
        """
        The torrent's metadata arrived: check what the peer announced so
        far against the piece count.

        @return: events: a L{BitfieldMessage} or L{Have}s for what the peer
            announced, or a L{Violation}.
        """
        events: List[Any] = []
        if self.pieceCount is not None or self.closed:
            return events
        self.pieceCount = pieceCount
        self._maxLength = maxMessageLength(pieceCount, self._extensionLimit)
        if not self.open:
            return events
        bits, self._unknownBits = self._unknownBits, None
        haves, self._unknownHaves = self._unknownHaves, set()
        if self._haveAllUnknown:
            self.peerPieces = Bitfield.full(pieceCount)
        elif bits is not None:
            try:
                self.peerPieces = Bitfield.fromBytes(bits, pieceCount)
            except ValueError as e:
                self._violation(str(e), events)
                return events
        else:
            self.peerPieces = Bitfield(pieceCount)
        for index in sorted(haves):
            if index >= pieceCount:
                self._violation(f"have {index} out of range", events)
                return events
            self.peerPieces.add(index)
        if self.peerPieces.count:
            events.append(BitfieldMessage(self.peerPieces.toBytes()))
        return events

    # Time.

    def tick(self, now: float) -> List[Any]:
        """
        Check the deadlines: the handshake within L{HANDSHAKE_TIMEOUT}, a
        keep-alive after L{KEEPALIVE_INTERVAL} of our silence (queued), a
        L{Violation} after L{IDLE_TIMEOUT} of the peer's.
        """
        events: List[Any] = []
        if self.closed:
            return events
        if not self.open:
            if now - self._started >= HANDSHAKE_TIMEOUT:
                self._violation(
                    f"no handshake within {HANDSHAKE_TIMEOUT:.0f} s", events
                )
            return events
        if now - self._lastReceived >= IDLE_TIMEOUT:
            self._violation(f"silent for {IDLE_TIMEOUT:.0f} s", events)
            return events
        if now - self._lastSent >= KEEPALIVE_INTERVAL:
            self._out.append(_KEEP_ALIVE)
            self._lastSent = now
        return events

    # Receiving.

    def receiveData(self, data: bytes) -> List[Any]:
        """
        Take bytes read from the peer.

        @return: the events they make, in order.
        """
        events: List[Any] = []
        if self.closed:
            return events
        self._lastReceived = self.clock.seconds()
        if self._awaitingAccept:
            self._leftover += data
            return events
        if self._handshaking:
            data = self._handshakeReceived(data, events)
            if not data or self.closed or self._awaitingAccept:
                return events
        self._framesReceived(data, events)
        return events

    def _handshakeReceived(self, data: bytes, events: List[Any]) -> Optional[bytes]:
        """
        Collect and check the handshake.

        @return: the bytes after the handshake, or C{None}.
        """
        buf = self._handshakeBuffer + data
        n = min(len(buf), len(HANDSHAKE_PREFIX))
        if buf[:n] != HANDSHAKE_PREFIX[:n]:
            self._violation("not a BitTorrent handshake", events)
            return None
        if len(buf) < HANDSHAKE_LENGTH:
            self._handshakeBuffer = buf
            return None
        self._handshakeBuffer = b""
        handshake = decodeHandshake(buf[:HANDSHAKE_LENGTH])
        rest = buf[HANDSHAKE_LENGTH:]
        if self.outgoing and handshake.infoHash != self.infoHash:
            self._violation("handshake for another info-hash", events)
            return None
        if handshake.peerId == self.ourPeerId:
            self._violation("connection to ourselves", events)
            return None
        self.peerId = handshake.peerId
        self.peerReserved = handshake.reserved
        events.append(
            HandshakeReceived(handshake.infoHash, handshake.peerId, handshake.reserved)
        )
        self._awaitingAccept = True
        self._leftover = rest
        return None

    def _framesReceived(self, data: bytes, events: List[Any]) -> None:
        """
        Split the stream into messages, copying each message's bytes once.
        """
        if self._pendingNeed:
            # Collecting a message longer than what we have: join only when
            # all of it is here.  A peer dribbling bytes would make one
            # object per byte: past a few pieces, gather them in one buffer.
            pending = self._pending
            if type(pending[-1]) is bytearray:
                pending[-1] += data
            elif len(pending) < _MAX_PENDING_PIECES:
                pending.append(data)
            else:
                pending.append(bytearray(data))
            self._pendingSize += len(data)
            if self._pendingSize < self._pendingNeed:
                return
            buf = b"".join(self._pending)
            self._pending = []
            self._pendingSize = self._pendingNeed = 0
        elif self._leftover:
            buf = self._leftover + data
            self._leftover = b""
        else:
            buf = data
        offset = 0
        end = len(buf)
        maxLength = self._maxLength
        while True:
            avail = end - offset
            if avail < 4:
                break
            (length,) = _unpackLength(buf, offset)
            if length > maxLength:
                self._violation(
                    f"message of {length} bytes, longest allowed {maxLength}", events
                )
                return
            stop = offset + 4 + length
            if stop > end:
                self._pending = [buf[offset:]]
                self._pendingSize = avail
                self._pendingNeed = 4 + length
                return
            if length == 0:
                offset = stop
                if self._keepAliveTokens:
                    self._keepAliveTokens -= 1
                elif not self._refillKeepAlives():
                    self._violation("keep-alive flood", events)
                    return
                if self.reportKeepAlives:
                    events.append(wire.KEEP_ALIVE)
                continue
            try:
                message = decodeMessageAt(buf, offset + 4, stop)
            except WireError as e:
                self._violation(str(e), events)
                return
            offset = stop
            self._messageReceived(message, events)
            if self.closed:
                return
        if offset < end:
            self._leftover = buf[offset:]

    def _refillKeepAlives(self) -> bool:
        """
        The keep-alive bucket is empty: add a token per second since it was
        last refilled (at most L{KEEPALIVE_BURST}) and take one.

        @return: whether there was one to take.
        """
        now = self.clock.seconds()
        tokens = int(now - self._keepAliveRefilled)
        if tokens <= 0:
            return False
        if tokens >= KEEPALIVE_BURST:
            tokens = KEEPALIVE_BURST
            self._keepAliveRefilled = now
        else:
            # Keep the fraction of a second towards the next token.
            self._keepAliveRefilled += tokens
        self._keepAliveTokens = tokens - 1
        return True

    def _checkIndex(self, index: int, what: str, events: List[Any]) -> bool:
        count = self.pieceCount
        if count is None:
            if index >= MAX_PIECES_UNKNOWN:
                self._violation(f"{what} {index} out of range", events)
                return False
            return True
        if index >= count:
            self._violation(f"{what} {index} out of range", events)
            return False
        return True

    def _messageReceived(self, message, events: List[Any]) -> None:
        """
        Check one message against the torrent, apply it to the state, and
        add it to C{events}.
        """
        kind = type(message)
        if kind is Piece:
            if not self._checkIndex(message.index, "piece", events):
                return
            n = len(message.block)
            if 0 < n <= BLOCK_SIZE:
                self.bytesDownloaded += n
                self.downloadRate.update(n)
        elif kind is Have:
            index = message.index
            if not self._checkIndex(index, "have", events):
                return
            self._gotMessage = True
            if self.peerPieces is None:
                if len(self._unknownHaves) < MAX_PIECES_UNKNOWN:
                    self._unknownHaves.add(index)
                return
            if index in self.peerPieces:
                return
            self.peerPieces.add(index)
        elif kind is Request or kind is Cancel or kind is RejectRequest:
            if kind is RejectRequest and not self.fast:
                self._violation("reject without the Fast extension", events)
                return
            if not self._checkIndex(message.index, "request for piece", events):
                return
            if not 0 < message.length <= BLOCK_MAX:
                self._violation(
                    f"request for a block of {message.length} bytes", events
                )
                return
        elif kind is BitfieldMessage:
            if not self._bitfieldReceived(message, events):
                return
        elif kind is HaveAll or kind is HaveNone:
            if not self.fast:
                self._violation("have-all/none without the Fast extension", events)
                return
            if self._gotMessage:
                self._violation("have-all/none after other messages", events)
                return
            if self.pieceCount is None:
                self._gotMessage = True
                self._haveAllUnknown = kind is HaveAll
                return
            if kind is HaveAll:
                self.peerPieces = Bitfield.full(self.pieceCount)
        elif kind is SuggestPiece or kind is AllowedFast:
            if not self.fast:
                self._violation(
                    "suggest/allowed-fast without the Fast extension", events
                )
                return
            if not self._checkIndex(message.index, "piece", events):
                return
        elif kind is Extended:
            # Not a message that orders the bitfield: libtorrent sends its
            # extended handshake before its bitfield (or have-all).
            self._extendedReceived(message, events)
            return
        elif kind is Choke:
            self.peerChoking = True
        elif kind is Unchoke:
            self.peerChoking = False
        elif kind is Interested:
            self.peerInterested = True
        elif kind is NotInterested:
            self.peerInterested = False
        self._gotMessage = True
        events.append(message)

    def _bitfieldReceived(self, message: BitfieldMessage, events: List[Any]) -> bool:
        """
        A bitfield: the first message sets the peer's pieces; a later one
        (aria2) is merged and reported as L{Have}s.

        @return: whether to report the message itself.
        """
        if self.pieceCount is None:
            if self._gotMessage:
                self._violation("bitfield after other messages", events)
                return False
            self._gotMessage = True
            self._unknownBits = message.bits
            return False
        try:
            bits = Bitfield.fromBytes(message.bits, self.pieceCount)
        except ValueError as e:
            self._violation(str(e), events)
            return False
        if self._gotMessage:
            pieces = self.peerPieces
            # Only the new pieces are looked at one by one: a peer repeating
            # its bitfield costs a few word operations per message.
            for index in bits.difference(pieces):
                pieces.add(index)
                events.append(Have(index))
            return False
        self.peerPieces = bits
        return True

    def _extendedReceived(self, message: Extended, events: List[Any]) -> None:
        """
        A BEP 10 message: the handshake records the peer's ids; a message
        for one of our extensions is reported by name; one for an id we do
        not use is ignored (a peer may send what we disabled).
        """
        if not self.extended:
            self._violation("extension message without the extension bit", events)
            return
        if message.extendedId == 0:
            if len(message.payload) > MAX_EXTENSION_HANDSHAKE:
                self._violation("extension handshake too long", events)
                return
            try:
                fields = bencode.decode(message.payload)
            except bencode.BencodeError:
                # Ignored, as libtorrent does: the extensions stay as they were.
                return
            if not isinstance(fields, dict):
                return
            self._recordExtensionIds(fields.get(b"m"))
            events.append(
                ExtensionHandshake(
                    {
                        key.decode("utf-8", "replace"): value
                        for key, value in fields.items()
                        if isinstance(key, bytes)
                    }
                )
            )
            return
        known = self._ourIds.get(message.extendedId)
        if known is None:
            return
        name, limit = known
        if len(message.payload) > limit:
            self._violation(
                f"{name} message of {len(message.payload)} bytes, "
                f"longest allowed {limit}",
                events,
            )
            return
        events.append(ExtensionMessage(name, message.payload))

    def _recordExtensionIds(self, table: Any) -> None:
        """
        Record the peer's extension ids from a handshake's C{m}: a later
        handshake adds and changes ids, and id 0 turns a name off.
        """
        if not isinstance(table, dict):
            return
        for key, value in list(table.items())[:256]:
            if not isinstance(key, bytes) or type(value) is not int:
                continue
            name = key.decode("utf-8", "replace")
            if value == 0:
                self.peerExtensions.pop(name, None)
            elif 0 < value < 256:
                self.peerExtensions[name] = value

    # Sending.

    def dataToSend(self) -> List[bytes]:
        """
        The bytes queued since the last call, as a list of chunks to write
        in order (a block is its own chunk: it is never copied here).
        """
        out, self._out = self._out, []
        return out

    def _queue(self, data: bytes) -> None:
        self._sentMessage = True
        self._out.append(data)
        self._lastSent = self.clock.seconds()

    def sendMessage(self, message) -> None:
        """
        Queue any message of L{btorrent.codec.wire}.  Choke, unchoke,
        interested and not-interested update our flags; a bitfield is
        subject to the rule of L{sendBitfield}; a piece goes out through
        L{sendPiece}.  Nothing happens on a connection that is not open.
        """
        if not self.open:
            return
        kind = type(message)
        if kind is Piece:
            self.sendPiece(message.index, message.begin, message.block)
            return
        if kind is BitfieldMessage:
            self.sendBitfield(message.bits)
            return
        if kind is wire.KeepAlive:
            self._out.append(_KEEP_ALIVE)
            self._lastSent = self.clock.seconds()
            return
        flag = _FLAG_MESSAGES.get(kind)
        if flag is not None:
            setattr(self, flag[0], flag[1])
        self._queue(encodeMessage(message))

    def sendBitfield(self, bitfield) -> bool:
        """
        Queue our pieces.  Allowed only as the first message after the
        handshake: a later call is refused (nothing queued).  With the Fast
        extension, a full or empty bitfield goes out as C{HaveAll} or
        C{HaveNone}.

        @param bitfield: a L{Bitfield} of the torrent's piece count, or its
            wire form.
        @return: C{True} if it was queued.
        @raise ValueError: for a bitfield of the wrong length.
        """
        if not self.open:
            return False
        if isinstance(bitfield, Bitfield):
            if len(bitfield) != self.pieceCount:
                raise ValueError(
                    f"bitfield of {len(bitfield)} pieces, torrent has "
                    f"{self.pieceCount}"
                )
        else:
            bitfield = Bitfield.fromBytes(bitfield, self.pieceCount)
        if self._sentMessage:
            return False
        if self.fast and bitfield.complete:
            self._queue(encodeMessage(HaveAll()))
        elif self.fast and not bitfield.count:
            self._queue(encodeMessage(HaveNone()))
        else:
            self._queue(encodeMessage(BitfieldMessage(bitfield.toBytes())))
        return True

    def sendHave(self, index: int) -> None:
        """
        Tell the peer we have piece C{index}.
        """
        if self.open:
            self._queue(encodeMessage(Have(index)))

    def sendRequests(self, blocks: Sequence[Tuple[int, int, int]]) -> None:
        """
        Ask the peer for several blocks, in one chunk.

        @param blocks: C{(index, begin, length)} triples.
        """
        if not self.open or not blocks:
            return
        self._queue(
            b"".join(
                [
                    _packRequest(13, 6, index, begin, length)
                    for index, begin, length in blocks
                ]
            )
        )

    def sendCancel(self, index: int, begin: int, length: int) -> None:
        """
        Withdraw a request.
        """
        if self.open:
            self._queue(encodeMessage(Cancel(index, begin, length)))

    def sendReject(self, index: int, begin: int, length: int) -> None:
        """
        Refuse a request (Fast extension only; nothing is sent without it).
        """
        if self.open and self.fast:
            self._queue(encodeMessage(RejectRequest(index, begin, length)))

    def sendPiece(self, index: int, begin: int, data) -> None:
        """
        Queue a block: the 13-byte header and C{data} as two chunks, so the
        block is not copied into a message.

        @param data: the block: C{bytes}, or any buffer (a C{memoryview} of
            a cached piece), turned into C{bytes} here because Twisted's TCP
            transports take nothing else.
        """
        if not self.open:
            return
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        self._sentMessage = True
        self._out.append(encodePieceHeader(index, begin, n))
        self._out.append(data)
        self._lastSent = self.clock.seconds()
        self.bytesUploaded += n
        self.uploadRate.update(n)

    def sendExtended(self, name: str, payload: bytes) -> bool:
        """
        Queue a BEP 10 message for the peer's extension C{name}.

        @return: whether the peer supports it (nothing is queued if not).
        """
        if not self.open or not self.extended:
            return False
        peerId = self.peerExtensions.get(name)
        if peerId is None:
            return False
        self._queue(encodeMessage(Extended(peerId, payload)))
        return True

    def sendExtensionHandshake(self, fields: Dict[str, Any]) -> bool:
        """
        Queue our BEP 10 handshake: C{m} from our extensions, and C{fields}
        (C{p}, C{v}, C{reqq}, C{metadata_size}, C{yourip}...).

        @return: whether the peer speaks the extension protocol.
        """
        if not self.open or not self.extended:
            return False
        table = {name: ourId for name, ourId, _ in self.features.extensions}
        payload = bencode.encode({**fields, "m": table})
        self._queue(encodeMessage(Extended(0, payload)))
        return True

    def choke(self) -> None:
        """
        Choke the peer (nothing is sent if we already are).
        """
        if self.open and not self.amChoking:
            self.sendMessage(Choke())

    def unchoke(self) -> None:
        """
        Unchoke the peer (nothing is sent if it already is).
        """
        if self.open and self.amChoking:
            self.sendMessage(Unchoke())

    def setInterested(self, interested: bool) -> None:
        """
        Tell the peer whether we are interested (nothing is sent if that
        does not change).
        """
        if self.open and bool(interested) != self.amInterested:
            self.sendMessage(Interested() if interested else NotInterested())
