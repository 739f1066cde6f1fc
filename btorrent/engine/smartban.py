"""
Smart ban: who sent the bad data of a piece that failed its hash check.

A failed piece that came from one peer alone proves that peer sent bad
data.  One that several peers sent proves nothing yet (blaming all of them
banned honest peers that had shared pieces with a liar): each sender's
blocks are fingerprinted (L{blockDigests}), and once the piece passes,
whoever sent a block that differs from the good one is proven (libtorrent
calls this smart ban).  A peer proven L{MAX_STRIKES} times is banned.

Peers are named by an opaque, hashable strike key (the address we dialled,
or the peer id of an incoming peer).  Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Dict, Hashable, List, Optional, Sequence, Set

from btorrent.codec.wire import BLOCK_SIZE

__all__ = [
    "MAX_STRIKES",
    "MAX_SUSPECT_ATTEMPTS",
    "MAX_SUSPECT_PIECES",
    "SmartBan",
    "blockDigests",
]

#: Bad pieces a peer may be proven to have sent before it is banned.
MAX_STRIKES = 3

#: Failed pieces of several senders remembered until they pass, and
#: failed attempts remembered per piece.
MAX_SUSPECT_PIECES = 64
MAX_SUSPECT_ATTEMPTS = 4


def blockDigests(data) -> List[bytes]:
    """
    The SHA-1 of each 16 KiB block of a piece: what a peer sent, told
    apart without keeping its bytes.
    """
    view = memoryview(data)
    sha1 = hashlib.sha1
    return [
        sha1(view[i : i + BLOCK_SIZE]).digest() for i in range(0, len(view), BLOCK_SIZE)
    ]


class SmartBan:
    """
    The strikes of one torrent's peers.

    @ivar strikes: C{strikeKey -> bad pieces proven}.
    @ivar banned: keys (strike keys, peer ids, addresses) banned for good.
    @ivar strikesAtBan: C{strikeKey -> strikes} when it was banned.
    """

    def __init__(self) -> None:
        self.strikes: Dict[Hashable, int] = {}
        self.strikesAtBan: Dict[Hashable, int] = {}
        self.banned: Set[Hashable] = set()
        self._suspects: OrderedDict[int, list] = OrderedDict()

    def isSuspect(self, index: int) -> bool:
        """
        Whether piece C{index} failed before with several senders: its
        block digests are wanted when it passes.
        """
        return index in self._suspects

    def pieceFailed(
        self,
        index: int,
        senders: Sequence[Hashable],
        digests: Optional[Sequence[bytes]],
    ) -> List[Hashable]:
        """
        Piece C{index} failed its hash check.

        @param senders: the strike key of each block's sender, in order.
        @param digests: the piece's L{blockDigests} when it had several
            senders (else C{None}).
        @return: the keys to ban now.
        """
        keys = set(senders)
        if len(keys) == 1:
            return self._strike(senders[0])
        if digests is not None:
            attempts = self._suspects.pop(index, [])
            attempts.append(list(zip(senders, digests)))
            self._suspects[index] = attempts[-MAX_SUSPECT_ATTEMPTS:]
            while len(self._suspects) > MAX_SUSPECT_PIECES:
                self._suspects.popitem(last=False)
        return []

    def piecePassed(
        self, index: int, digests: Optional[Sequence[bytes]]
    ) -> List[Hashable]:
        """
        Piece C{index} passed: each peer that had sent a block different
        from the good one in an earlier failed attempt gets a strike (once
        per attempt); the others are cleared.

        @param digests: the good piece's L{blockDigests} if it was a
            suspect (see L{isSuspect}).
        @return: the keys to ban now.
        """
        attempts = self._suspects.pop(index, None)
        if not attempts or digests is None:
            return []
        toBan: List[Hashable] = []
        for attempt in attempts:
            culprits = {
                key for (key, sent), good in zip(attempt, digests) if sent != good
            }
            for key in culprits:
                toBan += self._strike(key)
        return toBan

    def _strike(self, key: Hashable) -> List[Hashable]:
        """
        One more bad piece proven against C{key}.

        @return: C{[key]} if that makes L{MAX_STRIKES} and it was not banned
            yet, else nothing.
        """
        strikes = self.strikes.get(key, 0) + 1
        self.strikes[key] = strikes
        if strikes >= MAX_STRIKES and key not in self.banned:
            self.banned.add(key)
            self.strikesAtBan[key] = strikes
            return [key]
        return []
