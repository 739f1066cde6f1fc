"""
Rate limits against real libtorrent peers on 127.0.0.1 (issue 17's proof):

  - a per-torrent download limit of 2,000 kB/s from a libtorrent seeder:
    every 10 s window after a short settling is within 10 % of it; lifted,
    the rest comes at full speed;
  - a session upload limit of 2,000 kB/s to a libtorrent leecher: the same;
  - two torrents under one session download limit share it fairly (neither
    below a third of it).

The engine runs in this process (a L{Session} on the test's reactor); the
byte counts are the coordinator's (block bytes read from, or written to,
the peers), sampled every 0.1 s.
"""

from __future__ import annotations

import os
import time

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from btorrent.daemon.session import Session
from tests.realseeders import libtorrentLeecher, libtorrentSeeder
from tests.test_interop_seed import Data, noParts, pollUntil, startSeeder

#: The limit of every test, bytes/s (2,000 kB/s, K = 1000).
LIMIT = 2_000_000

#: Seconds to settle before measuring; the measured windows.
SETTLE = 2.0
WINDOW = 10.0

PIECE = 256 * 1024


def sleep(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def sample(counters, seconds: float, interval: float = 0.1):
    """
    Sample C{counters()} (a tuple of byte counts) every C{interval} for
    C{seconds}.

    @return: a L{Deferred} firing with C{[(monotonic time, counts)]}.
    """
    samples = []
    end = time.monotonic() + seconds
    while True:
        now = time.monotonic()
        samples.append((now, counters()))
        if now >= end:
            return samples
        yield sleep(interval)


def windowRates(samples, start: float, window: float = WINDOW, step: float = 1.0):
    """
    The rates (bytes/s, per counter) over every C{window}-second stretch
    of C{samples} beginning C{start} seconds after the first, C{step}
    seconds apart.
    """
    t0 = samples[0][0]
    rates = []
    begin = start
    while True:
        first = _at(samples, t0 + begin)
        last = _at(samples, t0 + begin + window)
        if last is None:
            return rates
        elapsed = last[0] - first[0]
        rates.append(tuple((b - a) / elapsed for a, b in zip(first[1], last[1])))
        begin += step


def _at(samples, when):
    for sampleTime, counts in samples:
        if sampleTime >= when:
            return sampleTime, counts
    return None


class LimitTestMixin:
    timeout = 120

    def assertNear(self, value, target, tolerance=0.10, what="rate"):
        self.assertTrue(
            abs(value - target) <= tolerance * target,
            f"{what} {value / 1000:.0f} kB/s is not within {tolerance:.0%} "
            f"of {target / 1000:.0f} kB/s",
        )

    def data(self, size: int, name: str, seed: int) -> Data:
        base = os.path.join(os.path.abspath(self.mktemp()))
        return Data(base, [(name, size)], PIECE, seed=seed)


class DownloadLimitTests(LimitTestMixin, TestCase):
    @defer.inlineCallbacks
    def test_torrentDownloadLimit(self):
        """
        A per-torrent limit of 2,000 kB/s holds within 10 % over every 10 s
        window; lifted, the download completes at full speed.
        """
        data = self.data(40 * 1024 * 1024, "limited.bin", 1)
        seeder = libtorrentSeeder(data.seedDir, data.torrentBytes)
        self.addCleanup(seeder.close)
        base = os.path.dirname(data.seedDir)
        session = Session(
            reactor, port=0, interface="127.0.0.1", stateDir=os.path.join(base, "state")
        )
        torrent = session.addTorrent(
            data.metainfo,
            os.path.join(base, "down"),
            peers=[("127.0.0.1", seeder.port)],
            announcerFactory=noParts,
        )
        torrent.controls.setLimits(downloadLimit=LIMIT, downloadLimited=True)
        session.startService()
        self.addCleanup(session.stopService)
        yield torrent.ready

        def received():
            return (torrent.downloader.downloadRate.total,)

        samples = yield sample(received, SETTLE + WINDOW + 2.0)
        rates = windowRates(samples, SETTLE)
        self.assertGreaterEqual(len(rates), 2)
        for (rate,) in rates:
            self.assertNear(rate, LIMIT)
        self.assertFalse(torrent.completed.called)
        left = torrent.left
        lifted = time.monotonic()
        torrent.controls.setLimits(downloadLimited=False)
        yield pollUntil(lambda: torrent.completed.called, 30, "the download")
        fullSpeed = left / (time.monotonic() - lifted)
        self.assertGreater(fullSpeed, 5 * LIMIT, f"{fullSpeed / 1e6:.1f} MB/s")
        data.assertSame(self, os.path.join(base, "down"))

    @defer.inlineCallbacks
    def test_sessionLimitSharedFairly(self):
        """
        Two torrents from two libtorrent seeders under one session limit of
        2,000 kB/s: together within 10 % of it, neither below a third.
        """
        datas = [
            self.data(30 * 1024 * 1024, f"shared{i}.bin", 10 + i) for i in range(2)
        ]
        base = os.path.abspath(self.mktemp())
        session = Session(
            reactor, port=0, interface="127.0.0.1", stateDir=os.path.join(base, "state")
        )
        session.controls.setSettings(
            {"speedLimitDown": LIMIT, "speedLimitDownEnabled": True}
        )
        torrents = []
        for data in datas:
            seeder = libtorrentSeeder(data.seedDir, data.torrentBytes)
            self.addCleanup(seeder.close)
            torrents.append(
                session.addTorrent(
                    data.metainfo,
                    os.path.join(base, "down"),
                    peers=[("127.0.0.1", seeder.port)],
                    announcerFactory=noParts,
                )
            )
        session.startService()
        self.addCleanup(session.stopService)
        for torrent in torrents:
            yield torrent.ready

        def received():
            return tuple(t.downloader.downloadRate.total for t in torrents)

        samples = yield sample(received, SETTLE + WINDOW + 1.0)
        rates = windowRates(samples, SETTLE)
        self.assertTrue(rates)
        for pair in rates:
            self.assertNear(sum(pair), LIMIT, what="the session's rate")
            for rate in pair:
                self.assertGreater(rate, LIMIT / 3, f"unfair: {pair}")
        # The turtle switch takes over at once.
        session.controls.setSettings({"altSpeedDown": 500_000, "altSpeedEnabled": True})
        yield sleep(1.0)
        samples = yield sample(received, 5.0)
        rates = windowRates(samples, 0.0, window=5.0)
        self.assertNear(sum(rates[0]), 500_000, 0.15, "the turtle rate")


class UploadLimitTests(LimitTestMixin, TestCase):
    @defer.inlineCallbacks
    def test_sessionUploadLimit(self):
        """
        Seeding to a libtorrent leecher under a session upload limit of
        2,000 kB/s: within 10 % over every 10 s window; lifted, the leecher
        completes at full speed.
        """
        data = self.data(40 * 1024 * 1024, "upload.bin", 3)
        base = os.path.dirname(data.seedDir)
        session, [torrent] = yield startSeeder(
            self, [data], os.path.join(base, "state")
        )
        session.controls.setSettings(
            {"speedLimitUp": LIMIT, "speedLimitUpEnabled": True}
        )
        leechDir = os.path.join(base, "leech")
        os.makedirs(leechDir)
        leecher = libtorrentLeecher(leechDir, data.torrentBytes)
        self.addCleanup(leecher.close)
        leecher.connect("127.0.0.1", session.port)

        def sent():
            return (torrent.uploaded,)

        samples = yield sample(sent, SETTLE + WINDOW + 2.0)
        rates = windowRates(samples, SETTLE)
        self.assertGreaterEqual(len(rates), 2)
        for (rate,) in rates:
            self.assertNear(rate, LIMIT)
        self.assertFalse(leecher.finished)
        left = data.metainfo.totalLength - torrent.uploaded
        lifted = time.monotonic()
        session.controls.setSettings({"speedLimitUpEnabled": False})
        yield pollUntil(lambda: leecher.finished, 30, "the leecher")
        fullSpeed = left / (time.monotonic() - lifted)
        self.assertGreater(fullSpeed, 5 * LIMIT, f"{fullSpeed / 1e6:.1f} MB/s")
        data.assertSame(self, leechDir, settle=5)
