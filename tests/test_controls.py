"""
Tests for L{btorrent.engine.controls} on a real L{Torrent}: file selection
and priorities (unwanted files never created, straddling pieces verified
through the parts file, wanted again later), sequential order, rate limits
wired into the coordinator, seeding limits, peer limits, persistence, and
bad input refused with nothing changed.  Peers are the fake peers of
L{tests.test_downloader}; the reactor is a memory reactor whose clock the
tests move; disk work runs synchronously.
"""

from __future__ import annotations

import os
import random
import shutil

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import wire
from btorrent.control.api import (
    DOWNLOADING,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    SEEDING,
    STOPPED,
    AddOptions,
    ControlError,
    TorrentOptions,
)
from btorrent.engine.bandwidth import MAX_RATE
from btorrent.engine.controls import SessionControls
from btorrent.engine.storage import MultiFileWriter
from btorrent.engine.torrent import Torrent
from tests.builders import buildTorrent
from tests.fakes import FakePeer, SyncReactor, syncRunner
from tests.test_torrent import PEER_ID

PIECE = 16384

FILES = [
    ("a.bin", 40000),
    ("empty", 0),
    ("sub/big.bin", 70000),
    ("sub/c.bin", 5000),
    ("z.bin", 20000),
]


class ControlsMixin:
    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        built = buildTorrent(
            os.path.join(self.base, "seed", "content"), FILES, PIECE, seed=17
        )
        self.info, self.seedRoot = built.metainfo, built.path
        self.downloadDir = os.path.join(self.base, "download")
        self.stateDir = os.path.join(self.base, "state")
        self.reactor = SyncReactor()
        self.session = SessionControls(self.reactor)
        self.paths = ["/".join(f.path) for f in self.info.files]
        self.content = built.content()
        self.count = 0

    def index(self, relative):
        return self.paths.index(relative)

    def makeTorrent(self, downloadDir=None, metainfo=None, runner=syncRunner, **kwargs):
        torrent = Torrent(
            self.info if metainfo is None else None,
            MultiFileWriter(self.info, downloadDir or self.downloadDir),
            self.stateDir,
            PEER_ID,
            runner,
            self.reactor,
            port=6881,
            announcerFactory=lambda t: None,
            chokerFactory=lambda t: None,
            rng=random.Random(1),
            sessionControls=self.session,
            **kwargs,
        )
        self.addCleanup(lambda: torrent.stop())
        return torrent

    def connect(self, torrent, seed=True):
        self.count += 1
        peer = FakePeer(torrent.downloader, self.info.pieceCount, self.count)
        peer.transport = StringTransport()
        self.assertTrue(torrent.downloader.peerConnected(peer))
        if seed:
            peer.haveAll()
            peer.receive(wire.Unchoke())
        return peer

    def answer(self, peer, limit=None):
        """
        Answer the peer's requests until none is left (or C{limit} blocks).

        @return: the pieces of the blocks sent, in order.
        """
        answered = []
        while True:
            requests = [m for m in peer.sent if isinstance(m, wire.Request)]
            peer.sent = []
            if not requests:
                return answered
            for position, r in enumerate(requests):
                if limit is not None and len(answered) >= limit:
                    peer.sent = requests[position:]
                    return answered
                start = r.index * self.info.pieceLength + r.begin
                peer.receive(
                    wire.Piece(r.index, r.begin, self.content[start : start + r.length])
                )
                answered.append(r.index)

    def path(self, index, downloadDir=None):
        return os.path.join(
            downloadDir or self.downloadDir,
            self.info.name,
            *self.info.files[index].path,
        )

    def assertFileSame(self, index, downloadDir=None):
        with open(self.path(index, downloadDir), "rb") as f:
            got = f.read()
        entry = self.info.files[index]
        self.assertEqual(got, self.content[entry.offset : entry.offset + entry.length])

    def pieceRange(self, index):
        entry = self.info.files[index]
        first = entry.offset // PIECE
        last = (entry.offset + entry.length - 1) // PIECE
        return range(first, last + 1)


