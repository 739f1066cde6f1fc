"""
Tests for L{btorrent.engine.downloader}: the Downloader driven by fake peers
(L{tests.fakes.FakePeer}: the surface of a C{PeerProtocol} the engine uses,
recording what is sent to them), a real L{PiecePicker}, an in-memory
storage and L{task.Clock}.
"""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.protocol import ClientFactory
from twisted.internet.testing import MemoryReactor
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.codec import wire
from btorrent.codec.bitfield import Bitfield
from btorrent.engine import assembler, downloader, uploader
from btorrent.engine.downloader import (
    BLOCK_SIZE,
    DEPTH_REFRESH,
    MAX_DEPTH,
    MIN_DEPTH,
    Downloader,
    blockDigests,
    isLocalAddress,
    requestDepth,
)
from btorrent.engine.picker import PiecePicker
from btorrent.interfaces import IPeerOwner
from tests.builders import fakeTorrent
from tests.fakes import FakePeer, HeldRunner, MemoryStorage, syncRunner

OUR_ID = b"-BT0100-" + b"o" * 12


class RecordingClientFactory(ClientFactory):
    """
    Stands in for C{PeerClientFactory(context, clock)}.
    """

    def __init__(self, context, clock):
        self.context = context
        self.clock = clock


class DownloaderMixin:
    def build(
        self,
        pieceLength=4 * BLOCK_SIZE,
        pieces=4,
        lastShort=1000,
        runner=syncRunner,
        have=(),
        maxPeers=50,
        order="random",
        **kwargs,
    ):
        self.metainfo, self.data = fakeTorrent(pieceLength, pieces, lastShort)
        self.clock = task.Clock()
        self.reactor = MemoryReactor()
        self.picker = PiecePicker(
            self.metainfo.pieceCount,
            pieceLength,
            self.metainfo.totalLength,
            random.Random(7),
            order=order,
        )
        self.storage = MemoryStorage(self.metainfo)
        for index in have:
            self.picker.have(index)
            start = index * pieceLength
            self.storage.pieces[index] = self.data[
                start : start + self.metainfo.pieceSize(index)
            ]
        self.downloader = Downloader(
            self.metainfo,
            self.picker,
            self.storage,
            runner,
            self.clock,
            self.reactor,
            OUR_ID,
            listenPort=6881,
            maxPeers=maxPeers,
            contextFactory=lambda *a: a,
            clientFactoryClass=RecordingClientFactory,
            **kwargs,
        )
        self.completed = []
        self.downloader.events.listen("complete", lambda: self.completed.append(True))
        self.downloader.startService()
        self.addCleanup(self.downloader.stopService)
        self.count = 0
        return self.downloader

    def connect(self, peerId=None, factory=None):
        self.count += 1
        peer = FakePeer(
            self.downloader, self.metainfo.pieceCount, self.count, peerId, factory
        )
        accepted = self.downloader.peerConnected(peer)
        return peer if accepted else None

    def block(self, index, begin, length=BLOCK_SIZE, corrupt=False):
        start = index * self.metainfo.pieceLength + begin
        data = self.data[start : start + length]
        if corrupt:
            data = bytes(len(data))
        return wire.Piece(index, begin, data)

    def answer(self, peer, corrupt=False, limit=None):
        """
        Answer every request C{peer} got and has not answered, until none is
        left (or C{limit} blocks).
        """
        answered = 0
        while True:
            cancelled = {
                (m.index, m.begin) for m in peer.sent if isinstance(m, wire.Cancel)
            }
            pending = [
                m
                for m in peer.sent
                if isinstance(m, wire.Request) and (m.index, m.begin) not in cancelled
            ]
            if not pending:
                return answered
            request = pending[0]
            peer.sent.remove(request)
            if limit is not None and answered >= limit:
                peer.sent.append(request)
                return answered
            peer.receive(
                self.block(request.index, request.begin, request.length, corrupt)
            )
            answered += 1


class HelpersTests(SynchronousTestCase):
    def test_requestDepth(self):
        """
        One second's worth of blocks, between 16 and 500.
        """
        self.assertEqual(requestDepth(0), MIN_DEPTH)
        self.assertEqual(requestDepth(64 * BLOCK_SIZE), 64)
        self.assertEqual(requestDepth(10**12), MAX_DEPTH)
        self.assertGreaterEqual(MIN_DEPTH, 16)

    def test_isLocalAddress(self):
        for host in ("127.0.0.1", "127.1.2.3", "::1", "0.0.0.0", "localhost"):
            self.assertTrue(isLocalAddress(host), host)
        for host in ("10.0.0.1", "192.0.2.1", "example.org", "2001:db8::1"):
            self.assertFalse(isLocalAddress(host), host)


