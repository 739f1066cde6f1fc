"""
Metadata exchange (BEP 9, C{ut_metadata}): the message codec, the fetcher
that assembles a magnet link's info dictionary from several peers, and the
server that hands ours out.

Messages travel inside BEP 10 extended messages (L{btorrent.peer.extended}).
The payload is a bencoded dictionary with C{msg_type} (0 request, 1 data, 2
reject) and C{piece}; a data message adds C{total_size} and carries the
16 KiB block I{after} the dictionary.  A ut_metadata payload longer than
L{MAX_MESSAGE_SIZE} (17 KiB: a block and a generous dictionary) is refused:
that is libtorrent's limit, and the peer connection must enforce it on the
frame before buffering the message (a data message needs at most
16 KiB + ~60 bytes).

L{MetadataFetcher} is one torrent's fetch, sans-IO: the caller tells it
about peers (their handshake's C{metadata_size}), messages and the time,
and it says which pieces to request from whom and which peers to drop.  It
keeps at most 2 requests outstanding per peer (as libtorrent does), gives
each piece to a different peer while there are unrequested pieces, lets a
request time out (the time is a value passed in), backs off from a peer
that rejected a request, checks the SHA-1 of the whole against the
info-hash, and on a mismatch starts over without the peers that
contributed (returning them so that the caller drops them).

L{MetadataServer} answers requests from our info dictionary: a data
message for a piece we have, a reject for anything else, and a reject once
a peer has asked for more than a few times the whole metadata (BEP 9's
flood protection).

This module is pure: it never imports C{twisted.internet}.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Dict, FrozenSet, Hashable, List, Optional, Set, Tuple, Union

from btorrent.codec import bencode

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DUPLICATE_AFTER",
    "MAX_MESSAGE_SIZE",
    "MAX_OUTSTANDING",
    "METADATA_BLOCK",
    "MetadataData",
    "MetadataFetcher",
    "MetadataMessage",
    "MetadataMessageError",
    "MetadataReject",
    "MetadataRequest",
    "MetadataServer",
    "REJECT_BACKOFF",
    "REQUEST_TIMEOUT",
    "decodeMetadataMessage",
    "encodeMetadataMessage",
    "pieceCount",
]

#: The size of every metadata piece but the last.
METADATA_BLOCK = 16 * 1024
#: The largest ut_metadata payload (after the extended id byte) we accept;
#: libtorrent drops a peer whose ut_metadata message is longer.
MAX_MESSAGE_SIZE = 17 * 1024
#: The largest info dictionary we fetch by default (libtorrent's limit is
#: 30 MiB; a .torrent above 10 MB is refused by L{btorrent.codec.metainfo}).
DEFAULT_MAX_SIZE = 10_000_000
#: Requests outstanding per peer (libtorrent's number).
MAX_OUTSTANDING = 2
#: Seconds before an unanswered request is given to another peer.
REQUEST_TIMEOUT = 10.0
#: Seconds we leave a peer alone after it rejected a request (libtorrent:
#: a minute).
REJECT_BACKOFF = 60.0
#: Seconds a request must have been outstanding before the same piece is
#: asked of a second peer, when every missing piece is already requested
#: (libtorrent: no piece twice within 3 seconds).
DUPLICATE_AFTER = 3.0
#: Whole copies of the metadata a peer may ask us for before we reject.
SERVES_PER_PEER = 4

_REQUEST, _DATA, _REJECT = 0, 1, 2
_MAX_PIECE = 2**31 - 1

Peer = Hashable


class MetadataMessageError(ValueError):
    """
    A ut_metadata message we cannot read (the peer should be dropped).
    """


@dataclass(frozen=True)
class MetadataRequest:
    """
    Asks for piece C{piece} of the metadata.
    """

    piece: int


@dataclass(frozen=True)
class MetadataData:
    """
    Piece C{piece} of a metadata of C{totalSize} bytes: C{block}.
    """

    piece: int
    totalSize: int
    block: bytes


@dataclass(frozen=True)
class MetadataReject:
    """
    The sender will not send piece C{piece}.
    """

    piece: int


MetadataMessage = Union[MetadataRequest, MetadataData, MetadataReject]


def pieceCount(size: int) -> int:
    """
    The number of metadata pieces of an info dictionary of C{size} bytes.
    """
    return -(-size // METADATA_BLOCK)


def _pieceLength(size: int, piece: int) -> int:
    return min(METADATA_BLOCK, size - piece * METADATA_BLOCK)


def encodeMetadataMessage(message: MetadataMessage) -> bytes:
    """
    The ut_metadata payload of C{message} (to frame with
    L{btorrent.peer.extended.encodeExtendedMessage} and the peer's id).

    @raise ValueError: for a negative piece, a block larger than 16 KiB or a
        C{totalSize} below 1.
    """
    if not isinstance(message, (MetadataRequest, MetadataData, MetadataReject)):
        raise ValueError(f"not a ut_metadata message: {message!r}")
    if not isinstance(message.piece, int) or not 0 <= message.piece <= _MAX_PIECE:
        raise ValueError(f"piece must be 0 to {_MAX_PIECE}, not {message.piece!r}")
    if isinstance(message, MetadataRequest):
        return bencode.encode({"msg_type": _REQUEST, "piece": message.piece})
    if isinstance(message, MetadataReject):
        return bencode.encode({"msg_type": _REJECT, "piece": message.piece})
    if len(message.block) > METADATA_BLOCK:
        raise ValueError(f"block of {len(message.block)} bytes, above 16 KiB")
    if not isinstance(message.totalSize, int) or message.totalSize < 1:
        raise ValueError("totalSize must be at least 1")
    head = bencode.encode(
        {"msg_type": _DATA, "piece": message.piece, "total_size": message.totalSize}
    )
    return head + bytes(message.block)


def decodeMetadataMessage(payload: bytes) -> Optional[MetadataMessage]:
    """
    Read a ut_metadata payload (after the extended id byte).

    @return: the message, or C{None} for a C{msg_type} we do not know (BEP
        9: an unknown message must be ignored).
    @raise MetadataMessageError: if the payload is longer than
        L{MAX_MESSAGE_SIZE}, does not start with a bencoded dictionary, or
        lacks an integer C{msg_type} or C{piece} (0 to 2**31-1); for a data
        message, if C{total_size} is not a positive integer or the block is
        empty or longer than 16 KiB.  Never anything else.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise MetadataMessageError(f"expected bytes, not {type(payload).__name__}")
    if len(payload) > MAX_MESSAGE_SIZE:
        raise MetadataMessageError(
            f"ut_metadata message too large: {len(payload)} bytes "
            f"(at most {MAX_MESSAGE_SIZE})"
        )
    payload = bytes(payload)
    try:
        top, _, end = bencode.decodePrefixWithSpans(payload)
    except bencode.BencodeError as e:
        raise MetadataMessageError(
            f"ut_metadata message is not bencoded: {e}"
        ) from None
    if not isinstance(top, dict):
        raise MetadataMessageError("ut_metadata message is not a dictionary")
    kind = top.get(b"msg_type")
    piece = top.get(b"piece")
    if type(kind) is not int or type(piece) is not int:
        raise MetadataMessageError(
            "ut_metadata message without integer msg_type and piece"
        )
    if not 0 <= piece <= _MAX_PIECE:
        raise MetadataMessageError(f"ut_metadata piece {piece} out of range")
    if kind == _REQUEST:
        return MetadataRequest(piece)
    if kind == _REJECT:
        return MetadataReject(piece)
    if kind != _DATA:
        return None
    total = top.get(b"total_size")
    if type(total) is not int or total < 1:
        raise MetadataMessageError("ut_metadata data without a positive total_size")
    block = payload[end:]
    if not 0 < len(block) <= METADATA_BLOCK:
        raise MetadataMessageError(
            f"ut_metadata data block of {len(block)} bytes (expected 1 to 16384)"
        )
    return MetadataData(piece, total, block)


class _PeerState:
    """
    What the fetcher knows of one peer.
    """

    __slots__ = ("size", "outstanding", "asked", "notBefore")

    def __init__(self, size: Optional[int]) -> None:
        self.size = size
        self.outstanding: Dict[int, float] = {}  # piece -> time requested
        self.asked: Set[int] = set()  # every piece ever requested (this round)
        self.notBefore = float("-inf")


class MetadataFetcher:
    """
    Fetches one torrent's info dictionary from peers (BEP 9), sans-IO.

    Peers are any hashable value the caller picks (the connection object,
    or its address).  A peer is asked only once L{addPeer} gave its
    C{metadata_size} and that size is the one being assembled.

    Use: on each peer's extended handshake that offers C{ut_metadata},
    L{addPeer}; then send a L{MetadataRequest} for each piece
    L{requests} returns; feed replies to L{gotData} (disconnect the peers
    it returns) and L{gotReject}; when a peer goes, L{removePeer}; on a
    timer (L{nextDeadline}), L{expire} then L{requests} again for every
    peer.  When L{infoBytes} is not C{None}, the metadata is complete and
    its SHA-1 is the info-hash.

    @ivar infoBytes: the verified info dictionary, once complete.
    @ivar size: the size being assembled, or C{None} while no usable peer
        has told us.
    @ivar banned: peers that contributed to metadata that failed the hash
        check; never asked again.
    """

    def __init__(
        self,
        infoHash: bytes,
        maxSize: int = DEFAULT_MAX_SIZE,
        timeout: float = REQUEST_TIMEOUT,
        maxOutstanding: int = MAX_OUTSTANDING,
        rejectBackoff: float = REJECT_BACKOFF,
    ) -> None:
        """
        @param infoHash: the 20-byte SHA-1 the metadata must have.
        @param maxSize: refuse peers announcing a larger metadata.
        @param timeout: seconds before an unanswered request is freed.
        @param maxOutstanding: requests outstanding per peer.
        @param rejectBackoff: seconds a peer that rejected is left alone.
        """
        if len(infoHash) != 20:
            raise ValueError("info-hash must be 20 bytes")
        self.infoHash = bytes(infoHash)
        self.maxSize = maxSize
        self.timeout = timeout
        self.maxOutstanding = maxOutstanding
        self.rejectBackoff = rejectBackoff
        self.infoBytes: Optional[bytes] = None
        self.size: Optional[int] = None
        self.banned: Set[Peer] = set()
        self._peers: Dict[Peer, _PeerState] = {}
        self._buffer: Optional[bytearray] = None
        self._sources: Dict[int, Peer] = {}  # received piece -> who sent it

    # Queries.

    @property
    def done(self) -> bool:
        """
        Whether the metadata is complete and verified.
        """
        return self.infoBytes is not None

    @property
    def pieceCount(self) -> int:
        """
        Pieces of the metadata being assembled (0 while its size is unknown).
        """
        return pieceCount(self.size) if self.size else 0

    @property
    def piecesReceived(self) -> int:
        """
        Pieces received so far in this round.
        """
        return len(self._sources)

    def peers(self) -> List[Peer]:
        """
        The peers known to the fetcher (banned ones excluded).
        """
        return list(self._peers)

    def outstanding(self, peer: Peer) -> Tuple[int, ...]:
        """
        The pieces requested of C{peer} and not yet answered.
        """
        state = self._peers.get(peer)
        return tuple(sorted(state.outstanding)) if state else ()

    def nextDeadline(self, now: float) -> Optional[float]:
        """
        The earliest time after C{now} at which L{expire} or L{requests}
        could give something new (a request timing out, a back-off ending),
        or C{None} if nothing is pending.
        """
        if self.done:
            return None
        times = []
        for state in self._peers.values():
            times.extend(sent + self.timeout for sent in state.outstanding.values())
            if state.notBefore > now:
                times.append(state.notBefore)
        return min(times) if times else None

    # Peers.

    def addPeer(self, peer: Peer, metadataSize: Optional[int]) -> bool:
        """
        A peer offers C{ut_metadata} (call again on every later handshake).

        @param metadataSize: its handshake's C{metadata_size} (C{None} if
            absent: it lacks the metadata and is never asked).
        @return: whether the peer can be asked now: its size is known, from
            1 to C{maxSize}, and agrees with the size being assembled (the
            first acceptable size heard).
        """
        if self.done or peer in self.banned:
            return False
        if metadataSize is not None and not (
            type(metadataSize) is int and 0 < metadataSize <= self.maxSize
        ):
            metadataSize = None
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _PeerState(metadataSize)
        elif state.size != metadataSize:
            state.size = metadataSize
            state.outstanding.clear()
            state.asked.clear()
        if self.size is None and metadataSize is not None:
            self._start(metadataSize)
        return metadataSize is not None and metadataSize == self.size

    def removePeer(self, peer: Peer) -> None:
        """
        A peer is gone (or disabled C{ut_metadata}): its requests are freed.
        """
        self._peers.pop(peer, None)

    def _start(self, size: int) -> None:
        self.size = size
        self._buffer = None
        self._sources = {}
        for state in self._peers.values():
            state.outstanding.clear()
            state.asked.clear()

    # Requests.

    def requests(self, peer: Peer, now: float) -> List[int]:
        """
        The pieces to request of C{peer} now (send a L{MetadataRequest} for
        each); they are recorded as outstanding.

        Unrequested pieces come first, lowest first, so that peers asked in
        turn get different pieces; when every missing piece is requested,
        a piece requested of another peer at least L{DUPLICATE_AFTER}
        seconds ago (and of no more than one) may be asked again.
        """
        state = self._peers.get(peer)
        if (
            self.done
            or state is None
            or self.size is None
            or state.size != self.size
            or now < state.notBefore
        ):
            return []
        free = self.maxOutstanding - len(state.outstanding)
        if free <= 0:
            return []
        requested: Dict[int, List[float]] = {}
        for other in self._peers.values():
            for piece, sent in other.outstanding.items():
                requested.setdefault(piece, []).append(sent)
        chosen: List[int] = []
        duplicates: List[int] = []
        for piece in range(pieceCount(self.size)):
            if piece in self._sources or piece in state.outstanding:
                continue
            times = requested.get(piece)
            if not times:
                chosen.append(piece)
                if len(chosen) == free:
                    break
            elif len(times) == 1 and now - times[0] >= DUPLICATE_AFTER:
                duplicates.append(piece)
        chosen.extend(duplicates[: free - len(chosen)])
        for piece in chosen:
            state.outstanding[piece] = now
            state.asked.add(piece)
        return chosen

    def schedule(self, now: float) -> List[Tuple[Peer, int]]:
        """
        L{requests} for every peer: C{(peer, piece)} pairs to send.
        """
        return [
            (peer, piece)
            for peer in list(self._peers)
            for piece in self.requests(peer, now)
        ]

    def expire(self, now: float) -> List[Peer]:
        """
        Free the requests outstanding for L{timeout} seconds or more; their
        peers are left alone for L{timeout} seconds (a late answer is still
        taken).

        @return: the peers whose requests timed out.
        """
        late = []
        for peer, state in self._peers.items():
            expired = [
                piece
                for piece, sent in state.outstanding.items()
                if now - sent >= self.timeout
            ]
            if expired:
                for piece in expired:
                    del state.outstanding[piece]
                state.notBefore = max(state.notBefore, now + self.timeout)
                late.append(peer)
        return late

    def gotReject(self, peer: Peer, piece: int, now: float) -> None:
        """
        C{peer} rejected a request: the piece goes to others and the peer is
        left alone for L{rejectBackoff} seconds.  A reject for a piece we did
        not ask of it is ignored.
        """
        state = self._peers.get(peer)
        if state is None or piece not in state.outstanding:
            return
        del state.outstanding[piece]
        state.notBefore = max(state.notBefore, now + self.rejectBackoff)

    def gotData(self, peer: Peer, message: MetadataData, now: float) -> FrozenSet[Peer]:
        """
        A data message from C{peer}.

        A piece we did not ask of it (or already have) is ignored.  A
        C{total_size} other than the size being assembled, or a block of the
        wrong length, makes it a peer to drop.  The last piece completes the
        metadata: if its SHA-1 is the info-hash, L{infoBytes} is set;
        otherwise every peer that sent a piece is banned and returned, and
        the fetch starts over (with the size most other peers announce).

        @return: the peers to disconnect (usually none).
        """
        state = self._peers.get(peer)
        if self.done or state is None or self.size is None:
            return frozenset()
        piece = message.piece
        if piece not in state.asked:
            return frozenset()
        state.outstanding.pop(piece, None)
        size = self.size
        if message.totalSize != size or len(message.block) != _pieceLength(size, piece):
            self._ban({peer})
            return frozenset({peer})
        if piece in self._sources:
            return frozenset()
        if self._buffer is None:
            self._buffer = bytearray(size)
        start = piece * METADATA_BLOCK
        self._buffer[start : start + len(message.block)] = message.block
        self._sources[piece] = peer
        if len(self._sources) < pieceCount(size):
            return frozenset()
        if hashlib.sha1(self._buffer).digest() == self.infoHash:
            self.infoBytes = bytes(self._buffer)
            self._buffer = None
            self._sources = {}
            self._peers.clear()
            return frozenset()
        contributors = set(self._sources.values())
        self._ban(contributors)
        return frozenset(contributors)

    def _ban(self, peers: Set[Peer]) -> None:
        """
        Never ask C{peers} again; if that leaves the size being assembled
        without a witness among pieces received, start over: with the size
        most remaining peers announce.
        """
        self.banned |= peers
        for peer in peers:
            self._peers.pop(peer, None)
        if any(source in peers for source in self._sources.values()) or not any(
            state.size == self.size for state in self._peers.values()
        ):
            sizes = Counter(
                state.size for state in self._peers.values() if state.size is not None
            )
            self.size = None
            self._buffer = None
            self._sources = {}
            for state in self._peers.values():
                state.outstanding.clear()
                state.asked.clear()
            if sizes:
                self._start(sizes.most_common(1)[0][0])


class MetadataServer:
    """
    Answers ut_metadata requests from our info dictionary.

    @ivar infoBytes: the info dictionary, or C{None} while we lack it (every
        request is then rejected, as BEP 9 requires).
    """

    def __init__(
        self, infoBytes: Optional[bytes] = None, servesPerPeer: int = SERVES_PER_PEER
    ) -> None:
        """
        @param servesPerPeer: whole copies of the metadata one peer may ask
            for; requests beyond are rejected.
        """
        self.infoBytes = bytes(infoBytes) if infoBytes is not None else None
        self.servesPerPeer = servesPerPeer
        self._served: Counter = Counter()

    @property
    def metadataSize(self) -> Optional[int]:
        """
        The size to announce as C{metadata_size}, or C{None}.
        """
        return len(self.infoBytes) if self.infoBytes else None

    def setMetadata(self, infoBytes: bytes) -> None:
        """
        We have the metadata now (a magnet's fetch completed).
        """
        self.infoBytes = bytes(infoBytes)

    def respond(
        self, request: MetadataRequest, peer: Optional[Peer] = None
    ) -> Union[MetadataData, MetadataReject]:
        """
        The answer to C{request}: data for a piece we have, a reject for a
        piece out of range, while we lack the metadata, or once C{peer} has
        had C{servesPerPeer} times the whole metadata.

        @param peer: who asks (any hashable), for the flood limit; C{None}
            for no limit.
        """
        data = self.infoBytes
        piece = request.piece
        if not data or not 0 <= piece < pieceCount(len(data)):
            return MetadataReject(piece)
        if peer is not None:
            if self._served[peer] >= self.servesPerPeer * pieceCount(len(data)):
                return MetadataReject(piece)
            self._served[peer] += 1
        start = piece * METADATA_BLOCK
        return MetadataData(piece, len(data), data[start : start + METADATA_BLOCK])

    def removePeer(self, peer: Peer) -> None:
        """
        Forget C{peer}'s count.
        """
        self._served.pop(peer, None)
