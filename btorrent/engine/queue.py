"""
Queues like Transmission's: at most so many torrents may hold a kind of
slot (checking, downloading, seeding) at once; the others wait their turn
in queue order.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred, succeed

__all__ = ["SlotQueue"]


class SlotQueue:
    """
    Slots for at most L{size} holders at once (any number while not
    L{enabled}); waiters get a slot in the order of their position.

    @ivar active: the owners holding a slot, in the order they got it.
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
        self.active: List[Any] = []
        self._waiting: Dict[Any, Deferred] = {}

    @property
    def waiting(self) -> List[Any]:
        """
        The owners waiting, in the order they will get a slot.
        """
        order = list(self._waiting)
        return sorted(
            order, key=lambda owner: (self.position(owner), order.index(owner))
        )

    def _free(self) -> bool:
        return not self.enabled or len(self.active) < self.size

    def acquire(self, owner: Any) -> Deferred:
        """
        Ask for a slot.

        @return: a L{Deferred} firing with C{None} once C{owner} holds one
            (at once if one is free and nobody waits); never firing if the
            owner L{release}s before.
        """
        if owner in self.active:
            return succeed(None)
        if owner in self._waiting:
            return self._waiting[owner]
        if self._free() and not self._waiting:
            self.active.append(owner)
            return succeed(None)
        d = Deferred()
        self._waiting[owner] = d
        return d

    def release(self, owner: Any) -> None:
        """
        Give back C{owner}'s slot (or stop waiting for one), and let the
        next waiters in.
        """
        if owner in self.active:
            self.active.remove(owner)
        self._waiting.pop(owner, None)
        self._admit()

    def holds(self, owner: Any) -> bool:
        """
        Whether C{owner} holds a slot.
        """
        return owner in self.active

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

    def _admit(self) -> None:
        while self._waiting and self._free():
            owner = self.waiting[0]
            d = self._waiting.pop(owner)
            self.active.append(owner)
            d.callback(None)
