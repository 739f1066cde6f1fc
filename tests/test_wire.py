"""
Tests for L{btorrent.codec.wire}.
"""

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import wire
from btorrent.codec.wire import (
    HANDSHAKE_LENGTH,
    VIEW_MIN_BLOCK,
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
    WireError,
    decodeHandshake,
    decodeMessage,
    decodeMessageAt,
    encodeHandshake,
    encodeMessage,
    encodePieceHeader,
)

INFO_HASH = bytes(range(20))
PEER_ID = b"-BT0001-abcdefghijkl"

u32 = st.integers(0, 2**32 - 1)
messages = st.one_of(
    st.just(KeepAlive()),
    st.just(Choke()),
    st.just(Unchoke()),
    st.just(Interested()),
    st.just(NotInterested()),
    st.builds(Have, u32),
    st.builds(BitfieldMessage, st.binary(max_size=64)),
    st.builds(Request, u32, u32, u32),
    st.builds(Piece, u32, u32, st.binary(max_size=64)),
    st.builds(Cancel, u32, u32, u32),
    st.builds(Port, st.integers(0, 65535)),
)


class HandshakeTests(SynchronousTestCase):
    """
    The 68-byte handshake.
    """

    def test_encode(self) -> None:
        """
        The handshake is the length byte, the protocol name, the reserved
        bytes, the info-hash and the peer id.
        """
        data = encodeHandshake(Handshake(INFO_HASH, PEER_ID))
        self.assertEqual(
            data, b"\x13BitTorrent protocol" + bytes(8) + INFO_HASH + PEER_ID
        )
        self.assertEqual(len(data), HANDSHAKE_LENGTH)

    def test_roundTripReserved(self) -> None:
        """
        Reserved bytes are kept as given.
        """
        h = Handshake(INFO_HASH, PEER_ID, b"\x00\x00\x00\x00\x00\x10\x00\x05")
        self.assertEqual(decodeHandshake(encodeHandshake(h)), h)

    def test_wrongLength(self) -> None:
        """
        Anything but 68 bytes is refused.
        """
        data = encodeHandshake(Handshake(INFO_HASH, PEER_ID))
        self.assertRaises(WireError, decodeHandshake, data[:-1])
        self.assertRaises(WireError, decodeHandshake, data + b"x")
        self.assertRaises(WireError, decodeHandshake, b"")

    def test_wrongProtocol(self) -> None:
        """
        A different protocol string or length byte is refused.
        """
        data = encodeHandshake(Handshake(INFO_HASH, PEER_ID))
        self.assertRaises(WireError, decodeHandshake, b"\x14" + data[1:])
        self.assertRaises(
            WireError, decodeHandshake, data[:1] + b"bittorrent protocol" + data[20:]
        )
        self.assertRaises(WireError, decodeHandshake, b"GET / HTTP/1.1\r\n".ljust(68))

    def test_badFields(self) -> None:
        """
        A L{Handshake} with fields of the wrong size cannot be made.
        """
        self.assertRaises(WireError, Handshake, INFO_HASH[:19], PEER_ID)
        self.assertRaises(WireError, Handshake, INFO_HASH, PEER_ID + b"x")
        self.assertRaises(WireError, Handshake, INFO_HASH, PEER_ID, bytes(7))
        self.assertRaises(WireError, Handshake, "x" * 20, PEER_ID)

    @given(st.binary(min_size=68, max_size=68))
    def test_garbage(self, data: bytes) -> None:
        """
        68 random bytes are a handshake only with the right prefix.
        """
        try:
            h = decodeHandshake(data)
        except WireError:
            self.assertNotEqual(data[:20], b"\x13BitTorrent protocol")
        else:
            self.assertEqual(encodeHandshake(h), data)


