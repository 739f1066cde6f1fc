"""
File selection, sequential download and the seed ratio against real
libtorrent peers on 127.0.0.1 (issue 17's proof):

  - the multi-directory torrent with its largest file unwanted: every other
    file byte-identical, the unwanted one never created, the piece at its
    edge verified; then marked wanted, it completes and every file is
    byte-identical (in process, and through C{btorrent download --skip});
  - sequential: the pieces are verified in order (the torrent's
    C{pieceVerified} events);
  - a ratio limit of 0.5: btorrent seeds a libtorrent leecher until it has
    uploaded half the torrent, then stops and shows finished, and still
    does after a restart.
"""

from __future__ import annotations

import os
import subprocess

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from btorrent.control.api import SEEDING, STOPPED
from btorrent.daemon.session import Session
from tests.realseeders import libtorrentLeecher, libtorrentSeeder
from tests.test_interop_seed import (
    MULTI,
    MULTI_PIECE,
    Data,
    assertSameFiles,
    noParts,
    pollUntil,
    startSeeder,
)
from tests.twistdproc import downloadCommand, repositoryEnvironment

#: The largest file of the multi-directory torrent.
LARGEST = "multi/a.bin"


class Leecher:
    """
    A btorrent session in this process downloading C{data} from a
    libtorrent seeder.
    """

    def __init__(self, test, data: Data, **sessionOptions):
        self.base = os.path.dirname(data.seedDir)
        self.downloadDir = os.path.join(self.base, "download")
        self.stateDir = os.path.join(self.base, "state")
        self.seeder = libtorrentSeeder(data.seedDir, data.torrentBytes)
        test.addCleanup(self.seeder.close)
        self.session = Session(
            reactor,
            port=0,
            interface="127.0.0.1",
            stateDir=self.stateDir,
            **sessionOptions,
        )
        self.torrent = self.session.addTorrent(
            data.metainfo,
            self.downloadDir,
            peers=[("127.0.0.1", self.seeder.port)],
            announcerFactory=noParts,
        )
        test.addCleanup(self.session.stopService)
        self.verified = []
        self.torrent.events.listen("pieceVerified", self.verified.append)

    def start(self):
        self.session.startService()
        return self.torrent.ready


def fileIndex(data: Data, relative: str) -> int:
    paths = ["/".join((data.metainfo.name,) + f.path) for f in data.metainfo.files]
    return paths.index(relative)


class FileSelectionTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_largestFileUnwantedThenWanted(self):
        data = Data(os.path.abspath(self.mktemp()), MULTI, MULTI_PIECE)
        leecher = Leecher(self, data)
        torrent = leecher.torrent
        largest = fileIndex(data, LARGEST)
        torrent.controls.setFileWanted([largest], False)
        yield leecher.start()
        yield pollUntil(lambda: torrent.complete, 20, "the wanted files")
        self.assertEqual(torrent.state, SEEDING)
        others = [f for f in MULTI if f[0] != LARGEST]
        assertSameFiles(self, others, data.seedDir, leecher.downloadDir)
        path = os.path.join(leecher.downloadDir, *LARGEST.split("/"))
        self.assertFalse(os.path.exists(path))
        # a.bin is bytes 0..69999: pieces 0-3 are all its own, piece 4 holds
        # its end and the start of b.bin.
        entry = data.metainfo.files[largest]
        edge = (entry.offset + entry.length - 1) // MULTI_PIECE
        self.assertEqual(edge, 4)
        self.assertIn(edge, leecher.verified)
        self.assertEqual(
            sorted(set(range(edge)) & set(leecher.verified)), [], "inner pieces"
        )
        self.assertIn(edge, torrent.controls.torrent.storage.partsPieces())
        # Wanted now: the rest comes, every file byte-identical.
        torrent.controls.setFileWanted([largest], True)
        self.assertFalse(torrent.complete)
        yield pollUntil(lambda: torrent.complete, 40, "the largest file")
        assertSameFiles(self, MULTI, data.seedDir, leecher.downloadDir)
        self.assertEqual(torrent.controls.fileProgress()[largest], entry.length)
        self.assertFalse(
            os.path.exists(torrent.controls.partsPath), "the parts file is left"
        )

    @defer.inlineCallbacks
    def test_sequential(self):
        """
        In sequential order the pieces are verified in order: with one
        hashing thread, exactly; the 40 pieces of a random order would not
        be.
        """
        data = Data(os.path.abspath(self.mktemp()), [("seq.bin", 40 * 65536)], 65536)
        leecher = Leecher(self, data, maxThreads=1)
        leecher.torrent.controls.setSequential(True)
        yield leecher.start()
        yield pollUntil(lambda: leecher.torrent.complete, 30, "the download")
        self.assertEqual(leecher.verified, list(range(40)))
        data.assertSame(self, leecher.downloadDir)

    def test_commandSkip(self):
        """
        C{btorrent download --skip N} downloads every other file and exits
        0; the skipped one is never created.
        """
        data = Data(os.path.abspath(self.mktemp()), MULTI, MULTI_PIECE)
        seeder = libtorrentSeeder(data.seedDir, data.torrentBytes)
        self.addCleanup(seeder.close)
        out = os.path.join(os.path.dirname(data.seedDir), "cli")
        result = subprocess.run(
            downloadCommand()
            + [
                data.torrentPath,
                "-o",
                out,
                "--port",
                "0",
                "--interface",
                "127.0.0.1",
                "--peer",
                f"127.0.0.1:{seeder.port}",
                "--quiet",
                "--skip",
                str(fileIndex(data, LARGEST)),
            ],
            env=repositoryEnvironment(),
            capture_output=True,
            text=True,
            timeout=40,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        others = [f for f in MULTI if f[0] != LARGEST]
        assertSameFiles(self, others, data.seedDir, out)
        self.assertFalse(os.path.exists(os.path.join(out, *LARGEST.split("/"))))


class SeedRatioTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_ratioHalf(self):
        """
        A torrent added complete with a ratio limit of 0.5 seeds a
        libtorrent leecher half the torrent (a block or two more at most),
        then stops and is finished; a new session that reads its saved
        controls and checks its data finds it finished and stopped still.
        """
        size = 8 * 1024 * 1024
        data = Data(os.path.abspath(self.mktemp()), [("ratio.bin", size)], 65536)
        base = os.path.dirname(data.seedDir)
        stateDir = os.path.join(base, "state")
        session, [torrent] = yield startSeeder(self, [data], stateDir)
        torrent.controls.setSeedLimits(seedRatioLimit=0.5, seedRatioMode=1)
        leechDir = os.path.join(base, "leech")
        os.makedirs(leechDir)
        leecher = libtorrentLeecher(leechDir, data.torrentBytes)
        self.addCleanup(leecher.close)
        leecher.connect("127.0.0.1", session.port)
        yield pollUntil(lambda: torrent.state == STOPPED, 30, "the ratio")
        self.assertTrue(torrent.controls.isFinished)
        self.assertGreaterEqual(torrent.uploaded, size // 2)
        self.assertLess(torrent.uploaded, size // 2 + 2 * 16384)
        self.assertEqual(torrent.controls.uploadedEver, torrent.uploaded)
        self.assertFalse(leecher.finished)
        saved = torrent.controls.toJSON()
        # The torrent is stopped, its resume data saved (the session stays
        # up: startSeeder stops it at the end).
        # A restart: the lead's state file keeps the controls as a dict.
        again = Session(reactor, port=0, interface="127.0.0.1", stateDir=stateDir)
        restarted = again.addTorrent(
            data.metainfo, data.seedDir, announcerFactory=noParts
        )
        restarted.controls.load(saved)
        self.addCleanup(again.stopService)
        again.startService()
        # Stopped across the restart (the state file says so): check only.
        restarted.stop()
        yield restarted.verify()
        yield pollUntil(
            lambda: restarted.state == STOPPED and restarted.complete,
            20,
            "the check",
        )
        self.assertTrue(restarted.controls.isFinished)
        self.assertEqual(restarted.controls.uploadedEver, torrent.uploaded)
