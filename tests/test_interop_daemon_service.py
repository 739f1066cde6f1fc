"""
The daemon as a long-lived service, against real software: an empty
C{twistd btorrent} that gets a torrent through its watch dir and downloads
it from a real libtorrent seeder through opentracker; restarts (SIGTERM and
kill -9) that bring every torrent back without hashing its data again; a
real full disk (tmpfs) that errors one torrent and not the daemon; stopped
torrents that stay stopped; removal with data.

Fails (never skips) when libtorrent or opentracker is missing; the full
disk needs root (to mount a tmpfs), as CI runs.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import metainfo
from tests.daemonproc import DaemonProcess
from tests.realclients import writeFiles
from tests.realseeders import libtorrentLeecher, libtorrentSeeder, makeTorrent
from tests.test_interop_download import Fixture, startTracker
from tests.test_interop_seed import MULTI, MULTI_PIECE, SINGLE, assertSameFiles


def _done(daemon, torrentId: int) -> bool:
    [status] = daemon.rpc.call(
        "torrent-get", ids=[torrentId], fields=["percentDone", "status"]
    )["torrents"]
    return status["percentDone"] == 1 and status["status"] == 6


def _add(daemon, torrentBytes: bytes, downloadDir: str, **arguments) -> int:
    reply = daemon.rpc.call(
        "torrent-add",
        metainfo=base64.b64encode(torrentBytes).decode(),
        **{"download-dir": downloadDir},
        **arguments,
    )
    return (reply.get("torrent-added") or reply["torrent-duplicate"])["id"]


class ServiceTests(SynchronousTestCase):
    def test_watchDirThroughOpentracker(self) -> None:
        """
        An empty daemon; a .torrent dropped into its watch dir is added,
        renamed .added, and downloaded from a libtorrent seeder it finds
        through opentracker, byte-identical.  A file that is not a torrent
        becomes .invalid; other files are left alone.
        """
        tracker = startTracker(self)
        fixture = Fixture(self, MULTI, MULTI_PIECE, tracker=tracker)
        watch = os.path.join(fixture.base, "watch")
        os.makedirs(watch)
        daemon = DaemonProcess(
            self, fixture.base, "--watch-dir", watch, downloadDir=fixture.downloadDir
        )
        self.assertEqual(daemon.torrents(), [])
        with open(os.path.join(watch, "notes.txt"), "w") as f:
            f.write("not for us")
        with open(os.path.join(watch, "bad.torrent"), "wb") as f:
            f.write(b"garbage")
        shutil.copy(fixture.torrentPath, os.path.join(watch, "multi.torrent"))
        daemon.waitFor(
            lambda: os.path.exists(os.path.join(watch, "multi.torrent.added")),
            30,
            "the watch dir to take the torrent",
        )
        [torrent] = daemon.torrents("name")
        self.assertEqual(torrent["name"], "multi")
        daemon.waitFor(lambda: _done(daemon, torrent["id"]), 60, "the download")
        fixture.assertSame(self)
        self.assertEqual(
            sorted(os.listdir(watch)),
            ["bad.torrent.invalid", "multi.torrent.added", "notes.txt"],
        )
        self.assertTrue(daemon.stop())
        self.assertNotIn("Traceback", daemon.log())

    def test_restartWithoutRehash(self) -> None:
        """
        After SIGTERM, and after kill -9, the daemon started with only its
        state dir brings the torrent back and seeds it to a libtorrent
        leecher without hashing the data again.
        """
        base = os.path.abspath(self.mktemp())
        data = os.path.join(base, "data")
        writeFiles(data, SINGLE, seed=3)
        torrentBytes = makeTorrent(data, SINGLE, 32768, [])
        daemon = DaemonProcess(self, base)
        torrentId = _add(daemon, torrentBytes, data)
        daemon.waitFor(lambda: _done(daemon, torrentId), 30, "the first check")
        self.assertIn("checking the data on disk", daemon.log())
        self.assertTrue(daemon.stop())
        for end in ("SIGTERM", "SIGKILL"):
            before = len(daemon.log())
            daemon.start()
            daemon.waitFor(lambda: _done(daemon, torrentId), 30, "seeding")
            run = daemon.log()[before:]
            self.assertIn("fast resume", run)
            self.assertNotIn("checking the data on disk", run)
            leecherDir = os.path.join(base, f"leecher-{end}")
            os.makedirs(leecherDir)
            leecher = libtorrentLeecher(leecherDir, torrentBytes)
            self.addCleanup(leecher.close)
            leecher.connect("127.0.0.1", daemon.peerPort)
            daemon.waitFor(lambda leecher=leecher: leecher.finished, 30, "the leecher")
            assertSameFiles(self, SINGLE, data, leecherDir, settle=5.0)
            leecher.close()
            if end == "SIGTERM":
                self.assertTrue(daemon.stop())
            else:
                daemon.kill()
        self.assertNotIn("Traceback", daemon.log())

    def test_stoppedStaysStoppedAndRemoveWithData(self) -> None:
        """
        A torrent stopped through the RPC is still stopped after a restart;
        removing it with its data deletes exactly its files.
        """
        base = os.path.abspath(self.mktemp())
        data = os.path.join(base, "data")
        writeFiles(data, MULTI, seed=5)
        torrentBytes = makeTorrent(data, MULTI, MULTI_PIECE, [])
        with open(os.path.join(data, "mine.txt"), "w") as f:
            f.write("not the torrent's")
        os.makedirs(os.path.join(data, "multi", "sub", "own"))
        daemon = DaemonProcess(self, base)
        torrentId = _add(daemon, torrentBytes, data)
        daemon.waitFor(lambda: _done(daemon, torrentId), 30, "seeding")
        daemon.rpc.call("torrent-stop", ids=[torrentId])
        daemon.waitFor(
            lambda: daemon.torrents("status")[0]["status"] == 0, 10, "the stop"
        )
        self.assertTrue(daemon.stop())
        daemon.start()
        for _ in range(20):
            [status] = daemon.torrents("status", "percentDone")
            self.assertEqual(status["status"], 0)
        daemon.rpc.call(
            "torrent-remove", ids=[torrentId], **{"delete-local-data": True}
        )
        daemon.waitFor(lambda: daemon.torrents() == [], 10, "the removal")
        left = []
        for directory, _, names in os.walk(data):
            for name in names + [""]:
                left.append(os.path.relpath(os.path.join(directory, name), data))
        self.assertEqual(
            sorted(left),
            sorted([".", "mine.txt", "multi", "multi/sub", "multi/sub/own"]),
        )
        self.assertTrue(daemon.stop())


class FullDiskTests(SynchronousTestCase):
    def mount(self, directory: str, size: str) -> None:
        os.makedirs(directory)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", directory],
            capture_output=True,
            text=True,
        )
        self.assertEqual(
            result.returncode, 0, f"cannot mount a tmpfs (root needed): {result.stderr}"
        )
        self.addCleanup(subprocess.run, ["umount", "-l", directory])

    def test_fullDiskErrorsOneTorrent(self) -> None:
        """
        On a real full disk a large torrent fails with "no space" in its
        error while a small one beside it completes; the daemon lives; with
        space freed and the torrent started again, it completes.
        """
        base = os.path.abspath(self.mktemp())
        disk = os.path.join(base, "disk")
        self.mount(disk, "8m")
        bigFiles = [("big.bin", 12 * 1024 * 1024)]
        smallFiles = [("small.bin", 1024 * 1024)]
        seeds = []
        torrents = []
        for files, name in ((bigFiles, "big"), (smallFiles, "small")):
            seedDir = os.path.join(base, "seed-" + name)
            writeFiles(seedDir, files, seed=len(name))
            data = makeTorrent(seedDir, files, 65536, [])
            seeder = libtorrentSeeder(seedDir, data)
            self.addCleanup(seeder.close)
            seeds.append((seedDir, files, seeder))
            torrents.append(data)
        daemon = DaemonProcess(self, base)
        bigId = _add(daemon, torrents[0], disk)
        smallId = _add(daemon, torrents[1], disk)
        # The small torrent's peer comes first: on an 8 MiB disk whichever
        # torrent writes first gets the space, and the test is about the big
        # one failing alone, not about that race.
        seeds[1][2].connect("127.0.0.1", daemon.peerPort)
        daemon.waitFor(lambda: _done(daemon, smallId), 60, "the small torrent")
        seeds[0][2].connect("127.0.0.1", daemon.peerPort)

        def bigFailed() -> bool:
            [status] = daemon.rpc.call(
                "torrent-get", ids=[bigId], fields=["error", "errorString", "status"]
            )["torrents"]
            return status["error"] == 3

        daemon.waitFor(bigFailed, 60, "the big torrent's error")
        [small] = daemon.rpc.call(
            "torrent-get", ids=[smallId], fields=["error", "status"]
        )["torrents"]
        self.assertEqual((small["error"], small["status"]), (0, 6))
        [status] = daemon.rpc.call(
            "torrent-get", ids=[bigId], fields=["errorString", "status"]
        )["torrents"]
        self.assertIn("no space", status["errorString"])
        self.assertEqual(status["status"], 0)
        assertSameFiles(self, smallFiles, seeds[1][0], disk)
        subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
        daemon.rpc.call("torrent-start", ids=[bigId])
        seeds[0][2].connect("127.0.0.1", daemon.peerPort)
        daemon.waitFor(lambda: _done(daemon, bigId), 90, "the big torrent")
        assertSameFiles(self, bigFiles, seeds[0][0], disk)
        self.assertTrue(daemon.stop())
        self.assertNotIn("Traceback", daemon.log())
        info = metainfo.load(torrents[0])
        self.assertIn(info.name, daemon.log())


class LocalErrorTests(SynchronousTestCase):
    def test_fileCutShortUnderUs(self) -> None:
        """
        A seeding torrent's file cut short from outside: when a libtorrent
        leecher asks for a piece that is gone, the torrent stops with the
        error (its file named), the daemon and its other torrent go on;
        once the file is back and the torrent started again, it checks its
        data and the leecher completes.
        """
        base = os.path.abspath(self.mktemp())
        data = os.path.join(base, "data")
        files = [("cut.bin", 3 * 1024 * 1024)]
        other = [("other.bin", 100000)]
        writeFiles(data, files + other, seed=13)
        cutTorrent = makeTorrent(data, files, 65536, [])
        otherTorrent = makeTorrent(data, other, 65536, [])
        daemon = DaemonProcess(self, base)
        cutId = _add(daemon, cutTorrent, data)
        otherId = _add(daemon, otherTorrent, data)
        daemon.waitFor(lambda: _done(daemon, cutId), 30, "seeding")
        path = os.path.join(data, "cut.bin")
        with open(path, "rb") as f:
            original = f.read()
        with open(path, "r+b") as f:
            f.truncate(65536)
        leecherDir = os.path.join(base, "leecher")
        os.makedirs(leecherDir)
        leecher = libtorrentLeecher(leecherDir, cutTorrent)
        self.addCleanup(leecher.close)

        def failed() -> bool:
            leecher.connect("127.0.0.1", daemon.peerPort)
            [status] = daemon.rpc.call(
                "torrent-get", ids=[cutId], fields=["error", "errorString", "status"]
            )["torrents"]
            return status["error"] == 3

        daemon.waitFor(failed, 60, "the torrent's error")
        [status] = daemon.rpc.call(
            "torrent-get", ids=[cutId], fields=["errorString", "status"]
        )["torrents"]
        self.assertIn("cut.bin", status["errorString"])
        self.assertEqual(status["status"], 0)
        self.assertTrue(_done(daemon, otherId))
        with open(path, "wb") as f:
            f.write(original)
        daemon.rpc.call("torrent-start", ids=[cutId])

        def complete() -> bool:
            leecher.connect("127.0.0.1", daemon.peerPort)
            return leecher.finished

        daemon.waitFor(complete, 60, "the leecher")
        assertSameFiles(self, files, data, leecherDir, settle=5.0)
        self.assertTrue(daemon.stop())
        self.assertNotIn("Traceback", daemon.log())
