"""
What a torrent has on disk.

L{DiskCheck} is a part of L{btorrent.engine.torrent.Torrent}
(C{torrent.disk}).  It opens the storage and trusts the fast-resume data
when it vouches for every file (cheap: no queue); otherwise it waits for
the session's check queue (one torrent at a time) and rechecks every
piece in a thread, reporting its progress.  The pieces found go to the
picker; the torrent's lifecycle then goes on.
"""

from __future__ import annotations

from typing import Optional, Tuple

from twisted.internet import defer
from twisted.python.failure import Failure

from btorrent.control.api import CHECK_WAIT, CHECKING, STOPPED
from btorrent.engine import resume
from btorrent.engine.upkeep import PROGRESS_INTERVAL

__all__ = ["DiskCheck"]


class DiskCheck:
    """
    The check of one torrent's data on disk.

    @ivar torrent: the L{btorrent.engine.torrent.Torrent}.
    @ivar checked: the data on disk was checked in this process.
    @ivar forceRecheck: the next check ignores the resume data.
    @ivar verifyOnly: check, then stop (a stopped torrent verified).
    @ivar progress: C{(done, total)} pieces of the check.
    @ivar running: the L{Deferred} of the check under way, or C{None}.
    """

    def __init__(self, torrent) -> None:
        self.torrent = torrent
        self.checked = False
        self.forceRecheck = False
        self.verifyOnly = False
        #: The last check read every piece (no fast resume).
        self.rechecked = False
        self.progress: Tuple[int, int] = (0, 0)
        self.running: Optional[defer.Deferred] = None

    @property
    def current(self) -> bool:
        """
        Whether what this process knows of the disk is good to go on with
        (checked, and no recheck asked for).
        """
        return self.checked and not self.forceRecheck

    def start(self) -> None:
        """
        Check the data (the torrent waits for it: C{CHECK_WAIT}).
        """
        self.torrent.setState(CHECK_WAIT)
        self.running = self._check()

    @defer.inlineCallbacks
    def _check(self):
        """
        Find what is on disk: the resume data if it vouches for the files
        (cheap: no queue), else a recheck when the check queue lets us.
        """
        torrent = self.torrent
        try:
            pieces = yield self._readDisk()
        except (resume.RecheckStopped, defer.CancelledError):
            torrent.checkQueue.release(torrent)
            self.running = None
            return
        except Exception:
            torrent.checkQueue.release(torrent)
            self.running = None
            torrent.lifecycle.failed(Failure())
            return
        torrent.checkQueue.release(torrent)
        self.running = None
        self.checked = True
        self.forceRecheck = False
        picker = torrent.picker
        for index, had in enumerate(pieces):
            if had:
                picker.have(index)
            elif index in picker.haveBitfield:
                picker.lose(index)
        # After a recheck (fast resume logs its own debug line).
        torrent.logLine(
            "info" if self.rechecked else "debug",
            "{name}: {have} of {total} pieces on disk are good",
            have=picker.haveBitfield.count,
            total=len(pieces),
        )
        torrent.upkeep.savedCount = -1
        if self.verifyOnly:
            self.verifyOnly = False
            yield torrent.upkeep.closeStorage(save=True)
            torrent.setState(STOPPED)
            return
        if torrent.lifecycle.wanted:
            torrent.lifecycle.queueTransfer()

    def _openAndReadResume(self):
        """
        In a thread: open the storage and read the resume data (C{None}
        unless it vouches for every file).
        """
        torrent = self.torrent
        torrent.storage.open()
        if torrent.stateDir is None or self.forceRecheck:
            return None
        metainfo = torrent.metainfo
        return resume.readResume(
            torrent.stateDir,
            metainfo.infoHash,
            metainfo.pieceCount,
            torrent.storage.fileStats(),
        )

    @defer.inlineCallbacks
    def _readDisk(self):
        torrent = self.torrent
        metainfo = torrent.metainfo
        have = yield torrent.runInThread(self._openAndReadResume)
        torrent.storageOpen = True
        for warning in getattr(torrent.storage, "warnings", ()):
            torrent.logLine("warn", "{name}: {storageWarning}", storageWarning=warning)
        self.rechecked = have is None
        if have is not None:
            pieces = resume.piecesFromBitfield(have, metainfo.pieceCount)
            torrent.logLine(
                "info",
                "{name}: fast resume, {count} of {total} pieces on disk",
                count=sum(pieces),
                total=len(pieces),
            )
            return pieces
        # A full recheck: one torrent at a time.
        lifecycle = torrent.lifecycle
        waiting = lifecycle.starting = torrent.checkQueue.acquire(torrent)
        yield waiting
        lifecycle.starting = None
        if not lifecycle.wanted and not self.verifyOnly:
            raise defer.CancelledError()
        torrent.setState(CHECKING)
        pieces = yield self._recheck()
        return pieces

    def _recheck(self) -> defer.Deferred:
        torrent = self.torrent
        clock = torrent.reactor
        lastLogged = [clock.seconds()]

        def progress(done: int, total: int) -> None:
            # In the recheck's thread: hop to the reactor.
            clock.callFromThread(report, done, total)

        def report(done: int, total: int) -> None:
            self.progress = (done, total)
            now = clock.seconds()
            if now - lastLogged[0] >= PROGRESS_INTERVAL or done == total:
                lastLogged[0] = now
                torrent.logLine(
                    "info",
                    "{name}: checking the data on disk, {done} of {total} pieces",
                    done=done,
                    total=total,
                )

        def stop() -> bool:
            return not torrent.lifecycle.wanted and not self.verifyOnly

        return torrent.runInThread(
            resume.recheck, torrent.storage, torrent.metainfo, progress, stop
        )
