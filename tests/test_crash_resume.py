"""
btorrent resumes what is on disk: a C{twistd btorrent} leecher killed with
SIGKILL three times during a 256 MiB download finishes it without fetching
much again; and a download directory with corrupted pieces (no resume
data, or resume data the files' mtimes invalidate) has exactly those
pieces fetched again.

The seeder is libtorrent on 127.0.0.1: its payload upload counter is what
btorrent downloaded, counted by someone else.
"""

from __future__ import annotations

import os
import signal
import time

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from btorrent.codec import metainfo
from btorrent.daemon.session import Session
from btorrent.engine import resume
from tests.realclients import sha1File
from tests.realpeers import Opentracker, freePort
from tests.realseeders import (
    libtorrentSeeder,
    makeTorrent,
    writeFiles,
    writeLargeFile,
)
from tests.test_interop_seed import (
    LogWatch,
    Twistd,
    WorkDirectories,
    noParts,
    pollUntil,
)

#: A multi-directory torrent of 64 KiB pieces, many straddling files.
TREE = [
    ("tree/a.bin", 300000),
    ("tree/empty", 0),
    ("tree/sub/b.bin", 1000001),
    ("tree/sub/c.bin", 65536),
    ("tree/z/last.bin", 2000003),
]
TREE_PIECE = 65536

#: The crash test: one file of 256 MiB in 256 KiB pieces.
BIG = 256 << 20
BIG_PIECE = 256 << 10


def payloadUploaded(seeder) -> int:
    """
    Block bytes a libtorrent seeder sent, over its whole session.
    """
    return seeder.handle.status().total_payload_upload


def stopSession(session):
    """
    Stop C{session} unless it was stopped already.
    """
    if session.running:
        return session.stopService()


class CorruptTree(WorkDirectories):
    """
    The L{TREE} torrent complete in a download directory (a copy of the
    seeder's data), then with some pieces corrupted on disk.
    """

    def __init__(self, test) -> None:
        super().__init__(test)
        writeFiles(self.seedDir, TREE, seed=7)
        writeFiles(self.downloadDir, TREE, seed=7)
        self.torrentBytes = makeTorrent(self.seedDir, TREE, TREE_PIECE)
        self.metainfo = metainfo.load(self.torrentBytes)

    def straddling(self):
        """
        The pieces that span two files or more.
        """
        found = []
        for index in range(self.metainfo.pieceCount):
            start = index * TREE_PIECE
            end = start + self.metainfo.pieceSize(index)
            files = [
                entry
                for entry in self.metainfo.files
                if entry.length
                and entry.offset < end
                and start < entry.offset + entry.length
            ]
            if len(files) > 1:
                found.append(index)
        return found

    def corrupt(self, indexes) -> None:
        """
        Flip one byte in the middle of each piece of C{indexes}, in the
        download directory.
        """
        for index in indexes:
            offset = index * TREE_PIECE + self.metainfo.pieceSize(index) // 2
            for entry in self.metainfo.files:
                if entry.offset <= offset < entry.offset + entry.length:
                    path = os.path.join(
                        self.downloadDir, self.metainfo.name, *entry.path
                    )
                    with open(path, "r+b") as f:
                        f.seek(offset - entry.offset)
                        byte = f.read(1)
                        f.seek(offset - entry.offset)
                        f.write(bytes([byte[0] ^ 0xFF]))
                    break
            else:
                raise AssertionError(f"no file holds byte {offset}")

    def assertSame(self, test) -> None:
        """
        The download directory matches the seeder's data.
        """
        for relative, size in TREE:
            got = os.path.join(self.downloadDir, *relative.split("/"))
            test.assertEqual(os.path.getsize(got), size)
            test.assertEqual(
                sha1File(got),
                sha1File(os.path.join(self.seedDir, *relative.split("/"))),
                got,
            )