class FileSelectionTests(ControlsMixin, SynchronousTestCase):
    def test_unwantedFileAtAdd(self):
        """
        The largest file unwanted before the start: never created, every
        other file byte-identical, the pieces at its edges verified, the
        torrent done and seeding; its sizes count wanted pieces only.
        """
        big = self.index("sub/big.bin")
        torrent = self.makeTorrent()
        torrent.controls.setOptions(AddOptions(filesUnwanted=(big,)))
        torrent.start()
        self.assertEqual(torrent.state, DOWNLOADING)
        self.assertFalse(os.path.exists(self.path(big)))
        size = torrent.controls.sizeWhenDone
        inside = [p for p in self.pieceRange(big)[1:-1]]
        self.assertEqual(
            size, self.info.totalLength - sum(self.info.pieceSize(p) for p in inside)
        )
        self.assertEqual(torrent.left, size)
        verified = []
        torrent.events.listen("pieceVerified", verified.append)
        peer = self.connect(torrent)
        self.answer(peer)
        self.assertTrue(torrent.complete)
        self.assertTrue(torrent.completed.called)
        self.assertEqual(torrent.state, SEEDING)
        self.assertEqual(torrent.controls.leftUntilDone, 0)
        self.assertEqual(torrent.left, 0)
        self.assertFalse(os.path.exists(self.path(big)))
        for index in range(len(self.info.files)):
            if index != big:
                self.assertFileSame(index)
        edges = self.pieceRange(big)
        self.assertIn(edges[0], verified)
        self.assertIn(edges[-1], verified)
        self.assertFalse(set(inside) & set(verified))
        progress = torrent.controls.fileProgress()
        self.assertEqual(progress[self.index("a.bin")], 40000)
        self.assertEqual(
            progress[big],
            sum(
                min(self.info.files[big].offset + 70000, (p + 1) * PIECE)
                - max(self.info.files[big].offset, p * PIECE)
                for p in (edges[0], edges[-1])
            ),
        )
        files = torrent.controls.files()
        self.assertEqual(files[big].name, "content/sub/big.bin")
        self.assertFalse(files[big].wanted)
        self.assertTrue(
            os.path.exists(
                os.path.join(self.stateDir, self.info.infoHash.hex() + ".parts")
            )
        )

    def test_wantedLater(self):
        """
        Marked wanted once done: the torrent downloads again, completes,
        every file is byte-identical, the parts file is gone.
        """
        big = self.index("sub/big.bin")
        torrent = self.makeTorrent()
        torrent.controls.setFileWanted([big], False)
        torrent.start()
        peer = self.connect(torrent)
        self.answer(peer)
        self.assertEqual(torrent.state, SEEDING)
        # Done, it let the seed go.
        self.assertTrue(peer.dropped)
        torrent.controls.setFileWanted([big], True)
        self.assertEqual(torrent.state, DOWNLOADING)
        self.assertFalse(torrent.complete)
        peer = self.connect(torrent)
        self.assertTrue(peer.amInterested)
        self.answer(peer)
        self.assertEqual(torrent.state, SEEDING)
        for index in range(len(self.info.files)):
            self.assertFileSame(index)
        self.assertFalse(
            os.path.exists(
                os.path.join(self.stateDir, self.info.infoHash.hex() + ".parts")
            )
        )
        self.assertEqual(torrent.controls.fileProgress()[big], 70000)

    def test_selectionOffTheReactor(self):
        """
        Once its storage was opened, even if closed since (stopped), a
        torrent's file made wanted is created and filled from the parts
        file in a thread, never on the reactor's thread (it copies bytes
        and syncs them); before, the selection is taken at once.
        """
        big = self.index("sub/big.bin")
        inThread = []
        seen = []

        def runner(f, *args, **kwargs):
            inThread.append(True)
            try:
                return syncRunner(f, *args, **kwargs)
            finally:
                inThread.pop()

        torrent = self.makeTorrent(runner=runner)
        realSetUnwanted = torrent.storage.setUnwanted

        def setUnwanted(files, partsPath=None):
            seen.append(bool(inThread))
            return realSetUnwanted(files, partsPath)

        torrent.storage.setUnwanted = setUnwanted
        torrent.controls.setFileWanted([big], False)
        self.assertEqual(seen, [])
        self.assertIn(big, torrent.storage.unwanted)
        torrent.start()
        self.answer(self.connect(torrent))
        self.assertEqual(torrent.state, SEEDING)
        self.assertFalse(os.path.exists(self.path(big)))
        self.successResultOf(torrent.stop())
        self.assertFalse(torrent.storageOpen)
        torrent.controls.setFileWanted([big], True)
        self.assertEqual(seen, [True])
        self.assertTrue(os.path.exists(self.path(big)))

    def test_unwantedWhileDownloading(self):
        """
        Unwanting the only missing file finishes the torrent at once.
        """
        z = self.index("z.bin")
        torrent = self.makeTorrent()
        torrent.start()
        peer = self.connect(torrent)
        self.answer(peer, limit=0)
        wanted = set()
        for index, entry in enumerate(self.info.files):
            if index != z and entry.length:
                wanted.update(self.pieceRange(index))
        # Deliver the pieces of every file but z.bin.
        for p in wanted:
            torrent.picker.have(p)
        self.assertFalse(torrent.complete)
        torrent.controls.setFileWanted([z], False)
        self.assertTrue(torrent.complete)
        self.assertEqual(torrent.state, SEEDING)

    def test_restartTrustsResumeWithParts(self):
        """
        Stopped and started again: fast resume vouches for the pieces kept
        in the parts file; a verify finds them too.
        """
        big = self.index("sub/big.bin")
        torrent = self.makeTorrent()
        torrent.controls.setFileWanted([big], False)
        torrent.start()
        self.answer(self.connect(torrent))
        have = torrent.picker.haveBitfield.copy()
        saved = torrent.controls.toJSON()
        self.successResultOf(torrent.stop())
        again = self.makeTorrent()
        again.controls.load(saved)
        again.start()
        self.assertEqual(again.picker.haveBitfield, have)
        self.assertEqual(again.state, SEEDING)
        self.assertFalse(os.path.exists(self.path(big)))
        self.successResultOf(again.verify())
        self.assertEqual(again.picker.haveBitfield, have)
        self.assertEqual(again.state, SEEDING)

    def test_priorities(self):
        """
        The first requests go to the pieces of the high-priority file; a
        low-priority file's pieces come last.
        """
        z = self.index("z.bin")
        a = self.index("a.bin")
        torrent = self.makeTorrent()
        torrent.controls.setFilePriority([z], PRIORITY_HIGH)
        torrent.controls.setFilePriority([a], PRIORITY_LOW)
        torrent.start()
        peer = self.connect(torrent)
        order = []
        for m in peer.sent:
            if isinstance(m, wire.Request) and m.index not in order:
                order.append(m.index)
        high = list(self.pieceRange(z))
        self.assertEqual(sorted(order[: len(high)]), high)
        answered = self.answer(peer)
        seen = []
        for p in answered:
            if p not in seen:
                seen.append(p)
        low = [
            p
            for p in self.pieceRange(a)
            if p not in self.pieceRange(self.index("sub/big.bin"))
        ]
        self.assertEqual(sorted(seen[-len(low) :]), low)

    def test_sequential(self):
        """
        In sequential order the pieces are verified in order.
        """
        torrent = self.makeTorrent()
        torrent.controls.setSequential(True)
        self.assertEqual(torrent.picker.order, "sequential")
        verified = []
        torrent.events.listen("pieceVerified", verified.append)
        torrent.start()
        self.answer(self.connect(torrent))
        self.assertEqual(verified, list(range(self.info.pieceCount)))
        torrent.controls.setSequential(False)
        self.assertEqual(torrent.picker.order, "random")

    def test_badInput(self):
        """
        A file index of 10**9, a bad priority, negative and absurd limits,
        a bad mode: a L{ControlError}, nothing changed.
        """
        torrent = self.makeTorrent()
        controls = torrent.controls
        before = controls.toJSON()
        for call in [
            lambda: controls.setFileWanted([0, 10**9], False),
            lambda: controls.setFileWanted([-1], False),
            lambda: controls.setFileWanted(["1"], False),
            lambda: controls.setFilePriority([0], 5),
            lambda: controls.setFilePriority([10**9], PRIORITY_HIGH),
            lambda: controls.setLimits(downloadLimit=-1),
            lambda: controls.setLimits(uploadLimit=MAX_RATE + 1),
            lambda: controls.setSeedLimits(seedRatioLimit=-0.5),
            lambda: controls.setSeedLimits(seedRatioLimit=float("inf")),
            lambda: controls.setSeedLimits(seedRatioMode=3),
            lambda: controls.setSeedLimits(seedIdleLimit=-1),
            lambda: controls.setPeerLimit(0),
            lambda: controls.setPeerLimit(10**9),
            lambda: controls.setSequential(1),
            lambda: controls.setOptions(
                TorrentOptions(
                    downloadLimit=5000,
                    downloadLimited=True,
                    sequential=True,
                    filesUnwanted=(0,),
                    priorityHigh=(10**9,),
                )
            ),
            lambda: controls.setOptions(
                TorrentOptions(uploadLimit=1000, seedRatioLimit=-1.0)
            ),
        ]:
            self.assertRaises(ControlError, call)
            self.assertEqual(controls.toJSON(), before)
        error = self.assertRaises(ControlError, controls.setFileWanted, [10**9], True)
        self.assertEqual(str(error), "file index out of range")
        self.assertEqual(torrent.picker.order, "random")
        self.assertTrue(torrent.picker.isWanted(0))

    def test_noMetadata(self):
        """
        A torrent without its metadata (a magnet) refuses file changes;
        other settings apply; a saved selection waits for the metadata.
        """
        torrent = Torrent(
            None,
            None,
            self.stateDir,
            PEER_ID,
            syncRunner,
            self.reactor,
            infoHash=self.info.infoHash,
            storageFactory=lambda m: MultiFileWriter(m, self.downloadDir),
            announcerFactory=lambda t: None,
            chokerFactory=lambda t: None,
            sessionControls=self.session,
        )
        controls = torrent.controls
        before = controls.toJSON()
        for call in [
            lambda: controls.setFileWanted([0], False),
            lambda: controls.setFilePriority([1], PRIORITY_HIGH),
            lambda: controls.setOptions(
                TorrentOptions(priorityLow=(0,), sequential=True)
            ),
        ]:
            error = self.assertRaises(ControlError, call)
            self.assertIn("metadata", str(error))
        self.assertEqual(controls.toJSON(), before)
        self.assertEqual(controls.files(), [])
        self.assertEqual(controls.fileProgress(), [])
        controls.setOptions(TorrentOptions(filesWanted=(), sequential=True))
        self.assertTrue(controls.sequential)
        big = self.index("sub/big.bin")
        controls.load({"files": {"unwanted": [big], "high": [0]}})
        torrent.setMetainfo(self.info)
        self.assertEqual(torrent.picker.order, "sequential")
        self.assertFalse(controls.selection.wanted[big])
        self.assertEqual(controls.selection.priorities[0], PRIORITY_HIGH)
        self.assertEqual(torrent.storage.unwanted, {big})


