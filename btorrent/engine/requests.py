"""
Request scheduling: how many requests each peer has in flight (sized by
its rate), topping them up from the picker, taking them back when a peer
chokes or goes silent, and the blocks that cross a cancel.

Pure policy over a picker and per-peer L{RequestQueue}s: the peer objects
it is given need only C{peerChoking}, C{amInterested}, C{downloadRate},
C{sendRequests} (or C{sendRequest}), C{sendCancel} and C{setInterested}.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from btorrent.codec.wire import BLOCK_SIZE

__all__ = [
    "DEPTH_REFRESH",
    "MAX_DEPTH",
    "MAX_WITHDRAWN",
    "MIN_DEPTH",
    "REQUEST_TIMEOUT",
    "RequestQueue",
    "Requester",
    "requestDepth",
]

#: Requests in flight per peer: at least, at most.
MIN_DEPTH = 16
MAX_DEPTH = 500

#: Seconds between two sizings of a peer's request queue.
DEPTH_REFRESH = 0.25

#: Seconds without a block before a peer's requests go to other peers.
REQUEST_TIMEOUT = 60.0

#: Withdrawn requests remembered per peer (their blocks may still come).
MAX_WITHDRAWN = 2 * MAX_DEPTH


def requestDepth(rate: float) -> int:
    """
    How many requests to keep in flight to a peer delivering C{rate} bytes
    per second: one second's worth of blocks, between L{MIN_DEPTH} and
    L{MAX_DEPTH}.
    """
    return max(MIN_DEPTH, min(MAX_DEPTH, int(rate / BLOCK_SIZE)))


class RequestQueue:
    """
    Our requests to one peer.

    @ivar requests: in flight, C{(index, begin) -> length}, oldest first.
    @ivar withdrawn: requests we took back whose blocks may still arrive,
        C{(index, begin) -> length}, oldest first.
    @ivar lastBlock: when it last sent a block we asked for (or when we
        started waiting for one).
    @ivar snubbedUntil: no requests to it before this time.
    @ivar depth: requests to keep in flight, sized every L{DEPTH_REFRESH}.
    """

    __slots__ = (
        "requests",
        "withdrawn",
        "lastBlock",
        "snubbedUntil",
        "depth",
        "depthAt",
    )

    def __init__(self, now: float) -> None:
        self.requests: Dict[Tuple[int, int], int] = {}
        self.withdrawn: OrderedDict[Tuple[int, int], int] = OrderedDict()
        self.lastBlock = now
        self.snubbedUntil = 0.0
        self.depth = MIN_DEPTH
        self.depthAt = now

    def withdraw(self, key: Tuple[int, int], length: int) -> None:
        """
        Remember a request we took back (cancel, choke, timeout), whose
        block may still arrive; forget the oldest beyond L{MAX_WITHDRAWN}.
        """
        self.withdrawn[key] = length
        if len(self.withdrawn) > MAX_WITHDRAWN:
            self.withdrawn.popitem(last=False)


class Requester:
    """
    Keeps every peer's pipeline full from the picker.

    @ivar requestTimeout: seconds without a block before a peer's requests
        go elsewhere.
    """

    def __init__(
        self,
        picker,
        clock,
        paused: Callable[[], bool],
        queueOf: Callable[[Any], Optional[RequestQueue]],
    ) -> None:
        """
        @param picker: the torrent's L{IPiecePicker}.
        @param clock: provides C{seconds()}.
        @param paused: whether to hold back new requests now (blocks waiting
            for their check fill memory).
        @param queueOf: the L{RequestQueue} of a connected peer, or C{None}.
        """
        self.picker = picker
        self.clock = clock
        self.paused = paused
        self.queueOf = queueOf
        self.requestTimeout = REQUEST_TIMEOUT
        #: C{depthCap(peer)}: requests in flight at most under a download
        #: limit (L{btorrent.engine.bandwidth}); C{None} without one.
        self.depthCap = None

    def fill(self, peer, record) -> None:
        """
        Top up the requests in flight to C{peer}.

        @param record: the peer's state: C{queue} (its L{RequestQueue}),
            C{known} (its pieces as counted in the picker), C{wanted}
            (how many of them we want; zeroed here when it has nothing more
            for us) and C{fast} (a L{btorrent.engine.fastpeer.FastPeer}
            when the peer speaks the Fast extension, else C{None}): its
            suggestions come first, and while it chokes us only its
            allowed-fast pieces are asked for.
        """
        queue = record.queue
        inFlight = len(queue.requests)
        if inFlight:
            # Called after every block: return at once while enough are in
            # flight and the depth is not due to be sized again (what the
            # checks below would decide too).
            depth = queue.depth
            if (
                depth - inFlight < max(4, depth // 4)
                and self.clock.seconds() < queue.depthAt
            ):
                return
        if not peer.amInterested:
            return
        # Fast extension (BEP 6): its state, and while the peer chokes us
        # the only pieces we may ask it for.
        fast = getattr(record, "fast", None)
        allowed = None
        if peer.peerChoking:
            allowed = fast.allowedWhileChoked() if fast is not None else None
            if not allowed:
                return
        if self.paused():
            return
        known = record.known
        now = self.clock.seconds()
        if queue.snubbedUntil > now:
            return
        if now >= queue.depthAt:
            # The rate moves slowly: size the queue a few times a second.
            queue.depth = requestDepth(peer.downloadRate.rate)
            if self.depthCap is not None:
                queue.depth = min(queue.depth, self.depthCap(peer))
            queue.depthAt = now + DEPTH_REFRESH
        depth = queue.depth
        inFlight = len(queue.requests)
        free = depth - inFlight
        # Ask the picker in batches: one call per few blocks.
        if free <= 0 or (inFlight and free < max(4, depth // 4)):
            return
        if allowed is not None:
            blocks = self.picker.pickAmong(allowed, known, free, peer)
        elif fast is not None and fast.suggested:
            blocks = self.picker.pickAmong(fast.suggested, known, free, peer)
            if len(blocks) < free:
                blocks += self.picker.pick(known, free - len(blocks), peer)
        else:
            blocks = self.picker.pick(known, free, peer)
        if not blocks:
            if allowed is None and not inFlight and not self._stillWanted(known):
                record.wanted = 0
                peer.setInterested(False)
            return
        if not inFlight:
            queue.lastBlock = now
        requests = queue.requests
        fresh = []
        for block in blocks:
            key = (block[0], block[1])
            if key not in requests:
                requests[key] = block[2]
                fresh.append(block)
        sendRequests = getattr(peer, "sendRequests", None)
        if sendRequests is not None:
            sendRequests(fresh)
        else:
            send = peer.sendRequest
            for index, begin, length in fresh:
                send(index, begin, length)

    def _stillWanted(self, known) -> bool:
        theirs = int.from_bytes(known.toBytes(), "big")
        needed = getattr(self.picker, "neededBits", None)
        if needed is not None:
            return bool(theirs & needed())
        ours = int.from_bytes(self.picker.haveBitfield.toBytes(), "big")
        return bool(theirs & ~ours)

    def blockArrived(
        self, peer, queue: RequestQueue, index: int, begin: int, length: int
    ) -> Optional[str]:
        """
        A block came from C{peer}: take it off its queue, and cancel it
        where else it was requested (endgame).

        @return: C{None} if the block is to be kept; C{""} if it crossed
            our cancel (ignore it); else why the peer is to be dropped.
        """
        key = (index, begin)
        wanted = queue.requests.pop(key, None)
        if wanted is None:
            withdrawn = queue.withdrawn.pop(key, None)
            if withdrawn is not None and withdrawn == length:
                # Asked for, then cancelled, choked or timed out: it crossed
                # our cancel.  Not counted.
                return ""
            if withdrawn is None:
                return f"sent a block never requested ({index}:{begin})"
            return f"sent a block of {length} bytes, not {withdrawn}"
        if wanted != length:
            return f"sent a block of {length} bytes, not {wanted}"
        queue.lastBlock = self.clock.seconds()
        queue.snubbedUntil = 0.0
        for other in self.picker.blockReceived(index, begin, peer):
            otherQueue = self.queueOf(other)
            if otherQueue is None:
                continue
            otherLength = otherQueue.requests.pop(key, None)
            if otherLength is not None:
                otherQueue.withdraw(key, otherLength)
                other.sendCancel(index, begin, otherLength)
        return None

    def rejected(
        self, peer, queue: RequestQueue, index: int, begin: int, length: int
    ) -> bool:
        """
        The peer refused a request (Fast extension): the block is wanted
        again, from anyone.

        @return: whether it was a request in flight (else the peer broke
            the protocol).
        """
        key = (index, begin)
        if queue.requests.get(key) != length:
            # A request we withdrew (cancel, timeout) is answered too.
            return queue.withdrawn.pop(key, None) is not None
        del queue.requests[key]
        self.picker.abort(index, begin, peer)
        return True

    def returnAll(self, peer, queue: RequestQueue) -> None:
        """
        Give every request in flight to C{peer} back to the picker; its
        blocks may still arrive.
        """
        if queue.requests:
            self.picker.abortPeer(peer)
            for key, length in queue.requests.items():
                queue.withdraw(key, length)
            queue.requests.clear()

    def checkTimeouts(self, peers: Iterable[Tuple[Any, RequestQueue]]) -> List[Any]:
        """
        Give the requests of peers silent for L{requestTimeout} seconds to
        other peers, and stop asking those peers for a while.

        @return: the peers that timed out.
        """
        now = self.clock.seconds()
        timedOut = []
        for peer, queue in peers:
            if queue.requests and now - queue.lastBlock >= self.requestTimeout:
                timedOut.append((peer, now - queue.lastBlock, len(queue.requests)))
                for (index, begin), length in queue.requests.items():
                    peer.sendCancel(index, begin, length)
                self.returnAll(peer, queue)
                queue.snubbedUntil = now + self.requestTimeout
        return timedOut
