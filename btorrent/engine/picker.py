"""
Which blocks to request from which peer.

A pure policy object: it knows pieces, blocks and bitfields, never a
connection.  Peers are named by an opaque, hashable C{peerKey} chosen by the
caller (in practice the C{PeerProtocol} itself).

Life of a piece::

    wanted, not started  --pick-->  in progress (blocks free / requested by
    peer keys / received)  --all blocks received-->  the caller hashes it
      --have(index)-->  had, never picked again
      --pieceFailed(index)-->  wanted, not started again

Choosing a new piece is uniformly random among the pieces the peer has and we
want (C{order="random"}), rarest first with a random tie-break
(C{order="rarest"}), or the lowest index first (C{order="sequential"}, for
people who watch while downloading).  Whatever the order, a piece of higher
priority (L{PiecePicker.setPriorities}: high 1, normal 0, low -1, as
Transmission numbers them) comes before any piece of lower priority.

The picker composes two parts: L{btorrent.engine.availability} (how many
peers have each piece, and the unstarted pieces in pools drawn in the
order) and L{btorrent.engine.inprogress} (the blocks of the pieces started:
free, requested from which peers, received; endgame duplicates).  It keeps
what we want and have, and decides which part answers.
"""

from __future__ import annotations

import random
from typing import Any, Hashable, Iterable, List, Optional, Sequence

from zope.interface import implementer

from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import BLOCK_SIZE
from btorrent.engine.availability import ORDERS, Availability
from btorrent.engine.inprogress import Block, PiecesInProgress
from btorrent.interfaces import IPiecePicker

__all__ = ["BLOCK_SIZE", "ORDERS", "Block", "PiecePicker"]


