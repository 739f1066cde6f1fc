"""
Serving blocks to peers: each peer's queue of requests, whole pieces read
in a thread into a bounded cache, blocks sent while the peer's send buffer
has room.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, Callable, Dict

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from btorrent.codec.wire import BLOCK_SIZE
from btorrent.util import logs
from btorrent.util.rate import RateMeter

__all__ = [
    "MAX_PEER_QUEUE",
    "MAX_REQUEST_LENGTH",
    "READ_BATCH_BYTES",
    "READ_CACHE_BYTES",
    "Uploader",
]

#: The largest block we serve; a peer asking for more is dropped.
MAX_REQUEST_LENGTH = 131072

#: Requests a peer may have waiting for us to serve; more and it is
#: dropped.  Twice our own deepest request queue: a btorrent (or
#: libtorrent, 500) leecher keeping its pipeline full must never be taken
#: for a flood.
MAX_PEER_QUEUE = 1000

#: Bytes of whole pieces kept in memory to serve blocks from.
READ_CACHE_BYTES = 32 * 1024 * 1024
#: Bytes of pieces read in one thread job: the piece a peer waits for and
#: the next ones its queue asks for.  Every job is a thread hand-off and
#: back; seeding 1 GiB to libtorrent (256 KiB pieces) took 4,096 of them
#: with one piece a job.
READ_BATCH_BYTES = 1024 * 1024
#: The largest piece read on the reactor's thread when it is all in the
#: page cache; a larger one goes to a thread, even cached, rather than hold
#: up every connection.  A peer asking for one block of each of many
#: pieces makes every request a whole piece's copy: with 4 MiB pieces that
#: was 0.27 ms of the reactor's time per 16 KiB asked (3,700 requests a
#: second kept it busy); at most 1 MiB, a quarter of that.
INLINE_READ_BYTES = 1024 * 1024


class Uploader:
    """
    Answers the requests of a torrent's peers.

    Each peer's queue is the C{serving} deque of its record (the
    coordinator's per-peer state).

    @ivar uploaded: block bytes sent.
    @ivar uploadRate: a L{RateMeter} of them.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        metainfo,
        storage,
        runInThread: Callable[..., Deferred],
        clock,
        have: Any,
        isServing: Callable[[Any, Any], bool],
        readFailed: Callable[[int, Any], None] = lambda index, failure: None,
    ) -> None:
        """
        @param metainfo: the torrent (C{pieceCount}, C{pieceSize}).
        @param storage: its L{IPieceStorage}.
        @param runInThread: C{runInThread(f, *args) -> Deferred}.
        @param clock: for the rate meter.
        @param have: our verified pieces (a L{Bitfield}, kept up to date by
            its owner).
        @param isServing: C{isServing(peer, record)}: whether the peer is
            still connected with that record.
        @param readFailed: called with a piece's index and the L{Failure}
            when it cannot be read (the peers waiting for it are to be
            dropped, the torrent told).
        """
        self.metainfo = metainfo
        self.storage = storage
        self.runInThread = runInThread
        self.have = have
        self.isServing = isServing
        self.readFailed = readFailed
        self.uploaded = 0
        self.uploadRate = RateMeter(clock)
        self.cacheBytes = 0
        #: The upload rate limiter (L{btorrent.engine.bandwidth}) while a
        #: limit applies, else C{None}.
        self.limiter = None
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._reading: Dict[int, Deferred] = {}

    def requestReceived(self, peer, record, index: int, begin: int, length: int):
        """
        A peer asked for a block.

        A peer we choke is served only blocks of its allowed-fast pieces
        (Fast extension: C{record.fast}, a
        L{btorrent.engine.fastpeer.FastPeer}), a few times each.

        @return: C{None} if queued (or ignored: we choke it, without the Fast
            extension), C{"reject"} if it must be refused (Fast extension),
            or the reason to drop the peer.
        """
        size = self.metainfo.pieceSize(index)
        if length <= 0 or length > MAX_REQUEST_LENGTH or begin + length > size:
            return f"bad request {index}:{begin}+{length}"
        if peer.amChoking:
            fast = getattr(record, "fast", None)
            blocks = -(-size // BLOCK_SIZE)
            if (
                fast is None
                or index not in self.have
                or not fast.mayServeChoked(index, blocks)
            ):
                return "reject"
        if index not in self.have:
            if getattr(peer, "fast", False):
                return "reject"
            return f"request for piece {index} that we do not have"
        if len(record.serving) >= MAX_PEER_QUEUE:
            return "too many requests"
        record.serving.append((index, begin, length))
        self.serve(peer, record)
        return None

    def cancelReceived(self, record, index: int, begin: int, length: int) -> bool:
        """
        A peer withdrew a request.

        @return: whether it was still queued.
        """
        try:
            record.serving.remove((index, begin, length))
        except ValueError:
            return False
        return True

    def requestMessage(self, peer, record, message) -> None:
        """
        A C{Request} from C{peer} (L{requestReceived}): refused with a
        reject when the peer speaks the Fast extension; a request that
        breaks the rules drops the peer.
        """
        index, begin, length = message.index, message.begin, message.length
        verdict = self.requestReceived(peer, record, index, begin, length)
        if verdict is None:
            return
        if verdict == "reject":
            if getattr(peer, "fast", False):
                peer.sendReject(index, begin, length)
            return
        peer.drop(verdict)

    def cancelMessage(self, peer, record, message) -> None:
        """
        A C{Cancel} from C{peer} (L{cancelReceived}): with the Fast
        extension even a cancelled request gets its reject (BEP 6).
        """
        index, begin, length = message.index, message.begin, message.length
        if (
            self.cancelReceived(record, index, begin, length)
            and record.fast is not None
        ):
            peer.sendReject(index, begin, length)

    def serve(self, peer, record) -> None:
        """
        Send what we can of the peer's queued requests; read pieces missing
        from the cache in a thread.
        """
        cache = self._cache
        serving: deque = record.serving
        limiter = self.limiter
        while serving:
            if not self.isServing(peer, record):
                serving.clear()
                return
            if peer.amChoking and not self._allowedChoked(record, serving[0][0]):
                self.choked(peer, record)
                continue
            if getattr(peer, "writePaused", False):
                # Its send buffer is full: go on in peerWritable.
                return
            if limiter is not None and limiter.blocked(peer):
                # Over its share of the limit: go on when released.
                return
            index, begin, length = serving[0]
            data = cache.get(index)
            if (
                data is None
                and index not in self._reading
                and self.metainfo.pieceSize(index) <= INLINE_READ_BYTES
            ):
                # In the page cache: read at once, not in a thread (a
                # thread hand-off each way cost a third of the CPU of
                # seeding a GiB).
                data = self.storage.readPieceIfCached(index)
                if data is not None:
                    self._store(index, data)
            if data is None:
                self._readFor(serving).addCallback(lambda _: self.serve(peer, record))
                return
            cache.move_to_end(index)
            serving.popleft()
            peer.sendPiece(index, begin, data[begin : begin + length])
            self.uploaded += length
            self.uploadRate.update(length)
            if limiter is not None:
                limiter.charge(peer, length)

    def choked(self, peer, record) -> None:
        """
        We choke the peer: its queued requests are dropped, except, with
        the Fast extension, those for its allowed-fast pieces; each dropped
        one is rejected (a no-op without the extension: a choke drops every
        request then).
        """
        serving: deque = record.serving
        if not serving:
            return
        kept = [r for r in serving if self._allowedChoked(record, r[0])]
        if len(kept) == len(serving):
            return
        dropped = [r for r in serving if not self._allowedChoked(record, r[0])]
        serving.clear()
        serving.extend(kept)
        if getattr(record, "fast", None) is not None:
            for index, begin, length in dropped:
                peer.sendReject(index, begin, length)

    @staticmethod
    def _allowedChoked(record, index: int) -> bool:
        fast = getattr(record, "fast", None)
        return fast is not None and fast.isAllowedToPeer(index)

    def _readFor(self, serving: deque) -> Deferred:
        """
        Read the piece of the first request of C{serving}, and with it, in
        the same job, the next pieces the queue asks for that are neither
        cached nor being read (up to L{READ_BATCH_BYTES}).

        @return: a L{Deferred} that fires once the first one is read (or
            failed).
        """
        first = serving[0][0]
        reading = self._reading.get(first)
        if reading is not None:
            d = Deferred()
            reading.addBoth(lambda r: (d.callback(None), r)[1])
            return d
        indexes = [first]
        size = self.metainfo.pieceSize(first)
        for index, _, _ in serving:
            if size >= READ_BATCH_BYTES:
                break
            if index in indexes or index in self._cache or index in self._reading:
                continue
            indexes.append(index)
            size += self.metainfo.pieceSize(index)
        d = self.runInThread(self._readPieces, indexes)
        for index in indexes:
            self._reading[index] = d

        def got(results) -> None:
            for index, result in zip(indexes, results):
                del self._reading[index]
                if isinstance(result, Failure):
                    self.readFailed(index, result)
                else:
                    self._store(index, result)

        def failed(failure) -> None:
            for index in indexes:
                del self._reading[index]
            self.readFailed(first, failure)

        d.addCallbacks(got, failed)
        return d

    def _readPieces(self, indexes) -> list:
        """
        Off the reactor thread: read whole pieces.

        @return: per piece, its bytes or the L{Failure} of its read.
        """
        results = []
        read = self.storage.readPiece
        for index in indexes:
            try:
                results.append(read(index))
            except Exception:
                results.append(Failure())
        return results

    def _store(self, index: int, data: bytes) -> None:
        self._cache[index] = data
        self.cacheBytes += len(data)
        while self.cacheBytes > READ_CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self.cacheBytes -= len(old)

    def clear(self) -> None:
        """
        Forget the cache.
        """
        self._cache.clear()
        self.cacheBytes = 0
