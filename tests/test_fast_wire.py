"""
The Fast extension (BEP 6) end to end in bytes: a real L{PeerProtocol} on a
L{StringTransport}, owned by a real L{Downloader}; the test plays the
remote peer with the exact bytes of L{btorrent.codec.wire} and checks the
exact bytes btorrent writes, as L{tests.test_connection} does for the
connection alone.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import wire
from btorrent.codec.wire import (
    BLOCK_SIZE,
    AllowedFast,
    BitfieldMessage,
    Choke,
    Handshake,
    HaveAll,
    HaveNone,
    Interested,
    RejectRequest,
    Request,
    Unchoke,
    encodeHandshake,
    encodeMessage,
)
from btorrent.peer.fast import allowedFastSet
from btorrent.peer.protocol import PeerClientFactory, PeerContext
from tests.fakes import HeldRunner
from tests.hostilepeers import fullBitfield
from tests.test_downloader import OUR_ID, DownloaderMixin
from tests.test_peer import LogCapture, SequenceTransport

THEIR_ID = b"-XX0001-theirs......"
PIECES = 40
ADDRESS = IPv4Address("TCP", "10.1.2.3", 6881)
FAST = wire.reservedBytes(fast=True)


def frames(*messages) -> bytes:
    return b"".join(encodeMessage(m) for m in messages)


class WireMixin(DownloaderMixin):
    def setUp(self):
        self.log = LogCapture(self)

    def open(self, have=(), reserved=FAST, runner=None):
        """
        btorrent dials; the peer answers with C{reserved}.

        @return: C{(protocol, transport)} past both handshakes, with what
            btorrent wrote after its handshake still in the transport.
        """
        kwargs = {} if runner is None else {"runner": runner}
        downloader = self.build(
            pieces=PIECES, lastShort=None, have=have, maxPeers=5, **kwargs
        )
        context = PeerContext(
            self.metainfo.infoHash,
            OUR_ID,
            PIECES,
            downloader,
            downloader.features,
        )
        factory = PeerClientFactory(context, self.clock)
        proto = factory.buildProtocol(ADDRESS)
        transport = SequenceTransport(peerAddress=ADDRESS)
        proto.makeConnection(transport)
        sent = transport.value()
        self.assertEqual(
            sent,
            encodeHandshake(Handshake(self.metainfo.infoHash, OUR_ID, FAST)),
        )
        transport.clear()
        proto.dataReceived(
            encodeHandshake(Handshake(self.metainfo.infoHash, THEIR_ID, reserved))
        )
        self.assertTrue(proto.fast == (reserved == FAST))
        return proto, transport

    def allowedBytes(self):
        return frames(
            *[
                AllowedFast(i)
                for i in allowedFastSet(10, "10.1.2.3", self.metainfo.infoHash, PIECES)
            ]
        )

    def assertDropped(self, proto, transport, reason):
        self.assertTrue(transport.disconnected)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertNotIn(proto, self.downloader.peers)
        self.assertEqual(
            [e for e in self.log.events if "log_failure" in e], [], "no traceback"
        )
        drops = [e.get("reason", "") for e in self.log.events if "reason" in e]
        self.assertTrue(any(reason in text for text in drops), drops)


class HandshakeTests(WireMixin, SynchronousTestCase):
    def test_haveNoneThenAllowedFast(self):
        """
        With nothing to offer: Have None, then our allowed-fast set.
        """
        proto, transport = self.open()
        self.assertEqual(transport.value(), frames(HaveNone()) + self.allowedBytes())

    def test_haveAllThenAllowedFast(self):
        """
        A seed sends Have All instead of its bitfield.
        """
        proto, transport = self.open(have=range(PIECES))
        self.assertEqual(transport.value(), frames(HaveAll()) + self.allowedBytes())

    def test_withoutFast(self):
        """
        A peer without the extension gets none of it: nothing at all when
        we have nothing, else a bitfield.
        """
        proto, transport = self.open(reserved=bytes(8))
        self.assertEqual(transport.value(), b"")
        proto, transport = self.open(have=[1], reserved=bytes(8))
        bits = bytearray(PIECES // 8)
        bits[0] = 0x40
        self.assertEqual(transport.value(), frames(BitfieldMessage(bytes(bits))))

    def test_haveAllReceived(self):
        """
        The peer's Have All counts every piece and makes us interested; it
        chokes us, so nothing is requested but its allowed-fast pieces.
        """
        proto, transport = self.open()
        transport.clear()
        proto.dataReceived(frames(HaveAll()))
        self.assertEqual(transport.value(), frames(Interested()))
        self.assertEqual(self.picker.availability(0), 1)
        transport.clear()
        proto.dataReceived(frames(AllowedFast(3)))
        expected = [
            Request(3, begin, BLOCK_SIZE)
            for begin in range(0, 4 * BLOCK_SIZE, BLOCK_SIZE)
        ]
        self.assertEqual(transport.value(), frames(*expected))

    def test_haveAllAfterBitfield(self):
        """
        Have All after a bitfield breaks BEP 6: dropped, one line, no
        traceback.
        """
        proto, transport = self.open()
        proto.dataReceived(frames(BitfieldMessage(fullBitfield(PIECES)), HaveAll()))
        self.assertDropped(proto, transport, "have-all/none after other messages")

    def test_fastMessagesWithoutNegotiation(self):
        """
        A Fast message from a peer that did not set the bit: dropped.
        """
        proto, transport = self.open(reserved=bytes(8))
        proto.dataReceived(frames(HaveAll()))
        self.assertDropped(proto, transport, "without the Fast extension")


class RejectTests(WireMixin, SynchronousTestCase):
    def test_rejectNeverRequested(self):
        """
        A reject of a block never requested: dropped.
        """
        proto, transport = self.open()
        proto.dataReceived(frames(HaveAll(), RejectRequest(5, 0, BLOCK_SIZE)))
        self.assertDropped(proto, transport, "rejected a request never made")

    def test_rejectAfterChoke(self):
        """
        The peer chokes us and rejects what was outstanding: nothing is
        cancelled, each reject frees its block for other peers.
        """
        proto, transport = self.open()
        proto.dataReceived(frames(HaveAll(), Unchoke()))
        requests = self.downloader.peers[proto].queue.requests
        self.assertEqual(len(requests), 16)
        transport.clear()
        proto.dataReceived(frames(Choke()))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(requests), 16)
        rejects = [RejectRequest(i, b, n) for (i, b), n in list(requests.items())]
        proto.dataReceived(frames(*rejects))
        self.assertEqual(requests, {})
        self.assertEqual(transport.value(), b"")
        self.assertTrue(proto.connection.open)
        for reject in rejects:
            self.assertFalse(
                self.picker.isRequestedFrom(reject.index, reject.begin, proto)
            )

    def test_ourRejectsAtChoke(self):
        """
        We choke a peer whose requests wait for a disk read: a reject for
        each (but its allowed-fast pieces), in bytes.
        """
        runner = HeldRunner()
        proto, transport = self.open(have=range(PIECES), runner=runner)
        proto.dataReceived(frames(Interested()))
        proto.unchoke()
        allowed = allowedFastSet(10, "10.1.2.3", self.metainfo.infoHash, PIECES)
        other = next(i for i in range(PIECES) if i not in allowed)
        transport.clear()
        proto.dataReceived(
            frames(Request(other, 0, BLOCK_SIZE), Request(allowed[0], 0, BLOCK_SIZE))
        )
        self.assertEqual(transport.value(), b"")
        proto.choke()
        self.assertEqual(
            transport.value(), frames(Choke(), RejectRequest(other, 0, BLOCK_SIZE))
        )
        transport.clear()
        runner.runAll()
        runner.runAll()
        self.assertEqual(
            transport.value(),
            wire.encodePieceHeader(allowed[0], 0, BLOCK_SIZE)
            + self.data[
                allowed[0]
                * self.metainfo.pieceLength : allowed[0]
                * self.metainfo.pieceLength
                + BLOCK_SIZE
            ],
        )
