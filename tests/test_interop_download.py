"""
btorrent downloads from a real libtorrent seeder on 127.0.0.1: peers given
directly, then through a real opentracker over HTTP and over UDP; the
C{twistd btorrent} service and the C{btorrent download} command run as
subprocesses.
"""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import time
import urllib.request
from urllib.parse import quote_from_bytes

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from btorrent.codec import bencode, metainfo
from btorrent.daemon.session import Session
from tests.realpeers import Opentracker, freePort
from tests.realseeders import libtorrentSeeder, makeTorrent, writeFiles
from tests.test_interop_seed import (
    MULTI,
    SINGLE,
    WorkDirectories,
    assertSameFiles,
    noParts,
)
from tests.twistdproc import downloadCommand, repositoryEnvironment, twistdCommand


class Fixture(WorkDirectories):
    """
    Data, a torrent and a libtorrent seeder for one test.
    """

    def __init__(self, test, files, pieceLength, tracker=None, udp=False):
        super().__init__(test)
        self.files = files
        writeFiles(self.seedDir, files, seed=len(files))
        trackers = []
        if tracker is not None:
            trackers = [tracker.udpURL if udp else tracker.announceURL]
        self.torrentBytes = makeTorrent(self.seedDir, files, pieceLength, trackers)
        # The seeder announces over HTTP whatever btorrent uses (libtorrent's
        # UDP announces to opentracker are sometimes late): the announce
        # URL is outside the info dictionary, so both torrents name one
        # swarm.
        seederTorrent = self.torrentBytes
        if tracker is not None and udp:
            seederTorrent = makeTorrent(
                self.seedDir, files, pieceLength, [tracker.announceURL]
            )
        self.torrentPath = os.path.join(self.base, "t.torrent")
        with open(self.torrentPath, "wb") as f:
            f.write(self.torrentBytes)
        self.metainfo = metainfo.load(self.torrentBytes)
        if tracker is not None:
            tracker.whitelist([self.metainfo.infoHash])
        self.seeder = libtorrentSeeder(self.seedDir, seederTorrent)
        test.addCleanup(self.seeder.close)
        if tracker is not None:
            waitForSeeds(tracker, self.metainfo.infoHash, 1, self.seeder)

    def assertSame(self, test, downloadDir=None, settle: float = 0.0):
        assertSameFiles(
            test,
            self.files,
            self.seedDir,
            downloadDir or self.downloadDir,
            settle=settle,
        )


def startTracker(test):
    """
    A fresh opentracker for one test.
    """
    tracker = Opentracker().start()
    test.addCleanup(tracker.stop)
    return tracker


def scrape(tracker, infoHash):
    """
    C{(complete, incomplete)} for C{infoHash}, over HTTP.
    """
    url = (
        f"http://127.0.0.1:{tracker.httpPort}/scrape?info_hash="
        f"{quote_from_bytes(infoHash, safe='')}"
    )
    with urllib.request.urlopen(url, timeout=2) as response:
        body = bencode.decode(response.read())
    stats = body.get(b"files", {}).get(infoHash, {})
    return stats.get(b"complete", 0), stats.get(b"incomplete", 0)


def waitForSeeds(tracker, infoHash, count, seeder, timeout=10.0):
    """
    Block until the tracker lists C{count} seeds for C{infoHash}, asking
    C{seeder} to announce again every second.
    """
    deadline = time.monotonic() + timeout
    nextAnnounce = 0.0
    while time.monotonic() < deadline:
        if scrape(tracker, infoHash)[0] >= count:
            return
        if time.monotonic() >= nextAnnounce:
            seeder.reannounce()
            nextAnnounce = time.monotonic() + 1.0
        time.sleep(0.05)
    raise AssertionError(f"the tracker never listed {count} seeds")


def withTimeout(d, seconds):
    d.addTimeout(seconds, reactor)
    return d


