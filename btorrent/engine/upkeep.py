"""
A running torrent's upkeep: its progress lines, its resume data, a look
at its files.

L{Upkeep} is a part of L{btorrent.engine.torrent.Torrent}
(C{torrent.upkeep}).  On the session's heartbeat it logs a progress line
when something changed (at most every L{PROGRESS_INTERVAL} seconds),
saves the fast-resume data when pieces arrived (every C{resumeInterval}),
and checks that the files are still there (every
L{FILE_CHECK_INTERVAL}); it also saves the resume data and closes the
files when the torrent stops.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet import defer
from twisted.python.failure import Failure

from btorrent.engine import resume

__all__ = [
    "FILE_CHECK_INTERVAL",
    "PROGRESS_INTERVAL",
    "RESUME_INTERVAL",
    "Upkeep",
    "formatRate",
    "formatSize",
]

#: Seconds between two progress lines in the log while a torrent transfers
#: (a line is written only if something changed).
PROGRESS_INTERVAL = 60.0

#: Seconds between two saves of the resume data while pieces arrive (so
#: that a crash loses little, and the final sync at stop has little to do).
RESUME_INTERVAL = 60.0

#: Seconds between two looks at a running torrent's files (deleted or cut
#: short from outside: its error).
FILE_CHECK_INTERVAL = 300.0


def formatSize(n: float) -> str:
    """
    A byte count for people: C{"1.5 MiB"}.
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def formatRate(n: float) -> str:
    """
    A rate for people: C{"1.5 MiB/s"}.
    """
    return formatSize(n) + "/s"


