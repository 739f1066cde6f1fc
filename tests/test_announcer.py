"""
Tests for L{btorrent.tracker.announcer}: tiers, events, intervals, back-off
and peers, with fake tracker clients and L{task.Clock}.
"""

from __future__ import annotations

import random

from twisted.application.service import IService
from twisted.internet import defer, task
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from btorrent.interfaces import IAnnounceTarget, ITrackerClient
from btorrent.tracker import announce as codec
from btorrent.tracker.announce import (
    MAX_TRACKER_ID,
    AnnounceResponse,
    TrackerError,
    TrackerFailure,
)
from btorrent.tracker.announcer import Announcer, makeAnnouncer, makeClient
from btorrent.tracker.http import HTTPTrackerClient
from btorrent.tracker.udp import UDPTrackerClient, UDPTrackerProtocol

HASH = b"\x11" * 20


@implementer(IAnnounceTarget)
class FakeTarget:
    """
    A torrent as the announcer sees it.
    """

    infoHash = HASH
    peerId = b"-BT0100-" + b"p" * 12
    port = 6881

    def __init__(self) -> None:
        self.uploaded = 1
        self.downloaded = 2
        self.left = 3
        self.peers: list = []

    def addPeers(self, peers) -> None:
        self.peers.append(list(peers))


@implementer(ITrackerClient)
class FakeClient:
    """
    A tracker client whose answers the test gives.
    """

    def __init__(self, url: str, log: list) -> None:
        self.url = url
        self.log = log
        self.pending: list = []
        self.cancelled: list = []

    def __repr__(self) -> str:
        return f"<FakeClient {self.url}>"

    def announce(self, request) -> defer.Deferred:
        d = defer.Deferred(lambda d: self.cancelled.append(request))
        self.pending.append((request, d))
        self.log.append((self.url, request))
        return d

    def scrape(self, infoHashes) -> defer.Deferred:
        return defer.succeed({})

    def next(self) -> defer.Deferred:
        """
        The oldest request not yet answered or cancelled.
        """
        while self.pending[0][1].called:
            self.pending.pop(0)
        return self.pending.pop(0)[1]

    def answer(self, response=None, **kw) -> None:
        if response is None:
            response = AnnounceResponse(**{"interval": 1800, **kw})
        self.next().callback(response)

    def fail(self, reason: str = "dead") -> None:
        self.next().errback(TrackerError(reason))