class DirectPeerTests(TestCase):
    """
    The seeder's address is given to btorrent directly.
    """

    timeout = 30

    def fixture(self, files, pieceLength):
        return Fixture(self, files, pieceLength)

    def addTorrent(self, session, fixture):
        return session.addTorrent(
            fixture.metainfo,
            fixture.downloadDir,
            peers=[("127.0.0.1", fixture.seeder.port)],
            announcerFactory=noParts,
        )

    @defer.inlineCallbacks
    def download(self, files, pieceLength):
        fixture = self.fixture(files, pieceLength)
        session = Session(
            reactor, port=0, interface="127.0.0.1", stateDir=fixture.stateDir
        )
        torrent = self.addTorrent(session, fixture)
        session.startService()
        try:
            yield withTimeout(torrent.completed, 20)
        finally:
            yield session.stopService()
        self.infoHash = fixture.metainfo.infoHash
        fixture.assertSame(self)
        self.assertEqual(torrent.downloaded, fixture.metainfo.totalLength)
        self.assertTrue(
            os.path.exists(
                os.path.join(
                    fixture.stateDir, fixture.metainfo.infoHash.hex() + ".resume"
                )
            )
        )

    def test_multiFile(self):
        """
        Every file of a multi-directory torrent with 0-byte files and pieces
        straddling files arrives byte-identical.
        """
        return self.download(MULTI, 16384)

    def test_singleFile(self):
        """
        A single-file torrent with a short last piece.
        """
        return self.download(SINGLE, 32768)


class HTTPTrackerTests(DirectPeerTests):
    """
    btorrent learns the seeder from a real opentracker over HTTP.
    """

    udp = False

    def fixture(self, files, pieceLength):
        self.tracker = startTracker(self)
        return Fixture(self, files, pieceLength, tracker=self.tracker, udp=self.udp)

    def addTorrent(self, session, fixture):
        return session.addTorrent(fixture.metainfo, fixture.downloadDir)

    @defer.inlineCallbacks
    def download(self, files, pieceLength):
        yield DirectPeerTests.download(self, files, pieceLength)
        # btorrent announced completed, then stopped: the tracker counts
        # only the libtorrent seed.
        self.assertEqual(scrape(self.tracker, self.infoHash), (1, 0))


class UDPTrackerTests(HTTPTrackerTests):
    """
    btorrent learns the seeder from a real opentracker over UDP.
    """

    udp = True


def twistdBtorrentCommand(fixture, port, logFile, pidFile=None):
    """
    The command line of C{twistd btorrent} downloading C{fixture}'s torrent
    on 127.0.0.1:C{port} (in the foreground unless C{pidFile} is given).
    """
    return twistdCommand(
        "btorrent",
        "--torrent",
        fixture.torrentPath,
        "--download-dir",
        fixture.downloadDir,
        "--port",
        str(port),
        "--interface",
        "127.0.0.1",
        "--state-dir",
        fixture.stateDir,
        logFile=logFile,
        pidFile=pidFile,
    )


def startTwistd(test, fixture, port):
    """
    Start C{twistd -n btorrent} on C{fixture} (logging to
    C{fixture.base/twistd.log}), killed when C{test} ends if still running.

    @return: C{(process, log)}: the C{subprocess.Popen} and a function
        returning the log so far.
    """
    logFile = os.path.join(fixture.base, "twistd.log")
    process = subprocess.Popen(
        twistdBtorrentCommand(fixture, port, logFile),
        env=repositoryEnvironment(),
        cwd=fixture.base,
    )

    def cleanup():
        if process.poll() is None:
            process.kill()
            process.wait()

    test.addCleanup(cleanup)

    def log():
        with open(logFile) as f:
            return f.read()

    return process, log


def waitForScrape(test, tracker, fixture, expected, seconds, process, log, what):
    """
    Block until the tracker's scrape of C{fixture}'s torrent is C{expected};
    fail C{test} (with C{what} and the log) if C{process} exits first or
    after C{seconds}.
    """
    deadline = time.monotonic() + seconds
    while scrape(tracker, fixture.metainfo.infoHash) != expected:
        if process.poll() is not None or time.monotonic() > deadline:
            test.fail(f"twistd did not {what}:\n{log()}")
        time.sleep(0.1)


