"""
Tests for L{btorrent.codec.bitfield}.
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec.bitfield import Bitfield


class BitfieldTests(SynchronousTestCase):
    """
    L{Bitfield} as a set of piece indexes with a wire form.
    """

    def test_empty(self) -> None:
        """
        A new bitfield has nothing set; its wire form is all zeros.
        """
        bf = Bitfield(10)
        self.assertEqual(len(bf), 10)
        self.assertEqual(bf.count, 0)
        self.assertFalse(bf.complete)
        self.assertEqual(list(bf), [])
        self.assertEqual(bf.toBytes(), b"\x00\x00")

    def test_addDiscard(self) -> None:
        """
        C{add} and C{discard} set and unset bits, in the wire's order (piece
        0 is the high bit of byte 0), and keep C{count} exact even when
        repeated.
        """
        bf = Bitfield(10)
        bf.add(0)
        bf.add(9)
        bf.add(9)
        self.assertEqual(bf.count, 2)
        self.assertEqual(bf.toBytes(), b"\x80\x40")
        self.assertIn(0, bf)
        self.assertIn(9, bf)
        self.assertNotIn(1, bf)
        self.assertNotIn(10, bf)
        self.assertNotIn(-1, bf)
        self.assertNotIn("0", bf)
        bf.discard(0)
        bf.discard(0)
        bf.discard(5)
        self.assertEqual(bf.count, 1)
        self.assertEqual(list(bf), [9])

    def test_outOfRange(self) -> None:
        """
        C{add} and C{discard} refuse indexes out of range.
        """
        bf = Bitfield(10)
        self.assertRaises(IndexError, bf.add, 10)
        self.assertRaises(IndexError, bf.add, -1)
        self.assertRaises(IndexError, bf.discard, 10)
        self.assertEqual(bf.count, 0)

    def test_complete(self) -> None:
        """
        C{complete} is true once every piece is set, and for no pieces.
        """
        bf = Bitfield(3)
        for i in range(3):
            self.assertFalse(bf.complete)
            bf.add(i)
        self.assertTrue(bf.complete)
        self.assertEqual(bf.toBytes(), b"\xe0")
        self.assertTrue(Bitfield(0).complete)
        self.assertEqual(Bitfield(0).toBytes(), b"")

    def test_fromBytes(self) -> None:
        """
        C{fromBytes} reads the wire form and counts the bits set.
        """
        bf = Bitfield.fromBytes(b"\xff\x80", 9)
        self.assertEqual(bf.count, 9)
        self.assertTrue(bf.complete)
        self.assertEqual(list(bf), list(range(9)))
        bf = Bitfield.fromBytes(b"\x05", 8)
        self.assertEqual(list(bf), [5, 7])

    def test_fromBytesWrongLength(self) -> None:
        """
        C{fromBytes} refuses a byte string that is not C{ceil(n / 8)} long.
        """
        self.assertRaises(ValueError, Bitfield.fromBytes, b"\x00", 9)
        self.assertRaises(ValueError, Bitfield.fromBytes, b"\x00\x00\x00", 9)
        self.assertRaises(ValueError, Bitfield.fromBytes, b"\x00", 0)
        self.assertEqual(Bitfield.fromBytes(b"", 0).count, 0)

    def test_fromBytesSpareBits(self) -> None:
        """
        C{fromBytes} refuses a bit set past the last piece.
        """
        self.assertRaises(ValueError, Bitfield.fromBytes, b"\xff\xc0", 9)
        self.assertRaises(ValueError, Bitfield.fromBytes, b"\x01", 7)
        Bitfield.fromBytes(b"\x01", 8)

    def test_copy(self) -> None:
        """
        C{copy} is independent of the original.
        """
        bf = Bitfield(5)
        bf.add(1)
        other = bf.copy()
        other.add(2)
        self.assertEqual(list(bf), [1])
        self.assertEqual(list(other), [1, 2])
        self.assertEqual(other.count, 2)
        self.assertNotEqual(bf, other)
        bf.add(2)
        self.assertEqual(bf, other)

    def test_difference(self) -> None:
        """
        C{a.difference(b)} holds the pieces of C{a} not in C{b}; lengths
        must match.
        """
        a = Bitfield.fromBytes(b"\xf0\x80", 9)
        b = Bitfield.fromBytes(b"\x50\x00", 9)
        d = a.difference(b)
        self.assertEqual(list(d), [0, 2, 8])
        self.assertEqual(d.count, 3)
        self.assertEqual(list(a), [0, 1, 2, 3, 8])
        self.assertEqual(a.difference(a).count, 0)
        self.assertEqual(Bitfield(0).difference(Bitfield(0)), Bitfield(0))
        self.assertRaises(ValueError, a.difference, Bitfield(8))

    @given(
        st.integers(0, 100).flatmap(
            lambda n: st.tuples(
                st.just(n),
                st.sets(st.integers(0, max(n - 1, 0)), max_size=n),
                st.sets(st.integers(0, max(n - 1, 0)), max_size=n),
            )
        )
    )
    def test_differenceModel(self, case) -> None:
        """
        L{Bitfield.difference} is set difference.
        """
        length, left, right = case
        a, b = Bitfield(length), Bitfield(length)
        for i in left:
            a.add(i)
        for i in right:
            b.add(i)
        d = a.difference(b)
        self.assertEqual(list(d), sorted(left - right))
        self.assertEqual(d.count, len(left - right))

    def test_negativeLength(self) -> None:
        """
        A negative length is refused.
        """
        self.assertRaises(ValueError, Bitfield, -1)

    def test_repr(self) -> None:
        """
        The repr shows the count and length.
        """
        bf = Bitfield(4)
        bf.add(3)
        self.assertEqual(repr(bf), "<Bitfield 1/4>")

    @given(
        st.integers(0, 200).flatmap(
            lambda n: st.tuples(
                st.just(n), st.sets(st.integers(0, max(n - 1, 0)), max_size=n)
            )
        )
    )
    def test_model(self, case) -> None:
        """
        A bitfield behaves like a set of ints below its length, and its
        wire form round-trips.
        """
        length, indexes = case
        bf = Bitfield(length)
        for i in indexes:
            bf.add(i)
        self.assertEqual(list(bf), sorted(indexes))
        self.assertEqual(bf.count, len(indexes))
        self.assertEqual(bf.complete, len(indexes) == length)
        again = Bitfield.fromBytes(bf.toBytes(), length)
        self.assertEqual(again, bf)
        self.assertEqual(again.count, len(indexes))

    @given(st.binary(max_size=30), st.integers(0, 250))
    def test_fromBytesRandom(self, data: bytes, length: int) -> None:
        """
        Any bytes either make a bitfield that round-trips or raise
        L{ValueError}.
        """
        try:
            bf = Bitfield.fromBytes(data, length)
        except ValueError:
            return
        self.assertEqual(bf.toBytes(), data)
        self.assertEqual(bf.count, sum(bin(b).count("1") for b in data))
