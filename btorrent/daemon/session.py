"""
The daemon's root service: one listening port for every torrent, our peer
id, the thread pool for disk work, and one L{Torrent} per info-hash.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Dict, Iterable, Optional, Sequence, Tuple

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btorrent import PEER_ID_PREFIX
from btorrent.daemon.trackers import Trackers
from btorrent.engine.controls import SessionControls
from btorrent.engine.queue import SlotQueue
from btorrent.engine.storage import MultiFileWriter
from btorrent.engine.torrent import RESUME_INTERVAL, Torrent
from btorrent.interfaces import IPeerRouter
from btorrent.peer.encryption import DEFAULT as DEFAULT_ENCRYPTION
from btorrent.peer.encryption import checkMode
from btorrent.peer.mse import obfuscatedHash
from btorrent.util import logs
from btorrent.util.heartbeat import BEAT, Heartbeat
from btorrent.util.statefile import readState, writeState
from btorrent.util.threads import ThreadRunner

__all__ = ["PORT_TRIES", "Session", "makePeerId"]

#: The version of C{dht.json}, the DHT nodes kept across restarts.
DHT_STATE_VERSION = 1

#: How many ports after the one asked for we try when it is taken.
PORT_TRIES = 20


def _queuePosition(torrent) -> int:
    return torrent.queuePosition


def makePeerId() -> bytes:
    """
    A fresh peer id: our client prefix and 12 random bytes.
    """
    return PEER_ID_PREFIX + os.urandom(20 - len(PEER_ID_PREFIX))


@implementer(IPeerRouter)
class Session(MultiService):
    """
    Every torrent of one process, behind one listening port.

    @ivar port: the TCP port we listen on (known once started).
    @ivar peerId: our peer id, shared by every torrent.
    @ivar torrents: C{infoHash -> Torrent}.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        reactor,
        port: int = 6881,
        interface: str = "",
        stateDir: Optional[str] = None,
        debug: bool = False,
        maxThreads: int = 8,
        peerId: Optional[bytes] = None,
        runInThread=None,
        trackerOptions: Optional[dict] = None,
        downloadQueueSize: Optional[int] = None,
        seedQueueSize: Optional[int] = None,
        heartbeatInterval: float = BEAT,
        dhtBootstrap: Optional[Sequence[Tuple[str, int]]] = None,
        encryption: str = DEFAULT_ENCRYPTION,
    ) -> None:
        """
        @param reactor: the reactor (C{IReactorTCP}, C{IReactorTime},
            C{IReactorThreads}).
        @param port: the port to listen on; when taken, the next ones up to
            L{PORT_TRIES} further; 0 for any free port.
        @param interface: the address to listen on (all by default).
        @param stateDir: where fast-resume data lives (C{None}: none).
        @param debug: log every peer message.
        @param maxThreads: threads for disk work and hashing.
        @param peerId: our peer id (a fresh random one by default).
        @param runInThread: C{runInThread(f, *args) -> Deferred} for disk
            work; by default, our thread pool.
        @param trackerOptions: passed to every torrent's announcer
            (L{btorrent.tracker.announcer.makeAnnouncer}), e.g.
            C{udpRetransmitBase} and C{udpMaxRetries}.
        @param downloadQueueSize: torrents downloading at once (C{None}: no
            limit); the others wait in the download queue.
        @param seedQueueSize: torrents seeding at once (C{None}: no limit).
        @param dhtBootstrap: run a DHT node (BEP 5) on the UDP port of the
            same number as the peer port, joining through these
            C{(host, port)} and the nodes saved at the last stop; C{None}
            for no DHT.  (The daemon passes the public routers by default;
            tests pass loopback nodes.)
        @param heartbeatInterval: seconds between two beats of the session's
            heartbeat (the finest period of its periodic work: a resume
            interval under a second needs a faster beat).
        @param encryption: MSE for peer connections, both ways:
            C{"tolerated"}, C{"preferred"} or C{"required"}
            (L{btorrent.peer.encryption}).
        @raise ValueError: for another C{encryption}.
        """
        super().__init__()
        self.reactor = reactor
        self.requestedPort = port
        self.port = port
        self.interface = interface
        self.trackerOptions = dict(trackerOptions or {})
        self.stateDir = stateDir
        self.debug = debug
        self.encryption = checkMode(encryption)
        self._skeys: Dict[bytes, bytes] = {}
        self._peerFactory = None
        self.peerId = peerId or makePeerId()
        self.torrents: Dict[bytes, Torrent] = {}
        self.threadPool = ThreadRunner(reactor, maxThreads=maxThreads)
        if runInThread is None:
            runInThread = self.threadPool
        self.runInThread = runInThread
        self.listeningPort = None
        #: The announcers and UDP sockets of its torrents' trackers.
        self.trackers = Trackers(self)
        #: The one periodic timer of every torrent and connection.
        self.heartbeat = Heartbeat(
            reactor, interval=heartbeatInterval, onError=self._tickFailed
        )
        #: Rate limits, seeding limits and the peer limit of every torrent.
        self.controls = SessionControls(reactor)
        #: One torrent checks its data at a time.
        self.checkQueue = SlotQueue(1, position=_queuePosition)
        self.downloadQueue = SlotQueue(
            downloadQueueSize or 1,
            enabled=downloadQueueSize is not None,
            position=_queuePosition,
        )
        self.seedQueue = SlotQueue(
            seedQueueSize or 1,
            enabled=seedQueueSize is not None,
            position=_queuePosition,
        )
        self.dhtBootstrap = None if dhtBootstrap is None else list(dhtBootstrap)
        #: The DHT node (a L{btorrent.dht.protocol.DHTService}) while it runs.
        self.dht = None
        self._dhtPeers = None

    def _tickFailed(self, subscriber, error: BaseException) -> None:
        self.log.failure(
            "periodic work of {subscriber!r} failed",
            failure=Failure(error),
            subscriber=subscriber,
        )

    def addTorrent(
        self,
        metainfo,
        downloadDir: str,
        maxPeers: int = 50,
        pieceOrder: str = "random",
        peers: Iterable[Tuple[str, int]] = (),
        announcerFactory=None,
        chokerFactory=None,
        uploadSlots: int = 4,
        resumeInterval: float = RESUME_INTERVAL,
        start: bool = True,
        umask: int = 0o022,
    ) -> Torrent:
        """
        Add a torrent (started at once if the session runs and C{start}).

        @param metainfo: the torrent's L{btorrent.codec.metainfo.Metainfo}.
        @param downloadDir: where its files go.
        @param peers: addresses to connect to besides the trackers' peers.
        @param uploadSlots: regular unchoke slots (the choker's).
        @param resumeInterval: seconds between saves of fast-resume data.
        @param start: start it with the session (else whoever added it
            starts it).
        @param umask: permissions taken away from the files it creates.
        @return: the L{Torrent}.
        @raise ValueError: if the torrent is already there.
        """
        if metainfo.infoHash in self.torrents:
            raise ValueError(f"torrent {metainfo.infoHash.hex()} is already added")
        return self._newTorrent(
            metainfo,
            metainfo.infoHash,
            downloadDir,
            umask,
            start,
            maxPeers=maxPeers,
            pieceOrder=pieceOrder,
            peers=peers,
            announcerFactory=announcerFactory or self.trackers.makeAnnouncer,
            chokerFactory=chokerFactory,
            uploadSlots=uploadSlots,
            resumeInterval=resumeInterval,
        )

    def _newTorrent(
        self, metainfo, infoHash: bytes, downloadDir: str, umask: int, start: bool, **kw
    ) -> Torrent:
        """
        Make a torrent of this session (with or without its metadata), add
        it, and start it if the session runs and C{start}.
        """

        def storage(info):
            return MultiFileWriter(info, downloadDir, umask=umask)

        torrent = Torrent(
            metainfo,
            None,
            self.stateDir,
            self.peerId,
            self.runInThread,
            self.reactor,
            port=self.port,
            debug=self.debug,
            interface=self.interface,
            heartbeat=self.heartbeat,
            checkQueue=self.checkQueue,
            downloadQueue=self.downloadQueue,
            seedQueue=self.seedQueue,
            sessionControls=self.controls,
            infoHash=infoHash,
            storageFactory=storage,
            **kw,
        )
        torrent.encryption = self.encryption
        torrent.queuePosition = len(self.torrents)
        torrent.startWithSession = start
        torrent.dht = self.dht
        self.torrents[infoHash] = torrent
        self._skeys[obfuscatedHash(infoHash)] = infoHash
        if self.running and start:
            torrent.start()
        return torrent

    def removeTorrent(self, infoHash: bytes) -> defer.Deferred:
        """
        Stop a torrent and forget it.

        @return: a L{Deferred} firing once it is stopped.
        """
        torrent = self.torrents.pop(infoHash, None)
        self._skeys.pop(obfuscatedHash(infoHash), None)
        if torrent is None:
            return defer.succeed(None)
        if self._dhtPeers is not None:
            self._dhtPeers.forget(infoHash)
        return torrent.stop()

    def addMagnet(
        self,
        magnet,
        downloadDir: str,
        maxPeers: int = 50,
        pieceOrder: str = "random",
        peers: Iterable[Tuple[str, int]] = (),
        announcerFactory=None,
        chokerFactory=None,
        uploadSlots: int = 4,
        resumeInterval: float = RESUME_INTERVAL,
        onMetadata=None,
        start: bool = True,
        umask: int = 0o022,
    ) -> Torrent:
        """
        Add a magnet link (started at once if the session runs and
        C{start}): a torrent without its info dictionary, which it fetches
        from peers (BEP 9: L{btorrent.engine.metadata.MetadataPhase}) and
        then downloads.  If the state directory holds the torrent an earlier
        fetch saved, it is added from there (L{addTorrent}): the metadata is
        not fetched again.

        @param magnet: a L{btorrent.codec.magnet.Magnet} or its text.
        @param peers: addresses to connect to besides C{x.pe} and the
            trackers' peers.
        @param onMetadata: C{onMetadata(torrentBytes)} keeps the fetched
            torrent (may return a L{Deferred}); by default it is written to
            the state directory as C{<info-hash>.torrent}, in a thread.
        @return: the L{Torrent}.
        @raise btorrent.codec.magnet.MagnetError: for an unusable link.
        @raise ValueError: if the torrent is already there.
        """
        from btorrent.codec.magnet import Magnet, parseMagnet
        from btorrent.engine import metadata

        if not isinstance(magnet, Magnet):
            magnet = parseMagnet(magnet)
        if magnet.infoHash in self.torrents:
            raise ValueError(f"torrent {magnet.infoHash.hex()} is already added")
        options = dict(
            maxPeers=maxPeers,
            pieceOrder=pieceOrder,
            peers=[*magnet.peers, *peers],
            announcerFactory=announcerFactory,
            chokerFactory=chokerFactory,
            uploadSlots=uploadSlots,
            resumeInterval=resumeInterval,
        )
        if self.stateDir is not None:
            saved = metadata.loadSavedMetadata(self.stateDir, magnet.infoHash)
            if saved is not None:
                return self.addTorrent(
                    saved, downloadDir, start=start, umask=umask, **options
                )
            if onMetadata is None:
                onMetadata = partial(
                    self.runInThread,
                    metadata.saveMetadata,
                    self.stateDir,
                    magnet.infoHash,
                )
        options["announcerFactory"] = announcerFactory or self.trackers.makeAnnouncer
        torrent = self._newTorrent(
            None,
            magnet.infoHash,
            downloadDir,
            umask,
            False,
            name=magnet.name,
            **options,
        )
        torrent.metadataPhaseFactory = partial(
            metadata.MetadataPhase,
            trackers=magnet.trackers,
            announcerFactory=self.trackers.announcerOver,
            onMetadata=onMetadata,
        )
        torrent.startWithSession = start
        if self.running and start:
            torrent.start()
        return torrent

    def udpProtocol(self, v6: bool = False):
        """
        The UDP tracker protocol of this session for IPv4 (or, with C{v6},
        IPv6) trackers, listening on an ephemeral port of our interface
        once first asked for: one socket per address family, every UDP
        tracker shares it.

        @raise TrackerError: if our interface cannot reach that family
            (bound to an IPv4 address, an IPv6 tracker) or the socket
            cannot be opened.
        """
        return self.trackers.udpProtocol(v6)

    def reannounce(self) -> int:
        """
        Announce every torrent to its trackers now, whatever their minimum
        interval (a user asking for more peers, as Transmission's and
        qBittorrent's "ask for more peers" do; C{twistd btorrent} does it
        on C{SIGUSR1}).  The peers they list are dialled as usual.

        @return: how many torrents announced.
        """
        count = 0
        for torrent in self.torrents.values():
            announcer = torrent.announcer
            if announcer is not None and announcer.running:
                announcer.announceNow(force=True)
                count += 1
        self.log.info("announcing {count} torrents now, as asked", count=count)
        return count

    # IPeerRouter

    def ownerFor(self, infoHash: bytes):
        """
        The context of the torrent C{infoHash}, if we serve it and it is
        past its start-up check.
        """
        torrent = self.torrents.get(infoHash)
        if torrent is None:
            return None
        downloader = torrent.downloader
        if downloader is None or not downloader.running:
            # A magnet link still fetching its metadata takes peers too.
            phase = torrent.metadataPhase
            return phase.peerContext() if phase is not None else None
        from btorrent.peer.protocol import PeerContext

        return PeerContext(
            infoHash,
            self.peerId,
            torrent.metainfo.pieceCount,
            downloader,
            *([downloader.features] if downloader.features is not None else []),
        )

    def setEncryption(self, mode: str) -> None:
        """
        Change the encryption policy (the RPC's C{session-set}): for new
        connections of every torrent, both ways.

        @raise ValueError: for a mode that is not one of
            L{btorrent.peer.encryption.MODES}.
        """
        self.encryption = checkMode(mode)
        for torrent in self.torrents.values():
            torrent.encryption = mode
            if torrent.downloader is not None:
                torrent.downloader.encryption = mode
        if self._peerFactory is not None:
            self._peerFactory.encryption = mode

    def _skeyLookup(self, hashed: bytes) -> Optional[bytes]:
        """
        The info-hash of the torrent an MSE handshake names by
        C{HASH('req2', infoHash)}, or C{None}.
        """
        infoHash = self._skeys.get(hashed)
        if infoHash is None and len(self._skeys) != len(self.torrents):
            # Torrents came or went without addTorrent or removeTorrent
            # (which keep the map): map them again.
            self._skeys = {obfuscatedHash(ih): ih for ih in self.torrents}
            infoHash = self._skeys.get(hashed)
        # One incoming handshake, among 10,000 torrents, looked at every
        # one of them (0.3 ms, as much as its Diffie-Hellman).
        return infoHash if infoHash in self.torrents else None

    # Service

    def startService(self) -> None:
        """
        Start the thread pool, listen, then start every torrent.
        """
        self.threadPool.start()
        self._listen()
        if self.dhtBootstrap is not None:
            self._startDHT()
        super().startService()
        for torrent in self.torrents.values():
            torrent.port = self.port
            torrent.dht = self.dht
            if getattr(torrent, "startWithSession", True):
                torrent.start()

    def _dhtPath(self) -> Optional[str]:
        if self.stateDir is None:
            return None
        return os.path.join(self.stateDir, "dht.json")

    def _startDHT(self) -> None:
        """
        Start the DHT node on our port number (UDP), with the nodes saved
        at the last stop; announce every torrent on it.
        """
        from btorrent.daemon.dhtpeers import DHTPeers
        from btorrent.dht.protocol import DHTService

        saved = []
        path = self._dhtPath()
        if path is not None:
            try:
                document, _ = readState(path, DHT_STATE_VERSION)
            except (OSError, ValueError) as e:
                self.log.warn("DHT nodes not loaded: {error}", error=str(e))
                document = None
            if document is not None and isinstance(document.get("nodes"), list):
                saved = document["nodes"]
        try:
            self.dht = DHTService(
                self.reactor,
                self.port,
                self.interface,
                self.dhtBootstrap,
                savedNodes=saved,
                onSave=self._saveDHTNodes,
            )
            self.dht.startService()
        except CannotListenError as e:
            self.log.error(
                "no DHT: cannot listen on UDP port {port}: {error}",
                port=self.port,
                error=str(e),
            )
            self.dht = None
            return
        self._dhtPeers = DHTPeers(self, self.dht)
        self._dhtPeers.start()

    def _saveDHTNodes(self, nodes) -> None:
        path = self._dhtPath()
        if path is None:
            return
        try:
            writeState(path, {"nodes": nodes}, DHT_STATE_VERSION)
        except OSError as e:
            self.log.warn("DHT nodes not saved: {error}", error=str(e))

    def _stopDHT(self):
        if self._dhtPeers is not None:
            self._dhtPeers.stop()
            self._dhtPeers = None
        dht, self.dht = self.dht, None
        if dht is not None:
            return defer.maybeDeferred(dht.stopService)
        return None

    def _listen(self) -> None:
        from btorrent.peer.protocol import PeerFactory

        factory = PeerFactory(self, self.reactor, heartbeat=self.heartbeat)
        if self.debug:
            factory.debug = True
        # Plain BitTorrent or MSE, told apart by the first bytes.
        factory.encryption = self.encryption
        factory.mseLookup = self._skeyLookup
        factory.mseRunInThread = self.runInThread
        self._peerFactory = factory
        first = self.requestedPort
        candidates = (
            [0] if first == 0 else range(first, min(first + PORT_TRIES, 65535) + 1)
        )
        error = None
        for port in candidates:
            try:
                self.listeningPort = self.reactor.listenTCP(
                    port, factory, interface=self.interface
                )
            except CannotListenError as e:
                error = e
                continue
            break
        else:
            raise error
        self.port = self.listeningPort.getHost().port
        if first and self.port != first:
            self.log.warn(
                "port {requested} is taken: listening on {port}",
                requested=first,
                port=self.port,
            )
        self.log.info("listening for peers on port {port}", port=self.port)

    def stopService(self):
        """
        Stop every torrent, stop listening, then stop the thread pool.
        """
        d = super().stopService()
        d.addCallback(
            lambda _: defer.DeferredList(
                [torrent.stop() for torrent in self.torrents.values()],
                consumeErrors=True,
            )
        )

        def stopped(result):
            self.controls.stop()
            ds = [d for d in [self._stopDHT()] if d is not None]
            if self.listeningPort is not None:
                listening, self.listeningPort = self.listeningPort, None
                ds.append(defer.maybeDeferred(listening.stopListening))
            ds.extend(self.trackers.stop())
            return defer.gatherResults(ds)

        def poolDown(result):
            self.threadPool.stop()
            return result

        d.addCallback(stopped)
        d.addBoth(poolDown)
        d.addBoth(self._heartbeatDown)
        return d

    def _heartbeatDown(self, result):
        self.heartbeat.stop()
        return result
