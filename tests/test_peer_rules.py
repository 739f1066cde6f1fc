"""
Tests for L{btorrent.peer.rules} (the rules of single messages, the pieces
announced before the piece count is known) and L{btorrent.peer.dispatch}
(BEP 10 ids both ways).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode
from btorrent.codec.wire import (
    AllowedFast,
    Cancel,
    Extended,
    Have,
    HaveAll,
    HaveNone,
    Piece,
    RejectRequest,
    Request,
    SuggestPiece,
    Unchoke,
)
from btorrent.peer.dispatch import (
    MAX_EXTENSION_HANDSHAKE,
    ExtensionDispatch,
    ExtensionHandshake,
    ExtensionMessage,
)
from btorrent.peer.rules import MAX_PIECES_UNKNOWN, EarlyPieces, breach


class BreachTests(SynchronousTestCase):
    def test_inRange(self) -> None:
        """
        Messages with indexes in range and plausible lengths pass.
        """
        for message in [
            Piece(9, 0, b"x"),
            Have(9),
            Request(9, 0, 16384),
            Cancel(9, 0, 16384),
            Unchoke(),
        ]:
            self.assertIsNone(breach(message, 10, False), message)

    def test_outOfRange(self) -> None:
        """
        An index at the piece count is out of range, named by its kind.
        """
        self.assertEqual(breach(Piece(10, 0, b"x"), 10, False), "piece 10 out of range")
        self.assertEqual(breach(Have(10), 10, False), "have 10 out of range")
        self.assertEqual(
            breach(Request(10, 0, 1), 10, False), "request for piece 10 out of range"
        )

    def test_unknownCount(self) -> None:
        """
        While the piece count is unknown, indexes up to
        L{MAX_PIECES_UNKNOWN} pass.
        """
        self.assertIsNone(breach(Have(MAX_PIECES_UNKNOWN - 1), None, False))
        self.assertEqual(
            breach(Have(MAX_PIECES_UNKNOWN), None, False),
            f"have {MAX_PIECES_UNKNOWN} out of range",
        )

    def test_requestLength(self) -> None:
        """
        A request for 0 bytes or more than 128 KiB breaks the rules.
        """
        self.assertEqual(
            breach(Request(1, 0, 0), 10, False), "request for a block of 0 bytes"
        )
        self.assertEqual(
            breach(Cancel(1, 0, 1 << 20), 10, False),
            f"request for a block of {1 << 20} bytes",
        )

    def test_fastOnly(self) -> None:
        """
        The Fast extension's messages need it.
        """
        self.assertEqual(
            breach(RejectRequest(1, 0, 1), 10, False),
            "reject without the Fast extension",
        )
        self.assertEqual(
            breach(HaveAll(), 10, False), "have-all/none without the Fast extension"
        )
        self.assertEqual(
            breach(SuggestPiece(1), 10, False),
            "suggest/allowed-fast without the Fast extension",
        )
        for message in [RejectRequest(1, 0, 1), HaveNone(), AllowedFast(1)]:
            self.assertIsNone(breach(message, 10, True))


class EarlyPiecesTests(SynchronousTestCase):
    def test_bitsAndHaves(self) -> None:
        """
        A bitfield and Haves announced early make the peer's pieces once
        the count is known.
        """
        early = EarlyPieces()
        early.bits = b"\x80"
        early.have(3)
        pieces, fault = early.resolve(5)
        self.assertIsNone(fault)
        self.assertEqual(list(pieces), [0, 3])

    def test_haveAll(self) -> None:
        early = EarlyPieces()
        early.haveAll = True
        pieces, fault = early.resolve(9)
        self.assertTrue(pieces.complete)

    def test_outOfRange(self) -> None:
        """
        A Have beyond the count, or a bitfield of the wrong size, is a
        fault.
        """
        early = EarlyPieces()
        early.have(5)
        self.assertEqual(early.resolve(5), (None, "have 5 out of range"))
        early = EarlyPieces()
        early.bits = b"\xff\xff"
        pieces, fault = early.resolve(5)
        self.assertIsNone(pieces)
        self.assertIsNotNone(fault)


class DispatchTests(SynchronousTestCase):
    OURS = (("ut_metadata", 2, 20000), ("ut_pex", 1, 1000))

    def test_handshakeRecordsIds(self) -> None:
        """
        The peer's C{m} sets its ids; a later handshake changes them and id
        0 turns a name off.
        """
        d = ExtensionDispatch(self.OURS)
        payload = bencode.encode({"m": {"ut_pex": 5, "lt_donthave": 7}, "v": "x"})
        event, fault = d.received(Extended(0, payload))
        self.assertIsNone(fault)
        self.assertIsInstance(event, ExtensionHandshake)
        self.assertEqual(event.fields["v"], b"x")
        self.assertEqual(d.peerIds, {"ut_pex": 5, "lt_donthave": 7})
        d.received(Extended(0, bencode.encode({"m": {"ut_pex": 0}})))
        self.assertEqual(d.peerIds, {"lt_donthave": 7})
        self.assertEqual(d.messageFor("lt_donthave", b"p"), Extended(7, b"p"))
        self.assertIsNone(d.messageFor("ut_pex", b"p"))

    def test_messageByName(self) -> None:
        """
        A message under one of our ids is named; an unknown id is ignored;
        a payload over the extension's limit is a fault.
        """
        d = ExtensionDispatch(self.OURS)
        self.assertEqual(
            d.received(Extended(1, b"abc")), (ExtensionMessage("ut_pex", b"abc"), None)
        )
        self.assertEqual(d.received(Extended(9, b"abc")), (None, None))
        self.assertEqual(
            d.received(Extended(1, b"x" * 1001)),
            (None, "ut_pex message of 1001 bytes, longest allowed 1000"),
        )

    def test_badHandshakes(self) -> None:
        """
        A handshake that is not a dictionary is ignored; one too long is a
        fault.
        """
        d = ExtensionDispatch(self.OURS)
        self.assertEqual(d.received(Extended(0, b"garbage")), (None, None))
        self.assertEqual(d.received(Extended(0, b"i5e")), (None, None))
        self.assertEqual(
            d.received(Extended(0, b"d" + b"x" * MAX_EXTENSION_HANDSHAKE)),
            (None, "extension handshake too long"),
        )

    @given(st.binary(max_size=300))
    def test_anyHandshake(self, payload) -> None:
        """
        Any payload as a handshake gives an event or nothing, never an
        exception.
        """
        event, fault = ExtensionDispatch(self.OURS).received(Extended(0, payload))
        self.assertIsNone(fault)

    def test_ourHandshake(self) -> None:
        """
        Our handshake carries our ids in C{m} and the given fields; the
        limit is the largest of ours and the handshake's.
        """
        d = ExtensionDispatch(self.OURS)
        message = d.handshake({"v": "btorrent"})
        self.assertEqual(message.extendedId, 0)
        self.assertEqual(
            bencode.decode(message.payload),
            {b"m": {b"ut_metadata": 2, b"ut_pex": 1}, b"v": b"btorrent"},
        )
        self.assertEqual(d.limit, MAX_EXTENSION_HANDSHAKE)
        self.assertEqual(ExtensionDispatch().limit, 0)
