"""
Tests for L{btorrent.peer.protocol}.
"""

from typing import List

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import (
    BLOCK_MAX,
    BLOCK_SIZE,
    BitfieldMessage,
    Cancel,
    Choke,
    Handshake,
    Have,
    Interested,
    KeepAlive,
    NotInterested,
    Piece,
    Port,
    Request,
    Unchoke,
    encodeHandshake,
    encodeMessage,
)
from btorrent.interfaces import IPeerOwner, IPeerRouter
from btorrent.peer.protocol import (
    HANDSHAKE_TIMEOUT,
    IDLE_TIMEOUT,
    KEEPALIVE_BURST,
    KEEPALIVE_INTERVAL,
    PeerClientFactory,
    PeerContext,
    PeerDropped,
    PeerFactory,
    PeerProtocol,
    maxMessageLength,
)

INFO_HASH = b"I" * 20
OTHER_HASH = b"O" * 20
OUR_ID = b"-BT0001-ourselves....."[:20]
THEIR_ID = b"-XX0001-theirs......."[:20]
PEER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 6881)
KEEP_ALIVE_BYTES = b"\x00\x00\x00\x00"


@implementer(IPeerOwner)
class RecordingOwner:
    """
    An owner that records what it hears.
    """

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.connected: List[PeerProtocol] = []
        self.messages: list = []
        self.lost: list = []
        self.failed: list = []
        self.writable: list = []
        self.onMessage = None
        #: C{("blocks", [Piece...])} per L{peerBlocks} call.
        self.calls: list = []

    def peerConnected(self, peer):
        self.connected.append(peer)
        return self.accept

    def peerMessage(self, peer, message):
        self.messages.append(message)
        if self.onMessage is not None:
            self.onMessage(peer, message)

    def peerBlocks(self, peer, blocks):
        self.calls.append(("blocks", list(blocks)))
        for message in blocks:
            self.peerMessage(peer, message)

    def peerLost(self, peer, reason):
        self.lost.append(reason)

    def connectionFailed(self, address, reason):
        self.failed.append((address, reason))

    def peerWritable(self, peer):
        self.writable.append(peer)


@implementer(IPeerRouter)
class Router:
    """
    Routes one info-hash.
    """

    def __init__(self, context) -> None:
        self.context = context
        self.asked: list = []

    def ownerFor(self, infoHash):
        self.asked.append(infoHash)
        if infoHash == self.context.infoHash:
            return self.context
        return None


class SequenceTransport(StringTransport):
    """
    A L{StringTransport} that remembers what C{writeSequence} was given.
    """

    def __init__(self, *a, **kw) -> None:
        self.writes: list = []
        super().__init__(*a, **kw)
        self.sequences: list = []

    def write(self, data):
        self.writes.append(data)
        super().write(data)

    def clear(self):
        self.writes.clear()
        super().clear()

    def writeSequence(self, seq):
        seq = list(seq)
        self.sequences.append(seq)
        super().writeSequence(seq)


def theirHandshake(infoHash=INFO_HASH, peerId=THEIR_ID, reserved=bytes(8)):
    return encodeHandshake(Handshake(infoHash, peerId, reserved))


def ourHandshake(infoHash=INFO_HASH):
    return encodeHandshake(Handshake(infoHash, OUR_ID))


def frames(*messages) -> bytes:
    return b"".join(encodeMessage(m) for m in messages)


class LogCapture:
    """
    Collects every log event while a test runs.
    """

    def __init__(self, testCase) -> None:
        self.events: list = []
        globalLogPublisher.addObserver(self.events.append)
        testCase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def failures(self):
        return [e for e in self.events if "log_failure" in e]

    def drops(self):
        return [
            e
            for e in self.events
            if e.get("log_format", "").startswith("Dropping peer")
        ]


class PeerTestsMixin:
    """
    Builds protocols on L{StringTransport}s.
    """

    pieceCount = 20

    def setUp(self) -> None:
        self.log = LogCapture(self)
        self.clock = Clock()
        self.owner = RecordingOwner()
        self.context = PeerContext(INFO_HASH, OUR_ID, self.pieceCount, self.owner)

    def outgoing(self, debug=False):
        factory = PeerClientFactory(self.context, self.clock, debug=debug)
        proto = factory.buildProtocol(PEER_ADDRESS)
        transport = SequenceTransport(peerAddress=PEER_ADDRESS)
        proto.makeConnection(transport)
        return proto, transport

    def incoming(self, debug=False):
        self.router = Router(self.context)
        factory = PeerFactory(self.router, self.clock, debug=debug)
        proto = factory.buildProtocol(PEER_ADDRESS)
        transport = SequenceTransport(peerAddress=PEER_ADDRESS)
        proto.makeConnection(transport)
        return proto, transport

    def connected(self, debug=False):
        """
        An outgoing connection past the handshake, with the written bytes
        cleared.
        """
        proto, transport = self.outgoing(debug=debug)
        proto.dataReceived(theirHandshake())
        self.assertIs(self.owner.connected[-1], proto)
        transport.clear()
        return proto, transport

    def lose(self, proto, transport) -> None:
        """
        What the reactor does after C{loseConnection}/C{abortConnection}.
        """
        self.assertTrue(transport.disconnecting)
        proto.connectionLost(Failure(ConnectionDone()))

    def assertDropped(self, proto, transport, owned=True) -> None:
        """
        The connection was aborted for a protocol violation, logged in one
        line without a traceback, and the owner hears of it once.
        """
        self.assertTrue(transport.disconnecting)
        self.assertTrue(transport.disconnected, "aborted")
        self.lose(proto, transport)
        proto.connectionLost(Failure(ConnectionDone()))
        if owned:
            self.assertEqual(len(self.owner.lost), 1)
            self.assertIsInstance(self.owner.lost[0].value, PeerDropped)
        else:
            self.assertEqual(self.owner.lost, [])
        self.assertEqual(self.log.failures(), [])
        self.assertEqual(len(self.log.drops()), 1)
        # Nothing more is taken in or buffered.
        proto.dataReceived(b"\x00\x00\x00\x05\x04\x00\x00\x00\x01" * 100)
        self.assertEqual(proto.connection._leftover, b"")
        self.assertEqual(proto.connection.framer.buffered, 0)


