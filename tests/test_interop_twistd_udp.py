"""
C{twistd -n btorrent} as a subprocess announcing to a real opentracker over
UDP (BEP 15): C{started} at start, C{completed} at the end of the download,
C{stopped} on SIGTERM within 5 s.  (The same over HTTP is
C{tests.test_interop_download.TwistdTests}.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from twisted.trial.unittest import TestCase

from tests.realseeders import freePort
from tests.test_interop_download import MULTI, Fixture, scrape, startTracker
from tests.twistdproc import repositoryEnvironment, twistdCommand


class TwistdUDPTrackerTests(TestCase):
    """
    The daemon talks to its tracker over UDP only.
    """

    def test_announcesOverUDPThenStops(self):
        """
        A torrent whose only tracker is C{udp://}: the daemon finds the
        libtorrent seeder through it, downloads, is counted as a seed, and on
        SIGTERM tells the tracker C{stopped} and exits within 5 s.
        """
        tracker = startTracker(self)
        fixture = Fixture(self, MULTI, 16384, tracker=tracker, udp=True)
        self.assertEqual(
            [list(tier) for tier in fixture.metainfo.trackers], [[tracker.udpURL]]
        )
        logPath = os.path.join(fixture.base, "twistd.log")
        command = twistdCommand(
            "btorrent",
            "--torrent",
            fixture.torrentPath,
            "--download-dir",
            fixture.downloadDir,
            "--port",
            str(freePort()),
            "--state-dir",
            fixture.stateDir,
            logFile=logPath,
        )
        process = subprocess.Popen(
            command, env=repositoryEnvironment(), cwd=fixture.base
        )

        def cleanup():
            if process.poll() is None:
                process.kill()
                process.wait()

        self.addCleanup(cleanup)

        def log():
            with open(logPath) as f:
                return f.read()

        infoHash = fixture.metainfo.infoHash
        deadline = time.monotonic() + 30
        while scrape(tracker, infoHash) != (2, 0):
            if process.poll() is not None or time.monotonic() > deadline:
                self.fail(f"twistd did not complete and announce over UDP:\n{log()}")
            time.sleep(0.1)
        fixture.assertSame(self)
        self.assertIn("download complete", log())
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(10)
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertIn(code, (0, -signal.SIGTERM), log())
        self.assertEqual(scrape(tracker, infoHash), (1, 0), log())
        self.assertNotIn("Traceback", log())
