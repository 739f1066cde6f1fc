"""
The coordinator of one torrent's peers: what every peer connection of a
torrent reports to (L{IPeerOwner}), wiring the parts that do the work.

  - L{btorrent.engine.dialer}: connection slots and dialing;
  - L{btorrent.engine.requests}: request pipelines, timeouts, endgame;
  - L{btorrent.engine.assembler}: piece assembly, hashing and writing;
  - L{btorrent.engine.uploader}: serving blocks;
  - L{btorrent.engine.smartban}: who sent bad data;
  - L{btorrent.engine.slots}: who gives way when the slots are full.

The coordinator keeps what they share: the connected peers and, per peer,
its pieces as counted in the picker's availability and our interest in it.
It never parses bytes and never chooses pieces.  Its events (L{events}):
C{pieceVerified(index)}, C{complete()}, C{peersChanged()},
C{pieceFailed(index)}.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional, Set, Tuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from btorrent.codec import wire
from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import BLOCK_SIZE
from btorrent.engine.assembler import MAX_PENDING_BYTES, MAX_VERIFY_JOBS, Assembler
from btorrent.engine.dialer import Dialer, isLocalAddress
from btorrent.engine.fastpeer import FastPeer, ourAllowedSet
from btorrent.engine.requests import (
    DEPTH_REFRESH,
    MAX_DEPTH,
    MIN_DEPTH,
    REQUEST_TIMEOUT,
    Requester,
    RequestQueue,
    requestDepth,
)
from btorrent.engine.slots import (
    QUIET_DEADLINE,
    USEFUL_MESSAGES,
    evictionCandidate,
    quietPeers,
)
from btorrent.engine.smartban import MAX_STRIKES, SmartBan, blockDigests
from btorrent.engine.storage import StorageError
from btorrent.engine.uploader import MAX_PEER_QUEUE, MAX_REQUEST_LENGTH, Uploader
from btorrent.interfaces import IPeerOwner
from btorrent.peer import encryption
from btorrent.peer.connection import ExtensionHandshake, ExtensionMessage, Features
from btorrent.peer.protocol import CONNECT_TIMEOUT
from btorrent.util.events import EventSource
from btorrent.util.heartbeat import Heartbeat
from btorrent.util.rate import RateMeter

__all__ = [
    "BLOCK_SIZE",
    "DEPTH_REFRESH",
    "MAX_DEPTH",
    "MAX_PEER_QUEUE",
    "MAX_PENDING_BYTES",
    "MAX_REQUEST_LENGTH",
    "MAX_STRIKES",
    "MAX_VERIFY_JOBS",
    "MIN_DEPTH",
    "REQUEST_TIMEOUT",
    "TICK",
    "Downloader",
    "PeerRecord",
    "Progress",
    "blockDigests",
    "isLocalAddress",
    "requestDepth",
]

#: Seconds between two housekeeping passes (timeouts, new connections).
TICK = 5.0

#: Seconds between two looks at a torrent with no peer and no address to
#: dial (ten thousand idle seeding torrents in one daemon).
IDLE_TICK = 60.0


@dataclass(frozen=True)
class Progress:
    """
    A snapshot of a download, for progress lines and bars.

    @ivar verifiedBytes: bytes of verified pieces on disk.
    @ivar totalBytes: the torrent's length.
    @ivar downloadRate: bytes/s received (blocks).
    @ivar uploadRate: bytes/s sent (blocks).
    @ivar peers: connected peers.
    @ivar eta: seconds left at the current rate, or C{None}.
    """

    verifiedBytes: int
    totalBytes: int
    downloadRate: float
    uploadRate: float
    peers: int
    eta: Optional[float]

    @property
    def percent(self) -> float:
        """
        The verified share of the torrent, 0 to 100.
        """
        if self.totalBytes == 0:
            return 100.0
        return 100.0 * self.verifiedBytes / self.totalBytes


class PeerRecord:
    """
    What the coordinator keeps about one connected peer.

    @ivar known: the pieces we counted in the picker's availability for it.
    @ivar wanted: how many of its pieces we still want.
    @ivar queue: our requests to it (the requester's).
    @ivar serving: its requests waiting for us (the uploader's).
    @ivar strikeKey: how smart ban names it: the address we dialled, or its
        peer id.
    @ivar connectedAt: when it was accepted.
    @ivar usefulAt: when it last sent one of L{USEFUL_MESSAGES} (C{None}:
        never).
    @ivar fast: its L{FastPeer} state when it speaks the Fast extension
        (BEP 6), else C{None}.
    """

    __slots__ = (
        "known",
        "wanted",
        "queue",
        "serving",
        "strikeKey",
        "connectedAt",
        "usefulAt",
        "fast",
    )

    def __init__(self, pieceCount: int, now: float, strikeKey: Any) -> None:
        self.known = Bitfield(pieceCount)
        self.wanted = 0
        self.queue = RequestQueue(now)
        self.serving: deque = deque()
        self.strikeKey = strikeKey
        self.connectedAt = now
        self.usefulAt: Optional[float] = None
        self.fast: Optional[FastPeer] = None


def _makeClientFactory(factoryClass, context, clock, debug, heartbeat, onEnd):
    """
    Build an outgoing peer factory that tells C{onEnd(connected)} when its
    connection attempt ends, connected or not.
    """

    class _Outgoing(factoryClass):
        def clientConnectionFailed(self, connector, reason):
            onEnd(False)

        def clientConnectionLost(self, connector, reason):
            onEnd(True)

    factory = _Outgoing(context, clock)
    factory.debug = debug
    factory.heartbeat = heartbeat
    return factory


@implementer(IPeerOwner)
class Downloader(Service):
    """
    Downloads and serves the pieces of one torrent.

    @ivar peers: the connected peers (handshake accepted), in order of
        arrival, each with its L{PeerRecord}.
    @ivar downloaded: bytes of verified pieces downloaded this session.
    @ivar events: the L{EventSource} of this torrent's download.
    @ivar extensions: BEP 10 extension handlers by name: each has
        C{messageReceived(peer, payload)} and may have
        C{peerConnected(peer)}, C{handshakeReceived(peer, fields)} and
        C{peerLost(peer)} (L{btorrent.interfaces.IPeerExtension}).
    @ivar quietDeadline: seconds after its handshake within which a peer
        must say something useful (L{btorrent.engine.slots}).
    @ivar features: what our connections offer (L{Features}); the Fast
        extension (BEP 6) by default.
    @ivar encryption: how we dial (L{btorrent.peer.encryption.MODES}):
        through MSE unless C{"tolerated"}; C{"preferred"} dials once more
        in plaintext when the MSE handshake fails.
    """

    log = Logger()

    def __init__(
        self,
        metainfo,
        picker,
        storage,
        runInThread: Callable[..., Deferred],
        clock,
        connector,
        peerId: bytes,
        listenPort: int = 0,
        maxPeers: int = 50,
        debug: bool = False,
        contextFactory: Optional[Callable[..., Any]] = None,
        clientFactoryClass: Optional[type] = None,
        bindAddress: Optional[str] = None,
        heartbeat: Optional[Heartbeat] = None,
        logFields: Optional[Dict[str, Any]] = None,
    ) -> None:
        """
        @param metainfo: the torrent's L{btorrent.codec.metainfo.Metainfo}.
        @param picker: an L{IPiecePicker} that already knows our pieces.
        @param storage: the torrent's L{IPieceStorage}, opened.
        @param runInThread: C{runInThread(f, *args)} runs C{f} off the
            reactor thread and returns a L{Deferred} of its result.
        @param clock: an C{IReactorTime}.
        @param connector: an C{IReactorTCP} for outgoing connections.
        @param peerId: our 20-byte peer id.
        @param listenPort: the port we listen on (to avoid dialling
            ourselves).
        @param maxPeers: connected peers at most.
        @param debug: log every peer message.
        @param contextFactory: builds the C{PeerContext} (defaults to
            L{btorrent.peer.protocol.PeerContext}).
        @param clientFactoryClass: the outgoing factory class (defaults to
            L{btorrent.peer.protocol.PeerClientFactory}).
        @param bindAddress: the local address outgoing connections are made
            from (the daemon's C{--interface}); any by default.
        @param heartbeat: the session's L{Heartbeat}: the housekeeping runs
            on it (by default, on one of this downloader's own).
        @param logFields: fields every log line of this torrent carries
            (C{infoHash}, C{name}).
        """
        self.metainfo = metainfo
        self.picker = picker
        self.storage = storage
        self.runInThread = runInThread
        self.clock = clock
        self.connector = connector
        self.peerId = peerId
        self.bindAddress = bindAddress or None
        self.debug = debug
        if contextFactory is None or clientFactoryClass is None:
            from btorrent.peer import protocol as _peer

            contextFactory = contextFactory or _peer.PeerContext
            clientFactoryClass = clientFactoryClass or _peer.PeerClientFactory
        self.contextFactory = contextFactory
        self.clientFactoryClass = clientFactoryClass
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat(clock)
        self.logFields = dict(logFields or {})
        self.pieceCount = metainfo.pieceCount
        self.peers: Dict[Any, PeerRecord] = {}
        self.downloaded = 0
        self.downloadRate = RateMeter(clock)
        self.events = EventSource()
        self.extensions: Dict[str, Any] = {}
        self.features = Features(fast=True)
        self.encryption = encryption.DEFAULT
        #: The session's DHT node (C{addNode}, C{boundPort}), or C{None}: a
        #: peer that runs a DHT hears our node's port (C{PORT}), and the
        #: node of a peer that tells us its port is pinged.
        self.dht = None
        self.smartBan = SmartBan()
        self.dialer = Dialer(
            clock,
            self._dial,
            maxPeers=maxPeers,
            listenPort=listenPort,
            banned=self.smartBan.banned,
        )
        self.assembler = Assembler(
            metainfo, storage, runInThread, self, isSuspect=self.smartBan.isSuspect
        )
        self.requester = Requester(
            picker, clock, lambda: self.assembler.full, self._queueOf
        )
        self.uploader = Uploader(
            metainfo,
            storage,
            runInThread,
            clock,
            picker.haveBitfield,
            lambda peer, record: self.peers.get(peer) is record,
            self._readFailed,
        )
        self._completeFired = False
        self._nextHousekeeping = 0.0
        self.quietDeadline = QUIET_DEADLINE
        self.verifiedBytes = sum(metainfo.pieceSize(i) for i in picker.haveBitfield)
        #: The download rate limiter (L{btorrent.engine.bandwidth}) while a
        #: limit applies, else C{None}: then no block is charged anywhere.
        self.downloadLimiter = None

    # Compatibility names for the parts' settings.

    @property
    def maxPeers(self) -> int:
        """
        Connected peers at most, whoever dialled.
        """
        return self.dialer.maxPeers

    @maxPeers.setter
    def maxPeers(self, value: int) -> None:
        self.dialer.maxPeers = value

    @property
    def listenPort(self) -> int:
        """
        The port we listen on.
        """
        return self.dialer.listenPort

    @listenPort.setter
    def listenPort(self, value: int) -> None:
        self.dialer.listenPort = value

    @property
    def requestTimeout(self) -> float:
        """
        Seconds without a block before a peer's requests go elsewhere.
        """
        return self.requester.requestTimeout

    @requestTimeout.setter
    def requestTimeout(self, value: float) -> None:
        self.requester.requestTimeout = value

    @property
    def maxPendingBytes(self) -> int:
        """
        Bytes waiting for their check above which nothing is requested.
        """
        return self.assembler.maxPendingBytes

    @maxPendingBytes.setter
    def maxPendingBytes(self, value: int) -> None:
        self.assembler.maxPendingBytes = value

    @property
    def pendingBytes(self) -> int:
        """
        Bytes of complete pieces waiting for their hash check and write.
        """
        return self.assembler.pendingBytes

    @property
    def uploaded(self) -> int:
        """
        Block bytes sent this session.
        """
        return self.uploader.uploaded

    @property
    def uploadRate(self) -> RateMeter:
        """
        The rate of block bytes sent.
        """
        return self.uploader.uploadRate

    def _log(self, level: str, text: str, **fields) -> None:
        getattr(self.log, level)(text, **self.logFields, **fields)

    # Service

    def startService(self) -> None:
        """
        Start connecting to peers and checking timeouts.
        """
        super().startService()
        self._completeFired = False
        self._nextHousekeeping = self.clock.seconds() + TICK
        self.heartbeat.subscribe(self, self.tick)
        self._checkComplete()
        self._connectMore()

    def stopService(self) -> Deferred:
        """
        Disconnect every peer, stop connecting, and wait for the pieces
        being checked and written.
        """
        super().stopService()
        self.heartbeat.unsubscribe(self)
        self.dialer.stop()
        for peer in list(self.peers):
            peer.drop("shutting down")
        self.uploader.clear()
        # Pieces half received are dropped with their buffers: the picker
        # must want their blocks again.
        for index in self.assembler.inFlight():
            self.picker.pieceFailed(index)
        return self.assembler.stop()

    def tick(self, now: float) -> float:
        """
        A heartbeat: every L{TICK} seconds, give the requests of silent
        peers to others and dial more peers.

        @return: when there is something to do next: the next housekeeping,
            or, with no peer and no one to dial, L{IDLE_TICK} seconds from
            now (a peer or an address arriving wakes it).
        """
        if now < self._nextHousekeeping:
            return self._nextHousekeeping
        dialer = self.dialer
        if not self.peers and not dialer.connecting and not dialer.candidates:
            self._nextHousekeeping = now + IDLE_TICK
            return self._nextHousekeeping
        self._nextHousekeeping = now + TICK
        self.checkTimeouts()
        for peer in quietPeers(self.peers.items(), now, self.quietDeadline):
            self._evict(
                peer,
                f"said nothing useful within {self.quietDeadline:.0f} s of its "
                f"handshake",
            )
        self._connectMore()
        return self._nextHousekeeping

    def _wake(self) -> None:
        """
        Something to look after arrived (a peer, an address): housekeeping
        again within L{TICK} seconds.
        """
        soon = self.clock.seconds() + TICK
        if self._nextHousekeeping > soon:
            self._nextHousekeeping = soon
            self.heartbeat.wake(self)

    # State

    @property
    def complete(self) -> bool:
        """
        Whether every wanted piece is verified and written.
        """
        return self.picker.complete

    @property
    def left(self) -> int:
        """
        Bytes of wanted pieces still missing.
        """
        return self.picker.missingBytes

    def progress(self) -> Progress:
        """
        A snapshot of the download (of the wanted pieces: C{totalBytes} is
        Transmission's C{sizeWhenDone}).
        """
        rate = self.downloadRate.rate
        left = self.left
        eta = None
        if left == 0:
            eta = 0.0
        elif rate > 0:
            eta = left / rate
        total = self.picker.sizeWhenDone
        return Progress(
            verifiedBytes=total - left,
            totalBytes=total,
            downloadRate=rate,
            uploadRate=self.uploadRate.rate,
            peers=len(self.peers),
            eta=eta,
        )

    def _checkComplete(self) -> None:
        if self.complete and not self._completeFired:
            self._completeFired = True
            for peer, record in list(self.peers.items()):
                if peer.amInterested:
                    peer.setInterested(False)
                if record.known.complete:
                    peer.drop("both complete")
            self.events.emit("complete")

    # Connections

    def addPeers(self, peers: Iterable[Tuple[str, int]]) -> None:
        """
        Peers learnt from a tracker (or given by hand): remember them and
        connect to as many as there are free slots.
        """
        self.dialer.add(peers)
        self._wake()
        self._connectMore()

    def _connectMore(self) -> None:
        if self.running:
            connected = {peer.address for peer in self.peers}
            self.dialer.connectMore(connected, self._completeFired)

    def _dial(
        self,
        address: Tuple[str, int],
        onEnd: Callable[..., None],
        plaintext: bool = False,
    ):
        """
        Connect to C{address} (through MSE unless C{plaintext} or our
        L{encryption} says otherwise); C{onEnd(handshaken)} when it ends,
        or C{onEnd(False, retryPlaintext=True)} when its MSE handshake
        failed and we may try plaintext.
        """
        host, port = address
        features = () if self.features is None else (self.features,)
        context = self.contextFactory(
            self.metainfo.infoHash, self.peerId, self.pieceCount, self, *features
        )
        handshaken = []
        provide = None if plaintext else encryption.outgoingProvide(self.encryption)

        def ended(connected: bool) -> None:
            if (
                not handshaken
                and provide is not None
                and encryption.fallsBackToPlaintext(self.encryption)
                and getattr(factory, "mseFailed", False)
            ):
                onEnd(False, retryPlaintext=True)
            else:
                onEnd(connected and bool(handshaken))
            if self.running:
                self._connectMore()

        factory = _makeClientFactory(
            self.clientFactoryClass,
            context,
            self.clock,
            self.debug,
            self.heartbeat,
            ended,
        )
        factory.address = factory.outgoingAddress = address
        factory.handshaken = handshaken
        factory.mseProvide = provide
        factory.mseRunInThread = self.runInThread
        kwargs = {}
        if self.bindAddress is not None:
            kwargs["bindAddress"] = (self.bindAddress, 0)
        return self.connector.connectTCP(
            host, port, factory, timeout=CONNECT_TIMEOUT, **kwargs
        )

    # IPeerOwner

    def peerConnected(self, peer, adopted: bool = False) -> bool:
        """
        Accept a peer unless it is us, a duplicate or banned, or we are
        full (L{maxPeers} connected, whichever side dialled) and no peer is
        idle enough to give way (L{btorrent.engine.slots}); send it our
        bitfield.

        @param adopted: the connection comes from another owner (a magnet
            link's metadata phase) and has sent messages already: our
            pieces go out as C{have}s (a bitfield may only come first).
        """
        if not self.running:
            return False
        if peer.peerId == self.peerId:
            self.log.debug("refusing a connection to ourselves")
            return False
        banned = self.smartBan.banned
        if peer.peerId in banned or peer.address in banned:
            return False
        factory = getattr(peer, "factory", None)
        outgoingAddress = getattr(factory, "outgoingAddress", None)
        evicted = None
        if len(self.peers) >= self.maxPeers:
            evicted = evictionCandidate(self.peers.items())
            if evicted is None:
                return False
        globalRoom = self.dialer.globalRoom
        if (
            evicted is None
            and outgoingAddress is None
            and globalRoom is not None
            and globalRoom() <= 0
        ):
            # The session's peer limit (a dial of ours holds its slot).
            return False
        for other in self.peers:
            if other.peerId == peer.peerId or other.address == peer.address:
                return False
        if outgoingAddress is not None:
            factory.handshaken.append(True)
            # Counted in self.peers now, no longer as a dial in progress.
            self.dialer.handshaken(outgoingAddress)
        strikeKey = outgoingAddress or peer.peerId
        record = PeerRecord(self.pieceCount, self.clock.seconds(), strikeKey)
        self.peers[peer] = record
        self._wake()
        have = self.picker.haveBitfield
        fast = getattr(peer, "fast", False)
        if adopted:
            # Its first message (Have None, with the Fast extension) went
            # out in the metadata phase: what we have since, as Haves.
            for index in have:
                peer.sendHave(index)
        elif have.count or fast:
            # With the Fast extension exactly one of bitfield, Have All and
            # Have None (the protocol picks), even when we have nothing.
            peer.sendBitfield(have)
        if fast:
            self._startFast(peer, record)
        dht = self.dht
        if dht is not None and getattr(peer, "peerDHT", False) and dht.boundPort:
            peer.sendMessage(wire.Port(dht.boundPort))
        encrypted = bool(getattr(peer, "isEncrypted", False))
        self._log(
            "info",
            "peer {host}:{port} connected ({peers} peers, {transport})",
            host=peer.address[0],
            port=peer.address[1],
            peers=len(self.peers),
            transport="encrypted" if encrypted else "plaintext",
            encrypted=encrypted,
        )
        # Pieces may have been announced between the handshake and now.
        if peer.peerPieces is not None and peer.peerPieces.count:
            record.usefulAt = record.connectedAt
            self._syncBitfield(peer, record)
        if evicted is not None:
            self._evict(evicted, "idle, and the slots are full: room for a newcomer")
        for extension in list(self.extensions.values()):
            connected = getattr(extension, "peerConnected", None)
            if connected is not None:
                connected(peer)
        self.events.emit("peersChanged")
        return True

    def _evict(self, peer, reason: str) -> None:
        """
        Drop C{peer} now and free its slot at once (its connection closes
        later).
        """
        self._log(
            "info",
            "peer {host}:{port} dropped: {reason}",
            host=peer.address[0],
            port=peer.address[1],
            reason=reason,
        )
        peer.drop(reason)
        self.peerLost(peer, reason)

    def peerLost(self, peer, reason) -> None:
        """
        Forget a peer: its pieces leave the availability, its requests go
        back to the picker.
        """
        record = self.peers.pop(peer, None)
        if record is None:
            return
        self.dialer.peerLeft(peer.address, record.known.complete)
        self.picker.removePeer(record.known)
        self.picker.abortPeer(peer)
        record.queue.requests.clear()
        record.serving.clear()
        for extension in self.extensions.values():
            lost = getattr(extension, "peerLost", None)
            if lost is not None:
                lost(peer)
        self._log(
            "info",
            "peer {host}:{port} gone ({peers} peers)",
            host=peer.address[0],
            port=peer.address[1],
            peers=len(self.peers),
        )
        self.events.emit("peersChanged")
        if self.running:
            self._fillAll()
            self._connectMore()

    def peerMessage(self, peer, message) -> None:
        """
        Act on a message from a peer.
        """
        record = self.peers.get(peer)
        if record is None:
            return
        kind = type(message)
        if kind in USEFUL_MESSAGES:
            record.usefulAt = self.clock.seconds()
        if kind is wire.Piece:
            self._gotBlock(peer, record, message)
        elif kind is wire.Have:
            self._gotHave(peer, record, message.index)
        elif kind is wire.Request:
            self._gotRequest(peer, record, message)
        elif kind is wire.Cancel:
            if (
                self.uploader.cancelReceived(
                    record, message.index, message.begin, message.length
                )
                and record.fast is not None
            ):
                # BEP 6: even a cancelled request gets its reject.
                peer.sendReject(message.index, message.begin, message.length)
        elif kind is wire.Unchoke:
            self.requester.fill(peer, record)
        elif kind is wire.Choke:
            if not getattr(peer, "fast", False):
                # Without the Fast extension a choke drops every request;
                # with it, each is answered by a piece or a reject.
                self.requester.returnAll(peer, record.queue)
                self._fillAll()
        elif kind is wire.RejectRequest:
            if not self.requester.rejected(
                peer, record.queue, message.index, message.begin, message.length
            ):
                peer.drop(f"rejected a request never made ({message.index})")
                return
            if record.fast is not None:
                record.fast.rejected(message.index, peer.peerChoking)
            self._fillAll()
        elif kind is wire.AllowedFast or kind is wire.SuggestPiece:
            self._fastHint(peer, record, message)
        elif kind is wire.BitfieldMessage or kind is wire.HaveAll:
            self._syncBitfield(peer, record)
        elif kind is wire.Interested or kind is wire.NotInterested:
            # The protocol keeps the flag; the choker may have a slot.
            self.events.emit("peersChanged")
        elif kind is wire.Port:
            if self.dht is not None and 0 < message.port < 65536:
                self.dht.addNode((peer.address[0], message.port))
        elif kind is ExtensionMessage:
            handler = self.extensions.get(message.name)
            if handler is not None:
                handler.messageReceived(peer, message.payload)
        elif kind is ExtensionHandshake:
            for handler in self.extensions.values():
                received = getattr(handler, "handshakeReceived", None)
                if received is not None:
                    received(peer, message.fields)

    # The Fast extension (BEP 6)

    def _startFast(self, peer, record: PeerRecord) -> None:
        """
        A peer speaks the Fast extension: keep its state, and send it our
        allowed-fast set (after our bitfield).
        """
        pieces = ourAllowedSet(
            peer.address[0], self.metainfo.infoHash, self.pieceCount, peer.peerPieces
        )
        record.fast = FastPeer(pieces)
        for index in pieces:
            peer.sendMessage(wire.AllowedFast(index))

    def _fastHint(self, peer, record: PeerRecord, message) -> None:
        """
        Allowed Fast (a piece we may ask for while the peer chokes us) or
        Suggest Piece (a piece to ask for first).
        """
        fast = record.fast
        if fast is None:
            return
        index = message.index
        if type(message) is wire.AllowedFast:
            if fast.allowedFast(index) and peer.peerChoking:
                self.requester.fill(peer, record)
        elif self.picker.isWanted(index):
            fast.suggest(index)

    def peerChoked(self, peer) -> None:
        """
        We choked C{peer}: its queued requests are rejected (Fast
        extension) or forgotten, but for its allowed-fast pieces.
        """
        record = self.peers.get(peer)
        if record is not None:
            self.uploader.choked(peer, record)

    # Availability and interest

    def _syncBitfield(self, peer, record: PeerRecord) -> None:
        self.picker.removePeer(record.known)
        record.known = peer.peerPieces.copy()
        self.picker.addPeer(record.known)
        theirs = int.from_bytes(record.known.toBytes(), "big")
        record.wanted = bin(theirs & self.picker.neededBits()).count("1")
        self._updateInterest(peer, record)
        if self._completeFired and record.known.complete:
            peer.drop("both complete")

    def _gotHave(self, peer, record: PeerRecord, index: int) -> None:
        if index in record.known:
            return
        record.known.add(index)
        self.picker.peerHas(index)
        if self.picker.isWanted(index):
            record.wanted += 1
            self._updateInterest(peer, record)
        if self._completeFired and record.known.complete:
            peer.drop("both complete")

    def wantedChanged(self) -> None:
        """
        The wanted pieces changed (file selection): count again what each
        peer has for us, tell it whether we are interested; complete now,
        or no longer (then dial seeds again).
        """
        needed = self.picker.neededBits()
        for peer, record in list(self.peers.items()):
            theirs = int.from_bytes(record.known.toBytes(), "big")
            record.wanted = bin(theirs & needed).count("1")
            self._updateInterest(peer, record)
        if self.complete:
            self._checkComplete()
        elif self._completeFired:
            self._completeFired = False
            self.dialer.retrySeeds()
            self._connectMore()

    def _updateInterest(self, peer, record: PeerRecord) -> None:
        interested = record.wanted > 0
        if interested != peer.amInterested:
            peer.setInterested(interested)
        if interested:
            self.requester.fill(peer, record)

    # Requests

    def _queueOf(self, peer) -> Optional[RequestQueue]:
        record = self.peers.get(peer)
        return record.queue if record is not None else None

    def _fillAll(self) -> None:
        fill = self.requester.fill
        for peer, record in list(self.peers.items()):
            fill(peer, record)

    def checkTimeouts(self) -> None:
        """
        Give the requests of peers silent for L{requestTimeout} seconds to
        other peers, and stop asking those peers for a while.
        """
        timedOut = self.requester.checkTimeouts(
            [(peer, record.queue) for peer, record in self.peers.items()]
        )
        for peer, seconds, count in timedOut:
            self._log(
                "info",
                "peer {host}:{port} sent nothing for {seconds:.0f} s: "
                "its {count} requests go to other peers",
                host=peer.address[0],
                port=peer.address[1],
                seconds=seconds,
                count=count,
            )
        if timedOut:
            self._fillAll()

    def _gotBlock(self, peer, record: PeerRecord, message) -> None:
        index, begin, block = message.index, message.begin, message.block
        length = len(block)
        verdict = self.requester.blockArrived(peer, record.queue, index, begin, length)
        if verdict is not None:
            if verdict:
                peer.drop(verdict)
            return
        self.downloadRate.update(length)
        limiter = self.downloadLimiter
        if limiter is not None:
            limiter.charge(peer, length)
        self.assembler.blockReceived(index, begin, block, record.strikeKey)
        self.requester.fill(peer, record)

    # What the assembler tells

    def pieceVerified(self, index: int, size: int, digests) -> None:
        """
        Piece C{index} passed its check and is written.
        """
        for key in self.smartBan.piecePassed(index, digests):
            self._ban(key)
        self.picker.have(index)
        self.downloaded += size
        self.verifiedBytes += size
        for peer, record in list(self.peers.items()):
            peer.sendHave(index)
            if record.fast is not None:
                record.fast.forget(index)
            if index in record.known:
                record.wanted -= 1
                if record.wanted <= 0 and peer.amInterested:
                    record.wanted = 0
                    peer.setInterested(False)
        self.events.emit("pieceVerified", index)
        self._checkComplete()

    def pieceFailed(self, index: int, senders: list, digests) -> None:
        """
        A piece failed its hash check: fetch it again; smart ban judges
        who sent it.
        """
        self._log(
            "warn",
            "piece {index} failed its hash check ({senders} peers took part)",
            index=index,
            senders=len(set(senders)),
        )
        self.picker.pieceFailed(index)
        for key in self.smartBan.pieceFailed(index, senders, digests):
            self._ban(key)
        self.events.emit("pieceFailed", index)

    def pieceLost(self, index: int, failure) -> None:
        """
        A piece could not be written: it is wanted again, and the torrent
        hears of it (an expected disk error is its error, not a bug here).
        """
        if failure.check(OSError, StorageError):
            self._log(
                "warn",
                "cannot write piece {index}: {error}",
                index=index,
                error=failure.getErrorMessage(),
            )
        else:
            self._log(
                "failure", "cannot write piece {index}", failure=failure, index=index
            )
        self.picker.pieceFailed(index)
        self.events.emit("writeFailed", index, failure)

    def jobsDone(self) -> None:
        """
        Checks finished: there may be room for requests.
        """
        if self.running:
            self._fillAll()

    def _ban(self, key) -> None:
        banned = self.smartBan.banned
        banned.add(key)
        if isinstance(key, tuple):
            self.dialer.forget(key)
        for peer, record in list(self.peers.items()):
            if record.strikeKey == key:
                banned.add(peer.peerId)
                banned.add(peer.address)
                self._log(
                    "warn",
                    "banning {host}:{port}: it sent {strikes} bad pieces",
                    host=peer.address[0],
                    port=peer.address[1],
                    strikes=self.smartBan.strikesAtBan.get(
                        key, self.smartBan.strikes.get(key, 0)
                    ),
                )
                peer.drop("sent bad pieces")

    # Serving

    def _gotRequest(self, peer, record: PeerRecord, message) -> None:
        index, begin, length = message.index, message.begin, message.length
        verdict = self.uploader.requestReceived(peer, record, index, begin, length)
        if verdict is None:
            return
        if verdict == "reject":
            if getattr(peer, "fast", False):
                peer.sendReject(index, begin, length)
            return
        peer.drop(verdict)

    def peerWritable(self, peer) -> None:
        """
        C{peer}'s send buffer drained: send what it is waiting for.
        """
        record = self.peers.get(peer)
        if record is not None and record.serving:
            self.uploader.serve(peer, record)

    def _readFailed(self, index: int, failure) -> None:
        """
        A piece we serve cannot be read (a file deleted, truncated or
        unreadable under us): its askers go, and the torrent hears of it
        (a local error is the torrent's, one line).
        """
        if failure.check(OSError, StorageError):
            self._log(
                "warn",
                "cannot read piece {index}: {error}",
                index=index,
                error=failure.getErrorMessage(),
            )
        else:
            self._log(
                "failure", "cannot read piece {index}", failure=failure, index=index
            )
        for peer, record in list(self.peers.items()):
            if any(r[0] == index for r in record.serving):
                peer.drop("cannot read a piece it asked for")
        self.events.emit("readFailed", index, failure)

    # Convenience for the choker and the session

    def connectedPeers(self) -> Set[Any]:
        """
        The connected peers.
        """
        return set(self.peers)
