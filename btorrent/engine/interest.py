"""
What each connected peer has for us, and telling it: its pieces counted in
the picker's availability, how many of them we want, our interest, and the
hints of the Fast extension (BEP 6: allowed-fast pieces, suggestions).

Pure policy over the picker and the requester; the peers it is given need
C{peerPieces}, C{amInterested}, C{peerChoking}, C{setInterested} and
C{address}, and their records C{known}, C{wanted} and C{fast} (see
L{btorrent.engine.downloader.PeerRecord}).
"""

from __future__ import annotations

from typing import Any, Iterable, Tuple

from btorrent.codec import wire
from btorrent.engine.fastpeer import FastPeer, ourAllowedSet

__all__ = ["Interest", "countWanted"]


def countWanted(record, needed: int) -> int:
    """
    How many of the pieces counted for a peer (C{record.known}) are in
    C{needed} (the picker's L{neededBits}).
    """
    theirs = int.from_bytes(record.known.toBytes(), "big")
    return bin(theirs & needed).count("1")


class Interest:
    """
    Keeps every peer's pieces in the picker's availability and our
    interest in step with them.
    """

    def __init__(self, picker, fill) -> None:
        """
        @param picker: the torrent's L{IPiecePicker}.
        @param fill: C{fill(peer, record)} tops up the requests to a peer
            (L{btorrent.engine.requests.Requester.fill}).
        """
        self.picker = picker
        self.fill = fill

    def update(self, peer, record) -> None:
        """
        Tell the peer whether we are interested (if that changes), and ask
        it for blocks if we are.
        """
        interested = record.wanted > 0
        if interested != peer.amInterested:
            peer.setInterested(interested)
        if interested:
            self.fill(peer, record)

    def syncBitfield(self, peer, record) -> None:
        """
        The peer's pieces changed wholesale (a bitfield, Have All): count
        them again.
        """
        self.picker.removePeer(record.known)
        record.known = peer.peerPieces.copy()
        self.picker.addPeer(record.known)
        record.wanted = countWanted(record, self.picker.neededBits())
        self.update(peer, record)

    def gotHave(self, peer, record, index: int) -> bool:
        """
        The peer has piece C{index}.

        @return: whether it is news.
        """
        if index in record.known:
            return False
        record.known.add(index)
        self.picker.peerHas(index)
        if self.picker.isWanted(index):
            record.wanted += 1
            self.update(peer, record)
        return True

    def recount(self, peers: Iterable[Tuple[Any, Any]]) -> None:
        """
        The wanted pieces changed (file selection): count again what each
        peer has for us.

        @param peers: C{(peer, record)} pairs.
        """
        needed = self.picker.neededBits()
        for peer, record in peers:
            record.wanted = countWanted(record, needed)
            self.update(peer, record)

    def pieceHad(self, index: int, peer, record) -> None:
        """
        We have piece C{index} now: it is no longer wanted from C{peer}
        (nor in its allowed-fast set); not interested once it has nothing
        more for us.
        """
        if record.fast is not None:
            record.fast.forget(index)
        if index in record.known:
            record.wanted -= 1
            if record.wanted <= 0 and peer.amInterested:
                record.wanted = 0
                peer.setInterested(False)

    # The Fast extension (BEP 6)

    def startFast(self, peer, record, infoHash: bytes, pieceCount: int) -> None:
        """
        A peer speaks the Fast extension: keep its state, and send it our
        allowed-fast set (after our bitfield).
        """
        pieces = ourAllowedSet(peer.address[0], infoHash, pieceCount, peer.peerPieces)
        record.fast = FastPeer(pieces)
        for index in pieces:
            peer.sendMessage(wire.AllowedFast(index))

    def fastHint(self, peer, record, message) -> None:
        """
        Allowed Fast (a piece we may ask for while the peer chokes us) or
        Suggest Piece (a piece to ask for first).
        """
        fast = record.fast
        if fast is None:
            return
        index = message.index
        if type(message) is wire.AllowedFast:
            if fast.allowedFast(index) and peer.peerChoking:
                self.fill(peer, record)
        elif self.picker.isWanted(index):
            fast.suggest(index)
