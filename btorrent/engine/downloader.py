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
from btorrent.engine.assembler import MAX_PENDING_BYTES, MAX_VERIFY_JOBS
from btorrent.engine.dialer import Dialer, isLocalAddress
from btorrent.engine.fastpeer import FastPeer
from btorrent.engine.fetcher import Fetcher, logStorageFailure
from btorrent.engine.outgoing import Outgoing
from btorrent.engine.requests import (
    DEPTH_REFRESH,
    MAX_DEPTH,
    MIN_DEPTH,
    REQUEST_TIMEOUT,
    RequestQueue,
    requestDepth,
)
from btorrent.engine.slots import QUIET_DEADLINE, USEFUL_MESSAGES, admit, quietPeers
from btorrent.engine.smartban import MAX_STRIKES, SmartBan, blockDigests
from btorrent.engine.uploader import MAX_PEER_QUEUE, MAX_REQUEST_LENGTH, Uploader
from btorrent.interfaces import IPeerOwner
from btorrent.peer import encryption
from btorrent.peer.connection import ExtensionHandshake, ExtensionMessage, Features
from btorrent.util import logs
from btorrent.util.events import EventSource
from btorrent.util.heartbeat import Heartbeat

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

    @classmethod
    def of(cls, picker, rate: float, uploadRate: float, peers: int) -> Progress:
        """
        The progress of the wanted pieces of C{picker} (C{totalBytes} is
        Transmission's C{sizeWhenDone}) at download C{rate}.
        """
        left = picker.missingBytes
        eta = None
        if left == 0:
            eta = 0.0
        elif rate > 0:
            eta = left / rate
        total = picker.sizeWhenDone
        return cls(total - left, total, rate, uploadRate, peers, eta)

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