class PersistenceTests(ControlsMixin, SynchronousTestCase):
    def test_roundTrip(self):
        torrent = self.makeTorrent()
        controls = torrent.controls
        controls.setOptions(
            TorrentOptions(
                downloadLimit=123000,
                downloadLimited=True,
                uploadLimit=5000,
                honorsSessionLimits=False,
                seedRatioLimit=1.5,
                seedRatioMode=1,
                seedIdleLimit=9,
                seedIdleMode=2,
                peerLimit=7,
                filesUnwanted=(2,),
                priorityLow=(0,),
                priorityHigh=(4,),
                sequential=True,
            )
        )
        saved = controls.toJSON()
        again = self.makeTorrent(downloadDir=os.path.join(self.base, "other"))
        again.controls.load(saved)
        self.assertEqual(again.controls.toJSON(), saved)
        self.assertEqual(again.maxPeers, 7)
        self.assertEqual(again.controls.bandwidth.rate("down"), 123000)
        self.assertEqual(again.picker.order, "sequential")
        self.assertFalse(again.picker.isWanted(self.pieceRange(2)[1]))

    def test_badSavedData(self):
        torrent = self.makeTorrent()
        before = torrent.controls.toJSON()
        for bad in [
            [],
            {"limits": {"downloadLimit": -1}},
            {"seed": {"seedRatioMode": 9}},
            {"sequential": "yes"},
            {"peerLimit": 0},
            {"uploadedEver": -5},
            {"files": {"unwanted": [10**9]}},
            {"files": {"high": "all"}},
            {"finishedByIdle": 1},
        ]:
            self.assertRaises(ControlError, torrent.controls.load, bad)
            self.assertEqual(torrent.controls.toJSON(), before)

    def test_session(self):
        self.session.setSettings(
            {
                "speedLimitDown": 1000,
                "speedLimitDownEnabled": True,
                "altSpeedEnabled": True,
                "seedRatioLimit": 0.25,
                "seedRatioLimited": True,
                "peerLimitGlobal": 17,
            }
        )
        saved = self.session.toJSON()
        other = SessionControls(self.reactor)
        other.load(saved)
        self.assertEqual(other.settings(), self.session.settings())
        self.assertEqual(other.peers.maximum, 17)
        self.assertEqual(other.bandwidth.rate("down"), 50_000)
        before = other.settings()
        for bad in [
            {"speedLimitUp": -4},
            {"peerLimitGlobal": 0},
            {"seedRatioLimited": "no"},
            {"speedLimitDown": 5, "noSuchSetting": 1},
            {"idleSeedingLimit": 10**9},
        ]:
            self.assertRaises(ControlError, other.setSettings, bad)
            self.assertEqual(other.settings(), before)


