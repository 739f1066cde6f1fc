"""
btorrent seeds to real leechers on 127.0.0.1: libtorrent, aria2 and
Transmission, each with a multi-directory torrent (0-byte files, pieces
straddling files) and a single-file torrent; and a real
C{twistd -n btorrent} subprocess that starts from a complete download
directory and seeds it.

btorrent starts with no resume data: it finds the data complete by its
start-up recheck.  aria2 and Transmission are not told where the seeder
is: btorrent connects out to them (Transmission ignores loopback peers
from a tracker).  Every download is checked byte for byte, and nothing
may be logged with a traceback.

The helpers here (L{Data}, L{startSeeder}, L{pollUntil}, L{Twistd},
L{LogWatch}) are used by the other seeding tests.
"""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import time
from typing import List, Optional, Sequence, Tuple

from twisted.internet import defer, reactor, task, threads
from twisted.logger import eventAsText, globalLogPublisher
from twisted.trial.unittest import TestCase

from btorrent.codec import metainfo
from btorrent.daemon.session import Session
from tests.realclients import aria2Leecher
from tests.realpeers import freePort, stopProcess, waitForTCP
from tests.realseeders import libtorrentLeecher, makeTorrent, writeFiles
from tests.realtransmission import Transmission
from tests.twistdproc import repositoryEnvironment, twistdCommand

#: A multi-directory torrent: 0-byte files (first, inside, last in a
#: directory), pieces of 16 KiB straddling files.
MULTI = [
    ("multi/a.bin", 70000),
    ("multi/empty", 0),
    ("multi/sub/b.bin", 12345),
    ("multi/sub/deeper/zero", 0),
    ("multi/sub/deeper/c.bin", 40000),
    ("multi/z/last.bin", 1),
]
MULTI_PIECE = 16384

#: A single file with a short last piece.
SINGLE = [("single.bin", 5 * 32768 + 1234)]
SINGLE_PIECE = 32768


def noParts(torrent):
    """
    No announcer: peers are given directly.
    """
    return None


def assertSameFiles(
    test,
    files: Sequence[Tuple[str, int]],
    seedDir: str,
    outDir: str,
    emptyFiles: bool = True,
    settle: float = 0.0,
) -> None:
    """
    Every file of C{files} (C{(relative path, size)}) is in C{outDir},
    byte-identical to the one in C{seedDir}.

    @param emptyFiles: also require the 0-byte files (Transmission does
        not create them).
    @param settle: seconds to wait for the files to become identical: a
        libtorrent leecher reports itself finished once every piece passed
        its hash check, which can be before its disk threads wrote the
        last blocks.  Never for btorrent, whose completion comes after its
        writes.
    """
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and not _sameFiles(
        files, seedDir, outDir, emptyFiles
    ):
        time.sleep(0.02)
    for relative, size in files:
        parts = relative.split("/")
        got = os.path.join(outDir, *parts)
        if size == 0 and not emptyFiles:
            continue
        test.assertTrue(os.path.isfile(got), f"{got} is missing")
        test.assertEqual(os.path.getsize(got), size, got)
        test.assertTrue(
            filecmp.cmp(os.path.join(seedDir, *parts), got, shallow=False),
            f"{got} differs",
        )


def _sameFiles(files, seedDir: str, outDir: str, emptyFiles: bool) -> bool:
    for relative, size in files:
        parts = relative.split("/")
        got = os.path.join(outDir, *parts)
        if size == 0 and not emptyFiles:
            continue
        if not os.path.isfile(got) or os.path.getsize(got) != size:
            return False
        if not filecmp.cmp(os.path.join(seedDir, *parts), got, shallow=False):
            return False
    return True


class WorkDirectories:
    """
    A fresh directory for one test and its parts.

    @ivar base: the directory (under the test's C{mktemp}).
    @ivar seedDir: C{base/seed}, created: the seeder's complete data.
    @ivar downloadDir: C{base/download}: where the download goes.
    @ivar stateDir: C{base/state}: btorrent's state directory.
    """

    def __init__(self, test) -> None:
        self.base = os.path.abspath(test.mktemp())
        self.seedDir = os.path.join(self.base, "seed")
        self.downloadDir = os.path.join(self.base, "download")
        self.stateDir = os.path.join(self.base, "state")
        os.makedirs(self.seedDir)


