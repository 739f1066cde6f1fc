"""
What a torrent counts for monitoring (pieces that passed and failed their
hash check, bytes of failed pieces, announces by result) and what it logs
of its progress: a line at each change of state, a progress line at most
once a minute while it transfers, one at completion and one at its stop.

Same harness as L{tests.test_torrent}: real files, a memory reactor, disk
work run at once, a fake seeder.
"""

from __future__ import annotations

import os

from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import wire
from btorrent.engine.torrent import PROGRESS_INTERVAL
from tests import test_torrent
from tests.fakes import FakePeer


class CountsAndLogTests(SynchronousTestCase):
    setUp = test_torrent.TorrentTests.setUp
    makeTorrent = test_torrent.TorrentTests.makeTorrent
    logged = test_torrent.TorrentTests.logged

    def data(self) -> bytes:
        """
        The torrent's bytes, in order.
        """
        with open(os.path.join(self.seedRoot, "a.bin"), "rb") as f:
            a = f.read()
        with open(os.path.join(self.seedRoot, "sub", "b.bin"), "rb") as f:
            b = f.read()
        return a + b

    def feed(self, torrent, corruptOnce=(), pieces=None, number=1) -> FakePeer:
        """
        A fake seeder answers the downloader's requests until none are
        left; the first block sent of each piece in C{corruptOnce} is
        damaged.

        @param pieces: answer only requests for these pieces (the others
            stay pending, in C{peer.pending}); C{None} for all.
        @param number: the seeder's number (a new one each call).
        """
        data = self.data()
        damaged = set()
        downloader = torrent.downloader
        peer = FakePeer(downloader, self.info.pieceCount, number)
        peer.pending = []
        self.assertTrue(downloader.peerConnected(peer))
        peer.haveAll()
        peer.receive(wire.Unchoke())
        while True:
            requests = peer.pending + [
                m for m in peer.sent if isinstance(m, wire.Request)
            ]
            peer.sent = []
            peer.pending = [r for r in requests if pieces and r.index not in pieces]
            answer = [r for r in requests if r not in peer.pending]
            if not answer:
                break
            for r in answer:
                start = r.index * self.info.pieceLength + r.begin
                block = data[start : start + r.length]
                if r.index in corruptOnce and r.index not in damaged:
                    damaged.add(r.index)
                    block = bytes([block[0] ^ 0xFF]) + block[1:]
                peer.receive(wire.Piece(r.index, r.begin, block))
        return peer

    def test_piecesVerified(self) -> None:
        """
        Every piece downloaded and passed counts once; nothing failed.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        self.assertEqual((torrent.piecesVerified, torrent.piecesFailed), (0, 0))
        self.feed(torrent)
        self.assertTrue(torrent.complete)
        self.assertEqual(torrent.piecesVerified, self.info.pieceCount)
        self.assertEqual((torrent.piecesFailed, torrent.corrupt), (0, 0))
        self.successResultOf(torrent.stopService())

    def test_piecesFailed(self) -> None:
        """
        A piece that fails its hash check counts as failed, its bytes as
        corrupt; fetched again, it passes and counts as verified once.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        last = self.info.pieceCount - 1
        self.feed(torrent, corruptOnce={0, last})
        self.assertTrue(torrent.complete)
        self.assertEqual(torrent.piecesFailed, 2)
        self.assertEqual(
            torrent.corrupt, self.info.pieceSize(0) + self.info.pieceSize(last)
        )
        self.assertEqual(torrent.piecesVerified, self.info.pieceCount)
        self.flushLoggedErrors()
        self.successResultOf(torrent.stopService())

    def test_countsSurviveStop(self) -> None:
        """
        Counts go on over a stop and a start (a new downloader run, a new
        announcer): announces of every announcer it had are summed.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        self.assertEqual(torrent.announces, (0, 0))
        first = self.announcers[-1]
        first.succeeded, first.failed = 2, 1
        self.assertEqual(torrent.announces, (2, 1))
        self.feed(torrent, pieces={0}).drop("gone")
        verified = torrent.piecesVerified
        self.assertGreater(verified, 0)
        self.successResultOf(torrent.stop())
        self.assertIsNone(torrent.announcer)
        self.assertEqual(torrent.announces, (2, 1))
        torrent.start()
        self.successResultOf(torrent.ready)
        second = self.announcers[-1]
        self.assertIsNot(second, first)
        second.succeeded, second.failed = 1, 4
        self.assertEqual(torrent.announces, (3, 5))
        self.feed(torrent, number=2)
        self.assertEqual(torrent.piecesVerified, self.info.pieceCount)
        self.successResultOf(torrent.stopService())
        self.assertEqual(torrent.announces, (3, 5))

    def test_announcerWithoutCounts(self) -> None:
        """
        An announcer that counts nothing (a test's, another kind) counts
        as none.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        self.assertFalse(hasattr(self.announcers[-1], "succeeded"))
        self.assertEqual(torrent.announces, (0, 0))
        self.successResultOf(torrent.stopService())

    def stateLines(self):
        return [e["stateName"] for e in self.logged("{stateName}") if "stateName" in e]

    def progressLines(self):
        return self.logged("{percent")

    def test_progressLog(self) -> None:
        """
        The log shows each change of state; while the torrent transfers
        (bytes move every second) a progress line at most once per
        L{PROGRESS_INTERVAL}; a line at completion (100 %) and at stop.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        starting = ["check-wait", "checking", "downloading"]
        self.assertEqual(self.stateLines(), starting)
        self.feed(torrent, pieces={0}).drop("gone")
        self.assertEqual(torrent.piecesVerified, 1)
        minutes = 5
        for _ in range(int(PROGRESS_INTERVAL) * minutes):
            # Something moves every second: uploads to the peer.
            torrent.downloader.uploader.uploaded += 1000
            self.reactor.advance(1)
        lines = self.progressLines()
        self.assertEqual(len(lines), minutes)
        self.assertGreater(lines[0]["percent"], 0)
        self.assertLess(lines[0]["percent"], 100)
        self.feed(torrent, number=2)
        self.assertEqual(self.stateLines(), starting + ["seeding"])
        lines = self.progressLines()
        self.assertEqual(len(lines), minutes + 1)
        self.assertEqual(lines[-1]["percent"], 100.0)
        self.assertIn("100.0%", formatEvent(lines[-1]))
        # Seeding and idle: nothing more in ten minutes.
        self.reactor.advance(1)
        for _ in range(int(PROGRESS_INTERVAL) * 10):
            self.reactor.advance(1)
        self.assertEqual(len(self.progressLines()), minutes + 1)
        self.successResultOf(torrent.stopService())
        self.assertEqual(self.stateLines(), starting + ["seeding", "stopped"])
        self.assertEqual(len(self.progressLines()), minutes + 2)
