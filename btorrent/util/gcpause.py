"""
L{CollectorPause}: Python's cyclic garbage collector paused while the
daemon builds its torrents at start-up.

Bringing back ten thousand torrents makes millions of objects that live as
long as the daemon.  Each time the survivors grow by a quarter, CPython
runs a full collection over every object made so far: measured on 10,000
torrents, these collections were 40 % of the start-up's CPU seconds.
Pausing the collector until the torrents are up (or a time limit passes)
costs nothing of memory but the cyclic garbage of those few seconds.

When the pause ends, what was made in it is frozen (C{gc.freeze}): the
torrents are there for good, and three collections over all of them
(young, middle, old: 2.2 s for 10,000 torrents) would find nothing to
free.  Frozen objects are never collected, so when one of them may have
become garbage (a torrent removed) L{thaw} gives them back to the
collector, whose next full collection frees what is unreachable.
"""

from __future__ import annotations

import gc as _gc
from typing import Any, Optional

__all__ = ["PAUSE_LIMIT", "CollectorPause"]

#: The longest pause (seconds): a start that takes longer (a slow disk, a
#: torrent waiting for a recheck) collects again after this.
PAUSE_LIMIT = 60.0


class CollectorPause:
    """
    Pause the cyclic garbage collector for a burst of long-lived objects.

    @ivar paused: whether this pause holds the collector off now.
    @ivar frozen: whether what the pause made is frozen.
    @ivar deadline: when the pause ends at the latest (clock seconds), or
        C{None}.
    """

    def __init__(self, gc: Any = _gc, limit: float = PAUSE_LIMIT) -> None:
        """
        @param gc: the collector (the C{gc} module; tests give a fake).
        @param limit: the longest pause, in seconds.
        """
        self._gc = gc
        self.limit = limit
        self.paused = False
        self.frozen = False
        self.deadline: Optional[float] = None

    def begin(self, now: float) -> None:
        """
        Pause the collector (unless someone else turned it off already:
        then it is theirs to turn on).
        """
        if self.paused or not self._gc.isenabled():
            return
        self._gc.disable()
        self.paused = True
        self.deadline = now + self.limit

    def expired(self, now: float) -> bool:
        """
        Whether the pause has lasted its limit.
        """
        return self.paused and self.deadline is not None and now >= self.deadline

    def end(self) -> None:
        """
        Freeze what was made during the pause and turn the collector back
        on (if this pause turned it off).
        """
        if not self.paused:
            return
        self.paused = False
        self.deadline = None
        self._gc.freeze()
        self.frozen = True
        self._gc.enable()

    def thaw(self) -> None:
        """
        Objects of the pause may be garbage now (a torrent was removed):
        let the collector look at them again.
        """
        if self.frozen:
            self.frozen = False
            self._gc.unfreeze()
