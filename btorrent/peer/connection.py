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

from btorrent.codec import wire
from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import (
    BLOCK_SIZE,
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
    Unchoke,
    encodeHandshake,
    encodeMessage,
    encodePieceHeader,
)
from btorrent.peer.dispatch import (
    MAX_EXTENSION_HANDSHAKE,
    ExtensionDispatch,
    ExtensionHandshake,
    ExtensionMessage,
)
from btorrent.peer.framer import KEEPALIVE_BURST, MessageFramer
from btorrent.peer.rules import MAX_PIECES_UNKNOWN, EarlyPieces, breach
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
#: Drop a connection whose handshake has not completed after this long.
HANDSHAKE_TIMEOUT = 20.0

# A whole request message: length prefix 13, id 6, index, begin, length.
_packRequest = struct.Struct(">IBIII").pack
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


def piecesMessage(bitfield, pieceCount: int, fast: bool):
    """
    The message that tells a peer our pieces: with the Fast extension a
    full or empty bitfield is C{HaveAll} or C{HaveNone}.

    @param bitfield: a L{Bitfield} of C{pieceCount} pieces, or its wire form.
    @raise ValueError: for a bitfield of the wrong length.
    """
    if isinstance(bitfield, Bitfield):
        if len(bitfield) != pieceCount:
            raise ValueError(
                f"bitfield of {len(bitfield)} pieces, torrent has {pieceCount}"
            )
    else:
        bitfield = Bitfield.fromBytes(bitfield, pieceCount)
    if fast and bitfield.complete:
        return HaveAll()
    if fast and not bitfield.count:
        return HaveNone()
    return BitfieldMessage(bitfield.toBytes())


