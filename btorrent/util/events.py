"""
L{EventSource}: several listeners for a part's events, instead of one
callback slot each.
"""

from __future__ import annotations

from typing import Callable, Dict, List

__all__ = ["EventSource"]


class EventSource:
    """
    Named events with any number of listeners each.

    A listener added or removed while an event is being delivered takes
    effect from the next event.  A listener that raises stops the delivery
    (the caller sees the exception): listeners are our own code, and a bug
    should not be hidden.
    """

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: Dict[str, List[Callable[..., None]]] = {}

    def listen(self, name: str, listener: Callable[..., None]) -> None:
        """
        Call C{listener(*args)} for every C{emit(name, *args)}.
        """
        self._listeners.setdefault(name, []).append(listener)

    def unlisten(self, name: str, listener: Callable[..., None]) -> None:
        """
        Stop calling C{listener} for C{name} (nothing happens if it was not
        listening).
        """
        listeners = self._listeners.get(name)
        if listeners and listener in listeners:
            listeners.remove(listener)

    def emit(self, name: str, *args) -> None:
        """
        Deliver an event to its listeners, in the order they were added.
        """
        listeners = self._listeners.get(name)
        if listeners:
            for listener in tuple(listeners):
                listener(*args)
