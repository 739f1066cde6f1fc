"""
The rules a received message must keep, whatever the connection's state:
piece indexes in range, request sizes, Fast extension messages only when
both sides offered it (L{breach}); and what a peer announces before we know
the torrent's piece count (L{EarlyPieces}), checked once we do.

Pure: values in, a reason or C{None} out; no I/O.
"""

from __future__ import annotations

from typing import Any, List, Optional, Set, Tuple

from btorrent.codec.bitfield import Bitfield
from btorrent.codec.wire import (
    BLOCK_MAX,
    AllowedFast,
    Cancel,
    Have,
    HaveAll,
    HaveNone,
    Piece,
    RejectRequest,
    Request,
    SuggestPiece,
)

__all__ = ["MAX_PIECES_UNKNOWN", "EarlyPieces", "breach"]

#: The most pieces a torrent whose metadata we do not have yet may have:
#: metadata is at most 10 MB of 20-byte hashes (BEP 9 via ut_metadata).
MAX_PIECES_UNKNOWN = 10_000_000 // 20

# Per message kind: what its index is called in a violation, and whether it
# needs the Fast extension (and how the violation says so).
_INDEXED = {
    Piece: ("piece", None),
    Have: ("have", None),
    Request: ("request for piece", None),
    Cancel: ("request for piece", None),
    RejectRequest: ("request for piece", "reject"),
    SuggestPiece: ("piece", "suggest/allowed-fast"),
    AllowedFast: ("piece", "suggest/allowed-fast"),
}


def breach(message: Any, pieceCount: Optional[int], fast: bool) -> Optional[str]:
    """
    Whether C{message} breaks a rule of the protocol on its own.

    @param pieceCount: the torrent's piece count, C{None} while unknown
        (then indexes up to L{MAX_PIECES_UNKNOWN} pass).
    @param fast: both sides offered the Fast extension (BEP 6).
    @return: C{None}, or why the peer is to be dropped.
    """
    kind = type(message)
    if kind is HaveAll or kind is HaveNone:
        return None if fast else "have-all/none without the Fast extension"
    rule = _INDEXED.get(kind)
    if rule is None:
        return None
    what, fastOnly = rule
    if fastOnly is not None and not fast:
        return f"{fastOnly} without the Fast extension"
    limit = MAX_PIECES_UNKNOWN if pieceCount is None else pieceCount
    if message.index >= limit:
        return f"{what} {message.index} out of range"
    if what == "request for piece" and not 0 < message.length <= BLOCK_MAX:
        return f"request for a block of {message.length} bytes"
    return None


class EarlyPieces:
    """
    What a peer announced while the piece count was unknown (a magnet
    link's metadata phase): its bitfield as it came, the indexes of its
    C{Have}s, or C{HaveAll}.
    """

    __slots__ = ("bits", "haves", "haveAll")

    def __init__(self) -> None:
        self.bits: Optional[bytes] = None
        self.haves: Set[int] = set()
        self.haveAll = False

    def have(self, index: int) -> None:
        """
        A C{Have} (at most L{MAX_PIECES_UNKNOWN} are kept).
        """
        if len(self.haves) < MAX_PIECES_UNKNOWN:
            self.haves.add(index)

    def resolve(self, pieceCount: int) -> Tuple[Optional[Bitfield], Optional[str]]:
        """
        The piece count is known: the peer's pieces, or why what it
        announced does not fit.

        @return: C{(bitfield, None)} or C{(None, reason)}.
        """
        if self.haveAll:
            pieces = Bitfield.full(pieceCount)
        elif self.bits is not None:
            try:
                pieces = Bitfield.fromBytes(self.bits, pieceCount)
            except ValueError as e:
                return None, str(e)
        else:
            pieces = Bitfield(pieceCount)
        haves: List[int] = sorted(self.haves)
        for index in haves:
            if index >= pieceCount:
                return None, f"have {index} out of range"
            pieces.add(index)
        return pieces, None
