"""
Tests for L{btorrent.engine.slots} and its use by the
L{btorrent.engine.downloader.Downloader}: when every slot is taken, an idle
peer gives way to a newcomer (the one idle longest, one that never traded
a block first); a peer that says nothing useful within
L{slots.QUIET_DEADLINE} seconds of its handshake is dropped.  With fakes and
a L{task.Clock}; tests/test_interop_idlepeers.py does it with real sockets.
"""

from __future__ import annotations

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import wire
from btorrent.engine import slots
from btorrent.engine.downloader import PeerRecord
from btorrent.peer.connection import ExtensionHandshake, ExtensionMessage
from tests.fakes import FakePeer
from tests.test_downloader import DownloaderMixin

EVICTED = "idle, and the slots are full: room for a newcomer"
QUIET = "said nothing useful within 30 s of its handshake"


def slotPeer(amInterested=False, peerInterested=False, down=0, up=0) -> FakePeer:
    """
    A fake peer with the flags and counts L{slots} reads.
    """
    peer = FakePeer(interested=peerInterested)
    peer.amInterested = amInterested
    peer.bytesDownloaded = down
    peer.bytesUploaded = up
    return peer


def record(connectedAt=0.0, usefulAt=None) -> PeerRecord:
    """
    A L{PeerRecord} accepted at C{connectedAt}.
    """
    r = PeerRecord(8, connectedAt, None)
    r.usefulAt = usefulAt
    return r


class PolicyTests(SynchronousTestCase):
    """
    The pure policy.
    """

    def test_idle(self) -> None:
        """
        A peer is idle when neither side is interested and nothing is in
        flight either way.
        """
        self.assertTrue(slots.isIdle(slotPeer(), record()))
        self.assertFalse(slots.isIdle(slotPeer(amInterested=True), record()))
        self.assertFalse(slots.isIdle(slotPeer(peerInterested=True), record()))
        busy = record()
        busy.queue.requests[(0, 0)] = 16384
        self.assertFalse(slots.isIdle(slotPeer(), busy))
        serving = record()
        serving.serving.append((0, 0, 16384))
        self.assertFalse(slots.isIdle(slotPeer(), serving))

    def test_nobodyIdle(self) -> None:
        """
        With no idle peer, nobody gives way.
        """
        peers = [(slotPeer(peerInterested=True), record()), (slotPeer(True), record())]
        self.assertIsNone(slots.evictionCandidate(peers))
        self.assertIsNone(slots.evictionCandidate([]))

    def test_longestIdle(self) -> None:
        """
        Of the idle peers, the one idle longest gives way: since its last
        useful message, or its handshake if it never sent one.
        """
        quietSince5 = slotPeer()
        usefulAt3 = slotPeer()
        usefulAt8 = slotPeer()
        interested = slotPeer(peerInterested=True)
        peers = [
            (quietSince5, record(5.0)),
            (usefulAt3, record(0.0, 3.0)),
            (usefulAt8, record(1.0, 8.0)),
            (interested, record(0.0)),
        ]
        self.assertIs(slots.evictionCandidate(peers), usefulAt3)
        self.assertIs(slots.evictionCandidate(peers[:1] + peers[2:]), quietSince5)

    def test_dataLast(self) -> None:
        """
        A peer that traded blocks (either way) gives way after every one
        that never did, however long idle.
        """
        gave = slotPeer(down=16384)
        took = slotPeer(up=16384)
        never = slotPeer()
        peers = [
            (gave, record(0.0, 0.0)),
            (took, record(0.0, 0.0)),
            (never, record(9.0)),
        ]
        self.assertIs(slots.evictionCandidate(peers), never)
        self.assertIs(slots.evictionCandidate(peers[:2]), gave)

    def test_quietPeers(self) -> None:
        """
        Peers that never sent anything useful are quiet from
        L{slots.QUIET_DEADLINE} seconds after their handshake.
        """
        self.assertEqual(slots.QUIET_DEADLINE, 30.0)
        young, old, spoke = slotPeer(), slotPeer(), slotPeer()
        peers = [(young, record(10.1)), (old, record(10.0)), (spoke, record(0.0, 1.0))]
        self.assertEqual(slots.quietPeers(peers, 40.0), [old])
        self.assertEqual(slots.quietPeers(peers, 39.9), [])
        self.assertEqual(slots.quietPeers(peers, 41.2, deadline=30.9), [young, old])

    def test_usefulMessages(self) -> None:
        """
        Its pieces, its interest, a request, a block and an extension
        message are useful; keep-alives, chokes, not-interested and the
        extension handshake are not.
        """
        for kind in (
            wire.BitfieldMessage,
            wire.Have,
            wire.HaveAll,
            wire.HaveNone,
            wire.Interested,
            wire.Request,
            wire.Piece,
            ExtensionMessage,
        ):
            self.assertIn(kind, slots.USEFUL_MESSAGES)
        for kind in (
            wire.KeepAlive,
            wire.Choke,
            wire.Unchoke,
            wire.NotInterested,
            wire.Cancel,
            ExtensionHandshake,
        ):
            self.assertNotIn(kind, slots.USEFUL_MESSAGES)


