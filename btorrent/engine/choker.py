"""
Who we upload to: the choker.

L{chooseUnchoked} is the policy, one pure function over a list of peers:
while downloading, tit-for-tat (the interested peers that give us the best
download rate); while seeding, the interested peers we upload to fastest;
plus one optimistic unchoke.  L{Choker} runs it on the session's heartbeat
and rotates the optimistic unchoke; L{ChokerService} (in
L{btorrent.engine.chokerservice}) wires a L{Choker} to a torrent.  This
module never imports C{twisted.internet}.

The peers are L{btorrent.peer.protocol.PeerProtocol} objects, or anything with the
same few attributes:
  - C{peerInterested}: the peer is interested in us;
  - C{amChoking}: we choke it;
  - C{choke()}, C{unchoke()}: change that (the L{Choker} only calls them on
    a change);
  - C{downloadRate}, C{uploadRate}: L{btorrent.util.rate.RateMeter}s (read by the
    default rate functions as C{.rate}, bytes/s);
  - C{connectedAt} (optional, default 0): the clock time the connection was
    established, to favour new peers in the optimistic unchoke.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable, List, Optional, Set, Tuple

from btorrent.util.heartbeat import Heartbeat


def _downloadRate(peer: Any) -> float:
    return peer.downloadRate.rate


def _uploadRate(peer: Any) -> float:
    return peer.uploadRate.rate


def rankPeers(
    peers: Iterable[Any],
    seeding: bool,
    downloadRate: Callable[[Any], float] = _downloadRate,
    uploadRate: Callable[[Any], float] = _uploadRate,
    seedingKey: Optional[Callable[[Any], Any]] = None,
) -> List[Any]:
    """
    Order the interested peers, best first: by the rate they give us (or, when
    seeding, the rate we upload to them); among equal rates the ones we
    already unchoke first (to avoid churn), then in the given order.

    @param peers: the candidate peers.
    @param seeding: C{True} when we have everything.
    @param downloadRate: C{downloadRate(peer)}, bytes/s we get from it.
    @param uploadRate: C{uploadRate(peer)}, bytes/s we send to it.
    @param seedingKey: when seeding, rank by C{seedingKey(peer)} (lowest
        first) instead of the upload rate, if given.
    @return: the interested peers, best first.
    """
    interested = [peer for peer in peers if peer.peerInterested]
    if seeding and seedingKey is not None:
        return sorted(interested, key=seedingKey)
    rate = uploadRate if seeding else downloadRate
    return sorted(
        interested,
        key=lambda peer: (-rate(peer), bool(getattr(peer, "amChoking", True))),
    )


def chooseUnchoked(
    peers: Iterable[Any],
    seeding: bool,
    slots: int = 4,
    optimistic: Optional[Any] = None,
    downloadRate: Callable[[Any], float] = _downloadRate,
    uploadRate: Callable[[Any], float] = _uploadRate,
    seedingKey: Optional[Callable[[Any], Any]] = None,
) -> Set[Any]:
    """
    Choose the peers to unchoke.

    @param peers: the connected peers.
    @param seeding: C{True} when we have everything: rank by the rate we
        upload to each peer rather than the rate it gives us.
    @param slots: how many regular unchoke slots.
    @param optimistic: the peer currently unchoked optimistically, or
        C{None}; it is unchoked besides the C{slots} others if it is among
        C{peers} and interested.
    @param downloadRate: C{downloadRate(peer)}, bytes/s we get from it.
    @param uploadRate: C{uploadRate(peer)}, bytes/s we send to it.
    @param seedingKey: see L{rankPeers}.
    @return: the set of peers to unchoke: at most C{slots} interested peers,
        best first (see L{rankPeers}), plus the optimistic one.  Peers that
        are not interested never take a slot.
    """
    peers = list(peers)
    ranked = rankPeers(
        [peer for peer in peers if peer is not optimistic],
        seeding,
        downloadRate,
        uploadRate,
        seedingKey,
    )
    chosen = set(ranked[: max(0, slots)])
    if optimistic is not None and optimistic.peerInterested and optimistic in peers:
        chosen.add(optimistic)
    return chosen


#: Seconds a choker without peers sleeps on the heartbeat (a peer arriving
#: wakes it at once).
IDLE_SLEEP = 60.0


class Choker:
    """
    Runs L{chooseUnchoked} every C{interval} seconds, and rotates the
    optimistic unchoke every C{optimisticInterval} seconds among the choked
    interested peers (peers connected less than C{newPeerAge} seconds ago
    count C{newPeerWeight} times).

    Free slots are filled at once when told of a change (L{peerAdded},
    L{peerRemoved}, L{interestChanged}, L{peersChanged}) and also every
    C{fillInterval} seconds, so that a newly interested peer does not wait
    for the next full rechoke; filling never chokes a peer that still
    deserves its slot.

    @ivar optimistic: the peer unchoked optimistically, or C{None}.
    @ivar regular: the peers holding a regular slot.
    """

    def __init__(
        self,
        clock: Any,
        peersSource: Callable[[], Iterable[Any]],
        seedingSource: Callable[[], bool],
        rng: random.Random,
        slots: int = 4,
        interval: float = 10.0,
        optimisticInterval: float = 30.0,
        fillInterval: Optional[float] = 1.0,
        newPeerAge: float = 60.0,
        newPeerWeight: int = 3,
        downloadRate: Callable[[Any], float] = _downloadRate,
        uploadRate: Callable[[Any], float] = _uploadRate,
        seedingOrder: str = "fastest",
        roundRobinPeriod: Optional[float] = None,
        heartbeat: Optional[Heartbeat] = None,
    ) -> None:
        """
        @param clock: provides C{IReactorTime}.
        @param peersSource: returns the connected peers.
        @param seedingSource: returns C{True} when we have every piece.
        @param rng: the source of randomness for the optimistic unchoke.
        @param slots: regular unchoke slots (the optimistic one is extra).
        @param interval: seconds between full rechokes.
        @param optimisticInterval: seconds between optimistic rotations.
        @param fillInterval: seconds between checks for free slots, or
            C{None} for none.
        @param newPeerAge: peers connected for less than this many seconds
            are new.
        @param newPeerWeight: how much likelier a new peer is to be chosen
            as the optimistic unchoke.
        @param downloadRate: C{downloadRate(peer)}, bytes/s we get from it.
        @param uploadRate: C{uploadRate(peer)}, bytes/s we send to it.
        @param seedingOrder: while seeding, C{"fastest"} (the peers we upload
            to fastest keep the slots) or C{"roundrobin"} (a peer keeps its
            slot for C{roundRobinPeriod} seconds, then the peers that waited
            longest take their turn).
        @param roundRobinPeriod: seconds of a turn in round robin (default
            three C{interval}s).
        @param heartbeat: the session's L{Heartbeat}, on which the choker's
            periodic work runs; without one, a timer of its own fires when
            the next piece of work is due.
        @raise ValueError: for an unknown C{seedingOrder}.
        """
        if seedingOrder not in ("fastest", "roundrobin"):
            raise ValueError(f"unknown seeding order {seedingOrder!r}")
        self.seedingOrder = seedingOrder
        self.roundRobinPeriod = (
            3 * interval if roundRobinPeriod is None else roundRobinPeriod
        )
        # When each peer was last unchoked / choked by us (round robin).
        self._unchokedAt: dict = {}
        self._chokedAt: dict = {}
        self.clock = clock
        self.peersSource = peersSource
        self.seedingSource = seedingSource
        self.rng = rng
        self.slots = slots
        self.interval = interval
        self.optimisticInterval = optimisticInterval
        self.fillInterval = fillInterval
        self.newPeerAge = newPeerAge
        self.newPeerWeight = newPeerWeight
        self.downloadRate = downloadRate
        self.uploadRate = uploadRate
        self.optimistic: Optional[Any] = None
        self.regular: Set[Any] = set()
        self.heartbeat = heartbeat
        self._running = False
        self._due: dict = {}
        self._periods: tuple = ()
        self._timer = None

    # Time

    @property
    def running(self) -> bool:
        """
        C{True} between L{start} and L{stop}.
        """
        return self._running

    def start(self) -> None:
        """
        Choose an optimistic unchoke, rechoke, and keep doing so on the
        heartbeat.
        """
        if self._running:
            return
        self._running = True
        now = self.clock.seconds()
        self._due = {
            "regular": now + self.interval,
            "optimistic": now + self.optimisticInterval,
        }
        if self.fillInterval is not None:
            self._due["fill"] = now + self.fillInterval
        # Built once: ten thousand idle torrents tick.
        self._periods = (
            ("optimistic", self.optimisticInterval, self.rotateOptimistic),
            ("regular", self.interval, self.rechoke),
            ("fill", self.fillInterval, self.fillSlots),
        )
        if self.heartbeat is not None:
            self.heartbeat.subscribe(self, self.tick)
        else:
            self._scheduleTimer()
        if self.regular or self.optimistic is not None or self._peers():
            self.rotateOptimistic()

    def stop(self) -> None:
        """
        Stop the periodic work (the peers keep their state).
        """
        self._running = False
        if self.heartbeat is not None:
            self.heartbeat.unsubscribe(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _scheduleTimer(self) -> None:
        delay = max(min(self._due.values()) - self.clock.seconds(), 0.0)
        self._timer = self.clock.callLater(delay, self._timerFired)

    def _timerFired(self) -> None:
        self._timer = None
        self.tick(self.clock.seconds())
        if self._running:
            self._scheduleTimer()

    def tick(self, now: float) -> Optional[float]:
        """
        A heartbeat: rechoke, rotate the optimistic unchoke and fill free
        slots when each is due (nothing is looked at without peers).

        @return: without peers, when to look again (L{IDLE_SLEEP} from now);
            otherwise C{None}.
        """
        # No one to choke: the periods pass with nothing to do, and the
        # heartbeat need not call until a peer arrives (L{peersChanged} and
        # L{peerAdded} wake it).
        idle = not self.regular and self.optimistic is None and not self._peers()
        due = self._due
        for name, period, action in self._periods:
            when = due.get(name)
            if when is not None and now >= when - 1e-9:
                due[name] = now + period
                if self._running and not idle:
                    action()
        return now + IDLE_SLEEP if idle else None

    # Hooks

    def _wake(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.wake(self)

    def peerAdded(self, peer: Any) -> None:
        """
        A peer connected: fill a free slot with it if it is interested.
        """
        self._wake()
        self.fillSlots()

    def peerRemoved(self, peer: Any) -> None:
        """
        A peer left: give its slot to another.
        """
        self.regular.discard(peer)
        if self.optimistic is peer:
            self.optimistic = None
        self.fillSlots()

    def interestChanged(self, peer: Any) -> None:
        """
        A peer became interested (fill a free slot) or not interested (free
        its slot).
        """
        self.fillSlots()

    def peersChanged(self) -> None:
        """
        Something about the peers changed: fill free slots.
        """
        self._wake()
        self.fillSlots()

    # Policy

    def _peers(self) -> List[Any]:
        return list(self.peersSource())

    def _validOptimistic(self, peers: List[Any]) -> Optional[Any]:
        optimistic = self.optimistic
        if optimistic is not None and optimistic.peerInterested and optimistic in peers:
            return optimistic
        return None

    def _weight(self, peer: Any, now: float) -> int:
        if now - (getattr(peer, "connectedAt", None) or 0) < self.newPeerAge:
            return self.newPeerWeight
        return 1

    def _chooseOptimistic(self, candidates: List[Any]) -> Optional[Any]:
        if not candidates:
            return None
        now = self.clock.seconds()
        weights = [self._weight(peer, now) for peer in candidates]
        point = self.rng.random() * sum(weights)
        for peer, weight in zip(candidates, weights):
            point -= weight
            if point < 0:
                return peer
        return candidates[-1]

    def _seedingKey(self) -> Optional[Callable[[Any], Any]]:
        if self.seedingOrder != "roundrobin":
            return None
        now = self.clock.seconds()
        period = self.roundRobinPeriod

        def key(peer: Any) -> Tuple[int, float]:
            unchokedAt = self._unchokedAt.get(peer)
            if unchokedAt is not None and not peer.amChoking:
                if now - unchokedAt < period:
                    # Its turn is not over.
                    return (0, unchokedAt)
                # Its turn is over: to the back of the queue.
                return (1, now)
            return (1, self._chokedAt.get(peer, float("-inf")))

        return key

    def _rank(self, peers: Iterable[Any], seeding: bool) -> List[Any]:
        return rankPeers(
            peers, seeding, self.downloadRate, self.uploadRate, self._seedingKey()
        )

    def _choose(
        self, peers: List[Any], seeding: bool, optimistic: Optional[Any]
    ) -> Set[Any]:
        return chooseUnchoked(
            peers,
            seeding,
            self.slots,
            optimistic,
            self.downloadRate,
            self.uploadRate,
            self._seedingKey(),
        )

    def rechoke(self) -> None:
        """
        Recompute every slot from the current rates.
        """
        peers = self._peers()
        seeding = self.seedingSource()
        optimistic = self._validOptimistic(peers)
        unchoked = self._choose(peers, seeding, optimistic)
        regular = unchoked - {optimistic}
        if optimistic is None:
            optimistic = self._chooseOptimistic(
                [p for p in peers if p.peerInterested and p not in regular]
            )
        self._apply(peers, regular, optimistic)

    def rotateOptimistic(self) -> None:
        """
        Move the optimistic unchoke to another choked interested peer (if
        there is one), then rechoke.
        """
        peers = self._peers()
        seeding = self.seedingSource()
        regular = self._choose(peers, seeding, None)
        candidates = [p for p in peers if p.peerInterested and p not in regular]
        others = [p for p in candidates if p is not self.optimistic]
        self.optimistic = self._chooseOptimistic(others or candidates)
        self.rechoke()

    def fillSlots(self) -> None:
        """
        Give free slots (and a missing optimistic unchoke) to interested
        peers, and take them from peers gone or no longer interested, without
        moving any peer that keeps its slot.
        """
        if not self.running:
            return
        peers = self._peers()
        present = set(peers)
        optimistic = self._validOptimistic(peers)
        regular = {
            peer
            for peer in self.regular
            if peer in present and peer.peerInterested and peer is not optimistic
        }
        if len(regular) < self.slots:
            ranked = self._rank(
                [p for p in peers if p not in regular and p is not optimistic],
                self.seedingSource(),
            )
            regular.update(ranked[: self.slots - len(regular)])
        if optimistic is None:
            optimistic = self._chooseOptimistic(
                [p for p in peers if p.peerInterested and p not in regular]
            )
        self._apply(peers, regular, optimistic)

    def _apply(self, peers: List[Any], regular: Set[Any], optimistic: Any) -> None:
        self.regular = set(regular)
        self.optimistic = optimistic
        unchoked = self.regular | ({optimistic} if optimistic is not None else set())
        now = self.clock.seconds()
        for peer in peers:
            if peer in unchoked:
                if peer.amChoking:
                    peer.unchoke()
                    self._unchokedAt[peer] = now
            elif not peer.amChoking:
                peer.choke()
                self._chokedAt[peer] = now
        present = set(peers)
        for times in (self._unchokedAt, self._chokedAt):
            for peer in [p for p in times if p not in present]:
                del times[peer]
