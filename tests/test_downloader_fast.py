"""
The Fast extension (BEP 6) in the coordinator, with fake peers (the
surface of a C{PeerProtocol}, as in L{tests.test_downloader}): Have None,
our allowed-fast set and its service while we choke, the peer's allowed
pieces while it chokes us, rejects both ways, suggestions; and the dials
through MSE with their plaintext fallback.
"""

from __future__ import annotations

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import wire
from btorrent.codec.bitfield import Bitfield
from btorrent.engine.downloader import BLOCK_SIZE
from btorrent.engine.fastpeer import (
    CHOKED_REQUESTS_PER_PIECE,
    MAX_ALLOWED_FROM_PEER,
    MAX_SUGGESTED,
    FastPeer,
    ourAllowedSet,
)
from btorrent.peer.connection import Features
from btorrent.peer.fast import allowedFastSet
from btorrent.peer.mse import CRYPTO_RC4, MSEError
from tests.fakes import FakePeer, HeldRunner
from tests.test_downloader import DownloaderMixin

PIECES = 40


class FastMixin(DownloaderMixin):
    def connectFast(self, peerPieces=None):
        self.count += 1
        peer = FakePeer(
            self.downloader, self.metainfo.pieceCount, self.count, fast=True
        )
        if peerPieces is not None:
            for index in peerPieces:
                peer.peerPieces.add(index)
        self.assertTrue(self.downloader.peerConnected(peer))
        return peer

    def allowed(self):
        """
        Our allowed-fast set for a peer at 127.0.0.1.
        """
        return allowedFastSet(10, "127.0.0.1", self.metainfo.infoHash, PIECES)


class StartTests(FastMixin, SynchronousTestCase):
    """
    What a fast peer gets after the handshake.
    """

    def test_featuresOfferFast(self):
        """
        Every connection offers the Fast extension by default.
        """
        self.build()
        self.assertEqual(self.downloader.features, Features(fast=True))

    def test_haveNoneWhenEmpty(self):
        """
        With nothing to offer, a fast peer still gets our (empty)
        bitfield, which the connection sends as Have None; a peer without
        the extension gets nothing.
        """
        self.build(pieces=PIECES)
        peer = self.connectFast()
        [bits] = peer.of(wire.BitfieldMessage)
        self.assertEqual(Bitfield.fromBytes(bits.bits, PIECES).count, 0)
        self.assertIs(peer.sent[0], bits)
        plain = self.connect()
        self.assertEqual(plain.of(wire.BitfieldMessage), [])

    def test_allowedFastSetSent(self):
        """
        Right after the bitfield: BEP 6's set for the peer's address,
        without the pieces it already announced.
        """
        self.build(pieces=PIECES, have=[0, 1])
        expected = self.allowed()
        announced = expected[:3]
        peer = self.connectFast(peerPieces=announced)
        rest = [index for index in expected if index not in announced]
        self.assertIsInstance(peer.sent[0], wire.BitfieldMessage)
        self.assertEqual(
            peer.sent[1 : 1 + len(rest)], [wire.AllowedFast(i) for i in rest]
        )
        self.assertEqual(len(peer.of(wire.AllowedFast)), len(rest))

    def test_noSetForASeed(self):
        """
        A peer that has every piece gets no allowed-fast set.
        """
        self.build(pieces=PIECES)
        peer = self.connectFast(peerPieces=range(PIECES))
        self.assertEqual(peer.of(wire.AllowedFast), [])

    def test_ourAllowedSet(self):
        """
        A host name (no address) gives no set; a small torrent allows every
        piece the peer lacks.
        """
        infoHash = b"h" * 20
        self.assertEqual(ourAllowedSet("peer.example", infoHash, 100), [])
        self.assertEqual(ourAllowedSet("10.0.0.1", infoHash, 4, {1}), [0, 2, 3])
        self.assertEqual(
            ourAllowedSet("10.0.0.1", infoHash, 100),
            allowedFastSet(10, "10.0.0.1", infoHash, 100),
        )


