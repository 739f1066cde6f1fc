"""
The download engine of one torrent: requests in flight per peer, timeouts,
piece assembly, hash checks, endgame cancels, serving blocks to peers and
the outgoing connections.

The L{Downloader} is what every L{btorrent.peer.protocol.PeerProtocol} of a torrent
reports to (L{IPeerOwner}).  It never parses bytes and never chooses pieces
itself: the picker does that, the protocol speaks the wire.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional, Set, Tuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btorrent.codec import wire
from btorrent.codec.bitfield import Bitfield
from btorrent.interfaces import IPeerOwner
from btorrent.peer.protocol import CONNECT_TIMEOUT
from btorrent.util.rate import RateMeter

__all__ = [
    "BLOCK_SIZE",
    "MAX_REQUEST_LENGTH",
    "Downloader",
    "Progress",
    "requestDepth",
]

#: The size of the blocks we request.
BLOCK_SIZE = wire.BLOCK_SIZE

#: The largest block we serve; a peer asking for more is dropped.
MAX_REQUEST_LENGTH = 131072

#: Requests in flight per peer: at least, at most.
MIN_DEPTH = 16
MAX_DEPTH = 500

#: Seconds between two sizings of a peer's request queue.
DEPTH_REFRESH = 0.25

#: Seconds without a block before a peer's requests go to other peers.
REQUEST_TIMEOUT = 60.0

#: Bad pieces a peer may be proven to have sent before it is banned.  A
#: failed piece that came from one peer alone proves it.  One that several
#: peers sent proves nothing yet (blaming all of them banned honest peers
#: that had shared pieces with a liar): each sender's blocks are
#: fingerprinted, and once the piece passes, whoever sent a block that
#: differs from the good one is proven (libtorrent calls this smart ban).
MAX_STRIKES = 3

#: Failed pieces of several senders remembered until they pass, and
#: failed attempts remembered per piece.
MAX_SUSPECT_PIECES = 64
MAX_SUSPECT_ATTEMPTS = 4

#: Bytes of complete pieces waiting for their hash check and write, above
#: which we stop requesting (at least four pieces' worth).  Small: what is
#: received but not yet written is lost if the process dies.  Whatever waits here is lost to a kill -9 and
#: fetched again: with 64 MiB a 256 MiB download killed three times cost
#: 1.12-1.16x its size (4 MiB: 1.06x), for a 1 GiB download 25% faster
#: (benchmarks/bench_download.py: 2.86 s against 3.79 s).
MAX_PENDING_BYTES = 4 * 1024 * 1024

#: Withdrawn requests remembered per peer (their blocks may still come).
MAX_WITHDRAWN = 2 * MAX_DEPTH

#: Threads checking and writing pieces at once, per torrent (the session's
#: pool has 8).  Writing into a new file is bound by the kernel allocating
#: page cache, which runs in parallel: a 1 GiB download from a libtorrent
#: seeder took a median 4.14 s with 2 jobs, 2.09 s with 4, 2.00 s with 8
#: (benchmarks/bench_download.py, 5 alternating runs each).
MAX_VERIFY_JOBS = 8

#: Bytes of piece buffers kept for reuse.
BUFFER_POOL_BYTES = 16 * 1024 * 1024

#: Requests a peer may have waiting for us to serve; more and it is
#: dropped.  Twice our own deepest queue: a btorrent (or libtorrent, 500)
#: leecher keeping its pipeline full must never be taken for a flood.
MAX_PEER_QUEUE = 2 * MAX_DEPTH

#: Bytes of whole pieces kept in memory to serve blocks from.
READ_CACHE_BYTES = 32 * 1024 * 1024

#: Reconnection back-off: first delay, and how many failures we accept.
RETRY_DELAY = 30.0
MAX_FAILURES = 5

#: Seconds between two housekeeping passes (timeouts, new connections).
TICK = 5.0


def requestDepth(rate: float) -> int:
    """
    How many requests to keep in flight to a peer delivering C{rate} bytes
    per second: one second's worth of blocks, between L{MIN_DEPTH} and
    L{MAX_DEPTH}.
    """
    return max(MIN_DEPTH, min(MAX_DEPTH, int(rate / BLOCK_SIZE)))


def isLocalAddress(host: str) -> bool:
    """
    Whether C{host} names this machine (a loopback or unspecified address).
    """
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


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


class _Piece:
    """
    A piece being assembled: a preallocated buffer, which blocks arrived,
    and who sent each (its peer's strike key, C{None} until it arrives).
    """

    __slots__ = ("buffer", "view", "got", "missing", "senders")

    def __init__(self, buffer: bytearray) -> None:
        size = len(buffer)
        self.buffer = buffer
        self.view = memoryview(buffer)
        blocks = (size + BLOCK_SIZE - 1) // BLOCK_SIZE
        self.got = bytearray(blocks)
        self.missing = blocks
        self.senders: list = [None] * blocks


def blockDigests(data) -> list:
    """
    The SHA-1 of each 16 KiB block of a piece: what a peer sent, told
    apart without keeping its bytes.
    """
    view = memoryview(data)
    sha1 = hashlib.sha1
    return [
        sha1(view[i : i + BLOCK_SIZE]).digest() for i in range(0, len(view), BLOCK_SIZE)
    ]


class _PeerState:
    """
    What the downloader keeps about one connected peer.

    @ivar requests: our requests in flight, C{(index, begin) -> length},
        oldest first.
    @ivar known: the pieces we counted in the picker's availability for it.
    @ivar wanted: how many of its pieces we still want.
    @ivar lastBlock: when it last sent a block we asked for (or when we
        started waiting for one).
    @ivar snubbedUntil: no requests to it before this time.
    @ivar serving: requests it made, waiting for us to serve them.
    @ivar withdrawn: requests we took back whose blocks may still arrive,
        C{(index, begin) -> length}, oldest first.
    """

    __slots__ = (
        "requests",
        "known",
        "wanted",
        "lastBlock",
        "snubbedUntil",
        "serving",
        "strikeKey",
        "withdrawn",
        "depth",
        "depthAt",
    )

    def __init__(self, pieceCount: int, now: float, strikeKey: Any) -> None:
        self.requests: Dict[Tuple[int, int], int] = {}
        self.known = Bitfield(pieceCount)
        self.wanted = 0
        self.lastBlock = now
        self.snubbedUntil = 0.0
        self.serving: deque = deque()
        self.strikeKey = strikeKey
        self.withdrawn: OrderedDict[Tuple[int, int], int] = OrderedDict()
        self.depth = MIN_DEPTH
        self.depthAt = now

    def withdraw(self, key: Tuple[int, int], length: int) -> None:
        """
        Remember a request we took back (cancel, choke, timeout), whose
        block may still arrive; forget the oldest beyond L{MAX_WITHDRAWN}.
        """
        self.withdrawn[key] = length
        if len(self.withdrawn) > MAX_WITHDRAWN:
            self.withdrawn.popitem(last=False)


class _Candidate:
    """
    An address to connect to, with its failures, and whether it was a
    seed when we last saw it (not dialled while we are complete).
    """

    __slots__ = ("failures", "notBefore", "seed")

    def __init__(self) -> None:
        self.failures = 0
        self.notBefore = 0.0
        self.seed = False


def _makeClientFactory(factoryClass, context, clock, debug, onEnd):
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
    return factory


@implementer(IPeerOwner)
class Downloader(Service):
    """
    Downloads and serves the pieces of one torrent.

    @ivar peers: the connected peers (handshake accepted), in order of
        arrival.
    @ivar downloaded: bytes of verified pieces downloaded this session.
    @ivar uploaded: bytes of blocks sent this session.
    @ivar onComplete: called with no argument once every piece is verified
        (also when that is already so at start).
    @ivar onPieceVerified: called with the index of each piece verified and
        written.
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
        """
        self.metainfo = metainfo
        self.picker = picker
        self.storage = storage
        self.runInThread = runInThread
        self.clock = clock
        self.connector = connector
        self.peerId = peerId
        self.listenPort = listenPort
        self.maxPeers = maxPeers
        self.bindAddress = bindAddress or None
        self.debug = debug
        if contextFactory is None or clientFactoryClass is None:
            from btorrent.peer import protocol as _peer

            contextFactory = contextFactory or _peer.PeerContext
            clientFactoryClass = clientFactoryClass or _peer.PeerClientFactory
        self.contextFactory = contextFactory
        self.clientFactoryClass = clientFactoryClass
        self.pieceCount = metainfo.pieceCount
        self.peers: Dict[Any, _PeerState] = {}
        self.downloaded = 0
        self.uploaded = 0
        self.downloadRate = RateMeter(clock)
        self.uploadRate = RateMeter(clock)
        self.onComplete: Optional[Callable[[], None]] = None
        self.onPieceVerified: Optional[Callable[[int], None]] = None
        self.onPeersChanged: Optional[Callable[[], None]] = None
        self.maxPendingBytes = max(MAX_PENDING_BYTES, 4 * metainfo.pieceLength)
        self.requestTimeout = REQUEST_TIMEOUT
        self._pieces: Dict[int, _Piece] = {}
        self._verifyQueue: list = []
        self._verifyJobs = 0
        self._buffers: list = []
        self._pendingBytes = 0
        self._pending: Set[Deferred] = set()
        self._strikes: Dict[Any, int] = {}
        self._suspects: OrderedDict[int, list] = OrderedDict()
        self._banned: Set[Any] = set()
        self._candidates: OrderedDict[Tuple[str, int], _Candidate] = OrderedDict()
        self._connecting: Dict[Tuple[str, int], Any] = {}
        self._handshaken: Set[Tuple[str, int]] = set()
        self._completeFired = False
        self._tick = None
        self._readCache: OrderedDict[int, bytes] = OrderedDict()
        self._readCacheBytes = 0
        self._reading: Dict[int, Deferred] = {}
        self.verifiedBytes = sum(metainfo.pieceSize(i) for i in picker.haveBitfield)

    # Service

    def startService(self) -> None:
        """
        Start connecting to peers and checking timeouts.
        """
        super().startService()
        self._scheduleTick()
        self._checkComplete()
        self._connectMore()

    def stopService(self) -> Deferred:
        """
        Disconnect every peer, stop connecting, and wait for the pieces
        being checked and written.
        """
        super().stopService()
        if self._tick is not None and self._tick.active():
            self._tick.cancel()
        self._tick = None
        for connector in list(self._connecting.values()):
            connector.disconnect()
        self._connecting.clear()
        self._handshaken.clear()
        self._candidates.clear()
        for peer in list(self.peers):
            peer.drop("shutting down")
        if not self._pending:
            return succeed(None)
        return DeferredList(list(self._pending), consumeErrors=True).addCallback(
            lambda _: None
        )

    def _scheduleTick(self) -> None:
        self._tick = self.clock.callLater(TICK, self._onTick)

    def _onTick(self) -> None:
        self._tick = None
        self.checkTimeouts()
        self._connectMore()
        if self.running:
            self._scheduleTick()

    # State

    @property
    def complete(self) -> bool:
        """
        Whether every piece is verified and written.
        """
        return self.verifiedBytes == self.metainfo.totalLength

    @property
    def pendingBytes(self) -> int:
        """
        Bytes of complete pieces waiting for their hash check and write.
        """
        return self._pendingBytes

    @property
    def left(self) -> int:
        """
        Bytes still missing.
        """
        return self.metainfo.totalLength - self.verifiedBytes

    def progress(self) -> Progress:
        """
        A snapshot of the download.
        """
        rate = self.downloadRate.rate
        left = self.left
        eta = None
        if left == 0:
            eta = 0.0
        elif rate > 0:
            eta = left / rate
        return Progress(
            verifiedBytes=self.verifiedBytes,
            totalBytes=self.metainfo.totalLength,
            downloadRate=rate,
            uploadRate=self.uploadRate.rate,
            peers=len(self.peers),
            eta=eta,
        )

    def _checkComplete(self) -> None:
        if self.complete and not self._completeFired:
            self._completeFired = True
            for peer, state in list(self.peers.items()):
                if peer.amInterested:
                    peer.setInterested(False)
                if state.known.complete:
                    peer.drop("both complete")
            if self.onComplete is not None:
                self.onComplete()

    # Connections

    def addPeers(self, peers: Iterable[Tuple[str, int]]) -> None:
        """
        Peers learnt from a tracker (or given by hand): remember them and
        connect to as many as there are free slots.
        """
        for host, port in peers:
            address = (host, port)
            if self._isSelf(address) or address in self._banned:
                continue
            if address not in self._candidates:
                self._candidates[address] = _Candidate()
        self._connectMore()

    def _isSelf(self, address: Tuple[str, int]) -> bool:
        host, port = address
        return port == self.listenPort and isLocalAddress(host)

    def _connectedAddresses(self) -> Set[Tuple[str, int]]:
        return {peer.address for peer in self.peers}

    def _connectMore(self) -> None:
        if not self.running:
            return
        now = self.clock.seconds()
        connected = self._connectedAddresses()
        # Connected peers, and dials that have not completed a handshake.
        used = len(self.peers) + len(self._connecting) - len(self._handshaken)
        for address, candidate in list(self._candidates.items()):
            if used >= self.maxPeers:
                return
            if address in self._connecting or address in connected:
                continue
            if candidate.notBefore > now:
                continue
            if self._completeFired and candidate.seed:
                continue
            self._connect(address)
            used += 1

    def _connect(self, address: Tuple[str, int]) -> None:
        host, port = address
        context = self.contextFactory(
            self.metainfo.infoHash, self.peerId, self.pieceCount, self
        )
        handshaken = []

        def onEnd(connected: bool) -> None:
            self._connectionEnded(address, connected and bool(handshaken))

        factory = _makeClientFactory(
            self.clientFactoryClass, context, self.clock, self.debug, onEnd
        )
        factory.address = factory.outgoingAddress = address
        factory.handshaken = handshaken
        self.log.debug("connecting to {host}:{port}", host=host, port=port)
        kwargs = {}
        if self.bindAddress is not None:
            kwargs["bindAddress"] = (self.bindAddress, 0)
        self._connecting[address] = self.connector.connectTCP(
            host, port, factory, timeout=CONNECT_TIMEOUT, **kwargs
        )

    def _connectionEnded(self, address, handshaken: bool) -> None:
        self._connecting.pop(address, None)
        self._handshaken.discard(address)
        candidate = self._candidates.get(address)
        if candidate is None:
            return
        if handshaken:
            candidate.failures = 0
            candidate.notBefore = self.clock.seconds() + RETRY_DELAY
        else:
            candidate.failures += 1
            if candidate.failures >= MAX_FAILURES:
                self.log.info(
                    "giving up on {host}:{port} after {failures} failures",
                    host=address[0],
                    port=address[1],
                    failures=candidate.failures,
                )
                del self._candidates[address]
                return
            delay = RETRY_DELAY * 2 ** (candidate.failures - 1)
            candidate.notBefore = self.clock.seconds() + delay
        if self.running:
            self._connectMore()

    # IPeerOwner

    def peerConnected(self, peer) -> bool:
        """
        Accept a peer unless we are full (L{maxPeers} connected, whichever
        side dialled), it is us, a duplicate or banned; send it our
        bitfield.
        """
        if not self.running:
            return False
        if peer.peerId == self.peerId:
            self.log.debug("refusing a connection to ourselves")
            return False
        if peer.peerId in self._banned or peer.address in self._banned:
            return False
        factory = getattr(peer, "factory", None)
        outgoingAddress = getattr(factory, "outgoingAddress", None)
        if len(self.peers) >= self.maxPeers:
            return False
        for other in self.peers:
            if other.peerId == peer.peerId or other.address == peer.address:
                return False
        if outgoingAddress is not None:
            factory.handshaken.append(True)
            # Counted in self.peers now, no longer as a dial in progress.
            self._handshaken.add(outgoingAddress)
        strikeKey = outgoingAddress or peer.peerId
        state = _PeerState(self.pieceCount, self.clock.seconds(), strikeKey)
        self.peers[peer] = state
        have = self.picker.haveBitfield
        if have.count:
            peer.sendMessage(wire.BitfieldMessage(have.toBytes()))
        self.log.info(
            "peer {host}:{port} connected ({peers} peers)",
            host=peer.address[0],
            port=peer.address[1],
            peers=len(self.peers),
        )
        # Pieces may have been announced between the handshake and now.
        if peer.peerPieces.count:
            self._syncBitfield(peer, state)
        if self.onPeersChanged is not None:
            self.onPeersChanged()
        return True

    def peerLost(self, peer, reason) -> None:
        """
        Forget a peer: its pieces leave the availability, its requests go
        back to the picker.
        """
        state = self.peers.pop(peer, None)
        if state is None:
            return
        candidate = self._candidates.get(peer.address)
        if candidate is not None:
            candidate.seed = state.known.complete
        self.picker.removePeer(state.known)
        self.picker.abortPeer(peer)
        state.requests.clear()
        state.serving.clear()
        self.log.info(
            "peer {host}:{port} gone ({peers} peers)",
            host=peer.address[0],
            port=peer.address[1],
            peers=len(self.peers),
        )
        if self.onPeersChanged is not None:
            self.onPeersChanged()
        if self.running:
            self._fillAll()
            self._connectMore()

    def peerMessage(self, peer, message) -> None:
        """
        Act on a message from a peer.
        """
        state = self.peers.get(peer)
        if state is None:
            return
        kind = type(message)
        if kind is wire.Piece:
            self._gotBlock(peer, state, message)
        elif kind is wire.Have:
            self._gotHave(peer, state, message.index)
        elif kind is wire.Request:
            self._gotRequest(peer, state, message)
        elif kind is wire.Cancel:
            self._gotCancel(state, message)
        elif kind is wire.Unchoke:
            self._fill(peer, state)
        elif kind is wire.Choke:
            self._returnRequests(peer, state)
            self._fillAll()
        elif kind is wire.BitfieldMessage:
            self._syncBitfield(peer, state)
        elif kind is wire.Interested or kind is wire.NotInterested:
            # The protocol keeps the flag; the choker may have a slot.
            if self.onPeersChanged is not None:
                self.onPeersChanged()

    # Availability and interest

    def _syncBitfield(self, peer, state: _PeerState) -> None:
        self.picker.removePeer(state.known)
        state.known = peer.peerPieces.copy()
        self.picker.addPeer(state.known)
        theirs = int.from_bytes(state.known.toBytes(), "big")
        ours = int.from_bytes(self.picker.haveBitfield.toBytes(), "big")
        state.wanted = bin(theirs & ~ours).count("1")
        self._updateInterest(peer, state)
        if self._completeFired and state.known.complete:
            peer.drop("both complete")

    def _gotHave(self, peer, state: _PeerState, index: int) -> None:
        if index in state.known:
            return
        state.known.add(index)
        self.picker.peerHas(index)
        if self.picker.isWanted(index):
            state.wanted += 1
            self._updateInterest(peer, state)
        if self._completeFired and state.known.complete:
            peer.drop("both complete")

    def _updateInterest(self, peer, state: _PeerState) -> None:
        interested = state.wanted > 0
        if interested != peer.amInterested:
            peer.setInterested(interested)
        if interested:
            self._fill(peer, state)

    # Requests

    def _fillAll(self) -> None:
        for peer, state in list(self.peers.items()):
            self._fill(peer, state)

    def _fill(self, peer, state: _PeerState) -> None:
        """
        Top up the requests in flight to C{peer}.
        """
        if peer.peerChoking or not peer.amInterested:
            return
        if self._pendingBytes > self.maxPendingBytes:
            return
        now = self.clock.seconds()
        if state.snubbedUntil > now:
            return
        if now >= state.depthAt:
            # The rate moves slowly: size the queue a few times a second.
            state.depth = requestDepth(peer.downloadRate.rate)
            state.depthAt = now + DEPTH_REFRESH
        depth = state.depth
        inFlight = len(state.requests)
        free = depth - inFlight
        # Ask the picker in batches: one call per few blocks.
        if free <= 0 or (inFlight and free < max(4, depth // 4)):
            return
        blocks = self.picker.pick(state.known, free, peer)
        if not blocks:
            if not inFlight and not self._stillWanted(state):
                state.wanted = 0
                peer.setInterested(False)
            return
        if not inFlight:
            state.lastBlock = self.clock.seconds()
        requests = state.requests
        fresh = []
        for block in blocks:
            key = (block[0], block[1])
            if key not in requests:
                requests[key] = block[2]
                fresh.append(block)
        sendRequests = getattr(peer, "sendRequests", None)
        if sendRequests is not None:
            sendRequests(fresh)
        else:
            send = peer.sendRequest
            for index, begin, length in fresh:
                send(index, begin, length)

    def _stillWanted(self, state: _PeerState) -> bool:
        theirs = int.from_bytes(state.known.toBytes(), "big")
        ours = int.from_bytes(self.picker.haveBitfield.toBytes(), "big")
        return bool(theirs & ~ours)

    def _returnRequests(self, peer, state: _PeerState) -> None:
        if state.requests:
            self.picker.abortPeer(peer)
            for key, length in state.requests.items():
                state.withdraw(key, length)
            state.requests.clear()

    def checkTimeouts(self) -> None:
        """
        Give the requests of peers silent for L{requestTimeout} seconds to
        other peers, and stop asking those peers for a while.
        """
        now = self.clock.seconds()
        timedOut = False
        for peer, state in list(self.peers.items()):
            if state.requests and now - state.lastBlock >= self.requestTimeout:
                self.log.info(
                    "peer {host}:{port} sent nothing for {seconds:.0f} s: "
                    "its {count} requests go to other peers",
                    host=peer.address[0],
                    port=peer.address[1],
                    seconds=now - state.lastBlock,
                    count=len(state.requests),
                )
                for (index, begin), length in state.requests.items():
                    peer.sendCancel(index, begin, length)
                self._returnRequests(peer, state)
                state.snubbedUntil = now + self.requestTimeout
                timedOut = True
        if timedOut:
            self._fillAll()

    def _gotBlock(self, peer, state: _PeerState, message) -> None:
        index, begin, block = message.index, message.begin, message.block
        key = (index, begin)
        length = state.requests.pop(key, None)
        if length is None:
            withdrawn = state.withdrawn.pop(key, None)
            if withdrawn is not None and withdrawn == len(block):
                # Asked for, then cancelled, choked or timed out: it crossed
                # our cancel.  Not counted.
                return
            if withdrawn is None:
                peer.drop(f"sent a block never requested ({index}:{begin})")
            else:
                peer.drop(f"sent a block of {len(block)} bytes, not {withdrawn}")
            return
        if length != len(block):
            peer.drop(f"sent a block of {len(block)} bytes, not {length}")
            return
        state.lastBlock = self.clock.seconds()
        state.snubbedUntil = 0.0
        self.downloadRate.update(length)
        for other in self.picker.blockReceived(index, begin, peer):
            otherState = self.peers.get(other)
            if otherState is None:
                continue
            otherLength = otherState.requests.pop((index, begin), None)
            if otherLength is not None:
                otherState.withdraw((index, begin), otherLength)
                other.sendCancel(index, begin, otherLength)
        piece = self._pieces.get(index)
        if piece is None:
            piece = _Piece(self._newBuffer(self.metainfo.pieceSize(index)))
            self._pieces[index] = piece
        blockIndex = begin // BLOCK_SIZE
        if not piece.got[blockIndex]:
            piece.got[blockIndex] = 1
            piece.missing -= 1
            piece.view[begin : begin + length] = block
            piece.senders[blockIndex] = state.strikeKey
            if piece.missing == 0:
                del self._pieces[index]
                self._pieceComplete(index, piece)
        self._fill(peer, state)

    # Verification

    def _pieceComplete(self, index: int, piece: _Piece) -> None:
        """
        Queue a complete piece for its hash check and write; start a job in
        a thread unless enough are running (they take the whole queue, so
        that a slow disk gets bigger batches rather than more thread
        hand-offs).
        """
        self._pendingBytes += len(piece.buffer)
        piece.view.release()
        self._verifyQueue.append((index, piece))
        if self._verifyJobs < MAX_VERIFY_JOBS:
            self._startVerifyJob()

    def _startVerifyJob(self) -> None:
        batch, self._verifyQueue = self._verifyQueue, []
        hashes = self.metainfo.pieceHashes
        work = [
            (
                index,
                piece.buffer,
                hashes[index],
                len(set(piece.senders)) > 1,
                index in self._suspects,
            )
            for index, piece in batch
        ]
        self._verifyJobs += 1
        d = self.runInThread(self._verifyAndWrite, work)
        self._pending.add(d)

        def done(results) -> None:
            self._pending.discard(d)
            self._verifyJobs -= 1
            for (index, piece), result in zip(batch, results):
                size = len(piece.buffer)
                self._pendingBytes -= size
                if isinstance(result, Failure):
                    self.log.failure(
                        "cannot write piece {index}", failure=result, index=index
                    )
                    self.picker.pieceFailed(index)
                    continue
                good, digests = result
                if good:
                    self._recycle(piece.buffer)
                    self._judgeSuspects(index, digests)
                    self._pieceVerified(index, size)
                else:
                    self._pieceFailed(index, piece.senders, digests)
            if self._verifyQueue and self._verifyJobs < MAX_VERIFY_JOBS:
                self._startVerifyJob()
            if self.running:
                self._fillAll()

        def failed(failure) -> None:
            # The job itself broke (not one piece): every piece is lost.
            self._pending.discard(d)
            self._verifyJobs -= 1
            self.log.failure("cannot check pieces", failure=failure)
            for index, piece in batch:
                self._pendingBytes -= len(piece.buffer)
                self.picker.pieceFailed(index)
            if self.running:
                self._fillAll()

        d.addCallbacks(done, failed)

    def _verifyAndWrite(self, work) -> list:
        """
        Off the reactor thread: check each piece's SHA-1 and write the good
        ones.

        @param work: a list of C{(index, data, expected SHA-1, shared,
            suspect)}: C{shared} if several peers sent the piece, C{suspect}
            if it failed before with several senders.
        @return: per piece, C{(True, digests)} (written), C{(False,
            digests)} (bad hash; nothing written) or the L{Failure} of its
            write.  C{digests} are the piece's L{blockDigests} for a shared
            piece that failed or a suspect piece that passed, else C{None}:
            a good piece is hashed once.
        """
        results = []
        sha1 = hashlib.sha1
        write = self.storage.writePiece
        for index, data, expected, shared, suspect in work:
            if sha1(data).digest() != expected:
                results.append((False, blockDigests(data) if shared else None))
                continue
            digests = blockDigests(data) if suspect else None
            try:
                write(index, data)
            except Exception:
                results.append(Failure())
            else:
                results.append((True, digests))
        return results

    def _newBuffer(self, size: int) -> bytearray:
        if size == self.metainfo.pieceLength and self._buffers:
            return self._buffers.pop()
        return bytearray(size)

    def _recycle(self, buffer: bytearray) -> None:
        if (
            len(buffer) == self.metainfo.pieceLength
            and len(self._buffers) * len(buffer) < BUFFER_POOL_BYTES
        ):
            self._buffers.append(buffer)

    def _pieceVerified(self, index: int, size: int) -> None:
        self.picker.have(index)
        self.downloaded += size
        self.verifiedBytes += size
        for peer, state in list(self.peers.items()):
            peer.sendHave(index)
            if index in state.known:
                state.wanted -= 1
                if state.wanted <= 0 and peer.amInterested:
                    state.wanted = 0
                    peer.setInterested(False)
        if self.onPieceVerified is not None:
            self.onPieceVerified(index)
        self._checkComplete()

    def _pieceFailed(self, index: int, senders: list, digests) -> None:
        """
        A piece failed its hash check: fetch it again.  If one peer sent
        all of it, that peer is proven to lie; if several did, remember
        who sent which block (L{MAX_STRIKES}).
        """
        keys = set(senders)
        self.log.warn(
            "piece {index} failed its hash check ({senders} peers took part)",
            index=index,
            senders=len(keys),
        )
        self.picker.pieceFailed(index)
        if len(keys) == 1:
            self._strike(senders[0])
        elif digests is not None:
            attempts = self._suspects.pop(index, [])
            attempts.append(list(zip(senders, digests)))
            self._suspects[index] = attempts[-MAX_SUSPECT_ATTEMPTS:]
            while len(self._suspects) > MAX_SUSPECT_PIECES:
                self._suspects.popitem(last=False)

    def _judgeSuspects(self, index: int, digests) -> None:
        """
        A piece that had failed with several senders passed: each peer
        that had sent a block different from the good one gets a strike
        (once per failed attempt); the others are cleared.
        """
        attempts = self._suspects.pop(index, None)
        if not attempts or digests is None:
            return
        for attempt in attempts:
            culprits = {
                key for (key, sent), good in zip(attempt, digests) if sent != good
            }
            for key in culprits:
                self._strike(key)

    def _strike(self, key) -> None:
        """
        One more bad piece proven against the peer with strike key C{key};
        ban it at L{MAX_STRIKES}.
        """
        strikes = self._strikes.get(key, 0) + 1
        self._strikes[key] = strikes
        if strikes >= MAX_STRIKES and key not in self._banned:
            self._ban(key)

    def _ban(self, key) -> None:
        self._banned.add(key)
        if isinstance(key, tuple):
            self._candidates.pop(key, None)
        for peer, state in list(self.peers.items()):
            if state.strikeKey == key:
                self._banned.add(peer.peerId)
                self._banned.add(peer.address)
                self.log.warn(
                    "banning {host}:{port}: it sent {strikes} bad pieces",
                    host=peer.address[0],
                    port=peer.address[1],
                    strikes=self._strikes[key],
                )
                peer.drop("sent bad pieces")

    # Serving

    def _gotRequest(self, peer, state: _PeerState, message) -> None:
        index, begin, length = message.index, message.begin, message.length
        if (
            index >= self.pieceCount
            or length <= 0
            or length > MAX_REQUEST_LENGTH
            or begin + length > self.metainfo.pieceSize(index)
        ):
            peer.drop(f"bad request {index}:{begin}+{length}")
            return
        if peer.amChoking:
            return
        if index not in self.picker.haveBitfield:
            peer.drop(f"request for piece {index} that we do not have")
            return
        if len(state.serving) >= MAX_PEER_QUEUE:
            peer.drop("too many requests")
            return
        state.serving.append((index, begin, length))
        self._serve(peer, state)

    def _gotCancel(self, state: _PeerState, message) -> None:
        try:
            state.serving.remove((message.index, message.begin, message.length))
        except ValueError:
            pass

    def _serve(self, peer, state: _PeerState) -> None:
        """
        Send what we can of C{peer}'s queued requests; read pieces missing
        from the cache in a thread.
        """
        cache = self._readCache
        while state.serving:
            if peer.amChoking or self.peers.get(peer) is not state:
                state.serving.clear()
                return
            if getattr(peer, "writePaused", False):
                # Its send buffer is full: go on in peerWritable.
                return
            index, begin, length = state.serving[0]
            data = cache.get(index)
            if data is None:
                self._readPiece(index).addCallback(lambda _: self._serve(peer, state))
                return
            cache.move_to_end(index)
            state.serving.popleft()
            peer.sendPiece(index, begin, data[begin : begin + length])
            self.uploaded += length
            self.uploadRate.update(length)

    def peerWritable(self, peer) -> None:
        """
        C{peer}'s send buffer drained: send what it is waiting for.
        """
        state = self.peers.get(peer)
        if state is not None and state.serving:
            self._serve(peer, state)

    def _readPiece(self, index: int) -> Deferred:
        reading = self._reading.get(index)
        if reading is not None:
            d = Deferred()
            reading.addBoth(lambda r: (d.callback(None), r)[1])
            return d

        d = self.runInThread(self.storage.readPiece, index)
        self._reading[index] = d

        def got(data: bytes) -> None:
            del self._reading[index]
            self._cache(index, data)

        def failed(failure) -> None:
            del self._reading[index]
            self.log.failure("cannot read piece {index}", failure=failure, index=index)
            for peer, state in list(self.peers.items()):
                if any(r[0] == index for r in state.serving):
                    peer.drop("cannot read a piece it asked for")

        d.addCallbacks(got, failed)
        return d

    def _cache(self, index: int, data: bytes) -> None:
        self._readCache[index] = data
        self._readCacheBytes += len(data)
        while self._readCacheBytes > READ_CACHE_BYTES and len(self._readCache) > 1:
            _, old = self._readCache.popitem(last=False)
            self._readCacheBytes -= len(old)
