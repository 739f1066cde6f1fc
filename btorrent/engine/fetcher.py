"""
The download side of a torrent's peers: blocks in, verified pieces out.

L{Fetcher} checks every block a peer sends against our requests
(L{btorrent.engine.requests}), counts it (rate, limiter), hands it to the
assembler (L{btorrent.engine.assembler}: piece buffers, hash and write in a
thread), acts on the assembler's verdicts (the picker, a C{Have} to every
peer, smart ban, completion), and keeps every peer's request pipeline full.
It shares the coordinator's table of connected peers
(L{btorrent.engine.downloader.Downloader.peers}); what it cannot decide
alone (banning, completion, whether the download runs) it asks the
coordinator through callables.

This is the hot path of a download: L{Fetcher.blocksReceived} takes the
blocks of each read (up to sixteen 16 KiB blocks), one call for them all.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from btorrent.engine.assembler import Assembler
from btorrent.engine.interest import Interest
from btorrent.engine.requests import Requester
from btorrent.engine.storage import StorageError
from btorrent.util.rate import RateMeter

__all__ = ["Fetcher"]


class Fetcher:
    """
    Takes blocks, has pieces checked and written, and reports them.

    @ivar downloaded: bytes of verified pieces downloaded this session.
    @ivar verifiedBytes: bytes of verified pieces, ours before included.
    @ivar downloadRate: the rate of block bytes received.
    @ivar downloadLimiter: the download rate limiter
        (L{btorrent.engine.bandwidth}) while a limit applies, else C{None}:
        then no block is charged anywhere.
    """

    def __init__(
        self,
        metainfo,
        picker,
        storage,
        runInThread,
        clock,
        peers: Dict[Any, Any],
        smartBan,
        events,
        coordinator,
    ) -> None:
        """
        @param metainfo: the torrent.
        @param picker: its L{IPiecePicker}.
        @param storage: its L{IPieceStorage}.
        @param runInThread: C{runInThread(f, *args) -> Deferred}.
        @param clock: an C{IReactorTime}.
        @param peers: the coordinator's connected peers, C{peer -> record}
            (shared, never changed here).
        @param smartBan: the torrent's L{btorrent.engine.smartban.SmartBan}.
        @param events: the torrent's L{EventSource} (C{pieceVerified},
            C{pieceFailed}, C{writeFailed}).
        @param coordinator: what decides the rest: C{ban(key)},
            C{checkComplete()} (a piece was had: is the download complete?),
            C{running} and C{_log(level, text, **fields)}.
        """
        self.picker = picker
        self.clock = clock
        self.peers = peers
        self.smartBan = smartBan
        self.events = events
        self.coordinator = coordinator
        self.downloaded = 0
        self.verifiedBytes = picker.haveBytes
        self.downloadRate = RateMeter(clock)
        self.downloadLimiter = None
        self.assembler = Assembler(
            metainfo, storage, runInThread, self, isSuspect=smartBan.isSuspect
        )
        self.requester = Requester(
            picker, clock, lambda: self.assembler.full, self._queueOf
        )
        self.interest = Interest(picker, self.requester.fill)

    def _queueOf(self, peer):
        record = self.peers.get(peer)
        return record.queue if record is not None else None

    def fillAll(self) -> None:
        """
        Top up the requests to every peer.
        """
        fill = self.requester.fill
        for peer, record in list(self.peers.items()):
            fill(peer, record)

    def blocksReceived(self, peer, record, blocks) -> None:
        """
        C{Piece} messages from C{peer}, those of one read, in order: drop
        the peer at the first block we never asked for, ignore those that
        crossed our cancels, take the rest; then count them (rate, limiter)
        and ask for more, once for the whole run.
        """
        arrived = self.requester.blockArrived
        take = self.assembler.blockReceived
        queue = record.queue
        sender = record.strikeKey
        taken = 0
        dropped = False
        for message in blocks:
            index, begin, block = message.index, message.begin, message.block
            length = len(block)
            verdict = arrived(peer, queue, index, begin, length)
            if verdict is not None:
                if verdict:
                    peer.drop(verdict)
                    dropped = True
                    break
                continue
            take(index, begin, block, sender)
            taken += length
        if taken:
            self.downloadRate.update(taken)
            limiter = self.downloadLimiter
            if limiter is not None:
                limiter.charge(peer, taken)
        if not dropped:
            self.requester.fill(peer, record)

    def choked(self, peer, record) -> None:
        """
        The peer choked us: without the Fast extension every request is
        dropped (they go to other peers); with it, each is answered by a
        block or a reject.
        """
        if not getattr(peer, "fast", False):
            self.requester.returnAll(peer, record.queue)
            self.fillAll()

    def rejected(self, peer, record, message) -> None:
        """
        The peer refused a request (Fast extension): the block goes to
        anyone; a reject of a request never made drops the peer.
        """
        if not self.requester.rejected(
            peer, record.queue, message.index, message.begin, message.length
        ):
            peer.drop(f"rejected a request never made ({message.index})")
            return
        if record.fast is not None:
            record.fast.rejected(message.index, peer.peerChoking)
        self.fillAll()

    def checkTimeouts(self) -> None:
        """
        Give the requests of peers silent for the requester's timeout to
        other peers, and stop asking those peers for a while.
        """
        timedOut = self.requester.checkTimeouts(
            [(peer, record.queue) for peer, record in self.peers.items()]
        )
        for peer, seconds, count in timedOut:
            self.coordinator._log(
                "info",
                "peer {host}:{port} sent nothing for {seconds:.0f} s: "
                "its {count} requests go to other peers",
                host=peer.address[0],
                port=peer.address[1],
                seconds=seconds,
                count=count,
            )
        if timedOut:
            self.fillAll()

    # What the assembler tells

    def pieceVerified(self, index: int, size: int, digests) -> None:
        """
        Piece C{index} passed its check and is written.
        """
        for key in self.smartBan.piecePassed(index, digests):
            self.coordinator.ban(key)
        self.picker.have(index)
        self.downloaded += size
        self.verifiedBytes += size
        pieceHad = self.interest.pieceHad
        for peer, record in list(self.peers.items()):
            peer.sendHave(index)
            pieceHad(index, peer, record)
        self.events.emit("pieceVerified", index)
        self.coordinator.checkComplete()

    def pieceFailed(self, index: int, senders: list, digests) -> None:
        """
        A piece failed its hash check: fetch it again; smart ban judges
        who sent it.
        """
        self.coordinator._log(
            "warn",
            "piece {index} failed its hash check ({senders} peers took part)",
            index=index,
            senders=len(set(senders)),
        )
        self.picker.pieceFailed(index)
        for key in self.smartBan.pieceFailed(index, senders, digests):
            self.coordinator.ban(key)
        self.events.emit("pieceFailed", index)

    def pieceLost(self, index: int, failure) -> None:
        """
        A piece could not be written: it is wanted again, and the torrent
        hears of it (an expected disk error is its error, not a bug here).
        """
        logStorageFailure(self.coordinator._log, "write", index, failure)
        self.picker.pieceFailed(index)
        self.events.emit("writeFailed", index, failure)

    def jobsDone(self) -> None:
        """
        Checks finished: there may be room for requests.
        """
        if self.coordinator.running:
            self.fillAll()


def logStorageFailure(log: Callable[..., None], what: str, index: int, failure) -> None:
    """
    Log that piece C{index} could not be read or written (C{what}): one line
    for a disk error, the traceback for anything else.
    """
    if failure.check(OSError, StorageError):
        log(
            "warn",
            f"cannot {what} piece {{index}}: {{error}}",
            index=index,
            error=failure.getErrorMessage(),
        )
    else:
        log("failure", f"cannot {what} piece {{index}}", failure=failure, index=index)