class CorruptedPiecesTests(TestCase):
    """
    The start-up recheck finds exactly the corrupted pieces, and only they
    are fetched again.
    """

    timeout = 30

    @defer.inlineCallbacks
    def recheckAndRepair(self, tree: CorruptTree, corrupted):
        """
        Start a session over C{tree}, check what it believes it has, then
        let it fetch the rest from a libtorrent seeder, counting the bytes.
        """
        watch = LogWatch.install(self)
        seeder = libtorrentSeeder(tree.seedDir, tree.torrentBytes)
        self.addCleanup(seeder.close)
        session = Session(
            reactor, port=0, interface="127.0.0.1", stateDir=tree.stateDir
        )
        torrent = session.addTorrent(
            tree.metainfo, tree.downloadDir, announcerFactory=noParts
        )
        session.startService()
        self.addCleanup(stopSession, session)
        yield torrent.ready
        pieceCount = tree.metainfo.pieceCount
        missing = sorted(set(range(pieceCount)) - set(torrent.picker.haveBitfield))
        self.assertEqual(missing, sorted(corrupted))
        self.assertEqual(watch.texts("fast resume,"), [])
        torrent.addPeers([("127.0.0.1", seeder.port)])
        yield pollUntil(lambda: torrent.completed.called, 20, "the repair")
        expected = sum(tree.metainfo.pieceSize(i) for i in corrupted)
        self.assertEqual(torrent.downloaded, expected)
        yield pollUntil(
            lambda: payloadUploaded(seeder) >= expected, 5, "libtorrent's counter"
        )
        self.assertEqual(payloadUploaded(seeder), expected)
        yield session.stopService()
        tree.assertSame(self)
        self.assertEqual(watch.tracebacks(), [])

    def test_noResumeData(self):
        """
        Without resume data, pieces with one flipped byte (the first, two
        that straddle files, the short last one) are found by the recheck
        and fetched again; nothing else is.
        """
        tree = CorruptTree(self)
        straddling = tree.straddling()
        self.assertGreaterEqual(len(straddling), 2)
        pieceCount = tree.metainfo.pieceCount
        self.assertNotEqual(tree.metainfo.pieceSize(pieceCount - 1), TREE_PIECE)
        corrupted = {0, straddling[0], straddling[-1], pieceCount - 1}
        tree.corrupt(corrupted)
        return self.recheckAndRepair(tree, corrupted)

    @defer.inlineCallbacks
    def test_resumeDataInvalidatedByMtime(self):
        """
        Resume data saying every piece is there is not trusted once the
        files changed after it was written (their mtimes differ): the
        recheck finds the corrupted pieces.
        """
        tree = CorruptTree(self)
        info = tree.metainfo
        # A first run checks the complete directory and saves resume data.
        session = Session(
            reactor, port=0, interface="127.0.0.1", stateDir=tree.stateDir
        )
        torrent = session.addTorrent(info, tree.downloadDir, announcerFactory=noParts)
        session.startService()
        yield torrent.ready
        self.assertTrue(torrent.completed.called)
        yield session.stopService()
        path = resume.resumePath(tree.stateDir, info.infoHash)
        self.assertTrue(os.path.exists(path))
        with open(path, "rb") as f:
            saved = f.read()
        corrupted = {1, tree.straddling()[1], info.pieceCount // 2}
        # Make sure the mtime moves even on a coarse clock.
        time.sleep(0.01)
        tree.corrupt(corrupted)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), saved)
        yield self.recheckAndRepair(tree, corrupted)