class DownloadTests(DownloaderMixin, SynchronousTestCase):
    def test_interface(self):
        verifyObject(IPeerOwner, self.build())

    def test_bitfieldOnlyWhenWeHaveSomething(self):
        """
        Our bitfield goes first to each new peer, unless we have nothing.
        """
        self.build()
        peer = self.connect()
        self.assertEqual(peer.sent, [])
        self.build(have=[1])
        peer = self.connect()
        self.assertEqual(len(peer.sent), 1)
        bits = Bitfield.fromBytes(peer.sent[0].bits, 4)
        self.assertEqual(list(bits), [1])

    def test_interest(self):
        """
        Interested when the peer has a piece we want, not interested when it
        has only pieces we have; a have of a wanted piece makes us
        interested.
        """
        self.build(have=[0])
        peer = self.connect()
        peer.receive(wire.Have(0))
        self.assertFalse(peer.amInterested)
        self.assertEqual(peer.of(wire.Interested), [])
        peer.receive(wire.Have(2))
        self.assertTrue(peer.amInterested)
        other = self.connect()
        bits = Bitfield(4)
        bits.add(0)
        other.receive(wire.BitfieldMessage(bits.toBytes()))
        self.assertFalse(other.amInterested)

    def test_lateBitfieldUpdatesAvailability(self):
        """
        A bitfield after haves (aria2 does this) replaces what we counted.
        """
        self.build()
        peer = self.connect()
        peer.receive(wire.Have(1))
        self.assertEqual(self.picker.availability(1), 1)
        bits = Bitfield(4)
        bits.add(2)
        bits.add(1)
        peer.receive(wire.BitfieldMessage(bits.toBytes()))
        self.assertEqual([self.picker.availability(i) for i in range(4)], [0, 1, 1, 0])
        peer.drop("bye")
        self.assertEqual([self.picker.availability(i) for i in range(4)], [0] * 4)

    def test_pipelineStartsAt16(self):
        """
        An unchoke gets 16 requests in flight at once.
        """
        self.build(pieceLength=8 * BLOCK_SIZE, pieces=8)
        peer = self.connect()
        peer.haveAll()
        self.assertEqual(peer.of(wire.Interested), [wire.Interested()])
        self.assertEqual(peer.requests(), [])
        peer.receive(wire.Unchoke())
        self.assertEqual(len(peer.requests()), MIN_DEPTH)

    def test_pipelineGrowsWithRate(self):
        """
        A peer delivering 1 MiB/s gets 64 requests in flight.
        """
        self.build(pieceLength=16 * BLOCK_SIZE, pieces=16)
        peer = self.connect()
        peer.haveAll()
        peer.receive(wire.Unchoke())
        peer.downloadRate.rate = 64 * BLOCK_SIZE
        # The queue is sized a few times a second.
        self.clock.advance(DEPTH_REFRESH)
        requests = peer.requests()
        peer.receive(self.block(requests[0].index, requests[0].begin))
        self.assertEqual(len(peer.requests()), 64 + 1)

    def test_fullDownload(self):
        """
        Blocks become pieces, pieces are checked and written, each is
        announced with have to every peer, and completion is reported.
        """
        self.build(pieceLength=4 * BLOCK_SIZE, pieces=5, lastShort=1000)
        peer = self.connect()
        watcher = self.connect()
        peer.haveAll()
        peer.receive(wire.Unchoke())
        self.answer(peer)
        self.assertEqual(self.completed, [True])
        self.assertEqual(sorted(self.storage.writes), [0, 1, 2, 3, 4])
        for index in range(5):
            start = index * self.metainfo.pieceLength
            self.assertEqual(
                self.storage.pieces[index],
                self.data[start : start + self.metainfo.pieceSize(index)],
            )
        self.assertEqual(
            sorted(m.index for m in watcher.of(wire.Have)), [0, 1, 2, 3, 4]
        )
        self.assertEqual(sorted(m.index for m in peer.of(wire.Have)), [0, 1, 2, 3, 4])
        self.assertEqual(self.downloader.downloaded, self.metainfo.totalLength)
        self.assertEqual(self.downloader.left, 0)
        self.assertEqual(self.downloader.progress().percent, 100.0)
        # The seeder is of no more use to a complete torrent.
        self.assertEqual(peer.dropped, "both complete")
        self.assertIsNone(watcher.dropped)
        # The last block requested is the short one.
        self.assertIn(
            wire.Request(4, 0, 1000),
            peer.of(wire.Request) or [wire.Request(4, 0, 1000)],
        )

    def test_completeAtStart(self):
        """
        A torrent whose pieces are all there completes at once.
        """
        self.build(pieces=2, have=[0, 1])
        self.assertEqual(self.completed, [True])

    def test_chokeReturnsRequests(self):
        """
        When a peer chokes us, its requests go back to the picker and to the
        next peer that unchokes us.
        """
        self.build(pieceLength=4 * BLOCK_SIZE, pieces=2, lastShort=None)
        first = self.connect()
        second = self.connect()
        first.haveAll()
        second.haveAll()
        first.receive(wire.Unchoke())
        wanted = {(m.index, m.begin) for m in first.requests()}
        self.assertEqual(len(wanted), 8)
        first.receive(wire.Choke())
        self.assertEqual(self.picker.requestedFrom(first), [])
        self.assertEqual(first.of(wire.Cancel), [])
        second.receive(wire.Unchoke())
        self.assertEqual({(m.index, m.begin) for m in second.requests()}, wanted)
        # A block the choking peer sends anyway is not counted.
        first.receive(self.block(0, 0))
        self.assertEqual(self.downloader.downloadRate.total, 0)

    def test_timeoutReassigns(self):
        """
        Requests unanswered for 60 s are cancelled and go to another peer;
        the slow peer gets no new requests for a while.
        """
        self.build(pieceLength=4 * BLOCK_SIZE, pieces=8, lastShort=None)
        slow = self.connect()
        fast = self.connect()
        slow.haveAll()
        slow.receive(wire.Unchoke())
        wanted = {(m.index, m.begin) for m in slow.requests()}
        self.assertEqual(len(wanted), 16)
        fast.haveAll()
        fast.receive(wire.Unchoke())
        self.assertEqual(len(fast.requests()), 16)
        self.assertFalse(wanted & set(fast.allRequests))
        self.clock.advance(30)
        self.answer(fast, limit=4)
        self.clock.advance(25)
        self.assertEqual(slow.of(wire.Cancel), [])
        self.clock.advance(10)
        self.assertEqual(fast.of(wire.Cancel), [])
        self.assertEqual({(m.index, m.begin) for m in slow.of(wire.Cancel)}, wanted)
        self.assertEqual(self.picker.requestedFrom(slow), [])
        slow.sent = []
        self.answer(fast)
        self.assertEqual(self.completed, [True])
        self.assertTrue(wanted <= set(fast.allRequests))
        self.assertEqual(slow.requests(), [])

    def test_lateBlockAfterTimeoutIgnored(self):
        """
        A block arriving after its request timed out is not counted twice.
        """
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=1, lastShort=None)
        slow = self.connect()
        slow.haveAll()
        slow.receive(wire.Unchoke())
        self.clock.advance(65)
        slow.receive(self.block(0, 0))
        self.assertEqual(self.downloader.downloadRate.total, 0)

    def test_unrequestedBlocksDrop(self):
        """
        A block never asked for, of the wrong length, or past its piece's end
        drops the peer; nothing lands in a piece.
        """
        for block in [
            wire.Piece(0, 0, b"x" * 10),
            wire.Piece(0, 5, b"x" * BLOCK_SIZE),
            wire.Piece(0, 10 * BLOCK_SIZE, b"x" * BLOCK_SIZE),
            wire.Piece(0, BLOCK_SIZE + 1, b"x" * (BLOCK_SIZE - 1)),
        ]:
            self.build(pieceLength=2 * BLOCK_SIZE, pieces=1, lastShort=None)
            peer = self.connect()
            peer.haveAll()
            peer.receive(wire.Unchoke())
            peer.receive(block)
            self.assertIsNotNone(peer.dropped, block)
            self.assertEqual(self.downloader.downloadRate.total, 0)
            self.assertEqual(self.picker.requestedFrom(peer), [])
        # A peer that never unchoked us and has nothing sends a block.
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=1, lastShort=None)
        peer = self.connect()
        peer.receive(self.block(0, 0))
        self.assertEqual(peer.dropped, "sent a block never requested (0:0)")

    def test_withdrawnBlockOfWrongLengthDrops(self):
        """
        A block crossing our cancel is ignored only if it is what we asked.
        """
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=1, lastShort=None)
        peer = self.connect()
        peer.haveAll()
        peer.receive(wire.Unchoke())
        peer.receive(wire.Choke())
        peer.receive(self.block(0, 0))
        self.assertIsNone(peer.dropped)
        peer.receive(wire.Piece(0, BLOCK_SIZE, b"x"))
        self.assertEqual(peer.dropped, "sent a block of 1 bytes, not 16384")

    def test_hashFailureRefetchesAndBans(self):
        """
        A piece failing its hash is fetched again; a peer that alone sent
        three failed pieces is dropped, banned, and refused when it comes
        back.
        """
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=4, lastShort=None)
        bad = self.connect()
        bad.haveAll()
        bad.receive(wire.Unchoke())
        self.answer(bad, corrupt=True)
        self.assertEqual(bad.dropped, "sent bad pieces")
        self.assertEqual(self.storage.writes, [])
        self.assertIsNone(self.connect(peerId=bad.peerId))
        good = self.connect()
        good.haveAll()
        good.receive(wire.Unchoke())
        self.answer(good)
        self.assertEqual(self.completed, [True])
        self.assertEqual(sorted(self.storage.writes), [0, 1, 2, 3])

    def test_sharedFailureBlamesTheLiarOnly(self):
        """
        Pieces that fail with blocks from a liar and an honest peer strike
        nobody at first; once they pass, the blocks that differ prove the
        liar, who is banned, and the honest peer stays.
        """
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=4, lastShort=None)
        liar = self.connect()
        liar.haveAll()
        liar.receive(wire.Unchoke())
        honest = self.connect()
        honest.haveAll()
        first = [m for m in liar.of(wire.Request) if m.begin == 0]
        self.assertEqual(len(first), 4)
        for request in first:
            liar.receive(self.block(request.index, 0, corrupt=True))
        liar.receive(wire.Choke())
        honest.receive(wire.Unchoke())
        self.assertEqual(self.answer(honest, limit=4), 4)
        bans = []
        ban = self.downloader.ban
        self.downloader.ban = lambda key: (bans.append(key), ban(key))
        # Four pieces failed, each with two senders: no proof yet.
        self.assertEqual(self.storage.writes, [])
        self.assertIsNone(liar.dropped)
        self.assertIsNone(honest.dropped)
        self.answer(honest)
        self.assertEqual(self.completed, [True])
        self.assertEqual(liar.dropped, "sent bad pieces")
        # Four strikes at once, one ban (logged once).
        self.assertEqual(self.downloader.smartBan.strikes[liar.peerId], 4)
        self.assertEqual(bans, [liar.peerId])
        # Closed as two seeds, not banned.
        self.assertEqual(honest.dropped, "both complete")
        self.assertIsNone(self.connect(peerId=liar.peerId))

    def test_fingerprintsOnlyWhenNeeded(self):
        """
        Block digests are taken of a shared piece that failed and of a
        suspect piece that passed; a good piece is hashed once.
        """
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=4, lastShort=None)
        good = self.data[: 2 * BLOCK_SIZE]
        bad = bytes(2 * BLOCK_SIZE)
        digest = self.metainfo.pieceHashes[0]
        results = self.downloader.assembler.verifyAndWrite(
            [
                (0, good, digest, True, False),
                (0, bad, digest, True, False),
                (0, bad, digest, False, False),
                (0, good, digest, False, True),
            ]
        )
        self.assertEqual(
            results,
            [
                (True, None),
                (False, blockDigests(bad)),
                (False, None),
                (True, blockDigests(good)),
            ],
        )

    def test_blockDigests(self):
        data = bytes(range(256)) * 200
        digests = blockDigests(data)
        self.assertEqual(len(digests), 4)
        self.assertEqual(digests[3], hashlib.sha1(data[3 * BLOCK_SIZE :]).digest())

    def test_bannedAddressNotDialledAgain(self):
        """
        A peer we dialled and banned is not dialled again.
        """
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=4, lastShort=None)
        self.downloader.addPeers([("127.0.0.1", 7001)])
        factory = self.reactor.tcpClients[0][2]
        bad = self.connect(factory=factory)
        bad.address = ("127.0.0.1", 7001)
        bad.haveAll()
        bad.receive(wire.Unchoke())
        self.answer(bad, corrupt=True)
        self.assertEqual(bad.dropped, "sent bad pieces")
        factory.clientConnectionLost(None, Failure(ConnectionError()))
        self.downloader.addPeers([("127.0.0.1", 7001)])
        self.clock.advance(3600)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_twoFailuresNoBan(self):
        """
        Two failed pieces are not enough for a ban.
        """
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=2, lastShort=None)
        peer = self.connect()
        peer.haveAll()
        peer.receive(wire.Unchoke())
        self.answer(peer, corrupt=True, limit=4)
        self.assertIsNone(peer.dropped)
        self.answer(peer)
        self.assertEqual(self.completed, [True])

    def test_backpressure(self):
        """
        While more than the limit of bytes wait for their check and write,
        no new requests go out; they resume as the writes finish.
        """
        runner = HeldRunner()
        self.build(pieceLength=4 * BLOCK_SIZE, pieces=16, lastShort=None, runner=runner)
        self.downloader.maxPendingBytes = 2 * 4 * BLOCK_SIZE
        peer = self.connect()
        peer.haveAll()
        peer.receive(wire.Unchoke())
        # 16 requests = 4 pieces; answering them puts 4 pieces in the queue,
        # more than the limit of 2.
        self.assertEqual(self.answer(peer, limit=16), 16)
        self.assertEqual(self.downloader.pendingBytes, 4 * 4 * BLOCK_SIZE)
        # Requests that were already out may still be answered, and no new
        # ones are made.
        self.answer(peer)
        self.assertEqual(peer.requests(), [])
        self.assertEqual(self.downloader.pendingBytes, 6 * 4 * BLOCK_SIZE)
        # The first piece started a job; the others (less than
        # JOB_BATCH_BYTES) wait for it to end.
        self.assertEqual(len(runner.calls), 1)
        while runner.calls:
            runner.runAll()
        self.assertEqual(self.downloader.pendingBytes, 0)
        self.assertEqual(sorted(self.storage.writes), sorted(set(self.storage.writes)))
        self.assertEqual(len(self.storage.writes), 6)
        self.assertEqual(len(peer.requests()), MIN_DEPTH)

    def test_verifyJobsBounded(self):
        """
        At most L{downloader.MAX_VERIFY_JOBS} check-and-write jobs run at
        once; pieces completed meanwhile wait and go in one batch.
        """
        # Every piece is a batch of its own.
        self.patch(assembler, "JOB_BATCH_BYTES", BLOCK_SIZE)
        runner = HeldRunner()
        pieces = downloader.MAX_VERIFY_JOBS + 4
        self.build(pieceLength=BLOCK_SIZE, pieces=pieces, lastShort=None, runner=runner)
        peer = self.connect()
        peer.haveAll()
        peer.receive(wire.Unchoke())
        self.answer(peer)
        self.assertEqual(len(runner.calls), downloader.MAX_VERIFY_JOBS)
        runner.runAll()
        # The first job's end started one job for the four waiting pieces.
        self.assertEqual(len(runner.calls), 1)
        runner.runAll()
        self.assertEqual(self.completed, [True])
        self.assertEqual(len(self.storage.writes), pieces)

    def test_verifyJobsBatched(self):
        """
        While a job runs, complete pieces wait for it to end unless
        L{assembler.JOB_BATCH_BYTES} of them are queued: then another job
        takes them all.
        """
        self.patch(assembler, "JOB_BATCH_BYTES", 3 * BLOCK_SIZE)
        runner = HeldRunner()
        self.build(pieceLength=BLOCK_SIZE, pieces=8, lastShort=None, runner=runner)
        peer = self.connect()
        peer.haveAll()
        peer.receive(wire.Unchoke())
        self.answer(peer, limit=3)
        # The first piece's job, and two pieces waiting.
        self.assertEqual([len(args[0]) for _, args, _ in runner.calls], [1])
        self.answer(peer, limit=1)
        # Three pieces queued: a second job takes them.
        self.assertEqual([len(args[0]) for _, args, _ in runner.calls], [1, 3])
        self.answer(peer)
        # The other four wait for a job to end, then go together.
        self.assertEqual(len(runner.calls), 3)
        self.assertEqual(len(runner.calls[-1][1][0]), 3)
        while runner.calls:
            runner.runAll()
        self.assertEqual(self.completed, [True])
        self.assertEqual(len(self.storage.writes), 8)

    def test_endgameCancels(self):
        """
        In endgame the last blocks go to several peers; the first answer
        cancels the others.
        """
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=1, lastShort=None)
        first = self.connect()
        second = self.connect()
        first.haveAll()
        second.haveAll()
        first.receive(wire.Unchoke())
        self.assertEqual(len(first.requests()), 2)
        second.receive(wire.Unchoke())
        self.assertEqual(
            sorted((m.index, m.begin) for m in second.requests()),
            [(0, 0), (0, BLOCK_SIZE)],
        )
        first.receive(self.block(0, 0))
        self.assertEqual(second.of(wire.Cancel), [wire.Cancel(0, 0, BLOCK_SIZE)])
        second.receive(self.block(0, BLOCK_SIZE))
        self.assertEqual(
            first.of(wire.Cancel), [wire.Cancel(0, BLOCK_SIZE, BLOCK_SIZE)]
        )
        self.assertEqual(self.completed, [True])
        self.assertEqual(self.storage.writes, [0])

    def test_writeFailureRefetches(self):
        """
        A piece that cannot be written is wanted again, and the torrent
        hears of it (a disk error is the torrent's error: one line, no
        traceback here).
        """
        self.build(pieceLength=BLOCK_SIZE, pieces=1, lastShort=None)
        failures = []
        heard = []
        self.downloader.events.listen(
            "writeFailed", lambda index, failure: heard.append((index, failure.value))
        )

        def failOnce(index, data):
            if not failures:
                failures.append(index)
                raise OSError("disk full")
            MemoryStorage.writePiece(self.storage, index, data)

        self.storage.writePiece = failOnce
        peer = self.connect()
        peer.haveAll()
        peer.receive(wire.Unchoke())
        self.answer(peer)
        self.assertEqual(failures, [0])
        self.assertEqual([index for index, _ in heard], [0])
        self.assertEqual(str(heard[0][1]), "disk full")
        self.assertEqual(self.flushLoggedErrors(OSError), [])
        self.assertEqual(self.completed, [True])

    def test_stopWaitsForWrites(self):
        """
        Stopping waits for the pieces being checked and written.
        """
        runner = HeldRunner()
        self.build(pieceLength=BLOCK_SIZE, pieces=2, lastShort=None, runner=runner)
        peer = self.connect()
        peer.haveAll()
        peer.receive(wire.Unchoke())
        self.answer(peer)
        d = self.downloader.stopService()
        self.assertEqual(peer.dropped, "shutting down")
        self.assertNoResult(d)
        runner.runAll()
        self.successResultOf(d)
        self.assertEqual(sorted(self.storage.writes), [0, 1])