class HandshakeTests(PeerTestsMixin, SynchronousTestCase):
    """
    The handshake, both ways.
    """

    def test_outgoingSendsHandshake(self) -> None:
        """
        An outgoing connection sends our handshake at once.
        """
        proto, transport = self.outgoing()
        self.assertEqual(transport.value(), ourHandshake())
        self.assertTrue(proto.outgoing)
        self.assertEqual(proto.address, ("127.0.0.1", 6881))
        self.assertEqual(self.owner.connected, [])

    def test_connectedAt(self) -> None:
        """
        C{connectedAt} is the clock time at which the peer's handshake was
        accepted (the choker favours new peers by it), C{None} before.
        """
        proto, transport = self.outgoing()
        self.assertIsNone(proto.connectedAt)
        self.clock.advance(7)
        proto.dataReceived(theirHandshake())
        self.assertEqual(proto.connectedAt, 7)

    def test_outgoingOneByteAtATime(self) -> None:
        """
        The peer's handshake, fed one byte at a time, is accepted on its
        last byte; then messages fed one byte at a time reach the owner.
        """
        proto, transport = self.outgoing()
        reserved = b"\x00\x00\x00\x00\x00\x10\x00\x05"
        data = theirHandshake(reserved=reserved)
        for i in range(len(data) - 1):
            proto.dataReceived(data[i : i + 1])
        self.assertEqual(self.owner.connected, [])
        proto.dataReceived(data[-1:])
        self.assertEqual(self.owner.connected, [proto])
        self.assertEqual(proto.peerId, THEIR_ID)
        self.assertEqual(proto.peerReserved, reserved)
        self.assertEqual(len(proto.peerPieces), self.pieceCount)
        self.assertEqual(transport.value(), ourHandshake())
        stream = frames(
            BitfieldMessage(b"\x80\x00\x10"),
            Have(1),
            Unchoke(),
            Interested(),
            Piece(0, 0, b"abcdef"),
            Port(6881),
        )
        for i in range(len(stream)):
            proto.dataReceived(stream[i : i + 1])
        self.assertEqual(
            self.owner.messages,
            [
                BitfieldMessage(b"\x80\x00\x10"),
                Have(1),
                Unchoke(),
                Interested(),
                Piece(0, 0, b"abcdef"),
                Port(6881),
            ],
        )
        self.assertEqual(list(proto.peerPieces), [0, 1, 19])
        self.assertFalse(proto.peerChoking)
        self.assertTrue(proto.peerInterested)
        self.assertEqual(proto.bytesDownloaded, 6)
        self.assertEqual(proto.downloadRate.total, 6)

    def test_outgoingOneChunk(self) -> None:
        """
        The handshake and many messages in one chunk are all handled.
        """
        proto, transport = self.outgoing()
        block = bytes(range(256)) * 64
        proto.dataReceived(
            theirHandshake()
            + frames(Have(3), Unchoke(), Piece(3, 16384, block), Choke(), KeepAlive())
        )
        self.assertEqual(
            self.owner.messages, [Have(3), Unchoke(), Piece(3, 16384, block), Choke()]
        )
        # A read-only view of the read: nothing can change it under us.
        self.assertEqual(bytes(self.owner.messages[2].block), block)
        self.assertTrue(memoryview(self.owner.messages[2].block).readonly)
        self.assertTrue(proto.peerChoking)
        self.assertEqual(proto.bytesDownloaded, len(block))

    def test_incomingRepliesAfterRouting(self) -> None:
        """
        An incoming connection sends nothing until the peer's whole
        handshake is routed; then it replies with ours.
        """
        proto, transport = self.incoming()
        self.assertFalse(proto.outgoing)
        data = theirHandshake()
        for i in range(len(data) - 1):
            proto.dataReceived(data[i : i + 1])
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.router.asked, [])
        proto.dataReceived(data[-1:] + frames(Interested()))
        self.assertEqual(self.router.asked, [INFO_HASH])
        self.assertEqual(transport.value(), ourHandshake())
        self.assertIs(proto.context, self.context)
        self.assertEqual(self.owner.connected, [proto])
        self.assertEqual(self.owner.messages, [Interested()])

    def test_incomingUnknownInfoHash(self) -> None:
        """
        An incoming handshake for a torrent we do not serve is dropped,
        without a reply.
        """
        proto, transport = self.incoming()
        proto.dataReceived(theirHandshake(infoHash=OTHER_HASH))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.owner.connected, [])
        self.assertDropped(proto, transport, owned=False)

    def test_outgoingWrongInfoHash(self) -> None:
        """
        An outgoing connection whose peer answers for another torrent is
        dropped, and the owner hears C{connectionFailed}.
        """
        proto, transport = self.outgoing()
        proto.dataReceived(theirHandshake(infoHash=OTHER_HASH))
        self.assertEqual(self.owner.connected, [])
        self.assertDropped(proto, transport, owned=False)
        self.assertEqual(len(self.owner.failed), 1)
        address, reason = self.owner.failed[0]
        self.assertEqual(address, ("127.0.0.1", 6881))
        self.assertIn("another info-hash", str(reason.value))

    def test_ownPeerId(self) -> None:
        """
        A handshake carrying our own peer id is a connection to ourselves:
        dropped, both ways.
        """
        proto, transport = self.outgoing()
        proto.dataReceived(theirHandshake(peerId=OUR_ID))
        self.assertDropped(proto, transport, owned=False)
        self.log.events.clear()
        proto, transport = self.incoming()
        proto.dataReceived(theirHandshake(peerId=OUR_ID))
        self.assertEqual(transport.value(), b"")
        self.assertDropped(proto, transport, owned=False)
        self.assertEqual(self.owner.connected, [])

    def test_garbagePrefix(self) -> None:
        """
        Bytes that cannot begin a handshake are refused at the first wrong
        byte.
        """
        proto, transport = self.incoming()
        proto.dataReceived(b"\x13BitTorrent")
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b" pro")
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"Tocol")
        self.assertDropped(proto, transport, owned=False)
        self.log.events.clear()
        proto, transport = self.incoming()
        proto.dataReceived(b"G")
        self.assertDropped(proto, transport, owned=False)

    def test_messagesBeforeHandshake(self) -> None:
        """
        Messages where the handshake should be are refused.
        """
        proto, transport = self.outgoing()
        proto.dataReceived(frames(Interested(), Have(1)))
        self.assertDropped(proto, transport, owned=False)

    def test_handshakeTimeout(self) -> None:
        """
        A peer that does not complete its handshake in time is dropped.
        """
        proto, transport = self.outgoing()
        proto.dataReceived(theirHandshake()[:30])
        self.clock.advance(HANDSHAKE_TIMEOUT - 1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertDropped(proto, transport, owned=False)
        self.assertEqual(len(self.owner.failed), 1)

    def test_handshakeTimerCancelled(self) -> None:
        """
        After the handshake, the handshake timer is gone.
        """
        proto, transport = self.connected()
        self.clock.advance(HANDSHAKE_TIMEOUT * 2)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_refusedByOwner(self) -> None:
        """
        When C{peerConnected} returns C{False}, the connection is closed
        (gracefully) and the owner hears nothing more.
        """
        self.owner.accept = False
        proto, transport = self.outgoing()
        proto.dataReceived(theirHandshake() + frames(Have(1)))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.assertIsNone(transport.producer)
        self.assertEqual(self.owner.messages, [])
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.owner.lost, [])
        self.assertEqual(self.owner.failed, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lostBeforeHandshake(self) -> None:
        """
        An outgoing connection closed before the handshake is reported as
        C{connectionFailed}; an incoming one is not reported at all.
        """
        proto, transport = self.outgoing()
        reason = Failure(ConnectionDone())
        proto.connectionLost(reason)
        self.assertEqual(self.owner.failed, [(("127.0.0.1", 6881), reason)])
        self.assertEqual(self.owner.lost, [])
        proto, transport = self.incoming()
        proto.connectionLost(reason)
        self.assertEqual(len(self.owner.failed), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lostAfterHandshake(self) -> None:
        """
        A connection closed by the peer is reported once with the
        transport's reason.
        """
        proto, transport = self.connected()
        reason = Failure(ConnectionDone())
        proto.connectionLost(reason)
        proto.connectionLost(reason)
        self.assertEqual(self.owner.lost, [reason])
        self.assertEqual(self.owner.failed, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_ownerWithoutConnectionFailed(self) -> None:
        """
        C{connectionFailed} is optional.
        """

        @implementer(IPeerOwner)
        class Owner:
            def peerConnected(self, peer):
                return True

            def peerMessage(self, peer, message):
                pass

            def peerBlocks(self, peer, blocks):
                pass

            def peerLost(self, peer, reason):
                pass

        self.context = PeerContext(INFO_HASH, OUR_ID, 5, Owner())
        proto, transport = self.outgoing()
        proto.connectionLost(Failure(ConnectionDone()))
        factory = PeerClientFactory(self.context, self.clock, address=("h", 1))
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))


class FramingTests(PeerTestsMixin, SynchronousTestCase):
    """
    Messages after the handshake, and hostile input.
    """

    def test_giantLength(self) -> None:
        """
        A length prefix of 2**32-1 is refused as soon as it is read, before
        anything of the message is buffered.
        """
        proto, transport = self.connected()
        proto.dataReceived(b"\xff\xff")
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"\xff\xff" + b"x" * 1000)
        self.assertEqual(proto.connection.framer.buffered, 0)
        self.assertEqual(proto.connection._leftover, b"")
        self.assertDropped(proto, transport)

    def test_lengthLimit(self) -> None:
        """
        The longest message allowed is a piece with a 16 KiB block, the
        size we request (or a bitfield of the torrent, if longer); one byte
        more is refused on the length prefix.
        """
        self.assertEqual(maxMessageLength(20), 9 + BLOCK_SIZE)
        self.assertEqual(maxMessageLength(8 * 200000), 1 + 200000)
        proto, transport = self.connected()
        block = b"b" * BLOCK_SIZE
        proto.dataReceived(frames(Piece(1, 0, block)))
        self.assertEqual(self.owner.messages, [Piece(1, 0, block)])
        proto.dataReceived((9 + BLOCK_SIZE + 1).to_bytes(4, "big") + b"\x07")
        self.assertDropped(proto, transport)

    def test_dribbledMessage(self) -> None:
        """
        A message of the longest size sent a byte at a time is not kept as
        one object per byte (some 40 bytes of memory each): after a few
        pieces the rest gathers in one buffer, and the message comes out
        whole.
        """
        proto, transport = self.connected()
        block = bytes(range(256)) * (BLOCK_SIZE // 256)
        data = frames(Piece(3, 0, block), Have(5))
        longest = 0
        for i in range(len(data)):
            proto.dataReceived(data[i : i + 1])
            longest = max(longest, len(proto.connection.framer._pending))
        self.assertLessEqual(longest, 65)
        self.assertEqual(self.owner.messages, [Piece(3, 0, block), Have(5)])
        self.assertEqual(proto.connection.framer.buffered, 0)
        self.assertFalse(transport.disconnecting)

    def test_bitfieldWrongLength(self) -> None:
        """
        A bitfield of the wrong length is refused.
        """
        proto, transport = self.connected()
        proto.dataReceived(frames(BitfieldMessage(b"\xff\xff")))
        self.assertDropped(proto, transport)
        self.assertEqual(self.owner.messages, [])

    def test_bitfieldSpareBits(self) -> None:
        """
        A bitfield with a bit set past the last piece is refused.
        """
        proto, transport = self.connected()
        proto.dataReceived(frames(BitfieldMessage(b"\x00\x00\x08")))
        self.assertDropped(proto, transport)
        self.assertEqual(self.owner.messages, [])

    def test_haveOutOfRange(self) -> None:
        """
        A have for a piece past the end is refused.
        """
        proto, transport = self.connected()
        proto.dataReceived(frames(Have(self.pieceCount - 1), Have(self.pieceCount)))
        self.assertEqual(self.owner.messages, [Have(self.pieceCount - 1)])
        self.assertDropped(proto, transport)

    def test_blocksOfOneReadInOneCall(self) -> None:
        """
        The blocks between two other messages of a read reach the owner in
        one C{peerBlocks} call, in their place among the other messages.
        """
        proto, transport = self.connected()
        a, b, c = Piece(1, 0, b"a"), Piece(1, 1, b"b"), Piece(2, 0, b"c")
        proto.dataReceived(frames(Have(3), a, b, Have(4), c))
        self.assertEqual(self.owner.messages, [Have(3), a, b, Have(4), c])
        self.assertEqual(self.owner.calls, [("blocks", [a, b]), ("blocks", [c])])

    def test_blocksBeforeAViolation(self) -> None:
        """
        The blocks before a broken message are delivered; the peer is then
        dropped.
        """
        proto, transport = self.connected()
        a = Piece(1, 0, b"a")
        proto.dataReceived(frames(a, Piece(self.pieceCount, 0, b"x")))
        self.assertEqual(self.owner.calls, [("blocks", [a])])
        self.assertDropped(proto, transport)

    def test_ownerDropsInTheMiddle(self) -> None:
        """
        An owner that drops the peer on a message hears nothing more of
        the read: neither the blocks after it nor other messages.
        """
        proto, transport = self.connected()
        self.owner.onMessage = lambda peer, message: (
            peer.drop("no") if message == Have(3) else None
        )
        proto.dataReceived(frames(Have(3), Piece(1, 0, b"a"), Have(4)))
        self.assertEqual(self.owner.messages, [Have(3)])
        self.assertEqual(self.owner.calls, [])

    def test_pieceOutOfRange(self) -> None:
        """
        A block of a piece past the end is refused.
        """
        proto, transport = self.connected()
        proto.dataReceived(frames(Piece(self.pieceCount, 0, b"x")))
        self.assertDropped(proto, transport)
        self.assertEqual(proto.bytesDownloaded, 0)

    def test_onlyPlausibleBlocksCounted(self) -> None:
        """
        C{bytesDownloaded} and C{downloadRate} count blocks of 1 to 16 KiB;
        an empty block, or one larger than we request (possible when the
        torrent's bitfield makes long messages legal), reaches the owner
        (who judges every block) but is not counted.
        """
        pieceCount = 8 * (BLOCK_SIZE + 64)
        self.context = PeerContext(INFO_HASH, OUR_ID, pieceCount, self.owner)
        self.assertGreater(maxMessageLength(pieceCount), 9 + BLOCK_SIZE + 1)
        proto, transport = self.connected()
        big = b"j" * (BLOCK_SIZE + 1)
        proto.dataReceived(
            frames(
                Piece(0, 0, b""),
                Piece(1, 0, big),
                Piece(2, 0, b"k" * BLOCK_SIZE),
                Piece(3, 0, b"abc"),
            )
        )
        self.assertEqual(
            self.owner.messages,
            [
                Piece(0, 0, b""),
                Piece(1, 0, big),
                Piece(2, 0, b"k" * BLOCK_SIZE),
                Piece(3, 0, b"abc"),
            ],
        )
        self.assertEqual(proto.bytesDownloaded, BLOCK_SIZE + 3)
        self.assertEqual(proto.downloadRate.total, BLOCK_SIZE + 3)
        self.assertFalse(transport.disconnecting)

    def test_requestLimits(self) -> None:
        """
        Requests and cancels for a block of 0 bytes, more than 128 KiB, or
        a piece past the end are refused; up to 128 KiB is fine.
        """
        proto, transport = self.connected()
        proto.dataReceived(frames(Request(0, 0, BLOCK_MAX), Cancel(0, 0, 1)))
        self.assertEqual(
            self.owner.messages, [Request(0, 0, BLOCK_MAX), Cancel(0, 0, 1)]
        )
        for bad in (
            Request(0, 0, 0),
            Request(0, 0, BLOCK_MAX + 1),
            Request(self.pieceCount, 0, 16384),
            Cancel(0, 0, 0),
            Cancel(0, 0, 2**32 - 1),
        ):
            self.owner.lost.clear()
            self.log.events.clear()
            proto, transport = self.connected()
            proto.dataReceived(frames(bad))
            self.assertDropped(proto, transport)

    def test_unknownMessageId(self) -> None:
        """
        An unknown message id is refused, as is a known id of the wrong
        length.
        """
        proto, transport = self.connected()
        proto.dataReceived(b"\x00\x00\x00\x01\x14")
        self.assertDropped(proto, transport)
        self.owner.lost.clear()
        self.log.events.clear()
        proto, transport = self.connected()
        proto.dataReceived(b"\x00\x00\x00\x02\x01\x00")
        self.assertDropped(proto, transport)

    def test_lateBitfield(self) -> None:
        """
        A bitfield after other messages is merged and reported as a have
        for each new piece.
        """
        proto, transport = self.connected()
        proto.dataReceived(frames(Have(0), Unchoke()))
        proto.dataReceived(frames(BitfieldMessage(b"\xc0\x00\x10")))
        self.assertEqual(self.owner.messages, [Have(0), Unchoke(), Have(1), Have(19)])
        self.assertEqual(list(proto.peerPieces), [0, 1, 19])
        proto.dataReceived(frames(BitfieldMessage(b"\x00\x00\x00")))
        self.assertEqual(list(proto.peerPieces), [0, 1, 19])
        self.assertEqual(len(self.owner.messages), 4)
        self.assertFalse(transport.disconnecting)

    def test_repeatedLateBitfields(self) -> None:
        """
        Late bitfields sent over and over cost no loop over the pieces they
        repeat: a peer of a torrent of a million pieces cannot make each
        128 KB message cost a second of CPU.
        """
        import time

        context = PeerContext(INFO_HASH, OUR_ID, 2**20, self.owner)
        proto = PeerClientFactory(context, self.clock).buildProtocol(PEER_ADDRESS)
        transport = SequenceTransport(peerAddress=PEER_ADDRESS)
        proto.makeConnection(transport)
        proto.dataReceived(theirHandshake())
        proto.dataReceived(frames(Have(7)))
        full = frames(BitfieldMessage(b"\xff" * (2**17)))
        proto.dataReceived(full)
        self.assertEqual(len(self.owner.messages), 2**20)
        start = time.process_time()
        for _ in range(40):
            proto.dataReceived(full)
        self.assertLess(time.process_time() - start, 1.0)
        self.assertEqual(len(self.owner.messages), 2**20)
        self.assertTrue(proto.peerPieces.complete)
        self.assertFalse(transport.disconnecting)

    def test_duplicateHave(self) -> None:
        """
        A have for a piece the peer already announced is not reported again.
        """
        proto, transport = self.connected()
        proto.dataReceived(frames(BitfieldMessage(b"\x80\x00\x00"), Have(0), Have(2)))
        proto.dataReceived(frames(Have(2)))
        self.assertEqual(
            self.owner.messages, [BitfieldMessage(b"\x80\x00\x00"), Have(2)]
        )

    def test_stateFlags(self) -> None:
        """
        Choke, unchoke, interested and not-interested update the flags
        before the owner hears of them: the owner sees the flags as the
        bytes read so far leave them.
        """
        proto, transport = self.connected()
        seen = []
        self.owner.onMessage = lambda p, m: seen.append(
            (p.peerChoking, p.peerInterested)
        )
        self.assertTrue(proto.peerChoking)
        self.assertFalse(proto.peerInterested)
        for message in (Unchoke(), Interested(), NotInterested(), Choke()):
            proto.dataReceived(frames(message))
        self.assertEqual(
            seen, [(False, False), (False, True), (False, False), (True, False)]
        )
        proto.dataReceived(frames(Unchoke(), Interested()))
        self.assertEqual(seen[-2:], [(False, True), (False, True)])

    def test_keepAlives(self) -> None:
        """
        Keep-alives, even one every few seconds for hours and a burst now
        and then, are harmless: nothing is reported, nothing is kept, and
        they count as activity.
        """
        proto, transport = self.connected()
        for _ in range(3 * 360):
            self.clock.advance(10)
            proto.dataReceived(KEEP_ALIVE_BYTES)
        for _ in range(5):
            self.clock.advance(IDLE_TIMEOUT - 1)
            proto.dataReceived(KEEP_ALIVE_BYTES * (KEEPALIVE_BURST // 2) + b"\x00\x00")
            self.assertLessEqual(proto.connection.framer.buffered, 3)
            proto.dataReceived(b"\x00\x00")
        self.clock.advance(IDLE_TIMEOUT - 1)
        for byte in KEEP_ALIVE_BYTES * (KEEPALIVE_BURST // 2):
            proto.dataReceived(bytes([byte]))
        self.assertEqual(proto.connection._leftover, b"")
        self.assertEqual(proto.connection.framer.buffered, 0)
        self.assertEqual(self.owner.messages, [])
        self.assertFalse(transport.disconnecting)

    def test_keepAliveFlood(self) -> None:
        """
        A flood of keep-alives (more than L{KEEPALIVE_BURST} at once) is a
        peer wasting our CPU four bytes at a time: it is dropped, and the
        rest of the flood is not even looked at.
        """
        proto, transport = self.connected()
        proto.dataReceived(KEEP_ALIVE_BYTES * KEEPALIVE_BURST)
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(KEEP_ALIVE_BYTES * 20000 + frames(Have(1)))
        self.assertEqual(self.owner.messages, [])
        self.assertIn("keep-alive", str(self.log.drops()))
        self.assertDropped(proto, transport)

    def test_keepAliveFloodTrickled(self) -> None:
        """
        Keep-alives sent faster than one a second on average are a flood
        too, however they are cut into chunks.
        """
        proto, transport = self.connected()
        for _ in range(3 * KEEPALIVE_BURST):
            self.clock.advance(0.5)
            for byte in KEEP_ALIVE_BYTES:
                proto.dataReceived(bytes([byte]))
            if transport.disconnecting:
                break
        self.assertDropped(proto, transport)

    def test_ownerDropsDuringMessage(self) -> None:
        """
        When the owner drops the peer while handling a message, the rest of
        the chunk is ignored and C{peerLost} comes once, with the reason.
        """
        proto, transport = self.connected()
        self.owner.onMessage = lambda p, m: p.drop("enough")
        proto.dataReceived(frames(Have(1), Have(2), Have(3)))
        self.assertEqual(self.owner.messages, [Have(1)])
        self.assertTrue(transport.disconnected)
        proto.connectionLost(Failure(ConnectionDone()))
        proto.drop("again")
        self.assertEqual(len(self.owner.lost), 1)
        self.assertEqual(str(self.owner.lost[0].value), "enough")
        self.assertEqual(self.log.failures(), [])

    def test_sameEventsAnyChunking(self) -> None:
        """
        A stream cut at every offset gives the same messages.
        """
        stream = theirHandshake() + frames(
            BitfieldMessage(b"\xff\xff\xf0"),
            Unchoke(),
            Piece(1, 0, b"p" * 16384),
            KeepAlive(),
            Have(5),
            Piece(2, 16384, b"q" * 3),
        )
        expected = None
        for cut in list(range(0, 200)) + list(range(len(stream) - 100, len(stream))):
            self.owner = RecordingOwner()
            self.context = PeerContext(INFO_HASH, OUR_ID, self.pieceCount, self.owner)
            proto, transport = self.outgoing()
            proto.dataReceived(stream[:cut])
            proto.dataReceived(stream[cut:])
            if expected is None:
                expected = self.owner.messages
                self.assertEqual(len(expected), 4)
            self.assertEqual(self.owner.messages, expected)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200), st.lists(st.integers(1, 50), max_size=20))
    def test_randomStream(self, data: bytes, cuts: List[int]) -> None:
        """
        Any bytes after the handshake, in any chunks, either decode or drop
        the peer; never an exception, never a traceback, and C{peerLost}
        comes once.
        """
        self.setUp()
        proto, transport = self.connected()
        offset = 0
        for size in cuts + [len(data)]:
            proto.dataReceived(data[offset : offset + size])
            offset += size
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(self.owner.lost), 1)
        self.assertEqual(self.log.failures(), [])
        self.assertLessEqual(len(self.log.drops()), 1)


class TimerTests(PeerTestsMixin, SynchronousTestCase):
    """
    Keep-alives and the idle timeout.
    """

    def test_keepAlive(self) -> None:
        """
        After two minutes of our silence we send a keep-alive, and again two
        minutes later; anything we send postpones it.
        """
        proto, transport = self.connected()
        proto.dataReceived(KEEP_ALIVE_BYTES)
        self.clock.advance(KEEPALIVE_INTERVAL - 1)
        self.assertEqual(transport.value(), b"")
        proto.dataReceived(KEEP_ALIVE_BYTES)
        self.clock.advance(1)
        self.assertEqual(transport.value(), KEEP_ALIVE_BYTES)
        transport.clear()
        self.clock.advance(60)
        proto.dataReceived(KEEP_ALIVE_BYTES)
        proto.sendHave(3)
        self.assertEqual(transport.value(), encodeMessage(Have(3)))
        transport.clear()
        self.clock.advance(KEEPALIVE_INTERVAL - 1)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual(transport.value(), KEEP_ALIVE_BYTES)
        self.assertFalse(transport.disconnecting)

    def test_idleDrop(self) -> None:
        """
        A peer silent for three minutes is dropped; anything it sends,
        keep-alives included, restarts the count.
        """
        proto, transport = self.connected()
        self.clock.advance(100)
        proto.dataReceived(KEEP_ALIVE_BYTES)
        self.clock.advance(IDLE_TIMEOUT - 1)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), KEEP_ALIVE_BYTES)
        self.clock.advance(1)
        self.assertDropped(proto, transport)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idleDropPartialMessage(self) -> None:
        """
        Half a message is activity, but then silence still drops the peer.
        """
        proto, transport = self.connected()
        proto.dataReceived(b"\x00\x00\x00\x05\x04")
        self.clock.advance(IDLE_TIMEOUT)
        self.assertDropped(proto, transport)


