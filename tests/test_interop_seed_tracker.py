"""
A C{twistd btorrent} seeder and real leechers that find each other only
through a real tracker (opentracker on 127.0.0.1), as in a real swarm:

  - aria2 announces over HTTP, learns the seeder's address and dials it;
  - Transmission announces too, but ignores loopback peers that trackers
    list, so it never dials: the seeder learns of it by announcing again
    when asked (C{kill -USR1}, the daemon's "ask for more peers") and dials
    it.

Fails (never skips) when opentracker, aria2, Transmission or libtorrent is
missing.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request

from twisted.trial.unittest import SynchronousTestCase

from btorrent.tracker import announce as codec
from tests.realclients import aria2Leecher
from tests.realpeers import Opentracker
from tests.realtransmission import Transmission
from tests.test_interop_seed import MULTI, MULTI_PIECE, SINGLE, SINGLE_PIECE, Data
from tests.test_interop_seed import Twistd as SeederProcess


def scrape(tracker, infoHash: bytes) -> tuple:
    """
    Scrape opentracker over HTTP: C{(complete, downloaded, incomplete)}.
    """
    url = codec.scrapeRequestURL(
        tracker.announceURL.replace("/announce", "/scrape"), [infoHash]
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url.decode("ascii"), timeout=5) as response:
        stats = codec.decodeScrapeResponse(response.read()).get(infoHash)
    if stats is None:  # no swarm yet
        return (0, 0, 0)
    return (stats.complete, stats.downloaded, stats.incomplete)


def waitFor(predicate, seconds: float, what, process=None) -> None:
    """
    Poll C{predicate} until it holds; fail after C{seconds}, or at once if
    the twistd C{process} exited.
    """
    deadline = time.monotonic() + seconds
    while not predicate():
        if process is not None and process.process.poll() is not None:
            raise AssertionError(f"twistd exited:\n{process.log()}")
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {seconds} s waiting for {text}")
        time.sleep(0.05)


class TrackerSwarmTests(SynchronousTestCase):
    """
    The seeder is a C{twistd -n btorrent} process whose download directory
    holds the complete data; it announces to opentracker at start.
    """

    def start(self, files, pieceLength):
        """
        opentracker, the data, its torrent (announce URL of the tracker),
        and the seeder process once it seeds.
        """
        self.tracker = Opentracker().start()
        self.addCleanup(self.tracker.stop)
        base = os.path.abspath(self.mktemp())
        data = Data(base, files, pieceLength, [self.tracker.announceURL])
        self.tracker.whitelist([data.metainfo.infoHash])
        seeder = SeederProcess(
            [data.torrentPath],
            data.seedDir,
            os.path.join(base, "state"),
            os.path.join(base, "twistd.log"),
        )
        self.addCleanup(seeder.kill)
        waitFor(
            lambda: "complete, seeding" in seeder.log(),
            20,
            lambda: f"the seeder to seed:\n{seeder.log()}",
            seeder,
        )
        # Its started announce reached the tracker: one seed listed.
        waitFor(
            lambda: scrape(self.tracker, data.metainfo.infoHash)[0] == 1,
            10,
            "the seeder's announce",
            seeder,
        )
        return base, data, seeder

    def finish(self, seeder, data) -> None:
        """
        Stop the seeder cleanly and check what it says it uploaded.
        """
        self.assertEqual(seeder.stop(), -signal.SIGTERM, seeder.log())
        seeder.assertCleanLog(self)
        uploaded = int(
            seeder.log()
            .rsplit("totals down", 1)[1]
            .split(" up ", 1)[1]
            .split("(")[1]
            .split(" B)")[0]
        )
        self.assertGreaterEqual(uploaded, data.metainfo.totalLength)

    def test_aria2FindsTheSeeder(self):
        """
        aria2, given only the torrent, finds the seeder through the tracker
        and downloads the multi-directory torrent byte-identical.
        """
        base, data, seeder = self.start(MULTI, MULTI_PIECE)
        outDir = os.path.join(base, "aria2")
        logPath = os.path.join(base, "aria2.log")
        aria2 = aria2Leecher(data.torrentPath, outDir, logPath=logPath)
        self.addCleanup(lambda: aria2.poll() is None and aria2.kill())

        def aria2Log() -> str:
            with open(logPath, errors="replace") as f:
                return f.read()

        self.assertEqual(aria2.wait(timeout=60), 0, aria2Log())
        data.assertSame(self, outDir)
        self.finish(seeder, data)

    def test_seederDialsTransmissionWhenAsked(self):
        """
        Transmission announces and waits; after C{SIGUSR1} the seeder
        announces, hears of Transmission, dials it, and the single-file
        torrent arrives byte-identical.
        """
        base, data, seeder = self.start(SINGLE, SINGLE_PIECE)
        transmission = Transmission(os.path.join(base, "transmission"))
        self.addCleanup(transmission.stop)
        outDir = os.path.join(base, "out")
        os.makedirs(outDir)
        torrentId = transmission.addTorrent(data.torrentBytes, outDir)
        # Transmission is listed by the tracker once it has announced.
        waitFor(
            lambda: scrape(self.tracker, data.metainfo.infoHash)[2] == 1,
            20,
            lambda: f"Transmission's announce:\n{transmission.log()}",
            seeder,
        )
        transmission.waitFor(torrentId, lambda s: s["status"] == 4, 15)
        # Without being asked, the seeder would announce again only after
        # opentracker's interval (about half an hour).
        time.sleep(1)
        self.assertNotIn(str(transmission.peerPort), seeder.log())
        seeder.process.send_signal(signal.SIGUSR1)
        waitFor(
            lambda: "announcing 1 torrents now, as asked" in seeder.log(),
            5,
            lambda: f"the re-announce:\n{seeder.log()}",
            seeder,
        )
        transmission.waitFor(torrentId, lambda s: s["percentDone"] == 1, 45)
        data.assertSame(self, outDir)
        self.assertIn(f"127.0.0.1:{transmission.peerPort} connected", seeder.log())
        self.finish(seeder, data)