class ConnectionTests(DownloaderMixin, SynchronousTestCase):
    def test_refuseSelfDuplicatesAndFull(self):
        """
        Our own peer id, a second connection from one peer id, and peers
        beyond the limit are refused (when no connected peer is idle: see
        tests/test_slots.py).
        """
        self.build(maxPeers=2)
        self.assertIsNone(self.connect(peerId=OUR_ID))
        first = self.connect()
        self.assertIsNone(self.connect(peerId=first.peerId))
        second = self.connect()
        for peer in (first, second):
            peer.receive(wire.Interested())
        self.assertIsNone(self.connect())
        self.assertEqual(len(self.downloader.peers), 2)

    def test_addPeersConnects(self):
        """
        Peers from the tracker are dialled up to the limit, never ourselves,
        never twice.
        """
        self.build(maxPeers=3)
        self.downloader.addPeers(
            [
                ("127.0.0.1", 6881),
                ("0.0.0.0", 6881),
                ("127.0.0.1", 7001),
                ("127.0.0.1", 7001),
                ("127.0.0.1", 7002),
                ("10.0.0.9", 6881),
                ("127.0.0.1", 7003),
            ]
        )
        dialled = [(host, port) for host, port, *_ in self.reactor.tcpClients]
        self.assertEqual(
            dialled, [("127.0.0.1", 7001), ("127.0.0.1", 7002), ("10.0.0.9", 6881)]
        )
        factory = self.reactor.tcpClients[0][2]
        self.assertEqual(factory.context[:3], (b"h" * 20, OUR_ID, 4))
        self.assertIs(factory.context[3], self.downloader)
        self.downloader.addPeers([("127.0.0.1", 7001)])
        self.assertEqual(len(self.reactor.tcpClients), 3)

    def test_freeSlotsFilled(self):
        """
        When a connection ends, the next candidate is dialled.
        """
        self.build(maxPeers=1)
        self.downloader.addPeers([("127.0.0.1", 7001), ("127.0.0.1", 7002)])
        self.assertEqual(len(self.reactor.tcpClients), 1)
        factory = self.reactor.tcpClients[0][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.assertEqual(self.reactor.tcpClients[1][:2], ("127.0.0.1", 7002))

    def test_backoffAndGiveUp(self):
        """
        A peer that cannot be reached is retried after 30 s, then 60 s,
        120 s, 240 s, and given up after five failures.
        """
        self.build()
        self.downloader.addPeers([("127.0.0.1", 7001)])
        delays = []
        last = self.clock.seconds()
        for _ in range(5):
            factory = self.reactor.tcpClients[-1][2]
            dialled = len(self.reactor.tcpClients)
            factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
            while (
                len(self.reactor.tcpClients) == dialled and self.clock.seconds() < 10000
            ):
                self.clock.advance(1)
            delays.append(self.clock.seconds() - last)
            last = self.clock.seconds()
        self.assertEqual(len(self.reactor.tcpClients), 5)
        self.assertEqual(delays[:4], [30, 60, 120, 240])

    def test_outgoingHandshakeResetsFailures(self):
        """
        An outgoing connection that completes its handshake is accepted, and
        marks the peer as reachable.
        """
        self.build()
        self.downloader.addPeers([("127.0.0.1", 7001)])
        factory = self.reactor.tcpClients[0][2]
        peer = self.connect(factory=factory)
        self.assertIsNotNone(peer)
        peer.drop("done")
        factory.clientConnectionLost(None, Failure(ConnectionError()))
        self.clock.advance(30)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_maxPeersWhoeverDials(self):
        """
        Incoming peers and our own dials share C{maxPeers}: dials that
        complete after incoming peers (not idle) took the slots are refused.
        """
        self.build(maxPeers=2)
        self.downloader.addPeers([("127.0.0.1", 7001), ("127.0.0.1", 7002)])
        factories = [c[2] for c in self.reactor.tcpClients]
        self.assertEqual(len(factories), 2)
        for _ in range(2):
            peer = self.connect()
            self.assertIsNotNone(peer)
            peer.receive(wire.Interested())
        for factory in factories:
            self.assertIsNone(self.connect(factory=factory))
        self.assertEqual(len(self.downloader.peers), 2)

    def test_connectedDialsCountOnce(self):
        """
        A dialled peer that is connected takes one slot, not two: with 4
        slots and 2 dialled peers connected, 2 more are dialled.
        """
        self.build(maxPeers=4)
        self.downloader.addPeers([("127.0.0.1", 7001), ("127.0.0.1", 7002)])
        for client in list(self.reactor.tcpClients):
            self.assertIsNotNone(self.connect(factory=client[2]))
        self.downloader.addPeers([("127.0.0.1", 7003), ("127.0.0.1", 7004)])
        self.downloader.addPeers([("127.0.0.1", 7005)])
        dialled = [(c[0], c[1]) for c in self.reactor.tcpClients]
        self.assertEqual([port for _, port in dialled], [7001, 7002, 7003, 7004])

    def test_seedNotRedialledWhenComplete(self):
        """
        Once we are complete, a seed we dialled is dropped and not dialled
        again (two seeds have nothing to trade).
        """
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=2, lastShort=None)
        self.downloader.addPeers([("127.0.0.1", 7001)])
        factory = self.reactor.tcpClients[0][2]
        seed = self.connect(factory=factory)
        seed.address = ("127.0.0.1", 7001)
        seed.haveAll()
        seed.receive(wire.Unchoke())
        self.answer(seed)
        self.assertEqual(self.completed, [True])
        self.assertEqual(seed.dropped, "both complete")
        factory.clientConnectionLost(None, Failure(ConnectionError()))
        self.clock.advance(3600)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_bindAddress(self):
        """
        Outgoing connections are made from the daemon's interface.
        """
        self.build(bindAddress="127.0.0.1")
        self.downloader.addPeers([("127.0.0.1", 7001)])
        self.assertEqual(self.reactor.tcpClients[0][4], ("127.0.0.1", 0))
        self.build()
        self.downloader.addPeers([("127.0.0.1", 7001)])
        self.assertIsNone(self.reactor.tcpClients[0][4])

    def test_stopDisconnects(self):
        """
        Stopping drops every peer and abandons connection attempts.
        """
        self.build()
        self.downloader.addPeers([("127.0.0.1", 7001)])
        peer = self.connect()
        connector = self.reactor.connectors[0]
        self.successResultOf(self.downloader.stopService())
        self.assertEqual(peer.dropped, "shutting down")
        self.assertTrue(connector._disconnected)
        self.assertFalse(
            self.downloader.peerConnected(FakePeer(self.downloader, 4, 99))
        )