class AnnouncerTestCase(SynchronousTestCase):
    """
    An announcer over fake clients.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.target = FakeTarget()
        self.asked: list = []
        self.events: list = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def make(self, tiers, seed: int = 0, **kw) -> Announcer:
        clients = [[FakeClient(url, self.asked) for url in tier] for tier in tiers]
        self.clients = {c.url: c for tier in clients for c in tier}
        announcer = Announcer(
            self.target, clients, self.clock, random.Random(seed), **kw
        )
        return announcer

    def lastAsked(self):
        url, request = self.asked[-1]
        return url, request.event

    def client(self, url: str) -> FakeClient:
        return self.clients[url]


class TierTests(AnnouncerTestCase):
    """
    BEP 12 tiers.
    """

    def test_interfaces(self) -> None:
        """
        The announcer is a service.
        """
        verifyObject(IService, self.make([["a"]]))

    def test_shuffledOnce(self) -> None:
        """
        Each tier is shuffled with the injected random source; tiers keep
        their order.
        """
        urls = [f"u{i}" for i in range(8)]
        expected = list(urls)
        rng = random.Random(5)
        rng.shuffle(expected)
        announcer = self.make([urls, ["z"]], seed=5)
        self.assertEqual([c.url for c in announcer.tiers[0]], expected)
        self.assertNotEqual(expected, urls)
        self.assertEqual([c.url for c in announcer.tiers[1]], ["z"])
        other = self.make([urls], seed=6)
        self.assertNotEqual([c.url for c in other.tiers[0]], expected)

    def test_startedToFirst(self) -> None:
        """
        Starting announces C{started} with the target's figures to the first
        tracker of the first tier.
        """
        announcer = self.make([["a", "b"], ["c"]])
        first = announcer.tiers[0][0].url
        announcer.startService()
        self.assertEqual(len(self.asked), 1)
        url, request = self.asked[0]
        self.assertEqual(url, first)
        self.assertEqual(request.event, "started")
        self.assertEqual(
            (request.infoHash, request.peerId, request.port),
            (HASH, FakeTarget.peerId, 6881),
        )
        self.assertEqual(
            (request.uploaded, request.downloaded, request.left), (1, 2, 3)
        )
        self.assertEqual(request.key, announcer.key)
        self.assertEqual(request.numwant, 50)

    def test_nextTierOnlyWhenTierFails(self) -> None:
        """
        The next tier is tried only after every tracker of a tier failed,
        in the same announce (no waiting).
        """
        announcer = self.make([["a", "b"], ["c"]])
        t0 = [c.url for c in announcer.tiers[0]]
        announcer.startService()
        self.client(t0[0]).fail()
        self.assertEqual(self.lastAsked(), (t0[1], "started"))
        self.client(t0[1]).fail()
        self.assertEqual(self.lastAsked(), ("c", "started"))
        self.client("c").answer()
        self.assertEqual(len(self.asked), 3)
        self.assertIs(announcer.workingClient, self.client("c"))

    def test_answererMovesToFront(self) -> None:
        """
        A tracker that answers moves to the front of its tier and is asked
        first next time.
        """
        announcer = self.make([["a", "b", "c"]])
        order = [c.url for c in announcer.tiers[0]]
        announcer.startService()
        self.client(order[0]).fail()
        self.client(order[1]).answer(interval=100)
        self.assertEqual(
            [c.url for c in announcer.tiers[0]], [order[1], order[0], order[2]]
        )
        self.clock.advance(100)
        self.assertEqual(self.lastAsked(), (order[1], ""))

    def test_unexpectedClientError(self) -> None:
        """
        A client raising something other than L{TrackerError} is logged and
        the next tracker is tried.
        """
        announcer = self.make([["a", "b"]])
        order = [c.url for c in announcer.tiers[0]]
        announcer.startService()
        self.client(order[0]).pending.pop(0)[1].errback(ZeroDivisionError())
        self.assertEqual(self.lastAsked(), (order[1], "started"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_noTrackers(self) -> None:
        """
        With no usable tracker, starting and stopping do nothing.
        """
        announcer = self.make([[], []])
        announcer.startService()
        announcer.announceNow(force=True)
        self.assertEqual(self.asked, [])
        self.successResultOf(announcer.stopService())


class TimingTests(AnnouncerTestCase):
    """
    Intervals, back-off and forced announces.
    """

    def test_interval(self) -> None:
        """
        The next regular announce follows the tracker's interval.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer(interval=1800)
        self.assertEqual(announcer.nextAnnounceAt, 1800)
        self.clock.advance(1799)
        self.assertEqual(len(self.asked), 1)
        self.clock.advance(1)
        self.assertEqual(self.lastAsked(), ("a", ""))

    def test_intervalClamped(self) -> None:
        """
        Intervals are kept between 60 s and 2 h; C{min interval} is honoured.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        for response, expected in [
            (dict(interval=5), 60),
            (dict(interval=10**6), 7200),
            (dict(interval=300, minInterval=900), 900),
            (dict(interval=0, minInterval=10**6), 7200),
        ]:
            self.client("a").answer(**response)
            self.assertEqual(announcer.nextAnnounceAt - self.clock.seconds(), expected)
            self.clock.advance(expected)

    def test_backoff(self) -> None:
        """
        When every tracker fails, retries wait 15 s, doubling, up to 30 min,
        and still carry the owed event; a success resets the back-off.
        """
        announcer = self.make([["a"], ["b"]])
        announcer.startService()
        waits = []
        for _ in range(10):
            self.client("a").fail()
            self.client("b").fail("gone")
            waits.append(announcer.nextAnnounceAt - self.clock.seconds())
            self.clock.advance(waits[-1])
            self.assertEqual(self.lastAsked(), ("a", "started"))
        self.assertEqual(waits, [15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800])
        self.assertEqual(announcer.lastError, "no tracker answered")
        self.client("a").answer(interval=100)
        self.assertIsNone(announcer.lastError)
        self.clock.advance(100)
        self.client("a").fail()
        self.client("b").fail()
        self.assertEqual(announcer.nextAnnounceAt - self.clock.seconds(), 15)

    def test_failuresLogged(self) -> None:
        """
        Each failure is logged with the URL and the reason, without a
        traceback.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").pending.pop(0)[1].errback(TrackerFailure("not authorized"))
        logged = [e for e in self.events if e.get("url") == "a"]
        self.assertEqual(len(logged), 1)
        self.assertEqual(logged[0]["reason"], "not authorized")
        self.assertNotIn("log_failure", logged[0])
        self.assertFalse([e for e in self.events if "log_failure" in e])

    def test_announceNowRespectsMinInterval(self) -> None:
        """
        L{Announcer.announceNow} waits for C{min interval} since the last
        announce unless forced.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer(interval=1800, minInterval=900)
        self.clock.advance(10)
        announcer.announceNow()
        self.assertEqual(len(self.asked), 1)
        self.assertEqual(announcer.nextAnnounceAt, 900)
        self.clock.advance(890)
        self.assertEqual(self.lastAsked(), ("a", ""))
        self.client("a").answer(interval=1800, minInterval=900)
        self.clock.advance(1000)
        announcer.announceNow()
        self.assertEqual(len(self.asked), 3)

    def test_announceNowForced(self) -> None:
        """
        A forced announce goes out at once; one in flight is not doubled.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        announcer.announceNow(force=True)
        self.assertEqual(len(self.asked), 1)
        self.client("a").answer(interval=1800, minInterval=900)
        announcer.announceNow(force=True)
        self.assertEqual(self.lastAsked(), ("a", ""))
        self.assertEqual(len(self.asked), 2)


