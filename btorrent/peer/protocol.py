"""
One connection to a peer: the handshake, message framing, per-connection
state, timers, and the factories for incoming and outgoing connections.

The protocol validates and the owner decides: L{PeerProtocol} checks every
message against the torrent (piece indexes, bitfield length, block sizes),
keeps the choke/interest flags and the peer's pieces up to date, and
reports each message to its owner (an L{IPeerOwner}, in practice the
torrent's C{Downloader}).  It never chooses what to request or whom to
unchoke.

Reporting rules, for owners:
  - C{owner.peerConnected(peer)} once the handshake is accepted; C{False}
    closes the connection and nothing more is reported about it.
  - C{owner.peerMessage(peer, message)} for every message after that,
    I{except} keep-alives (they only refresh the idle timer), duplicate
    C{Have}s (a piece already in C{peerPieces}), and a C{bitfield} that is
    not the first message: that one (aria2 sends them) is merged into
    C{peerPieces} and reported as one L{Have} per newly set piece.  So a
    L{BitfieldMessage} reaches the owner at most once, as the first message.
    C{peerPieces} and the flags are already updated when the owner hears of
    a message.
  - C{owner.peerLost(peer, reason)} exactly once, when the connection
    closes, if and only if C{peerConnected} returned C{True}.  C{reason} is
    a L{Failure}: L{PeerDropped} (with the reason text) when this side
    closed the connection, else what the transport reported.
  - For an outgoing connection, if the owner has a C{connectionFailed}
    method, C{owner.connectionFailed(address, reason)} is called once
    when the connection could not be made or closed before
    C{peerConnected} was called (C{address} is C{(host, port)}).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ClientFactory, Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btorrent.codec import wire
from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import (
    BLOCK_MAX,
    BLOCK_SIZE,
    HANDSHAKE_LENGTH,
    HANDSHAKE_PREFIX,
    KEEP_ALIVE,
    BitfieldMessage,
    Cancel,
    Choke,
    Handshake,
    Have,
    Interested,
    NotInterested,
    Piece,
    Request,
    Unchoke,
    WireError,
    decodeHandshake,
    decodeMessageAt,
    encodeHandshake,
    encodeMessage,
    encodePieceHeader,
)
from btorrent.engine.rate import RateMeter

__all__ = [
    "CONNECT_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "IDLE_TIMEOUT",
    "KEEPALIVE_BURST",
    "KEEPALIVE_INTERVAL",
    "PeerClientFactory",
    "PeerContext",
    "PeerDropped",
    "PeerFactory",
    "PeerProtocol",
    "maxMessageLength",
]

log = Logger()

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
#: The timeout to give C{connectTCP} (or an endpoint) for outgoing peers.
CONNECT_TIMEOUT = 15.0

_LENGTH = struct.Struct(">I")
_unpackLength = _LENGTH.unpack_from
# A whole request message: length prefix 13, id 6, index, begin, length.
_packRequest = struct.Struct(">IBIII").pack
# The pieces of a partial message kept as they came before the rest is
# gathered in one bytearray.
_MAX_PENDING_PIECES = 64
_EPSILON = 1e-6


def maxMessageLength(pieceCount: int) -> int:
    """
    The longest message a peer of a torrent of C{pieceCount} pieces may
    send: its bitfield, or a piece message with a block of the size we
    request (L{BLOCK_SIZE}); a longer length prefix closes the connection
    before anything is buffered.
    """
    return max(1 + (pieceCount + 7) // 8, 9 + BLOCK_SIZE, 13)


@dataclass(frozen=True)
class PeerContext:
    """
    What a connection needs to know about its torrent.

    @ivar infoHash: the torrent's 20-byte info-hash.
    @ivar peerId: our 20-byte peer id.
    @ivar pieceCount: the number of pieces.
    @ivar owner: the L{IPeerOwner} that hears about the connection.
    """

    infoHash: bytes
    peerId: bytes
    pieceCount: int
    owner: Any


class PeerDropped(Exception):
    """
    This side closed the connection; the argument says why.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "dropped"


def _hostPort(addr) -> Optional[Tuple[str, int]]:
    host = getattr(addr, "host", None)
    port = getattr(addr, "port", None)
    if host is None or port is None:
        return None
    return (host, port)


