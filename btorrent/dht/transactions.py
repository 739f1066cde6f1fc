"""
A DHT node's queries awaiting an answer.

L{Transactions} gives each query a random 4-byte transaction id (C{t}) and
remembers where it went, what answers it waits for and its timers: a
query is "slow" after L{SLOW_QUERY} seconds (a lookup asks another node
then) and has failed after the node's query timeout.  Pure: time comes
from an injected clock with C{seconds()} and C{callLater()}.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple

__all__ = ["SLOW_QUERY", "Transactions"]

Address = Tuple[str, int]

#: Seconds after which a lookup stops waiting for a query and asks the next
#: node instead (the query may still be answered until the timeout).
SLOW_QUERY = 2.0


class Transaction:
    """
    One query awaiting its answer.

    @ivar address: where it went.
    @ivar method: its KRPC method.
    @ivar nodeId: the id expected in the answer, if known.
    @ivar onResponse: called with the response.
    @ivar onFailure: called with an error, a response from the wrong node,
        or C{None} after the timeout.
    @ivar onSlow: called after L{SLOW_QUERY} seconds without an answer.
    @ivar timer: the pending call of its next timer.
    """

    __slots__ = (
        "address",
        "method",
        "nodeId",
        "onResponse",
        "onFailure",
        "onSlow",
        "timer",
    )

    def __init__(self, address, method, nodeId, onResponse, onFailure, onSlow):
        self.address = address
        self.method = method
        self.nodeId = nodeId
        self.onResponse = onResponse
        self.onFailure = onFailure
        self.onSlow = onSlow
        self.timer = None


class Transactions:
    """
    The queries in flight, by transaction id.
    """

    def __init__(
        self,
        clock,
        queryTimeout: float,
        onTimeout: Callable[[Transaction], None],
        randomBytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        """
        @param clock: C{seconds()} and C{callLater()}.
        @param queryTimeout: seconds before a query has failed.
        @param onTimeout: called with a L{Transaction} that timed out
            (forgotten already).
        @param randomBytes: C{randomBytes(n)} gives C{n} unpredictable
            bytes: the transaction ids.
        """
        self.clock = clock
        self.queryTimeout = queryTimeout
        self.onTimeout = onTimeout
        self._transactions: Dict[bytes, Transaction] = {}
        # Address -> how many of our queries to it await an answer.
        self._awaiting: Dict[Address, int] = {}
        self._randomBytes = randomBytes

    def __len__(self) -> int:
        return len(self._transactions)

    def awaits(self, address: Address) -> bool:
        """
        Whether a query to C{address} awaits its answer.
        """
        return address in self._awaiting

    def get(self, t: bytes) -> Optional[Transaction]:
        """
        The query of transaction id C{t}, or C{None}.
        """
        return self._transactions.get(t)

    def open(
        self,
        address: Address,
        build: Callable[[bytes], Any],
        nodeId: Optional[bytes],
        onResponse,
        onFailure,
        onSlow,
    ) -> Any:
        """
        Track a new query to C{address}, its timers started.

        @param build: makes the query from its transaction id.
        @return: the query built.
        """
        # Unpredictable: a counter told every node we queried our next ids,
        # so that one able to forge a source address could have its answer
        # taken for another node's (poisoned nodes or peers).
        while True:
            t = self._randomBytes(4)
            if t not in self._transactions:
                break
        query = build(t)
        transaction = Transaction(
            address, query.method, nodeId, onResponse, onFailure, onSlow
        )
        if onSlow is not None and SLOW_QUERY < self.queryTimeout:
            transaction.timer = self.clock.callLater(SLOW_QUERY, self._slow, t)
        else:
            transaction.timer = self.clock.callLater(
                self.queryTimeout, self._timedOut, t
            )
        self._transactions[t] = transaction
        self._awaiting[address] = self._awaiting.get(address, 0) + 1
        return query

    def _slow(self, t: bytes) -> None:
        transaction = self._transactions[t]
        transaction.timer = self.clock.callLater(
            self.queryTimeout - SLOW_QUERY, self._timedOut, t
        )
        transaction.onSlow()

    def forget(self, t: bytes) -> Transaction:
        """
        Stop tracking the query of transaction id C{t} (answered, or timed
        out); its timer is left as it is.
        """
        transaction = self._transactions.pop(t)
        address = transaction.address
        left = self._awaiting[address] - 1
        if left:
            self._awaiting[address] = left
        else:
            del self._awaiting[address]
        return transaction

    def _timedOut(self, t: bytes) -> None:
        if t not in self._transactions:
            return
        self.onTimeout(self.forget(t))

    def clear(self) -> None:
        """
        Forget every query, their timers cancelled.
        """
        for transaction in self._transactions.values():
            if transaction.timer.active():
                transaction.timer.cancel()
        self._transactions.clear()
        self._awaiting.clear()