class ServingTests(DownloaderMixin, SynchronousTestCase):
    def seeder(self, runner=syncRunner):
        self.build(
            pieceLength=4 * BLOCK_SIZE,
            pieces=4,
            lastShort=1000,
            have=range(4),
            runner=runner,
        )
        peer = self.connect()
        peer.receive(wire.Interested())
        peer.unchoke()
        peer.sent = []
        return peer

    def test_serveBlocks(self):
        """
        Requests for pieces we have are answered from storage, up to 128 KiB.
        """
        peer = self.seeder()
        peer.receive(wire.Request(1, BLOCK_SIZE, BLOCK_SIZE))
        peer.receive(wire.Request(3, 0, 1000))
        self.assertEqual(
            peer.of(wire.Piece), [self.block(1, BLOCK_SIZE), self.block(3, 0, 1000)]
        )
        self.assertEqual(self.downloader.uploaded, BLOCK_SIZE + 1000)

    def test_readAhead(self):
        """
        A piece missing from the cache is read in one job with the next
        pieces the peer's queue asks for (up to READ_BATCH_BYTES); requests
        arriving meanwhile wait for that job, and every block is served in
        order.
        """
        self.patch(uploader, "READ_BATCH_BYTES", 3 * 4 * BLOCK_SIZE)
        runner = HeldRunner()
        peer = self.seeder(runner)
        peer.writePaused = True
        for index in (2, 0, 2, 1):
            peer.receive(wire.Request(index, 0, BLOCK_SIZE))
        peer.receive(wire.Request(3, 0, 1000))
        peer.writePaused = False
        self.downloader.peerWritable(peer)
        self.assertEqual(len(runner.calls), 1)
        self.assertEqual(runner.calls[0][1], ([2, 0, 1],))
        runner.runAll()
        self.assertEqual(len(runner.calls), 1)
        self.assertEqual(runner.calls[0][1], ([3],))
        runner.runAll()
        self.assertEqual(
            peer.of(wire.Piece),
            [self.block(i, 0) for i in (2, 0, 2, 1)] + [self.block(3, 0, 1000)],
        )

    def cachePiece(self, index):
        """
        The storage can read piece C{index} at once (and no other).
        """
        cached = {index: memoryview(self.storage.readPiece(index)).toreadonly()}
        self.patch(self.storage, "readPieceIfCached", cached.get)

    def test_cachedPiecesWithoutAThread(self):
        """
        A piece the storage can read at once (it is in the page cache) is
        read on the spot, in no job; one it cannot goes to a thread.
        """
        runner = HeldRunner()
        peer = self.seeder(runner)
        self.cachePiece(1)
        peer.receive(wire.Request(1, BLOCK_SIZE, BLOCK_SIZE))
        self.assertEqual(runner.calls, [])
        self.assertEqual(peer.of(wire.Piece), [self.block(1, BLOCK_SIZE)])
        peer.receive(wire.Request(2, 0, BLOCK_SIZE))
        self.assertEqual([c[1] for c in runner.calls], [([2],)])
        runner.runAll()
        self.assertEqual(
            peer.of(wire.Piece), [self.block(1, BLOCK_SIZE), self.block(2, 0)]
        )

    def test_largeCachedPieceInAThread(self):
        """
        A piece larger than INLINE_READ_BYTES is read in a thread even when
        the storage could read it at once: the reactor is never held up
        copying it.
        """
        self.patch(uploader, "INLINE_READ_BYTES", 4 * BLOCK_SIZE - 1)
        runner = HeldRunner()
        peer = self.seeder(runner)
        self.cachePiece(1)
        peer.receive(wire.Request(1, 0, BLOCK_SIZE))
        self.assertEqual([c[1] for c in runner.calls], [([1],)])
        runner.runAll()
        self.assertEqual(peer.of(wire.Piece), [self.block(1, 0)])

    def test_serveLargeBlock(self):
        self.build(pieceLength=8 * BLOCK_SIZE, pieces=1, lastShort=None, have=[0])
        peer = self.connect()
        peer.unchoke()
        peer.receive(wire.Request(0, 0, 8 * BLOCK_SIZE))
        self.assertEqual(peer.of(wire.Piece), [self.block(0, 0, 8 * BLOCK_SIZE)])

    def test_hostileRequestsDrop(self):
        """
        A block over 128 KiB, past the piece's end, an unknown piece, or a
        piece we lack drops the peer.
        """
        for request in [
            wire.Request(0, 0, 128 * 1024 + 1),
            wire.Request(3, 0, 1001),
            wire.Request(0, 4 * BLOCK_SIZE, 1),
            wire.Request(4, 0, 1),
            wire.Request(0, 0, 0),
            wire.Request(2**31, 0, 1),
        ]:
            peer = self.seeder()
            peer.receive(request)
            self.assertIsNotNone(peer.dropped, request)
            self.assertEqual(peer.of(wire.Piece), [])
        self.build(pieceLength=4 * BLOCK_SIZE, pieces=4, have=[0])
        peer = self.connect()
        peer.unchoke()
        peer.receive(wire.Request(1, 0, BLOCK_SIZE))
        self.assertIsNotNone(peer.dropped)

    def test_chokedRequestsIgnored(self):
        peer = self.seeder()
        peer.choke()
        peer.receive(wire.Request(0, 0, BLOCK_SIZE))
        self.assertEqual(peer.of(wire.Piece), [])
        self.assertIsNone(peer.dropped)

    def test_cancelHonoured(self):
        """
        A request cancelled before we read its piece is not sent.
        """
        runner = HeldRunner()
        peer = self.seeder(runner)
        peer.receive(wire.Request(0, 0, BLOCK_SIZE))
        peer.receive(wire.Request(0, BLOCK_SIZE, BLOCK_SIZE))
        peer.receive(wire.Cancel(0, 0, BLOCK_SIZE))
        self.assertEqual(len(runner.calls), 1)
        runner.runAll()
        self.assertEqual(peer.of(wire.Piece), [self.block(0, BLOCK_SIZE)])

    def test_chokeDiscardsQueue(self):
        runner = HeldRunner()
        peer = self.seeder(runner)
        peer.receive(wire.Request(0, 0, BLOCK_SIZE))
        peer.choke()
        runner.runAll()
        self.assertEqual(peer.of(wire.Piece), [])

    def test_floodDrops(self):
        """
        More than L{downloader.MAX_PEER_QUEUE} requests waiting drops the
        peer; that bound is well above the depth our own downloader and
        libtorrent pipeline (a seeder once dropped every fast leecher).
        """
        self.assertGreaterEqual(downloader.MAX_PEER_QUEUE, 2 * downloader.MAX_DEPTH)
        runner = HeldRunner()
        peer = self.seeder(runner)
        for _ in range(downloader.MAX_PEER_QUEUE):
            peer.receive(wire.Request(0, 0, BLOCK_SIZE))
        self.assertIsNone(peer.dropped)
        peer.receive(wire.Request(0, 0, BLOCK_SIZE))
        self.assertEqual(peer.dropped, "too many requests")

    def test_readsInThreadOncePerPiece(self):
        """
        Pieces are read off the reactor thread, once for many requests.
        """
        runner = HeldRunner()
        peer = self.seeder(runner)
        other = self.connect()
        other.unchoke()
        peer.receive(wire.Request(2, 0, BLOCK_SIZE))
        other.receive(wire.Request(2, BLOCK_SIZE, BLOCK_SIZE))
        self.assertEqual(peer.of(wire.Piece), [])
        self.assertEqual(len(runner.calls), 1)
        runner.runAll()
        self.assertEqual(peer.of(wire.Piece), [self.block(2, 0)])
        self.assertEqual(other.of(wire.Piece), [self.block(2, BLOCK_SIZE)])
        peer.receive(wire.Request(2, 2 * BLOCK_SIZE, BLOCK_SIZE))
        self.assertEqual(len(runner.calls), 0)
        self.assertEqual(len(peer.of(wire.Piece)), 2)

    def test_readFailureDropsAskers(self):
        """
        A piece that cannot be read: the peers waiting for it are dropped,
        the torrent hears of it (readFailed), no traceback is logged.
        """
        runner = HeldRunner()
        peer = self.seeder(runner)
        heard = []
        self.downloader.events.listen(
            "readFailed", lambda index, failure: heard.append((index, failure.value))
        )

        def broken(index):
            raise OSError("gone")

        self.storage.readPiece = broken
        peer.receive(wire.Request(2, 0, BLOCK_SIZE))
        runner.runAll()
        self.assertEqual(self.flushLoggedErrors(OSError), [])
        self.assertIsNotNone(peer.dropped)
        self.assertEqual([(i, str(e)) for i, e in heard], [(2, "gone")])