@implementer(IPushProducer)
class PeerProtocol(Protocol):
    """
    A connection to one peer.

    @ivar amChoking: we are choking the peer (initially C{True}).
    @ivar amInterested: we told the peer we are interested.
    @ivar peerChoking: the peer is choking us (initially C{True}).
    @ivar peerInterested: the peer is interested in us.
    @ivar peerPieces: the peer's pieces (a L{Bitfield}; C{None} until the
        handshake).
    @ivar peerId: the peer's id (C{None} until the handshake).
    @ivar peerReserved: the reserved bytes of the peer's handshake.
    @ivar address: C{(host, port)} of the peer.
    @ivar outgoing: C{True} if we connected to the peer.
    @ivar context: the L{PeerContext} (for incoming connections, known once
        the handshake is routed).
    @ivar downloadRate: a L{RateMeter} of block bytes received (see
        C{bytesDownloaded}).
    @ivar uploadRate: a L{RateMeter} of block bytes sent.
    @ivar bytesDownloaded: block bytes received in C{Piece} messages of a
        plausible shape: a block of 1 to L{BLOCK_SIZE} bytes.  Larger or
        empty blocks (junk: nobody requests them) are passed to the owner
        but not counted.  Whether a block was requested at all is the
        owner's question: an unrequested block of the right size is
        counted here, so the owner's own tally of accepted blocks is the
        one to trust.
    @ivar bytesUploaded: block bytes sent.
    @ivar writePaused: C{True} while the transport's send buffer is full;
        an owner should hold back block reads until it turns C{False} (an
        owner with a C{peerWritable(peer)} method is called then).
    @ivar debug: log every message in and out.
    @cvar reserved: the reserved bytes of our handshake.
    """

    reserved = bytes(8)

    def __init__(
        self,
        clock,
        context: Optional[PeerContext] = None,
        router=None,
        address: Optional[Tuple[str, int]] = None,
        debug: bool = False,
    ) -> None:
        """
        @param clock: an L{IReactorTime} for the timers and rates.
        @param context: the torrent, for an outgoing connection.
        @param router: an L{IPeerRouter}, for an incoming connection.
        @param address: C{(host, port)} of the peer, if known.
        @param debug: log every message in and out.
        """
        self.clock = clock
        self.context = context
        self.router = router
        self.outgoing = context is not None
        self.address = address
        self.debug = debug
        self.amChoking = True
        self.amInterested = False
        self.peerChoking = True
        self.peerInterested = False
        self.peerPieces: Optional[Bitfield] = None
        self.peerId: Optional[bytes] = None
        self.peerReserved: Optional[bytes] = None
        self.downloadRate = RateMeter(clock)
        self.uploadRate = RateMeter(clock)
        self.bytesDownloaded = 0
        self.bytesUploaded = 0
        #: When the handshake was accepted (clock seconds); the choker favours
        #: newly connected peers for its optimistic unchoke.
        self.connectedAt: Optional[float] = None
        self.writePaused = False
        self._handshaking = True
        self._handshakeBuffer = b""
        self._open = False  # handshake done, not dropped
        self._closed = False  # dropped, or the connection was lost
        self._dropReason: Optional[str] = None
        self._ownerCalled = False
        self._owned = False  # peerConnected returned True
        self._gotMessage = False  # any message but a keep-alive received
        self._sentMessage = False  # any message but a keep-alive sent
        self._pieceCount = 0
        self._maxLength = 0
        self._leftover = b""
        self._pending: list = []
        self._pendingSize = 0
        self._pendingNeed = 0
        self._timer = None
        self._lastReceived = 0.0
        self._lastSent = 0.0
        # A token bucket for keep-alives: tokens left, and when it was last
        # refilled (lazily, when it runs dry).
        self._keepAliveTokens = KEEPALIVE_BURST
        self._keepAliveRefilled = 0.0

    def __repr__(self) -> str:
        direction = "out" if self.outgoing else "in"
        return f"<PeerProtocol {self._peerName()} {direction}>"

    def _peerName(self) -> str:
        if self.address is None:
            return "?"
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    # Connection life.

    def connectionMade(self) -> None:
        """
        Send our handshake if we connected; start the handshake timer.
        """
        if self.address is None:
            self.address = _hostPort(self.transport.getPeer())
        # The transport's reads stay at Twisted's 64 KiB: 256 KiB reads
        # (transport.bufferSize) cost a little less CPU but made a 1 GiB
        # download from libtorrent about 1 s slower (median of 5 alternating
        # runs, 4.5 s against 3.5 s).
        try:
            self.transport.registerProducer(self, True)
        except RuntimeError:
            pass
        now = self.clock.seconds()
        self._lastReceived = self._lastSent = self._keepAliveRefilled = now
        self._timer = self.clock.callLater(HANDSHAKE_TIMEOUT, self._handshakeTimeout)
        if self.outgoing:
            self.transport.write(
                encodeHandshake(
                    Handshake(self.context.infoHash, self.context.peerId, self.reserved)
                )
            )

    def connectionLost(self, reason: Failure = None) -> None:
        """
        Stop the timers and tell the owner, once.
        """
        self._open = False
        self._closed = True
        self._clearBuffers()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._dropReason is not None:
            reason = Failure(PeerDropped(self._dropReason))
        elif reason is None:
            reason = Failure(PeerDropped("connection lost"))
        if self._owned:
            self._owned = False
            self.context.owner.peerLost(self, reason)
        elif self.outgoing and not self._ownerCalled:
            self._ownerCalled = True
            failed = getattr(self.context.owner, "connectionFailed", None)
            if failed is not None:
                failed(self.address, reason)

    def drop(self, reason: str) -> None:
        """
        Close the connection now, discarding anything unsent.

        @param reason: why, for the log and for C{peerLost}.
        """
        if self._closed:
            return
        log.debug("Dropping {peer}: {reason}", peer=self._peerName(), reason=reason)
        self._close(reason)

    def _protocolError(self, reason: str) -> None:
        """
        The peer broke the protocol: log one line and drop it.
        """
        if self._closed:
            return
        log.info("Dropping peer {peer}: {reason}", peer=self._peerName(), reason=reason)
        self._close(reason)

    def _close(self, reason: str, abort: bool = True) -> None:
        """
        Close the connection (aborting it unless C{abort} is false) and
        forget every buffered byte.
        """
        self._dropReason = reason
        self._open = False
        self._closed = True
        self._clearBuffers()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        # A registered producer would keep loseConnection from closing.
        if getattr(self.transport, "producer", None) is self:
            self.transport.unregisterProducer()
        abortConnection = getattr(self.transport, "abortConnection", None)
        if abort and abortConnection is not None:
            abortConnection()
        else:
            self.transport.loseConnection()

    def _clearBuffers(self) -> None:
        self._handshakeBuffer = b""
        self._leftover = b""
        self._pending = []
        self._pendingSize = 0
        self._pendingNeed = 0

    # Timers.

    def _handshakeTimeout(self) -> None:
        self._timer = None
        self._protocolError(f"no handshake within {HANDSHAKE_TIMEOUT:.0f} s")

    def _scheduleTick(self) -> None:
        deadline = min(
            self._lastSent + KEEPALIVE_INTERVAL, self._lastReceived + IDLE_TIMEOUT
        )
        self._timer = self.clock.callLater(
            max(deadline - self.clock.seconds(), 0.0), self._tick
        )

    def _tick(self) -> None:
        self._timer = None
        now = self.clock.seconds() + _EPSILON
        if now >= self._lastReceived + IDLE_TIMEOUT:
            self._protocolError(f"silent for {IDLE_TIMEOUT:.0f} s")
            return
        if now >= self._lastSent + KEEPALIVE_INTERVAL:
            self._sendKeepAlive()
        self._scheduleTick()

    # Receiving.

    def dataReceived(self, data: bytes) -> None:
        """
        Handshake first, then length-prefixed messages.
        """
        if self._closed:
            return
        self._lastReceived = self.clock.seconds()
        if self._handshaking:
            data = self._handshakeReceived(data)
            if not data or self._closed:
                return
        self._framesReceived(data)

    def _handshakeReceived(self, data: bytes) -> Optional[bytes]:
        """
        Collect and check the handshake.

        @return: the bytes after the handshake, or C{None}.
        """
        buf = self._handshakeBuffer + data
        n = min(len(buf), len(HANDSHAKE_PREFIX))
        if buf[:n] != HANDSHAKE_PREFIX[:n]:
            self._protocolError("not a BitTorrent handshake")
            return None
        if len(buf) < HANDSHAKE_LENGTH:
            self._handshakeBuffer = buf
            return None
        self._handshakeBuffer = b""
        handshake = decodeHandshake(buf[:HANDSHAKE_LENGTH])
        rest = buf[HANDSHAKE_LENGTH:]
        if self.outgoing:
            if handshake.infoHash != self.context.infoHash:
                self._protocolError("handshake for another info-hash")
                return None
        else:
            context = self.router.ownerFor(handshake.infoHash)
            if context is None:
                self._protocolError(
                    f"handshake for unknown info-hash {handshake.infoHash.hex()}"
                )
                return None
            self.context = context
        context = self.context
        if handshake.peerId == context.peerId:
            self._protocolError("connection to ourselves")
            return None
        self.peerId = handshake.peerId
        self.peerReserved = handshake.reserved
        self._pieceCount = context.pieceCount
        self.peerPieces = Bitfield(context.pieceCount)
        self._maxLength = maxMessageLength(context.pieceCount)
        self._handshaking = False
        self._open = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if not self.outgoing:
            self.transport.write(
                encodeHandshake(
                    Handshake(context.infoHash, context.peerId, self.reserved)
                )
            )
            self._lastSent = self.clock.seconds()
        self._scheduleTick()
        self._ownerCalled = True
        self.connectedAt = self.clock.seconds()
        if context.owner.peerConnected(self):
            self._owned = True
        else:
            if not self._closed:
                log.debug("{peer} refused by its torrent", peer=self._peerName())
                self._close("refused by the torrent", abort=False)
            return None
        return rest

    def _framesReceived(self, data: bytes) -> None:
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
                self._protocolError(
                    f"message of {length} bytes, longest allowed {maxLength}"
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
                if self.debug:
                    log.debug("{peer} -> KeepAlive()", peer=self._peerName())
                if self._keepAliveTokens:
                    self._keepAliveTokens -= 1
                elif not self._refillKeepAlives():
                    self._protocolError("keep-alive flood")
                    return
                continue
            try:
                message = decodeMessageAt(buf, offset + 4, stop)
            except WireError as e:
                self._protocolError(str(e))
                return
            offset = stop
            self._messageReceived(message)
            if self._closed:
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

    def _messageReceived(self, message) -> None:
        """
        Check one message against the torrent, update the connection's
        state, and hand it to the owner.
        """
        kind = type(message)
        if kind is Piece:
            if message.index >= self._pieceCount:
                self._protocolError(f"piece {message.index} out of range")
                return
            n = len(message.block)
            if 0 < n <= BLOCK_SIZE:
                self.bytesDownloaded += n
                self.downloadRate.update(n)
        elif kind is Have:
            index = message.index
            if index >= self._pieceCount:
                self._protocolError(f"have {index} out of range")
                return
            self._gotMessage = True
            if index in self.peerPieces:
                return
            self.peerPieces.add(index)
        elif kind is Request or kind is Cancel:
            if message.index >= self._pieceCount:
                self._protocolError(f"request for piece {message.index} out of range")
                return
            if not 0 < message.length <= BLOCK_MAX:
                self._protocolError(f"request for a block of {message.length} bytes")
                return
        elif kind is BitfieldMessage:
            try:
                bits = Bitfield.fromBytes(message.bits, self._pieceCount)
            except ValueError as e:
                self._protocolError(str(e))
                return
            if self._gotMessage:
                self._lateBitfield(bits)
                return
            self.peerPieces = bits
        elif kind is Choke:
            self.peerChoking = True
        elif kind is Unchoke:
            self.peerChoking = False
        elif kind is Interested:
            self.peerInterested = True
        elif kind is NotInterested:
            self.peerInterested = False
        self._gotMessage = True
        if self.debug:
            self._logReceived(message)
        self.context.owner.peerMessage(self, message)

    def _logReceived(self, message) -> None:
        """
        Log a message received, in debug mode.  A piece is logged by its
        block's length: the event must not hold the block (a download would
        log all of its bytes).
        """
        if type(message) is Piece:
            log.debug(
                "{peer} -> Piece({index}, {begin}, <{length} bytes>)",
                peer=self._peerName(),
                index=message.index,
                begin=message.begin,
                length=len(message.block),
            )
        else:
            log.debug(
                "{peer} -> {wireMessage}", peer=self._peerName(), wireMessage=message
            )

    def _lateBitfield(self, bits: Bitfield) -> None:
        """
        A bitfield after other messages: merge it, and report each piece it
        adds as a L{Have}.
        """
        if self.debug:
            log.debug(
                "{peer} -> late bitfield {bits!r}", peer=self._peerName(), bits=bits
            )
        pieces = self.peerPieces
        owner = self.context.owner
        # Only the new pieces are looked at one by one: a peer repeating
        # its bitfield costs a few word operations per message.
        for index in bits.difference(pieces):
            pieces.add(index)
            owner.peerMessage(self, Have(index))
            if self._closed:
                return

    # Sending.

    def _send(self, message, data: bytes) -> None:
        if self.debug:
            log.debug(
                "{peer} <- {wireMessage}", peer=self._peerName(), wireMessage=message
            )
        self._sentMessage = True
        self.transport.write(data)
        self._lastSent = self.clock.seconds()

    def sendMessage(self, message) -> None:
        """
        Send any message of L{btorrent.codec.wire}.  Choke, unchoke, interested
        and not-interested update our flags; a bitfield is subject to the
        rule of L{sendBitfield}; a piece goes out through L{sendPiece}.
        Nothing happens on a closed connection.
        """
        if not self._open:
            return
        kind = type(message)
        if kind is Piece:
            self.sendPiece(message.index, message.begin, message.block)
            return
        if kind is BitfieldMessage:
            self.sendBitfield(message.bits)
            return
        if kind is Choke:
            self.amChoking = True
        elif kind is Unchoke:
            self.amChoking = False
        elif kind is Interested:
            self.amInterested = True
        elif kind is NotInterested:
            self.amInterested = False
        elif kind is wire.KeepAlive:
            self._sendKeepAlive()
            return
        self._send(message, encodeMessage(message))

    def _sendKeepAlive(self) -> None:
        if self.debug:
            log.debug("{peer} <- KeepAlive()", peer=self._peerName())
        self.transport.write(encodeMessage(KEEP_ALIVE))
        self._lastSent = self.clock.seconds()

    def sendBitfield(self, bitfield: Union[Bitfield, bytes]) -> bool:
        """
        Send our pieces.  Allowed only as the first message after the
        handshake: a later call is refused (logged, nothing sent).  Whether
        to send one at all (not when we have nothing) is the owner's call.

        @param bitfield: a L{Bitfield} of the torrent's piece count, or its
            wire form.
        @return: C{True} if it was sent.
        @raise ValueError: for a bitfield of the wrong length.
        """
        if not self._open:
            return False
        if isinstance(bitfield, Bitfield):
            if len(bitfield) != self._pieceCount:
                raise ValueError(
                    f"bitfield of {len(bitfield)} pieces, torrent has "
                    f"{self._pieceCount}"
                )
            bits = bitfield.toBytes()
        else:
            Bitfield.fromBytes(bitfield, self._pieceCount)
            bits = bytes(bitfield)
        if self._sentMessage:
            log.warn(
                "Not sending a bitfield to {peer} after other messages",
                peer=self._peerName(),
            )
            return False
        message = BitfieldMessage(bits)
        self._send(message, encodeMessage(message))
        return True

    def sendHave(self, index: int) -> None:
        """
        Tell the peer we have piece C{index}.
        """
        if self._open:
            message = Have(index)
            self._send(message, encodeMessage(message))

    def sendRequest(self, index: int, begin: int, length: int) -> None:
        """
        Ask the peer for a block.
        """
        if self._open:
            message = Request(index, begin, length)
            self._send(message, encodeMessage(message))

    def sendRequests(self, blocks) -> None:
        """
        Ask the peer for several blocks in one write.

        @param blocks: a sequence of C{(index, begin, length)}.
        """
        if not self._open or not blocks:
            return
        data = b"".join(
            [
                _packRequest(13, 6, index, begin, length)
                for index, begin, length in blocks
            ]
        )
        if self.debug:
            peer = self._peerName()
            for index, begin, length in blocks:
                log.debug(
                    "{peer} <- {wireMessage}",
                    peer=peer,
                    wireMessage=Request(index, begin, length),
                )
        self._sentMessage = True
        self.transport.write(data)
        self._lastSent = self.clock.seconds()

    def sendCancel(self, index: int, begin: int, length: int) -> None:
        """
        Withdraw a request.
        """
        if self._open:
            message = Cancel(index, begin, length)
            self._send(message, encodeMessage(message))

    def sendPiece(self, index: int, begin: int, data: bytes) -> None:
        """
        Send a block: the 13-byte header and C{data} are written as a
        sequence, so the block is not copied into a message.

        @param data: the block; C{bytes}, or a C{memoryview} (of a cached
            piece, say), which is turned into C{bytes} here because Twisted's
            TCP transports accept nothing else.
        """
        if not self._open:
            return
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        if self.debug:
            log.debug(
                "{peer} <- Piece({index}, {begin}, <{length} bytes>)",
                peer=self._peerName(),
                index=index,
                begin=begin,
                length=n,
            )
        self._sentMessage = True
        self.transport.writeSequence((encodePieceHeader(index, begin, n), data))
        self._lastSent = self.clock.seconds()
        self.bytesUploaded += n
        self.uploadRate.update(n)

    def choke(self) -> None:
        """
        Choke the peer (nothing is sent if we already are).
        """
        if self._open and not self.amChoking:
            self.sendMessage(Choke())

    def unchoke(self) -> None:
        """
        Unchoke the peer (nothing is sent if it already is).
        """
        if self._open and self.amChoking:
            self.sendMessage(Unchoke())

    def setInterested(self, interested: bool) -> None:
        """
        Tell the peer whether we are interested (nothing is sent if that
        does not change).
        """
        if self._open and bool(interested) != self.amInterested:
            self.sendMessage(Interested() if interested else NotInterested())

    # IPushProducer: the transport tells us when its send buffer fills.

    def pauseProducing(self) -> None:
        """
        The transport's send buffer is full.
        """
        self.writePaused = True

    def resumeProducing(self) -> None:
        """
        The transport's send buffer drained.
        """
        self.writePaused = False
        if self._owned:
            writable = getattr(self.context.owner, "peerWritable", None)
            if writable is not None:
                writable(self)

    def stopProducing(self) -> None:
        """
        The transport is going away.
        """


class PeerFactory(ServerFactory):
    """
    Builds L{PeerProtocol}s for incoming connections; each routes its
    handshake by info-hash through C{router}.
    """

    def __init__(self, router, clock, debug: bool = False) -> None:
        """
        @param router: an L{IPeerRouter}.
        @param clock: an L{IReactorTime} for the timers.
        @param debug: log every message in and out.
        """
        self.router = router
        self.clock = clock
        self.debug = debug

    def buildProtocol(self, addr) -> PeerProtocol:
        """
        A protocol for a peer that connected to us from C{addr}.
        """
        p = PeerProtocol(
            self.clock, router=self.router, address=_hostPort(addr), debug=self.debug
        )
        p.factory = self
        return p


class PeerClientFactory(ClientFactory):
    """
    Builds the L{PeerProtocol} for an outgoing connection of one torrent.

    Use with C{reactor.connectTCP(host, port, factory,
    timeout=CONNECT_TIMEOUT)}: a failed connection is reported to the
    owner's C{connectionFailed(address, reason)} if it has one.  (With an
    endpoint, the failure comes back as the endpoint's L{Deferred}
    instead.)
    """

    def __init__(
        self,
        context: PeerContext,
        clock,
        debug: bool = False,
        address: Optional[Tuple[str, int]] = None,
    ) -> None:
        """
        @param context: the torrent.
        @param clock: an L{IReactorTime} for the timers.
        @param debug: log every message in and out.
        @param address: C{(host, port)} we connect to, as the owner names it
            (default: the connector's destination).
        """
        self.context = context
        self.clock = clock
        self.debug = debug
        self.address = address

    def buildProtocol(self, addr) -> PeerProtocol:
        """
        The protocol for the connection to C{addr}.
        """
        p = PeerProtocol(
            self.clock,
            context=self.context,
            address=self.address or _hostPort(addr),
            debug=self.debug,
        )
        p.factory = self
        return p

    def clientConnectionFailed(self, connector, reason: Failure) -> None:
        """
        Tell the owner, if it wants to know.
        """
        address = self.address or _hostPort(connector.getDestination())
        log.debug(
            "Connection to {address} failed: {reason}",
            address=address,
            reason=reason.getErrorMessage(),
        )
        failed = getattr(self.context.owner, "connectionFailed", None)
        if failed is not None:
            failed(address, reason)
