"""
btorrent downloads from a real libtorrent seeder on 127.0.0.1: peers given
directly, then through a real opentracker over HTTP and over UDP; the
C{twistd btorrent} service and the C{btorrent download} command run as
subprocesses.
"""

from __future__ import annotations

import filecmp
import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from btorrent import metainfo
from btorrent.session import Session
from tests.realseeders import libtorrentSeeder, makeTorrent, writeFiles

#: A multi-directory torrent: 0-byte files, pieces straddling files.
MULTI = [
    ("multi/a.bin", 70000),
    ("multi/empty", 0),
    ("multi/sub/b.bin", 12345),
    ("multi/sub/deeper/zero", 0),
    ("multi/sub/deeper/c.bin", 40000),
    ("multi/z/last.bin", 1),
]
#: A single file with a short last piece.
SINGLE = [("single.bin", 5 * 32768 + 1234)]


def noParts(torrent):
    return None


class Fixture:
    """
    Data, a torrent and a libtorrent seeder for one test.
    """

    def __init__(self, test, files, pieceLength, trackers=()):
        self.base = os.path.abspath(test.mktemp())
        self.seedDir = os.path.join(self.base, "seed")
        self.downloadDir = os.path.join(self.base, "download")
        self.stateDir = os.path.join(self.base, "state")
        os.makedirs(self.seedDir)
        self.files = files
        writeFiles(self.seedDir, files, seed=len(files))
        self.torrentBytes = makeTorrent(self.seedDir, files, pieceLength, trackers)
        self.torrentPath = os.path.join(self.base, "t.torrent")
        with open(self.torrentPath, "wb") as f:
            f.write(self.torrentBytes)
        self.metainfo = metainfo.load(self.torrentBytes)
        self.seeder = libtorrentSeeder(self.seedDir, self.torrentBytes)
        test.addCleanup(self.seeder.close)

    def assertSame(self, test, downloadDir=None):
        downloadDir = downloadDir or self.downloadDir
        for relative, size in self.files:
            parts = relative.split("/")
            got = os.path.join(downloadDir, *parts)
            test.assertTrue(os.path.isfile(got), got)
            test.assertEqual(os.path.getsize(got), size, got)
            test.assertTrue(
                filecmp.cmp(os.path.join(self.seedDir, *parts), got, shallow=False),
                got,
            )


def withTimeout(d, seconds):
    d.addTimeout(seconds, reactor)
    return d


class DirectPeerTests(TestCase):
    """
    The seeder's address is given to btorrent directly.
    """

    timeout = 30

    @defer.inlineCallbacks
    def download(self, files, pieceLength):
        fixture = Fixture(self, files, pieceLength)
        session = Session(
            reactor, port=0, interface="127.0.0.1", stateDir=fixture.stateDir
        )
        torrent = session.addTorrent(
            fixture.metainfo,
            fixture.downloadDir,
            peers=[("127.0.0.1", fixture.seeder.port)],
            announcerFactory=noParts,
            chokerFactory=noParts,
        )
        session.startService()
        try:
            yield withTimeout(torrent.completed, 20)
        finally:
            yield session.stopService()
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