class ServingChokedTests(FastMixin, SynchronousTestCase):
    """
    Requests from a peer we choke.
    """

    def setUp(self):
        self.build(pieces=PIECES, have=range(PIECES), lastShort=None)
        self.peer = self.connectFast()
        self.peer.takeSent()

    def test_allowedServedWhileChoked(self):
        """
        A choked peer gets blocks of its allowed-fast pieces, and a reject
        for anything else.
        """
        allowed = self.allowed()[0]
        other = next(i for i in range(PIECES) if i not in self.allowed())
        self.peer.receive(wire.Request(allowed, 0, BLOCK_SIZE))
        self.peer.receive(wire.Request(other, 0, BLOCK_SIZE))
        sent = self.peer.takeSent()
        self.assertEqual(
            [(type(m), m.index) for m in sent],
            [(wire.Piece, allowed), (wire.RejectRequest, other)],
        )

    def test_chokedRequestsBounded(self):
        """
        A choked peer may ask for an allowed piece's blocks a few times
        over; beyond that it is rejected, not dropped.
        """
        allowed = self.allowed()[0]
        blocks = self.metainfo.pieceLength // BLOCK_SIZE
        limit = CHOKED_REQUESTS_PER_PIECE * blocks
        for _ in range(limit + 2):
            self.peer.receive(wire.Request(allowed, 0, BLOCK_SIZE))
        sent = self.peer.takeSent()
        self.assertEqual(len(sent), limit + 2)
        self.assertEqual(len([m for m in sent if type(m) is wire.Piece]), limit)
        self.assertEqual([type(m) for m in sent[limit:]], [wire.RejectRequest] * 2)
        self.assertIsNone(self.peer.dropped)

    def test_chokeRejectsQueued(self):
        """
        Choking a fast peer rejects each of its queued requests at once,
        except those for its allowed-fast pieces, which are still served.
        """
        runner = HeldRunner()
        self.build(pieces=PIECES, have=range(PIECES), lastShort=None, runner=runner)
        peer = self.connectFast()
        peer.unchoke()
        peer.takeSent()
        allowed = self.allowed()[0]
        others = [i for i in range(PIECES) if i not in self.allowed()][:3]
        for index in [others[0], allowed, others[1], others[2]]:
            peer.receive(wire.Request(index, 0, BLOCK_SIZE))
        self.assertEqual(peer.takeSent(), [])
        peer.chokeNow()
        sent = peer.takeSent()
        self.assertEqual(sent[0], wire.Choke())
        self.assertEqual(
            sorted(m.index for m in sent[1:]),
            sorted(others),
        )
        self.assertTrue(all(type(m) is wire.RejectRequest for m in sent[1:]))
        runner.runAll()
        runner.runAll()
        served = [m for m in peer.takeSent() if type(m) is wire.Piece]
        self.assertEqual([m.index for m in served], [allowed])

    def test_chokeWithoutFastForgets(self):
        """
        Without the extension a choke drops the queue silently.
        """
        runner = HeldRunner()
        self.build(pieces=PIECES, have=range(PIECES), lastShort=None, runner=runner)
        peer = self.connect()
        peer.unchoke()
        peer.receive(wire.Interested())
        peer.takeSent()
        peer.receive(wire.Request(0, 0, BLOCK_SIZE))
        peer.choke()
        self.downloader.peerChoked(peer)
        runner.runAll()
        self.assertEqual(peer.takeSent(), [wire.Choke()])

    def test_cancelAnsweredByReject(self):
        """
        BEP 6: a cancelled request still gets exactly one answer, a reject;
        a cancel of nothing gets nothing.
        """
        runner = HeldRunner()
        self.build(pieces=PIECES, have=range(PIECES), lastShort=None, runner=runner)
        peer = self.connectFast()
        peer.unchoke()
        peer.takeSent()
        peer.receive(wire.Request(5, 0, BLOCK_SIZE))
        peer.receive(wire.Cancel(5, 0, BLOCK_SIZE))
        peer.receive(wire.Cancel(6, 0, BLOCK_SIZE))
        self.assertEqual(peer.takeSent(), [wire.RejectRequest(5, 0, BLOCK_SIZE)])
        runner.runAll()
        self.assertEqual(peer.takeSent(), [])

    def test_missingPieceRejected(self):
        """
        A request for a piece we lack is rejected (not a reason to drop a
        fast peer).
        """
        self.build(pieces=PIECES, have=[0], lastShort=None)
        peer = self.connectFast()
        peer.unchoke()
        peer.takeSent()
        peer.receive(wire.Request(3, 0, BLOCK_SIZE))
        self.assertEqual(peer.takeSent(), [wire.RejectRequest(3, 0, BLOCK_SIZE)])
        self.assertIsNone(peer.dropped)