class EventTests(AnnouncerTestCase):
    """
    C{started}, C{completed}, C{stopped}.
    """

    def test_completedOnce(self) -> None:
        """
        L{Announcer.completed} announces C{completed} once, at once.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer()
        announcer.completed()
        self.assertEqual(self.lastAsked(), ("a", "completed"))
        self.client("a").answer()
        announcer.completed()
        self.assertEqual(len(self.asked), 2)
        self.clock.advance(1800)
        self.assertEqual(self.lastAsked(), ("a", ""))

    def test_completedWhileStarting(self) -> None:
        """
        Completion during the C{started} announce is announced right after.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        announcer.completed()
        self.assertEqual(len(self.asked), 1)
        self.client("a").answer()
        self.assertEqual(self.lastAsked(), ("a", "completed"))

    def test_completedRetried(self) -> None:
        """
        A failed C{completed} announce is retried as C{completed}.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer()
        announcer.completed()
        self.client("a").fail()
        self.clock.advance(15)
        self.assertEqual(self.lastAsked(), ("a", "completed"))

    def test_stopped(self) -> None:
        """
        Stopping announces C{stopped} (asking for no peers) to the tracker
        that answered last; the returned L{Deferred} fires with its answer.
        """
        announcer = self.make([["a", "b"], ["c"]])
        announcer.startService()
        for url in [c.url for c in announcer.tiers[0]]:
            self.client(url).fail()
        self.client("c").answer()
        d = announcer.stopService()
        self.assertEqual(self.lastAsked(), ("c", "stopped"))
        self.assertEqual(self.asked[-1][1].numwant, 0)
        self.assertNoResult(d)
        self.client("c").answer()
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stoppedBounded(self) -> None:
        """
        A tracker that does not answer the C{stopped} announce delays the
        stop by C{stopTimeout} at most, and its request is cancelled.
        """
        announcer = self.make([["a"]], stopTimeout=3)
        announcer.startService()
        self.client("a").answer()
        d = announcer.stopService()
        [(request, pending)] = self.client("a").pending
        self.clock.advance(2.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.client("a").cancelled, [request])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stoppedFailureSwallowed(self) -> None:
        """
        A failed C{stopped} announce is logged; the stop still completes.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer()
        d = announcer.stopService()
        self.client("a").fail("bye")
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue([e for e in self.events if e.get("reason") == "bye"])

    def test_stopBeforeStarted(self) -> None:
        """
        Stopping before any tracker acknowledged C{started} cancels the
        announce in flight and sends no C{stopped}.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        [(request, pending)] = self.client("a").pending
        d = announcer.stopService()
        self.successResultOf(d)
        self.assertEqual(self.client("a").cancelled, [request])
        self.assertEqual(len(self.asked), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopCancelsInFlight(self) -> None:
        """
        A regular announce in flight at stop is cancelled, the timer too,
        and C{stopped} goes out.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer(interval=100)
        self.clock.advance(100)
        [(request, pending)] = self.client("a").pending
        d = announcer.stopService()
        self.assertEqual(self.client("a").cancelled, [request])
        self.assertEqual(self.lastAsked(), ("a", "stopped"))
        self.client("a").answer()
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_restart(self) -> None:
        """
        After a stop, starting again announces C{started} again.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer()
        announcer.stopService()
        self.client("a").answer()
        announcer.startService()
        self.assertEqual(self.lastAsked(), ("a", "started"))

    def test_trackerId(self) -> None:
        """
        A C{tracker id} is sent back to the tracker that gave it.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer(trackerId=b"T1", interval=100)
        self.clock.advance(100)
        self.assertEqual(self.asked[-1][1].trackerId, b"T1")