@dataclass(frozen=True)
class HandshakeReceived:
    """
    The peer's handshake.
    """

    infoHash: bytes
    peerId: bytes
    reserved: bytes


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
        self.downloadRate = RateMeter(clock)
        self.uploadRate = RateMeter(clock)
        self.bytesDownloaded = 0
        self.bytesUploaded = 0
        self.open = False
        self.closed = False
        #: Our BEP 10 ids and the peer's (L{ExtensionDispatch}).
        self.extensions = ExtensionDispatch(features.extensions)
        #: Splits the stream after the handshake (L{MessageFramer}).
        self.framer = MessageFramer(clock)
        self._handshaking = True
        self._awaitingAccept = False
        self._gotMessage = False  # any message but a keep-alive received
        self._sentMessage = False  # any message but a keep-alive sent
        # What came after the handshake before it was accepted.
        self._leftover = b""
        # Pieces announced while the piece count is unknown (magnet links),
        # checked once the metadata gives the count.
        self._early = EarlyPieces()
        self._out: List[bytes] = []
        now = clock.seconds()
        self._started = now
        self._lastReceived = now
        self._lastSent = now

    @property
    def peerExtensions(self) -> Dict[str, int]:
        """
        The peer's BEP 10 ids, C{name -> id}.
        """
        return self.extensions.peerIds

    @property
    def reportKeepAlives(self) -> bool:
        """
        Report keep-alives as events too (for a debug log).
        """
        return self.framer.reportKeepAlives

    @reportKeepAlives.setter
    def reportKeepAlives(self, value: bool) -> None:
        self.framer.reportKeepAlives = value

    # Life.

    def start(self) -> None:
        """
        The transport is connected: the deadlines start, and an outgoing
        connection queues its handshake.
        """
        now = self.clock.seconds()
        self._started = self._lastReceived = self._lastSent = now
        self.framer.start(now)
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

    def _opened(self) -> None:
        self.extensions.offer(self.features.extensions)
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
        self.framer.maxLength = maxMessageLength(self.pieceCount, self.extensions.limit)

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
        self._leftover = b""
        self.framer.clear()
        self._early = EarlyPieces()

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
        self.framer.maxLength = maxMessageLength(pieceCount, self.extensions.limit)
        if not self.open:
            return events
        early, self._early = self._early, EarlyPieces()
        pieces, fault = early.resolve(pieceCount)
        if fault is not None:
            self._violation(fault, events)
            return events
        self.peerPieces = pieces
        if pieces.count:
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
        handshake, rest, fault = self.framer.feedHandshake(data)
        if fault is not None:
            self._violation(fault, events)
            return None
        if handshake is None:
            return None
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
        Split the stream into messages (L{MessageFramer}) and take each in
        order.  Blocks, the bulk of a download, are checked and counted
        here, their bytes added to the rate once per read.
        """
        messages, fault = self.framer.feed(data)
        received = self._messageReceived
        limit = MAX_PIECES_UNKNOWN if self.pieceCount is None else self.pieceCount
        blockBytes = 0
        for message in messages:
            if type(message) is Piece:
                if message.index >= limit:
                    self._violation(f"piece {message.index} out of range", events)
                    break
                n = len(message.block)
                if 0 < n <= BLOCK_SIZE:
                    blockBytes += n
                self._gotMessage = True
                events.append(message)
                continue
            received(message, events)
            if self.closed:
                break
        if blockBytes:
            self.bytesDownloaded += blockBytes
            self.downloadRate.update(blockBytes)
        if fault is not None:
            self._violation(fault, events)

    def _messageReceived(self, message, events: List[Any]) -> None:
        """
        Check one message (L{breach}, then against the state), apply it to
        the state, and add it to C{events}.
        """
        kind = type(message)
        if kind is Extended:
            # Not a message that orders the bitfield: libtorrent sends its
            # extended handshake before its bitfield (or have-all).
            self._extendedReceived(message, events)
            return
        fault = breach(message, self.pieceCount, self.fast)
        if fault is not None:
            self._violation(fault, events)
            return
        if kind is Have:
            self._gotMessage = True
            if self.peerPieces is None:
                self._early.have(message.index)
                return
            if message.index in self.peerPieces:
                return
            self.peerPieces.add(message.index)
        elif kind is BitfieldMessage:
            if not self._bitfieldReceived(message, events):
                return
        elif kind is HaveAll or kind is HaveNone:
            if self._gotMessage:
                self._violation("have-all/none after other messages", events)
                return
            if self.pieceCount is None:
                self._gotMessage = True
                self._early.haveAll = kind is HaveAll
                return
            if kind is HaveAll:
                self.peerPieces = Bitfield.full(self.pieceCount)
        elif kind is Choke or kind is Unchoke:
            self.peerChoking = kind is Choke
        elif kind is Interested or kind is NotInterested:
            self.peerInterested = kind is Interested
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
            self._early.bits = message.bits
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
        A BEP 10 message, for L{extensions} to name (see
        L{ExtensionDispatch.received}).
        """
        if not self.extended:
            self._violation("extension message without the extension bit", events)
            return
        event, fault = self.extensions.received(message)
        if fault is not None:
            self._violation(fault, events)
        elif event is not None:
            events.append(event)

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
        message = piecesMessage(bitfield, self.pieceCount, self.fast)
        if self._sentMessage:
            return False
        self._queue(encodeMessage(message))
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
        if self.open and blocks:
            self._queue(b"".join([_packRequest(13, 6, *block) for block in blocks]))

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
        message = self.extensions.messageFor(name, payload)
        if message is None:
            return False
        self._queue(encodeMessage(message))
        return True

    def sendExtensionHandshake(self, fields: Dict[str, Any]) -> bool:
        """
        Queue our BEP 10 handshake: C{m} from our extensions, and C{fields}
        (C{p}, C{v}, C{reqq}, C{metadata_size}, C{yourip}...).

        @return: whether the peer speaks the extension protocol.
        """
        if not self.open or not self.extended:
            return False
        self._queue(encodeMessage(self.extensions.handshake(fields)))
        return True
