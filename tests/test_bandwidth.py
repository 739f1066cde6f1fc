"""
Tests for L{btorrent.engine.bandwidth}: token buckets, session and torrent
limits, the turtle switch, fair shares between torrents and peers, back-
pressure on reading and on sending, and the unlimited path that never
consults a bucket.  Peers are simulated on a L{task.Clock}: each one moves
a block whenever it is not held back, as fast as the simulation steps.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from btorrent.control.api import ControlError
from btorrent.engine.bandwidth import (
    BURST,
    DOWN,
    MAX_RATE,
    MIN_LIMITED_DEPTH,
    MIN_LIMITED_READ,
    UP,
    SessionBandwidth,
    SessionLimits,
    TokenBucket,
    TorrentBandwidth,
    TorrentLimits,
)
from btorrent.peer.framer import READ_SIZE
from tests.fakes import FakePeer

BLOCK = 16384


class FakeTransport(StringTransport):
    """
    A transport that counts how many times reading was paused.
    """

    pauses = 0
    bufferSize = READ_SIZE

    @property
    def paused(self):
        return self.producerState == "paused"

    def pauseProducing(self):
        super().pauseProducing()
        self.pauses += 1


class FakeRecord:
    class Queue:
        depthAt = 5.0

    def __init__(self):
        self.queue = self.Queue()


class FakeUploader:
    def __init__(self):
        self.limiter = None


class FakeRequester:
    def __init__(self):
        self.depthCap = None


class FakeDownloader:
    """
    The parts of a coordinator that the bandwidth code touches.
    """

    def __init__(self, count=1, name="t"):
        self.peers = {
            FakePeer(name=f"{name}{i}", transport=FakeTransport()): FakeRecord()
            for i in range(count)
        }
        self.downloadLimiter = None
        self.uploader = FakeUploader()
        self.requester = FakeRequester()
        self.writable = []

    def peerWritable(self, peer):
        self.writable.append(peer)


def simulate(clock, downloaders, seconds, direction=DOWN, step=0.005):
    """
    For C{seconds}, every C{step}: each peer not held back moves a block.

    @return: bytes moved per peer.
    """
    moved = {}
    for _ in range(round(seconds / step)):
        for downloader in downloaders:
            for peer in downloader.peers:
                if direction == DOWN:
                    limiter = downloader.downloadLimiter
                    if peer.transport.paused:
                        continue
                else:
                    limiter = downloader.uploader.limiter
                    if limiter is not None and limiter.blocked(peer):
                        continue
                moved[peer] = moved.get(peer, 0) + BLOCK
                if limiter is not None:
                    limiter.charge(peer, BLOCK)
        clock.advance(step)
    return moved


class BucketTests(SynchronousTestCase):
    def test_refillCapped(self):
        bucket = TokenBucket(1000)
        self.assertEqual(bucket.tokens, 0)
        bucket.refill(0.1)
        self.assertAlmostEqual(bucket.tokens, 100)
        bucket.refill(100)
        self.assertEqual(bucket.tokens, 1000 * BURST)
        bucket.tokens = -5000
        bucket.refill(1)
        self.assertAlmostEqual(bucket.tokens, -4000)

    def test_zeroRate(self):
        bucket = TokenBucket(0)
        bucket.refill(10)
        self.assertEqual(bucket.tokens, 0)


class LimitsTests(SynchronousTestCase):
    """
    The settings: their meaning, their checks, their persistence.
    """

    def test_sessionRates(self):
        limits = SessionLimits()
        self.assertIsNone(limits.rate(DOWN))
        self.assertIsNone(limits.rate(UP))
        limits = limits.changed({"speedLimitDown": 5000, "speedLimitDownEnabled": True})
        self.assertEqual(limits.rate(DOWN), 5000)
        self.assertIsNone(limits.rate(UP))
        turtle = limits.changed({"altSpeedEnabled": True})
        self.assertEqual(turtle.rate(DOWN), 50_000)
        self.assertEqual(turtle.rate(UP), 50_000)

    def test_torrentRates(self):
        limits = TorrentLimits(downloadLimit=7, downloadLimited=True)
        self.assertEqual(limits.rate(DOWN), 7)
        self.assertIsNone(limits.rate(UP))

    def test_badValues(self):
        """
        Negative, absurd, fractional, boolean or textual rates and unknown
        names are refused with a L{ControlError} naming the setting.
        """
        limits = SessionLimits()
        for changes in [
            {"speedLimitDown": -1},
            {"speedLimitDown": MAX_RATE + 1},
            {"speedLimitDown": 10**30},
            {"speedLimitUp": 1.5},
            {"speedLimitUp": True},
            {"altSpeedDown": "100"},
            {"altSpeedEnabled": 1},
            {"noSuchThing": 1},
        ]:
            error = self.assertRaises(ControlError, limits.changed, changes)
            self.assertIn(next(iter(changes)), str(error))
        for changes in [
            {"downloadLimit": -5},
            {"uploadLimit": float("nan")},
            {"honorsSessionLimits": "yes"},
            {"seedRatioLimit": 1},
        ]:
            self.assertRaises(ControlError, TorrentLimits().changed, changes)

    def test_json(self):
        limits = SessionLimits(speedLimitDown=123, altSpeedEnabled=True)
        self.assertEqual(SessionLimits.fromJSON(limits.toJSON()), limits)
        torrent = TorrentLimits(uploadLimit=9, uploadLimited=True)
        self.assertEqual(TorrentLimits.fromJSON(torrent.toJSON()), torrent)
        # Unknown keys (a newer version) are ignored; bad values refused.
        self.assertEqual(
            SessionLimits.fromJSON({"speedLimitUp": 5, "future": 1}).speedLimitUp, 5
        )
        self.assertRaises(ControlError, SessionLimits.fromJSON, {"speedLimitUp": -5})
        self.assertRaises(ControlError, TorrentLimits.fromJSON, [])


class SetupMixin:
    def setUp(self):
        self.clock = task.Clock()
        self.session = SessionBandwidth(self.clock)

    def torrent(self, count=1, name="t", **limits):
        bandwidth = TorrentBandwidth(self.session, TorrentLimits(**limits))
        downloader = FakeDownloader(count, name)
        bandwidth.attach(downloader)
        return bandwidth, downloader


class UnlimitedTests(SetupMixin, SynchronousTestCase):
    """
    Without a limit nothing is installed and no timer runs.
    """

    def test_nothingInstalled(self):
        bandwidth, downloader = self.torrent(3)
        self.assertIsNone(downloader.downloadLimiter)
        self.assertIsNone(downloader.uploader.limiter)
        self.assertIsNone(downloader.requester.depthCap)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        moved = simulate(self.clock, [downloader], 1.0)
        self.assertEqual(set(moved.values()), {200 * BLOCK})
        self.assertEqual(self.session.ticks, 0)

    def test_sessionLimitNotHonoured(self):
        self.session.setLimits(speedLimitDown=1000, speedLimitDownEnabled=True)
        bandwidth, downloader = self.torrent(honorsSessionLimits=False)
        self.assertIsNone(downloader.downloadLimiter)

    def test_liftedLimitUninstalls(self):
        bandwidth, downloader = self.torrent(
            downloadLimit=100_000, downloadLimited=True
        )
        self.assertIsNotNone(downloader.downloadLimiter)
        peer = next(iter(downloader.peers))
        simulate(self.clock, [downloader], 0.3)
        downloader.downloadLimiter.charge(peer, BLOCK)
        self.assertTrue(peer.transport.paused)
        bandwidth.setLimits(downloadLimited=False)
        # At once: the peer reads again, nothing is consulted any more.
        self.assertFalse(peer.transport.paused)
        self.assertIsNone(downloader.downloadLimiter)
        self.assertIsNone(downloader.requester.depthCap)
        self.clock.advance(1)
        self.assertEqual(self.clock.getDelayedCalls(), [])


def rate(moved, seconds):
    return sum(moved.values()) / seconds


class DownloadLimitTests(SetupMixin, SynchronousTestCase):
    def assertWithin(self, value, target, tolerance=0.1):
        self.assertTrue(
            abs(value - target) <= tolerance * target,
            f"{value:.0f} not within {tolerance:.0%} of {target}",
        )

    def test_torrentLimitHolds(self):
        """
        A torrent limit of 2,000 kB/s over three fast peers: every 10 s
        window after the first second is within 10 %; the peers share it
        equally; reading pauses rather than data being dropped.
        """
        bandwidth, downloader = self.torrent(
            3, downloadLimit=2_000_000, downloadLimited=True
        )
        simulate(self.clock, [downloader], 1.0)
        for _ in range(3):
            moved = simulate(self.clock, [downloader], 10.0)
            self.assertWithin(rate(moved, 10.0), 2_000_000)
            shares = sorted(moved.values())
            self.assertLess(shares[-1] - shares[0], 0.1 * shares[-1])
        self.assertTrue(all(p.transport.pauses for p in downloader.peers))

    def test_readsSizedToTheLimit(self):
        """
        Under a limit of 500,000 B/s a peer reads a tick's worth at a time
        (50,000 bytes), so that one let go cannot gulp 256 KiB it then owes
        for half a second; lifted, reads are the usual size again.
        """
        bandwidth, downloader = self.torrent(
            2, downloadLimit=500_000, downloadLimited=True
        )

        def sizes():
            return {p.transport.bufferSize for p in downloader.peers}

        self.assertEqual(sizes(), {50_000})
        simulate(self.clock, [downloader], 1.0)
        self.assertEqual(sizes(), {50_000})
        bandwidth.setLimits(downloadLimit=1_000)
        simulate(self.clock, [downloader], 1.0)
        self.assertEqual(sizes(), {MIN_LIMITED_READ})
        bandwidth.setLimits(downloadLimited=False)
        self.assertEqual(sizes(), {READ_SIZE})
        bandwidth.setLimits(downloadLimited=True)
        bandwidth.detach()
        self.assertEqual(sizes(), {READ_SIZE})

    def test_lowLimit(self):
        """
        A limit below a block a tick: blocks are charged whole and the debt
        is paid back; the average holds.
        """
        bandwidth, downloader = self.torrent(downloadLimit=20_000, downloadLimited=True)
        simulate(self.clock, [downloader], 5.0)
        moved = simulate(self.clock, [downloader], 40.0)
        self.assertWithin(rate(moved, 40.0), 20_000, 0.15)

    def test_zeroLimit(self):
        bandwidth, downloader = self.torrent(downloadLimit=0, downloadLimited=True)
        moved = simulate(self.clock, [downloader], 5.0)
        self.assertEqual(sum(moved.values()), BLOCK)

    def test_changeAppliesAtOnce(self):
        bandwidth, downloader = self.torrent(
            2, downloadLimit=1_000_000, downloadLimited=True
        )
        simulate(self.clock, [downloader], 2.0)
        bandwidth.setLimits(downloadLimit=300_000)
        simulate(self.clock, [downloader], 1.0)
        moved = simulate(self.clock, [downloader], 10.0)
        self.assertWithin(rate(moved, 10.0), 300_000)

    def test_sessionLimitSharedByTorrents(self):
        """
        Two torrents under one session limit share it equally, whatever
        their peer counts.
        """
        self.session.setLimits(speedLimitDown=1_000_000, speedLimitDownEnabled=True)
        _, a = self.torrent(4, "a")
        _, b = self.torrent(1, "b")
        simulate(self.clock, [a, b], 1.0)
        moved = simulate(self.clock, [a, b], 10.0)
        self.assertWithin(rate(moved, 10.0), 1_000_000)
        ofA = sum(v for p, v in moved.items() if p.name.startswith("a"))
        ofB = sum(v for p, v in moved.items() if p.name.startswith("b"))
        self.assertWithin(ofA, ofB, 0.15)

    def test_ownLimitUnderSessionLimit(self):
        """
        A torrent whose own limit is below its fair share leaves the rest
        to the others (max-min fairness).
        """
        self.session.setLimits(speedLimitDown=1_000_000, speedLimitDownEnabled=True)
        _, a = self.torrent(1, "a", downloadLimit=200_000, downloadLimited=True)
        _, b = self.torrent(1, "b")
        simulate(self.clock, [a, b], 2.0)
        moved = simulate(self.clock, [a, b], 10.0)
        ofA = sum(v for p, v in moved.items() if p.name.startswith("a"))
        ofB = sum(v for p, v in moved.items() if p.name.startswith("b"))
        self.assertWithin(ofA / 10, 200_000)
        self.assertWithin(ofB / 10, 800_000)

    def test_turtle(self):
        self.session.setLimits(speedLimitDown=1_000_000, speedLimitDownEnabled=True)
        _, downloader = self.torrent(2)
        simulate(self.clock, [downloader], 1.0)
        self.session.setLimits(altSpeedEnabled=True, altSpeedDown=100_000)
        simulate(self.clock, [downloader], 1.0)
        moved = simulate(self.clock, [downloader], 10.0)
        self.assertWithin(rate(moved, 10.0), 100_000)
        self.session.setLimits(altSpeedEnabled=False)
        simulate(self.clock, [downloader], 1.0)
        moved = simulate(self.clock, [downloader], 10.0)
        self.assertWithin(rate(moved, 10.0), 1_000_000)

    def test_goneePeersForgotten(self):
        bandwidth, downloader = self.torrent(
            2, downloadLimit=50_000, downloadLimited=True
        )
        simulate(self.clock, [downloader], 1.0)
        gone = next(iter(downloader.peers))
        del downloader.peers[gone]
        self.clock.advance(0.2)
        self.assertNotIn(gone, downloader.downloadLimiter._consumers)

    def test_depthCap(self):
        bandwidth, downloader = self.torrent(
            downloadLimit=1_000_000, downloadLimited=True
        )
        cap = downloader.requester.depthCap
        self.assertEqual(cap(None), 62)
        record = next(iter(downloader.peers.values()))
        self.assertEqual(record.queue.depthAt, 0.0)
        bandwidth.setLimits(downloadLimit=1000)
        self.assertEqual(downloader.requester.depthCap(None), MIN_LIMITED_DEPTH)

    def test_detachReleases(self):
        bandwidth, downloader = self.torrent(downloadLimit=1000, downloadLimited=True)
        simulate(self.clock, [downloader], 0.5)
        peer = next(iter(downloader.peers))
        downloader.downloadLimiter.charge(peer, BLOCK)
        self.assertTrue(peer.transport.paused)
        bandwidth.detach()
        self.assertFalse(peer.transport.paused)
        self.assertIsNone(downloader.downloadLimiter)
        self.clock.advance(1)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class UploadLimitTests(SetupMixin, SynchronousTestCase):
    def test_sessionUploadLimit(self):
        """
        Sends are held back and resumed through C{peerWritable}.
        """
        self.session.setLimits(speedLimitUp=500_000, speedLimitUpEnabled=True)
        _, downloader = self.torrent(2)
        self.assertIsNone(downloader.downloadLimiter)
        simulate(self.clock, [downloader], 1.0, UP)
        moved = simulate(self.clock, [downloader], 10.0, UP)
        self.assertTrue(abs(rate(moved, 10.0) - 500_000) < 50_000, moved)
        self.assertTrue(downloader.writable)

    def test_budget(self):
        """
        An upload budget holds every peer back once spent, and says so
        once.
        """
        bandwidth, downloader = self.torrent(2)
        calls = []
        bandwidth.setUploadBudget(5 * BLOCK, lambda: calls.append(1))
        limiter = downloader.uploader.limiter
        self.assertIsNotNone(limiter)
        moved = simulate(self.clock, [downloader], 1.0, UP)
        self.assertEqual(sum(moved.values()), 5 * BLOCK)
        self.assertEqual(calls, [1])
        self.assertTrue(all(limiter.blocked(p) for p in downloader.peers))
        bandwidth.setUploadBudget(None, None)
        self.assertIsNone(downloader.uploader.limiter)
