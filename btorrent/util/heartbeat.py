"""
The session's one periodic timer.

Every periodic duty of a torrent or a connection (keep-alives, idle and
handshake deadlines, request timeouts, choking, announces due, progress
lines, resume saves) runs from one L{Heartbeat} rather than from a timer of
its own: ten thousand idle torrents then cost one timer, and a beat that
finds nothing due costs a few attribute reads per subscriber.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

__all__ = ["BEAT", "Heartbeat"]

#: Seconds between two beats.
BEAT = 1.0


class Heartbeat:
    """
    Calls every subscriber with the clock's time, every L{interval} seconds,
    while at least one is subscribed.

    Subscribers are called in the order they subscribed; one that raises is
    logged by the caller's C{onError} and stays subscribed.  A subscriber may
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
        self._subscribers: Dict[object, Callable[[float], None]] = {}
        self._call = None
        self.beats = 0

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, key: object, callback: Callable[[float], None]) -> None:
        """
        Call C{callback(now)} every beat until L{unsubscribe}C{(key)}.
        """
        self._subscribers[key] = callback
        if self._call is None:
            self._call = self.clock.callLater(self.interval, self._beat)

    def unsubscribe(self, key: object) -> None:
        """
        Stop calling the subscriber C{key} (nothing happens if it is not
        subscribed).
        """
        self._subscribers.pop(key, None)
        if not self._subscribers and self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _beat(self) -> None:
        self._call = None
        self.beats += 1
        now = self.clock.seconds()
        for key, callback in list(self._subscribers.items()):
            if key not in self._subscribers:
                continue
            if self.onError is None:
                callback(now)
                continue
            try:
                callback(now)
            except Exception as e:
                self.onError(key, e)
        if self._subscribers and self._call is None:
            self._call = self.clock.callLater(self.interval, self._beat)

    def stop(self) -> None:
        """
        Forget every subscriber and stop beating.
        """
        self._subscribers.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
