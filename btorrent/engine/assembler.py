"""
Piece assembly, the disk seam of a download: blocks are copied once into a
preallocated buffer per piece in flight; a complete piece is hashed and
written in a thread, off the reactor; the bytes received and not yet
written are bounded, so that a slow disk slows the requests (back-pressure)
instead of filling memory.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Dict, List, Set

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from btorrent.codec.wire import BLOCK_SIZE
from btorrent.engine.smartban import blockDigests
from btorrent.util import logs

__all__ = [
    "BUFFER_POOL_BYTES",
    "JOB_BATCH_BYTES",
    "MAX_PENDING_BYTES",
    "MAX_VERIFY_JOBS",
    "Assembler",
]

#: Bytes of complete pieces waiting for their hash check and write, above
#: which we stop requesting (at least four pieces' worth).  Small: what is
#: received but not yet written is lost if the process dies, and fetched
#: again: with 64 MiB a 256 MiB download killed three times cost 1.12-1.16x
#: its size (4 MiB: 1.06x), for a 1 GiB download 25% faster
#: (benchmarks/bench_download.py: 2.86 s against 3.79 s).
MAX_PENDING_BYTES = 4 * 1024 * 1024

#: Threads checking and writing pieces at once, per torrent (the session's
#: pool has 8).  Writing into a new file is bound by the kernel allocating
#: page cache, which runs in parallel: a 1 GiB download from a libtorrent
#: seeder took a median 4.14 s with 2 jobs, 2.09 s with 4, 2.00 s with 8
#: (benchmarks/bench_download.py, 5 alternating runs each).
MAX_VERIFY_JOBS = 8
#: While a job runs, complete pieces wait for it to end unless this many
#: bytes of them are queued: every job is a thread hand-off and back, and a
#: thread beside the reactor fights it for the GIL, so a job takes a batch
#: rather than one piece; the jobs still multiply (up to
#: L{MAX_VERIFY_JOBS}) when writes stall.  A 1 GiB download from libtorrent
#: (256 KiB pieces) made 4,096 jobs and ~20,000 context switches with a
#: job per piece, ~6,000 this way, and used ~0.4 s less CPU.
JOB_BATCH_BYTES = 1024 * 1024

#: Bytes of piece buffers kept for reuse.
BUFFER_POOL_BYTES = 16 * 1024 * 1024


class _Piece:
    """
    A piece being assembled: a preallocated buffer, which blocks arrived,
    and who sent each (its peer's strike key, C{None} until it arrives).
    """

    __slots__ = ("buffer", "view", "got", "missing", "senders")

    def __init__(self, buffer: bytearray) -> None:
        size = len(buffer)
        self.buffer = buffer
        self.view = memoryview(buffer)
        blocks = (size + BLOCK_SIZE - 1) // BLOCK_SIZE
        self.got = bytearray(blocks)
        self.missing = blocks
        self.senders: list = [None] * blocks


class Assembler:
    """
    Builds pieces from blocks, then checks and writes them in a thread.

    What it tells its C{listener}:
      - C{pieceVerified(index, size, digests)}: written; C{digests} are its
        block digests if it was a smart-ban suspect, else C{None}.
      - C{pieceFailed(index, senders, digests)}: bad hash, nothing written;
        C{senders} are the blocks' strike keys, C{digests} the block
        digests if several peers sent it.
      - C{pieceLost(index, failure)}: it could not be written.
      - C{jobsDone()}: a batch finished: room to request more.

    @ivar pendingBytes: bytes of complete pieces not yet checked and
        written.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        metainfo,
        storage,
        runInThread: Callable[..., Deferred],
        listener: Any,
        isSuspect: Callable[[int], bool] = lambda index: False,
        maxPendingBytes: int = 0,
    ) -> None:
        """
        @param metainfo: the torrent (C{pieceLength}, C{pieceSize},
            C{pieceHashes}).
        @param storage: its L{IPieceStorage}.
        @param runInThread: C{runInThread(f, *args) -> Deferred}.
        @param listener: hears what happens to each piece (see above).
        @param isSuspect: whether a piece failed before with several
            senders (its digests are then taken when it passes).
        @param maxPendingBytes: the back-pressure bound (default: the larger
            of L{MAX_PENDING_BYTES} and four pieces).
        """
        self.metainfo = metainfo
        self.storage = storage
        self.runInThread = runInThread
        self.listener = listener
        self.isSuspect = isSuspect
        self.maxPendingBytes = maxPendingBytes or max(
            MAX_PENDING_BYTES, 4 * metainfo.pieceLength
        )
        self.pendingBytes = 0
        self._queuedBytes = 0
        self._pieces: Dict[int, _Piece] = {}
        self._queue: list = []
        self._jobs = 0
        self._buffers: List[bytearray] = []
        self._pending: Set[Deferred] = set()

    @property
    def full(self) -> bool:
        """
        Whether too many bytes wait for their check: request nothing more.
        """
        return self.pendingBytes > self.maxPendingBytes

    def blockReceived(self, index: int, begin: int, block: bytes, sender) -> None:
        """
        Copy a requested block into its piece (once: a block that arrived
        already is ignored); a complete piece goes to be checked.

        @param sender: the strike key of the peer that sent it.
        """
        piece = self._pieces.get(index)
        if piece is None:
            piece = _Piece(self._newBuffer(self.metainfo.pieceSize(index)))
            self._pieces[index] = piece
        blockIndex = begin // BLOCK_SIZE
        if not piece.got[blockIndex]:
            piece.got[blockIndex] = 1
            piece.missing -= 1
            piece.view[begin : begin + len(block)] = block
            piece.senders[blockIndex] = sender
            if piece.missing == 0:
                del self._pieces[index]
                self._pieceComplete(index, piece)

    def inFlight(self) -> list:
        """
        The pieces with some blocks received and not yet complete.
        """
        return list(self._pieces)

    def forget(self, index: int) -> None:
        """
        Drop the blocks of a piece in flight (its data must be fetched
        again).
        """
        piece = self._pieces.pop(index, None)
        if piece is not None:
            piece.view.release()

    def _pieceComplete(self, index: int, piece: _Piece) -> None:
        """
        Queue a complete piece for its hash check and write; start a job in
        a thread if none runs, or if L{JOB_BATCH_BYTES} wait and fewer than
        L{MAX_VERIFY_JOBS} run (a job takes the whole queue, so that a slow
        disk gets bigger batches rather than more thread hand-offs).
        """
        self.pendingBytes += len(piece.buffer)
        self._queuedBytes += len(piece.buffer)
        piece.view.release()
        self._queue.append((index, piece))
        if self._jobs == 0 or (
            self._jobs < MAX_VERIFY_JOBS and self._queuedBytes >= JOB_BATCH_BYTES
        ):
            self._startJob()

    def _startJob(self) -> None:
        batch, self._queue = self._queue, []
        self._queuedBytes = 0
        hashes = self.metainfo.pieceHashes
        work = [
            (
                index,
                piece.buffer,
                hashes[index],
                len(set(piece.senders)) > 1,
                self.isSuspect(index),
            )
            for index, piece in batch
        ]
        self._jobs += 1
        d = self.runInThread(self.verifyAndWrite, work)
        self._pending.add(d)

        def done(results) -> None:
            self._pending.discard(d)
            self._jobs -= 1
            listener = self.listener
            for (index, piece), result in zip(batch, results):
                size = len(piece.buffer)
                self.pendingBytes -= size
                if isinstance(result, Failure):
                    listener.pieceLost(index, result)
                    continue
                good, digests = result
                if good:
                    self._recycle(piece.buffer)
                    listener.pieceVerified(index, size, digests)
                else:
                    listener.pieceFailed(index, piece.senders, digests)
            if self._queue and self._jobs < MAX_VERIFY_JOBS:
                self._startJob()
            listener.jobsDone()

        def failed(failure) -> None:
            # The job itself broke (not one piece): every piece is lost.
            self._pending.discard(d)
            self._jobs -= 1
            self.log.failure("cannot check pieces", failure=failure)
            for index, piece in batch:
                self.pendingBytes -= len(piece.buffer)
                self.listener.pieceLost(index, failure)
            if self._queue and self._jobs < MAX_VERIFY_JOBS:
                self._startJob()
            self.listener.jobsDone()

        d.addCallbacks(done, failed)

    def verifyAndWrite(self, work) -> list:
        """
        Off the reactor thread: check each piece's SHA-1 and write the good
        ones.

        @param work: a list of C{(index, data, expected SHA-1, shared,
            suspect)}: C{shared} if several peers sent the piece, C{suspect}
            if it failed before with several senders.
        @return: per piece, C{(True, digests)} (written), C{(False,
            digests)} (bad hash; nothing written) or the L{Failure} of its
            write.  C{digests} are the piece's block digests for a shared
            piece that failed or a suspect piece that passed, else C{None}:
            a good piece is hashed once.
        """
        results = []
        sha1 = hashlib.sha1
        write = self.storage.writePiece
        for index, data, expected, shared, suspect in work:
            if sha1(data).digest() != expected:
                results.append((False, blockDigests(data) if shared else None))
                continue
            digests = blockDigests(data) if suspect else None
            try:
                write(index, data)
            except Exception:
                results.append(Failure())
            else:
                results.append((True, digests))
        return results

    def _newBuffer(self, size: int) -> bytearray:
        if size == self.metainfo.pieceLength and self._buffers:
            return self._buffers.pop()
        return bytearray(size)

    def _recycle(self, buffer: bytearray) -> None:
        if (
            len(buffer) == self.metainfo.pieceLength
            and len(self._buffers) * len(buffer) < BUFFER_POOL_BYTES
        ):
            self._buffers.append(buffer)

    def stop(self) -> Deferred:
        """
        Forget the pieces in flight and wait for the checks and writes
        under way.
        """
        for index in list(self._pieces):
            self.forget(index)
        if self._queue:
            # Complete pieces waiting for a job are checked and written too.
            self._startJob()
        self._buffers = []
        if not self._pending:
            return succeed(None)
        return DeferredList(list(self._pending), consumeErrors=True).addCallback(
            lambda _: None
        )
