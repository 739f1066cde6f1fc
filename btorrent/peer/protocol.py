"""
The Twisted side of a peer connection: L{PeerProtocol} feeds what the
transport reads to a L{PeerConnection}, writes what it queues, routes the
handshake, and hands the events to the torrent's owner; the factories for
incoming and outgoing connections.

Everything a connection decides (framing, validation, flags, deadlines) is
L{btorrent.peer.connection}'s; this module only moves bytes and events.

Reporting rules, for owners (an L{IPeerOwner}, in practice the torrent's
C{Downloader}):
  - C{owner.peerConnected(peer)} once the handshake is accepted (incoming:
    after our handshake reply was written, so the owner may C{sendBitfield}
    right there); C{False} closes the connection and nothing more is
    reported about it.
  - C{owner.peerMessage(peer, event)} for every event after that: the
    messages of L{btorrent.codec.wire} and the extension events of
    L{btorrent.peer.connection}, with the rules written there (no
    keep-alives, no duplicate C{Have}s, a late bitfield as C{Have}s),
    except C{Piece}s: those between two other messages of a read come in
    one C{owner.peerBlocks(peer, blocks)} call, in their place in the
    order.  C{peerPieces} and the flags are already updated when the owner
    hears of a message.
  - C{owner.peerLost(peer, reason)} exactly once, when the connection
    closes, if and only if C{peerConnected} returned C{True}.  C{reason} is
    a L{Failure}: L{PeerDropped} (with the reason text) when this side
    closed the connection, else what the transport reported.
  - For an outgoing connection, if the owner has a C{connectionFailed}
    method, C{owner.connectionFailed(address, reason)} is called once
    when the connection could not be made or closed before
    C{peerConnected} was called (C{address} is C{(host, port)}).
  - C{owner.peerWritable(peer)}, if it has that method, when the
    transport's send buffer drained after L{PeerProtocol.writePaused} was
    set.
  - C{owner.peerChoked(peer)}, if it has that method, right after we
    choked the peer (with the Fast extension its queued requests are to
    be rejected).

Message stream encryption (L{btorrent.peer.encryption}): the factories wrap
the protocol they build in an MSE transport when told to
(L{PeerClientFactory.mseProvide}, L{PeerFactory.mseLookup}); the protocol
then sees the wrapper as its transport, and L{PeerProtocol.isEncrypted}
says whether the stream is RC4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union
from weakref import WeakSet

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ClientFactory, Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import (
    Choke,
    Have,
    Interested,
    KeepAlive,
    NotInterested,
    Piece,
    RejectRequest,
    Request,
    Unchoke,
)
from btorrent.peer.connection import (
    HANDSHAKE_TIMEOUT,
    IDLE_TIMEOUT,
    KEEPALIVE_BURST,
    KEEPALIVE_INTERVAL,
    Features,
    HandshakeReceived,
    PeerConnection,
    Violation,
    maxMessageLength,
)
from btorrent.peer.encryption import DEFAULT as DEFAULT_ENCRYPTION
from btorrent.peer.encryption import wrapIncoming, wrapOutgoing
from btorrent.peer.framer import setBufferSizes
from btorrent.util import logs
from btorrent.util.heartbeat import Heartbeat

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

log = Logger(observer=logs.observer)

_CHOKE = Choke()
_UNCHOKE = Unchoke()
_INTERESTED = Interested()
_NOT_INTERESTED = NotInterested()

#: The timeout to give C{connectTCP} (or an endpoint) for outgoing peers.
CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class PeerContext:
    """
    What a connection needs to know about its torrent.

    @ivar infoHash: the torrent's 20-byte info-hash.
    @ivar peerId: our 20-byte peer id.
    @ivar pieceCount: the number of pieces (C{None} while the torrent's
        metadata is unknown).
    @ivar owner: the L{IPeerOwner} that hears about the connection.
    @ivar features: the extensions we offer (L{Features}).
    """

    infoHash: bytes
    peerId: bytes
    pieceCount: Optional[int]
    owner: Any
    features: Features = Features()


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


def _delegate(name: str, doc: str) -> property:
    """
    A read-only attribute of the protocol that is its connection's.
    """

    def get(self):
        return getattr(self.connection, name)

    return property(get, doc=doc)


@implementer(IPushProducer)
class PeerProtocol(Protocol):
    """
    A connection to one peer, as a Twisted protocol around a
    L{PeerConnection} (L{connection}).

    The state a torrent reads (C{amChoking}, C{peerPieces}, the rates...)
    is the connection's, read through this object.

    @ivar address: C{(host, port)} of the peer.
    @ivar outgoing: C{True} if we connected to the peer.
    @ivar context: the L{PeerContext} (for incoming connections, known once
        the handshake is routed).
    @ivar writePaused: C{True} while the transport's send buffer is full;
        an owner should hold back block reads until it turns C{False} (an
        owner with a C{peerWritable(peer)} method is called then).
    @ivar debug: log every message in and out.
    @ivar connectedAt: when the handshake was accepted (clock seconds).
    """

    amChoking = _delegate("amChoking", "We are choking the peer.")
    amInterested = _delegate("amInterested", "We told the peer we want pieces.")
    peerChoking = _delegate("peerChoking", "The peer is choking us.")
    peerInterested = _delegate("peerInterested", "The peer wants our pieces.")
    peerPieces = _delegate("peerPieces", "The peer's pieces (a L{Bitfield}).")
    peerId = _delegate("peerId", "The peer's id, once its handshake came.")
    peerReserved = _delegate("peerReserved", "The reserved bytes of its handshake.")
    downloadRate = _delegate("downloadRate", "Block bytes/s from the peer.")
    uploadRate = _delegate("uploadRate", "Block bytes/s to the peer.")
    bytesDownloaded = _delegate("bytesDownloaded", "Block bytes received.")
    bytesUploaded = _delegate("bytesUploaded", "Block bytes sent.")
    fast = _delegate("fast", "Both sides offered the Fast extension.")
    peerDHT = _delegate("peerDHT", "The peer runs a DHT (reserved bit).")
    extended = _delegate("extended", "Both sides offered BEP 10 extensions.")
    peerExtensions = _delegate("peerExtensions", "The peer's BEP 10 ids by name.")

    def __init__(
        self,
        clock,
        context: Optional[PeerContext] = None,
        router=None,
        address: Optional[Tuple[str, int]] = None,
        debug: bool = False,
        heartbeat: Optional[Heartbeat] = None,
        peerId: Optional[bytes] = None,
        features: Features = Features(),
    ) -> None:
        """
        @param clock: an L{IReactorTime} for the deadlines and rates.
        @param context: the torrent, for an outgoing connection.
        @param router: an L{IPeerRouter}, for an incoming connection.
        @param address: C{(host, port)} of the peer, if known.
        @param debug: log every message in and out.
        @param heartbeat: the session's L{Heartbeat} that checks the
            deadlines (by default one of this connection's own).
        @param peerId: our peer id, for an incoming connection (an outgoing
            one takes the context's).
        @param features: what we offer on an incoming connection before it
            is routed (an outgoing one takes the context's).
        """
        self.clock = clock
        self.context = context
        self.router = router
        self.outgoing = context is not None
        self.address = address
        self.debug = debug
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat(clock)
        self.connectedAt: Optional[float] = None
        self.writePaused = False
        if context is not None:
            self.connection = PeerConnection(
                clock,
                context.peerId,
                context.features,
                infoHash=context.infoHash,
                pieceCount=context.pieceCount,
            )
        else:
            self.connection = PeerConnection(clock, peerId or bytes(20), features)
        self._owned = False  # peerConnected returned True
        self._ownerCalled = False
        self._dropReason: Optional[str] = None
        self._closed = False  # dropped, or the connection was lost

    @property
    def isEncrypted(self) -> bool:
        """
        Whether the connection is RC4-encrypted (MSE); C{False} for a plain
        connection, and for MSE that chose plaintext.
        """
        return bool(getattr(self.transport, "isEncrypted", False))

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
        Start the connection (an outgoing one sends its handshake) and check
        its deadlines on every heartbeat.
        """
        if self.address is None:
            self.address = _hostPort(self.transport.getPeer())
        setBufferSizes(self.transport)
        try:
            self.transport.registerProducer(self, True)
        except RuntimeError:
            pass
        self.connection.reportKeepAlives = self.debug
        self.connection.start()
        self.heartbeat.subscribe(self, self._beat)
        self._flush()

    def _beat(self, now: float) -> None:
        events = self.connection.tick(now)
        if events:
            self._dispatch(events)
        self._flush()

    def connectionLost(self, reason: Failure = None) -> None:
        """
        Stop checking deadlines and tell the owner, once.
        """
        self._closed = True
        self.heartbeat.unsubscribe(self)
        self.connection.close()
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
        Close the connection (aborting it unless C{abort} is false).
        """
        self._dropReason = reason
        self._closed = True
        self.connection.close()
        self.heartbeat.unsubscribe(self)
        # A registered producer would keep loseConnection from closing.
        if getattr(self.transport, "producer", None) is self:
            self.transport.unregisterProducer()
        abortConnection = getattr(self.transport, "abortConnection", None)
        if abort and abortConnection is not None:
            abortConnection()
        else:
            self.transport.loseConnection()

    # Receiving.

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the connection; act on its events; write what it queued.
        """
        events = self.connection.receiveData(data)
        if events:
            self._dispatch(events)
        self._flush()

    def _dispatch(self, events) -> None:
        """
        Hand the events of one read to the owner: the blocks between two
        other messages in one L{IPeerOwner.peerBlocks} call, anything else
        one L{IPeerOwner.peerMessage} call each, in the order they came.
        """
        owner = self.context.owner if self._owned else None
        debug = self.debug
        blocks: list = []
        for event in events:
            if self._closed:
                return
            kind = type(event)
            if kind is Piece:
                if debug:
                    self._logReceived(event)
                blocks.append(event)
                continue
            if blocks:
                owner.peerBlocks(self, blocks)
                blocks = []
                if self._closed:
                    return
            if kind is Violation:
                self._protocolError(event.reason)
                return
            if kind is HandshakeReceived:
                self._handshakeReceived(event)
                return
            if debug:
                self._logReceived(event)
                if kind is KeepAlive:
                    continue
            owner.peerMessage(self, event)
        if blocks and not self._closed:
            owner.peerBlocks(self, blocks)

    def _handshakeReceived(self, handshake: HandshakeReceived) -> None:
        """
        Route an incoming handshake to its torrent, accept it, tell the
        owner, then go on with what followed it.
        """
        connection = self.connection
        if not self.outgoing:
            context = self.router.ownerFor(handshake.infoHash)
            if context is None:
                self._protocolError(
                    f"handshake for unknown info-hash {handshake.infoHash.hex()}"
                )
                return
            if handshake.peerId == context.peerId:
                self._protocolError("connection to ourselves")
                return
            skey = getattr(self.transport, "infoHash", None)
            if isinstance(skey, bytes) and skey != handshake.infoHash:
                self._protocolError(
                    "handshake for another info-hash than its MSE handshake"
                )
                return
            self.context = context
            connection.features = context.features
            connection.ourPeerId = context.peerId
            connection.accept(context.infoHash, context.pieceCount)
            # Our handshake goes out before the owner may send anything.
            self._flush()
        else:
            connection.accept()
        self._ownerCalled = True
        self.connectedAt = self.clock.seconds()
        if not self.context.owner.peerConnected(self):
            if not self._closed:
                log.debug("{peer} refused by its torrent", peer=self._peerName())
                self._close("refused by the torrent", abort=False)
            return
        self._owned = True
        events = connection.resume()
        if events:
            self._dispatch(events)

    def _logReceived(self, event) -> None:
        """
        Log a message received, in debug mode.  A piece is logged by its
        block's length: the event must not hold the block (a download would
        log all of its bytes).
        """
        if type(event) is KeepAlive:
            log.debug("{peer} -> KeepAlive()", peer=self._peerName())
        elif type(event) is Piece:
            log.debug(
                "{peer} -> Piece({index}, {begin}, <{length} bytes>)",
                peer=self._peerName(),
                index=event.index,
                begin=event.begin,
                length=len(event.block),
            )
        else:
            log.debug(
                "{peer} -> {wireMessage}", peer=self._peerName(), wireMessage=event
            )

    # Sending.

    def _flush(self) -> None:
        chunks = self.connection.dataToSend()
        if not chunks or self._closed:
            return
        if len(chunks) == 1:
            self.transport.write(chunks[0])
        else:
            self.transport.writeSequence(chunks)

    def _logSent(self, message) -> None:
        log.debug("{peer} <- {wireMessage}", peer=self._peerName(), wireMessage=message)

    def sendMessage(self, message) -> None:
        """
        Send any message of L{btorrent.codec.wire} (see
        L{PeerConnection.sendMessage}).
        """
        if self.debug and self.connection.open and type(message) is not Piece:
            self._logSent(message)
        self.connection.sendMessage(message)
        self._flush()

    def sendBitfield(self, bitfield: Union[Bitfield, bytes]) -> bool:
        """
        Send our pieces: allowed only as the first message after the
        handshake (a later call is refused, logged, and returns C{False}).
        Whether to send one at all is the owner's call.

        @raise ValueError: for a bitfield of the wrong length.
        """
        if not self.connection.open:
            return False
        if not self.connection.sendBitfield(bitfield):
            log.warn(
                "Not sending a bitfield to {peer} after other messages",
                peer=self._peerName(),
            )
            return False
        if self.debug:
            self._logSent("bitfield")
        self._flush()
        return True

    def sendHave(self, index: int) -> None:
        """
        Tell the peer we have piece C{index}.
        """
        if self.debug and self.connection.open:
            self._logSent(Have(index))
        self.connection.sendHave(index)
        self._flush()

    def sendRequest(self, index: int, begin: int, length: int) -> None:
        """
        Ask the peer for a block.
        """
        self.sendRequests([(index, begin, length)])

    def sendRequests(self, blocks) -> None:
        """
        Ask the peer for several blocks in one write.

        @param blocks: a sequence of C{(index, begin, length)}.
        """
        if self.debug and self.connection.open:
            for block in blocks:
                self._logSent(Request(*block))
        self.connection.sendRequests(blocks)
        self._flush()

    def sendCancel(self, index: int, begin: int, length: int) -> None:
        """
        Withdraw a request.
        """
        self.connection.sendCancel(index, begin, length)
        self._flush()

    def sendReject(self, index: int, begin: int, length: int) -> None:
        """
        Refuse a request (only with the Fast extension).
        """
        connection = self.connection
        if self.debug and connection.open and connection.fast:
            self._logSent(RejectRequest(index, begin, length))
        connection.sendReject(index, begin, length)
        self._flush()

    def sendPiece(self, index: int, begin: int, data) -> None:
        """
        Send a block: the 13-byte header and C{data} are written as a
        sequence, so the block is not copied into a message.
        """
        if self.debug and self.connection.open:
            log.debug(
                "{peer} <- Piece({index}, {begin}, <{length} bytes>)",
                peer=self._peerName(),
                index=index,
                begin=begin,
                length=len(data),
            )
        self.connection.sendPiece(index, begin, data)
        self._flush()

    def sendExtended(self, name: str, payload: bytes) -> bool:
        """
        Send a BEP 10 message for the peer's extension C{name}.

        @return: whether the peer supports it.
        """
        sent = self.connection.sendExtended(name, payload)
        self._flush()
        return sent

    def sendExtensionHandshake(self, fields) -> bool:
        """
        Send our BEP 10 handshake with C{fields} besides C{m}.

        @return: whether the peer speaks the extension protocol.
        """
        sent = self.connection.sendExtensionHandshake(fields)
        self._flush()
        return sent

    def choke(self) -> None:
        """
        Choke the peer (nothing is sent if we already are).
        """
        if self.connection.open and not self.connection.amChoking:
            self.sendMessage(_CHOKE)
            if self._owned:
                choked = getattr(self.context.owner, "peerChoked", None)
                if choked is not None:
                    choked(self)

    def unchoke(self) -> None:
        """
        Unchoke the peer (nothing is sent if it already is).
        """
        if self.connection.open and self.connection.amChoking:
            self.sendMessage(_UNCHOKE)

    def setInterested(self, interested: bool) -> None:
        """
        Tell the peer whether we are interested (nothing is sent if that
        does not change).
        """
        connection = self.connection
        if connection.open and bool(interested) != connection.amInterested:
            self.sendMessage(_INTERESTED if interested else _NOT_INTERESTED)

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

    @ivar mseLookup: C{None} (plain connections only), or the MSE lookup
        (C{HASH('req2', SKEY) -> infoHash | None}): every connection is
        then wrapped to take a plain handshake or MSE as L{encryption}
        says.
    @ivar encryption: the policy (L{btorrent.peer.encryption.MODES}).
    @ivar mseRunInThread: C{runInThread(f, *args) -> Deferred} for RC4 off
        the reactor thread, or C{None}.
    """

    mseLookup = None
    encryption = DEFAULT_ENCRYPTION
    mseRunInThread = None
    _wrappers = None

    def __init__(
        self, router, clock, debug: bool = False, heartbeat: Optional[Heartbeat] = None
    ) -> None:
        """
        @param router: an L{IPeerRouter}.
        @param clock: an L{IReactorTime} for the deadlines.
        @param debug: log every message in and out.
        @param heartbeat: the session's L{Heartbeat} (by default each
            connection has its own).
        """
        self.router = router
        self.clock = clock
        self.debug = debug
        self.heartbeat = heartbeat

    def buildProtocol(self, addr) -> PeerProtocol:
        """
        A protocol for a peer that connected to us from C{addr}.
        """
        p = PeerProtocol(
            self.clock,
            router=self.router,
            address=_hostPort(addr),
            debug=self.debug,
            heartbeat=self.heartbeat,
            peerId=getattr(self.router, "peerId", None),
        )
        p.factory = self
        if self.mseLookup is not None:
            wrapper = wrapIncoming(
                p,
                self.clock,
                self.mseLookup,
                self.encryption,
                runInThread=self.mseRunInThread,
            )
            if self._wrappers is None:
                self._wrappers = WeakSet()
            self._wrappers.add(wrapper)
            return wrapper
        return p

    def stopFactory(self) -> None:
        """
        We stopped listening: abort the connections still in their MSE
        handshake (no torrent owns them yet; their deadline must not
        outlive the session).
        """
        wrappers, self._wrappers = self._wrappers or (), None
        for wrapper in list(wrappers):
            wrapper.abortHandshake()


class PeerClientFactory(ClientFactory):
    """
    Builds the L{PeerProtocol} for an outgoing connection of one torrent.

    Use with C{reactor.connectTCP(host, port, factory,
    timeout=CONNECT_TIMEOUT)}: a failed connection is reported to the
    owner's C{connectionFailed(address, reason)} if it has one.  (With an
    endpoint, the failure comes back as the endpoint's L{Deferred}
    instead.)

    @ivar mseProvide: C{None} to connect in plaintext, else the MSE
        methods to offer (L{btorrent.peer.encryption.outgoingProvide}):
        the protocol is then wrapped in an MSE initiator.
    @ivar mseRunInThread: C{runInThread(f, *args) -> Deferred} for RC4 off
        the reactor thread, or C{None}.
    @ivar built: the protocol built last (the wrapper, if any).
    """

    mseProvide: Optional[int] = None
    mseRunInThread = None
    built = None

    def __init__(
        self,
        context: PeerContext,
        clock,
        debug: bool = False,
        address: Optional[Tuple[str, int]] = None,
        heartbeat: Optional[Heartbeat] = None,
    ) -> None:
        """
        @param context: the torrent.
        @param clock: an L{IReactorTime} for the deadlines.
        @param debug: log every message in and out.
        @param address: C{(host, port)} we connect to, as the owner names it
            (default: the connector's destination).
        @param heartbeat: the session's L{Heartbeat}.
        """
        self.context = context
        self.clock = clock
        self.debug = debug
        self.address = address
        self.heartbeat = heartbeat

    def buildProtocol(self, addr) -> PeerProtocol:
        """
        The protocol for the connection to C{addr}.
        """
        p = PeerProtocol(
            self.clock,
            context=self.context,
            address=self.address or _hostPort(addr),
            debug=self.debug,
            heartbeat=self.heartbeat,
        )
        p.factory = self
        self.built = wrapOutgoing(
            p,
            self.clock,
            self.context.infoHash,
            self.mseProvide,
            runInThread=self.mseRunInThread,
        )
        return self.built

    @property
    def mseFailed(self) -> bool:
        """
        Whether the connection built last was MSE and its MSE handshake did
        not finish (the peer closed it, stalled or answered garbage).
        """
        return getattr(self.built, "handshakeError", None) is not None

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