class DownloadingTests(FastMixin, SynchronousTestCase):
    """
    Requests to fast peers.
    """

    def test_allowedFastWhileChoked(self):
        """
        While a fast peer chokes us, we ask it only for the pieces it
        allows; once it unchokes us, for anything.
        """
        self.build(pieces=PIECES, lastShort=None)
        peer = self.connectFast()
        peer.receive(wire.HaveAll())
        self.assertTrue(peer.amInterested)
        self.assertEqual(peer.requests(), [])
        peer.receive(wire.AllowedFast(7))
        peer.receive(wire.AllowedFast(9))
        requested = {m.index for m in peer.requests()}
        self.assertEqual(requested, {7, 9})
        self.assertEqual(len(peer.requests()), 8)
        peer.receive(wire.Unchoke())
        self.assertGreater({m.index for m in peer.requests()} - {7, 9}, set())

    def test_allowedButNotHad(self):
        """
        An allowed piece the peer does not have is not asked for.
        """
        self.build(pieces=PIECES, lastShort=None)
        peer = self.connectFast()
        bits = Bitfield(PIECES)
        bits.add(3)
        peer.receive(wire.BitfieldMessage(bits.toBytes()))
        peer.receive(wire.AllowedFast(4))
        self.assertEqual(peer.requests(), [])
        peer.receive(wire.AllowedFast(3))
        self.assertEqual({m.index for m in peer.requests()}, {3})

    def test_allowedFromPeerBounded(self):
        """
        A peer cannot make us keep more than a bounded set.
        """
        fast = FastPeer()
        for index in range(10 * MAX_ALLOWED_FROM_PEER):
            fast.allowedFast(index)
        self.assertEqual(len(fast.allowedFromPeer), MAX_ALLOWED_FROM_PEER)
        for index in range(10 * MAX_SUGGESTED):
            fast.suggest(index)
        self.assertEqual(len(fast.suggested), MAX_SUGGESTED)
        self.assertEqual(fast.suggested[0], 10 * MAX_SUGGESTED - 1)

    def test_chokeKeepsRequests(self):
        """
        A fast peer that chokes us answers each request with a piece or a
        reject: nothing is cancelled or given away at the choke.
        """
        self.build(pieces=PIECES, lastShort=None)
        peer = self.connectFast()
        peer.receive(wire.HaveAll())
        peer.receive(wire.Unchoke())
        before = len(peer.requests())
        self.assertGreater(before, 0)
        other = self.connectFast()
        other.receive(wire.HaveAll())
        other.receive(wire.Unchoke())
        otherBefore = set(other.allRequests)
        peer.receive(wire.Choke())
        self.assertEqual(peer.of(wire.Cancel), [])
        self.assertEqual(set(other.allRequests), otherBefore)
        self.assertEqual(len(self.downloader.peers[peer].queue.requests), before)

    def test_rejectGoesElsewhereAtOnce(self):
        """
        A reject gives the block back at once: the next peer with room is
        asked for it first, without any time passing.
        """
        self.build(pieces=PIECES, lastShort=None, maxPeers=5)
        peer = self.connectFast()
        peer.receive(wire.HaveAll())
        peer.receive(wire.Unchoke())
        other = self.connectFast()
        other.receive(wire.HaveAll())
        self.assertEqual(other.requests(), [])
        peer.receive(wire.Choke())
        first = peer.requests()[0]
        start = self.clock.seconds()
        peer.receive(wire.RejectRequest(first.index, first.begin, first.length))
        self.assertFalse(self.picker.isRequestedFrom(first.index, first.begin, peer))
        other.receive(wire.Unchoke())
        self.assertEqual(
            (other.requests()[0].index, other.requests()[0].begin),
            (first.index, first.begin),
        )
        self.assertEqual(self.clock.seconds(), start)
        self.assertIsNone(peer.dropped)

    def test_rejectNeverRequested(self):
        """
        A reject of a block we never asked for drops the peer.
        """
        self.build(pieces=PIECES, lastShort=None)
        peer = self.connectFast()
        peer.receive(wire.HaveAll())
        peer.receive(wire.RejectRequest(1, 0, BLOCK_SIZE))
        self.assertEqual(peer.dropped, "rejected a request never made (1)")

    def test_rejectOfCancelled(self):
        """
        The reject that answers our cancel is fine, once.
        """
        self.build(pieces=PIECES, lastShort=None)
        peer = self.connectFast()
        peer.receive(wire.HaveAll())
        peer.receive(wire.Unchoke())
        request = peer.requests()[0]
        queue = self.downloader.peers[peer].queue
        key = (request.index, request.begin)
        queue.withdraw(key, queue.requests.pop(key))
        reject = wire.RejectRequest(request.index, request.begin, request.length)
        peer.receive(reject)
        self.assertIsNone(peer.dropped)
        peer.receive(reject)
        self.assertIsNotNone(peer.dropped)

    def test_rejectedAllowedNotAskedAgain(self):
        """
        An allowed-fast piece the choking peer rejects is no longer asked of
        it while it chokes us.
        """
        self.build(pieces=PIECES, lastShort=None)
        peer = self.connectFast()
        peer.receive(wire.HaveAll())
        peer.receive(wire.AllowedFast(7))
        requests = peer.takeSent()
        requests = [m for m in requests if type(m) is wire.Request]
        self.assertEqual({m.index for m in requests}, {7})
        for m in requests:
            peer.receive(wire.RejectRequest(m.index, m.begin, m.length))
        self.assertEqual(peer.requests(), [])
        self.assertIsNone(peer.dropped)

    def test_suggestionFirst(self):
        """
        A suggested piece we want is asked for first; one we have is
        ignored.
        """
        self.build(pieces=PIECES, lastShort=None, have=[5])
        peer = self.connectFast()
        peer.receive(wire.HaveAll())
        peer.receive(wire.SuggestPiece(5))
        peer.receive(wire.SuggestPiece(23))
        self.assertEqual(self.downloader.peers[peer].fast.suggested, [23])
        peer.receive(wire.Unchoke())
        self.assertEqual(peer.requests()[0].index, 23)
        self.assertEqual({m.index for m in peer.requests()[:4]}, {23})

    def test_suggestionForgottenWhenVerified(self):
        """
        A suggestion is dropped once we have the piece.
        """
        self.build(pieces=PIECES, lastShort=None)
        peer = self.connectFast()
        peer.receive(wire.HaveAll())
        peer.receive(wire.SuggestPiece(2))
        peer.receive(wire.Unchoke())
        self.answer(peer, limit=4)
        self.assertEqual(self.downloader.peers[peer].fast.suggested, [])


