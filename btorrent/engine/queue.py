"""
Queues like Transmission's: at most so many torrents may hold a kind of
slot (checking, downloading, seeding) at once; the others wait their turn
in queue order.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed

__all__ = ["SlotQueue"]


class SlotQueue:
    """
    Slots for at most L{size} holders at once (any number while not
    L{enabled}); waiters get a slot in the order of their position, then
    of their arrival.

    Ten thousand torrents waiting cost a heap: getting a slot is
    logarithmic in the number waiting.

    """

    def __init__(
        self,
        size: int = 1,
        enabled: bool = True,
        position: Callable[[Any], float] = lambda owner: 0,
    ) -> None:
        """
        @param size: slots.
        @param enabled: C{False}: no limit.
        @param position: the queue position of an owner (lower goes
            first; ties in the order they asked).
        """
        self.size = size
        self.enabled = enabled
        self.position = position
        self._active: Dict[Any, None] = {}
        self._waiting: Dict[Any, Tuple[Deferred, int]] = {}
        # (position when pushed, arrival, owner): a heap; an entry whose
        # owner left or moved is skipped or pushed again when it surfaces.
        self._heap: List[Tuple[float, int, Any]] = []
        self._arrivals = itertools.count()

    @property
    def active(self) -> List[Any]:
        """
        The owners holding a slot, in the order they got it.
        """
        return list(self._active)

    @property
    def waiting(self) -> List[Any]:
        """
        The owners waiting, in the order they will get a slot.
        """
        order = sorted(
            (self.position(owner), arrival, index)
            for index, (owner, (_, arrival)) in enumerate(self._waiting.items())
        )
        owners = list(self._waiting)
        return [owners[index] for _, _, index in order]

    def _free(self) -> bool:
        return not self.enabled or len(self._active) < self.size

    def acquire(self, owner: Any) -> Deferred:
        """
        Ask for a slot.

        @return: a L{Deferred} firing with C{None} once C{owner} holds one
            (at once if one is free and nobody waits); never firing if the
            owner L{release}s before.
        """
        if owner in self._active:
            return succeed(None)
        entry = self._waiting.get(owner)
        if entry is not None:
            return entry[0]
        if self._free() and not self._waiting:
            self._active[owner] = None
            return succeed(None)
        d = Deferred()
        arrival = next(self._arrivals)
        self._waiting[owner] = (d, arrival)
        heapq.heappush(self._heap, (self.position(owner), arrival, owner))
        return d

    def release(self, owner: Any) -> None:
        """
        Give back C{owner}'s slot (or stop waiting for one), and let the
        next waiters in.
        """
        self._active.pop(owner, None)
        self._waiting.pop(owner, None)
        self._admit()

    def holds(self, owner: Any) -> bool:
        """
        Whether C{owner} holds a slot.
        """
        return owner in self._active

    def resize(
        self, size: Optional[int] = None, enabled: Optional[bool] = None
    ) -> None:
        """
        Change the number of slots or turn the limit on or off; waiters
        are let in if there is room now (holders keep their slots).
        """
        if size is not None:
            self.size = size
        if enabled is not None:
            self.enabled = enabled
        self._admit()

    def reorder(self) -> None:
        """
        Positions changed (the queue was reordered): put the waiters in
        their new order.
        """
        self._heap = [
            (self.position(owner), arrival, owner)
            for owner, (_, arrival) in self._waiting.items()
        ]
        heapq.heapify(self._heap)

    def _admit(self) -> None:
        heap = self._heap
        while self._waiting and heap and self._free():
            position, arrival, owner = heapq.heappop(heap)
            entry = self._waiting.get(owner)
            if entry is None or entry[1] != arrival:
                continue
            now = self.position(owner)
            if now != position:
                # Moved in the queue since it asked: back in at its place.
                heapq.heappush(heap, (now, arrival, owner))
                continue
            del self._waiting[owner]
            self._active[owner] = None
            entry[0].callback(None)
        if not self._waiting:
            heap.clear()
