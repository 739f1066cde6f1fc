"""
The order of the session's queue, changed as a client asks
(C{queue-move-top}, C{-up}, C{-down}, C{-bottom}, a torrent's
C{queuePosition}).  Pure: lists in, lists out.
"""

from __future__ import annotations

from typing import Any, Iterable, List

from btorrent.control.api import ControlError

__all__ = ["moved", "placed"]


def moved(order: List[Any], chosen: Iterable[Any], where: str) -> List[Any]:
    """
    Move the C{chosen} items of C{order} to the C{top} or C{bottom}, or one
    place C{up} or C{down} (a chosen item does not pass another).

    @param order: every item, first in the queue first.
    @return: the new order.
    @raise ControlError: for another C{where}.
    """
    chosenSet = set(chosen)
    chosen = [item for item in order if item in chosenSet]
    if where == "top":
        order = chosen + [item for item in order if item not in chosen]
    elif where == "bottom":
        order = [item for item in order if item not in chosen] + chosen
    elif where in ("up", "down"):
        order = list(order)
        step = -1 if where == "up" else 1
        sequence = chosen if where == "up" else list(reversed(chosen))
        for item in sequence:
            i = order.index(item)
            j = i + step
            if 0 <= j < len(order) and order[j] not in chosen:
                order[i], order[j] = order[j], order[i]
    else:
        raise ControlError(f"unknown queue move {where}")
    return order


def placed(order: List[Any], item: Any, position: int) -> List[Any]:
    """
    Put C{item} at C{position} in C{order} (bounded to the queue).

    @return: the new order.
    """
    order = list(order)
    order.remove(item)
    order.insert(max(0, min(position, len(order))), item)
    return order