class RateLimitTests(ControlsMixin, SynchronousTestCase):
    def test_downloadLimitWired(self):
        """
        A torrent download limit pauses reading from a peer over its share
        and caps its request pipeline; lifting it resumes the peer at once
        and leaves nothing installed.
        """
        torrent = self.makeTorrent()
        torrent.start()
        downloader = torrent.downloader
        self.assertIsNone(downloader.downloadLimiter)
        torrent.controls.setLimits(downloadLimit=20000, downloadLimited=True)
        self.assertIsNotNone(downloader.downloadLimiter)
        peer = self.connect(torrent)
        self.assertLessEqual(len(peer.requests()), 4)
        self.answer(peer, limit=1)
        self.assertEqual(peer.transport.producerState, "paused")
        torrent.controls.setLimits(downloadLimited=False)
        self.assertEqual(peer.transport.producerState, "producing")
        self.assertIsNone(downloader.downloadLimiter)
        self.assertIsNone(downloader.requester.depthCap)
        self.answer(peer)
        self.assertTrue(torrent.complete)

    def test_uploadLimitWired(self):
        """
        A session upload limit holds sends back; each tick lets more go.
        """
        data = os.path.join(self.base, "full")
        shutil.copytree(self.seedRoot, os.path.join(data, self.info.name))
        self.session.setSettings({"speedLimitUp": 100_000, "speedLimitUpEnabled": True})
        torrent = self.makeTorrent(downloadDir=data)
        torrent.start()
        self.assertEqual(torrent.state, SEEDING)
        peer = self.connect(torrent, seed=False)
        peer.amChoking = False
        for index in range(self.info.pieceCount):
            for begin in range(0, self.info.pieceSize(index), PIECE):
                length = min(PIECE, self.info.pieceSize(index) - begin)
                peer.receive(wire.Request(index, begin, length))

        def sent():
            return sum(len(m.block) for m in peer.sent if isinstance(m, wire.Piece))

        first = sent()
        self.assertLessEqual(first, PIECE)
        for _ in range(10):
            self.reactor.advance(0.1)
        # 1 s at 100 kB/s (the torrent is 135 kB): about 100 kB, in blocks
        # of 16 KiB, the first one on credit.
        self.assertTrue(85_000 <= sent() <= 120_000, sent())