class DownloaderSlotTests(DownloaderMixin, SynchronousTestCase):
    """
    The downloader makes room for newcomers and drops quiet peers.
    """

    def test_newcomerEvictsLongestIdle(self) -> None:
        """
        Full of idle peers, a newcomer is accepted and the peer idle
        longest is dropped (with one log line), its slot freed at once.
        """
        self.build(maxPeers=3)
        first = self.connect()
        self.clock.advance(1)
        second = self.connect()
        self.clock.advance(1)
        third = self.connect()
        first.receive(wire.HaveNone())  # useful at 2: idle since then
        self.clock.advance(1)
        with capturedLogs() as events:
            newcomer = self.connect()
        self.assertIsNotNone(newcomer)
        self.assertEqual(second.dropped, EVICTED)
        self.assertEqual(set(self.downloader.peers), {first, third, newcomer})
        lines = [
            e
            for e in events
            if e.get("reason") == EVICTED and e["log_level"].name == "info"
        ]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["port"], second.address[1])
        # Next: first (idle since 2), then third (since 2, connected later).
        self.assertIsNotNone(self.connect())
        self.assertEqual(first.dropped, EVICTED)
        self.assertIsNone(third.dropped)

    def test_busyPeersStay(self) -> None:
        """
        Peers that want our pieces, or that we want pieces from, or with
        requests in flight, never give way: the newcomer is refused.
        """
        self.build(maxPeers=2, have=[0])
        leecher = self.connect()
        leecher.receive(wire.Interested())
        seed = self.connect()
        seed.haveAll()
        self.assertTrue(seed.amInterested)
        self.assertIsNone(self.connect())
        self.assertIsNone(leecher.dropped)
        self.assertIsNone(seed.dropped)
        self.assertEqual(len(self.downloader.peers), 2)

    def test_dialledPeerEvicts(self) -> None:
        """
        Our own dial completing its handshake when full makes room the
        same way.
        """
        self.build(maxPeers=1)
        idle = self.connect()
        self.downloader.dialer.maxPeers = 2
        self.downloader.addPeers([("127.0.0.1", 7001)])
        self.downloader.dialer.maxPeers = 1
        factory = self.reactor.tcpClients[0][2]
        dialled = self.connect(factory=factory)
        self.assertIsNotNone(dialled)
        self.assertEqual(idle.dropped, EVICTED)
        self.assertEqual(list(self.downloader.peers), [dialled])

    def test_duplicateEvictsNobody(self) -> None:
        """
        A newcomer refused for another reason (a second connection of a
        peer) costs nobody their slot.
        """
        self.build(maxPeers=1)
        idle = self.connect()
        self.assertIsNone(self.connect(peerId=idle.peerId))
        self.assertIsNone(idle.dropped)

    def test_quietDeadline(self) -> None:
        """
        A peer that only handshakes (keep-alives at most) is dropped at the
        first housekeeping 30 s after its handshake; one that sent its
        pieces (even none, with the Fast extension's have-none) or its
        interest stays, though it sends nothing more.
        """
        self.build()
        quiet = self.connect()
        haveNone = self.connect()
        haveNone.receive(wire.HaveNone())
        interested = self.connect()
        interested.receive(wire.Interested())
        interested.receive(wire.NotInterested())
        for _ in range(29):
            self.clock.advance(1)
            quiet.receive(wire.KeepAlive())
        self.assertIsNone(quiet.dropped)
        for _ in range(10):
            self.clock.advance(1)
        self.assertEqual(quiet.dropped, QUIET)
        self.assertNotIn(quiet, self.downloader.peers)
        self.clock.advance(600)
        self.assertIsNone(haveNone.dropped)
        self.assertIsNone(interested.dropped)

    def test_idleFloodHonestPeerGetsIn(self) -> None:
        """
        500 idle peers arriving one after the other into 50 slots: the
        slots stay at 50, each newcomer gets in; an honest leecher that
        arrives among them, and says it is interested, stays however many
        more arrive.
        """
        self.build(maxPeers=50, have=[0, 1, 2, 3])
        honest = None
        for number in range(500):
            self.clock.advance(0.01)
            self.assertIsNotNone(self.connect())
            self.assertEqual(len(self.downloader.peers), min(number + 1, 50))
            if number == 250:
                honest = self.connect()
                self.assertIsNotNone(honest)
                honest.receive(wire.Interested())
        self.assertIn(honest, self.downloader.peers)
        self.assertIsNone(honest.dropped)
        self.assertEqual(len(self.downloader.peers), 50)