def _delegate(part: str, name: str, doc: str) -> property:
    """
    An attribute of the downloader that is one of its part's (settable).
    """

    def get(self):
        return getattr(getattr(self, part), name)

    def set(self, value) -> None:
        setattr(getattr(self, part), name, value)

    return property(get, set, doc=doc)


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

    log = Logger(observer=logs.observer)

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
        self.peerId = peerId
        self.debug = debug
        if contextFactory is None or clientFactoryClass is None:
            from btorrent.peer import protocol as _peer

            contextFactory = contextFactory or _peer.PeerContext
            clientFactoryClass = clientFactoryClass or _peer.PeerClientFactory
        self.contextFactory = contextFactory
        self.clientFactoryClass = clientFactoryClass
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat(clock)
        self.outgoing = Outgoing(
            clock, connector, runInThread, self.heartbeat, debug, bindAddress
        )
        self.logFields = dict(logFields or {})
        self.pieceCount = metainfo.pieceCount
        self.peers: Dict[Any, PeerRecord] = {}
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
        self.fetcher = Fetcher(
            metainfo,
            picker,
            storage,
            runInThread,
            clock,
            self.peers,
            self.smartBan,
            self.events,
            self,
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

    # The parts' state and settings, by their former names.

    connector = _delegate("outgoing", "connector", "Makes outgoing connections.")
    maxPeers = _delegate("dialer", "maxPeers", "Connected peers at most.")
    listenPort = _delegate("dialer", "listenPort", "The port we listen on.")
    requester = _delegate("fetcher", "requester", "The request scheduler.")
    assembler = _delegate("fetcher", "assembler", "Piece buffers, hash, write.")
    interest = _delegate("fetcher", "interest", "Availability and interest.")
    downloaded = _delegate("fetcher", "downloaded", "Verified bytes downloaded.")
    verifiedBytes = _delegate("fetcher", "verifiedBytes", "Verified bytes.")
    downloadRate = _delegate("fetcher", "downloadRate", "Block bytes/s received.")
    downloadLimiter = _delegate(
        "fetcher", "downloadLimiter", "The download rate limiter, or C{None}."
    )
    requestTimeout = _delegate(
        "requester", "requestTimeout", "Seconds without a block before requests move."
    )
    maxPendingBytes = _delegate(
        "assembler", "maxPendingBytes", "Unchecked bytes above which we wait."
    )
    pendingBytes = _delegate("assembler", "pendingBytes", "Bytes not yet checked.")
    uploaded = _delegate("uploader", "uploaded", "Block bytes sent this session.")
    uploadRate = _delegate("uploader", "uploadRate", "Block bytes/s sent.")

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
        self.checkComplete()
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
        return Progress.of(
            self.picker, self.downloadRate.rate, self.uploadRate.rate, len(self.peers)
        )

    def checkComplete(self) -> None:
        """
        Emit C{complete} once every wanted piece is verified.
        """
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
        Connect to C{address} (L{Outgoing.dial}); dial more when it ends.
        """
        features = () if self.features is None else (self.features,)
        context = self.contextFactory(
            self.metainfo.infoHash, self.peerId, self.pieceCount, self, *features
        )

        def ended(*args, **kwargs) -> None:
            onEnd(*args, **kwargs)
            if self.running:
                self._connectMore()

        return self.outgoing.dial(
            address,
            context,
            self.clientFactoryClass,
            self.encryption,
            ended,
            plaintext=plaintext,
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
        factory = getattr(peer, "factory", None)
        outgoingAddress = getattr(factory, "outgoingAddress", None)
        admitted, evicted = admit(
            peer,
            self.peers,
            self.maxPeers,
            self.smartBan.banned,
            outgoing=outgoingAddress is not None,
            globalRoom=self.dialer.globalRoom,
        )
        if not admitted:
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
            self.interest.startFast(
                peer, record, self.metainfo.infoHash, self.pieceCount
            )
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

    def peerBlocks(self, peer, blocks) -> None:
        """
        Blocks from a peer: the C{Piece} messages of one read, in order.
        """
        record = self.peers.get(peer)
        if record is not None:
            record.usefulAt = self.clock.seconds()
            self.fetcher.blocksReceived(peer, record, blocks)

    def peerMessage(self, peer, message) -> None:
        """
        Act on a message from a peer (blocks come in L{peerBlocks}).
        """
        record = self.peers.get(peer)
        if record is None:
            return
        kind = type(message)
        if kind in USEFUL_MESSAGES:
            record.usefulAt = self.clock.seconds()
        if kind is wire.Have:
            self._gotHave(peer, record, message.index)
        elif kind is wire.Request:
            self.uploader.requestMessage(peer, record, message)
        elif kind is wire.Cancel:
            self.uploader.cancelMessage(peer, record, message)
        elif kind is wire.Unchoke:
            self.requester.fill(peer, record)
        elif kind is wire.Choke:
            self.fetcher.choked(peer, record)
        elif kind is wire.RejectRequest:
            self.fetcher.rejected(peer, record, message)
        elif kind is wire.AllowedFast or kind is wire.SuggestPiece:
            self.interest.fastHint(peer, record, message)
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
        self.interest.syncBitfield(peer, record)
        if self._completeFired and record.known.complete:
            peer.drop("both complete")

    def _gotHave(self, peer, record: PeerRecord, index: int) -> None:
        if not self.interest.gotHave(peer, record, index):
            return
        if self._completeFired and record.known.complete:
            peer.drop("both complete")

    def wantedChanged(self) -> None:
        """
        The wanted pieces changed (file selection): count again what each
        peer has for us, tell it whether we are interested; complete now,
        or no longer (then dial seeds again).
        """
        self.interest.recount(list(self.peers.items()))
        if self.complete:
            self.checkComplete()
        elif self._completeFired:
            self._completeFired = False
            self.dialer.retrySeeds()
            self._connectMore()

    # Requests and blocks (the fetcher's)

    def _fillAll(self) -> None:
        self.fetcher.fillAll()

    def checkTimeouts(self) -> None:
        """
        Give the requests of silent peers to others (L{Fetcher.checkTimeouts}).
        """
        self.fetcher.checkTimeouts()

    def ban(self, key) -> None:
        """
        Ban the peer smart ban names by C{key}, and drop it.
        """
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
        logStorageFailure(self._log, "read", index, failure)
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