def assertStopsOnSIGTERM(test, process, log):
    """
    SIGTERM C{process}: it exits within 5 s, cleanly (twistd ends a
    shutdown on a signal by re-raising it: C{-SIGTERM}).
    """
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(10)
    test.assertLess(time.monotonic() - started, 5.0)
    test.assertIn(code, (0, -signal.SIGTERM), log())


class TwistdTests(TestCase):
    """
    C{twistd -n btorrent} as a subprocess, end to end.
    """

    def test_downloadThenSIGTERM(self):
        """
        The daemon downloads from a libtorrent seeder found through
        opentracker, seeds, and on SIGTERM exits within 5 s after telling the
        tracker it stopped.
        """
        tracker = startTracker(self)
        fixture = Fixture(self, MULTI, 16384, tracker=tracker)
        process, log = startTwistd(self, fixture, freePort())
        waitForScrape(
            self, tracker, fixture, (2, 0), 20, process, log, "complete and announce"
        )
        fixture.assertSame(self)
        self.assertIn("download complete", log())
        assertStopsOnSIGTERM(self, process, log)
        self.assertIn("Server Shut Down.", log())
        self.assertEqual(scrape(tracker, fixture.metainfo.infoHash), (1, 0))
        self.assertTrue(
            os.path.exists(
                os.path.join(
                    fixture.stateDir, fixture.metainfo.infoHash.hex() + ".resume"
                )
            )
        )