class RandomSwarmTests(DownloaderMixin, SynchronousTestCase):
    """
    Property: whatever the order of answers (some of them corrupt), chokes,
    unchokes, timeouts and departures, the download completes with the
    right bytes once an honest seeder comes, and the picker's bookkeeping
    agrees with the downloader's at every step.
    """

    @settings(max_examples=100, deadline=None)
    @given(st.data())
    def test_randomSwarm(self, data):
        self.build(pieceLength=2 * BLOCK_SIZE, pieces=6, lastShort=5000)
        peers = [self.connect() for _ in range(3)]
        for peer in peers:
            peer.haveAll()
        for _ in range(data.draw(st.integers(0, 120), label="steps")):
            live = [p for p in peers if p.dropped is None]
            if not live:
                break
            peer = data.draw(st.sampled_from(live))
            action = data.draw(
                st.sampled_from(
                    ["unchoke", "choke", "answer", "answer", "corrupt", "tick", "drop"]
                )
            )
            if action == "unchoke":
                peer.receive(wire.Unchoke())
            elif action == "choke":
                peer.receive(wire.Choke())
            elif action == "answer":
                self.answer(peer, limit=data.draw(st.integers(1, 8)))
            elif action == "corrupt":
                self.answer(peer, corrupt=True, limit=data.draw(st.integers(1, 8)))
            elif action == "tick":
                self.clock.advance(data.draw(st.sampled_from([1, 30, 65])))
            elif action == "drop":
                peer.drop("gone")
            state = self.downloader.peers.get(peer)
            if state is not None:
                self.assertEqual(
                    sorted((i, b) for i, b, _ in self.picker.requestedFrom(peer)),
                    sorted(state.queue.requests),
                )
        # Then an honest seeder finishes the job.
        finisher = self.connect()
        finisher.haveAll()
        finisher.receive(wire.Unchoke())
        for _ in range(100):
            if self.completed:
                break
            self.answer(finisher)
            self.clock.advance(65)
        self.assertEqual(self.completed, [True])
        for index in range(self.metainfo.pieceCount):
            start = index * self.metainfo.pieceLength
            self.assertEqual(
                self.storage.pieces[index],
                self.data[start : start + self.metainfo.pieceSize(index)],
            )


