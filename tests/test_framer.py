"""
Tests for L{btorrent.peer.framer}: the handshake and length-prefixed
messages split out of a byte stream, fed whole, byte by byte and in any
chunking; garbage, truncation and giant lengths.
"""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import wire
from btorrent.codec.wire import (
    BLOCK_SIZE,
    Handshake,
    Have,
    Piece,
    Request,
    Unchoke,
    encodeHandshake,
    encodeMessage,
)
from btorrent.peer.framer import (
    KEEPALIVE_BURST,
    READ_SIZE,
    MessageFramer,
    setBufferSizes,
)

MAX = 9 + BLOCK_SIZE
HANDSHAKE = Handshake(b"i" * 20, b"p" * 20, bytes(8))
MESSAGES = [
    Unchoke(),
    Have(7),
    Request(1, 0, BLOCK_SIZE),
    Piece(3, BLOCK_SIZE, bytes(range(256)) * 64),
    Piece(4, 0, b"x"),
]
STREAM = b"".join(encodeMessage(m) for m in MESSAGES)


def feedAll(framer, chunks):
    messages = []
    for chunk in chunks:
        got, fault = framer.feed(chunk)
        messages += got
        if fault is not None:
            return messages, fault
    return messages, None


class FramerTests(SynchronousTestCase):
    def framer(self):
        self.clock = Clock()
        return MessageFramer(self.clock, MAX)

    def test_tinyPiecesMemory(self) -> None:
        """
        A read full of pieces with 1-byte blocks (a peer's way to make us
        build many objects) takes little more memory than the messages
        themselves: well under the 180 bytes a view of each block would
        add.
        """
        read = encodeMessage(Piece(1, 0, b"x")) * 20000
        framer = self.framer()
        tracemalloc.start()
        try:
            messages, fault = framer.feed(read)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertIsNone(fault)
        self.assertEqual(len(messages), 20000)
        self.assertLess(peak / len(messages), 150)

    def test_changingBuffers(self) -> None:
        """
        Reads given as a C{bytearray} or C{memoryview}, which their owner
        may reuse, are split as C{bytes} would be, and what is kept of one
        (a partial message, a partial length) does not change when the
        owner writes over its buffer.
        """
        for cut in (2, len(STREAM) - 3, len(STREAM) // 2):
            for kind in (bytearray, lambda b: memoryview(bytearray(b))):
                framer = self.framer()
                first = kind(STREAM[:cut])
                messages, fault = framer.feed(first)
                first[:] = bytes(len(first))
                rest, fault2 = framer.feed(kind(STREAM[cut:]))
                self.assertIsNone(fault)
                self.assertIsNone(fault2)
                self.assertEqual(messages + rest, MESSAGES)

    def test_whole(self) -> None:
        """
        A buffer of complete messages comes out as those messages, in order,
        and nothing stays buffered.
        """
        framer = self.framer()
        self.assertEqual(framer.feed(STREAM), (MESSAGES, None))
        self.assertEqual(framer.buffered, 0)

    def test_byteByByte(self) -> None:
        """
        Fed a byte at a time, the same messages come out, each once it is
        complete.
        """
        framer = self.framer()
        messages, fault = feedAll(
            framer, [STREAM[i : i + 1] for i in range(len(STREAM))]
        )
        self.assertEqual((messages, fault), (MESSAGES, None))
        self.assertEqual(framer.buffered, 0)

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
    def test_anyChunking(self, cuts) -> None:
        """
        However the stream is cut, the messages are the same.
        """
        framer = self.framer()
        points = [0] + sorted(cuts) + [len(STREAM)]
        chunks = [STREAM[a:b] for a, b in zip(points, points[1:])]
        self.assertEqual(feedAll(framer, chunks), (MESSAGES, None))

    def test_partialKept(self) -> None:
        """
        The start of a message waits for the rest; what is held is counted
        in L{MessageFramer.buffered}.
        """
        framer = self.framer()
        data = encodeMessage(MESSAGES[3])
        self.assertEqual(framer.feed(data[:100]), ([], None))
        self.assertEqual(framer.buffered, 100)
        self.assertEqual(framer.feed(data[100:]), ([MESSAGES[3]], None))
        self.assertEqual(framer.buffered, 0)

    def test_partialThenMore(self) -> None:
        """
        A message completed by a read that holds more messages comes out
        first, the others after it; a broken message completed that way is
        a fault.
        """
        framer = self.framer()
        first = encodeMessage(MESSAGES[3])
        rest = encodeMessage(Unchoke()) + encodeMessage(MESSAGES[3])
        self.assertEqual(framer.feed(first[:100]), ([], None))
        self.assertEqual(
            framer.feed(first[100:] + rest[:20]), ([MESSAGES[3], Unchoke()], None)
        )
        self.assertEqual(framer.feed(rest[20:]), ([MESSAGES[3]], None))
        broken = b"\x00\x00\x00\x06\x04\x00\x00\x00\x00\x00"
        framer = self.framer()
        self.assertEqual(framer.feed(broken[:6]), ([], None))
        messages, fault = framer.feed(broken[6:] + encodeMessage(Unchoke()))
        self.assertEqual(messages, [])
        self.assertIn("have message of length 6", fault)

    def test_giantLength(self) -> None:
        """
        A length beyond C{maxLength} is a fault before anything is
        buffered; the messages before it still come out.
        """
        framer = self.framer()
        data = encodeMessage(Unchoke()) + b"\x7f\xff\xff\xff" + b"\x07"
        self.assertEqual(
            framer.feed(data),
            ([Unchoke()], f"message of 2147483647 bytes, longest allowed {MAX}"),
        )
        self.assertEqual(framer.buffered, 0)

    def test_garbage(self) -> None:
        """
        An unknown message id or a wrong length for its type is a fault.
        """
        framer = self.framer()
        messages, fault = framer.feed(b"\x00\x00\x00\x01\x63")
        self.assertEqual(messages, [])
        self.assertIn("unknown message id 99", fault)
        messages, fault = self.framer().feed(b"\x00\x00\x00\x02\x04\x00")
        self.assertIn("have message of length 2", fault)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_anyBytes(self, data) -> None:
        """
        Any bytes give messages and at most a fault: never an exception,
        never more held than one message's worth.
        """
        framer = self.framer()
        messages, fault = framer.feed(data)
        self.assertIsInstance(messages, list)
        self.assertLessEqual(framer.buffered, max(len(data), 4 + MAX))

    def test_keepAlives(self) -> None:
        """
        Keep-alives are counted, not reported (unless asked); a flood
        beyond the burst and one a second is a fault.
        """
        framer = self.framer()
        self.assertEqual(framer.feed(wire.encodeMessage(wire.KEEP_ALIVE)), ([], None))
        framer.reportKeepAlives = True
        self.assertEqual(
            framer.feed(wire.encodeMessage(wire.KEEP_ALIVE)), ([wire.KEEP_ALIVE], None)
        )
        framer.reportKeepAlives = False
        flood = b"\x00\x00\x00\x00" * KEEPALIVE_BURST
        self.assertEqual(framer.feed(flood), ([], "keep-alive flood"))
        framer = self.framer()
        framer.feed(b"\x00\x00\x00\x00" * KEEPALIVE_BURST)
        self.clock.advance(2)
        self.assertEqual(framer.feed(b"\x00\x00\x00\x00" * 2), ([], None))
        self.assertEqual(framer.feed(b"\x00\x00\x00\x00"), ([], "keep-alive flood"))

    def test_clear(self) -> None:
        """
        L{MessageFramer.clear} forgets every held byte.
        """
        framer = self.framer()
        framer.feed(encodeMessage(MESSAGES[3])[:500])
        framer.clear()
        self.assertEqual(framer.buffered, 0)
        self.assertEqual(framer.feed(STREAM), (MESSAGES, None))


class HandshakeTests(SynchronousTestCase):
    def test_handshakeThenRest(self) -> None:
        """
        The 68-byte handshake comes out with the bytes after it, whether it
        arrives whole or a byte at a time.
        """
        data = encodeHandshake(HANDSHAKE) + STREAM[:10]
        framer = MessageFramer(Clock(), MAX)
        self.assertEqual(framer.feedHandshake(data), (HANDSHAKE, STREAM[:10], None))
        framer = MessageFramer(Clock(), MAX)
        for i in range(67):
            self.assertEqual(framer.feedHandshake(data[i : i + 1]), (None, b"", None))
        self.assertEqual(
            framer.feedHandshake(data[67:]), (HANDSHAKE, STREAM[:10], None)
        )
        self.assertEqual(framer.buffered, 0)

    def test_notAHandshake(self) -> None:
        """
        A wrong first byte is a fault at once, without waiting for 68.
        """
        framer = MessageFramer(Clock(), MAX)
        self.assertEqual(
            framer.feedHandshake(b"GET / HTTP/1.1"),
            (None, b"", "not a BitTorrent handshake"),
        )


class ReadSizeTests(SynchronousTestCase):
    def test_setBufferSizes(self) -> None:
        """
        A TCP transport reads and sends up to L{READ_SIZE} at a time; a
        transport without those attributes is left alone.
        """

        class TCP:
            bufferSize = 65536
            SEND_LIMIT = 131072

        tcp = TCP()
        setBufferSizes(tcp)
        self.assertEqual((tcp.bufferSize, tcp.SEND_LIMIT), (READ_SIZE, READ_SIZE))
        other = object()
        setBufferSizes(other)
        self.assertFalse(hasattr(other, "bufferSize"))
