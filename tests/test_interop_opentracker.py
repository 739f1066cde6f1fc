"""
Interop: btorrent's tracker clients and Announcer against a real opentracker
on 127.0.0.1, over HTTP and over UDP.

Each test gets a fresh opentracker (it starts in a few tens of
milliseconds), so that peers of one test never show up in another.  The
tests fail, never skip, when opentracker is not installed.
"""

from __future__ import annotations

import os
import random
import time

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from btorrent.interfaces import IAnnounceTarget
from btorrent.tracker.announce import AnnounceRequest, TrackerError, TrackerFailure
from btorrent.tracker.announcer import Announcer
from btorrent.tracker.http import HTTPTrackerClient
from btorrent.tracker.udp import UDPTrackerClient, UDPTrackerProtocol
from tests.realpeers import Opentracker, freePort, freeUDPPort


def request(infoHash: bytes, peerId: bytes, port: int, **kw) -> AnnounceRequest:
    fields = dict(
        infoHash=infoHash,
        peerId=peerId,
        port=port,
        uploaded=0,
        downloaded=0,
        left=1000,
        event="started",
    )
    fields.update(kw)
    return AnnounceRequest(**fields)


class OpentrackerTestCase(TestCase):
    """
    A fresh opentracker per test, with one whitelisted info-hash, and a UDP
    tracker protocol on 127.0.0.1.
    """

    def setUp(self) -> None:
        self.infoHash = os.urandom(20)
        self.tracker = Opentracker([self.infoHash]).start()
        self.addCleanup(self.tracker.stop)
        self.udp = UDPTrackerProtocol(reactor)
        reactor.listenUDP(0, self.udp, interface="127.0.0.1")
        self.addCleanup(self.udp.stop)

    def httpClient(self) -> HTTPTrackerClient:
        return HTTPTrackerClient(self.tracker.announceURL, reactor, timeout=5)

    def udpClient(self, **kw) -> UDPTrackerClient:
        kw.setdefault("retransmitBase", 0.5)
        kw.setdefault("maxRetries", 2)
        return UDPTrackerClient(self.tracker.udpURL, reactor, protocol=self.udp, **kw)


class SwarmMixin:
    """
    The same swarm checks over either transport (C{self.client()}).
    """

    @defer.inlineCallbacks
    def test_twoPeersSeeEachOther(self):
        """
        Two clients with different peer ids announcing one info-hash each
        receive the other; scrape counts a seeder and a leecher; C{stopped}
        removes a peer.
        """
        alice = request(self.infoHash, b"-BT0100-alice0000000", 40001)
        bob = request(self.infoHash, b"-BT0100-bob000000000", 40002, left=0)
        first = yield self.client().announce(alice)
        self.assertGreaterEqual(first.interval, 60)
        self.assertNotIn(("127.0.0.1", 40002), first.peers)
        second = yield self.client().announce(bob)
        self.assertIn(("127.0.0.1", 40001), second.peers)
        self.assertEqual((second.complete, second.incomplete), (1, 1))
        again = yield self.client().announce(
            request(self.infoHash, alice.peerId, 40001, event="")
        )
        self.assertIn(("127.0.0.1", 40002), again.peers)

        stats = yield self.client().scrape([self.infoHash])
        self.assertEqual(list(stats), [self.infoHash])
        self.assertEqual(
            (stats[self.infoHash].complete, stats[self.infoHash].incomplete), (1, 1)
        )

        yield self.client().announce(
            request(self.infoHash, bob.peerId, 40002, left=0, event="stopped")
        )
        stats = yield self.client().scrape([self.infoHash])
        self.assertEqual(
            (stats[self.infoHash].complete, stats[self.infoHash].incomplete), (0, 1)
        )
        after = yield self.client().announce(
            request(self.infoHash, alice.peerId, 40001, event="")
        )
        self.assertNotIn(("127.0.0.1", 40002), after.peers)

    @defer.inlineCallbacks
    def test_completed(self):
        """
        A C{completed} announce turns a leecher into a seeder and counts a
        download.
        """
        peerId = b"-BT0100-carol0000000"
        yield self.client().announce(request(self.infoHash, peerId, 40003))
        yield self.client().announce(
            request(self.infoHash, peerId, 40003, left=0, event="completed")
        )
        stats = yield self.client().scrape([self.infoHash])
        self.assertEqual(stats[self.infoHash].complete, 1)
        self.assertEqual(stats[self.infoHash].incomplete, 0)
        self.assertEqual(stats[self.infoHash].downloaded, 1)

    @defer.inlineCallbacks
    def test_notWhitelisted(self):
        """
        An info-hash the tracker does not serve fails with the tracker's own
        words.
        """
        e = yield self.assertFailure(
            self.client().announce(request(b"\x00" * 20, b"-BT0100-dave00000000", 1)),
            TrackerFailure,
        )
        self.assertIn("not authorized", e.reason)


class HTTPInteropTests(SwarmMixin, OpentrackerTestCase):
    """
    Over HTTP.
    """

    def client(self) -> HTTPTrackerClient:
        return self.httpClient()


