"""
The session's one periodic timer.

Every periodic duty of a torrent or a connection (keep-alives, idle and
handshake deadlines, request timeouts, choking, announces due, progress
lines, resume saves) runs from one L{Heartbeat} rather than from a timer of
its own: ten thousand idle torrents then cost one timer.

A subscriber with nothing to do for a while (a torrent without peers has
no one to choke and no request to time out) returns from its call the time
before which it need not be called again, and is skipped until then, or
until L{Heartbeat.wake} (a peer arrived).  A beat over ten thousand idle
torrents then costs a dictionary lookup for each of their parts, not a
method call.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable, Dict, List, Optional, Tuple, Union

__all__ = ["BEAT", "Heartbeat"]

#: Seconds between two beats.
BEAT = 1.0


class Heartbeat:
    """
    Calls every subscriber with the clock's time, every L{interval} seconds,
    while at least one is subscribed; a subscriber that returns a time is
    not called again before it (or before L{wake}).

    Subscribers are called in the order they subscribed (or woke); one that
    raises is logged by the caller's C{onError} and stays subscribed.  A
    subscriber may
    subscribe or unsubscribe anyone (itself included) while being called:
    the change takes effect from the next beat.
    """

    def __init__(
        self,
        clock,
        interval: float = BEAT,
        onError: Optional[Callable[[object, BaseException], None]] = None,
    ) -> None:
        """
        @param clock: provides C{seconds()} and C{callLater()}.
        @param interval: seconds between beats.
        @param onError: C{onError(subscriber, exception)} for a subscriber
            that raised (by default the exception propagates).
        """
        self.clock = clock
        self.interval = interval
        self.onError = onError
        self._subscribers: Dict[object, Callable[[float], Optional[float]]] = {}
        #: The subscribers called at each beat, in the order they subscribed
        #: or woke.
        self._awake: Dict[object, Callable[[float], Optional[float]]] = {}
        #: Subscribers asleep, and the time they wake.
        self._asleep: Dict[object, float] = {}
        #: C{(time, n, key)} of every sleep, earliest first (an entry whose
        #: subscriber woke or slept again since is skipped).
        self._wakeups: List[Tuple[float, int, object]] = []
        self._sleeps = itertools.count()
        self._call = None
        self.beats = 0

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(
        self, key: object, callback: Callable[[float], Union[float, None]]
    ) -> None:
        """
        Call C{callback(now)} every beat until L{unsubscribe}C{(key)}.

        @param callback: returns C{None}, or a time before which it need not
            be called again (unless L{wake}C{(key)}).
        """
        self._subscribers[key] = callback
        self._asleep.pop(key, None)
        self._awake[key] = callback
        if self._call is None:
            self._call = self.clock.callLater(self.interval, self._beat)

    def unsubscribe(self, key: object) -> None:
        """
        Stop calling the subscriber C{key} (nothing happens if it is not
        subscribed).
        """
        self._subscribers.pop(key, None)
        self._awake.pop(key, None)
        self._asleep.pop(key, None)
        if not self._subscribers and self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def wake(self, key: object) -> None:
        """
        Call the subscriber C{key} at the next beat even if it said it need
        not be called yet.
        """
        if self._asleep.pop(key, None) is not None:
            self._awake[key] = self._subscribers[key]

    def _beat(self) -> None:
        self._call = None
        self.beats += 1
        now = self.clock.seconds()
        awake, asleep, wakeups = self._awake, self._asleep, self._wakeups
        while wakeups and wakeups[0][0] <= now:
            until, _, key = heapq.heappop(wakeups)
            if asleep.get(key) == until:
                del asleep[key]
                awake[key] = self._subscribers[key]
        for key, callback in list(awake.items()):
            if awake.get(key) is not callback:
                # Unsubscribed, or subscribed anew, during this beat.
                continue
            if self.onError is None:
                until = callback(now)
            else:
                try:
                    until = callback(now)
                except Exception as e:
                    self.onError(key, e)
                    continue
            if until is not None and awake.get(key) is callback:
                del awake[key]
                asleep[key] = until
                heapq.heappush(wakeups, (until, next(self._sleeps), key))
        if self._subscribers and self._call is None:
            self._call = self.clock.callLater(self.interval, self._beat)

    def stop(self) -> None:
        """
        Forget every subscriber and stop beating.
        """
        self._subscribers.clear()
        self._awake.clear()
        self._asleep.clear()
        del self._wakeups[:]
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
