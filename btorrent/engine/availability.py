"""
Availability and the order of new pieces, for the piece picker
(L{btorrent.engine.picker}): how many connected peers have each piece, and
the pieces not started yet, drawn in the picker's order.

Unstarted pieces live in pools keyed by priority band and availability (by
"available at all or not" in random and sequential order), each pool a list
with O(1) removal; a new piece is drawn by rejection sampling in a pool and
only falls back to a scan of the pool when the peer has few of its pieces, so
that the cost of a draw does not grow with the number of pieces in the
common case.  In sequential order a cursor below which no piece is pooled
keeps the walk short.

Pure: no I/O, randomness from the caller's C{random.Random}.
"""

from __future__ import annotations

import random
from typing import Dict, Iterator, List, Optional, Sequence

from btorrent.codec.bitfield import Bitfield

__all__ = ["BAND", "ORDERS", "Availability"]

# Rejection sampling gives up after this many misses in a row and scans the
# pool instead.
_MAX_MISSES = 64

#: Pool keys of a priority band lie within BAND of the band's base: the base
#: is -BAND for high priority, 0 for normal, +BAND for low (so that with
#: every piece normal the keys are plain availabilities).
BAND = 1 << 40

#: The piece orders the picker knows.
ORDERS = ("random", "rarest", "sequential")


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


class Availability:
    """
    Per piece, how many connected peers have it; the unstarted pieces we
    want, in pools, drawn in C{order}.

    @ivar order: one of L{ORDERS}.
    @ivar counts: per piece, how many peers have it.
    @ivar bands: per piece, the base of its priority band (C{None}: every
        piece normal).
    @ivar cursor: no piece below it is pooled (sequential order).
    """

    def __init__(self, pieceCount: int, rng: random.Random, order: str) -> None:
        """
        @param pieceCount: the number of pieces; every one starts pooled.
        @param rng: the source of randomness.
        @param order: one of L{ORDERS}.
        """
        self.pieceCount = pieceCount
        self.counts = [0] * pieceCount
        self.bands: Optional[List[int]] = None
        self.cursor = 0
        self._rng = rng
        self.pools: Dict[int, _Pool] = {}
        self.setOrder(order)
        pool = _Pool()
        for index in range(pieceCount):
            pool.add(index)
        if pieceCount:
            self.pools[0] = pool

    def setOrder(self, order: str) -> None:
        """
        Set the order (the caller re-pools: see L{repool}).
        """
        self.order = order
        self._rarest = order == "rarest"
        self._sequential = order == "sequential"

    # Pools

    def key(self, index: int) -> int:
        """
        The pool key of piece C{index}.
        """
        availability = self.counts[index]
        key = availability if self._rarest else (1 if availability else 0)
        if self.bands is not None:
            key += self.bands[index]
        return key

    def add(self, index: int) -> None:
        """
        Pool piece C{index} (wanted, not started, not had).
        """
        key = self.key(index)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = _Pool()
        pool.add(index)
        if index < self.cursor:
            self.cursor = index

    def remove(self, index: int, key: Optional[int] = None) -> bool:
        """
        Take piece C{index} out of its pool.

        @return: whether it was pooled.
        """
        if key is None:
            key = self.key(index)
        pool = self.pools.get(key)
        if pool is None or index not in pool:
            return False
        pool.remove(index)
        if not pool:
            del self.pools[key]
        return True

    def isPooled(self, index: int) -> bool:
        """
        Whether piece C{index} is pooled.
        """
        pool = self.pools.get(self.key(index))
        return pool is not None and index in pool.positions

    def pooled(self) -> List[int]:
        """
        Every pooled piece.
        """
        return [index for pool in self.pools.values() for index in pool.items]

    def repool(self, change) -> None:
        """
        Take every pooled piece out, apply C{change} (which alters the pool
        keys: the order or the bands), and put them back.
        """
        pooled = self.pooled()
        self.pools = {}
        change()
        for index in sorted(pooled):
            self.add(index)

    def setBands(self, priorities: Optional[Sequence[int]]) -> None:
        """
        Set the priority of every piece (see
        L{btorrent.engine.picker.PiecePicker.setPriorities}).

        @raise ValueError: for the wrong length or another value than -1, 0
            or 1 (nothing is changed).
        """
        if priorities is None:
            bands = None
        else:
            if len(priorities) != self.pieceCount:
                raise ValueError(
                    f"{len(priorities)} priorities for {self.pieceCount} pieces"
                )
            table = {1: -BAND, 0: 0, -1: BAND}
            try:
                bands = [table[p] for p in priorities]
            except (KeyError, TypeError):
                raise ValueError("a piece priority must be -1, 0 or 1") from None
            if not any(bands):
                bands = None
        self.repool(lambda: setattr(self, "bands", bands))

    def priority(self, index: int) -> int:
        """
        The priority of piece C{index}: -1, 0 or 1.
        """
        if self.bands is None:
            return 0
        return -(self.bands[index] // BAND)

    # Counts

    def set(self, index: int, availability: int) -> None:
        """
        Set the availability of piece C{index}, moving it between pools.
        """
        oldKey = self.key(index)
        self.counts[index] = availability
        if self.key(index) != oldKey and self.remove(index, oldKey):
            self.add(index)

    def shift(self, bitfield: Bitfield, delta: int) -> None:
        """
        Add C{delta} to the availability of every piece of C{bitfield} (never
        below 0), moving pooled pieces between pools (inlined: a seed's
        bitfield touches every piece).
        """
        availability = self.counts
        pools = self.pools
        rarest = self._rarest
        bands = self.bands
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

    # Drawing

    def _poolOrder(self) -> List[int]:
        """
        The pool keys in the order to draw from: higher priority bands
        first; within a band, the lowest availability first, pieces that no
        peer has last (they only matter when the caller's availability is
        out of step with the peer's bitfield).
        """
        keys = sorted(self.pools)
        if self.bands is None:
            if keys and keys[0] == 0:
                keys.append(keys.pop(0))
            return keys
        order: List[int] = []
        for base in (-BAND, 0, BAND):
            band = [key for key in keys if base <= key < base + BAND]
            if band and band[0] == base:
                band.append(band.pop(0))
            order.extend(band)
        return order

    def draw(self, peerPieces: Bitfield) -> Iterator[int]:
        """
        Pooled pieces that the peer has, in the order: uniformly at random
        within a pool (random, rarest), or the lowest index first
        (sequential).  The caller removes each drawn piece from its pool
        before asking for the next.
        """
        if self._sequential:
            yield from self._drawSequential(peerPieces)
            return
        rng = self._rng
        for key in self._poolOrder():
            misses = 0
            while misses < _MAX_MISSES:
                pool = self.pools.get(key)
                if pool is None or len(pool) <= _MAX_MISSES:
                    break
                index = pool.items[rng.randrange(len(pool.items))]
                if index in peerPieces:
                    misses = 0
                    yield index
                else:
                    misses += 1
            pool = self.pools.get(key)
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

    def _drawSequential(self, peerPieces: Bitfield) -> Iterator[int]:
        """
        Pooled pieces that the peer has, the lowest index first, higher
        priorities before lower ones.
        """
        count = self.pieceCount
        cursor = self.cursor
        while cursor < count and not self.isPooled(cursor):
            cursor += 1
        self.cursor = cursor
        bases = (0,) if self.bands is None else (-BAND, 0, BAND)
        for base in bases:
            index = self.cursor
            while index < count:
                if (
                    index in peerPieces
                    and self.isPooled(index)
                    and (self.bands is None or self.bands[index] == base)
                ):
                    yield index
                index += 1
