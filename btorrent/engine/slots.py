"""
Connection slots under pressure: which connected peer gives way when a
torrent's slots are full and a newcomer completes its handshake, and when a
peer that has only handshaken must go.

Without this, 500 connections that complete the handshake and then say
nothing (keep-alives at most) fill every slot, and an honest peer is
refused for as long as they stay.  As libtorrent does when it is at its
connection limit (C{torrent::disconnect_peers}, C{compare_disconnect_peer}:
peers we are not interested in first, then the ones that gave us the
least), a full torrent makes room by dropping its least useful peer:

  - only an idle peer gives way: neither side is interested, and no
    request is in flight either way; a peer trading data, or waiting for
    it, never does;
  - of those, one that never exchanged a block goes before one that did,
    and then the one idle longest (since its last useful message, or since
    its handshake if it never sent one).

And a peer that has said nothing useful (L{USEFUL_MESSAGES}: its pieces,
its interest, a request, a block, an extension message) within
L{QUIET_DEADLINE} seconds of its handshake is dropped, so that such
connections free their slots even when nobody new arrives.  Honest peers
speak at once: a leecher says it is interested, and any peer with pieces
(or, with the Fast extension, without) sends its bitfield.

Pure: no reactor; times are clock values given by the caller.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from btorrent.codec import wire
from btorrent.peer.connection import ExtensionMessage

__all__ = [
    "QUIET_DEADLINE",
    "USEFUL_MESSAGES",
    "admit",
    "evictionCandidate",
    "isIdle",
    "quietPeers",
]

#: Seconds after its handshake within which a peer must send one of
#: L{USEFUL_MESSAGES}.
QUIET_DEADLINE = 30.0

#: The messages that show a peer means to trade (keep-alives, chokes,
#: not-interested and the extension handshake do not).
USEFUL_MESSAGES = frozenset(
    {
        wire.BitfieldMessage,
        wire.Have,
        wire.HaveAll,
        wire.HaveNone,
        wire.Interested,
        wire.Request,
        wire.Piece,
        ExtensionMessage,
    }
)


def isIdle(peer: Any, record: Any) -> bool:
    """
    Whether C{peer} could go without loss: neither side is interested and
    no request is in flight either way.

    @param peer: a connected peer (C{amInterested}, C{peerInterested}).
    @param record: its L{btorrent.engine.downloader.PeerRecord}.
    """
    return (
        not peer.amInterested
        and not peer.peerInterested
        and not record.queue.requests
        and not record.serving
    )


def _idleSince(record: Any) -> float:
    if record.usefulAt is not None:
        return record.usefulAt
    return record.connectedAt


def _exchangedData(peer: Any) -> bool:
    return bool(
        getattr(peer, "bytesDownloaded", 0) or getattr(peer, "bytesUploaded", 0)
    )


def evictionCandidate(peers: Iterable[Tuple[Any, Any]]) -> Optional[Any]:
    """
    The peer to drop for a newcomer when every slot is taken: of the idle
    ones (L{isIdle}), one that never exchanged a block before one that did,
    then the one idle longest.

    @param peers: C{(peer, record)} pairs of the connected peers.
    @return: that peer, or C{None} if none is idle (the newcomer is
        refused).
    """
    best = None
    bestKey = None
    for peer, record in peers:
        if not isIdle(peer, record):
            continue
        key = (_exchangedData(peer), _idleSince(record))
        if bestKey is None or key < bestKey:
            best, bestKey = peer, key
    return best


def quietPeers(
    peers: Iterable[Tuple[Any, Any]], now: float, deadline: float = QUIET_DEADLINE
) -> List[Any]:
    """
    The peers that have sent nothing useful within C{deadline} seconds of
    their handshake.

    @param peers: C{(peer, record)} pairs of the connected peers.
    @param now: the clock's time.
    """
    return [
        peer
        for peer, record in peers
        if record.usefulAt is None and now - record.connectedAt >= deadline
    ]


def admit(
    peer: Any,
    peers: Dict[Any, Any],
    maxPeers: int,
    banned,
    outgoing: bool,
    globalRoom: Optional[Callable[[], int]] = None,
) -> Tuple[bool, Optional[Any]]:
    """
    Whether a torrent takes a peer whose handshake came: not if it is
    banned, already connected (same peer id or address), or the slots are
    full and no connected peer is idle enough to give way
    (L{evictionCandidate}); an incoming peer also needs room under the
    session's limit (an outgoing one's dial holds its slot).

    @param peers: the connected peers, C{peer -> record}.
    @param banned: the banned peer ids and addresses.
    @param outgoing: we dialled it.
    @param globalRoom: C{globalRoom()}: connections left under the
        session's limit, or C{None} without one.
    @return: C{(admitted, evicted)}: C{evicted} is the peer to drop to make
        room, or C{None}.
    """
    if peer.peerId in banned or peer.address in banned:
        return False, None
    evicted = None
    if len(peers) >= maxPeers:
        evicted = evictionCandidate(peers.items())
        if evicted is None:
            return False, None
    if evicted is None and not outgoing and globalRoom is not None:
        if globalRoom() <= 0:
            return False, None
    for other in peers:
        if other.peerId == peer.peerId or other.address == peer.address:
            return False, None
    return True, evicted