class KillAndResumeTests(SynchronousTestCase):
    """
    A C{twistd -n btorrent} leecher of a 256 MiB torrent is killed with
    SIGKILL at about 20 %, 50 % and 80 % and restarted each time; it
    finds its peer through opentracker.  It saves resume data every 0.2 s
    (C{--resume-interval}), so that a kill finds resume data on disk that
    pieces written since have made stale.
    """

    def test_killThreeTimes(self):
        """
        The download finishes byte-identical, and the libtorrent seeder
        sent less than 1.1 times the torrent's size over the four runs.
        """
        started = time.monotonic()
        dirs = WorkDirectories(self)
        base, seedDir, stateDir = dirs.base, dirs.seedDir, dirs.stateDir
        outDir = dirs.downloadDir
        os.makedirs(outDir)
        writeLargeFile(os.path.join(seedDir, "big.bin"), BIG)
        tracker = Opentracker().start()
        self.addCleanup(tracker.stop)
        torrentBytes = makeTorrent(
            seedDir, [("big.bin", BIG)], BIG_PIECE, [tracker.announceURL]
        )
        info = metainfo.load(torrentBytes)
        tracker.whitelist([info.infoHash])
        torrentPath = os.path.join(base, "big.torrent")
        with open(torrentPath, "wb") as f:
            f.write(torrentBytes)
        seeder = libtorrentSeeder(seedDir, torrentBytes)
        self.addCleanup(seeder.close)
        seeder.reannounce()
        port = freePort()
        logs = []
        atKill = []

        def run(number: int) -> Twistd:
            leecher = Twistd(
                [torrentPath],
                outDir,
                stateDir,
                os.path.join(base, f"twistd-{number}.log"),
                port=port,
                extra=["--resume-interval=0.2"],
            )
            self.addCleanup(leecher.kill)
            logs.append(leecher)
            return leecher

        def waitFor(predicate, seconds, what, leecher):
            deadline = time.monotonic() + seconds
            while not predicate():
                if leecher.process.poll() is not None:
                    self.fail(
                        f"twistd exited while waiting for {what}:\n{leecher.log()}"
                    )
                if time.monotonic() > deadline:
                    self.fail(f"timed out waiting for {what}:\n{leecher.log()}")
                time.sleep(0.01)

        resumeFile = resume.resumePath(stateDir, info.infoHash)

        def savedSince(moment: float) -> bool:
            try:
                return os.stat(resumeFile).st_mtime >= moment
            except FileNotFoundError:
                return False

        for number, fraction in enumerate((0.2, 0.5, 0.8)):
            runStart = time.time()
            leecher = run(number)
            # Killed once it has saved resume data in this run too.
            waitFor(
                lambda fraction=fraction, runStart=runStart: (
                    payloadUploaded(seeder) >= fraction * BIG and savedSince(runStart)
                ),
                20,
                f"{fraction:.0%} of the download and a resume save",
                leecher,
            )
            self.assertNotIn("download complete", leecher.log())
            leecher.kill()
            atKill.append(payloadUploaded(seeder))
        leecher = run(3)
        waitFor(
            lambda: "download complete" in leecher.log(),
            30,
            "the download to complete",
            leecher,
        )
        self.assertEqual(leecher.stop(), -signal.SIGTERM, leecher.log())
        self.assertIn("Server Shut Down.", leecher.log())
        total = payloadUploaded(seeder)
        for each in logs:
            each.assertCleanLog(self)
        # The first start had no resume data.  Every restart found the
        # resume data of the run killed before it: stale if pieces were
        # written after its last save (the file's mtime moved: not
        # trusted, the whole disk checked), else trusted as it stands.
        self.assertIn("No fast resume", logs[0].log())
        self.assertIn("checking the data on disk, 1024 of 1024 pieces", logs[0].log())
        for each in logs[1:]:
            text = each.log()
            if "changed since the resume data was saved" in text:
                self.assertNotIn("fast resume,", text)
                self.assertIn("checking the data on disk, 1024 of 1024 pieces", text)
            else:
                self.assertIn("fast resume,", text)
        self.assertGreaterEqual(total, BIG)
        # The last run fetched little more than the 20 % still missing.
        self.assertLess(total - atKill[-1], 0.3 * BIG, (atKill, total))
        self.assertEqual(
            sha1File(os.path.join(outDir, "big.bin")),
            sha1File(os.path.join(seedDir, "big.bin")),
        )
        self.assertLess(total, 1.1 * BIG, f"the seeder sent {total} bytes")
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 60, f"the test took {elapsed:.1f} s")
