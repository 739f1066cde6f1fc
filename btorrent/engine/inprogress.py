"""
The pieces in progress, for the piece picker (L{btorrent.engine.picker}):
per block, whether it is free, requested (from which peers) or received;
per peer, the blocks requested from it; the endgame's duplicate requests.

Pure: peers are opaque, hashable C{peerKey}s; no I/O.
"""

from __future__ import annotations

import random
from typing import Any, Dict, Hashable, List, Optional, Tuple

from btorrent.codec.bitfield import Bitfield

__all__ = ["Block", "PiecesInProgress"]

# The state of a block that arrived.  A free block is None; a requested block
# is a dict whose keys are the peer keys it is requested from (a dict rather
# than a set so that the order of cancels is deterministic).
_RECEIVED = True

Block = Tuple[int, int, int]


class _PieceState:
    """
    A piece in progress: the state of each of its blocks.

    @ivar blocks: per block, C{None} (free), a C{dict} of the peer keys it is
        requested from, or C{_RECEIVED}.
    @ivar free: how many blocks are free.
    @ivar received: how many blocks were received.
    @ivar cursor: no free block lies before this block number.
    """

    __slots__ = ("index", "size", "blocks", "free", "received", "cursor")

    def __init__(self, index: int, size: int, blockSize: int) -> None:
        self.index = index
        self.size = size
        count = (size + blockSize - 1) // blockSize
        self.blocks: List[Any] = [None] * count
        self.free = count
        self.received = 0
        self.cursor = 0


