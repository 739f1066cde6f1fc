"""
Tests for L{btorrent.engine.choker}.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from btorrent.engine.choker import Choker, chooseUnchoked, rankPeers
from btorrent.engine.chokerservice import ChokerService
from btorrent.util.events import EventSource
from btorrent.util.heartbeat import Heartbeat
from btorrent.util.rate import RateMeter
from tests.fakes import FakePeer


def choosable(
    name: str,
    interested: bool = True,
    down: float = 0.0,
    up: float = 0.0,
    connectedAt: float = -1000.0,
) -> FakePeer:
    """
    A fake peer as the choker sees it: interested, connected long ago,
    with the rates given.
    """
    return FakePeer(
        name=name, interested=interested, down=down, up=up, connectedAt=connectedAt
    )


def names(peers) -> List[str]:
    return sorted(peer.name for peer in peers)


def unchokedNames(peers) -> List[str]:
    return sorted(peer.name for peer in peers if not peer.amChoking)


class ChooseTests(SynchronousTestCase):
    """
    The policy function.
    """

    def test_titForTat(self) -> None:
        """
        While downloading, the interested peers that give us the best
        download rates are unchoked.
        """
        peers = [
            choosable("a", down=10),
            choosable("b", down=50),
            choosable("c", down=30),
            choosable("d", down=5, up=1000),
            choosable("e", down=40),
            choosable("f", down=20),
        ]
        self.assertEqual(names(chooseUnchoked(peers, False)), ["b", "c", "e", "f"])
        self.assertEqual(names(chooseUnchoked(peers, False, slots=2)), ["b", "e"])
        self.assertEqual(names(chooseUnchoked(peers, False, slots=0)), [])

    def test_seeding(self) -> None:
        """
        While seeding, the peers we upload to fastest are unchoked.
        """
        peers = [
            choosable("a", down=100, up=1),
            choosable("b", down=0, up=9),
            choosable("c", down=100, up=5),
            choosable("d", down=0, up=7),
        ]
        self.assertEqual(names(chooseUnchoked(peers, True, slots=2)), ["b", "d"])

    def test_uninterestedNeverRegular(self) -> None:
        """
        Peers that are not interested never take a slot, however fast.
        """
        peers = [
            choosable("a", interested=False, down=1000),
            choosable("b", down=1),
            choosable("c", interested=False, down=500),
        ]
        self.assertEqual(names(chooseUnchoked(peers, False)), ["b"])
        self.assertEqual(
            names(chooseUnchoked(peers, False, optimistic=peers[0])), ["b"]
        )

    def test_optimisticExtra(self) -> None:
        """
        The optimistic unchoke comes besides the regular slots, which go to
        the others.
        """
        peers = [
            choosable(name, down=rate) for name, rate in zip("abcde", [5, 4, 3, 2, 1])
        ]
        chosen = chooseUnchoked(peers, False, slots=2, optimistic=peers[0])
        self.assertEqual(names(chosen), ["a", "b", "c"])
        chosen = chooseUnchoked(peers, False, slots=2, optimistic=peers[4])
        self.assertEqual(names(chosen), ["a", "b", "e"])
        gone = choosable("gone")
        self.assertEqual(
            names(chooseUnchoked(peers, False, slots=2, optimistic=gone)), ["a", "b"]
        )

    def test_tieKeepsUnchoked(self) -> None:
        """
        Among equal rates the peers already unchoked keep their slots.
        """
        peers = [choosable(name) for name in "abcd"]
        peers[3].amChoking = False
        peers[2].amChoking = False
        self.assertEqual(names(chooseUnchoked(peers, False, slots=2)), ["c", "d"])
        self.assertEqual(
            [p.name for p in rankPeers(peers, False)], ["c", "d", "a", "b"]
        )

    def test_rateFunctions(self) -> None:
        """
        The rates are read through the given functions.
        """
        peers = [choosable("a"), choosable("b")]
        rates = {"a": 1, "b": 2}
        self.assertEqual(
            names(
                chooseUnchoked(
                    peers, False, slots=1, downloadRate=lambda p: rates[p.name]
                )
            ),
            ["b"],
        )
        self.assertEqual(
            names(
                chooseUnchoked(
                    peers, True, slots=1, uploadRate=lambda p: -rates[p.name]
                )
            ),
            ["a"],
        )

    def test_realRateMeters(self) -> None:
        """
        By default the rates are the C{.rate} of L{RateMeter}s.
        """
        clock = Clock()
        a, b = choosable("a"), choosable("b")
        a.downloadRate = RateMeter(clock)
        b.downloadRate = RateMeter(clock)
        a.downloadRate.update(1000)
        b.downloadRate.update(5000)
        clock.advance(1)
        self.assertEqual(names(chooseUnchoked([a, b], False, slots=1)), ["b"])


class ChokerTests(SynchronousTestCase):
    """
    The timer around the policy.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.peers: List[FakePeer] = []
        self.seeding = False
        self.choker = Choker(
            self.clock,
            lambda: self.peers,
            lambda: self.seeding,
            random.Random(7),
            slots=2,
        )
        self.addCleanup(self.choker.stop)

    def test_startUnchokes(self) -> None:
        """
        Starting unchokes the best C{slots} interested peers and one
        optimistic peer among the others.
        """
        self.peers = [
            choosable("a", down=50),
            choosable("b", down=40),
            choosable("c", down=30),
            choosable("d", down=20),
            choosable("x", interested=False, down=999),
        ]
        self.choker.start()
        self.assertTrue(self.choker.running)
        self.assertEqual(names(self.choker.regular), ["a", "b"])
        self.assertIn(self.choker.optimistic.name, ["c", "d"])
        self.assertEqual(
            unchokedNames(self.peers), sorted(["a", "b", self.choker.optimistic.name])
        )
        self.assertEqual(self.peers[4].calls, [])

    def test_rechokeEveryInterval(self) -> None:
        """
        Every 10 s the slots follow the rates; choke and unchoke are called
        only on changes.
        """
        a, b, c = (
            choosable("a", down=50),
            choosable("b", down=40),
            choosable("c", down=30),
        )
        self.peers = [a, b, c]
        self.choker.start()
        # All three fit: two regular and the optimistic.
        self.assertEqual(unchokedNames(self.peers), ["a", "b", "c"])
        d = choosable("d", down=100)
        self.peers.append(d)
        self.clock.advance(9)
        self.assertEqual(d.calls, [])
        self.clock.advance(1)
        self.assertIn("d", names(self.choker.regular))
        self.assertEqual(d.calls, ["unchoke"])
        for peer in self.peers:
            self.assertIn(peer.calls, [[], ["unchoke"], ["unchoke", "choke"]])
        self.assertEqual(len(unchokedNames(self.peers)), 3)
        calls = {peer.name: list(peer.calls) for peer in self.peers}
        self.clock.advance(10)
        self.assertEqual({peer.name: peer.calls for peer in self.peers}, calls)

    def test_configurableIntervals(self) -> None:
        """
        The slots and intervals are parameters.
        """
        choker = Choker(
            self.clock,
            lambda: self.peers,
            lambda: False,
            random.Random(1),
            slots=1,
            interval=3.0,
            optimisticInterval=7.0,
            fillInterval=None,
        )
        self.addCleanup(choker.stop)
        a, b = choosable("a", down=1), choosable("b", down=2)
        self.peers = [a]
        choker.start()
        self.assertEqual(choker.regular, {a})
        self.peers.append(b)
        c = choosable("c", down=0)
        self.peers.append(c)
        self.clock.advance(2.9)
        self.assertEqual(b.calls, [])
        self.clock.advance(0.1)
        self.assertEqual(choker.regular, {b})
        # a and c are choked; a became the optimistic one when b took the
        # only slot... or c; rotation at 7 s changes it.
        first = choker.optimistic
        self.assertIn(first, (a, c))
        self.clock.advance(4)
        self.assertIn(choker.optimistic, (a, c))
        self.assertIsNot(choker.optimistic, first)

    def test_optimisticRotation(self) -> None:
        """
        Every 30 s the optimistic unchoke moves to another choked interested
        peer; the previous one is choked unless it earned a slot.
        """
        self.peers = [choosable(name, down=10 - i) for i, name in enumerate("abcdef")]
        self.choker.start()
        seen = []
        for _ in range(30):
            optimistic = self.choker.optimistic
            self.assertNotIn(optimistic, self.choker.regular)
            self.assertFalse(optimistic.amChoking)
            seen.append(optimistic)
            self.clock.advance(29)
            self.assertIs(self.choker.optimistic, optimistic)
            self.clock.advance(1)
            self.assertIsNot(self.choker.optimistic, optimistic)
            self.assertTrue(optimistic.amChoking)
            self.assertEqual(len(unchokedNames(self.peers)), 3)
        self.assertEqual(names(set(seen)), ["c", "d", "e", "f"])

    def test_newPeerBias(self) -> None:
        """
        A peer connected less than 60 s ago is about three times likelier
        to be the optimistic unchoke.
        """
        now = self.clock.seconds()
        counts: Counter = Counter()
        for seed in range(1200):
            peers = [choosable("fast", down=100)] + [
                choosable(name, connectedAt=now - 600) for name in "abc"
            ]
            peers.append(choosable("new", connectedAt=now - 30))
            choker = Choker(
                self.clock,
                lambda peers=peers: peers,
                lambda: False,
                random.Random(seed),
                slots=1,
            )
            choker.rotateOptimistic()
            counts[choker.optimistic.name] += 1
        self.assertNotIn("fast", counts)
        # Expected 3/6 for "new" and 1/6 for each old one.
        self.assertTrue(520 < counts["new"] < 680, counts)
        for name in "abc":
            self.assertTrue(150 < counts[name] < 250, counts)

    def test_missingConnectedAtIsOld(self) -> None:
        """
        A peer without C{connectedAt} counts as connected at time 0.
        """
        peer = choosable("a")
        del peer.connectedAt
        self.assertEqual(self.choker._weight(peer, 1000.0), 1)
        self.assertEqual(self.choker._weight(peer, 30.0), 3)

    def test_seedingMode(self) -> None:
        """
        While seeding, the regular slots go to the peers we upload to
        fastest.
        """
        self.peers = [
            choosable("a", down=100, up=1),
            choosable("b", up=30),
            choosable("c", down=50, up=20),
            choosable("d", up=10),
        ]
        self.choker.start()
        self.assertEqual(names(self.choker.regular), ["a", "c"])
        self.seeding = True
        self.clock.advance(10)
        optimistic = self.choker.optimistic
        others = [peer for peer in self.peers if peer is not optimistic]
        others.sort(key=lambda peer: -peer.uploadRate.rate)
        self.assertEqual(names(self.choker.regular), names(others[:2]))
        self.assertEqual(unchokedNames(self.peers), names(others[:2] + [optimistic]))
        self.assertIn("b", unchokedNames(self.peers))
        self.assertIn("c", unchokedNames(self.peers))

    def seedingChoker(self, order: str) -> Choker:
        choker = Choker(
            self.clock,
            lambda: self.peers,
            lambda: True,
            random.Random(3),
            slots=2,
            interval=10.0,
            optimisticInterval=1000.0,
            fillInterval=None,
            seedingOrder=order,
            roundRobinPeriod=20.0,
        )
        self.addCleanup(choker.stop)
        self.peers = [
            choosable(name, up=rate)
            for name, rate in zip("abcde", [50, 40, 30, 20, 10])
        ]
        choker.start()
        return choker

    def test_seedingFastestKeepsSlots(self) -> None:
        """
        Seeding with the default order, the fastest peers keep their slots.
        """
        choker = self.seedingChoker("fastest")
        for _ in range(10):
            self.assertEqual(names(choker.regular), ["a", "b"])
            self.clock.advance(10)

    def test_seedingRoundRobin(self) -> None:
        """
        Seeding in round robin, a peer keeps a slot for its turn (20 s
        here), then the peers that waited longest take theirs: every
        interested peer gets a turn.
        """
        choker = self.seedingChoker("roundrobin")
        optimistic = choker.optimistic
        history = []
        for _ in range(20):
            history.append(set(choker.regular))
            self.assertEqual(len(choker.regular), 2)
            self.assertNotIn(optimistic, choker.regular)
            self.clock.advance(10)
        self.assertEqual(set().union(*history), set(self.peers) - {optimistic})
        for before, now, after in zip(history, history[1:], history[2:]):
            self.assertEqual(before & now & after, set())
        # Every turn but the last lasts two rechokes (20 s).
        for peer in set(self.peers) - {optimistic}:
            runs = "".join("*" if peer in regular else " " for regular in history)
            self.assertEqual(
                {len(run) for run in runs.rstrip().split()}, {2}, (peer, runs)
            )

    def test_badSeedingOrder(self) -> None:
        """
        An unknown seeding order raises L{ValueError}.
        """
        self.assertRaises(
            ValueError,
            Choker,
            self.clock,
            list,
            bool,
            random.Random(0),
            seedingOrder="slowest",
        )

    def test_uninterestedLosesSlot(self) -> None:
        """
        A peer that is no longer interested is choked, and its slot given to
        another interested peer, at the next fill.
        """
        a, b, c, d = (
            choosable(name, down=rate) for name, rate in zip("abcd", [4, 3, 2, 1])
        )
        self.peers = [a, b, c, d]
        self.choker.start()
        self.assertEqual(self.choker.regular, {a, b})
        a.peerInterested = False
        self.choker.interestChanged(a)
        self.assertTrue(a.amChoking)
        self.assertEqual(a.calls, ["unchoke", "choke"])
        self.assertEqual(len(self.choker.regular), 2)
        self.assertNotIn(a, self.choker.regular)
        self.assertEqual(len(unchokedNames(self.peers)), 3)

    def test_newInterestedPeerUnchokedAtOnce(self) -> None:
        """
        A new interested peer gets a free slot at once through the hooks,
        and within C{fillInterval} without them.
        """
        self.choker.start()
        a = choosable("a")
        self.peers.append(a)
        self.choker.peerAdded(a)
        self.assertFalse(a.amChoking)
        b = choosable("b", interested=False)
        self.peers.append(b)
        self.choker.peerAdded(b)
        self.assertTrue(b.amChoking)
        b.peerInterested = True
        self.choker.interestChanged(b)
        self.assertFalse(b.amChoking)
        c = choosable("c")
        self.peers.append(c)
        self.clock.advance(1)
        self.assertFalse(c.amChoking)
        # Slots are full now (2 regular + 1 optimistic): a fourth waits.
        d = choosable("d", down=1000)
        self.peers.append(d)
        self.choker.peersChanged()
        self.assertTrue(d.amChoking)
        self.assertEqual(len(unchokedNames(self.peers)), 3)

    def test_fillKeepsSlots(self) -> None:
        """
        Filling never takes a slot from a peer that still deserves it, even
        if a faster peer appeared.
        """
        a, b = choosable("a", down=1), choosable("b", down=1)
        self.peers = [a, b]
        self.choker.start()
        fast = choosable("fast", down=1000)
        self.peers.append(fast)
        self.choker.peerAdded(fast)
        # a and b keep the regular slots; fast is the optimistic unchoke.
        self.assertEqual(self.choker.regular, {a, b})
        self.assertIs(self.choker.optimistic, fast)
        self.assertEqual(a.calls, ["unchoke"])

    def test_peerRemoved(self) -> None:
        """
        When a peer with a slot leaves, its slot goes to another.
        """
        a, b, c, d = (
            choosable(name, down=rate) for name, rate in zip("abcd", [4, 3, 2, 1])
        )
        self.peers = [a, b, c, d]
        self.choker.start()
        self.assertTrue(d.amChoking or c.amChoking)
        self.peers.remove(a)
        self.choker.peerRemoved(a)
        self.assertNotIn(a, self.choker.regular)
        self.assertEqual(unchokedNames(self.peers), ["b", "c", "d"])
        optimistic = self.choker.optimistic
        self.peers.remove(optimistic)
        self.choker.peerRemoved(optimistic)
        self.assertIsNone(self.choker.optimistic)
        self.assertEqual(len(unchokedNames(self.peers)), 2)

    def test_stop(self) -> None:
        """
        After L{Choker.stop} nothing happens on the timers or hooks; starting
        twice keeps one timer.
        """
        a = choosable("a")
        self.peers = [a]
        self.choker.start()
        self.choker.stop()
        self.assertFalse(self.choker.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        b = choosable("b")
        self.peers.append(b)
        self.choker.peerAdded(b)
        self.clock.advance(100)
        self.assertEqual(b.calls, [])
        self.choker.start()
        self.choker.start()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_noPeers(self) -> None:
        """
        Without peers every step is a no-op.
        """
        self.choker.start()
        self.clock.advance(100)
        self.assertIsNone(self.choker.optimistic)
        self.assertEqual(self.choker.regular, set())


class FakeDownloader:
    def __init__(self) -> None:
        self.peers = {}
        self.events = EventSource()


class FakePicker:
    complete = False


class FakeTorrent:
    def __init__(self, clock: Clock) -> None:
        self.reactor = clock
        self.downloader = FakeDownloader()
        self.picker = FakePicker()
        self.rng = random.Random(0)


class ServiceTests(SynchronousTestCase):
    """
    L{ChokerService} over a torrent.
    """

    def test_service(self) -> None:
        """
        The service runs the choker over the downloader's peers while it
        runs, follows C{peersChanged} events (beside other listeners), and
        reads seeding from the picker.
        """
        clock = Clock()
        torrent = FakeTorrent(clock)
        earlier = []
        torrent.downloader.events.listen("peersChanged", lambda: earlier.append(1))
        service = ChokerService(torrent, rng=random.Random(0), slots=1)
        service.startService()
        self.assertTrue(service.choker.running)
        a = choosable("a", down=1, up=5)
        torrent.downloader.peers[a] = object()
        torrent.downloader.events.emit("peersChanged")
        self.assertEqual(earlier, [1])
        self.assertFalse(a.amChoking)
        b = choosable("b", down=2, up=1)
        c = choosable("c", down=0, up=0)
        torrent.downloader.peers[b] = object()
        torrent.downloader.peers[c] = object()
        clock.advance(10)
        self.assertEqual(service.choker.regular, {b})
        torrent.picker.complete = True
        clock.advance(10)
        self.assertEqual(service.choker.regular, {a})
        service.stopService()
        self.assertFalse(service.choker.running)
        self.assertEqual(clock.getDelayedCalls(), [])
        torrent.downloader.events.emit("peersChanged")
        self.assertEqual(earlier, [1, 1])

    def test_defaults(self) -> None:
        """
        By default: 4 regular slots to the fastest interested peers, one
        optimistic unchoke besides, a rechoke every 10 s and an optimistic
        rotation every 30 s.
        """
        clock = Clock()
        torrent = FakeTorrent(clock)
        service = ChokerService(torrent, rng=random.Random(1))
        choker = service.choker
        self.assertEqual(
            (choker.slots, choker.interval, choker.optimisticInterval),
            (4, 10.0, 30.0),
        )
        peers = [choosable(name, down=rate) for name, rate in zip("abcdefg", range(7))]
        for peer in peers:
            torrent.downloader.peers[peer] = object()
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(names(choker.regular), ["d", "e", "f", "g"])
        self.assertIn(choker.optimistic.name, ["a", "b", "c"])
        self.assertEqual(len(unchokedNames(peers)), 5)

    def test_slotsFromTheTorrent(self) -> None:
        """
        The torrent's C{uploadSlots} (C{--upload-slots}) sets the slots.
        """
        torrent = FakeTorrent(Clock())
        torrent.uploadSlots = 7
        torrent.heartbeat = Heartbeat(torrent.reactor)
        from btorrent.engine.torrent import _defaultChoker

        service = _defaultChoker(torrent)
        self.assertEqual(service.choker.slots, 7)
        self.assertIs(service.choker.heartbeat, torrent.heartbeat)

    def test_noDownloader(self) -> None:
        """
        A torrent without a downloader yet has no peers.
        """
        torrent = FakeTorrent(Clock())
        torrent.downloader = None
        service = ChokerService(torrent)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(service.choker.regular, set())
