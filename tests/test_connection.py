"""
Tests for L{btorrent.peer.connection}: the peer connection fed bytes only,
no transport and no reactor.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode, wire
from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import (
    AllowedFast,
    BitfieldMessage,
    Extended,
    Handshake,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    Piece,
    RejectRequest,
    Request,
    SuggestPiece,
    Unchoke,
    encodeHandshake,
    encodeMessage,
)
from btorrent.peer.connection import (
    HANDSHAKE_TIMEOUT,
    IDLE_TIMEOUT,
    KEEPALIVE_INTERVAL,
    ExtensionHandshake,
    ExtensionMessage,
    Features,
    HandshakeReceived,
    PeerConnection,
    Violation,
)

INFO_HASH = b"i" * 20
OUR_ID = b"-BT0100-ourpeerid123"
THEIR_ID = b"-XX0000-theirpeerid1"
FAST = Features(fast=True)
EXTENDED = Features(extensions=(("ut_dummy", 3, 100), ("ut_other", 4, 10)))


def handshake(reserved=bytes(8), infoHash=INFO_HASH, peerId=THEIR_ID) -> bytes:
    return encodeHandshake(Handshake(infoHash, peerId, reserved))


def frames(*messages) -> bytes:
    return b"".join(encodeMessage(m) for m in messages)


class ConnectionTestsMixin:
    def setUp(self) -> None:
        self.clock = Clock()

    def outgoing(self, features=Features(), pieceCount=20, reserved=bytes(8)):
        """
        An outgoing connection past a handshake with C{reserved}, its own
        handshake taken from the queue.
        """
        c = PeerConnection(
            self.clock, OUR_ID, features, infoHash=INFO_HASH, pieceCount=pieceCount
        )
        c.start()
        self.assertEqual(
            b"".join(c.dataToSend()),
            encodeHandshake(Handshake(INFO_HASH, OUR_ID, features.reserved)),
        )
        events = c.receiveData(handshake(reserved))
        self.assertEqual(events, [HandshakeReceived(INFO_HASH, THEIR_ID, reserved)])
        c.accept()
        self.assertEqual(c.resume(), [])
        self.assertTrue(c.open)
        return c


class HandshakeTests(ConnectionTestsMixin, SynchronousTestCase):
    def test_nothingParsedBeforeAccept(self) -> None:
        """
        What follows the handshake in the same bytes waits for C{accept} and
        comes out of C{resume}.
        """
        c = PeerConnection(self.clock, OUR_ID, infoHash=INFO_HASH, pieceCount=8)
        c.start()
        c.dataToSend()
        events = c.receiveData(handshake() + frames(Have(1), Unchoke()))
        self.assertEqual(events, [HandshakeReceived(INFO_HASH, THEIR_ID, bytes(8))])
        self.assertTrue(c.peerChoking)
        self.assertEqual(c.resume(), [])
        c.accept()
        self.assertEqual(c.resume(), [Have(1), Unchoke()])
        self.assertFalse(c.peerChoking)

    def test_incomingAcceptQueuesHandshake(self) -> None:
        """
        An incoming connection learns its torrent from C{accept}, which
        queues our handshake with our features' reserved bits.
        """
        c = PeerConnection(self.clock, OUR_ID, FAST)
        c.start()
        self.assertEqual(c.dataToSend(), [])
        events = c.receiveData(handshake(wire.reservedBytes(fast=True)))
        self.assertEqual(len(events), 1)
        c.accept(INFO_HASH, 20)
        self.assertEqual(
            b"".join(c.dataToSend()),
            encodeHandshake(
                Handshake(INFO_HASH, OUR_ID, wire.reservedBytes(fast=True))
            ),
        )
        self.assertTrue(c.fast)
        self.assertEqual(len(c.peerPieces), 20)

    def test_selfAndWrongHash(self) -> None:
        """
        Our own peer id, another info-hash, or not a BitTorrent handshake:
        a violation, and nothing more.
        """
        cases = [
            (handshake(peerId=OUR_ID), "connection to ourselves"),
            (handshake(infoHash=b"x" * 20), "handshake for another info-hash"),
            (b"GET / HTTP/1.1\r\n", "not a BitTorrent handshake"),
        ]
        for data, reason in cases:
            c = PeerConnection(self.clock, OUR_ID, infoHash=INFO_HASH, pieceCount=8)
            c.start()
            self.assertEqual(c.receiveData(data), [Violation(reason)])
            self.assertTrue(c.closed)
            self.assertEqual(c.receiveData(frames(Have(1))), [])

    def test_handshakeDeadline(self) -> None:
        """
        A handshake that has not come after L{HANDSHAKE_TIMEOUT} ends the
        connection.
        """
        c = PeerConnection(self.clock, OUR_ID, infoHash=INFO_HASH, pieceCount=8)
        c.start()
        c.receiveData(handshake()[:30])
        self.assertEqual(c.tick(HANDSHAKE_TIMEOUT - 0.5), [])
        self.assertEqual(
            c.tick(HANDSHAKE_TIMEOUT), [Violation("no handshake within 20 s")]
        )

    def test_keepAliveAndIdle(self) -> None:
        """
        The connection queues a keep-alive after our silence and ends after
        the peer's.
        """
        c = self.outgoing()
        self.assertEqual(c.tick(KEEPALIVE_INTERVAL - 1), [])
        self.assertEqual(c.dataToSend(), [])
        self.assertEqual(c.tick(KEEPALIVE_INTERVAL), [])
        self.assertEqual(c.dataToSend(), [b"\x00\x00\x00\x00"])
        self.assertEqual(c.tick(IDLE_TIMEOUT), [Violation("silent for 180 s")])


class ChunkingTests(ConnectionTestsMixin, SynchronousTestCase):
    MESSAGES = [
        BitfieldMessage(b"\x80\x00\x10"),
        Have(3),
        Unchoke(),
        Interested(),
        Request(1, 0, 16384),
        Piece(2, 16384, b"z" * 16384),
        Have(18),
    ]

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=20000), max_size=40))
    def test_anyChunking(self, cuts) -> None:
        """
        However the bytes are cut, the same events come out, one byte at a
        time included.
        """
        stream = frames(*self.MESSAGES)
        c = self.outgoing()
        events = []
        offset = 0
        for cut in cuts:
            events += c.receiveData(stream[offset : offset + cut])
            offset += cut
        events += c.receiveData(stream[offset:])
        self.assertEqual(events, self.MESSAGES)

    def test_oneByteAtATime(self) -> None:
        """
        Fed one byte at a time, the connection gives every message once.
        """
        stream = frames(*self.MESSAGES)
        c = self.outgoing()
        events = []
        for i in range(len(stream)):
            events += c.receiveData(stream[i : i + 1])
        self.assertEqual(events, self.MESSAGES)
        self.assertEqual(c.bytesDownloaded, 16384)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_garbage(self, data) -> None:
        """
        Random bytes after a handshake give messages or one violation, never
        an exception, and nothing after a violation.
        """
        c = self.outgoing(FAST, reserved=wire.reservedBytes(fast=True))
        events = c.receiveData(data)
        violations = [e for e in events if type(e) is Violation]
        self.assertLessEqual(len(violations), 1)
        if violations:
            self.assertIs(events[-1], violations[0])
            self.assertTrue(c.closed)

    def test_giantLength(self) -> None:
        """
        A length prefix beyond the longest message of the torrent ends the
        connection before anything is buffered.
        """
        c = self.outgoing()
        events = c.receiveData(b"\x7f\xff\xff\xff\x07")
        self.assertEqual(
            events, [Violation("message of 2147483647 bytes, longest allowed 16393")]
        )
        self.assertEqual(c.framer.buffered, 0)


class FastTests(ConnectionTestsMixin, SynchronousTestCase):
    def fastConnection(self, pieceCount=20):
        return self.outgoing(
            FAST, pieceCount=pieceCount, reserved=wire.reservedBytes(fast=True)
        )

    def test_negotiated(self) -> None:
        """
        The Fast extension is on only when both handshakes set its bit.
        """
        self.assertTrue(self.fastConnection().fast)
        self.assertFalse(self.outgoing(FAST).fast)
        self.assertFalse(self.outgoing(reserved=wire.reservedBytes(fast=True)).fast)

    def test_haveAllNone(self) -> None:
        """
        Have All fills the peer's pieces, Have None leaves them empty; both
        are reported.
        """
        c = self.fastConnection()
        self.assertEqual(c.receiveData(frames(HaveAll())), [HaveAll()])
        self.assertTrue(c.peerPieces.complete)
        c = self.fastConnection()
        self.assertEqual(c.receiveData(frames(HaveNone())), [HaveNone()])
        self.assertEqual(c.peerPieces.count, 0)

    def test_haveAllAfterBitfield(self) -> None:
        """
        Have All after a bitfield (or any message) breaks BEP 6.
        """
        c = self.fastConnection()
        events = c.receiveData(frames(BitfieldMessage(bytes(3)), HaveAll()))
        self.assertEqual(
            events,
            [
                BitfieldMessage(bytes(3)),
                Violation("have-all/none after other messages"),
            ],
        )

    def test_withoutNegotiation(self) -> None:
        """
        Fast messages on a connection that did not negotiate the extension
        end it.
        """
        for message, reason in [
            (HaveAll(), "have-all/none without the Fast extension"),
            (RejectRequest(0, 0, 16384), "reject without the Fast extension"),
            (AllowedFast(1), "suggest/allowed-fast without the Fast extension"),
            (SuggestPiece(1), "suggest/allowed-fast without the Fast extension"),
        ]:
            c = self.outgoing()
            self.assertEqual(c.receiveData(frames(message)), [Violation(reason)])

    def test_indexesChecked(self) -> None:
        """
        Reject, Suggest and Allowed Fast name pieces of the torrent.
        """
        for message in [RejectRequest(20, 0, 1), SuggestPiece(20), AllowedFast(99)]:
            c = self.fastConnection()
            events = c.receiveData(frames(message))
            self.assertEqual(type(events[-1]), Violation)

    def test_sendBitfieldFast(self) -> None:
        """
        With the extension, a full bitfield goes out as Have All and an
        empty one as Have None; without it, as a bitfield.
        """
        c = self.fastConnection(9)
        self.assertTrue(c.sendBitfield(Bitfield.full(9)))
        self.assertEqual(c.dataToSend(), [encodeMessage(HaveAll())])
        c = self.fastConnection(9)
        self.assertTrue(c.sendBitfield(Bitfield(9)))
        self.assertEqual(c.dataToSend(), [encodeMessage(HaveNone())])
        c = self.outgoing(pieceCount=9)
        self.assertTrue(c.sendBitfield(Bitfield.full(9)))
        self.assertEqual(c.dataToSend(), [encodeMessage(BitfieldMessage(b"\xff\x80"))])
        self.assertFalse(c.sendBitfield(Bitfield.full(9)))

    def test_sendReject(self) -> None:
        """
        A reject is sent only with the Fast extension.
        """
        c = self.outgoing()
        c.sendReject(0, 0, 16384)
        self.assertEqual(c.dataToSend(), [])
        c = self.fastConnection()
        c.sendReject(0, 0, 16384)
        self.assertEqual(c.dataToSend(), [encodeMessage(RejectRequest(0, 0, 16384))])


class ExtensionTests(ConnectionTestsMixin, SynchronousTestCase):
    def extended(self):
        return self.outgoing(EXTENDED, reserved=wire.reservedBytes(extended=True))

    def test_handshakeRecordsIds(self) -> None:
        """
        The peer's BEP 10 handshake records its ids; a later one adds and
        changes them and id 0 turns a name off.
        """
        c = self.extended()
        payload = bencode.encode({"m": {"ut_dummy": 7, "ut_pex": 1}, "v": "x"})
        events = c.receiveData(frames(Extended(0, payload)))
        self.assertEqual(type(events[0]), ExtensionHandshake)
        self.assertEqual(events[0].fields["v"], b"x")
        self.assertEqual(c.peerExtensions, {"ut_dummy": 7, "ut_pex": 1})
        payload = bencode.encode({"m": {"ut_dummy": 0, "ut_metadata": 2}})
        c.receiveData(frames(Extended(0, payload)))
        self.assertEqual(c.peerExtensions, {"ut_pex": 1, "ut_metadata": 2})
        self.assertTrue(c.sendExtended("ut_pex", b"abc"))
        self.assertEqual(c.dataToSend(), [encodeMessage(Extended(1, b"abc"))])
        self.assertFalse(c.sendExtended("ut_dummy", b"abc"))

    def test_garbageHandshakeIgnored(self) -> None:
        """
        A BEP 10 handshake that is not a bencoded dictionary is ignored,
        as libtorrent does; junk in C{m} is skipped.
        """
        c = self.extended()
        for payload in [b"garbage", b"i1e", bencode.encode({"m": [1]})]:
            events = c.receiveData(frames(Extended(0, payload)))
            self.assertNotIn(Violation, [type(e) for e in events])
        payload = bencode.encode({"m": {"a": "x", "b": -1, "c": 300, "d": 5}})
        c.receiveData(frames(Extended(0, payload)))
        self.assertEqual(c.peerExtensions, {"d": 5})

    def test_dispatchByName(self) -> None:
        """
        A message sent to one of our ids comes out with our extension's
        name; one to an id we do not use is ignored.
        """
        c = self.extended()
        events = c.receiveData(
            frames(Extended(3, b"hello"), Extended(9, b"?"), Extended(4, b"x"))
        )
        self.assertEqual(
            events,
            [
                ExtensionMessage("ut_dummy", b"hello"),
                ExtensionMessage("ut_other", b"x"),
            ],
        )

    def test_limitPerExtension(self) -> None:
        """
        Each extension has its own longest message.
        """
        c = self.extended()
        events = c.receiveData(frames(Extended(4, b"x" * 11)))
        self.assertEqual(
            events,
            [Violation("ut_other message of 11 bytes, longest allowed 10")],
        )

    def test_withoutBit(self) -> None:
        """
        Extension messages without the reserved bit end the connection.
        """
        c = self.outgoing(EXTENDED)
        self.assertEqual(
            c.receiveData(frames(Extended(0, b"de"))),
            [Violation("extension message without the extension bit")],
        )

    def test_sendHandshake(self) -> None:
        """
        Our handshake carries C{m} from our extensions and the given fields.
        """
        c = self.extended()
        self.assertTrue(c.sendExtensionHandshake({"p": 6881, "v": "btorrent"}))
        (data,) = c.dataToSend()
        message = wire.decodeMessage(data[4:])
        self.assertEqual(message.extendedId, 0)
        self.assertEqual(
            bencode.decode(message.payload),
            {b"m": {b"ut_dummy": 3, b"ut_other": 4}, b"p": 6881, b"v": b"btorrent"},
        )


class UnknownPieceCountTests(ConnectionTestsMixin, SynchronousTestCase):
    """
    A torrent without its metadata yet (a magnet link): what the peer
    announces is kept and checked once the piece count is known.
    """

    def test_bitfieldCheckedLater(self) -> None:
        c = self.outgoing(pieceCount=None)
        self.assertIsNone(c.peerPieces)
        self.assertEqual(c.receiveData(frames(BitfieldMessage(b"\xa0"), Have(5))), [])
        self.assertEqual(c.setPieceCount(6), [BitfieldMessage(b"\xa4")])
        self.assertEqual(list(c.peerPieces), [0, 2, 5])
        self.assertEqual(c.receiveData(frames(Have(1))), [Have(1)])

    def test_badBitfieldLater(self) -> None:
        c = self.outgoing(pieceCount=None)
        c.receiveData(frames(BitfieldMessage(b"\xff\xff")))
        self.assertEqual(
            c.setPieceCount(6), [Violation("bitfield of 2 bytes for 6 pieces, not 1")]
        )

    def test_haveOutOfRangeLater(self) -> None:
        c = self.outgoing(pieceCount=None)
        c.receiveData(frames(Have(6)))
        self.assertEqual(c.setPieceCount(6), [Violation("have 6 out of range")])

    def test_haveAllLater(self) -> None:
        c = self.outgoing(FAST, pieceCount=None, reserved=wire.reservedBytes(fast=True))
        c.receiveData(frames(HaveAll()))
        self.assertEqual(c.setPieceCount(3), [BitfieldMessage(b"\xe0")])
        self.assertTrue(c.peerPieces.complete)