class SendTests(PeerTestsMixin, SynchronousTestCase):
    """
    What we send.
    """

    def test_exactBytes(self) -> None:
        """
        Each send method writes its message.
        """
        proto, transport = self.connected()
        self.assertTrue(proto.sendBitfield(Bitfield.fromBytes(b"\x80\x00\x10", 20)))
        proto.sendHave(7)
        proto.sendRequest(1, 16384, 16384)
        proto.sendCancel(1, 16384, 16384)
        proto.unchoke()
        proto.setInterested(True)
        proto.setInterested(False)
        proto.choke()
        proto.sendMessage(Port(6881))
        proto.sendMessage(KeepAlive())
        self.assertEqual(
            transport.value(),
            frames(
                BitfieldMessage(b"\x80\x00\x10"),
                Have(7),
                Request(1, 16384, 16384),
                Cancel(1, 16384, 16384),
                Unchoke(),
                Interested(),
                NotInterested(),
                Choke(),
                Port(6881),
                KeepAlive(),
            ),
        )

    def test_sendRequestsOneWrite(self) -> None:
        """
        C{sendRequests} writes every request, in order, in one write.
        """
        proto, transport = self.connected()
        blocks = [(1, 0, 16384), (1, 16384, 16384), (19, 2**32 - 1, BLOCK_MAX)]
        proto.sendRequests(blocks)
        self.assertEqual(
            transport.writes,
            [
                b"\x00\x00\x00\x0d\x06\x00\x00\x00\x01\x00\x00\x00\x00"
                b"\x00\x00\x40\x00"
                b"\x00\x00\x00\x0d\x06\x00\x00\x00\x01\x00\x00\x40\x00"
                b"\x00\x00\x40\x00"
                b"\x00\x00\x00\x0d\x06\x00\x00\x00\x13\xff\xff\xff\xff"
                b"\x00\x02\x00\x00"
            ],
        )
        self.assertEqual(transport.value(), frames(*(Request(*b) for b in blocks)))

    def test_sendRequestsCountsAsSent(self) -> None:
        """
        Requests sent with C{sendRequests} are messages: no bitfield may
        follow them, and they put off the keep-alive.
        """
        proto, transport = self.connected()
        self.clock.advance(KEEPALIVE_INTERVAL - 1)
        proto.dataReceived(KEEP_ALIVE_BYTES)
        proto.sendRequests([(0, 0, 16384)])
        self.assertFalse(proto.sendBitfield(Bitfield(20)))
        transport.clear()
        self.clock.advance(KEEPALIVE_INTERVAL - 1)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual(transport.value(), KEEP_ALIVE_BYTES)

    def test_sendRequestsNothing(self) -> None:
        """
        An empty list writes nothing; neither does a connection before its
        handshake, nor a closed one.
        """
        proto, transport = self.connected()
        proto.sendRequests([])
        self.assertEqual(transport.writes, [])
        proto.drop("bye")
        proto.sendRequests([(0, 0, 16384)])
        self.assertEqual(transport.writes, [])
        early, earlyTransport = self.outgoing()
        earlyTransport.clear()
        early.sendRequests([(0, 0, 16384)])
        self.assertEqual(earlyTransport.value(), b"")

    @given(
        st.lists(
            st.tuples(
                st.integers(0, 2**32 - 1),
                st.integers(0, 2**32 - 1),
                st.integers(0, 2**32 - 1),
            ),
            max_size=300,
        )
    )
    @settings(max_examples=50, deadline=None)
    def test_sendRequestsSameAsSendRequest(self, blocks) -> None:
        """
        C{sendRequests} writes exactly what one C{sendRequest} per block
        writes.
        """
        self.setUp()
        one, oneTransport = self.connected()
        many, manyTransport = self.connected()
        for block in blocks:
            one.sendRequest(*block)
        many.sendRequests(blocks)
        self.assertEqual(manyTransport.value(), oneTransport.value())
        self.assertEqual(len(manyTransport.writes), 1 if blocks else 0)

    def test_flagsIdempotent(self) -> None:
        """
        C{choke}, C{unchoke} and C{setInterested} send only changes, and
        keep the flags.
        """
        proto, transport = self.connected()
        self.assertTrue(proto.amChoking)
        self.assertFalse(proto.amInterested)
        proto.choke()
        proto.setInterested(False)
        self.assertEqual(transport.value(), b"")
        proto.unchoke()
        proto.unchoke()
        proto.setInterested(True)
        proto.setInterested(True)
        self.assertFalse(proto.amChoking)
        self.assertTrue(proto.amInterested)
        self.assertEqual(transport.value(), frames(Unchoke(), Interested()))
        proto.sendMessage(Choke())
        self.assertTrue(proto.amChoking)

    def test_bitfieldOnlyFirst(self) -> None:
        """
        A bitfield may only be the first message we send; later ones are
        refused, and logged.
        """
        proto, transport = self.connected()
        proto.sendHave(1)
        self.assertFalse(proto.sendBitfield(Bitfield(20)))
        proto.sendMessage(BitfieldMessage(b"\x00\x00\x00"))
        self.assertEqual(transport.value(), frames(Have(1)))
        self.assertEqual(self.log.failures(), [])

    def test_bitfieldBytesAndLength(self) -> None:
        """
        C{sendBitfield} takes the wire form too, and refuses a bitfield of
        the wrong size.
        """
        proto, transport = self.connected()
        self.assertRaises(ValueError, proto.sendBitfield, Bitfield(21))
        self.assertRaises(ValueError, proto.sendBitfield, b"\x00\x00")
        self.assertRaises(ValueError, proto.sendBitfield, b"\x00\x00\x01")
        self.assertTrue(proto.sendBitfield(b"\x00\x00\x10"))
        self.assertEqual(transport.value(), frames(BitfieldMessage(b"\x00\x00\x10")))

    def test_sendPieceWithoutCopy(self) -> None:
        """
        C{sendPiece} writes the header and the very block object as a
        sequence, and counts the upload.
        """
        proto, transport = self.connected()
        block = bytes(range(256)) * 64
        proto.sendPiece(2, 16384, block)
        proto.sendMessage(Piece(3, 0, b"xyz"))
        self.assertEqual(len(transport.sequences), 2)
        self.assertIs(transport.sequences[0][1], block)
        self.assertEqual(
            transport.value(), frames(Piece(2, 16384, block), Piece(3, 0, b"xyz"))
        )
        self.assertEqual(proto.bytesUploaded, len(block) + 3)
        self.assertEqual(proto.uploadRate.total, len(block) + 3)

    def test_sendPieceFromMemoryview(self) -> None:
        """
        A block given as a C{memoryview} reaches the transport as C{bytes}:
        Twisted's TCP transports raise C{TypeError("Data must be bytes")}
        for anything else in C{writeSequence}.
        """
        proto, transport = self.connected()
        piece = bytes(range(256)) * 128
        proto.sendPiece(1, 16384, memoryview(piece)[16384:32768])
        self.assertEqual(
            [type(item) for item in transport.sequences[0]], [bytes, bytes]
        )
        self.assertEqual(transport.value(), frames(Piece(1, 16384, piece[16384:32768])))

    def test_nothingAfterClose(self) -> None:
        """
        Sending on a dropped connection does nothing.
        """
        proto, transport = self.connected()
        proto.drop("bye")
        transport.clear()
        proto.sendHave(1)
        proto.sendPiece(0, 0, b"x")
        proto.unchoke()
        proto.setInterested(True)
        self.assertFalse(proto.sendBitfield(Bitfield(20)))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(proto.bytesUploaded, 0)

    def test_producer(self) -> None:
        """
        The protocol registers as the transport's streaming producer and
        tells the owner when the transport drains.
        """
        proto, transport = self.connected()
        self.assertTrue(verifyObject(IPushProducer, proto))
        self.assertIs(transport.producer, proto)
        self.assertTrue(transport.streaming)
        self.assertFalse(proto.writePaused)
        proto.pauseProducing()
        self.assertTrue(proto.writePaused)
        proto.resumeProducing()
        self.assertFalse(proto.writePaused)
        self.assertEqual(self.owner.writable, [proto])
        proto.stopProducing()