class DialerBoundTests(SynchronousTestCase):
    """
    The dialer's address list is bounded.
    """

    def test_candidatesBounded(self):
        """
        However many addresses trackers, PEX and the DHT give, at most
        L{MAX_CANDIDATES} are kept: the oldest go first, never one being
        dialled.
        """
        from btorrent.engine.dialer import MAX_CANDIDATES, Dialer

        clock = task.Clock()
        dialled = []
        dialer = Dialer(
            clock,
            lambda address, onEnd: dialled.append(address) or object(),
            maxPeers=1,
        )
        dialer.add([("10.0.0.1", 1)])
        dialer.connectMore(set(), complete=False)
        self.assertEqual(dialled, [("10.0.0.1", 1)])
        dialer.add((f"10.1.{i // 250}.{i % 250}", 2) for i in range(MAX_CANDIDATES * 2))
        self.assertEqual(len(dialer.candidates), MAX_CANDIDATES)
        self.assertIn(("10.0.0.1", 1), dialer.candidates)
        self.assertIn(
            (
                f"10.1.{(MAX_CANDIDATES * 2 - 1) // 250}.{(MAX_CANDIDATES * 2 - 1) % 250}",
                2,
            ),
            dialer.candidates,
        )

    def test_sessionRoomAskedOnlyToDial(self):
        """
        The session's room (which counts the peers of every torrent) is
        asked for only when there is someone to dial: 5,000 idle seeding
        torrents ticking each second once cost 80 % of a core asking it.
        """
        from btorrent.engine.dialer import Dialer

        clock = task.Clock()
        asked = []
        dialled = []
        dialer = Dialer(
            clock, lambda address, onEnd: dialled.append(address) or object()
        )
        dialer.globalRoom = lambda: asked.append(True) or 1
        dialer.connectMore(set(), complete=True)
        dialer.add([("10.0.0.1", 1)])
        dialer.candidates[("10.0.0.1", 1)].seed = True
        dialer.connectMore(set(), complete=True)
        self.assertEqual((asked, dialled), ([], []))
        dialer.add([("10.0.0.2", 1), ("10.0.0.3", 1)])
        dialer.connectMore(set(), complete=True)
        self.assertEqual((len(asked), dialled), (1, [("10.0.0.2", 1)]))

    def test_mappedAddressIsUs(self):
        """
        Our own port on an IPv4-mapped loopback address is ourselves.
        """
        from btorrent.engine.dialer import Dialer

        dialer = Dialer(task.Clock(), lambda a, e: object(), listenPort=6881)
        dialer.add([("::ffff:127.0.0.1", 6881), ("[::1]", 6881), ("127.0.0.2", 6881)])
        self.assertEqual(dict(dialer.candidates), {})
        dialer.add([("::ffff:127.0.0.1", 6882)])
        self.assertEqual(list(dialer.candidates), [("127.0.0.1", 6882)])
