"""
btorrent and libtorrent trade through btorrent's own tracker
(C{twistd btorrent-tracker}), both ways: a libtorrent seeder to a
C{btorrent download} leecher over HTTP, and a C{twistd btorrent} seeder to a
libtorrent leecher over UDP.  Everything on 127.0.0.1; fails (never skips)
when libtorrent or twistd is missing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.realclients import (
    LibtorrentSession,
    freePort,
    infoHashOf,
    makeTorrent,
    sha1File,
    waitUntil,
    writeRandomFile,
)
from tests.realseeders import libtorrentSeeder
from tests.test_interop_tracker_server import TwistdTracker, httpScrape, udpScrape
from tests.twistdproc import downloadCommand, repositoryEnvironment, twistdCommand

SIZE = 3 * (1 << 20) + 12345


class TradeThroughOurTrackerTests(SynchronousTestCase):
    """
    One tracker subprocess per test; data and torrents made at run time.
    """

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.base, "seed"))
        self.data = writeRandomFile(os.path.join(self.base, "seed", "blob.bin"), SIZE)
        self.tracker = TwistdTracker(self.base)
        self.addCleanup(self.tracker.stop)
        self.http = f"http://127.0.0.1:{self.tracker.port}/announce"
        self.udp = f"udp://127.0.0.1:{self.tracker.port}/announce"

    def torrent(self, url: str) -> str:
        directory = os.path.join(self.base, url.split(":")[0])
        os.makedirs(directory)
        return makeTorrent(self.data, [url], directory, pieceLength=1 << 16)

    def test_libtorrentSeedsBtorrentOverHTTP(self) -> None:
        """
        A libtorrent seeder announces to our tracker over HTTP; C{btorrent
        download} learns it from the tracker alone and finishes
        byte-identical; the tracker counts the download.
        """
        torrentPath = self.torrent(self.http)
        infoHash = infoHashOf(torrentPath)
        seeder = LibtorrentSession()
        self.addCleanup(seeder.close)
        handle = seeder.add(torrentPath, os.path.join(self.base, "seed"), seed=True)
        waitUntil(
            lambda: httpScrape(self.tracker.port, infoHash)[0] == 1
            or seeder.reannounce(handle),
            15,
            "the libtorrent seeder to announce",
            interval=0.2,
        )
        out = os.path.join(self.base, "leech")
        result = subprocess.run(
            downloadCommand()
            + [
                torrentPath,
                "-o",
                out,
                "--port",
                str(freePort()),
                "--interface",
                "127.0.0.1",
                "--quiet",
            ],
            env=repositoryEnvironment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sha1File(os.path.join(out, "blob.bin")), sha1File(self.data))
        self.assertNotIn("Traceback", result.stderr)
        # No "Tracker ... failed: ConnectingCancelledError" at exit: the
        # stopped announce cancelled is no tracker failing.
        self.assertNotIn("failed", result.stderr)
        # complete, downloaded, incomplete: the seeder; one download; and the
        # leecher sent stopped.
        waitUntil(
            lambda: httpScrape(self.tracker.port, infoHash) == (1, 1, 0),
            10,
            "the tracker to count the download",
        )

    def test_announceInFlightAtExit(self) -> None:
        """
        C{btorrent download} whose tracker never answers (it accepts the
        connection and says nothing), the seeder given with C{--peer}: it
        finishes, and the announce still in flight when it exits is
        cancelled quietly, with no "Tracker ... failed" warning over the
        progress bar.
        """
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/announce"
        torrentPath = self.torrent(url)
        with open(torrentPath, "rb") as f:
            # A seeder already listening when btorrent dials it.
            seeder = libtorrentSeeder(os.path.join(self.base, "seed"), f.read())
        self.addCleanup(seeder.close)
        out = os.path.join(self.base, "leech")
        started = time.monotonic()
        result = subprocess.run(
            downloadCommand()
            + [
                torrentPath,
                "-o",
                out,
                "--port",
                str(freePort()),
                "--interface",
                "127.0.0.1",
                "--peer",
                f"127.0.0.1:{seeder.port}",
            ],
            env=repositoryEnvironment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sha1File(os.path.join(out, "blob.bin")), sha1File(self.data))
        # Done before the tracker's 30 s deadline, so the announce was
        # still in flight at exit (else the warning below is deserved).
        self.assertLess(elapsed, 25, result.stderr)
        self.assertNotIn("failed", result.stderr)
        self.assertNotIn("Cancelled", result.stderr)

    def test_btorrentSeedsLibtorrentOverUDP(self) -> None:
        """
        C{twistd btorrent} seeds a complete download directory and announces
        over UDP; a libtorrent leecher finds it through our tracker and
        finishes byte-identical.
        """
        torrentPath = self.torrent(self.udp)
        infoHash = infoHashOf(torrentPath)
        logPath = os.path.join(self.base, "seed.log")
        seeder = subprocess.Popen(
            twistdCommand(
                "btorrent",
                "--torrent",
                torrentPath,
                "--download-dir",
                os.path.join(self.base, "seed"),
                "--port",
                str(freePort()),
                "--state-dir",
                os.path.join(self.base, "state"),
                logFile=logPath,
            ),
            env=repositoryEnvironment(),
            cwd=self.base,
        )

        def stopSeeder() -> None:
            if seeder.poll() is None:
                seeder.send_signal(signal.SIGTERM)
                seeder.wait(10)

        self.addCleanup(stopSeeder)

        def log() -> str:
            with open(logPath, errors="replace") as f:
                return f.read()

        waitUntil(
            lambda: udpScrape(self.tracker.port, infoHash)[0] == 1,
            20,
            "the btorrent seeder to announce over UDP",
            interval=0.2,
        )
        leecher = LibtorrentSession()
        self.addCleanup(leecher.close)
        out = os.path.join(self.base, "leech")
        handle = leecher.add(torrentPath, out)
        waitUntil(lambda: leecher.finished(handle), 60, "the libtorrent leecher", 0.1)
        handle.flush_cache()
        waitUntil(
            lambda: os.path.exists(os.path.join(out, "blob.bin"))
            and sha1File(os.path.join(out, "blob.bin")) == sha1File(self.data),
            10,
            "the leecher's file to be byte-identical",
            0.2,
        )
        # libtorrent announced completed: two seeds, one download.
        waitUntil(
            lambda: udpScrape(self.tracker.port, infoHash) == (2, 1, 0),
            10,
            "the scrape to count the download",
            interval=0.2,
        )
        stopSeeder()
        self.assertNotIn("Traceback", log())