class DebugTests(PeerTestsMixin, SynchronousTestCase):
    """
    The C{debug} flag.
    """

    def messageEvents(self):
        return [
            e
            for e in self.log.events
            if e.get("log_namespace") == "btorrent.peer.protocol"
        ]

    def test_debugLogsEveryMessage(self) -> None:
        """
        With C{debug}, every message in and out is logged.
        """
        proto, transport = self.connected(debug=True)
        self.assertTrue(proto.debug)
        proto.dataReceived(frames(Have(1), KeepAlive()))
        proto.sendHave(2)
        proto.sendPiece(0, 0, b"x")
        self.assertEqual(
            [e["log_format"] for e in self.messageEvents()],
            [
                "{peer} -> {wireMessage}",
                "{peer} -> KeepAlive()",
                "{peer} <- {wireMessage}",
                "{peer} <- Piece({index}, {begin}, <{length} bytes>)",
            ],
        )

    def test_debugPieceLogsLengthNotBlock(self) -> None:
        """
        A piece received is logged with its block's length, never with the
        block: a download in debug mode would log every byte it got.
        """
        proto, transport = self.connected(debug=True)
        block = b"SECRET-BLOCK-BYTES" * 910
        self.log.events.clear()
        proto.dataReceived(frames(Piece(3, 16384, block)))
        self.assertEqual(self.owner.messages, [Piece(3, 16384, block)])
        [event] = self.messageEvents()
        self.assertEqual(
            event["log_format"], "{peer} -> Piece({index}, {begin}, <{length} bytes>)"
        )
        self.assertEqual(
            (event["index"], event["begin"], event["length"]), (3, 16384, len(block))
        )
        for key, value in event.items():
            self.assertFalse(
                isinstance(value, (Piece, bytes, bytearray, memoryview)), key
            )
        self.assertNotIn(b"SECRET".hex(), repr(event))
        self.assertNotIn("SECRET", repr(event))

    def test_debugSendRequests(self) -> None:
        """
        With C{debug}, C{sendRequests} logs each request.
        """
        proto, transport = self.connected(debug=True)
        self.log.events.clear()
        proto.sendRequests([(1, 0, 16384), (2, 16384, 100)])
        events = self.messageEvents()
        self.assertEqual(
            [(e["log_format"], e["wireMessage"]) for e in events],
            [
                ("{peer} <- {wireMessage}", Request(1, 0, 16384)),
                ("{peer} <- {wireMessage}", Request(2, 16384, 100)),
            ],
        )

    def test_quietByDefault(self) -> None:
        """
        Without C{debug}, messages are not logged.
        """
        proto, transport = self.connected()
        self.log.events.clear()
        proto.dataReceived(frames(Have(1), KeepAlive(), Piece(0, 0, b"y")))
        proto.sendHave(2)
        proto.sendPiece(0, 0, b"x")
        proto.sendRequests([(1, 0, 16384)])
        self.assertEqual(self.log.events, [])