class Upkeep:
    """
    The periodic work and the records of one torrent.

    @ivar torrent: the L{btorrent.engine.torrent.Torrent}.
    @ivar savedCount: how many pieces we had when the resume data was last
        saved (-1: save at the next chance).
    @ivar saving: the L{Deferred} of the save under way, or C{None}.
    """

    def __init__(self, torrent) -> None:
        self.torrent = torrent
        self.savedCount = -1
        self.saving: Optional[defer.Deferred] = None
        self._nextProgress = 0.0
        self._nextResume = 0.0
        self._nextFileCheck = 0.0
        self._lastLogged: Optional[tuple] = None

    def begin(self) -> None:
        """
        The torrent runs: beat with the session's heartbeat.
        """
        torrent = self.torrent
        now = torrent.reactor.seconds()
        self._nextProgress = now + PROGRESS_INTERVAL
        self._nextResume = now + torrent.resumeInterval
        self._nextFileCheck = now + FILE_CHECK_INTERVAL
        self.savedCount = torrent.picker.haveBitfield.count
        # Progress lines tell what changed since it started.
        self._lastLogged = (
            self.savedCount,
            torrent.downloaded,
            torrent.uploaded,
        )
        torrent.heartbeat.subscribe(self, self.tick)

    def end(self) -> None:
        """
        The torrent stops: no more beats.
        """
        self.torrent.heartbeat.unsubscribe(self)

    def tick(self, now: float) -> float:
        """
        A heartbeat: a progress line at most every L{PROGRESS_INTERVAL}
        seconds when something changed, resume data every
        C{resumeInterval} when pieces arrived.

        @return: when there is something to do next (the heartbeat skips
            this until then).
        """
        torrent = self.torrent
        if now >= self._nextProgress:
            self._nextProgress = now + PROGRESS_INTERVAL
            self._logProgressIfChanged()
        if now >= self._nextResume:
            self._nextResume = now + torrent.resumeInterval
            if torrent.picker.haveBitfield.count != self.savedCount:
                self.saveResume()
        if now >= self._nextFileCheck:
            self._nextFileCheck = now + FILE_CHECK_INTERVAL
            self.checkFiles()
        return min(self._nextProgress, self._nextResume, self._nextFileCheck)

    def checkFiles(self) -> defer.Deferred:
        """
        In a thread, check that the torrent's files are still there at
        their length; if not, the torrent stops with that error (its
        verified pieces are kept; a start rechecks what changed).
        """
        torrent = self.torrent
        check = getattr(torrent.storage, "checkFiles", None)
        stopping = torrent.lifecycle.stopping
        if check is None or not torrent.storageOpen or stopping is not None:
            return defer.succeed(None)
        d = torrent.runInThread(check)
        d.addErrback(self._filesGone)
        return d

    def _filesGone(self, failure: Failure) -> None:
        lifecycle = self.torrent.lifecycle
        if lifecycle.wanted and lifecycle.stopping is None:
            lifecycle.failed(failure)

    # Progress lines

    def _logProgressIfChanged(self) -> None:
        torrent = self.torrent
        key = (torrent.picker.haveBitfield.count, torrent.downloaded, torrent.uploaded)
        if key != self._lastLogged:
            self.logProgress()

    def logProgress(self) -> None:
        """
        Log one line: percent, rates, peers, time left, and the session's
        totals (C{downloaded}, C{uploaded}), in the text both for people
        and in exact bytes, so that the totals can be read from a process's
        log: C{"...; totals down 43.2 MiB (45298483 B) up 12.3 MiB
        (12897485 B)"}.  Also logged once when the torrent stops.
        """
        torrent = self.torrent
        p = torrent.progress()
        eta = "-" if p.eta is None else f"{p.eta:.0f} s"
        downloaded = torrent.downloaded
        uploaded = torrent.uploaded
        if torrent.picker is not None:
            self._lastLogged = (torrent.picker.haveBitfield.count, downloaded, uploaded)
        torrent.logLine(
            "info",
            "{name}: {percent:.1f}% down {down} up {up} peers {peers} eta {eta}; "
            "totals down {downloadedText} ({downloaded} B) "
            "up {uploadedText} ({uploaded} B)",
            percent=p.percent,
            down=formatRate(p.downloadRate),
            up=formatRate(p.uploadRate),
            downloadRate=p.downloadRate,
            uploadRate=p.uploadRate,
            peers=p.peers,
            eta=eta,
            etaSeconds=p.eta,
            downloaded=downloaded,
            uploaded=uploaded,
            downloadedText=formatSize(downloaded),
            uploadedText=formatSize(uploaded),
        )

    # Resume data and the files

    def saveResume(self, force: bool = False) -> defer.Deferred:
        """
        Save the fast-resume data in a thread (sync the files, then write),
        if pieces were verified since the last save or C{force}.

        @return: a L{Deferred} firing when saved (never failing: a failure
            is logged).
        """
        torrent = self.torrent
        if (
            torrent.stateDir is None
            or torrent.picker is None
            or not torrent.storageOpen
        ):
            return defer.succeed(None)
        if self.saving is not None:
            return self.saving
        count = torrent.picker.haveBitfield.count
        if count == self.savedCount and not force:
            return defer.succeed(None)
        d = self.saving = torrent.runInThread(
            resume.saveResume,
            torrent.storage,
            torrent.stateDir,
            torrent.metainfo.infoHash,
            torrent.picker.haveBitfield.toBytes(),
            torrent.metainfo.pieceCount,
        )

        def saved(_):
            self.savedCount = count

        def failed(failure):
            torrent.logLine(
                "failure", "{name}: cannot save the resume data", failure=failure
            )

        def done(_):
            self.saving = None

        d.addCallbacks(saved, failed)
        d.addBoth(done)
        return d

    @defer.inlineCallbacks
    def closeStorage(self, save: bool):
        """
        Close the torrent's files (in a thread), saving the resume data
        first if C{save}.
        """
        torrent = self.torrent
        if torrent.storageOpen:
            if save and torrent.stateDir is not None:
                yield self.saveResume(force=True)
            torrent.storageOpen = False
            try:
                yield torrent.runInThread(torrent.storage.close)
            except Exception:
                torrent.logLine("failure", "{name}: cannot close its files")