class Data:
    """
    Generated files under C{seedDir} and their torrent (made by libtorrent).

    @ivar seedDir: the complete download directory.
    @ivar torrentPath: the .torrent file.
    @ivar metainfo: its L{btorrent.codec.metainfo.Metainfo}.
    """

    def __init__(
        self,
        base: str,
        files: Sequence[Tuple[str, int]],
        pieceLength: int,
        trackers: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        """
        @param base: a directory; the data goes into C{base/seed} (shared
            by several L{Data} with the same C{base}).
        @param files: C{(relative path, size)}; one entry without C{/}
            makes a single-file torrent.
        """
        self.base = base
        self.seedDir = os.path.join(base, "seed")
        os.makedirs(self.seedDir, exist_ok=True)
        self.files = list(files)
        writeFiles(self.seedDir, files, seed=seed or len(files))
        self.torrentBytes = makeTorrent(self.seedDir, files, pieceLength, trackers)
        self.metainfo = metainfo.load(self.torrentBytes)
        self.torrentPath = os.path.join(base, self.metainfo.name + ".torrent")
        with open(self.torrentPath, "wb") as f:
            f.write(self.torrentBytes)

    def assertSame(
        self, test, outDir: str, emptyFiles: bool = True, settle: float = 0.0
    ) -> None:
        """
        Every file is in C{outDir}, byte-identical.

        @param emptyFiles: also require the 0-byte files (Transmission does
            not create them).
        @param settle: see L{assertSameFiles}.
        """
        assertSameFiles(test, self.files, self.seedDir, outDir, emptyFiles, settle)


class LogWatch:
    """
    Every log event while a test runs (in this process).
    """

    def __init__(self) -> None:
        self.events: List[dict] = []

    def __call__(self, event) -> None:
        self.events.append(event)

    def tracebacks(self) -> List[str]:
        """
        The events that carry a failure or a traceback.
        """
        found = []
        for event in self.events:
            text = eventAsText(event, includeTraceback=True) or ""
            if "log_failure" in event or "Traceback" in text:
                found.append(text)
        return found

    def texts(self, needle: str) -> List[str]:
        """
        The log lines containing C{needle}.
        """
        return [
            text
            for text in (eventAsText(event) or "" for event in self.events)
            if needle in text
        ]

    @classmethod
    def install(cls, test) -> LogWatch:
        """
        Watch the global log for the duration of C{test}.
        """
        watch = cls()
        globalLogPublisher.addObserver(watch)
        test.addCleanup(globalLogPublisher.removeObserver, watch)
        return watch


def pollUntil(predicate, seconds: float, what, interval: float = 0.05):
    """
    Poll C{predicate()} on the reactor until it is true.

    @param what: a string, or a callable returning one, for the failure
        message.
    @return: a L{Deferred} firing with C{None}, or failing with an
        C{AssertionError} naming C{what} after C{seconds}.
    """

    @defer.inlineCallbacks
    def poll():
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                text = what() if callable(what) else what
                raise AssertionError(f"timed out after {seconds} s waiting for {text}")
            yield task.deferLater(reactor, interval, lambda: None)

    return poll()


@defer.inlineCallbacks
def startSeeder(test, datas: Sequence[Data], stateDir: str, peers=()):
    """
    A btorrent L{Session} on 127.0.0.1 seeding every one of C{datas} from
    its C{seedDir} (the default choker, no announcer), stopped when C{test}
    ends.

    @return: a L{Deferred} firing with C{(session, [torrent, ...])} once
        every torrent has checked its data and seeds.
    """
    session = Session(reactor, port=0, interface="127.0.0.1", stateDir=stateDir)
    torrents = [
        session.addTorrent(
            data.metainfo, data.seedDir, peers=peers, announcerFactory=noParts
        )
        for data in datas
    ]
    session.startService()
    test.addCleanup(session.stopService)
    for torrent in torrents:
        yield defer.DeferredList([torrent.ready], fireOnOneErrback=True)
        test.assertTrue(torrent.completed.called, "the seeder is not complete")
        test.assertEqual(torrent.left, 0)
    return session, torrents


class Twistd:
    """
    C{twistd -n --pidfile= btorrent ...} as a subprocess, logging to a file.

    @ivar port: its peer port on 127.0.0.1.
    @ivar process: the C{subprocess.Popen}.
    """

    def __init__(
        self,
        torrentPaths: Sequence[str],
        downloadDir: str,
        stateDir: str,
        logPath: str,
        port: Optional[int] = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.port = port or freePort()
        self.logPath = logPath
        self.args = twistdCommand(
            "btorrent",
            *(f"--torrent={path}" for path in torrentPaths),
            f"--download-dir={downloadDir}",
            f"--state-dir={stateDir}",
            f"--port={self.port}",
            "--interface=127.0.0.1",
            *extra,
            logFile=logPath,
        )
        with open(logPath + ".stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                self.args,
                env=repositoryEnvironment(),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=subprocess.STDOUT,
                cwd=os.path.dirname(logPath),
            )

    def log(self) -> str:
        """
        Its log so far (and anything it wrote on stderr).
        """
        text = ""
        for path in (self.logPath, self.logPath + ".stderr"):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def waitForLog(self, needle: str, seconds: float, count: int = 1):
        """
        A L{Deferred} firing once C{needle} appears C{count} times in the
        log; it fails if the process exits first.
        """

        def seen() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"twistd exited with {self.process.returncode}:\n{self.log()}"
                )
            return self.log().count(needle) >= count

        return pollUntil(
            seen, seconds, lambda: f"{needle!r} in the twistd log:\n{self.log()}"
        )

    def stop(self) -> Optional[int]:
        """
        SIGTERM, and wait (10 s at most, then SIGKILL).

        @return: the exit status (twistd stopped by a signal exits by that
            signal once shut down: C{-SIGTERM} is a clean stop).
        """
        return stopProcess(self.process, 10)

    def kill(self) -> None:
        """
        SIGKILL, and reap.
        """
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def assertCleanLog(self, test) -> None:
        """
        No traceback and no unhandled error in the log.
        """
        text = self.log()
        test.assertNotIn("Traceback", text, text[-6000:])
        test.assertNotIn("Unhandled", text, text[-6000:])


class BothTorrentsMixin:
    """
    The tests of a leecher class: its C{leech(files, pieceLength)} run on
    L{MULTI} and on L{SINGLE}.
    """

    @defer.inlineCallbacks
    def startSeeding(self, files, pieceLength):
        """
        Generate L{Data} under a fresh directory and start a btorrent seeder
        of it, the log watched.

        @return: a L{Deferred} firing with C{(base directory, data, log
            watch, session, torrent)}.
        """
        base = os.path.abspath(self.mktemp())
        data = Data(base, files, pieceLength)
        watch = LogWatch.install(self)
        session, [torrent] = yield startSeeder(
            self, [data], os.path.join(base, "state")
        )
        return base, data, watch, session, torrent

    def test_multiDirectory(self):
        """
        A multi-directory torrent with 0-byte files and pieces straddling
        files arrives byte-identical.
        """
        return self.leech(MULTI, MULTI_PIECE)

    def test_singleFile(self):
        """
        A single file with a short last piece arrives byte-identical.
        """
        return self.leech(SINGLE, SINGLE_PIECE)


class LibtorrentLeecherTests(BothTorrentsMixin, TestCase):
    """
    A libtorrent leecher connects to the btorrent seeder.
    """

    timeout = 30

    @defer.inlineCallbacks
    def leech(self, files, pieceLength):
        base, data, watch, session, torrent = yield self.startSeeding(
            files, pieceLength
        )
        outDir = os.path.join(base, "out")
        leecher = libtorrentLeecher(outDir, data.torrentBytes)
        self.addCleanup(leecher.close)
        leecher.connect("127.0.0.1", session.port)
        yield pollUntil(lambda: leecher.finished, 20, "the libtorrent leecher")
        data.assertSame(self, outDir, settle=5)
        self.assertGreaterEqual(torrent.uploaded, data.metainfo.totalLength)
        self.assertEqual(torrent.downloaded, 0)
        self.assertEqual(watch.tracebacks(), [])


class Aria2LeecherTests(BothTorrentsMixin, TestCase):
    """
    The btorrent seeder connects out to an aria2 leecher, which exits 0
    once it has everything.
    """

    timeout = 30

    @defer.inlineCallbacks
    def leech(self, files, pieceLength):
        base, data, watch, session, torrent = yield self.startSeeding(
            files, pieceLength
        )
        outDir = os.path.join(base, "out")
        port = freePort()
        logPath = os.path.join(base, "aria2.log")
        aria2 = aria2Leecher(data.torrentPath, outDir, port=port, logPath=logPath)

        def stopAria2():
            if aria2.poll() is None:
                aria2.kill()
                aria2.wait()

        self.addCleanup(stopAria2)
        # A refused connection would be retried only 30 s later.
        yield threads.deferToThread(waitForTCP, port, 10, aria2)
        torrent.addPeers([("127.0.0.1", port)])

        def aria2Log() -> str:
            with open(logPath, errors="replace") as f:
                return "the aria2 leecher to exit:\n" + f.read()

        yield pollUntil(lambda: aria2.poll() is not None, 20, aria2Log)
        self.assertEqual(aria2.returncode, 0, aria2Log())
        data.assertSame(self, outDir)
        self.assertGreaterEqual(torrent.uploaded, data.metainfo.totalLength)
        self.assertEqual(watch.tracebacks(), [])


class TransmissionLeecherTests(TestCase):
    """
    One btorrent session seeds two torrents to two Transmission leechers
    at once; btorrent connects out to them (Transmission ignores loopback
    peers from trackers, waits about 10 s before its first request, and
    refuses a second connection from the same address for another
    torrent for a while: hence one daemon per torrent).
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_multiDirectoryAndSingleFile(self):
        """
        Both torrents arrive byte-identical (Transmission does not create
        0-byte files: only the others are compared).
        """
        base = os.path.abspath(self.mktemp())
        datas = [Data(base, MULTI, MULTI_PIECE), Data(base, SINGLE, SINGLE_PIECE)]
        watch = LogWatch.install(self)
        daemons = []
        for name in ("multi", "single"):
            transmission = yield threads.deferToThread(
                Transmission, os.path.join(base, "transmission-" + name)
            )
            self.addCleanup(threads.deferToThread, transmission.stop)
            daemons.append(transmission)
        outDir = os.path.join(base, "out")
        os.makedirs(outDir)
        ids = []
        for data, transmission in zip(datas, daemons):
            torrentId = yield threads.deferToThread(
                transmission.addTorrent, data.torrentBytes, outDir
            )
            ids.append(torrentId)
        # Until it runs a torrent it refuses connections for it, and a
        # refused peer is retried only 30 s later.
        for torrentId, transmission in zip(ids, daemons):
            yield threads.deferToThread(
                transmission.waitFor, torrentId, lambda s: s["status"] == 4, 15
            )
        session, torrents = yield startSeeder(self, datas, os.path.join(base, "state"))
        for torrent, transmission in zip(torrents, daemons):
            torrent.addPeers([("127.0.0.1", transmission.peerPort)])
        waits = [
            threads.deferToThread(
                transmission.waitFor, torrentId, lambda s: s["percentDone"] == 1, 45
            )
            for torrentId, transmission in zip(ids, daemons)
        ]
        try:
            yield defer.gatherResults(waits, consumeErrors=True)
        except BaseException:
            for transmission in daemons:
                print(transmission.log())
            raise
        for data, torrent in zip(datas, torrents):
            data.assertSame(self, outDir, emptyFiles=False)
            self.assertGreaterEqual(torrent.uploaded, data.metainfo.totalLength)
        self.assertEqual(watch.tracebacks(), [])


class TwistdSeederTests(TestCase):
    """
    C{twistd -n --pidfile= btorrent --torrent X --download-dir D} with the
    data already in D seeds it.
    """

    timeout = 40

    @defer.inlineCallbacks
    def test_seedsCompleteDownloadDirectory(self):
        """
        A real C{twistd} process given two torrents whose data is complete
        in its download directory checks it, seeds both to a libtorrent
        leecher, and stops cleanly on SIGTERM, saving resume data that
        says it has everything.
        """
        base = os.path.abspath(self.mktemp())
        datas = [Data(base, MULTI, MULTI_PIECE), Data(base, SINGLE, SINGLE_PIECE)]
        stateDir = os.path.join(base, "state")
        twistd = Twistd(
            [data.torrentPath for data in datas],
            datas[0].seedDir,
            stateDir,
            os.path.join(base, "twistd.log"),
        )
        self.addCleanup(twistd.kill)
        yield twistd.waitForLog("complete, seeding", 20, count=2)
        leechers = []
        for data in datas:
            outDir = os.path.join(base, "out")
            leecher = libtorrentLeecher(outDir, data.torrentBytes)
            self.addCleanup(leecher.close)
            leecher.connect("127.0.0.1", twistd.port)
            leechers.append(leecher)
        try:
            yield pollUntil(
                lambda: all(leecher.finished for leecher in leechers),
                20,
                "the libtorrent leechers",
            )
        except BaseException:
            print(twistd.log())
            raise
        for data in datas:
            data.assertSame(self, os.path.join(base, "out"), settle=5)
        code = yield threads.deferToThread(twistd.stop)
        self.assertEqual(code, -signal.SIGTERM, twistd.log())
        self.assertIn("Server Shut Down.", twistd.log())
        twistd.assertCleanLog(self)
        for data in datas:
            self.assertTrue(
                os.path.exists(
                    os.path.join(stateDir, data.metainfo.infoHash.hex() + ".resume")
                ),
                twistd.log(),
            )
