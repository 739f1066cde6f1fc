"""
Transfer rates over a sliding window, bucketed per second.
"""

from __future__ import annotations

import math
from typing import List

__all__ = ["RateMeter"]


class RateMeter:
    """
    Counts bytes and tells the rate over the last C{window} seconds.

    Bytes are added to one bucket per whole second of the clock; the rate
    is the sum of the buckets in the window divided by the time they cover
    (never less than one second, and never more than the meter's age), so an
    update costs O(1) and a steady flow reads as its true rate.

    @ivar total: every byte counted since the meter was made.
    """

    __slots__ = (
        "_clock",
        "_buckets",
        "_size",
        "_second",
        "_sum",
        "_start",
        "window",
        "total",
    )

    def __init__(self, clock, window: float = 20.0) -> None:
        """
        @param clock: an L{IReactorTime} (only C{seconds()} is used).
        @param window: the span of the average, in seconds (at least 1).
        """
        if window < 1:
            raise ValueError(f"rate window {window} shorter than a second")
        self._clock = clock
        self.window = window
        self._size = math.ceil(window)
        self._buckets: List[int] = [0] * self._size
        self._start = clock.seconds()
        self._second = math.floor(self._start)
        self._sum = 0
        self.total = 0

    def _advance(self, second: int) -> None:
        """
        Move the current bucket to C{second}, emptying the buckets of the
        seconds that passed.
        """
        gap = second - self._second
        if gap <= 0:
            return
        if gap >= self._size:
            self._buckets = [0] * self._size
            self._sum = 0
        else:
            buckets = self._buckets
            size = self._size
            for s in range(self._second + 1, second + 1):
                slot = s % size
                self._sum -= buckets[slot]
                buckets[slot] = 0
        self._second = second

    def update(self, nbytes: int) -> None:
        """
        Count C{nbytes} transferred now.
        """
        now = self._clock.seconds()
        second = math.floor(now)
        if second != self._second:
            self._advance(second)
        self._buckets[self._second % self._size] += nbytes
        self._sum += nbytes
        self.total += nbytes

    @property
    def rate(self) -> float:
        """
        Bytes per second over the window.
        """
        now = self._clock.seconds()
        self._advance(math.floor(now))
        if not self._sum:
            return 0.0
        span = min(now - self._start, (self._size - 1) + (now - self._second))
        return self._sum / max(span, 1.0)

    @property
    def windowTotal(self) -> int:
        """
        What was counted in the last C{window} whole seconds (this one
        included).
        """
        self._advance(math.floor(self._clock.seconds()))
        return self._sum

    def __repr__(self) -> str:
        return f"<RateMeter {self.rate:.0f} B/s, {self.total} B>"
