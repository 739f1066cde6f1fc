"""
A DHT node (BEP 5) without I/O: datagrams in, datagrams out.

L{DHTNode} is fed every datagram that arrives (L{DHTNode.datagramReceived})
and hands the datagrams it wants sent to its C{send(data, address)}
callback.  Time comes from an injected clock with the shape of
C{IReactorTime} (C{seconds()}, C{callLater()}): the reactor in production,
a C{task.Clock} in tests.  This module imports nothing of
C{twisted.internet}.

What the node does:
  - answers C{ping}, C{find_node}, C{get_peers} and C{announce_peer}
    (tokens are an HMAC-SHA1 of the requester's IP and the info-hash under a
    secret rotated every 5 minutes; the previous secret is still accepted,
    so a token lives 5 to 10 minutes: L{btorrent.dht.tokens});
  - stores announced peers per info-hash for 30 minutes, with caps per
    info-hash, on info-hashes and in total (L{PeerStore}); when the store
    cannot take a new info-hash, C{get_peers} answers without a token so
    that announces spill over to the neighbours (as libtorrent does);
  - limits the queries it answers per source address (L{RateLimiter}), and
    stays silent to what is over the limit;
  - tracks its own queries by transaction id (C{t} -> address, method,
    timeout: L{btorrent.dht.transactions}): an answer with an unknown id,
    or from another address than the one queried, is dropped;
  - pings a node that queried it when the routing table would take it, and
    keeps the table to BEP 5's rules (L{btorrent.dht.routing});
  - runs iterative lookups (L{Lookup}): C{find_node} and C{get_peers} with
    alpha=3 queries in flight, until the k closest nodes found have
    answered; C{announce} follows its C{get_peers} lookup with
    C{announce_peer} to the k closest nodes that gave a token;
  - every minute: expires peers, refreshes buckets unchanged for 15
    minutes, bootstraps again while the table is empty.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from twisted.logger import Logger

from btorrent.dht import krpc
from btorrent.dht.krpc import (
    AnnouncePeer,
    Error,
    FindNode,
    GetPeers,
    KRPCError,
    NodeInfo,
    Ping,
    Response,
)
from btorrent.dht.routing import (
    K,
    NodeEntry,
    RoutingTable,
    isUsableAddress,
    parseSavedNodes,
)
from btorrent.dht.tokens import TokenSecrets
from btorrent.dht.transactions import SLOW_QUERY, Transaction, Transactions
from btorrent.util import logs

__all__ = [
    "ALPHA",
    "DHTNode",
    "DHTStats",
    "Lookup",
    "PeerStore",
    "QUERY_TIMEOUT",
    "RateLimiter",
    "SLOW_QUERY",
]

Address = Tuple[str, int]

#: Queries a lookup keeps in flight.
ALPHA = 3
#: Seconds before an unanswered query counts as failed.
QUERY_TIMEOUT = 10.0
#: Seconds an announced peer is kept.
PEER_LIFETIME = 30 * 60.0
#: Seconds between maintenance rounds.
MAINTENANCE_INTERVAL = 60.0
#: Peers in one get_peers answer (8 bytes each in the datagram).
MAX_VALUES = 50
#: Our own queries in flight, all lookups together.
MAX_TRANSACTIONS = 2048
#: Pings in flight to nodes that queried us or need checking.
MAX_PINGS = 64
#: Candidates one lookup remembers (the closest are kept).
MAX_CANDIDATES = 128
#: Bucket refreshes started per maintenance round.
MAX_REFRESHES = 4
#: Bootstrap addresses remembered.
MAX_BOOTSTRAP = 64


@dataclass(frozen=True)
class DHTStats:
    """
    A snapshot of a node's counters.
    """

    nodes: int
    goodNodes: int
    buckets: int
    lookups: int
    activeLookups: int
    peersFound: int
    queriesIn: int
    queriesOut: int
    responsesIn: int
    errorsIn: int
    timeouts: int
    malformed: int
    rateLimited: int
    unexpected: int
    announcesIn: int
    badTokens: int
    storedPeers: int
    storedInfoHashes: int


#: The L{DHTStats} fields a node counts itself.
_COUNTERS = (
    "lookups",
    "peersFound",
    "queriesIn",
    "queriesOut",
    "responsesIn",
    "errorsIn",
    "timeouts",
    "malformed",
    "rateLimited",
    "unexpected",
    "announcesIn",
    "badTokens",
)


class PeerStore:
    """
    Peers announced to us, per info-hash, with expiry and caps so that the
    memory used is bounded whatever the traffic.

    @ivar maxPerInfoHash: peers kept per info-hash (the oldest goes first).
    @ivar maxInfoHashes: info-hashes kept; a new one beyond is refused.
    @ivar maxPeers: peers kept in total; a new one beyond is refused unless
        it replaces the oldest peer of its own info-hash.
    @ivar lifetime: seconds a peer is kept after its last announce.
    """

    def __init__(
        self,
        maxPerInfoHash: int = 200,
        maxInfoHashes: int = 2000,
        maxPeers: int = 20000,
        lifetime: float = PEER_LIFETIME,
    ) -> None:
        self.maxPerInfoHash = maxPerInfoHash
        self.maxInfoHashes = maxInfoHashes
        self.maxPeers = maxPeers
        self.lifetime = lifetime
        # info-hash -> {address: last announce}, oldest first.
        self._swarms: Dict[bytes, OrderedDict] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def infoHashCount(self) -> int:
        """
        How many info-hashes have peers.
        """
        return len(self._swarms)

    def wouldAccept(self, infoHash: bytes) -> bool:
        """
        Whether an announce for C{infoHash} would be stored.
        """
        return infoHash in self._swarms or (
            len(self._swarms) < self.maxInfoHashes and self._count < self.maxPeers
        )

    def add(self, infoHash: bytes, address: Address, now: float) -> bool:
        """
        Store (or refresh) a peer.

        @return: whether it is stored.
        """
        swarm = self._swarms.get(infoHash)
        if swarm is None:
            if not self.wouldAccept(infoHash):
                return False
            swarm = self._swarms[infoHash] = OrderedDict()
        if address in swarm:
            swarm.move_to_end(address)
        elif len(swarm) >= self.maxPerInfoHash or (
            self._count >= self.maxPeers and swarm
        ):
            swarm.popitem(last=False)
        elif self._count >= self.maxPeers:
            return False
        else:
            self._count += 1
        swarm[address] = now
        return True

    def get(self, infoHash: bytes, now: float, count: int, rng) -> List[Address]:
        """
        Up to C{count} live peers of C{infoHash}, a random sample when there
        are more.
        """
        swarm = self._swarms.get(infoHash)
        if swarm is None:
            return []
        self._expireSwarm(infoHash, swarm, now)
        peers = list(swarm)
        if len(peers) > count:
            peers = rng.sample(peers, count)
        return peers

    def _expireSwarm(self, infoHash: bytes, swarm: OrderedDict, now: float) -> None:
        while swarm:
            address, seen = next(iter(swarm.items()))
            if now - seen < self.lifetime:
                break
            del swarm[address]
            self._count -= 1
        if not swarm:
            del self._swarms[infoHash]

    def expire(self, now: float) -> None:
        """
        Forget peers not announced for L{lifetime} seconds.
        """
        for infoHash, swarm in list(self._swarms.items()):
            self._expireSwarm(infoHash, swarm, now)


class RateLimiter:
    """
    A token bucket per key (a source address): C{burst} queries at once,
    then C{rate} per second.  At most C{maxTracked} keys are remembered
    (the least recently seen is forgotten first), so memory is bounded.
    """

    def __init__(
        self, rate: float = 10.0, burst: float = 40.0, maxTracked: int = 10000
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.maxTracked = maxTracked
        self._buckets: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: Any, now: float) -> bool:
        """
        Whether one more query from C{key} is allowed now (and count it).
        """
        state = self._buckets.get(key)
        if state is None:
            if len(self._buckets) >= self.maxTracked:
                self._buckets.popitem(last=False)
            state = self._buckets[key] = [self.burst, now]
        else:
            self._buckets.move_to_end(key)
        tokens = min(self.burst, state[0] + (now - state[1]) * self.rate)
        state[1] = now
        if tokens < 1:
            state[0] = tokens
            return False
        state[0] = tokens - 1
        return True


_NEW, _ASKED, _ANSWERED, _FAILED = range(4)


class _Candidate:
    __slots__ = (
        "nodeId",
        "address",
        "distance",
        "hop",
        "state",
        "token",
        "slow",
    )

    def __init__(
        self, nodeId: Optional[bytes], address: Address, target: int, hop: int
    ):
        self.nodeId = nodeId
        self.address = address
        # Nodes of unknown id (bootstrap addresses) sort first.
        self.distance = -1 if nodeId is None else int.from_bytes(nodeId, "big") ^ target
        self.hop = hop
        self.state = _NEW
        self.token: Optional[bytes] = None
        self.slow = False


class Lookup:
    """
    One iterative lookup (Kademlia): query the closest nodes known, learn
    closer ones from their answers, until the k closest nodes found have
    all answered.

    @ivar target: the 20-byte target (node id or info-hash).
    @ivar method: C{b"find_node"} or C{b"get_peers"}.
    @ivar peers: peers found (C{get_peers}), in the order they came.
    @ivar queries: queries this lookup sent (C{announce_peer} included).
    @ivar responses: answers it got.
    @ivar hops: for C{get_peers}, the hop at which the first peer came (0 =
        our own store, 1 = a node we knew before the lookup); for
        C{find_node}, the hop of the closest node found; C{None} if nothing
        came.
    @ivar closest: once done, the k closest nodes that answered
        (L{NodeInfo}s), closest first.
    @ivar announced: C{announce_peer} queries sent after the lookup.
    @ivar done: whether it has finished.
    """

    def __init__(
        self,
        node: DHTNode,
        target: bytes,
        method: bytes,
        seeds: Iterable[Tuple[Optional[bytes], Address]],
        onPeer: Optional[Callable[[Address], None]] = None,
        onDone: Optional[Callable[[Lookup], None]] = None,
        announcePort: Optional[int] = None,
        impliedPort: bool = False,
    ) -> None:
        self.node = node
        self.target = target
        self.method = method
        self.onPeer = onPeer
        self.onDone = onDone
        self.announcePort = announcePort
        self.impliedPort = impliedPort
        self.peers: List[Address] = []
        self._peerSet: Set[Address] = set()
        self.queries = 0
        self.responses = 0
        self.hops: Optional[int] = None
        self.closest: List[NodeInfo] = []
        self.announced = 0
        self.done = False
        self._targetKey = int.from_bytes(target, "big")
        self._candidates: Dict[Address, _Candidate] = {}
        self._ids: Set[bytes] = set()
        # Queries counting against alpha (not slow), and all unanswered.
        self._inflight = 0
        self._outstanding = 0
        self._stepping = False
        self._again = False
        for nodeId, address in seeds:
            self._addCandidate(nodeId, address, 1)

    def __repr__(self) -> str:
        return (
            f"<Lookup {self.method.decode()} {self.target.hex()[:8]}"
            f" queries={self.queries} peers={len(self.peers)} done={self.done}>"
        )

    def _addCandidate(
        self, nodeId: Optional[bytes], address: Address, hop: int
    ) -> None:
        node = self.node
        if address in self._candidates or address == node.ownAddress:
            return
        if not isUsableAddress(address):
            return
        if nodeId is not None:
            if nodeId == node.nodeId or nodeId in self._ids:
                return
            self._ids.add(nodeId)
        self._candidates[address] = _Candidate(nodeId, address, self._targetKey, hop)

    def _prune(self) -> None:
        """
        Forget the farthest candidates not yet asked beyond
        L{MAX_CANDIDATES} (their ids stay known, so they do not come back).
        """
        excess = len(self._candidates) - MAX_CANDIDATES
        if excess <= 0:
            return
        spare = sorted(
            (c for c in self._candidates.values() if c.state == _NEW),
            key=lambda c: -c.distance,
        )
        for c in spare[:excess]:
            del self._candidates[c.address]

    def start(self) -> None:
        """
        Report the peers our own store holds (we may be one of the nodes
        closest to the info-hash), send the first queries (or finish at once
        if there is nobody to ask).
        """
        if self.method == b"get_peers":
            node = self.node
            now = node.clock.seconds()
            local = node.peerStore.get(self.target, now, MAX_VALUES, node.rng)
            self._gotPeers(local, 0)
        self._step()

    def _gotPeers(self, peers: Iterable[Address], hop: int) -> None:
        for peer in peers:
            if self.done:
                return
            if peer in self._peerSet or not isUsableAddress(peer):
                continue
            if self.hops is None:
                self.hops = hop
            self._peerSet.add(peer)
            self.peers.append(peer)
            self.node._peerFound()
            if self.onPeer is not None:
                self.onPeer(peer)

    def _step(self) -> None:
        # Answers may arrive from inside a send (an in-memory network): run
        # the loop once more instead of recursing.
        if self._stepping:
            self._again = True
            return
        self._stepping = True
        try:
            self._again = True
            while self._again and not self.done:
                self._again = False
                self._stepOnce()
        finally:
            self._stepping = False

    def _stepOnce(self) -> None:
        k = self.node.k
        ordered = sorted(
            (c for c in self._candidates.values() if c.state != _FAILED),
            key=lambda c: c.distance,
        )
        window = 0
        for c in ordered:
            if window >= k:
                break
            if c.state == _ANSWERED:
                window += 1
            elif c.state == _ASKED:
                if not c.slow:
                    window += 1
            else:
                if self._inflight >= self.node.alpha:
                    break
                self._ask(c)
                if c.state == _ASKED:
                    window += 1
        if self._outstanding == 0 and not self._again:
            self._finish()

    def _ask(self, c: _Candidate) -> None:
        node = self.node
        if self.method == b"get_peers":

            def build(t: bytes) -> krpc.Query:
                return GetPeers(t, node.nodeId, self.target)

        else:

            def build(t: bytes) -> krpc.Query:
                return FindNode(t, node.nodeId, self.target)

        c.state = _ASKED
        self._inflight += 1
        self._outstanding += 1
        sent = node._query(
            c.address,
            build,
            c.nodeId,
            lambda response: self._answered(c, response),
            lambda reason: self._failed(c),
            lambda: self._slow(c),
        )
        if not sent:
            if c.state == _ASKED:
                c.state = _FAILED
                self._inflight -= 1
                self._outstanding -= 1
            return
        self.queries += 1

    def _release(self, c: _Candidate) -> None:
        self._outstanding -= 1
        if not c.slow:
            self._inflight -= 1

    def _slow(self, c: _Candidate) -> None:
        if self.done or c.state != _ASKED:
            return
        c.slow = True
        self._inflight -= 1
        self._step()

    def _failed(self, c: _Candidate) -> None:
        if c.state != _ASKED:
            return
        self._release(c)
        c.state = _FAILED
        if not self.done:
            self._step()

    def _answered(self, c: _Candidate, response: Response) -> None:
        if c.state != _ASKED:
            return
        self._release(c)
        if self.done:
            c.state = _ANSWERED
            return
        c.state = _ANSWERED
        self.responses += 1
        if c.nodeId is None:
            c.nodeId = response.nodeId
            c.distance = int.from_bytes(response.nodeId, "big") ^ self._targetKey
            self._ids.add(response.nodeId)
        c.token = response.token
        if self.method == b"get_peers" and response.values:
            self._gotPeers(response.values, c.hop)
            if self.done:
                return
        for info in response.nodes:
            self._addCandidate(info.nodeId, info.address, c.hop + 1)
        self._prune()
        self._step()

    def _finish(self) -> None:
        self.done = True
        answered = sorted(
            (c for c in self._candidates.values() if c.state == _ANSWERED),
            key=lambda c: c.distance,
        )[: self.node.k]
        self.closest = [NodeInfo(c.nodeId, c.address) for c in answered]
        if self.method == b"find_node" and answered:
            self.hops = answered[0].hop
        if self.announcePort is not None:
            for c in answered:
                if c.token is not None:
                    self._announceTo(c)
        self._candidates.clear()
        self.node._lookupDone(self)
        if self.onDone is not None:
            self.onDone(self)

    def _announceTo(self, c: _Candidate) -> None:
        node = self.node
        token = c.token

        def build(t: bytes) -> krpc.Query:
            return AnnouncePeer(
                t, node.nodeId, self.target, self.announcePort, token, self.impliedPort
            )

        if node._query(c.address, build, c.nodeId, None, None):
            self.queries += 1
            self.announced += 1

    def cancel(self) -> None:
        """
        Stop: no more queries, no callbacks.
        """
        self.done = True
        self._candidates.clear()


class DHTNode:
    """
    A BEP 5 node, transport-free.

    @ivar nodeId: our 20-byte id.
    @ivar clock: C{seconds()} and C{callLater()} (C{IReactorTime}).
    @ivar send: C{send(data, address)}, called for every datagram to send.
    @ivar table: the L{RoutingTable}.
    @ivar peerStore: the L{PeerStore} of peers announced to us.
    @ivar rateLimiter: the L{RateLimiter} of incoming queries.
    @ivar transactions: the L{Transactions}: our queries in flight.
    @ivar tokens: the L{TokenSecrets} of the tokens we hand out.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        nodeId: Optional[bytes],
        clock,
        rng,
        send: Optional[Callable[[bytes, Address], None]] = None,
        ownAddress: Optional[Address] = None,
        savedNodes: Sequence = (),
        k: int = K,
        alpha: int = ALPHA,
        queryTimeout: float = QUERY_TIMEOUT,
        peerStore: Optional[PeerStore] = None,
        rateLimiter: Optional[RateLimiter] = None,
        maxTransactions: int = MAX_TRANSACTIONS,
    ) -> None:
        """
        @param nodeId: our id; C{None} for a random one from C{rng}.
        @param rng: a C{random.Random} (a C{SystemRandom} in production):
            node id, token secrets, transaction ids, samples.
        @param ownAddress: our own C{(host, port)} when known: never queried,
            never put in the table.
        @param savedNodes: what L{serialize} returned last time: asked first
            when bootstrapping.
        """
        if nodeId is None:
            nodeId = rng.getrandbits(160).to_bytes(20, "big")
        if type(nodeId) is not bytes or len(nodeId) != 20:
            raise ValueError("node id must be 20 bytes")
        self.nodeId = nodeId
        self.clock = clock
        self.rng = rng
        self.send = send
        self.k = k
        self.alpha = alpha
        self.maxTransactions = maxTransactions
        now = clock.seconds()
        self.table = RoutingTable(nodeId, now, k, ownAddress)
        self.peerStore = peerStore if peerStore is not None else PeerStore()
        self.rateLimiter = rateLimiter if rateLimiter is not None else RateLimiter()
        self.bootstrapAddresses: List[Address] = []
        self.savedNodes = parseSavedNodes(savedNodes)
        self.lookups: Set[Lookup] = set()
        self.transactions = Transactions(clock, queryTimeout, self._timedOut)
        self._pinging: Set[Address] = set()
        self.tokens = TokenSecrets(rng, now)
        self._maintenance = None
        self._bootstrapLookup: Optional[Lookup] = None
        self.running = False
        self._counters = dict.fromkeys(_COUNTERS, 0)

    # -- state -------------------------------------------------------------

    @property
    def ownAddress(self) -> Optional[Address]:
        """
        Our own C{(host, port)}, if known.
        """
        return self.table.ownAddress

    @ownAddress.setter
    def ownAddress(self, address: Optional[Address]) -> None:
        self.table.ownAddress = address

    @property
    def stats(self) -> DHTStats:
        """
        The counters now (a L{DHTStats}).
        """
        now = self.clock.seconds()
        return DHTStats(
            nodes=len(self.table),
            goodNodes=self.table.goodCount(now),
            buckets=len(self.table.buckets),
            activeLookups=len(self.lookups),
            storedPeers=len(self.peerStore),
            storedInfoHashes=self.peerStore.infoHashCount,
            **self._counters,
        )

    @property
    def pendingTransactions(self) -> int:
        """
        Our queries awaiting an answer.
        """
        return len(self.transactions)

    @property
    def queryTimeout(self) -> float:
        """
        Seconds before an unanswered query counts as failed.
        """
        return self.transactions.queryTimeout

    @queryTimeout.setter
    def queryTimeout(self, value: float) -> None:
        self.transactions.queryTimeout = value

    def serialize(self) -> List[dict]:
        """
        The nodes to remember across a restart (JSON-able; pass them back as
        C{savedNodes}).
        """
        return self.table.serialize(self.clock.seconds())

    # -- life cycle --------------------------------------------------------

    def start(self) -> None:
        """
        Start the periodic maintenance.
        """
        if self.running:
            return
        self.running = True
        self._maintenance = self.clock.callLater(MAINTENANCE_INTERVAL, self._maintain)

    def stop(self) -> None:
        """
        Stop: cancel timers, lookups and our queries in flight.
        """
        self.running = False
        if self._maintenance is not None and self._maintenance.active():
            self._maintenance.cancel()
        self._maintenance = None
        for lookup in list(self.lookups):
            lookup.cancel()
        self.lookups.clear()
        self.transactions.clear()
        self._pinging.clear()

    def _maintain(self) -> None:
        self._maintenance = self.clock.callLater(MAINTENANCE_INTERVAL, self._maintain)
        now = self.clock.seconds()
        self.peerStore.expire(now)
        self.tokens.rotate(now)
        if not len(self.table):
            if self.bootstrapAddresses or self.savedNodes:
                self.bootstrap()
            return
        for bucket in self.table.staleBuckets(now)[:MAX_REFRESHES]:
            self.table.touch(bucket, now)
            self.findNode(bucket.randomId(self.rng))

    # -- tokens ------------------------------------------------------------

    def makeToken(self, host: str, infoHash: bytes) -> bytes:
        """
        The token we give C{host} for announcing C{infoHash}.
        """
        return self.tokens.make(host, infoHash, self.clock.seconds())

    def checkToken(self, token: bytes, host: str, infoHash: bytes) -> bool:
        """
        Whether C{token} is one we gave C{host} for C{infoHash} under the
        current or the previous secret.
        """
        return self.tokens.check(token, host, infoHash, self.clock.seconds())

    # -- datagrams in ------------------------------------------------------

    def datagramReceived(self, data: bytes, address: Address) -> None:
        """
        Handle one datagram from C{address}.
        """
        if not self.running:
            return
        now = self.clock.seconds()
        # A datagram from an address we await nothing from can only be a
        # query (or junk): count it against the limit before decoding, so
        # that a flood costs a dictionary lookup per datagram.
        expected = self.transactions.awaits(address)
        if not expected and not self._allow(address, now):
            return
        try:
            message = krpc.decode(data)
        except KRPCError as e:
            self._counters["malformed"] += 1
            if e.query and e.transactionId is not None:
                if not expected or self._allow(address, now):
                    self._sendMessage(
                        Error(e.transactionId, e.code, str(e)[:100]), address
                    )
            return
        if isinstance(message, (Response, Error)):
            self._answerReceived(message, address, now)
        elif not expected or self._allow(address, now):
            self._queryReceived(message, address, now)

    def _allow(self, address: Address, now: float) -> bool:
        if self.rateLimiter.allow(address, now):
            return True
        self._counters["rateLimited"] += 1
        return False

    def _answerReceived(self, message, address: Address, now: float) -> None:
        transaction = self.transactions.get(message.transactionId)
        if transaction is None or transaction.address != address:
            self._counters["unexpected"] += 1
            return
        self.transactions.forget(message.transactionId)
        transaction.timer.cancel()
        if isinstance(message, Error):
            self._counters["errorsIn"] += 1
            self.log.debug(
                "DHT error {code} from {address}: {text}",
                code=message.code,
                address=address,
                text=message.text,
            )
            if transaction.onFailure is not None:
                transaction.onFailure(message)
            return
        self._counters["responsesIn"] += 1
        expected = transaction.nodeId
        if message.nodeId == self.nodeId or (
            expected is not None and message.nodeId != expected
        ):
            # Another node at that address now, or a reflection of our own
            # query: not the node we asked.
            self.table.failed(address, now, expected)
            if transaction.onFailure is not None:
                transaction.onFailure(message)
            return
        toPing = self.table.responded(message.nodeId, address, now)
        if toPing:
            self._probe(toPing)
        if transaction.onResponse is not None:
            transaction.onResponse(message)

    def _queryReceived(self, query, address: Address, now: float) -> None:
        self._counters["queriesIn"] += 1
        t = query.transactionId
        ip = address if isUsableAddress(address) else None
        if isinstance(query, Ping):
            reply = Response(t, self.nodeId, ip=ip)
        elif isinstance(query, FindNode):
            reply = Response(
                t, self.nodeId, self._nodesFor(query.target, address), ip=ip
            )
        elif isinstance(query, GetPeers):
            infoHash = query.infoHash
            values = self.peerStore.get(infoHash, now, MAX_VALUES, self.rng)
            token = None
            if self.peerStore.wouldAccept(infoHash):
                token = self.makeToken(address[0], infoHash)
            reply = Response(
                t,
                self.nodeId,
                self._nodesFor(infoHash, address),
                tuple(values) or None,
                token,
                ip,
            )
        else:
            reply = self._announceReceived(query, address, now, ip)
        self._sendMessage(reply, address)
        if (
            not self.table.queried(query.nodeId, address, now)
            and not query.readOnly
            and self.table.wants(query.nodeId, address, now)
        ):
            self._ping(address, query.nodeId)

    def _announceReceived(self, query: AnnouncePeer, address: Address, now, ip):
        host = address[0]
        if not self.checkToken(query.token, host, query.infoHash):
            self._counters["badTokens"] += 1
            return Error(query.transactionId, krpc.ERROR_PROTOCOL, "invalid token")
        peer = (host, address[1] if query.impliedPort else query.port)
        if not isUsableAddress(peer):
            return Error(query.transactionId, krpc.ERROR_PROTOCOL, "invalid port")
        self._counters["announcesIn"] += 1
        self.peerStore.add(query.infoHash, peer, now)
        return Response(query.transactionId, self.nodeId, ip=ip)

    def _nodesFor(self, target: bytes, requester: Address) -> Tuple[NodeInfo, ...]:
        nodes = self.table.closest(target, self.k + 1)
        return tuple(
            NodeInfo(e.nodeId, e.address) for e in nodes if e.address != requester
        )[: self.k]

    # -- datagrams out -----------------------------------------------------

    def _sendMessage(self, message, address: Address) -> None:
        if not isUsableAddress(address):
            return
        try:
            data = krpc.encode(message)
        except ValueError as e:
            self.log.error("DHT cannot encode {what}: {error}", what=message, error=e)
            return
        self.send(data, address)

    def _query(
        self,
        address: Address,
        build: Callable[[bytes], krpc.Query],
        nodeId: Optional[bytes],
        onResponse: Optional[Callable[[Response], None]],
        onFailure: Optional[Callable[[Any], None]],
        onSlow: Optional[Callable[[], None]] = None,
    ) -> bool:
        """
        Send a query and track its transaction.

        @param build: makes the query from its transaction id.
        @param nodeId: the id we expect in the answer, if known.
        @param onResponse: called with the L{Response}.
        @param onFailure: called with the L{Error}, the L{Response} from
            the wrong node, or C{None} after L{queryTimeout}.
        @param onSlow: called if no answer came within L{SLOW_QUERY}
            seconds (the query stays pending).
        @return: whether it was sent (not when stopped, when too many
            queries are in flight, or to an unusable address).
        """
        if (
            not self.running
            or len(self.transactions) >= self.maxTransactions
            or not isUsableAddress(address)
            or address == self.ownAddress
        ):
            return False
        query = self.transactions.open(
            address, build, nodeId, onResponse, onFailure, onSlow
        )
        self._counters["queriesOut"] += 1
        self._sendMessage(query, address)
        return True

    def _timedOut(self, transaction: Transaction) -> None:
        """
        A query of ours went unanswered: the node failed.
        """
        self._counters["timeouts"] += 1
        self.table.failed(transaction.address, self.clock.seconds(), transaction.nodeId)
        if transaction.onFailure is not None:
            transaction.onFailure(None)

    def _ping(
        self, address: Address, nodeId: Optional[bytes], probe: bool = False
    ) -> None:
        """
        Ping C{address} (a stranger that queried us, or, with C{probe}, a
        questionable node of a full bucket).
        """
        if address in self._pinging or len(self._pinging) >= MAX_PINGS:
            return

        def answered(response: Response) -> None:
            self._pinging.discard(address)
            if probe:
                # BEP 5: it is good; check the next questionable node.
                now = self.clock.seconds()
                self._probe(self.table.questionable(response.nodeId, now))

        def failed(reason: Any) -> None:
            self._pinging.discard(address)
            entry = self.table.get(address)
            if reason is None and entry is not None and not entry.isBad():
                # BEP 5: try once more before the node is discarded.
                self._ping(address, entry.nodeId, probe)

        def build(t: bytes) -> Ping:
            return Ping(t, self.nodeId)

        self._pinging.add(address)
        if not self._query(address, build, nodeId, answered, failed):
            self._pinging.discard(address)

    def _probe(self, questionable: List[NodeEntry]) -> None:
        """
        Ping the least recently seen of C{questionable} (the questionable
        nodes of one bucket), unless one of them is being pinged already.
        """
        if questionable and not any(e.address in self._pinging for e in questionable):
            entry = questionable[0]
            self._ping(entry.address, entry.nodeId, probe=True)

    def addNode(self, address: Address) -> None:
        """
        Ping C{address}; if it answers, it enters the table (what BEP 5 asks
        on a peer's PORT message).  Unusable addresses, our own and
        addresses already known are ignored.
        """
        address = (address[0], address[1])
        if isUsableAddress(address) and address not in self.table:
            self._ping(address, None)

    # -- lookups -----------------------------------------------------------

    def _seeds(self, target: bytes, extra: Iterable = ()) -> List:
        seeds: List = [
            (e.nodeId, e.address) for e in self.table.closest(target, self.k)
        ]
        seeds.extend(extra)
        return seeds

    def _start(self, lookup: Lookup) -> Lookup:
        self.lookups.add(lookup)
        lookup.start()
        return lookup

    def _lookupDone(self, lookup: Lookup) -> None:
        self.lookups.discard(lookup)
        self._counters["lookups"] += 1
        if lookup is self._bootstrapLookup:
            self._bootstrapLookup = None
            self._refreshFarBuckets()

    def _refreshFarBuckets(self) -> None:
        """
        After joining, look up a random id in every bucket but our own (as
        Kademlia's join does): fills our table with far nodes and makes us
        known to them.
        """
        now = self.clock.seconds()
        own = self.table.bucketFor(self.nodeId)
        for bucket in list(self.table.buckets):
            if bucket is not own and len(bucket.nodes) < self.k:
                self.table.touch(bucket, now)
                self.findNode(bucket.randomId(self.rng))

    def _peerFound(self) -> None:
        self._counters["peersFound"] += 1

    def findNode(
        self, target: bytes, done: Optional[Callable[[Lookup], None]] = None
    ) -> Lookup:
        """
        Look up the nodes closest to C{target}.

        @param done: called with the L{Lookup} once it finished.
        """
        lookup = Lookup(self, target, b"find_node", self._seeds(target), onDone=done)
        return self._start(lookup)

    def getPeers(
        self,
        infoHash: bytes,
        callback: Optional[Callable[[Address], None]] = None,
        done: Optional[Callable[[Lookup], None]] = None,
    ) -> Lookup:
        """
        Look up the peers of C{infoHash}.

        @param callback: called with each new peer C{(host, port)} as it
            arrives.
        @param done: called with the L{Lookup} once it finished.
        """
        lookup = Lookup(
            self, infoHash, b"get_peers", self._seeds(infoHash), callback, done
        )
        return self._start(lookup)

    def announce(
        self,
        infoHash: bytes,
        port: int,
        impliedPort: bool = False,
        callback: Optional[Callable[[Address], None]] = None,
        done: Optional[Callable[[Lookup], None]] = None,
    ) -> Lookup:
        """
        Look up the peers of C{infoHash}, then announce ourselves as a peer
        on TCP C{port} (or, with C{impliedPort}, on our UDP port) to the k
        closest nodes that gave a token.
        """
        if type(port) is not int or not 0 <= port <= 0xFFFF:
            raise ValueError(f"port out of range: {port!r}")
        lookup = Lookup(
            self,
            infoHash,
            b"get_peers",
            self._seeds(infoHash),
            callback,
            done,
            announcePort=port,
            impliedPort=impliedPort,
        )
        return self._start(lookup)

    def bootstrap(
        self,
        addresses: Iterable[Address] = (),
        done: Optional[Callable[[Lookup], None]] = None,
    ) -> Optional[Lookup]:
        """
        Join the DHT: look up our own id, asking C{addresses} (remembered
        for later bootstraps), the saved nodes and the table.  Host names
        must already be resolved to IPv4 addresses.

        @return: the lookup, or C{None} if one is already running.
        """
        for address in addresses:
            address = (address[0], address[1])
            if (
                isUsableAddress(address)
                and address not in self.bootstrapAddresses
                and len(self.bootstrapAddresses) < MAX_BOOTSTRAP
            ):
                self.bootstrapAddresses.append(address)
        if self._bootstrapLookup is not None:
            return None
        extra: List = [(None, a) for a in self.bootstrapAddresses]
        extra.extend(self.savedNodes)
        lookup = Lookup(
            self,
            self.nodeId,
            b"find_node",
            self._seeds(self.nodeId, extra),
            onDone=done,
        )
        self._bootstrapLookup = lookup
        self._start(lookup)
        return lookup
