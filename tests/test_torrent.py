"""
Tests for L{btorrent.engine.torrent}: a torrent's start (storage, resume data or
recheck), its parts, completion, progress lines and its stop, with real files,
a memory reactor and disk work run synchronously.
"""

from __future__ import annotations

import os
import random

from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.codec import wire
from btorrent.engine import resume
from btorrent.engine.storage import MultiFileWriter
from btorrent.engine.torrent import (
    PROGRESS_INTERVAL,
    RESUME_INTERVAL,
    STOP_ANNOUNCE_TIMEOUT,
    Torrent,
    formatRate,
    formatSize,
)
from btorrent.interfaces import IAnnounceTarget
from tests.builders import buildTorrent
from tests.fakes import FakeAnnouncer, FakePeer, SyncReactor, syncRunner

PEER_ID = b"-BT0100-" + b"t" * 12


FILES = [("a.bin", 40000), ("empty", 0), ("sub/b.bin", 30000)]


class TorrentTests(SynchronousTestCase):
    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        built = buildTorrent(
            os.path.join(self.base, "seed", "content"), FILES, seed=len(FILES)
        )
        self.info, self.seedRoot = built.metainfo, built.path
        self.downloadDir = os.path.join(self.base, "download")
        self.stateDir = os.path.join(self.base, "state")
        self.reactor = SyncReactor()
        self.announcers = []
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def makeTorrent(self, stopResult=None, peers=(), downloadDir=None):
        def announcer(torrent):
            a = FakeAnnouncer(torrent, stopResult=stopResult)
            self.announcers.append(a)
            return a

        return Torrent(
            self.info,
            MultiFileWriter(self.info, downloadDir or self.downloadDir),
            self.stateDir,
            PEER_ID,
            syncRunner,
            self.reactor,
            port=6881,
            announcerFactory=announcer,
            rng=random.Random(1),
            peers=peers,
        )

    def logged(self, text):
        return [e for e in self.events if text in (e.get("log_format") or "")]

    def seedAll(self, torrent):
        """
        Feed every piece to the torrent's downloader from a fake seeder.
        """
        with open(os.path.join(self.seedRoot, "a.bin"), "rb") as f:
            a = f.read()
        with open(os.path.join(self.seedRoot, "sub", "b.bin"), "rb") as f:
            b = f.read()
        data = a + b
        downloader = torrent.downloader
        peer = FakePeer(downloader, self.info.pieceCount, 1)
        self.assertTrue(downloader.peerConnected(peer))
        peer.haveAll()
        peer.receive(wire.Unchoke())
        while True:
            requests = [m for m in peer.sent if isinstance(m, wire.Request)]
            peer.sent = []
            if not requests:
                break
            for r in requests:
                start = r.index * self.info.pieceLength + r.begin
                peer.receive(
                    wire.Piece(r.index, r.begin, data[start : start + r.length])
                )
        return peer

    def test_interface(self):
        torrent = self.makeTorrent()
        verifyObject(IAnnounceTarget, torrent)
        self.assertEqual(torrent.infoHash, self.info.infoHash)
        self.assertEqual(torrent.peerId, PEER_ID)
        self.assertEqual(torrent.port, 6881)
        self.assertEqual(
            (torrent.uploaded, torrent.downloaded, torrent.left),
            (0, 0, self.info.totalLength),
        )

    def test_startEmpty(self):
        """
        A fresh torrent opens its files, finds nothing, and starts its
        downloader, announcer and choker; its initial peers are dialled.
        """
        torrent = self.makeTorrent(peers=[("127.0.0.1", 7001)])
        torrent.startService()
        self.successResultOf(torrent.ready)
        self.assertTrue(
            os.path.isfile(os.path.join(self.downloadDir, "content", "empty"))
        )
        self.assertTrue(torrent.downloader.running)
        self.assertTrue(self.announcers[0].running)
        self.assertTrue(torrent.choker.running)
        self.assertEqual(torrent.left, self.info.totalLength)
        self.assertEqual(self.reactor.tcpClients[0][:2], ("127.0.0.1", 7001))
        self.assertNoResult(torrent.completed)
        self.assertTrue(self.logged("checking the data on disk"))

    def test_addPeersBeforeReady(self):
        """
        Peers a tracker gives before the downloader exists are kept for it.
        """
        torrent = self.makeTorrent()
        torrent.addPeers([("127.0.0.1", 7002)])
        torrent.startService()
        self.assertEqual(self.reactor.tcpClients[0][:2], ("127.0.0.1", 7002))
        torrent.addPeers([("127.0.0.1", 7003)])
        self.assertEqual(self.reactor.tcpClients[1][:2], ("127.0.0.1", 7003))

    def test_downloadCompletes(self):
        """
        When the last piece is written: announce completed once, log
        "download complete", fire C{completed}, keep running.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        self.seedAll(torrent)
        self.successResultOf(torrent.completed)
        self.assertEqual(self.announcers[0].completedCalls, 1)
        self.assertTrue(self.logged("download complete"))
        self.assertEqual(torrent.left, 0)
        self.assertEqual(torrent.downloaded, self.info.totalLength)
        self.assertTrue(torrent.running)
        for relative, _ in FILES:
            with open(os.path.join(self.seedRoot, *relative.split("/")), "rb") as f:
                expected = f.read()
            with open(
                os.path.join(self.downloadDir, "content", *relative.split("/")), "rb"
            ) as f:
                self.assertEqual(f.read(), expected)

    def test_stopSavesResumeAndRestartTrustsIt(self):
        """
        Stopping saves the resume data; the next start uses it instead of
        hashing the files again.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        self.seedAll(torrent)
        self.successResultOf(torrent.stopService())
        self.assertTrue(self.announcers[0].stopped)
        self.assertTrue(
            os.path.exists(resume.resumePath(self.stateDir, self.info.infoHash))
        )
        self.events.clear()
        again = self.makeTorrent()
        again.startService()
        self.successResultOf(again.completed)
        self.assertTrue(self.logged("fast resume"))
        self.assertFalse(self.logged("checking the data on disk"))
        # Complete at start: nothing downloaded, no completed announce.
        self.assertEqual(self.announcers[1].completedCalls, 0)
        self.assertTrue(self.logged("complete, seeding"))

    def test_resumeSavedPeriodically(self):
        """
        While pieces arrive, the resume data is saved every minute; not when
        nothing changed.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        path = resume.resumePath(self.stateDir, self.info.infoHash)
        self.reactor.advance(RESUME_INTERVAL)
        self.assertFalse(os.path.exists(path))
        self.seedAll(torrent)
        self.reactor.advance(RESUME_INTERVAL)
        self.assertTrue(os.path.exists(path))
        have = resume.readResume(
            self.stateDir,
            self.info.infoHash,
            self.info.pieceCount,
            torrent.storage.fileStats(),
        )
        self.assertEqual(have, torrent.picker.haveBitfield.toBytes())
        os.remove(path)
        self.reactor.advance(RESUME_INTERVAL)
        self.assertFalse(os.path.exists(path))

    def test_completeDataRechecked(self):
        """
        Without resume data, complete files on disk are found by a recheck.
        """
        torrent = self.makeTorrent(downloadDir=os.path.dirname(self.seedRoot))
        torrent.startService()
        self.successResultOf(torrent.completed)
        self.assertEqual(torrent.left, 0)
        self.assertEqual(self.announcers[0].completedCalls, 0)

    def test_stopWaitsBoundedForAnnouncer(self):
        """
        A tracker that never answers the stopped announce holds the stop
        back at most a few seconds.
        """
        torrent = self.makeTorrent(stopResult=defer.Deferred())
        torrent.startService()
        d = torrent.stopService()
        self.assertNoResult(d)
        self.reactor.advance(STOP_ANNOUNCE_TIMEOUT)
        self.successResultOf(d)
        self.assertFalse(torrent.downloader.running)

    def test_stopBeforeReady(self):
        """
        Stopping while the disk check runs waits for it and starts nothing.
        """
        held = []

        def runner(f, *args):
            d = defer.Deferred()
            held.append((f, args, d))
            return d

        torrent = self.makeTorrent()
        torrent.runInThread = runner
        torrent.startService()
        d = torrent.stopService()
        self.assertNoResult(d)
        while held:
            f, args, deferred = held.pop(0)
            defer.maybeDeferred(f, *args).chainDeferred(deferred)
        self.successResultOf(d)
        self.assertIsNone(torrent.downloader)
        self.assertEqual(self.announcers, [])

    def test_storageFailure(self):
        """
        A download directory that cannot be created fails C{ready}.
        """
        blocker = os.path.join(self.base, "file")
        with open(blocker, "w") as f:
            f.write("x")
        torrent = self.makeTorrent(downloadDir=os.path.join(blocker, "sub"))
        torrent.startService()
        self.failureResultOf(torrent.ready)
        self.flushLoggedErrors()
        self.successResultOf(torrent.stopService())

    def test_progressLines(self):
        """
        At most every L{PROGRESS_INTERVAL} seconds, and only when something
        changed, a line with percent, rates, peers and time left, as named
        fields.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        # Nothing changed since it started: no line.
        self.reactor.advance(PROGRESS_INTERVAL)
        self.assertEqual(self.logged("{percent"), [])
        torrent.downloader.uploader.uploaded += 10
        for _ in range(int(PROGRESS_INTERVAL) - 1):
            self.reactor.advance(1)
        self.assertEqual(self.logged("{percent"), [])
        self.reactor.advance(1)
        lines = self.logged("{percent")
        self.assertEqual(len(lines), 1)
        event = lines[0]
        for key in ("percent", "downloadRate", "uploadRate", "peers", "etaSeconds"):
            self.assertIn(key, event)
        self.assertEqual(event["percent"], 0.0)
        self.assertEqual((event["downloaded"], event["uploaded"]), (0, 10))
        self.assertIn("; totals down 0 B (0 B) up 10 B (10 B)", formatEvent(event))
        # Nothing changed: no line.
        self.reactor.advance(PROGRESS_INTERVAL)
        self.assertEqual(len(self.logged("{percent")), 1)
        torrent.downloader.uploader.uploaded += 10
        self.reactor.advance(PROGRESS_INTERVAL)
        self.assertEqual(len(self.logged("{percent")), 2)

    def test_progressTotals(self):
        """
        The progress line carries the session's totals, downloaded and
        uploaded, as named fields (bytes) and in its text, for people and
        in exact bytes; one more line is logged when the torrent stops, so
        a process's log ends with its final totals.
        """
        torrent = self.makeTorrent()
        torrent.startService()
        self.seedAll(torrent)
        torrent.downloader.uploader.uploaded = 12897485
        self.reactor.advance(PROGRESS_INTERVAL)
        lines = self.logged("{percent")
        event = lines[-1]
        self.assertEqual(event["downloaded"], self.info.totalLength)
        self.assertEqual(event["uploaded"], 12897485)
        text = formatEvent(event)
        self.assertIn(
            f"; totals down 68.4 KiB ({self.info.totalLength} B) "
            "up 12.3 MiB (12897485 B)",
            text,
        )
        self.assertEqual(self.info.totalLength, 70000)
        torrent.downloader.uploader.uploaded += 1
        self.successResultOf(torrent.stopService())
        after = self.logged("{percent")
        self.assertEqual(len(after), len(lines) + 1)
        self.assertEqual(after[-1]["uploaded"], 12897486)
        lines = after
        self.assertIn("up 12.3 MiB (12897486 B)", formatEvent(lines[-1]))

    def test_noTotalsLineWhenStoppedBeforeReady(self):
        """
        A torrent stopped before it started logs no progress line.
        """
        torrent = self.makeTorrent()
        self.successResultOf(torrent.stopService())
        self.assertEqual(self.logged("{percent"), [])

    def test_fileGoneIsTheTorrentsError(self):
        """
        A file deleted or cut short under a running torrent is found on the
        heartbeat's file check: the torrent stops with the error naming it.
        """
        from btorrent.control.api import ERROR_LOCAL, STOPPED
        from btorrent.engine.torrent import FILE_CHECK_INTERVAL

        torrent = self.makeTorrent()
        torrent.start()
        self.seedAll(torrent)
        path = os.path.join(self.downloadDir, "content", "sub", "b.bin")
        with open(path, "r+b") as f:
            f.truncate(10)
        self.reactor.advance(FILE_CHECK_INTERVAL)
        self.assertEqual(torrent.state, STOPPED)
        self.assertEqual(torrent.error, ERROR_LOCAL)
        self.assertIn("b.bin", torrent.errorString)
        self.assertIn("cut to 10 bytes", torrent.errorString)


class FormatTests(SynchronousTestCase):
    def test_formatSize(self):
        self.assertEqual(formatSize(0), "0 B")
        self.assertEqual(formatSize(1023), "1023 B")
        self.assertEqual(formatSize(1536), "1.5 KiB")
        self.assertEqual(formatSize(3 * 1024**3), "3.0 GiB")
        self.assertEqual(formatRate(2 * 1024**2), "2.0 MiB/s")