class SeedLimitTests(ControlsMixin, SynchronousTestCase):
    def seeding(self):
        data = os.path.join(self.base, "full")
        if not os.path.exists(data):
            shutil.copytree(self.seedRoot, os.path.join(data, self.info.name))
        torrent = self.makeTorrent(downloadDir=data)
        return torrent

    def leech(self, torrent):
        peer = self.connect(torrent, seed=False)
        peer.amChoking = False
        for index in range(self.info.pieceCount):
            for begin in range(0, self.info.pieceSize(index), PIECE):
                length = min(PIECE, self.info.pieceSize(index) - begin)
                peer.receive(wire.Request(index, begin, length))
        return peer

    def test_ratio(self):
        """
        With a ratio limit of 0.5 a torrent added complete uploads half its
        size (a block more at most), stops, and is finished; that survives
        a restart; started again by hand it seeds on without the ratio.
        """
        torrent = self.seeding()
        torrent.controls.setSeedLimits(seedRatioLimit=0.5, seedRatioMode=1)
        reached = []
        torrent.events.listen("seedLimitReached", lambda: reached.append(1))
        torrent.start()
        self.assertEqual(torrent.state, SEEDING)
        self.leech(torrent)
        goal = self.info.totalLength // 2
        self.assertGreaterEqual(torrent.uploaded, goal)
        self.assertLess(torrent.uploaded, goal + PIECE)
        self.reactor.advance(0)
        self.assertEqual(torrent.state, STOPPED)
        self.assertEqual(reached, [1])
        self.assertTrue(torrent.controls.isFinished)
        self.assertEqual(torrent.controls.uploadedEver, torrent.uploaded)
        saved = torrent.controls.toJSON()
        again = self.seeding()
        again.controls.load(saved)
        # Not started yet: its data is unchecked, but the counts are kept.
        self.assertEqual(again.controls.uploadedEver, torrent.uploaded)
        self.successResultOf(again.verify())
        self.assertTrue(again.controls.isFinished)
        again.start()
        self.assertFalse(again.controls.isFinished)
        self.assertIsNone(again.controls.seedRatio)
        self.assertEqual(again.state, SEEDING)

    def test_sessionRatio(self):
        self.session.setSettings({"seedRatioLimit": 0.25, "seedRatioLimited": True})
        torrent = self.seeding()
        torrent.start()
        self.leech(torrent)
        self.reactor.advance(0)
        self.assertEqual(torrent.state, STOPPED)
        self.assertGreaterEqual(torrent.uploaded, self.info.totalLength // 4)

    def test_ratioOfDownloaded(self):
        """
        A torrent that downloaded counts its ratio against what it
        downloaded.
        """
        torrent = self.makeTorrent()
        torrent.controls.setSeedLimits(seedRatioLimit=2.0, seedRatioMode=1)
        torrent.start()
        self.answer(self.connect(torrent))
        self.assertEqual(torrent.controls.seedRatioGoal, 2 * self.info.totalLength)
        self.assertEqual(torrent.controls.uploadRatio, 0.0)

    def test_idle(self):
        torrent = self.seeding()
        torrent.controls.setSeedLimits(seedIdleLimit=2, seedIdleMode=1)
        torrent.start()
        self.reactor.advance(60)
        self.assertEqual(torrent.state, SEEDING)
        self.reactor.advance(61)
        self.reactor.advance(0)
        self.assertEqual(torrent.state, STOPPED)
        self.assertTrue(torrent.controls.finishedByIdle)
        self.assertTrue(torrent.controls.isFinished)
        torrent.start()
        self.assertFalse(torrent.controls.isFinished)

    def test_unlimitedSeeds(self):
        self.session.setSettings({"seedRatioLimit": 0.1, "seedRatioLimited": True})
        torrent = self.seeding()
        torrent.controls.setSeedLimits(seedRatioMode=2)
        torrent.start()
        self.leech(torrent)
        self.reactor.advance(1)
        self.assertEqual(torrent.state, SEEDING)
        self.assertEqual(torrent.uploaded, self.info.totalLength)


class PeerLimitTests(ControlsMixin, SynchronousTestCase):
    def test_perTorrent(self):
        torrent = self.makeTorrent()
        torrent.start()
        peers = [self.connect(torrent) for _ in range(5)]
        torrent.controls.setPeerLimit(3)
        self.assertEqual(len(torrent.downloader.peers), 3)
        self.assertEqual(sum(1 for p in peers if p.dropped), 2)
        self.count += 1
        extra = FakePeer(torrent.downloader, self.info.pieceCount, self.count)
        self.assertFalse(torrent.downloader.peerConnected(extra))

    def test_global(self):
        """
        The session's limit counts the peers of every torrent.
        """
        self.session.setSettings({"peerLimitGlobal": 3})
        one = self.makeTorrent()
        one.start()
        data = os.path.join(self.base, "full")
        shutil.copytree(self.seedRoot, os.path.join(data, self.info.name))
        for _ in range(2):
            self.connect(one)
        self.assertEqual(self.session.peers.room(), 1)
        self.connect(one)
        self.count += 1
        extra = FakePeer(one.downloader, self.info.pieceCount, self.count)
        self.assertFalse(one.downloader.peerConnected(extra))
        one.addPeers([("127.0.0.2", 7000)])
        self.assertEqual(one.downloader.dialer.connecting, {})
        self.successResultOf(one.stop())
        self.assertEqual(self.session.peers.connected, 0)