class FactoryTests(PeerTestsMixin, SynchronousTestCase):
    """
    The factories, and two protocols talking to each other.
    """

    def test_clientConnectionFailed(self) -> None:
        """
        A failed outgoing connection is reported to the owner with the
        address it was asked for, or the connector's destination.
        """

        class Connector:
            def getDestination(self):
                return IPv4Address("TCP", "127.0.0.1", 9999)

        reason = Failure(ConnectionRefusedError())
        PeerClientFactory(self.context, self.clock).clientConnectionFailed(
            Connector(), reason
        )
        PeerClientFactory(
            self.context, self.clock, address=("localhost", 1)
        ).clientConnectionFailed(Connector(), reason)
        self.assertEqual(
            self.owner.failed,
            [(("127.0.0.1", 9999), reason), (("localhost", 1), reason)],
        )

    def test_factoryAttributes(self) -> None:
        """
        The factories pass their clock and debug flag on.
        """
        proto = PeerFactory(Router(self.context), self.clock, debug=True).buildProtocol(
            PEER_ADDRESS
        )
        self.assertTrue(proto.debug)
        self.assertIs(proto.clock, self.clock)
        self.assertEqual(proto.address, ("127.0.0.1", 6881))
        proto = PeerClientFactory(
            self.context, self.clock, address=("h", 2)
        ).buildProtocol(PEER_ADDRESS)
        self.assertFalse(proto.debug)
        self.assertEqual(proto.address, ("h", 2))
        self.assertEqual(repr(proto), "<PeerProtocol h:2 out>")

    def test_interfaces(self) -> None:
        """
        The test doubles provide the interfaces they stand for.
        """
        verifyObject(IPeerOwner, self.owner)
        verifyObject(IPeerRouter, Router(self.context))

    def test_twoPeers(self) -> None:
        """
        A client and a server in memory exchange handshakes, bitfield,
        interest, unchoke, a request and its piece.
        """
        seederOwner = RecordingOwner()
        leecherOwner = RecordingOwner()
        seederId = b"-BT0001-seeder......."[:20]
        seederContext = PeerContext(INFO_HASH, seederId, 3, seederOwner)
        leecherContext = PeerContext(INFO_HASH, OUR_ID, 3, leecherOwner)
        block = b"z" * 16384

        def seederMessage(peer, message):
            if isinstance(message, Interested):
                peer.unchoke()
            elif isinstance(message, Request):
                peer.sendPiece(message.index, message.begin, block[: message.length])

        def leecherMessage(peer, message):
            if isinstance(message, BitfieldMessage):
                peer.setInterested(True)
            elif isinstance(message, Unchoke):
                peer.sendRequest(2, 0, 16384)

        seederOwner.onMessage = seederMessage
        leecherOwner.onMessage = leecherMessage
        seederConnected = seederOwner.peerConnected

        def sendBitfield(peer):
            peer.sendBitfield(Bitfield.fromBytes(b"\xe0", 3))
            return seederConnected(peer)

        seederOwner.peerConnected = sendBitfield

        server = PeerFactory(Router(seederContext), self.clock)
        client = PeerClientFactory(leecherContext, self.clock)
        clientProto, serverProto, pump = iosim.connectedServerAndClient(
            lambda: server.buildProtocol(PEER_ADDRESS),
            lambda: client.buildProtocol(PEER_ADDRESS),
        )
        pump.flush()
        self.assertEqual(serverProto.peerId, OUR_ID)
        self.assertEqual(clientProto.peerId, seederId)
        self.assertEqual(
            leecherOwner.messages,
            [BitfieldMessage(b"\xe0"), Unchoke(), Piece(2, 0, block)],
        )
        self.assertEqual(seederOwner.messages, [Interested(), Request(2, 0, 16384)])
        self.assertTrue(clientProto.peerPieces.complete)
        self.assertFalse(serverProto.amChoking)
        self.assertTrue(serverProto.peerInterested)
        self.assertEqual(serverProto.bytesUploaded, 16384)
        self.assertEqual(clientProto.bytesDownloaded, 16384)
        clientProto.drop("done")
        pump.flush()
        self.assertEqual(len(leecherOwner.lost), 1)
        self.assertEqual(len(seederOwner.lost), 1)
        self.assertEqual(self.log.failures(), [])
