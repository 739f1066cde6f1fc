"""
Tests for the parts the downloader composes, each alone:
L{btorrent.engine.fetcher} (blocks in, verified pieces out),
L{btorrent.engine.interest} (availability and interest per peer),
L{btorrent.engine.outgoing} (dials) and L{btorrent.engine.slots.admit}.
"""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import wire
from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import BLOCK_SIZE
from btorrent.engine.downloader import PeerRecord
from btorrent.engine.fetcher import Fetcher
from btorrent.engine.interest import Interest, countWanted
from btorrent.engine.outgoing import Outgoing
from btorrent.engine.picker import PiecePicker
from btorrent.engine.slots import admit
from btorrent.engine.smartban import SmartBan
from btorrent.peer.protocol import PeerClientFactory, PeerContext
from btorrent.util.events import EventSource
from btorrent.util.heartbeat import Heartbeat
from tests.builders import fakeTorrent
from tests.fakes import FakePeer, MemoryStorage, syncRunner


class Coordinator:
    """
    What a L{Fetcher} asks its coordinator, recorded.
    """

    running = True

    def __init__(self):
        self.bans = []
        self.completeChecks = 0
        self.logged = []

    def ban(self, key):
        self.bans.append(key)

    def checkComplete(self):
        self.completeChecks += 1

    def _log(self, level, text, **fields):
        self.logged.append((level, text))

    def peerLost(self, peer, reason):
        pass


class FetcherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.metainfo, self.data = fakeTorrent(pieceLength=2 * BLOCK_SIZE, pieces=3)
        self.clock = Clock()
        self.picker = PiecePicker(
            3, 2 * BLOCK_SIZE, self.metainfo.totalLength, random.Random(1)
        )
        self.storage = MemoryStorage(self.metainfo)
        self.peers = {}
        self.events = EventSource()
        self.verified = []
        self.events.listen("pieceVerified", self.verified.append)
        self.coordinator = Coordinator()
        self.fetcher = Fetcher(
            self.metainfo,
            self.picker,
            self.storage,
            syncRunner,
            self.clock,
            self.peers,
            SmartBan(),
            self.events,
            self.coordinator,
        )

    def connect(self, number=1):
        peer = FakePeer(self.coordinator, 3, number)
        record = PeerRecord(3, self.clock.seconds(), peer.peerId)
        self.peers[peer] = record
        peer.peerPieces = Bitfield.full(3)
        peer.peerChoking = False
        self.fetcher.interest.syncBitfield(peer, record)
        return peer, record

    def block(self, index, begin):
        start = index * self.metainfo.pieceLength + begin
        return wire.Piece(index, begin, self.data[start : start + BLOCK_SIZE])

    def test_blocksBecomePieces(self) -> None:
        """
        Requested blocks are taken, pieces are checked and written, every
        peer hears a Have, the coordinator is asked about completion.
        """
        peer, record = self.connect()
        self.assertTrue(peer.amInterested)
        requests = peer.requests()
        self.assertEqual(len(requests), 5)
        for request in requests:
            self.fetcher.blocksReceived(
                peer, record, [self.block(request.index, request.begin)]
            )
        self.assertEqual(sorted(self.verified), [0, 1, 2])
        self.assertEqual(sorted(m.index for m in peer.of(wire.Have)), [0, 1, 2])
        self.assertEqual(self.coordinator.completeChecks, 3)
        self.assertEqual(self.fetcher.downloaded, self.metainfo.totalLength)
        self.assertTrue(self.picker.complete)
        self.assertFalse(peer.amInterested)

    def test_unrequestedBlockDrops(self) -> None:
        """
        A block never requested drops its sender, and is not taken.
        """
        peer, record = self.connect()
        peer.owner = self.coordinator
        self.fetcher.blocksReceived(peer, record, [wire.Piece(2, 1, b"x")])
        self.assertEqual(peer.dropped, "sent a block never requested (2:1)")
        self.assertEqual(self.fetcher.downloadRate.total, 0)

    def test_oneRead(self) -> None:
        """
        The blocks of one read are taken in one call: counted once, and
        the requests topped up once, after them all.
        """
        peer, record = self.connect()
        requests = peer.requests()
        sent = len(peer.sent)
        blocks = [self.block(r.index, r.begin) for r in requests]
        self.fetcher.blocksReceived(peer, record, blocks)
        self.assertEqual(sorted(self.verified), [0, 1, 2])
        self.assertEqual(self.fetcher.downloadRate.total, self.metainfo.totalLength)
        self.assertEqual(self.coordinator.completeChecks, 3)
        # Nothing asked for after the run: three Haves and no Request.
        kinds = [type(m).__name__ for m in peer.sent[sent:]]
        self.assertEqual(sorted(set(kinds)), ["Have", "NotInterested"])

    def test_unrequestedInTheMiddle(self) -> None:
        """
        A block never requested in the middle of a read drops the peer
        there: the blocks before it are taken and counted, those after it
        are not, and nothing more is requested from the peer.
        """
        peer, record = self.connect()
        peer.owner = self.coordinator
        requests = peer.requests()
        sent = len(peer.sent)
        first = self.block(requests[0].index, requests[0].begin)
        last = self.block(requests[1].index, requests[1].begin)
        self.fetcher.blocksReceived(peer, record, [first, wire.Piece(2, 1, b"x"), last])
        self.assertEqual(peer.dropped, "sent a block never requested (2:1)")
        self.assertEqual(self.fetcher.downloadRate.total, BLOCK_SIZE)
        self.assertEqual(peer.sent[sent:], [])

    def test_chokedWithoutFast(self) -> None:
        """
        A choke without the Fast extension gives every request back.
        """
        peer, record = self.connect()
        self.assertEqual(len(record.queue.requests), 5)
        peer.peerChoking = True
        self.fetcher.choked(peer, record)
        self.assertEqual(record.queue.requests, {})
        self.assertEqual(self.picker.requestedFrom(peer), [])

    def test_pieceLostLogsAndWantsAgain(self) -> None:
        """
        A piece that cannot be written is wanted again, logged as a disk
        error, and reported.
        """
        lost = []
        self.events.listen("writeFailed", lambda index, f: lost.append(index))
        self.fetcher.pieceLost(1, Failure(OSError(28, "No space left")))
        self.assertEqual(lost, [1])
        self.assertEqual(self.coordinator.logged[0][0], "warn")