class MessageTests(SynchronousTestCase):
    """
    Messages after the handshake.
    """

    def test_exactBytes(self) -> None:
        """
        Each message encodes as BEP 3 says.
        """
        cases = [
            (KeepAlive(), b"\x00\x00\x00\x00"),
            (Choke(), b"\x00\x00\x00\x01\x00"),
            (Unchoke(), b"\x00\x00\x00\x01\x01"),
            (Interested(), b"\x00\x00\x00\x01\x02"),
            (NotInterested(), b"\x00\x00\x00\x01\x03"),
            (Have(258), b"\x00\x00\x00\x05\x04\x00\x00\x01\x02"),
            (BitfieldMessage(b"\xa0\x01"), b"\x00\x00\x00\x03\x05\xa0\x01"),
            (
                Request(1, 16384, 16384),
                b"\x00\x00\x00\x0d\x06\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00",
            ),
            (
                Piece(1, 2, b"abc"),
                b"\x00\x00\x00\x0c\x07\x00\x00\x00\x01\x00\x00\x00\x02abc",
            ),
            (
                Cancel(1, 16384, 16384),
                b"\x00\x00\x00\x0d\x08\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00",
            ),
            (Port(6881), b"\x00\x00\x00\x03\x09\x1a\xe1"),
        ]
        for msg, data in cases:
            self.assertEqual(encodeMessage(msg), data, msg)
            self.assertEqual(decodeMessage(data[4:]), msg)

    @given(messages)
    def test_roundTrip(self, msg) -> None:
        """
        Every message decodes to itself; the length prefix is the payload's
        length.
        """
        data = encodeMessage(msg)
        (length,) = struct.unpack(">I", data[:4])
        self.assertEqual(length, len(data) - 4)
        self.assertEqual(decodeMessage(data[4:]), msg)

    @given(messages, st.binary(max_size=10), st.binary(max_size=10))
    def test_decodeAt(self, msg, before: bytes, after: bytes) -> None:
        """
        L{decodeMessageAt} decodes a payload in the middle of a buffer.
        """
        payload = encodeMessage(msg)[4:]
        buf = before + payload + after
        self.assertEqual(
            decodeMessageAt(buf, len(before), len(before) + len(payload)), msg
        )

    def test_pieceHeader(self) -> None:
        """
        L{encodePieceHeader} followed by the block is the encoded message.
        """
        block = bytes(range(256)) * 64
        self.assertEqual(
            encodePieceHeader(3, 16384, len(block)) + block,
            encodeMessage(Piece(3, 16384, block)),
        )

    def test_pieceBlockIsAViewOfBytes(self) -> None:
        """
        A block decoded from C{bytes} is a read-only view of them (no copy
        before the one into its piece).
        """
        block = bytes(range(256)) * 64
        buf = b"ab" + encodeMessage(Piece(0, 0, block))[4:] + b"cd"
        msg = decodeMessageAt(buf, 2, len(buf) - 2)
        self.assertIsInstance(msg.block, memoryview)
        self.assertTrue(msg.block.readonly)
        self.assertIs(msg.block.obj, buf)
        self.assertEqual(msg, Piece(0, 0, block))

    def test_shortPieceBlockIsBytes(self) -> None:
        """
        A block shorter than L{VIEW_MIN_BLOCK} is copied, even from
        C{bytes}: a view would cost more than the block.
        """
        for block in (b"", b"x", b"y" * (VIEW_MIN_BLOCK - 1)):
            buf = encodeMessage(Piece(0, 0, block))
            msg = decodeMessageAt(buf, 4, len(buf))
            self.assertIs(type(msg.block), bytes)
            self.assertEqual(msg, Piece(0, 0, block))
        buf = encodeMessage(Piece(0, 0, b"z" * VIEW_MIN_BLOCK))
        self.assertIsInstance(decodeMessageAt(buf, 4, len(buf)).block, memoryview)

    def test_pieceBlockIsBytes(self) -> None:
        """
        A block decoded from a buffer that could change (a C{bytearray}, a
        C{memoryview}) is a C{bytes} copy.
        """
        payload = encodeMessage(Piece(0, 0, b"xyz"))[4:]
        for buf in (bytearray(payload), memoryview(payload)):
            msg = decodeMessageAt(buf, 0, len(payload))
            self.assertIsInstance(msg.block, bytes)
            self.assertEqual(msg, Piece(0, 0, b"xyz"))

    def test_wrongLengths(self) -> None:
        """
        Each message type with one byte too many or too few is refused.
        """
        exact = {0: 1, 1: 1, 2: 1, 3: 1, 4: 5, 6: 13, 8: 13, 9: 3}
        for messageId, length in exact.items():
            for wrong in (length - 1, length + 1, length + 100):
                if wrong < 1:
                    continue
                payload = bytes([messageId]) + bytes(wrong - 1)
                self.assertRaises(WireError, decodeMessage, payload)
            decodeMessage(bytes([messageId]) + bytes(length - 1))
        # piece: at least 9
        for wrong in range(1, 9):
            self.assertRaises(WireError, decodeMessage, b"\x07" + bytes(wrong - 1))
        self.assertEqual(decodeMessage(b"\x07" + bytes(8)), Piece(0, 0, b""))
        # bitfield: any length of at least 1
        self.assertEqual(decodeMessage(b"\x05"), BitfieldMessage(b""))

    def test_unknownIds(self) -> None:
        """
        Ids no extension defines are refused (whether an extension's ids
        are allowed on a connection is the connection's question).
        """
        known = set(range(10)) | set(wire.FAST_IDS) | {wire.EXTENDED}
        for messageId in sorted(set(range(256)) - known):
            self.assertRaises(WireError, decodeMessage, bytes([messageId]))
            self.assertRaises(WireError, decodeMessage, bytes([messageId, 0, 0]))

    def test_fastMessages(self) -> None:
        """
        The Fast extension's messages (BEP 6) round-trip, with their exact
        bytes, and refuse any other length.
        """
        cases = [
            (wire.HaveAll(), b"\x00\x00\x00\x01\x0e"),
            (wire.HaveNone(), b"\x00\x00\x00\x01\x0f"),
            (wire.SuggestPiece(7), b"\x00\x00\x00\x05\x0d\x00\x00\x00\x07"),
            (wire.AllowedFast(7), b"\x00\x00\x00\x05\x11\x00\x00\x00\x07"),
            (
                wire.RejectRequest(1, 16384, 16384),
                b"\x00\x00\x00\x0d\x10\x00\x00\x00\x01\x00\x00\x40\x00"
                b"\x00\x00\x40\x00",
            ),
        ]
        for message, data in cases:
            self.assertEqual(encodeMessage(message), data)
            self.assertEqual(decodeMessage(data[4:]), message)
            self.assertRaises(WireError, decodeMessage, data[4:] + b"\x00")
            if len(data) > 5:
                self.assertRaises(WireError, decodeMessage, data[4:-1])

    def test_extended(self) -> None:
        """
        A BEP 10 message carries its extension id and payload; it needs at
        least the id.
        """
        message = wire.Extended(3, b"d1:ai1ee")
        data = encodeMessage(message)
        self.assertEqual(data, b"\x00\x00\x00\x0a\x14\x03d1:ai1ee")
        self.assertEqual(decodeMessage(data[4:]), message)
        self.assertEqual(decodeMessage(b"\x14\x00"), wire.Extended(0, b""))
        self.assertRaises(WireError, decodeMessage, b"\x14")

    def test_reservedBits(self) -> None:
        """
        The reserved bytes name the DHT, Fast and extension-protocol bits
        where BEP 5, BEP 6 and BEP 10 put them.
        """
        self.assertEqual(wire.reservedBytes(), bytes(8))
        self.assertEqual(wire.reservedBytes(dht=True), bytes(7) + b"\x01")
        self.assertEqual(wire.reservedBytes(fast=True), bytes(7) + b"\x04")
        self.assertEqual(
            wire.reservedBytes(extended=True), bytes(5) + b"\x10" + bytes(2)
        )
        both = wire.reservedBytes(fast=True, extended=True)
        self.assertTrue(wire.hasReserved(both, wire.RESERVED_FAST))
        self.assertTrue(wire.hasReserved(both, wire.RESERVED_EXTENDED))
        self.assertFalse(wire.hasReserved(both, wire.RESERVED_DHT))

    def test_encodeOutOfRange(self) -> None:
        """
        Values that do not fit their fields cannot be encoded.
        """
        self.assertRaises(WireError, encodeMessage, Have(-1))
        self.assertRaises(WireError, encodeMessage, Have(2**32))
        self.assertRaises(WireError, encodeMessage, Request(0, 0, 2**32))
        self.assertRaises(WireError, encodeMessage, Port(65536))
        self.assertRaises(WireError, encodePieceHeader, 0, -1, 5)
        self.assertRaises(WireError, encodeMessage, object())

    @given(st.binary(max_size=40))
    def test_randomPayloads(self, payload: bytes) -> None:
        """
        Any payload either decodes to a message that encodes back to it, or
        raises L{WireError}.
        """
        try:
            msg = decodeMessage(payload)
        except WireError:
            return
        self.assertEqual(encodeMessage(msg)[4:], payload)

    @given(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), st.binary(max_size=20))
    def test_randomPayloadsKnownIds(self, messageId: int, rest: bytes) -> None:
        """
        Payloads with known ids and random bodies either decode and
        re-encode exactly, or raise L{WireError}.
        """
        payload = bytes([messageId]) + rest
        try:
            msg = decodeMessage(payload)
        except WireError:
            return
        self.assertEqual(encodeMessage(msg)[4:], payload)

    def test_immutable(self) -> None:
        """
        Messages are frozen and have no C{__dict__}.
        """
        msg = Have(1)
        self.assertRaises(AttributeError, setattr, msg, "index", 2)
        self.assertFalse(hasattr(msg, "__dict__"))
        self.assertFalse(hasattr(Piece(0, 0, b""), "__dict__"))
