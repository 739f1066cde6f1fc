"""
C{twistd btorrent} without C{-n}: a real background daemon that writes
C{twistd.log} and a pid file, downloads from a libtorrent seeder, and stops
on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time

from twisted.trial.unittest import TestCase

from tests.realpeers import freePort
from tests.test_interop_download import SINGLE, Fixture, twistdBtorrentCommand
from tests.twistdproc import repositoryEnvironment


class DaemonTests(TestCase):
    """
    twistd daemonizes btorrent.
    """

    def test_daemon(self):
        """
        C{twistd btorrent ...} returns at once, leaving a daemon whose pid is
        in the pid file; it logs to C{twistd.log}, downloads the torrent from
        a libtorrent seeder that dials its port (the torrent has no tracker),
        into a file of mode 0644 despite twistd's umask of 077, and exits on
        SIGTERM, removing its pid file.
        """
        fixture = Fixture(self, SINGLE, 32768)
        port = freePort()
        pidFile = os.path.join(fixture.base, "twistd.pid")
        logFile = os.path.join(fixture.base, "twistd.log")
        command = twistdBtorrentCommand(fixture, port, logFile, pidFile=pidFile)
        launcher = subprocess.run(
            command, env=repositoryEnvironment(), cwd=fixture.base, timeout=30
        )
        self.assertEqual(launcher.returncode, 0)
        deadline = time.monotonic() + 10
        while not os.path.exists(pidFile):
            self.assertLess(time.monotonic(), deadline, "no pid file")
            time.sleep(0.05)
        with open(pidFile) as f:
            pid = int(f.read().strip())

        def kill():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        self.addCleanup(kill)
        self.assertNotEqual(pid, os.getpid())

        def log():
            with open(logFile, errors="replace") as f:
                return f.read()

        # The torrent has no tracker: the libtorrent seeder dials the daemon.
        fixture.seeder.connect("127.0.0.1", port)
        deadline = time.monotonic() + 30
        while "download complete" not in log():
            self.assertLess(time.monotonic(), deadline, log())
            time.sleep(0.1)
        fixture.assertSame(self)
        # twistd in the background sets the umask to 077; the files still
        # come out rw-r--r-- (the storage's own umask, 022).
        modes = {
            name: stat.S_IMODE(os.stat(os.path.join(fixture.downloadDir, name)).st_mode)
            for name in os.listdir(fixture.downloadDir)
        }
        self.assertEqual(modes, {fixture.metainfo.name: 0o644})
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            self.assertLess(time.monotonic(), deadline, "daemon still running")
            time.sleep(0.05)
        self.assertFalse(os.path.exists(pidFile))
        self.assertIn("Server Shut Down.", log())
        self.assertNotIn("Traceback", log())