class UDPInteropTests(SwarmMixin, OpentrackerTestCase):
    """
    Over UDP (BEP 15).
    """

    def client(self) -> UDPTrackerClient:
        return self.udpClient()

    @defer.inlineCallbacks
    def test_notWhitelisted(self):
        """
        opentracker answers a UDP announce for an info-hash it does not
        serve with a bare 8-byte header (action 1, no body).  That is not a
        valid announce response: it is dropped, and the announce fails once
        the retransmissions run out.
        """
        transmissions = []
        write = self.udp.transport.write

        def recordingWrite(data, addr):
            transmissions.append(data)
            return write(data, addr)

        self.udp.transport.write = recordingWrite
        client = self.udpClient(retransmitBase=0.1, maxRetries=1)
        e = yield self.assertFailure(
            client.announce(request(b"\x00" * 20, b"-BT0100-dave00000000", 1)),
            TrackerError,
        )
        self.assertNotIsInstance(e, TrackerFailure)
        self.assertIn("no answer after 2 tries", str(e))
        # A connect, then the announce twice.
        self.assertEqual([len(t) for t in transmissions], [16, 98, 98])


@implementer(IAnnounceTarget)
class Target:
    """
    A torrent for the announcer: records peers and when they came.
    """

    def __init__(self, infoHash: bytes, port: int) -> None:
        self.infoHash = infoHash
        self.peerId = b"-BT0100-" + os.urandom(6).hex().encode()
        self.port = port
        self.uploaded = 0
        self.downloaded = 0
        self.left = 1000
        self.peers: list = []
        self.gotPeers = defer.Deferred()

    def addPeers(self, peers) -> None:
        self.peers.extend(peers)
        if not self.gotPeers.called:
            self.gotPeers.callback(time.monotonic())


class AnnouncerInteropTests(OpentrackerTestCase):
    """
    The Announcer with tiers whose first tier is dead.
    """

    @defer.inlineCallbacks
    def check(self, liveURL: str):
        """
        Tiers C{[[dead UDP, dead HTTP], [live]]}: the live tracker is reached
        once the first tier failed, within a second (not a re-announce
        interval later), and the stopped announce removes us from the swarm.
        """
        other = request(self.infoHash, b"-BT0100-other0000000", 40009, left=0)
        yield self.httpClient().announce(other)
        deadUDP = f"udp://127.0.0.1:{freeUDPPort()}/announce"
        deadHTTP = f"http://127.0.0.1:{freePort()}/announce"
        target = Target(self.infoHash, 40010)
        announcer = Announcer.fromTrackers(
            target,
            [[deadUDP, deadHTTP], [liveURL]],
            reactor,
            random.Random(1),
            httpTimeout=2,
            udpProtocol=self.udp,
            udpRetransmitBase=0.05,
            udpMaxRetries=1,
        )
        started = time.monotonic()
        announcer.startService()
        self.addCleanup(lambda: announcer.running and announcer.stopService())
        arrived = yield target.gotPeers.addTimeout(5, reactor)
        self.assertLess(arrived - started, 1.0)
        self.assertEqual(target.peers, [("127.0.0.1", 40009)])
        self.assertEqual(announcer.workingClient.url, liveURL)
        self.assertEqual(announcer.tiers[1][0].url, liveURL)
        self.assertGreaterEqual(announcer.nextAnnounceAt - reactor.seconds(), 60)

        stats = yield self.httpClient().scrape([self.infoHash])
        self.assertEqual(stats[self.infoHash].incomplete, 1)
        before = time.monotonic()
        yield announcer.stopService()
        self.assertLess(time.monotonic() - before, 3.5)
        stats = yield self.httpClient().scrape([self.infoHash])
        self.assertEqual(stats[self.infoHash].incomplete, 0)
        self.assertEqual(stats[self.infoHash].complete, 1)

    def test_liveHTTPAfterDeadTier(self):
        """
        The live tracker over HTTP.
        """
        return self.check(self.tracker.announceURL)

    def test_liveUDPAfterDeadTier(self):
        """
        The live tracker over UDP.
        """
        return self.check(self.tracker.udpURL)

    @defer.inlineCallbacks
    def test_stopWithDeadTracker(self):
        """
        When the tracker that answered dies, stopping still takes no more
        than the stop timeout.
        """
        target = Target(self.infoHash, 40011)
        announcer = Announcer.fromTrackers(
            target,
            [[self.tracker.udpURL]],
            reactor,
            random.Random(1),
            udpProtocol=self.udp,
            udpRetransmitBase=5,
            stopTimeout=0.5,
        )
        announcer.startService()
        # Up to 10 s: a loaded machine answers a UDP announce late.
        for _ in range(1000):
            if announcer.workingClient is not None:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertIsNotNone(announcer.workingClient)
        self.tracker.stop()
        before = time.monotonic()
        yield announcer.stopService()
        elapsed = time.monotonic() - before
        self.assertGreaterEqual(elapsed, 0.45)
        self.assertLess(elapsed, 1.5)
        self.assertEqual(self.udp.transactions, {})