class InterestTests(SynchronousTestCase):
    def test_haveAndInterest(self) -> None:
        """
        A Have of a wanted piece makes us interested and asks for blocks;
        one of a piece we have changes nothing.
        """
        picker = PiecePicker(4, BLOCK_SIZE, 4 * BLOCK_SIZE, random.Random(1))
        picker.have(1)
        fills = []
        interest = Interest(picker, lambda peer, record: fills.append(peer))
        peer = FakePeer(None, 4, 1)
        record = PeerRecord(4, 0.0, "k")
        self.assertTrue(interest.gotHave(peer, record, 1))
        self.assertFalse(peer.amInterested)
        self.assertFalse(interest.gotHave(peer, record, 1))
        self.assertTrue(interest.gotHave(peer, record, 2))
        self.assertTrue(peer.amInterested)
        self.assertEqual(fills, [peer])
        self.assertEqual(record.wanted, 1)
        self.assertEqual(picker.availability(2), 1)
        interest.pieceHad(2, peer, record)
        self.assertFalse(peer.amInterested)
        self.assertEqual(countWanted(record, picker.neededBits()), 1)


class OutgoingTests(SynchronousTestCase):
    def test_dialReportsOnce(self) -> None:
        """
        A dial connects from the bind address through the given factory
        class; a failed connection is reported once, not handshaken.
        """
        reactor = MemoryReactor()
        clock = Clock()
        outgoing = Outgoing(
            clock, reactor, syncRunner, Heartbeat(clock), bindAddress="127.0.0.1"
        )
        ended = []
        context = PeerContext(b"i" * 20, b"p" * 20, 4, Coordinator())
        outgoing.dial(
            ("127.0.0.1", 6881),
            context,
            PeerClientFactory,
            "tolerated",
            lambda *a, **k: ended.append((a, k)),
        )
        host, port, factory, timeout, bindAddress = reactor.tcpClients[0]
        self.assertEqual(
            (host, port, bindAddress), ("127.0.0.1", 6881, ("127.0.0.1", 0))
        )
        self.assertIsNone(factory.mseProvide)
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(ended, [((False,), {})])


class AdmitTests(SynchronousTestCase):
    def test_rules(self) -> None:
        """
        Banned and duplicate peers are refused; a full torrent takes a
        newcomer only if someone is idle enough to go; an incoming peer
        needs room under the session's limit.
        """
        a = FakePeer(None, 4, 1)
        b = FakePeer(None, 4, 2)
        peers = {a: PeerRecord(4, 0.0, "a")}
        self.assertEqual(admit(b, peers, 5, set(), outgoing=False), (True, None))
        self.assertEqual(admit(b, peers, 5, {b.peerId}, outgoing=False), (False, None))
        twin = FakePeer(None, 4, 1)
        self.assertEqual(admit(twin, peers, 5, set(), outgoing=True), (False, None))
        self.assertEqual(
            admit(b, peers, 5, set(), outgoing=False, globalRoom=lambda: 0),
            (False, None),
        )
        self.assertEqual(
            admit(b, peers, 5, set(), outgoing=True, globalRoom=lambda: 0),
            (True, None),
        )
        admitted, evicted = admit(b, peers, 1, set(), outgoing=True)
        self.assertEqual(admitted, evicted is not None)