@implementer(IPiecePicker)
class PiecePicker:
    """
    Chooses the blocks to request from each peer.

    @ivar haveBitfield: the pieces we have (verified), a
        L{btorrent.codec.bitfield.Bitfield}.  Read it, do not change it: call
        L{have}.
    @ivar pieceCount: the number of pieces.
    @ivar blockSize: the size of a request (the last block of the last piece
        may be shorter).
    @ivar pools: the availability and the unstarted wanted pieces
        (L{Availability}).
    @ivar inProgress: the blocks of the pieces started (L{PiecesInProgress}).
    """

    def __init__(
        self,
        pieceCount: int,
        pieceLength: int,
        totalLength: int,
        rng: random.Random,
        order: str = "random",
        blockSize: int = BLOCK_SIZE,
    ) -> None:
        """
        @param pieceCount: the number of pieces.
        @param pieceLength: the length of every piece but the last.
        @param totalLength: the length of the torrent's data.
        @param rng: the source of randomness (a seeded L{random.Random} in
            tests).
        @param order: C{"random"} (a new piece chosen uniformly among those
            the peer has and we want), C{"rarest"} (the lowest availability
            first, random among equals) or C{"sequential"} (the lowest
            index first).
        @param blockSize: the size of a request.
        @raise ValueError: for inconsistent sizes or an unknown order.
        """
        if order not in ORDERS:
            raise ValueError(f"unknown piece order {order!r}")
        if pieceCount < 0 or pieceLength <= 0 or blockSize <= 0:
            raise ValueError("piece count, piece length and block size must be > 0")
        if pieceCount == 0:
            if totalLength != 0:
                raise ValueError("no pieces but a non-zero total length")
        elif (
            not (pieceCount - 1) * pieceLength
            < totalLength
            <= (pieceCount * pieceLength)
        ):
            raise ValueError(
                f"total length {totalLength} does not fit {pieceCount} pieces "
                f"of {pieceLength}"
            )
        self.pieceCount = pieceCount
        self.pieceLength = pieceLength
        self.totalLength = totalLength
        self.blockSize = blockSize
        self._rng = rng
        self.haveBitfield = Bitfield(pieceCount)
        self._wanted = bytearray(b"\x01" * pieceCount)
        # Wanted and not had: how many, how many bytes; bytes of pieces
        # neither wanted nor had.
        self._missing = pieceCount
        self._missingBytes = totalLength
        self._skippedBytes = 0
        # neededBits(), until a piece is had, lost or (un)wanted.
        self._needed: Optional[int] = None
        self.pools = Availability(pieceCount, rng, order)
        self.inProgress = PiecesInProgress(blockSize)

    @property
    def order(self) -> str:
        """
        How new pieces are chosen (one of L{ORDERS}).
        """
        return self.pools.order

    # Sizes

    def pieceSize(self, index: int) -> int:
        """
        @return: the length of piece C{index} (the last one may be short).
        """
        self._checkIndex(index)
        if index == self.pieceCount - 1:
            return self.totalLength - index * self.pieceLength
        return self.pieceLength

    def blockCount(self, index: int) -> int:
        """
        @return: the number of blocks of piece C{index}.
        """
        return (self.pieceSize(index) + self.blockSize - 1) // self.blockSize

    def _checkIndex(self, index: int) -> None:
        if not 0 <= index < self.pieceCount:
            raise IndexError(f"piece index {index} out of range")

    # Availability

    def addPeer(self, bitfield: Bitfield) -> None:
        """
        Count a peer's pieces in the availability.

        @param bitfield: the peer's pieces.
        """
        self.pools.shift(bitfield, 1)

    def removePeer(self, bitfield: Bitfield) -> None:
        """
        Remove a peer's pieces from the availability (it disconnected).

        @param bitfield: the peer's pieces, as counted by L{addPeer} and
            L{peerHas}.
        """
        self.pools.shift(bitfield, -1)

    def peerHas(self, index: int) -> None:
        """
        A peer announced piece C{index}.
        """
        self._checkIndex(index)
        self.pools.set(index, self.pools.counts[index] + 1)

    def availability(self, index: int) -> int:
        """
        @return: how many connected peers have piece C{index}.
        """
        self._checkIndex(index)
        return self.pools.counts[index]

    # Ours

    @property
    def complete(self) -> bool:
        """
        C{True} once every wanted piece is verified.
        """
        return self._missing == 0

    @property
    def endgame(self) -> bool:
        """
        C{True} when every block of every wanted piece we lack is requested
        or received (and some are not received yet): L{pick} then also
        returns blocks already requested from other peers.
        """
        inProgress = self.inProgress
        return not self.pools.pools and not inProgress.open and bool(inProgress.pieces)

    def isWanted(self, index: int) -> bool:
        """
        @return: C{True} if piece C{index} is to be downloaded and we do not
            have it yet.
        """
        self._checkIndex(index)
        return bool(self._wanted[index]) and index not in self.haveBitfield

    def isInteresting(self, peerPieces: Bitfield) -> bool:
        """
        @return: C{True} if the peer has a piece that L{isWanted}.
        """
        if self._missing == 0:
            return False
        for index in peerPieces:
            if self._wanted[index] and index not in self.haveBitfield:
                return True
        return False

    def setWanted(self, indexes: Iterable[int]) -> None:
        """
        Download only these pieces (all of them by default).  Pieces already
        in progress are finished even when no longer wanted.

        @param indexes: the piece indexes to download.
        @raise IndexError: for an index out of range (nothing is changed).
        """
        wanted = bytearray(self.pieceCount)
        for index in indexes:
            self._checkIndex(index)
            wanted[index] = 1
        have = self.haveBitfield
        for index in range(self.pieceCount):
            if wanted[index] == self._wanted[index]:
                continue
            self._wanted[index] = wanted[index]
            if index in have:
                continue
            size = self.pieceSize(index)
            if wanted[index]:
                self._missing += 1
                self._missingBytes += size
                self._skippedBytes -= size
                if index not in self.inProgress:
                    self.pools.add(index)
            else:
                self._missing -= 1
                self._missingBytes -= size
                self._skippedBytes += size
                self.pools.remove(index)
        self._needed = None

    def setPriorities(self, priorities: Optional[Sequence[int]]) -> None:
        """
        Set the priority of every piece: unstarted pieces of a higher
        priority are picked before any of a lower one; the order (random,
        rarest, sequential) applies within a priority.

        @param priorities: one of -1 (low), 0 (normal), 1 (high) per piece;
            C{None} for all normal.
        @raise ValueError: for the wrong length or another value (nothing is
            changed).
        """
        self.pools.setBands(priorities)

    def setOrder(self, order: str) -> None:
        """
        Change how new pieces are chosen (pieces in progress stay so).

        @param order: one of L{ORDERS}.
        @raise ValueError: for an unknown order.
        """
        if order not in ORDERS:
            raise ValueError(f"unknown piece order {order!r}")
        self.pools.repool(lambda: self.pools.setOrder(order))

    def priority(self, index: int) -> int:
        """
        @return: the priority of piece C{index}: -1, 0 or 1.
        """
        self._checkIndex(index)
        return self.pools.priority(index)

    @property
    def missingBytes(self) -> int:
        """
        Bytes of the wanted pieces we do not have (Transmission's
        C{leftUntilDone}).
        """
        return self._missingBytes

    @property
    def haveBytes(self) -> int:
        """
        Bytes of the pieces we have (every piece is whole but the last).
        """
        have = self.haveBitfield
        if not have.count:
            return 0
        last = self.pieceCount - 1
        shortBy = self.pieceLength - self.pieceSize(last) if last in have else 0
        return have.count * self.pieceLength - shortBy

    @property
    def sizeWhenDone(self) -> int:
        """
        Bytes we will have once complete: the wanted pieces and the others
        we have (Transmission's C{sizeWhenDone}).
        """
        return self.totalLength - self._skippedBytes

    def neededBits(self) -> int:
        """
        @return: the pieces wanted and not had, as an integer whose bits are
            a bitfield's in wire order (piece 0 the most significant bit of
            C{pieceCount + spare} bits): C{int.from_bytes(peer.toBytes(),
            "big") & needed} are the peer's pieces we want.
        """
        needed = self._needed
        if needed is None:
            size = (self.pieceCount + 7) // 8
            wanted = bytearray(size)
            for index in range(self.pieceCount):
                if self._wanted[index]:
                    wanted[index >> 3] |= 0x80 >> (index & 7)
            have = int.from_bytes(self.haveBitfield.toBytes(), "big")
            needed = self._needed = int.from_bytes(wanted, "big") & ~have
        return needed

    def have(self, index: int) -> None:
        """
        Piece C{index} is verified and written (or found on disk): never pick
        it again.
        """
        self._checkIndex(index)
        if index in self.haveBitfield:
            return
        self.haveBitfield.add(index)
        self._needed = None
        if self._wanted[index]:
            self._missing -= 1
            self._missingBytes -= self.pieceSize(index)
        else:
            self._skippedBytes -= self.pieceSize(index)
        self.pools.remove(index)
        self.inProgress.drop(index)

    def lose(self, index: int) -> None:
        """
        Piece C{index} is no longer on disk (a recheck found it bad): it is
        wanted again if it was.
        """
        self._checkIndex(index)
        if index not in self.haveBitfield:
            return
        self.haveBitfield.discard(index)
        self._needed = None
        if self._wanted[index]:
            self._missing += 1
            self._missingBytes += self.pieceSize(index)
            self.pools.add(index)
        else:
            self._skippedBytes += self.pieceSize(index)

    # Picking

    def pick(self, peerPieces: Bitfield, count: int, peerKey: Hashable) -> List[Block]:
        """
        Choose up to C{count} blocks to request from a peer, and mark them as
        requested from it.

        Pieces in progress come first (to keep few partial pieces), then new
        pieces (random or rarest first), then, in endgame only, blocks
        already requested from other peers.

        @param peerPieces: the pieces the peer has.
        @param count: the most blocks to return.
        @param peerKey: names the peer in L{blockReceived}, L{abort} and
            L{abortPeer}.
        @return: a list of C{(index, begin, length)}.
        """
        result: List[Block] = []
        if count <= 0 or self._missing == 0:
            return result
        inProgress = self.inProgress
        inProgress.takeOpen(peerPieces, count, peerKey, result)
        if len(result) >= count:
            return result
        if self.pools.pools:
            for index in self.pools.draw(peerPieces):
                state = self._start(index)
                inProgress.takeFree(state, count - len(result), peerKey, result)
                if len(result) >= count:
                    return result
        if self.endgame:
            inProgress.takeDuplicates(
                peerPieces, count - len(result), peerKey, result, self._rng
            )
        return result

    def pickAmong(
        self,
        indexes: Iterable[int],
        peerPieces: Bitfield,
        count: int,
        peerKey: Hashable,
    ) -> List[Block]:
        """
        Choose up to C{count} free blocks of the pieces C{indexes} only (in
        that order), among those the peer has and we want, and mark them as
        requested from it: a peer's suggestions (BEP 6 Suggest Piece) taken
        first, or the only pieces a peer that chokes us lets us request
        (BEP 6 Allowed Fast).  Never blocks requested from other peers.

        @param indexes: piece indexes, in order of preference (any out of
            range are skipped).
        @return: a list of C{(index, begin, length)}.
        """
        result: List[Block] = []
        if count <= 0 or self._missing == 0:
            return result
        for index in indexes:
            if not 0 <= index < self.pieceCount or index not in peerPieces:
                continue
            state = self.inProgress.pieces.get(index)
            if state is None:
                if not self.pools.isPooled(index):
                    # Not wanted, or verified already.
                    continue
                state = self._start(index)
            if not state.free:
                continue
            self.inProgress.takeFree(state, count - len(result), peerKey, result)
            if len(result) >= count:
                break
        return result

    def _start(self, index: int):
        self.pools.remove(index)
        return self.inProgress.start(index, self.pieceSize(index))

    # Events on requests

    def isRequestedFrom(self, index: int, begin: int, peerKey: Hashable) -> bool:
        """
        @return: C{True} if the block at C{begin} in piece C{index} is
            requested from C{peerKey} and not received yet: the block that
            L{blockReceived} would accept.
        """
        return self.inProgress.isRequestedFrom(index, begin, peerKey)

    def blockReceived(self, index: int, begin: int, peerKey: Hashable) -> List[Any]:
        """
        A block requested from C{peerKey} arrived.  A block that was not
        requested from it, or was already received, is ignored.

        @return: the keys of the other peers it was requested from (endgame):
            the caller cancels those requests, which count as gone.
        """
        return self.inProgress.blockReceived(index, begin, peerKey)

    def pieceBlocksDone(self, index: int) -> bool:
        """
        @return: C{True} if every block of piece C{index} was received and
            the piece awaits its hash check (C{False} for a piece we have).
        """
        return self.inProgress.blocksDone(index)

    def abort(self, index: int, begin: int, peerKey: Hashable) -> None:
        """
        A request to C{peerKey} will not be answered (choked, timed out,
        cancelled): the block is wanted again unless it is still requested
        from another peer (endgame).
        """
        if self.inProgress.abort(index, begin, peerKey) and self.isWanted(index):
            # Nothing requested nor received: not started after all.
            self.pools.add(index)

    def abortPeer(self, peerKey: Hashable) -> None:
        """
        Return every block requested from C{peerKey} to the pool (it choked
        us or disconnected).
        """
        for index, begin in self.inProgress.requestKeys(peerKey):
            self.abort(index, begin, peerKey)

    def requestedFrom(self, peerKey: Hashable) -> List[Block]:
        """
        @return: the blocks requested from C{peerKey} and not received, as
            C{(index, begin, length)}, in the order they were requested.
        """
        return self.inProgress.requestedFrom(peerKey)

    def pieceFailed(self, index: int) -> None:
        """
        Piece C{index} failed its hash check: every block is wanted again.
        """
        self._checkIndex(index)
        if index in self.haveBitfield or index not in self.inProgress:
            return
        self.inProgress.drop(index)
        if self._wanted[index]:
            self.pools.add(index)

    def partialPieces(self) -> List[int]:
        """
        @return: the indexes of the pieces in progress (some block requested
            or received, not verified yet).
        """
        return list(self.inProgress.pieces)
