"""
Tests for L{btorrent.engine.picker}.

Pickers are built from strings in the libtorrent style: C{"2203"} gives the
availability of each piece and C{"* "} marks the pieces we have.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Dict, List, Optional, Set, Tuple

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.codec.bitfield import Bitfield
from btorrent.engine.picker import BLOCK_SIZE, PiecePicker
from btorrent.interfaces import IPiecePicker

BS = 16


def bits(pattern: str, length: Optional[int] = None) -> Bitfield:
    """
    A bitfield with the pieces marked C{*} in C{pattern} set.
    """
    bitfield = Bitfield(len(pattern) if length is None else length)
    for index, mark in enumerate(pattern):
        if mark == "*":
            bitfield.add(index)
    return bitfield


def allBits(length: int) -> Bitfield:
    """
    A bitfield with every piece set.
    """
    return bits("*" * length)


def makePicker(
    availability: str,
    have: str = "",
    order: str = "random",
    seed: int = 0,
    blocksPerPiece: int = 4,
    lastPieceSize: Optional[int] = None,
) -> PiecePicker:
    """
    Build a picker of C{len(availability)} pieces of C{blocksPerPiece}
    blocks of C{BS} bytes each.

    @param availability: one digit per piece, how many peers have it.
    @param have: C{*} for each piece we have.
    @param lastPieceSize: the size of the last piece (default: full).
    """
    count = len(availability)
    pieceLength = blocksPerPiece * BS
    if lastPieceSize is None:
        lastPieceSize = pieceLength
    total = (count - 1) * pieceLength + lastPieceSize
    picker = PiecePicker(
        count, pieceLength, total, random.Random(seed), order=order, blockSize=BS
    )
    for index, digit in enumerate(availability):
        for _ in range(int(digit)):
            picker.peerHas(index)
    for index, mark in enumerate(have):
        if mark == "*":
            picker.have(index)
    return picker


def pickAll(picker: PiecePicker, peerPieces: Bitfield, peerKey: object) -> List:
    """
    Pick until the picker returns nothing new for that peer.
    """
    result = []
    while True:
        blocks = picker.pick(peerPieces, 1000, peerKey)
        if not blocks:
            return result
        result.extend(blocks)


class CountingBitfield(Bitfield):
    """
    A bitfield that counts membership tests.
    """

    __slots__ = ("lookups",)

    def __contains__(self, index: object) -> bool:
        self.lookups += 1
        return Bitfield.__contains__(self, index)


def countingCopy(bitfield: Bitfield) -> CountingBitfield:
    counting = CountingBitfield.fromBytes(bitfield.toBytes(), len(bitfield))
    counting.lookups = 0
    return counting


class ConstructionTests(SynchronousTestCase):
    """
    Building a picker and its sizes.
    """

    def test_interface(self) -> None:
        """
        L{PiecePicker} provides L{IPiecePicker}.
        """
        self.assertTrue(verifyObject(IPiecePicker, makePicker("111")))

    def test_badArguments(self) -> None:
        """
        Sizes that do not fit together and unknown orders raise
        L{ValueError}.
        """
        rng = random.Random(0)
        for args in [
            (3, 64, 128),  # too short for 3 pieces
            (3, 64, 193),  # too long
            (0, 64, 1),
            (-1, 64, 0),
            (1, 0, 0),
        ]:
            self.assertRaises(ValueError, PiecePicker, *args, rng)
        self.assertRaises(ValueError, PiecePicker, 1, 64, 64, rng, order="backwards")
        self.assertRaises(ValueError, PiecePicker, 1, 64, 64, rng, blockSize=0)

    def test_defaults(self) -> None:
        """
        Blocks are 16 KiB by default; a new picker wants every piece.
        """
        picker = PiecePicker(2, 2**18, 2**18 + 1, random.Random(0))
        self.assertEqual(picker.blockSize, BLOCK_SIZE)
        self.assertEqual(BLOCK_SIZE, 16384)
        self.assertEqual(picker.blockCount(0), 16)
        self.assertEqual(picker.blockCount(1), 1)
        self.assertEqual(picker.pieceSize(1), 1)
        self.assertFalse(picker.complete)
        self.assertTrue(picker.isWanted(0))
        self.assertEqual(picker.haveBitfield.count, 0)
        self.assertEqual(len(picker.haveBitfield), 2)

    def test_empty(self) -> None:
        """
        A torrent without pieces is complete and picks nothing.
        """
        picker = PiecePicker(0, 64, 0, random.Random(0))
        self.assertTrue(picker.complete)
        self.assertEqual(picker.pick(Bitfield(0), 10, "a"), [])

    def test_indexChecks(self) -> None:
        """
        Methods taking a piece index refuse one out of range.
        """
        picker = makePicker("11")
        for method in [
            picker.have,
            picker.peerHas,
            picker.isWanted,
            picker.pieceFailed,
            picker.availability,
            picker.pieceSize,
        ]:
            self.assertRaises(IndexError, method, 2)
            self.assertRaises(IndexError, method, -1)


class PickTests(SynchronousTestCase):
    """
    Choosing blocks outside the endgame.
    """

    def test_shortLastPieceAndBlock(self) -> None:
        """
        The last piece may be short, and its last block shorter than a block.
        """
        picker = makePicker("11", lastPieceSize=BS + 5)
        blocks = sorted(pickAll(picker, bits("**"), "a"))
        self.assertEqual(
            blocks,
            [(0, 0, BS), (0, BS, BS), (0, 2 * BS, BS), (0, 3 * BS, BS)]
            + [(1, 0, BS), (1, BS, 5)],
        )
        self.assertEqual(picker.pieceSize(1), BS + 5)
        self.assertEqual(picker.blockCount(1), 2)

    def test_tinyLastPiece(self) -> None:
        """
        A last piece of one byte is a single one-byte block.
        """
        picker = makePicker("11", have="*", lastPieceSize=1)
        self.assertEqual(picker.pick(bits("**"), 10, "a"), [(1, 0, 1)])

    def test_blocksOfOnePieceInOrder(self) -> None:
        """
        The blocks of a new piece are requested in order, and a piece is
        finished before another starts.
        """
        picker = makePicker("1111")
        blocks = picker.pick(allBits(4), 6, "a")
        self.assertEqual(len(blocks), 6)
        first = blocks[0][0]
        self.assertEqual(blocks[:4], [(first, b * BS, BS) for b in range(4)])
        second = blocks[4][0]
        self.assertNotEqual(first, second)
        self.assertEqual(blocks[4:], [(second, 0, BS), (second, BS, BS)])

    def test_noBlockTwice(self) -> None:
        """
        Outside the endgame a block requested from one peer is not picked for
        another, nor again for the same one.
        """
        picker = makePicker("22222")
        a = picker.pick(allBits(5), 7, "a")
        b = picker.pick(allBits(5), 7, "b")
        c = picker.pick(allBits(5), 6, "a")
        everything = a + b + c
        self.assertEqual(len(everything), 20)
        self.assertEqual(len(set(everything)), 20)
        self.assertTrue(picker.endgame)
        [duplicate] = picker.pick(allBits(5), 1, "a")
        self.assertIn(duplicate, b)

    def test_onlyPiecesThePeerHas(self) -> None:
        """
        Only pieces the peer has are picked, and a peer without any piece we
        want gets nothing.
        """
        picker = makePicker("1111111", have="*      ")
        blocks = pickAll(picker, bits("** * * "), "a")
        self.assertEqual({index for index, _, _ in blocks}, {1, 3, 5})
        self.assertEqual(picker.pick(bits("*      "), 5, "b"), [])
        self.assertEqual(picker.pick(bits("       "), 5, "b"), [])
        self.assertEqual(picker.pick(bits("*  * * "), 5, "b"), [])

    def test_havePiecesNeverPicked(self) -> None:
        """
        Pieces we have are never picked; having every piece makes the picker
        complete.
        """
        picker = makePicker("33333", have="** **")
        self.assertFalse(picker.complete)
        blocks = pickAll(picker, allBits(5), "a")
        self.assertEqual({index for index, _, _ in blocks}, {2})
        picker.have(2)
        self.assertTrue(picker.complete)
        self.assertEqual(picker.pick(allBits(5), 5, "b"), [])
        self.assertEqual(picker.partialPieces(), [])

    def test_countZero(self) -> None:
        """
        Asking for no block gives none and marks nothing.
        """
        picker = makePicker("1")
        self.assertEqual(picker.pick(allBits(1), 0, "a"), [])
        self.assertEqual(picker.partialPieces(), [])

    def test_partialPiecesFirst(self) -> None:
        """
        A peer that has a piece in progress gets its free blocks before any
        new piece.
        """
        picker = makePicker("1111111111")
        [(started, _, _)] = picker.pick(allBits(10), 1, "a")
        blocks = picker.pick(allBits(10), 3, "b")
        self.assertEqual(blocks, [(started, b * BS, BS) for b in (1, 2, 3)])

    def test_partialPieceOfAbortedBlockFirst(self) -> None:
        """
        A block returned to the pool is picked before any new piece.
        """
        picker = makePicker("1111111111")
        blocks = picker.pick(allBits(10), 4, "a")
        picker.blockReceived(*blocks[0][:2], "a")
        picker.abort(*blocks[2][:2], "a")
        self.assertEqual(picker.pick(allBits(10), 1, "b"), [blocks[2]])

    def test_partialPieceTheePeerLacks(self) -> None:
        """
        A piece in progress that the peer does not have is skipped.
        """
        picker = makePicker("1111")
        [(started, _, _)] = picker.pick(bits("*   "), 1, "a")
        self.assertEqual(started, 0)
        blocks = picker.pick(bits(" ***"), 2, "b")
        self.assertNotIn(0, {index for index, _, _ in blocks})

    def test_randomCoversEveryPiece(self) -> None:
        """
        Picking one block at a time from a single peer eventually picks every
        block of every piece exactly once.
        """
        picker = makePicker("1" * 50)
        blocks = []
        while True:
            new = picker.pick(allBits(50), 1, "a")
            if not new:
                break
            blocks.extend(new)
        self.assertEqual(len(blocks), 200)
        self.assertEqual(
            set(blocks), {(i, b * BS, BS) for i in range(50) for b in range(4)}
        )

    def test_randomOrderDependsOnSeed(self) -> None:
        """
        The order of pieces is random: different seeds give different orders,
        the same seed the same order, and it is not the index order.
        """

        def order(seed: int) -> List[int]:
            picker = makePicker("1" * 30, seed=seed, blocksPerPiece=1)
            return [index for index, _, _ in pickAll(picker, allBits(30), "a")]

        orders = {tuple(order(seed)) for seed in range(10)}
        self.assertEqual(len(orders), 10)
        self.assertEqual(order(3), order(3))
        self.assertNotIn(tuple(range(30)), orders)
        for each in orders:
            self.assertEqual(sorted(each), list(range(30)))

    def test_randomUniform(self) -> None:
        """
        The first piece picked is uniform among the pieces the peer has and
        we want (loose bounds over 4000 seeded trials).
        """
        counts: Counter = Counter()
        rng = random.Random(1)
        peer = bits("* *** ** *")
        for _ in range(4000):
            picker = PiecePicker(10, 64, 640, rng, blockSize=BS)
            picker.addPeer(peer)
            picker.have(0)
            [(index, _, _)] = picker.pick(peer, 1, "a")
            counts[index] += 1
        self.assertEqual(set(counts), {2, 3, 4, 6, 7, 9})
        for index in counts:
            self.assertTrue(550 < counts[index] < 780, counts)

    def test_randomUniformWhenThePeerHasFewPieces(self) -> None:
        """
        When the peer has few of many pieces (rejection sampling gives way
        to a scan), the choice is still uniform among them.
        """
        counts: Counter = Counter()
        rng = random.Random(2)
        peer = Bitfield(300)
        for index in (5, 150, 299):
            peer.add(index)
        everyone = allBits(300)
        for _ in range(600):
            picker = PiecePicker(300, 64, 300 * 64, rng, blockSize=BS)
            picker.addPeer(everyone)
            [(index, _, _)] = picker.pick(peer, 1, "a")
            counts[index] += 1
        self.assertEqual(set(counts), {5, 150, 299})
        for index in counts:
            self.assertTrue(150 < counts[index] < 250, counts)

    def test_pieceNobodyHasStillPicked(self) -> None:
        """
        A piece the peer has is picked even when the availability (from
        L{PiecePicker.addPeer}) was never told about it.
        """
        for order in ("random", "rarest"):
            picker = makePicker("000", order=order)
            self.assertEqual({i for i, _, _ in pickAll(picker, bits(" * "), "a")}, {1})

    def test_availabilityRandomOrder(self) -> None:
        """
        In random order too, availability follows peers coming and going,
        and pieces stay pickable whatever it says.
        """
        picker = makePicker("1111", blocksPerPiece=1)
        picker.addPeer(bits("**  "))
        picker.removePeer(bits(" ** "))
        picker.removePeer(bits(" ** "))
        self.assertEqual([picker.availability(i) for i in range(4)], [2, 0, 0, 1])
        picker.removePeer(allBits(4))
        picker.removePeer(allBits(4))
        self.assertEqual([picker.availability(i) for i in range(4)], [0, 0, 0, 0])
        picker.addPeer(bits("*  *"))
        self.assertEqual([picker.availability(i) for i in range(4)], [1, 0, 0, 1])
        self.assertEqual(
            sorted(pickAll(picker, allBits(4), "a")), [(i, 0, BS) for i in range(4)]
        )

    def test_pickCostDoesNotScale(self) -> None:
        """
        With 65536 pieces and a peer that has half of them, starting new
        pieces costs a few bitfield lookups per piece, not a scan.
        """
        count = 65536
        picker = PiecePicker(count, BS, count * BS, random.Random(5), blockSize=BS)
        half = Bitfield(count)
        for index in range(0, count, 2):
            half.add(index)
        picker.addPeer(allBits(count))
        peer = countingCopy(half)
        blocks = picker.pick(peer, 250, "a")
        self.assertEqual(len(blocks), 250)
        self.assertEqual({index % 2 for index, _, _ in blocks}, {0})
        self.assertLess(peer.lookups, 2500)

    def test_rarestCostDoesNotScale(self) -> None:
        """
        Rarest first with many pieces of the same availability costs a few
        lookups per piece too.
        """
        count = 65536
        picker = PiecePicker(
            count, BS, count * BS, random.Random(5), order="rarest", blockSize=BS
        )
        picker.addPeer(allBits(count))
        picker.addPeer(allBits(count))
        for index in range(0, count, 3):
            picker.peerHas(index)
        peer = countingCopy(allBits(count))
        blocks = picker.pick(peer, 250, "a")
        self.assertEqual(len(blocks), 250)
        self.assertEqual({index % 3 for index, _, _ in blocks} & {0}, set())
        self.assertLess(peer.lookups, 2500)


class RarestTests(SynchronousTestCase):
    """
    Rarest-first order.
    """

    def test_rarestFirst(self) -> None:
        """
        Pieces are started in order of availability, lowest first.
        """
        picker = makePicker("3215943", order="rarest", blocksPerPiece=1)
        order = [index for index, _, _ in pickAll(picker, allBits(7), "a")]
        availability = [int(c) for c in "3215943"]
        self.assertEqual(
            [availability[i] for i in order], sorted(availability[i] for i in order)
        )
        self.assertEqual(order[:2], [2, 1])

    def test_rarestTieBreakRandom(self) -> None:
        """
        Among pieces of equal availability the choice is random.
        """
        firsts = set()
        for seed in range(30):
            picker = makePicker("5252225", order="rarest", seed=seed)
            [(index, _, _)] = picker.pick(allBits(7), 1, "a")
            firsts.add(index)
        self.assertEqual(firsts, {1, 3, 4, 5})

    def test_availabilityUpdates(self) -> None:
        """
        L{PiecePicker.addPeer}, L{PiecePicker.removePeer} and
        L{PiecePicker.peerHas} move pieces between availabilities.
        """
        picker = makePicker("111", order="rarest", blocksPerPiece=1)
        picker.addPeer(bits("** "))
        self.assertEqual([picker.availability(i) for i in range(3)], [2, 2, 1])
        picker.removePeer(bits(" **"))
        self.assertEqual([picker.availability(i) for i in range(3)], [2, 1, 0])
        picker.peerHas(2)
        picker.peerHas(2)
        picker.peerHas(2)
        self.assertEqual(picker.availability(2), 3)
        order = [index for index, _, _ in pickAll(picker, allBits(3), "a")]
        self.assertEqual(order, [1, 0, 2])

    def test_removePeerNeverNegative(self) -> None:
        """
        Removing more peers than were added does not make availability
        negative.
        """
        picker = makePicker("1", order="rarest")
        picker.removePeer(allBits(1))
        picker.removePeer(allBits(1))
        self.assertEqual(picker.availability(0), 0)
        self.assertEqual(len(picker.pick(allBits(1), 10, "a")), 4)

    def test_rarestPartialFirst(self) -> None:
        """
        A piece in progress comes before a rarer new piece.
        """
        picker = makePicker("51", order="rarest")
        [(started, _, _)] = picker.pick(bits("* "), 1, "a")
        self.assertEqual(started, 0)
        self.assertEqual(picker.pick(allBits(2), 1, "b"), [(0, BS, BS)])
        self.assertEqual(
            picker.pick(allBits(2), 3, "b"),
            [(0, 2 * BS, BS), (0, 3 * BS, BS), (1, 0, BS)],
        )


class EventTests(SynchronousTestCase):
    """
    Received, aborted and failed blocks.
    """

    def test_blockReceived(self) -> None:
        """
        A received block is never picked again; once every block of a piece
        is received the piece awaits its hash check.
        """
        picker = makePicker("1")
        blocks = picker.pick(allBits(1), 4, "a")
        for index, begin, _ in blocks[:3]:
            self.assertEqual(picker.blockReceived(index, begin, "a"), [])
            self.assertFalse(picker.pieceBlocksDone(0))
        picker.abort(0, 3 * BS, "a")
        self.assertEqual(picker.pick(allBits(1), 4, "b"), [(0, 3 * BS, BS)])
        self.assertEqual(picker.blockReceived(0, 3 * BS, "b"), [])
        self.assertTrue(picker.pieceBlocksDone(0))
        self.assertEqual(picker.pick(allBits(1), 4, "c"), [])
        picker.have(0)
        self.assertFalse(picker.pieceBlocksDone(0))
        self.assertTrue(picker.complete)

    def test_blockReceivedIgnored(self) -> None:
        """
        A block not requested from that peer, already received, at a bad
        offset or in a piece not in progress is ignored.
        """
        picker = makePicker("11")
        picker.pick(bits("* "), 2, "a")
        self.assertFalse(picker.isRequestedFrom(0, 0, "b"))
        self.assertEqual(picker.blockReceived(0, 0, "b"), [])
        self.assertEqual(picker.blockReceived(0, 2 * BS, "a"), [])
        self.assertEqual(picker.blockReceived(0, 1, "a"), [])
        self.assertEqual(picker.blockReceived(0, -BS, "a"), [])
        self.assertEqual(picker.blockReceived(0, 4 * BS, "a"), [])
        self.assertEqual(picker.blockReceived(1, 0, "a"), [])
        self.assertEqual(picker.blockReceived(7, 0, "a"), [])
        self.assertTrue(picker.isRequestedFrom(0, 0, "a"))
        self.assertEqual(picker.blockReceived(0, 0, "a"), [])
        self.assertFalse(picker.isRequestedFrom(0, 0, "a"))
        self.assertEqual(picker.blockReceived(0, 0, "a"), [])
        self.assertEqual(picker.requestedFrom("a"), [(0, BS, BS)])
        # Nothing of this counted: piece 0 still has blocks 2 and 3 free.
        self.assertEqual(
            picker.pick(bits("* "), 5, "b"), [(0, 2 * BS, BS), (0, 3 * BS, BS)]
        )

    def test_abortPeer(self) -> None:
        """
        L{PiecePicker.abortPeer} returns every block requested from a peer
        (it choked us or left), and keeps what it sent.
        """
        picker = makePicker("111")
        blocks = picker.pick(allBits(3), 6, "a")
        picker.blockReceived(*blocks[0][:2], "a")
        picker.abortPeer("a")
        self.assertEqual(picker.requestedFrom("a"), [])
        again = pickAll(picker, allBits(3), "b")
        self.assertEqual(len(again), 11)
        self.assertNotIn(blocks[0], again)
        self.assertEqual(
            set(again) | {blocks[0]},
            {(i, b * BS, BS) for i in range(3) for b in range(4)},
        )
        picker.abortPeer("nobody")

    def test_abortedUntouchedPieceNotPartial(self) -> None:
        """
        A piece whose every request was aborted, with nothing received, is
        no longer in progress.
        """
        picker = makePicker("11")
        picker.pick(bits("* "), 2, "a")
        self.assertEqual(picker.partialPieces(), [0])
        picker.abortPeer("a")
        self.assertEqual(picker.partialPieces(), [])
        picker.abort(0, 0, "a")
        self.assertEqual(len(pickAll(picker, allBits(2), "b")), 8)

    def test_abortIgnored(self) -> None:
        """
        Aborting a block not requested from that peer changes nothing.
        """
        picker = makePicker("1")
        picker.pick(allBits(1), 1, "a")
        picker.abort(0, 0, "b")
        picker.abort(0, BS, "a")
        picker.abort(0, 3, "a")
        self.assertEqual(picker.requestedFrom("a"), [(0, 0, BS)])
        self.assertEqual(picker.pick(allBits(1), 1, "b"), [(0, BS, BS)])

    def test_pieceFailed(self) -> None:
        """
        A piece that failed its hash check is picked again, every block.
        """
        picker = makePicker("11", have=" *")
        blocks = pickAll(picker, allBits(2), "a")
        for index, begin, _ in blocks:
            picker.blockReceived(index, begin, "a")
        self.assertTrue(picker.pieceBlocksDone(0))
        self.assertEqual(pickAll(picker, allBits(2), "b"), [])
        picker.pieceFailed(0)
        self.assertFalse(picker.pieceBlocksDone(0))
        self.assertFalse(picker.complete)
        self.assertEqual(sorted(pickAll(picker, allBits(2), "b")), sorted(blocks))

    def test_pieceFailedIgnoredForHadOrIdle(self) -> None:
        """
        L{PiecePicker.pieceFailed} on a piece we have or one not in progress
        changes nothing.
        """
        picker = makePicker("11", have="* ")
        picker.pieceFailed(0)
        picker.pieceFailed(1)
        self.assertEqual(picker.haveBitfield.toBytes(), bits("* ").toBytes())
        self.assertEqual(len(pickAll(picker, allBits(2), "a")), 4)

    def test_haveDropsRequests(self) -> None:
        """
        Having a piece (found elsewhere) forgets its requests.
        """
        picker = makePicker("11")
        picker.pick(bits("* "), 2, "a")
        picker.have(0)
        picker.have(0)
        self.assertEqual(picker.requestedFrom("a"), [])
        self.assertEqual(picker.blockReceived(0, 0, "a"), [])
        self.assertEqual({i for i, _, _ in pickAll(picker, allBits(2), "a")}, {1})


class EndgameTests(SynchronousTestCase):
    """
    The endgame: the last blocks are requested from several peers.
    """

    def test_endgameDuplicates(self) -> None:
        """
        When every block is requested, another peer gets blocks requested
        from others, never one already requested from itself, and the first
        arrival returns the other peers to cancel.
        """
        picker = makePicker("22")
        blocksA = picker.pick(allBits(2), 8, "a")
        self.assertEqual(len(blocksA), 8)
        self.assertTrue(picker.endgame)
        blocksB = picker.pick(allBits(2), 3, "b")
        self.assertEqual(len(blocksB), 3)
        self.assertTrue(set(blocksB) <= set(blocksA))
        blocksB += picker.pick(allBits(2), 10, "b")
        self.assertEqual(sorted(blocksB), sorted(blocksA))
        self.assertEqual(picker.pick(allBits(2), 10, "b"), [])
        # "c" gets duplicates too.
        blocksC = picker.pick(allBits(2), 1, "c")
        self.assertEqual(len(blocksC), 1)
        index, begin, _ = blocksC[0]
        self.assertEqual(sorted(picker.blockReceived(index, begin, "b")), ["a", "c"])
        self.assertNotIn(blocksC[0], picker.requestedFrom("a"))
        self.assertEqual(picker.blockReceived(index, begin, "a"), [])
        self.assertNotIn(blocksC[0], picker.pick(allBits(2), 10, "d"))

    def test_endgamePrefersLeastRequested(self) -> None:
        """
        In endgame a block requested from fewer peers is duplicated first.
        """
        picker = makePicker("2", blocksPerPiece=2)
        picker.pick(allBits(1), 1, "a")
        picker.pick(allBits(1), 1, "b")
        self.assertEqual(picker.pick(allBits(1), 1, "c"), [(0, 0, BS)])
        self.assertEqual(picker.pick(allBits(1), 1, "c"), [(0, BS, BS)])
        self.assertEqual(sorted(picker.blockReceived(0, BS, "c")), ["b"])

    def test_notEndgameWhileBlocksFree(self) -> None:
        """
        While a wanted piece is not started (even one this peer lacks), there
        are no duplicates.
        """
        picker = makePicker("11")
        picker.pick(bits("* "), 4, "a")
        self.assertFalse(picker.endgame)
        self.assertEqual(picker.pick(bits("* "), 4, "b"), [])

    def test_endgameAbortKeepsOtherRequest(self) -> None:
        """
        In endgame, aborting one peer's request leaves the block requested
        from the other; aborting both frees it.
        """
        picker = makePicker("1", blocksPerPiece=1)
        picker.pick(allBits(1), 1, "a")
        picker.pick(allBits(1), 1, "b")
        picker.abortPeer("a")
        self.assertEqual(picker.pick(allBits(1), 1, "a"), [(0, 0, BS)])
        picker.abort(0, 0, "a")
        picker.abort(0, 0, "b")
        self.assertFalse(picker.endgame)
        self.assertEqual(picker.partialPieces(), [])
        self.assertEqual(picker.pick(allBits(1), 1, "c"), [(0, 0, BS)])
        self.assertEqual(picker.blockReceived(0, 0, "c"), [])


class WantedTests(SynchronousTestCase):
    """
    Selective download.
    """

    def test_setWanted(self) -> None:
        """
        Only wanted pieces are picked, and the picker is complete once they
        are all had.
        """
        picker = makePicker("1111", have="*   ")
        picker.setWanted([0, 2])
        self.assertFalse(picker.isWanted(0))
        self.assertFalse(picker.isWanted(1))
        self.assertTrue(picker.isWanted(2))
        self.assertFalse(picker.isInteresting(bits(" * *")))
        self.assertTrue(picker.isInteresting(bits("  **")))
        self.assertEqual({i for i, _, _ in pickAll(picker, allBits(4), "a")}, {2})
        picker.have(2)
        self.assertTrue(picker.complete)
        self.assertFalse(picker.isInteresting(allBits(4)))
        picker.setWanted(range(4))
        self.assertFalse(picker.complete)
        self.assertEqual({i for i, _, _ in pickAll(picker, allBits(4), "a")}, {1, 3})

    def test_setWantedKeepsPieceInProgress(self) -> None:
        """
        A piece in progress is finished even if no longer wanted.
        """
        picker = makePicker("11")
        picker.pick(bits("* "), 1, "a")
        picker.setWanted([1])
        self.assertEqual(
            picker.pick(bits("* "), 4, "b"),
            [(0, BS, BS), (0, 2 * BS, BS), (0, 3 * BS, BS)],
        )


class PickerMachine(RuleBasedStateMachine):
    """
    Random sequences of operations keep the picker's promises, checked
    against a simple model of every block's state.
    """

    def __init__(self) -> None:
        super().__init__()
        self.picker: Optional[PiecePicker] = None
        self.requested: Dict[Tuple[int, int], Set[str]] = {}
        self.received: Set[Tuple[int, int]] = set()
        self.peers: Dict[str, Bitfield] = {}

    @initialize(
        pieceCount=st.integers(1, 6),
        blocksPerPiece=st.integers(1, 3),
        lastShort=st.integers(0, BS * 3 - 1),
        order=st.sampled_from(["random", "rarest"]),
        seed=st.integers(0, 2**32),
        masks=st.lists(st.integers(0, 63), min_size=1, max_size=3),
    )
    def setUp(self, pieceCount, blocksPerPiece, lastShort, order, seed, masks):
        pieceLength = blocksPerPiece * BS
        lastSize = lastShort % pieceLength + 1
        self.pieceLength = pieceLength
        self.picker = PiecePicker(
            pieceCount,
            pieceLength,
            (pieceCount - 1) * pieceLength + lastSize,
            random.Random(seed),
            order=order,
            blockSize=BS,
        )
        for number, mask in enumerate(masks):
            bitfield = Bitfield(pieceCount)
            for index in range(pieceCount):
                if mask & (1 << index):
                    bitfield.add(index)
            self.peers[f"p{number}"] = bitfield
            self.picker.addPeer(bitfield)

    def blocksOf(self, index: int) -> List[Tuple[int, int]]:
        return [(index, b) for b in range(self.picker.blockCount(index))]

    def isEndgame(self) -> bool:
        for index in range(self.picker.pieceCount):
            if not self.picker.isWanted(index):
                continue
            for block in self.blocksOf(index):
                if block not in self.received and not self.requested.get(block):
                    return False
        return True

    @rule(data=st.data(), count=st.integers(1, 8))
    def pick(self, data, count):
        peer = data.draw(st.sampled_from(sorted(self.peers)))
        peerPieces = self.peers[peer]
        blocks = self.picker.pick(peerPieces, count, peer)
        assert len(blocks) <= count
        assert len(set(blocks)) == len(blocks)
        for index, begin, length in blocks:
            assert index in peerPieces
            assert self.picker.isWanted(index)
            assert begin % BS == 0
            assert length == min(BS, self.picker.pieceSize(index) - begin)
            assert length > 0
            key = (index, begin // BS)
            assert key not in self.received
            others = self.requested.setdefault(key, set())
            assert peer not in others
            if others:
                # Duplicates only once every block is requested or received
                # (counting the blocks of this pick that came before).
                assert self.isEndgame(), "duplicate request outside endgame"
            others.add(peer)
        if len(blocks) < count:
            # Nothing left that this peer could give: no free block in a
            # wanted piece it has.
            for index in peerPieces:
                if self.picker.isWanted(index):
                    for block in self.blocksOf(index):
                        assert block in self.received or self.requested.get(block)

    @rule(data=st.data())
    def reconnect(self, data):
        peer = data.draw(st.sampled_from(sorted(self.peers)))
        self.picker.removePeer(self.peers[peer])
        self.picker.addPeer(self.peers[peer])

    @rule(data=st.data())
    def peerHas(self, data):
        peer = data.draw(st.sampled_from(sorted(self.peers)))
        index = data.draw(st.integers(0, self.picker.pieceCount - 1))
        if index not in self.peers[peer]:
            self.peers[peer].add(index)
            self.picker.peerHas(index)

    @rule(data=st.data())
    def receive(self, data):
        pending = sorted(
            (block, peer) for block, peers in self.requested.items() for peer in peers
        )
        if not pending:
            return
        (index, number), peer = data.draw(st.sampled_from(pending))
        others = self.picker.blockReceived(index, number * BS, peer)
        assert sorted(others) == sorted(self.requested[(index, number)] - {peer})
        del self.requested[(index, number)]
        self.received.add((index, number))

    @rule(data=st.data())
    def receiveUnrequested(self, data):
        index = data.draw(st.integers(0, self.picker.pieceCount - 1))
        number = data.draw(st.integers(0, 3))
        peer = data.draw(st.sampled_from(sorted(self.peers)))
        if peer in self.requested.get((index, number), ()):
            return
        assert self.picker.blockReceived(index, number * BS, peer) == []

    @rule(data=st.data())
    def abort(self, data):
        pending = sorted(
            (block, peer) for block, peers in self.requested.items() for peer in peers
        )
        if not pending:
            return
        (index, number), peer = data.draw(st.sampled_from(pending))
        self.picker.abort(index, number * BS, peer)
        self.requested[(index, number)].discard(peer)

    @rule(data=st.data())
    def abortPeer(self, data):
        peer = data.draw(st.sampled_from(sorted(self.peers)))
        self.picker.abortPeer(peer)
        for peers in self.requested.values():
            peers.discard(peer)

    @rule(data=st.data(), good=st.booleans())
    def verify(self, data, good):
        done = [
            index
            for index in range(self.picker.pieceCount)
            if self.picker.pieceBlocksDone(index)
        ]
        if not done:
            return
        index = data.draw(st.sampled_from(done))
        for block in self.blocksOf(index):
            assert block in self.received
        if good:
            self.picker.have(index)
        else:
            self.picker.pieceFailed(index)
            for block in self.blocksOf(index):
                self.received.discard(block)

    @precondition(lambda self: self.picker is not None)
    @invariant()
    def consistent(self):
        picker = self.picker
        complete = all(
            index in picker.haveBitfield for index in range(picker.pieceCount)
        )
        assert picker.complete == complete
        assert picker.haveBytes == sum(
            picker.pieceSize(index) for index in picker.haveBitfield
        )
        for index in range(picker.pieceCount):
            done = all(block in self.received for block in self.blocksOf(index))
            assert picker.pieceBlocksDone(index) == (
                done and index not in picker.haveBitfield
            )
        for index in range(picker.pieceCount):
            holders = sum(index in bf for bf in self.peers.values())
            assert picker.availability(index) == holders
        for peer in self.peers:
            mine = {
                (index, begin // BS) for index, begin, _ in picker.requestedFrom(peer)
            }
            model = {
                block
                for block, peers in self.requested.items()
                if peer in peers and block[0] not in picker.haveBitfield
            }
            assert mine == model, (peer, mine, model)


class PickerStateTests(SynchronousTestCase):
    """
    Random sequences of operations against L{PickerMachine}.
    """

    def test_machine(self) -> None:
        """
        The picker agrees with the model after any sequence of picks,
        arrivals, aborts, verifications and failures.
        """
        run_state_machine_as_test(
            PickerMachine,
            settings=settings(max_examples=120, stateful_step_count=40, deadline=None),
        )