class PeerTests(AnnouncerTestCase):
    """
    Peers handed to the torrent.
    """

    def test_peers(self) -> None:
        """
        Peers are deduplicated; ourselves (our port at a loopback or our own
        address) are left out.
        """
        announcer = self.make([["a"]], ourAddresses=["10.0.0.9"])
        announcer.startService()
        self.client("a").answer(
            peers=(
                ("127.0.0.1", 6881),
                ("127.0.0.1", 6882),
                ("10.0.0.1", 6881),
                ("10.0.0.9", 6881),
                ("10.0.0.9", 1),
                ("::1", 6881),
                ("127.0.0.1", 6882),
            )
        )
        self.assertEqual(
            self.target.peers,
            [[("127.0.0.1", 6882), ("10.0.0.1", 6881), ("10.0.0.9", 1)]],
        )

    def test_noPeers(self) -> None:
        """
        An answer without peers (or only ourselves) hands nothing over.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer(peers=(("127.0.0.1", 6881),))
        self.assertEqual(self.target.peers, [])

    def test_targetRaises(self) -> None:
        """
        A torrent that raises from C{addPeers} does not stop the announcer.
        """
        announcer = self.make([["a"]])

        def broken(peers):
            raise RuntimeError("boom")

        self.target.addPeers = broken
        announcer.startService()
        self.client("a").answer(peers=(("10.0.0.1", 1),), interval=100)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(announcer.nextAnnounceAt, 100)


class FactoryTests(SynchronousTestCase):
    """
    Building clients from metainfo tiers.
    """

    def test_fromTrackers(self) -> None:
        """
        HTTP(S) and UDP URLs become clients; duplicates, unsupported schemes
        and malformed URLs are skipped with a log line; empty tiers vanish.
        """
        events: list = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        reactor = MemoryReactorClock()
        protocol = UDPTrackerProtocol(reactor)
        announcer = Announcer.fromTrackers(
            FakeTarget(),
            [
                ["http://127.0.0.1:1/announce", "wss://127.0.0.1:2/"],
                ["udp://127.0.0.1:3", "http://127.0.0.1:1/announce"],
                ["udp://127.0.0.1/noport", "magnet:?x"],
                ["https://127.0.0.1:4/announce"],
            ],
            reactor,
            random.Random(0),
            udpProtocol=protocol,
        )
        kinds = [[type(c) for c in tier] for tier in announcer.tiers]
        self.assertEqual(
            kinds, [[HTTPTrackerClient], [UDPTrackerClient], [HTTPTrackerClient]]
        )
        skipped = {e["url"] for e in events if "Skipping" in e.get("log_format", "")}
        self.assertEqual(
            skipped, {"wss://127.0.0.1:2/", "udp://127.0.0.1/noport", "magnet:?x"}
        )
        self.assertIs(announcer.clock, reactor)
        self.assertIsNone(makeClient("ws://x/", reactor))

    def test_makeAnnouncer(self) -> None:
        """
        L{makeAnnouncer} builds the same from tiers of URLs, with its own
        random source unless given one.
        """
        reactor = MemoryReactorClock()
        announcer = makeAnnouncer(
            FakeTarget(),
            [["http://127.0.0.1:1/announce", "http://127.0.0.1:2/announce"]],
            reactor,
            stopTimeout=1.5,
        )
        self.assertIsInstance(announcer, Announcer)
        self.assertEqual(len(announcer.tiers[0]), 2)
        self.assertEqual(announcer.stopTimeout, 1.5)
        announcer.startService()
        self.assertEqual(len(reactor.tcpClients), 1)
        d = announcer.stopService()
        self.successResultOf(d)
        reactor.advance(60)
        self.assertEqual(reactor.getDelayedCalls(), [])


def warnings(events: list) -> list:
    """
    The warnings (and worse) among log events, formatted.
    """
    return [
        formatEvent(e)
        for e in events
        if e.get("log_level") is not None and e["log_level"].name in ("warn", "error")
    ]


class StopIsNoFailureTests(AnnouncerTestCase):
    """
    An announce cancelled because the announcer stops is no tracker
    failing: nothing is logged and no other tracker is asked.  (C{btorrent
    download} printed "Tracker ... failed: ConnectingCancelledError" over
    its progress bar at every successful exit.)
    """

    def test_httpClientConnecting(self) -> None:
        """
        With the real HTTP client, stopping while it connects for the
        C{completed} announce: no warning, no other tier asked, nothing
        left scheduled.
        """
        reactor = MemoryReactorClock()
        announcer = makeAnnouncer(
            self.target,
            [["http://127.0.0.1:1/announce"], ["http://127.0.0.1:2/announce"]],
            reactor,
        )
        announcer.startService()
        self.assertEqual(len(reactor.tcpClients), 1)
        d = announcer.stopService()
        self.successResultOf(d)
        self.assertEqual(warnings(self.events), [])
        self.assertEqual(len(reactor.tcpClients), 1)
        self.assertIsNone(announcer.lastError)
        reactor.advance(3600)
        self.assertEqual(len(reactor.tcpClients), 1)
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_clientTurnsCancelIntoError(self) -> None:
        """
        A client that reports its cancellation as a L{TrackerError} (as
        the HTTP client did) is not logged as failing either, and the walk
        stops there.
        """

        class Confused(FakeClient):
            def announce(self, request) -> defer.Deferred:
                d = defer.Deferred(
                    lambda d: d.errback(TrackerError("ConnectingCancelledError"))
                )
                self.log.append((self.url, request))
                return d

        clients = [[Confused("a", self.asked)], [FakeClient("b", self.asked)]]
        announcer = Announcer(self.target, clients, self.clock, random.Random(0))
        announcer.startService()
        self.successResultOf(announcer.stopService())
        self.assertEqual(warnings(self.events), [])
        self.assertEqual([url for url, request in self.asked], ["a"])


class HostileTrackerTests(AnnouncerTestCase):
    """
    What a hostile tracker says is logged and kept bounded.
    """

    def test_mappedSelfDropped(self) -> None:
        """
        Our own port at an IPv4-mapped loopback address, as a tracker
        sends it over HTTP, is not handed to the torrent.
        """
        from btorrent.codec import bencode

        body = bencode.encode(
            {
                b"interval": 60,
                b"peers6": bytes(10)
                + b"\xff\xff\x7f\x00\x00\x01"
                + self.target.port.to_bytes(2, "big"),
                b"peers": bytes([10, 0, 0, 1]) + self.target.port.to_bytes(2, "big"),
            }
        )
        response = codec.decodeHTTPResponse(body)
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer(response)
        self.assertEqual(self.target.peers, [[("10.0.0.1", self.target.port)]])

    def test_hugeReasonLoggedCut(self) -> None:
        """
        A client error of a megabyte (whatever client) is logged as
        L{codec.MAX_ERROR_TEXT} characters and the note of the cut.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").fail("x" * (1 << 20))
        logged = warnings(self.events)
        self.assertTrue(logged)
        self.assertLess(sum(map(len, logged)), 1000)
        self.assertIn(
            "x" * codec.MAX_ERROR_TEXT + "\u2026(cut, 1048576 characters)",
            logged[0],
        )

    def test_hugeTrackerIdDropped(self) -> None:
        """
        A tracker id longer than L{MAX_TRACKER_ID} is dropped with a
        warning, not kept or sent back; a shorter one still is.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer(trackerId=b"T" * MAX_TRACKER_ID, interval=100)
        self.clock.advance(100)
        self.assertEqual(self.asked[-1][1].trackerId, b"T" * MAX_TRACKER_ID)
        self.assertEqual(warnings(self.events), [])
        self.client("a").answer(trackerId=b"U" * (1 << 20), interval=100)
        self.clock.advance(100)
        self.assertEqual(self.asked[-1][1].trackerId, b"T" * MAX_TRACKER_ID)
        self.assertIsNone(announcer.lastResponse.trackerId)
        [warning] = warnings(self.events)
        self.assertIn("tracker id of 1048576 bytes", warning)
        self.assertLess(len(warning), 300)


MB = 1_000_000
CUT = "\u2026(cut, 1000000 characters)"


class HugeTrackerStringsTests(TestCase):
    """
    A real HTTP tracker answering with megabyte strings, through the real
    HTTP client: bytes logged per announce and bytes sent back are bounded.
    """

    def setUp(self) -> None:
        self.events: list = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def serve(self, body: bytes):
        from twisted.internet import reactor
        from twisted.web import resource, server

        uris: list = []

        class Canned(resource.Resource):
            isLeaf = True

            def render_GET(self, request) -> bytes:
                uris.append(request.uri)
                return body

        port = reactor.listenTCP(0, server.Site(Canned()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}/announce", uris

    @defer.inlineCallbacks
    def announceTwice(self, body: bytes):
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        url, uris = self.serve(body)
        announcer = makeAnnouncer(FakeTarget(), [[url]], reactor, stopTimeout=5)
        announcer.startService()
        for n in (1, 2):
            for _ in range(200):
                if len(uris) >= n and announcer._inFlight is None:
                    break
                yield deferLater(reactor, 0.01, lambda: None)
            if n == 1:
                announcer.announceNow(force=True)
        yield announcer.stopService()
        return announcer, uris

    @defer.inlineCallbacks
    def test_failureReason(self):
        """
        A 1 MB C{failure reason} (the body cap is 1 MiB): under 1 KB of log
        per announce.
        """
        body = codec.bencode.encode({b"failure reason": b"F" * MB})
        announcer, uris = yield self.announceTwice(body)
        logged = warnings(self.events)
        self.assertGreaterEqual(len(logged), 2)
        self.assertLess(sum(map(len, logged)), 1000 * len(uris))
        self.assertTrue(any(CUT in line for line in logged))

    @defer.inlineCallbacks
    def test_warning(self):
        """
        A 1 MB C{warning message}: logged cut, under 1 KB per announce.
        """
        body = codec.bencode.encode({b"interval": 60, b"warning message": b"W" * MB})
        announcer, uris = yield self.announceTwice(body)
        self.assertEqual(len(uris), 3)  # started, regular, stopped
        logged = warnings(self.events)
        self.assertEqual(len(logged), 3)
        self.assertLess(sum(map(len, logged)), 1000 * len(uris))
        self.assertTrue(all(CUT in line for line in logged))

    @defer.inlineCallbacks
    def test_trackerId(self):
        """
        A 1 MB C{tracker id} is not sent back: the announces after it are as
        short as the first.
        """
        body = codec.bencode.encode({b"interval": 60, b"tracker id": b"I" * MB})
        announcer, uris = yield self.announceTwice(body)
        self.assertEqual(len(uris), 3)
        self.assertFalse([uri for uri in uris if b"trackerid" in uri])
        self.assertLess(max(map(len, uris)), 400)
        logged = warnings(self.events)
        self.assertEqual(len(logged), 2)
        self.assertTrue(all("tracker id of 1000000 bytes" in line for line in logged))
        self.assertLess(sum(map(len, logged)), 1000 * len(uris))