class PiecesInProgress:
    """
    The blocks of the pieces started and not verified yet.

    @ivar pieces: the pieces in progress, by index.
    @ivar open: those of them with a free block, oldest first.
    """

    def __init__(self, blockSize: int) -> None:
        """
        @param blockSize: the size of a request.
        """
        self.blockSize = blockSize
        self.pieces: Dict[int, _PieceState] = {}
        self.open: Dict[int, None] = {}
        # peerKey -> {(index, blockNumber): None}
        self._requests: Dict[Hashable, Dict[Tuple[int, int], None]] = {}

    def __contains__(self, index: int) -> bool:
        return index in self.pieces

    def start(self, index: int, size: int) -> _PieceState:
        """
        Start piece C{index} of C{size} bytes: every block free.
        """
        state = _PieceState(index, size, self.blockSize)
        self.pieces[index] = state
        self.open[index] = None
        return state

    def drop(self, index: int) -> None:
        """
        Forget a piece in progress, and any request for its blocks.
        """
        state = self.pieces.pop(index, None)
        if state is None:
            return
        self.open.pop(index, None)
        for number, block in enumerate(state.blocks):
            if isinstance(block, dict):
                for peerKey in block:
                    self._forgetRequest(peerKey, index, number)

    def _forgetRequest(self, peerKey: Hashable, index: int, number: int) -> None:
        requests = self._requests.get(peerKey)
        if requests is not None:
            requests.pop((index, number), None)
            if not requests:
                del self._requests[peerKey]

    # Requesting

    def _request(self, state: _PieceState, number: int, peerKey: Hashable) -> Block:
        requests = self._requests.get(peerKey)
        if requests is None:
            requests = self._requests[peerKey] = {}
        requests[(state.index, number)] = None
        begin = number * self.blockSize
        return (state.index, begin, min(self.blockSize, state.size - begin))

    def takeFree(
        self, state: _PieceState, count: int, peerKey: Hashable, result: List[Block]
    ) -> None:
        """
        Request up to C{count} free blocks of C{state} from C{peerKey},
        appending them to C{result}.
        """
        blocks = state.blocks
        number = state.cursor
        while count > 0 and state.free:
            if blocks[number] is None:
                blocks[number] = {peerKey: None}
                state.free -= 1
                count -= 1
                result.append(self._request(state, number, peerKey))
            number += 1
        state.cursor = number
        if not state.free:
            self.open.pop(state.index, None)

    def takeOpen(
        self, peerPieces: Bitfield, count: int, peerKey: Hashable, result: List[Block]
    ) -> None:
        """
        Request free blocks of the open pieces the peer has, the oldest
        piece first, until C{result} holds C{count} blocks.
        """
        pieces = self.pieces
        for index in list(self.open):
            if index in peerPieces:
                self.takeFree(pieces[index], count - len(result), peerKey, result)
                if len(result) >= count:
                    return

    def takeDuplicates(
        self,
        peerPieces: Bitfield,
        count: int,
        peerKey: Hashable,
        result: List[Block],
        rng: random.Random,
    ) -> None:
        """
        Endgame: request blocks already requested from other peers, those
        requested from the fewest peers first.
        """
        candidates = []
        for index, state in self.pieces.items():
            if index not in peerPieces:
                continue
            for number, block in enumerate(state.blocks):
                if isinstance(block, dict) and peerKey not in block:
                    candidates.append((len(block), state, number))
        rng.shuffle(candidates)
        candidates.sort(key=lambda candidate: candidate[0])
        for _, state, number in candidates[:count]:
            state.blocks[number][peerKey] = None
            result.append(self._request(state, number, peerKey))

    # Events on requests

    def _block(self, index: int, begin: int) -> Optional[Tuple[_PieceState, int]]:
        state = self.pieces.get(index)
        if state is None or begin < 0 or begin % self.blockSize:
            return None
        number = begin // self.blockSize
        if number >= len(state.blocks):
            return None
        return state, number

    def isRequestedFrom(self, index: int, begin: int, peerKey: Hashable) -> bool:
        """
        Whether that block is requested from C{peerKey} and not received.
        """
        found = self._block(index, begin)
        if found is None:
            return False
        state, number = found
        block = state.blocks[number]
        return isinstance(block, dict) and peerKey in block

    def blockReceived(self, index: int, begin: int, peerKey: Hashable) -> List[Any]:
        """
        A block requested from C{peerKey} arrived (anything else is
        ignored).

        @return: the other peers it was requested from.
        """
        found = self._block(index, begin)
        if found is None:
            return []
        state, number = found
        block = state.blocks[number]
        if not isinstance(block, dict) or peerKey not in block:
            return []
        state.blocks[number] = _RECEIVED
        state.received += 1
        others = []
        for other in block:
            self._forgetRequest(other, index, number)
            if other != peerKey:
                others.append(other)
        return others

    def blocksDone(self, index: int) -> bool:
        """
        Whether every block of piece C{index} was received.
        """
        state = self.pieces.get(index)
        return state is not None and state.received == len(state.blocks)

    def abort(self, index: int, begin: int, peerKey: Hashable) -> bool:
        """
        A request to C{peerKey} will not be answered: the block is free
        again unless it is still requested from another peer.

        @return: whether the piece is no longer in progress (nothing
            requested nor received: not started after all).
        """
        found = self._block(index, begin)
        if found is None:
            return False
        state, number = found
        block = state.blocks[number]
        if not isinstance(block, dict) or peerKey not in block:
            return False
        del block[peerKey]
        self._forgetRequest(peerKey, index, number)
        if block:
            return False
        state.blocks[number] = None
        state.free += 1
        state.cursor = min(state.cursor, number)
        if state.free == len(state.blocks):
            del self.pieces[index]
            self.open.pop(index, None)
            return True
        self.open[index] = None
        return False

    def requestKeys(self, peerKey: Hashable) -> List[Tuple[int, int]]:
        """
        C{(index, begin)} of every block requested from C{peerKey}, in the
        order they were requested.
        """
        size = self.blockSize
        return [
            (index, number * size) for index, number in self._requests.get(peerKey, ())
        ]

    def requestedFrom(self, peerKey: Hashable) -> List[Block]:
        """
        The blocks requested from C{peerKey} and not received, as
        C{(index, begin, length)}, in the order they were requested.
        """
        result = []
        for index, number in self._requests.get(peerKey, ()):
            begin = number * self.blockSize
            size = self.pieces[index].size
            result.append((index, begin, min(self.blockSize, size - begin)))
        return result
