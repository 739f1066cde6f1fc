"""
Tests for the transfer controls of L{btorrent.engine.picker}: priorities,
the sequential order, changing the order, and the byte counts that follow
the wanted pieces (C{missingBytes}, C{sizeWhenDone}, C{neededBits}).
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.engine.picker import PiecePicker
from tests.test_picker import BS, allBits, bits, makePicker, pickAll


def firstPieces(picker, peer, count=1000):
    """
    The pieces of the blocks picked for C{peer}, in order, each once.
    """
    seen = []
    for index, _, _ in pickAll(picker, peer, object()):
        if index not in seen:
            seen.append(index)
    return seen[:count]


class PriorityTests(SynchronousTestCase):
    """
    Higher priorities come first, in every order.
    """

    def test_highBeforeNormalBeforeLow(self) -> None:
        for order in ("random", "rarest", "sequential"):
            picker = makePicker("11111111", order=order, seed=3)
            picker.setPriorities([-1, 0, 1, 0, -1, 1, 0, 0])
            got = firstPieces(picker, allBits(8))
            self.assertEqual(sorted(got[:2]), [2, 5], order)
            self.assertEqual(sorted(got[2:6]), [1, 3, 6, 7], order)
            self.assertEqual(sorted(got[6:]), [0, 4], order)

    def test_rarestWithinPriority(self) -> None:
        """
        Within a priority, rarest first; a rare low piece still waits for
        every common high one.
        """
        picker = makePicker("1395", order="rarest")
        picker.setPriorities([-1, 1, 1, 0])
        self.assertEqual(firstPieces(picker, allBits(4)), [1, 2, 3, 0])

    def test_sequentialWithinPriority(self) -> None:
        picker = makePicker("111111", order="sequential")
        picker.setPriorities([0, 0, 1, 0, 1, -1])
        self.assertEqual(firstPieces(picker, allBits(6)), [2, 4, 0, 1, 3, 5])

    def test_priorityReadBack(self) -> None:
        picker = makePicker("111")
        self.assertEqual([picker.priority(i) for i in range(3)], [0, 0, 0])
        picker.setPriorities([1, -1, 0])
        self.assertEqual([picker.priority(i) for i in range(3)], [1, -1, 0])
        picker.setPriorities(None)
        self.assertEqual([picker.priority(i) for i in range(3)], [0, 0, 0])

    def test_badPriorities(self) -> None:
        """
        A list of the wrong length or with another value changes nothing.
        """
        picker = makePicker("111")
        picker.setPriorities([1, 0, 0])
        for bad in ([1, 0], [0, 0, 0, 0], [2, 0, 0], [0, "x", 0], [None, 0, 0]):
            self.assertRaises(ValueError, picker.setPriorities, bad)
        self.assertEqual([picker.priority(i) for i in range(3)], [1, 0, 0])

    def test_availabilityChangesKeepBands(self) -> None:
        """
        Peers coming and going move pieces between pools within their
        priority band.
        """
        picker = makePicker("000000", order="rarest")
        picker.setPriorities([-1, -1, 0, 0, 1, 1])
        peer = allBits(6)
        picker.addPeer(peer)
        picker.addPeer(bits("*    *"))
        picker.removePeer(bits("*    *"))
        picker.peerHas(0)
        got = firstPieces(picker, peer)
        self.assertEqual(sorted(got[:2]), [4, 5])
        self.assertEqual(sorted(got[2:4]), [2, 3])
        self.assertEqual(got[4:], [1, 0])

    def test_abortReturnsToItsBand(self) -> None:
        picker = makePicker("1111", order="sequential")
        picker.setPriorities([0, 0, 0, 1])
        peer = allBits(4)
        blocks = picker.pick(peer, 1, "a")
        self.assertEqual(blocks[0][0], 3)
        picker.abortPeer("a")
        self.assertEqual(picker.pick(peer, 1, "b")[0][0], 3)


class SequentialTests(SynchronousTestCase):
    """
    The sequential order: the lowest index the peer has first.
    """

    def test_inOrder(self) -> None:
        picker = makePicker("1" * 20, order="sequential")
        self.assertEqual(firstPieces(picker, allBits(20)), list(range(20)))

    def test_skipsWhatThePeerLacks(self) -> None:
        picker = makePicker("11111", order="sequential")
        self.assertEqual(firstPieces(picker, bits(" * **")), [1, 3, 4])
        # Then the rest; after them, endgame duplicates.
        self.assertEqual(firstPieces(picker, allBits(5), 2), [0, 2])

    def test_cursorGoesBackForAFailedPiece(self) -> None:
        picker = makePicker("1111", order="sequential", blocksPerPiece=1)
        peer = allBits(4)
        for index in range(3):
            self.assertEqual(picker.pick(peer, 1, "p")[0][0], index)
            picker.blockReceived(index, 0, "p")
        picker.have(0)
        picker.have(1)
        picker.pieceFailed(2)
        self.assertEqual(picker.pick(peer, 1, "p")[0][0], 2)

    def test_lostPieceComesBack(self) -> None:
        picker = makePicker("111", have="***", order="sequential")
        self.assertTrue(picker.complete)
        picker.lose(1)
        self.assertEqual(firstPieces(picker, allBits(3)), [1])

    def test_setOrder(self) -> None:
        """
        Switching to sequential and back: unstarted pieces follow the new
        order, pieces in progress stay in progress.
        """
        picker = makePicker("1" * 30, seed=5, blocksPerPiece=2)
        peer = allBits(30)
        started = picker.pick(peer, 1, "a")[0][0]
        picker.setOrder("sequential")
        self.assertEqual(picker.order, "sequential")
        got = firstPieces(picker, peer)
        self.assertEqual(got[0], started)
        self.assertEqual(got[1:], [i for i in range(30) if i != started])
        picker = makePicker("1" * 30, seed=5)
        picker.setOrder("sequential")
        picker.setOrder("random")
        self.assertNotEqual(firstPieces(picker, allBits(30)), list(range(30)))
        self.assertRaises(ValueError, picker.setOrder, "backwards")

    def test_setOrderRarest(self) -> None:
        picker = makePicker("3142", order="sequential")
        picker.setOrder("rarest")
        self.assertEqual(firstPieces(picker, allBits(4)), [1, 3, 0, 2])

    def test_sequentialLongTorrentCost(self) -> None:
        """
        The cursor keeps picking the next piece cheap however many pieces
        are behind it.
        """
        count = 20000
        picker = PiecePicker(
            count, BS, count * BS, random.Random(0), order="sequential", blockSize=BS
        )
        peer = allBits(count)
        for index in range(count - 5):
            picker.have(index)
        self.assertEqual(picker.pick(peer, 1, "p")[0][0], count - 5)
        self.assertEqual(picker.pools.cursor, count - 5)


class BytesTests(SynchronousTestCase):
    """
    C{missingBytes} and C{sizeWhenDone} count wanted pieces.
    """

    def test_counts(self) -> None:
        picker = makePicker("0000", lastPieceSize=10)  # pieces of 64, last 10
        self.assertEqual(picker.missingBytes, 3 * 64 + 10)
        self.assertEqual(picker.sizeWhenDone, 3 * 64 + 10)
        picker.setWanted([0, 3])
        self.assertEqual(picker.missingBytes, 64 + 10)
        self.assertEqual(picker.sizeWhenDone, 64 + 10)
        picker.have(1)  # an unwanted piece we got anyway
        self.assertEqual(picker.sizeWhenDone, 2 * 64 + 10)
        picker.have(3)
        self.assertEqual(picker.missingBytes, 64)
        picker.lose(3)
        picker.lose(1)
        self.assertEqual(picker.missingBytes, 64 + 10)
        self.assertEqual(picker.sizeWhenDone, 64 + 10)
        picker.setWanted(range(4))
        self.assertEqual(picker.missingBytes, 3 * 64 + 10)

    def test_neededBits(self) -> None:
        picker = makePicker("0000000000")
        picker.setWanted([0, 2, 9])
        picker.have(2)
        needed = picker.neededBits()
        peer = bits("**********")
        theirs = int.from_bytes(peer.toBytes(), "big")
        self.assertEqual(bin(theirs & needed).count("1"), 2)
        self.assertEqual(needed, int.from_bytes(bits("*        *").toBytes(), "big"))
        picker.have(0)
        self.assertEqual(
            picker.neededBits(), int.from_bytes(bits(" " * 9 + "*").toBytes(), "big")
        )

    def test_badWantedChangesNothing(self) -> None:
        picker = makePicker("000")
        picker.setWanted([0])
        self.assertRaises(IndexError, picker.setWanted, [1, 10**9])
        self.assertTrue(picker.isWanted(0))
        self.assertFalse(picker.isWanted(1))

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["want", "have", "lose", "prio", "order"]),
                st.lists(st.integers(0, 7), max_size=8),
            ),
            max_size=30,
        )
    )
    def test_countsAgreeWithAModel(self, operations) -> None:
        """
        Whatever happens, the counts are those recomputed from scratch.
        """
        picker = makePicker("12301230", lastPieceSize=7)
        for kind, indexes in operations:
            if kind == "want":
                picker.setWanted(indexes)
            elif kind == "have":
                for i in indexes:
                    picker.have(i)
            elif kind == "lose":
                for i in indexes:
                    picker.lose(i)
            elif kind == "prio":
                picker.setPriorities(
                    [(i % 3) - 1 for i in indexes] + [0] * (8 - len(indexes))
                )
            else:
                picker.setOrder(["random", "rarest", "sequential"][len(indexes) % 3])
            have = picker.haveBitfield
            wanted = [picker._wanted[i] for i in range(8)]
            missing = sum(
                picker.pieceSize(i) for i in range(8) if wanted[i] and i not in have
            )
            skipped = sum(
                picker.pieceSize(i) for i in range(8) if not wanted[i] and i not in have
            )
            self.assertEqual(picker.missingBytes, missing)
            self.assertEqual(picker.sizeWhenDone, picker.totalLength - skipped)
            self.assertEqual(picker.complete, missing == 0)
            pooled = sorted(
                i for pool in picker.pools.pools.values() for i in pool.items
            )
            self.assertEqual(
                pooled,
                [i for i in range(8) if wanted[i] and i not in have],
            )
