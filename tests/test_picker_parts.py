"""
Tests for the parts of the piece picker, alone:
L{btorrent.engine.availability} (counts, pools, the order of new pieces)
and L{btorrent.engine.inprogress} (the blocks of pieces started).
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec.bitfield import Bitfield
from btorrent.engine.availability import BAND, Availability
from btorrent.engine.inprogress import PiecesInProgress

BLOCK = 16384


def bits(count, *indexes):
    field = Bitfield(count)
    for index in indexes:
        field.add(index)
    return field


class AvailabilityTests(SynchronousTestCase):
    def test_countsAndPools(self) -> None:
        """
        Every piece starts pooled with availability 0; counting peers moves
        pieces between pools without losing any.
        """
        a = Availability(6, random.Random(1), "rarest")
        self.assertEqual(sorted(a.pooled()), list(range(6)))
        a.shift(bits(6, 0, 1, 2), 1)
        a.shift(bits(6, 1, 2), 1)
        self.assertEqual(a.counts, [1, 2, 2, 0, 0, 0])
        self.assertEqual(a.key(1), 2)
        a.shift(bits(6, 1, 2), -1)
        a.shift(bits(6, 3), -1)
        self.assertEqual(a.counts, [1, 1, 1, 0, 0, 0])
        self.assertEqual(sorted(a.pooled()), list(range(6)))

    def test_rarestFirst(self) -> None:
        """
        In rarest order the rarest pieces the peer has come first; pieces
        nobody has (by our count) come last.
        """
        a = Availability(4, random.Random(1), "rarest")
        a.shift(bits(4, 0, 1, 2), 1)
        a.shift(bits(4, 0, 1), 1)
        a.shift(bits(4, 0), 1)
        order = list(a.draw(bits(4, 0, 1, 2, 3)))
        self.assertEqual(order, [2, 1, 0, 3])

    def test_sequentialAndBands(self) -> None:
        """
        In sequential order the lowest index comes first, higher priority
        bands before lower; removing pieces moves the cursor.
        """
        a = Availability(6, random.Random(1), "sequential")
        a.setBands([0, -1, 0, 1, 0, 0])
        self.assertEqual(a.priority(3), 1)
        self.assertEqual(list(a.draw(bits(6, 0, 1, 2, 3, 4, 5))), [3, 0, 2, 4, 5, 1])
        a.remove(0)
        self.assertEqual(next(a.draw(bits(6, 1, 2))), 2)
        self.assertEqual(a.cursor, 1)
        self.assertEqual(a.key(1), BAND)

    def test_randomDrawsOnlyThePeersPieces(self) -> None:
        """
        A random draw yields each pooled piece the peer has, once.
        """
        a = Availability(500, random.Random(3), "random")
        peer = bits(500, *range(0, 500, 7))
        drawn = []
        for index in a.draw(peer):
            drawn.append(index)
            a.remove(index)
        self.assertEqual(sorted(drawn), list(range(0, 500, 7)))

    def test_badBands(self) -> None:
        a = Availability(2, random.Random(1), "random")
        self.assertRaises(ValueError, a.setBands, [0])
        self.assertRaises(ValueError, a.setBands, [0, 2])
        self.assertIsNone(a.bands)


class InProgressTests(SynchronousTestCase):
    def test_takeAndReceive(self) -> None:
        """
        Free blocks are requested in order; a block received from the peer
        it was requested from counts; from another peer it does not.
        """
        p = PiecesInProgress(BLOCK)
        state = p.start(4, 3 * BLOCK - 10)
        result = []
        p.takeFree(state, 5, "a", result)
        self.assertEqual(
            result, [(4, 0, BLOCK), (4, BLOCK, BLOCK), (4, 2 * BLOCK, BLOCK - 10)]
        )
        self.assertNotIn(4, p.open)
        self.assertEqual(p.blockReceived(4, 0, "b"), [])
        self.assertFalse(p.blocksDone(4))
        for begin in (0, BLOCK, 2 * BLOCK):
            self.assertEqual(p.blockReceived(4, begin, "a"), [])
        self.assertTrue(p.blocksDone(4))
        self.assertEqual(p.requestedFrom("a"), [])

    def test_abortFreesAndUnstarts(self) -> None:
        """
        An aborted request frees its block; when nothing is requested nor
        received any more, the piece is no longer in progress.
        """
        p = PiecesInProgress(BLOCK)
        result = []
        p.takeFree(p.start(1, 2 * BLOCK), 2, "a", result)
        self.assertEqual(p.requestKeys("a"), [(1, 0), (1, BLOCK)])
        self.assertFalse(p.abort(1, 0, "a"))
        self.assertIn(1, p.open)
        self.assertTrue(p.abort(1, BLOCK, "a"))
        self.assertNotIn(1, p)
        self.assertEqual(p.requestKeys("a"), [])

    def test_endgameDuplicates(self) -> None:
        """
        In endgame a block already requested from one peer is requested
        from another; the first to deliver names the others to cancel.
        """
        p = PiecesInProgress(BLOCK)
        result = []
        p.takeFree(p.start(0, 2 * BLOCK), 2, "a", result)
        duplicates = []
        p.takeDuplicates(bits(1, 0), 5, "b", duplicates, random.Random(1))
        self.assertEqual(sorted(duplicates), [(0, 0, BLOCK), (0, BLOCK, BLOCK)])
        self.assertTrue(p.isRequestedFrom(0, 0, "b"))
        self.assertEqual(p.blockReceived(0, 0, "b"), ["a"])
        self.assertFalse(p.isRequestedFrom(0, 0, "a"))
        self.assertEqual(p.requestedFrom("a"), [(0, BLOCK, BLOCK)])

    def test_badOffsets(self) -> None:
        """
        Offsets that are not a block of a piece in progress are ignored.
        """
        p = PiecesInProgress(BLOCK)
        result = []
        p.takeFree(p.start(0, BLOCK), 1, "a", result)
        for index, begin in [(0, 1), (0, -BLOCK), (0, BLOCK), (1, 0)]:
            self.assertEqual(p.blockReceived(index, begin, "a"), [])
            self.assertFalse(p.abort(index, begin, "a"))

    def test_drop(self) -> None:
        """
        A dropped piece forgets its requests.
        """
        p = PiecesInProgress(BLOCK)
        result = []
        p.takeFree(p.start(0, 2 * BLOCK), 2, "a", result)
        p.drop(0)
        self.assertNotIn(0, p)
        self.assertEqual(p.requestedFrom("a"), [])
