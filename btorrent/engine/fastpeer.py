"""
The Fast extension (BEP 6) as a torrent uses it, one L{FastPeer} per peer
that negotiated it: the pieces we let the peer request while we choke it
(our allowed-fast set for its address), the pieces it lets us request while
it chokes us (its Allowed Fast messages), and the pieces it suggests.

Pure policy: no I/O, no clock.  The coordinator
(L{btorrent.engine.downloader}) keeps one in each peer's record; the
uploader asks L{FastPeer.mayServeChoked}, the requester reads
L{FastPeer.allowedFromPeer} and L{FastPeer.suggested}.

As libtorrent does (C{peer_connection::send_allowed_set},
C{incoming_request}, C{incoming_reject_request}):
  - our set is sent right after our bitfield, without the pieces the peer
    already announced, and not at all to a peer that has every piece; it
    is the BEP 6 set whether or not we have those pieces (a request for a
    piece we lack is rejected anyway);
  - a peer we choke may ask for blocks of its allowed pieces, at most
    L{CHOKED_REQUESTS_PER_PIECE} times the blocks of a piece each; beyond
    that, its requests are rejected;
  - a reject from a peer that chokes us takes the piece off its allowed
    set; one from a peer that does not takes the piece off its suggestions.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, List, Optional

from btorrent.peer.fast import ALLOWED_FAST_SIZE, allowedFastSet

__all__ = [
    "ALLOWED_FAST_SIZE",
    "CHOKED_REQUESTS_PER_PIECE",
    "MAX_ALLOWED_FROM_PEER",
    "MAX_SUGGESTED",
    "FastPeer",
    "ourAllowedSet",
]

#: Allowed-fast pieces we keep from one peer (libtorrent offers 10; more
#: are ignored, so a peer cannot make us keep a set of every piece).
MAX_ALLOWED_FROM_PEER = 64

#: Suggestions kept from one peer, newest first (libtorrent's
#: C{max_suggest_pieces} is 16).
MAX_SUGGESTED = 16

#: Requests a choked peer may make for one allowed-fast piece, in blocks of
#: the piece (libtorrent disconnects beyond 3; we reject).
CHOKED_REQUESTS_PER_PIECE = 3


def ourAllowedSet(
    host: str,
    infoHash: bytes,
    pieceCount: int,
    peerPieces=None,
    size: int = ALLOWED_FAST_SIZE,
) -> List[int]:
    """
    The pieces we let a peer at C{host} request while we choke it: BEP 6's
    set for its address, without the pieces it has.

    @param host: the peer's IP address (a host name gives an empty set).
    @param peerPieces: the pieces it announced so far (anything with
        C{in}), or C{None}.
    @return: piece indexes, in BEP 6 order; empty for a peer that has
        every piece.
    """
    if peerPieces is not None and getattr(peerPieces, "complete", False):
        return []
    try:
        pieces = allowedFastSet(size, host, infoHash, pieceCount)
    except ValueError:
        return []
    if peerPieces is None:
        return pieces
    return [index for index in pieces if index not in peerPieces]


class FastPeer:
    """
    The Fast extension's state of one peer.

    @ivar allowedToPeer: the pieces we let it request while we choke it,
        C{index -> requests it made for it while choked}.
    @ivar allowedFromPeer: the pieces it lets us request while it chokes
        us, in the order it sent them (a dict used as an ordered set).
    @ivar suggested: the pieces it suggested, newest first.
    """

    __slots__ = ("allowedToPeer", "allowedFromPeer", "suggested")

    def __init__(self, allowedToPeer: Iterable[int] = ()) -> None:
        """
        @param allowedToPeer: our allowed-fast set for the peer.
        """
        self.allowedToPeer = {index: 0 for index in allowedToPeer}
        self.allowedFromPeer: OrderedDict[int, None] = OrderedDict()
        self.suggested: List[int] = []

    def mayServeChoked(self, index: int, blocksPerPiece: int) -> bool:
        """
        The peer, which we choke, asks for a block of piece C{index}:
        whether to serve it (counted) rather than reject it.

        @param blocksPerPiece: requests of a whole piece.
        """
        count = self.allowedToPeer.get(index)
        if count is None or count >= CHOKED_REQUESTS_PER_PIECE * blocksPerPiece:
            return False
        self.allowedToPeer[index] = count + 1
        return True

    def isAllowedToPeer(self, index: int) -> bool:
        """
        Whether piece C{index} is in our allowed-fast set for the peer.
        """
        return index in self.allowedToPeer

    def allowedFast(self, index: int) -> bool:
        """
        The peer sent Allowed Fast for piece C{index}.

        @return: whether it is new (and kept).
        """
        allowed = self.allowedFromPeer
        if index in allowed or len(allowed) >= MAX_ALLOWED_FROM_PEER:
            return False
        allowed[index] = None
        return True

    def suggest(self, index: int) -> None:
        """
        The peer suggested piece C{index}: it goes first, the oldest
        suggestion beyond L{MAX_SUGGESTED} is forgotten.
        """
        suggested = self.suggested
        if index in suggested:
            suggested.remove(index)
        suggested.insert(0, index)
        del suggested[MAX_SUGGESTED:]

    def rejected(self, index: int, peerChoking: bool) -> None:
        """
        The peer rejected a request for a block of piece C{index}: while it
        chokes us, the piece is no longer allowed fast; else it is no
        longer suggested.
        """
        if peerChoking:
            self.allowedFromPeer.pop(index, None)
        else:
            self.forget(index)

    def forget(self, index: int) -> None:
        """
        Piece C{index} is verified: no use suggesting it.
        """
        if index in self.suggested:
            self.suggested.remove(index)

    def allowedWhileChoked(self) -> Optional[List[int]]:
        """
        The pieces to request while the peer chokes us, or C{None}.
        """
        if not self.allowedFromPeer:
            return None
        return list(self.allowedFromPeer)
