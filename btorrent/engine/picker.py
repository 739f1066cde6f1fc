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

Unstarted pieces live in pools keyed by priority band and availability (by
"available at all or not" in random and sequential order), each pool a list
with O(1) removal; a new piece is drawn by rejection sampling in a pool and
only falls back to a scan of the pool when the peer has few of its pieces, so
that the cost of L{PiecePicker.pick} does not grow with the number of pieces
in the common case.  In sequential order a cursor below which no piece is
unstarted and wanted keeps the walk short.
"""

from __future__ import annotations

import random
from typing import (
    Any,
    Dict,
    Hashable,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

from zope.interface import implementer

from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import BLOCK_SIZE
from btorrent.interfaces import IPiecePicker

# Rejection sampling gives up after this many misses in a row and scans the
# pool instead.
_MAX_MISSES = 64

# Pool keys of a priority band lie within _BAND of the band's base: the base
# is -_BAND for high priority, 0 for normal, +_BAND for low (so that with
# every piece normal the keys are plain availabilities).
_BAND = 1 << 40

#: The piece orders L{PiecePicker} knows.
ORDERS = ("random", "rarest", "sequential")

# The state of a block that arrived.  A free block is None; a requested block
# is a dict whose keys are the peer keys it is requested from (a dict rather
# than a set so that the order of cancels is deterministic).
_RECEIVED = True

Block = Tuple[int, int, int]


class _Pool:
    """
    A set of piece indexes kept as a list, with O(1) add, remove and draw.
    """

    __slots__ = ("items", "positions")

    def __init__(self) -> None:
        self.items: List[int] = []
        self.positions: Dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, index: int) -> bool:
        return index in self.positions

    def add(self, index: int) -> None:
        if index not in self.positions:
            self.positions[index] = len(self.items)
            self.items.append(index)

    def remove(self, index: int) -> None:
        position = self.positions.pop(index)
        last = self.items.pop()
        if last != index:
            self.items[position] = last
            self.positions[last] = position


class _PieceState:
    """
    A piece in progress: the state of each of its blocks.

    @ivar blocks: per block, C{None} (free), a C{dict} of the peer keys it is
        requested from, or C{_RECEIVED}.
    @ivar free: how many blocks are free.
    @ivar received: how many blocks were received.
    @ivar cursor: no free block lies before this block number.
    """

    __slots__ = ("index", "size", "blocks", "free", "received", "cursor")

    def __init__(self, index: int, size: int, blockSize: int) -> None:
        self.index = index
        self.size = size
        count = (size + blockSize - 1) // blockSize
        self.blocks: List[Any] = [None] * count
        self.free = count
        self.received = 0
        self.cursor = 0


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
        self.order = order
        self._rng = rng
        self._rarest = order == "rarest"
        self._sequential = order == "sequential"
        # No piece below it is unstarted and wanted (sequential order).
        self._cursor = 0
        # Per piece, the base of its priority band (None: all normal).
        self._bands: Optional[List[int]] = None
        self.haveBitfield = Bitfield(pieceCount)
        self._availability = [0] * pieceCount
        self._wanted = bytearray(b"\x01" * pieceCount)
        # Wanted and not had: how many, how many bytes; bytes of pieces
        # neither wanted nor had.
        self._missing = pieceCount
        self._missingBytes = totalLength
        self._skippedBytes = 0
        # neededBits(), until a piece is had, lost or (un)wanted.
        self._needed: Optional[int] = None
        # Unstarted wanted pieces, by pool key (see _poolKey).
        self._pools: Dict[int, _Pool] = {}
        # Pieces in progress, and those of them with a free block (insertion
        # ordered: the oldest first).
        self._pieces: Dict[int, _PieceState] = {}
        self._open: Dict[int, None] = {}
        # peerKey -> {(index, blockNumber): None}
        self._requests: Dict[Hashable, Dict[Tuple[int, int], None]] = {}
        pool = _Pool()
        for index in range(pieceCount):
            pool.add(index)
        if pieceCount:
            self._pools[0] = pool

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

    # Pools of unstarted pieces

    def _poolKey(self, index: int) -> int:
        availability = self._availability[index]
        key = availability if self._rarest else (1 if availability else 0)
        if self._bands is not None:
            key += self._bands[index]
        return key

    def _poolAdd(self, index: int) -> None:
        key = self._poolKey(index)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool()
        pool.add(index)
        if index < self._cursor:
            self._cursor = index

    def _poolRemove(self, index: int, key: Optional[int] = None) -> bool:
        if key is None:
            key = self._poolKey(index)
        pool = self._pools.get(key)
        if pool is None or index not in pool:
            return False
        pool.remove(index)
        if not pool:
            del self._pools[key]
        return True

    def _setAvailability(self, index: int, availability: int) -> None:
        oldKey = self._poolKey(index)
        self._availability[index] = availability
        if self._poolKey(index) != oldKey and self._poolRemove(index, oldKey):
            self._poolAdd(index)

    # Availability

    def addPeer(self, bitfield: Bitfield) -> None:
        """
        Count a peer's pieces in the availability.

        @param bitfield: the peer's pieces.
        """
        self._shift(bitfield, 1)

    def removePeer(self, bitfield: Bitfield) -> None:
        """
        Remove a peer's pieces from the availability (it disconnected).

        @param bitfield: the peer's pieces, as counted by L{addPeer} and
            L{peerHas}.
        """
        self._shift(bitfield, -1)

    def _shift(self, bitfield: Bitfield, delta: int) -> None:
        """
        Add C{delta} to the availability of every piece of C{bitfield} (never
        below 0), moving unstarted pieces between pools (inlined: a seed's
        bitfield touches every piece).
        """
        availability = self._availability
        pools = self._pools
        rarest = self._rarest
        bands = self._bands
        for index in bitfield:
            old = availability[index]
            new = old + delta
            if new < 0:
                continue
            availability[index] = new
            if rarest:
                oldKey, newKey = old, new
            elif old and new:
                continue
            else:
                oldKey, newKey = (1 if old else 0), (1 if new else 0)
            if bands is not None:
                band = bands[index]
                oldKey += band
                newKey += band
            pool = pools.get(oldKey)
            if pool is None or index not in pool.positions:
                continue
            pool.remove(index)
            if not pool.items:
                del pools[oldKey]
            target = pools.get(newKey)
            if target is None:
                target = pools[newKey] = _Pool()
            target.add(index)

    def peerHas(self, index: int) -> None:
        """
        A peer announced piece C{index}.
        """
        self._checkIndex(index)
        self._setAvailability(index, self._availability[index] + 1)

    def availability(self, index: int) -> int:
        """
        @return: how many connected peers have piece C{index}.
        """
        self._checkIndex(index)
        return self._availability[index]

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
        return not self._pools and not self._open and bool(self._pieces)

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
                if index not in self._pieces:
                    self._poolAdd(index)
            else:
                self._missing -= 1
                self._missingBytes -= size
                self._skippedBytes += size
                self._poolRemove(index)
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
        if priorities is None:
            bands = None
        else:
            if len(priorities) != self.pieceCount:
                raise ValueError(
                    f"{len(priorities)} priorities for {self.pieceCount} pieces"
                )
            table = {1: -_BAND, 0: 0, -1: _BAND}
            try:
                bands = [table[p] for p in priorities]
            except (KeyError, TypeError):
                raise ValueError("a piece priority must be -1, 0 or 1") from None
            if not any(bands):
                bands = None
        self._repool(lambda: setattr(self, "_bands", bands))

    def setOrder(self, order: str) -> None:
        """
        Change how new pieces are chosen (pieces in progress stay so).

        @param order: one of L{ORDERS}.
        @raise ValueError: for an unknown order.
        """
        if order not in ORDERS:
            raise ValueError(f"unknown piece order {order!r}")

        def change() -> None:
            self.order = order
            self._rarest = order == "rarest"
            self._sequential = order == "sequential"

        self._repool(change)

    def _repool(self, change) -> None:
        """
        Take every unstarted piece out of its pool, apply C{change} (which
        alters the pool keys), and put them back.
        """
        pooled = [index for pool in self._pools.values() for index in pool.items]
        self._pools = {}
        change()
        for index in sorted(pooled):
            self._poolAdd(index)

    def priority(self, index: int) -> int:
        """
        @return: the priority of piece C{index}: -1, 0 or 1.
        """
        self._checkIndex(index)
        if self._bands is None:
            return 0
        return -(self._bands[index] // _BAND)

    @property
    def missingBytes(self) -> int:
        """
        Bytes of the wanted pieces we do not have (Transmission's
        C{leftUntilDone}).
        """
        return self._missingBytes

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
        self._poolRemove(index)
        self._dropState(index)

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
            self._poolAdd(index)
        else:
            self._skippedBytes += self.pieceSize(index)

    def _dropState(self, index: int) -> None:
        """
        Forget a piece in progress, and any request for its blocks.
        """
        state = self._pieces.pop(index, None)
        if state is None:
            return
        self._open.pop(index, None)
        for number, block in enumerate(state.blocks):
            if isinstance(block, dict):
                for peerKey in block:
                    self._forgetRequest(peerKey, index, number)

    def _forgetRequest(self, peerKey: Hashable, index: int, number: int) -> None:
        requests = self._requests.get(peerKey)
        if requests is not None:
            requests.pop((index, number), None)
            if not requests:
                del self._requests[peerKey]

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
        for index in list(self._open):
            if index in peerPieces:
                self._takeFree(
                    self._pieces[index], count - len(result), peerKey, result
                )
                if len(result) >= count:
                    return result
        if self._pools:
            for index in self._drawNew(peerPieces):
                state = self._start(index)
                self._takeFree(state, count - len(result), peerKey, result)
                if len(result) >= count:
                    return result
        if self.endgame:
            self._takeDuplicates(peerPieces, count - len(result), peerKey, result)
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
            state = self._pieces.get(index)
            if state is None:
                pool = self._pools.get(self._poolKey(index))
                if pool is None or index not in pool:
                    # Not wanted, or verified already.
                    continue
                state = self._start(index)
            if not state.free:
                continue
            self._takeFree(state, count - len(result), peerKey, result)
            if len(result) >= count:
                break
        return result

    def _start(self, index: int) -> _PieceState:
        self._poolRemove(index)
        state = _PieceState(index, self.pieceSize(index), self.blockSize)
        self._pieces[index] = state
        self._open[index] = None
        return state

    def _request(self, state: _PieceState, number: int, peerKey: Hashable) -> Block:
        requests = self._requests.get(peerKey)
        if requests is None:
            requests = self._requests[peerKey] = {}
        requests[(state.index, number)] = None
        begin = number * self.blockSize
        return (state.index, begin, min(self.blockSize, state.size - begin))

    def _takeFree(
        self, state: _PieceState, count: int, peerKey: Hashable, result: List[Block]
    ) -> None:
        blocks = state.blocks
        number = state.cursor
        while count > 0 and state.free:
            if blocks[number] is None:
                blocks[number] = {peerKey: None}
                state.free -= 1
                count -= 1
                result.append(self._request(state, number, peerKey))
            number += 1
        state.cursor = number
        if not state.free:
            self._open.pop(state.index, None)

    def _poolOrder(self) -> List[int]:
        """
        The pool keys in the order to draw from: higher priority bands
        first; within a band, the lowest availability first, pieces that no
        peer has last (they only matter when the caller's availability is
        out of step with the peer's bitfield).
        """
        keys = sorted(self._pools)
        if self._bands is None:
            if keys and keys[0] == 0:
                keys.append(keys.pop(0))
            return keys
        order: List[int] = []
        for base in (-_BAND, 0, _BAND):
            band = [key for key in keys if base <= key < base + _BAND]
            if band and band[0] == base:
                band.append(band.pop(0))
            order.extend(band)
        return order

    def _drawNew(self, peerPieces: Bitfield) -> Iterator[int]:
        """
        Draw unstarted pieces that the peer has, uniformly at random within a
        pool.  The caller removes each drawn piece from its pool before
        asking for the next.
        """
        if self._sequential:
            yield from self._drawSequential(peerPieces)
            return
        rng = self._rng
        for key in self._poolOrder():
            misses = 0
            while misses < _MAX_MISSES:
                pool = self._pools.get(key)
                if pool is None or len(pool) <= _MAX_MISSES:
                    break
                index = pool.items[rng.randrange(len(pool.items))]
                if index in peerPieces:
                    misses = 0
                    yield index
                else:
                    misses += 1
            pool = self._pools.get(key)
            if pool is None:
                continue
            candidates = [index for index in pool.items if index in peerPieces]
            while candidates:
                position = rng.randrange(len(candidates))
                candidates[position], candidates[-1] = (
                    candidates[-1],
                    candidates[position],
                )
                yield candidates.pop()

    def _isPooled(self, index: int) -> bool:
        pool = self._pools.get(self._poolKey(index))
        return pool is not None and index in pool.positions

    def _drawSequential(self, peerPieces: Bitfield) -> Iterator[int]:
        """
        Unstarted pieces that the peer has, the lowest index first, higher
        priorities before lower ones.
        """
        count = self.pieceCount
        cursor = self._cursor
        while cursor < count and not self._isPooled(cursor):
            cursor += 1
        self._cursor = cursor
        bases = (0,) if self._bands is None else (-_BAND, 0, _BAND)
        for base in bases:
            index = self._cursor
            while index < count:
                if (
                    index in peerPieces
                    and self._isPooled(index)
                    and (self._bands is None or self._bands[index] == base)
                ):
                    yield index
                index += 1

    def _takeDuplicates(
        self, peerPieces: Bitfield, count: int, peerKey: Hashable, result: List[Block]
    ) -> None:
        """
        Endgame: request blocks already requested from other peers, those
        requested from the fewest peers first.
        """
        candidates = []
        for index, state in self._pieces.items():
            if index not in peerPieces:
                continue
            for number, block in enumerate(state.blocks):
                if isinstance(block, dict) and peerKey not in block:
                    candidates.append((len(block), state, number))
        self._rng.shuffle(candidates)
        candidates.sort(key=lambda candidate: candidate[0])
        for _, state, number in candidates[:count]:
            state.blocks[number][peerKey] = None
            result.append(self._request(state, number, peerKey))

    # Events on requests

    def _block(self, index: int, begin: int) -> Optional[Tuple[_PieceState, int]]:
        state = self._pieces.get(index)
        if state is None or begin < 0 or begin % self.blockSize:
            return None
        number = begin // self.blockSize
        if number >= len(state.blocks):
            return None
        return state, number

    def isRequestedFrom(self, index: int, begin: int, peerKey: Hashable) -> bool:
        """
        @return: C{True} if the block at C{begin} in piece C{index} is
            requested from C{peerKey} and not received yet: the block that
            L{blockReceived} would accept.
        """
        found = self._block(index, begin)
        if found is None:
            return False
        state, number = found
        block = state.blocks[number]
        return isinstance(block, dict) and peerKey in block

    def blockReceived(self, index: int, begin: int, peerKey: Hashable) -> List[Any]:
        """
        A block requested from C{peerKey} arrived.  A block that was not
        requested from it, or was already received, is ignored.

        @return: the keys of the other peers it was requested from (endgame):
            the caller cancels those requests, which count as gone.
        """
        found = self._block(index, begin)
        if found is None:
            return []
        state, number = found
        block = state.blocks[number]
        if not isinstance(block, dict) or peerKey not in block:
            return []
        state.blocks[number] = _RECEIVED
        state.received += 1
        others = []
        for other in block:
            self._forgetRequest(other, index, number)
            if other != peerKey:
                others.append(other)
        return others

    def pieceBlocksDone(self, index: int) -> bool:
        """
        @return: C{True} if every block of piece C{index} was received and
            the piece awaits its hash check (C{False} for a piece we have).
        """
        state = self._pieces.get(index)
        return state is not None and state.received == len(state.blocks)

    def abort(self, index: int, begin: int, peerKey: Hashable) -> None:
        """
        A request to C{peerKey} will not be answered (choked, timed out,
        cancelled): the block is wanted again unless it is still requested
        from another peer (endgame).
        """
        found = self._block(index, begin)
        if found is None:
            return
        state, number = found
        block = state.blocks[number]
        if not isinstance(block, dict) or peerKey not in block:
            return
        del block[peerKey]
        self._forgetRequest(peerKey, index, number)
        if block:
            return
        state.blocks[number] = None
        state.free += 1
        state.cursor = min(state.cursor, number)
        if state.free == len(state.blocks):
            # Nothing requested nor received: not started after all.
            del self._pieces[index]
            self._open.pop(index, None)
            if self.isWanted(index):
                self._poolAdd(index)
        else:
            self._open[index] = None

    def abortPeer(self, peerKey: Hashable) -> None:
        """
        Return every block requested from C{peerKey} to the pool (it choked
        us or disconnected).
        """
        for index, number in list(self._requests.get(peerKey, ())):
            self.abort(index, number * self.blockSize, peerKey)

    def requestedFrom(self, peerKey: Hashable) -> List[Block]:
        """
        @return: the blocks requested from C{peerKey} and not received, as
            C{(index, begin, length)}, in the order they were requested.
        """
        result = []
        for index, number in self._requests.get(peerKey, ()):
            begin = number * self.blockSize
            size = self._pieces[index].size
            result.append((index, begin, min(self.blockSize, size - begin)))
        return result

    def pieceFailed(self, index: int) -> None:
        """
        Piece C{index} failed its hash check: every block is wanted again.
        """
        self._checkIndex(index)
        if index in self.haveBitfield or index not in self._pieces:
            return
        self._dropState(index)
        if self._wanted[index]:
            self._poolAdd(index)

    def partialPieces(self) -> List[int]:
        """
        @return: the indexes of the pieces in progress (some block requested
            or received, not verified yet).
        """
        return list(self._pieces)