class DownloadCommandTests(TestCase):
    """
    C{btorrent download} as a subprocess: its exit codes.
    """

    def runCommand(self, *args, timeout=30):
        return subprocess.run(
            downloadCommand() + list(args),
            env=repositoryEnvironment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def fixtureArguments(self, fixture, *args):
        """
        The arguments of C{btorrent download} for C{fixture}'s torrent into
        its download directory, on 127.0.0.1 and any port, then C{args}.
        """
        return [
            fixture.torrentPath,
            "-o",
            fixture.downloadDir,
            "--port",
            "0",
            "--interface",
            "127.0.0.1",
            *args,
        ]

    def startCommand(self, fixture, *args):
        """
        Start C{btorrent download} of C{fixture}'s torrent on 127.0.0.1
        (quiet; C{args} added), killed when the test ends if still running.

        @return: the C{subprocess.Popen}, its stderr a text pipe.
        """
        process = subprocess.Popen(
            downloadCommand() + self.fixtureArguments(fixture, *args, "--quiet"),
            env=repositoryEnvironment(),
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(lambda: process.poll() is None and process.kill())
        return process

    def test_complete(self):
        """
        Exit 0 once every file is complete, after a stopped announce.
        """
        tracker = startTracker(self)
        fixture = Fixture(self, SINGLE, 32768, tracker=tracker)
        result = self.runCommand(*self.fixtureArguments(fixture))
        self.assertEqual(result.returncode, 0, result.stderr)
        fixture.assertSame(self)
        self.assertIn("download complete", result.stderr)
        self.assertEqual(scrape(tracker, fixture.metainfo.infoHash), (1, 0))

    def test_peerGiven(self):
        """
        C{--peer} connects to a peer without a tracker.
        """
        fixture = Fixture(self, MULTI, 16384)
        result = self.runCommand(
            *self.fixtureArguments(
                fixture, "--peer", f"127.0.0.1:{fixture.seeder.port}", "--quiet"
            )
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        fixture.assertSame(self)

    def test_badTorrent(self):
        """
        A file that is not a torrent: exit 1 with one line naming it.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"d4:infoi3ee")
        result = self.runCommand(path, "-o", os.path.dirname(path), "--port", "0")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertIn("invalid torrent", result.stderr)
        self.assertIn(path, result.stderr)

    def test_missingTorrent(self):
        result = self.runCommand("/nonexistent/x.torrent", "--port", "0")
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot read /nonexistent/x.torrent", result.stderr)

    def test_interrupted(self):
        """
        SIGINT before the download completes: a non-zero exit, one line.
        """
        fixture = Fixture(self, SINGLE, 32768)
        process = self.startCommand(fixture)
        # No peer at all: it waits for one until interrupted.  Once its
        # files exist, the reactor runs and handles the signal.
        target = os.path.join(fixture.downloadDir, "single.bin")
        deadline = time.monotonic() + 20
        while not os.path.exists(target):
            self.assertIsNone(process.poll())
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        self.assertEqual(process.returncode, 130, stderr)
        self.assertIn("interrupted", stderr)

    def test_seedUntilInterrupted(self):
        """
        With C{--seed}, it keeps running once complete and uploads: with
        the original seeder gone, a libtorrent leecher gets the whole file
        from it; it exits 0 on SIGINT.
        """
        from tests.realseeders import libtorrentLeecher

        fixture = Fixture(self, SINGLE, 32768)
        port = freePort()
        process = self.startCommand(
            fixture,
            "--peer",
            f"127.0.0.1:{fixture.seeder.port}",
            "--seed",
            "--port",
            str(port),
        )
        target = os.path.join(fixture.downloadDir, "single.bin")
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                self.fail(f"exited early: {process.stderr.read()}")
            if os.path.exists(target) and filecmp.cmp(
                os.path.join(fixture.seedDir, "single.bin"), target, shallow=False
            ):
                break
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        time.sleep(0.5)
        self.assertIsNone(process.poll())
        fixture.seeder.close()
        outDir = os.path.join(fixture.base, "second")
        leecher = libtorrentLeecher(outDir, fixture.torrentBytes)
        self.addCleanup(leecher.close)
        leecher.connect("127.0.0.1", port)
        deadline = time.monotonic() + 20
        while not leecher.finished:
            self.assertIsNone(process.poll(), "btorrent download exited")
            self.assertLess(time.monotonic(), deadline, "the second leecher")
            time.sleep(0.05)
        fixture.assertSame(self, outDir, settle=5)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        self.assertEqual(process.returncode, 0, stderr)


class SeedTests(TestCase):
    """
    btorrent serves a complete torrent to a libtorrent leecher.
    """

    timeout = 30

    @defer.inlineCallbacks
    def seed(self, files, pieceLength, dialOut):
        from tests.realseeders import libtorrentLeecher

        fixture = Fixture(self, files, pieceLength)
        fixture.seeder.close()
        session = Session(
            reactor, port=0, interface="127.0.0.1", stateDir=fixture.stateDir
        )
        leechDir = os.path.join(fixture.base, "leech")
        os.makedirs(leechDir)
        leecher = libtorrentLeecher(leechDir, fixture.torrentBytes)
        self.addCleanup(leecher.close)
        torrent = session.addTorrent(
            fixture.metainfo,
            fixture.seedDir,
            peers=[("127.0.0.1", leecher.port)] if dialOut else [],
            announcerFactory=noParts,
        )
        session.startService()
        try:
            yield withTimeout(torrent.completed, 10)
            self.assertEqual(torrent.downloaded, 0)
            if not dialOut:
                leecher.connect("127.0.0.1", session.port)
            deadline = time.monotonic() + 20
            while not leecher.finished:
                self.assertLess(time.monotonic(), deadline, "leecher unfinished")
                yield task.deferLater(reactor, 0.05, lambda: None)
            self.assertGreaterEqual(torrent.uploaded, fixture.metainfo.totalLength)
        finally:
            yield session.stopService()
        fixture.assertSame(self, leechDir, settle=5)

    def test_leecherConnectsIn(self):
        """
        A libtorrent leecher connecting to us gets every file of a
        multi-directory torrent, byte-identical.
        """
        return self.seed(MULTI, 16384, dialOut=False)

    def test_seederDialsOut(self):
        """
        Given a leecher's address, the seeder connects out to it and serves
        a single-file torrent with a short last piece.
        """
        return self.seed(SINGLE, 32768, dialOut=True)