class RecordingConnector:
    """
    C{connectTCP} that records its factories.
    """

    def __init__(self):
        self.factories = []

    def connectTCP(self, host, port, factory, timeout=None, bindAddress=None):
        self.factories.append(factory)
        return self

    def disconnect(self):
        pass


class FakeWrapper:
    """
    What an MSE wrapper looks like after a failed handshake.
    """

    handshakeError = MSEError("closed during the MSE handshake")


class DialTests(FastMixin, SynchronousTestCase):
    """
    Outgoing connections through MSE, as the encryption policy says.
    """

    def dial(self, mode):
        from btorrent.peer.protocol import PeerClientFactory, PeerContext

        self.build()
        self.downloader.contextFactory = PeerContext
        self.downloader.clientFactoryClass = PeerClientFactory
        self.downloader.encryption = mode
        self.connector = RecordingConnector()
        self.downloader.connector = self.connector
        self.downloader.addPeers([("127.0.0.1", 7001)])
        return self.connector.factories

    def failMSE(self, factory):
        factory.built = FakeWrapper()
        factory.clientConnectionLost(None, Failure(MSEError("closed")))

    def test_preferredFallsBack(self):
        """
        C{preferred} dials through MSE offering RC4; when the MSE handshake
        fails it dials again at once in plaintext, and only then counts a
        failure.
        """
        factories = self.dial("preferred")
        self.assertEqual(factories[0].mseProvide, CRYPTO_RC4)
        self.assertEqual(factories[0].context.features, Features(fast=True))
        self.failMSE(factories[0])
        self.assertEqual(len(factories), 2)
        self.assertIsNone(factories[1].mseProvide)
        self.assertIn(("127.0.0.1", 7001), self.downloader.dialer.connecting)
        self.assertEqual(
            self.downloader.dialer.candidates[("127.0.0.1", 7001)].failures, 0
        )
        factories[1].clientConnectionLost(None, Failure(ConnectionError()))
        self.assertEqual(len(factories), 2)
        self.assertEqual(
            self.downloader.dialer.candidates[("127.0.0.1", 7001)].failures, 1
        )

    def test_preferredOtherFailure(self):
        """
        A dial that fails before any MSE (refused) is not retried in
        plaintext.
        """
        factories = self.dial("preferred")
        factories[0].clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(len(factories), 1)

    def test_requiredNeverPlaintext(self):
        """
        C{required} never falls back.
        """
        factories = self.dial("required")
        self.assertEqual(factories[0].mseProvide, CRYPTO_RC4)
        self.failMSE(factories[0])
        self.assertEqual(len(factories), 1)

    def test_toleratedDialsPlaintext(self):
        """
        C{tolerated} dials in plaintext.
        """
        factories = self.dial("tolerated")
        self.assertIsNone(factories[0].mseProvide)

    def test_wrapperBuilt(self):
        """
        The client factory wraps its protocol in an MSE initiator when told
        to, and reports whether its MSE handshake failed.
        """
        from btorrent.peer.msetransport import MSEOutgoingProtocol
        from btorrent.peer.protocol import PeerProtocol

        factories = self.dial("preferred")
        built = factories[0].buildProtocol(None)
        self.assertIsInstance(built, MSEOutgoingProtocol)
        self.assertIsInstance(built.wrappedProtocol, PeerProtocol)
        self.assertFalse(factories[0].mseFailed)
        built.handshakeError = MSEError("x")
        self.assertTrue(factories[0].mseFailed)
