"""
The library as kept on disk: C{state.json}.

L{LibraryState} is a part of L{btorrent.daemon.library.Library}
(C{library.state}).  It reads the state file (or its backup) at start,
and writes it atomically with the previous copy kept as
C{state.json.bak} (see L{btorrent.util.statefile}), in a thread, at most
once at a time: saves asked for while one runs are merged into one, and
changes within L{SAVE_DELAY} seconds share one save.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from twisted.internet import defer
from twisted.logger import Logger

from btorrent.util.statefile import readState, removeTemporaries, writeState

__all__ = ["SAVE_DELAY", "STATE_VERSION", "LibraryState"]

#: The version of C{state.json} this code writes and reads.
STATE_VERSION = 1

#: Seconds a change waits for others before the list is saved (a client
#: adding a thousand torrents makes a few saves, not a thousand).
SAVE_DELAY = 0.5

#: At most this share of the time goes to saving: a list that took 0.2 s to
#: save waits 4 s for more changes (ten thousand torrents starting each
#: change their state; saving after each half second kept the daemon busy).
SAVE_SHARE = 0.05

#: ... but never more than this many seconds.
MAX_SAVE_DELAY = 30.0


def _timedWrite(path: str, document: dict, version: int) -> float:
    started = time.perf_counter()
    writeState(path, document, version)
    return time.perf_counter() - started


def _checkState(document: dict) -> None:
    if not isinstance(document.get("torrents", []), list):
        raise ValueError("torrents is not a list")


class LibraryState:
    """
    The state file of a library.

    @ivar path: the state file's path.
    @ivar saving: the L{Deferred} of the save under way, or C{None}.
    """

    def __init__(
        self,
        path: str,
        document: Callable[[], dict],
        runInThread,
        clock,
        log: Logger,
    ) -> None:
        """
        @param path: the state file's path.
        @param document: gives the state file's content now.
        @param runInThread: C{runInThread(f, *args) -> Deferred}.
        @param clock: provides C{callLater()}.
        @param log: where problems are logged.
        """
        self.path = path
        self.document = document
        self.runInThread = runInThread
        self.clock = clock
        self.log = log
        self.saving: Optional[defer.Deferred] = None
        #: Seconds the last save took (building its document, writing it).
        self.lastCost = 0.0
        self._saveAgain = False
        self._pendingSave = None

    def read(self) -> Optional[dict]:
        """
        Read the state file, or its backup if it is unusable (logged).

        @return: the document, or C{None} if there is none.
        """
        removeTemporaries(self.path)
        document, problem = readState(self.path, STATE_VERSION, _checkState)
        if problem is not None:
            self.log.warn("state file: {problem}; using the backup", problem=problem)
        return document

    def save(self) -> defer.Deferred:
        """
        Write the state file in a thread; a save asked for while one runs
        happens once more after it.

        @return: a L{Deferred} firing when the state asked for is on disk
            (never failing: a failure is logged).
        """
        if self.saving is not None:
            self._saveAgain = True
            return self.saving
        started = time.perf_counter()
        document = self.document()
        built = time.perf_counter() - started
        d = self.saving = self.runInThread(
            _timedWrite, self.path, document, STATE_VERSION
        )

        def failed(failure):
            self.log.failure("cannot save the torrent list", failure=failure)

        def done(written):
            if isinstance(written, float):
                self.lastCost = built + written
            self.saving = None
            if self._saveAgain:
                self._saveAgain = False
                return self.save()

        d.addErrback(failed)
        d.addCallback(done)
        return d

    @property
    def delay(self) -> float:
        """
        Seconds a change waits for others: L{SAVE_DELAY}, or longer when
        saving takes long (L{SAVE_SHARE}).
        """
        return min(max(SAVE_DELAY, self.lastCost / SAVE_SHARE), MAX_SAVE_DELAY)

    def saveSoon(self) -> None:
        """
        Save within L{delay} seconds; changes in that time share one save.
        """
        if self._pendingSave is None:
            self._pendingSave = self.clock.callLater(self.delay, self._savePending)

    def _savePending(self) -> None:
        self._pendingSave = None
        self.save()

    def cancelSoon(self) -> None:
        """
        Forget a save asked for with L{saveSoon} (the caller saves itself).
        """
        if self._pendingSave is not None and self._pendingSave.active():
            self._pendingSave.cancel()
        self._pendingSave = None
