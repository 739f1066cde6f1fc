"""
L{TorrentRecord}: one torrent of the daemon as the control plane sees it
(L{ITorrentControl}): the engine's L{Torrent} plus what the daemon keeps
about it across restarts (its id, dates, labels, totals over every run,
its own settings), and the snapshot a client shows (L{TorrentStatus}).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple

from twisted.internet import defer
from zope.interface import implementer

from btorrent.control.api import (
    DOWNLOADING,
    SEEDING,
    STOPPED,
    ControlError,
    ITorrentControl,
    TorrentOptions,
    TorrentStatus,
)
from btorrent.daemon.statusview import StatusView

__all__ = ["TorrentRecord"]


@implementer(ITorrentControl)
class TorrentRecord:
    """
    A torrent of the daemon.

    @ivar id: the session-local integer id.
    @ivar torrent: the engine's L{btorrent.engine.torrent.Torrent}.
    @ivar paused: the user stopped it (it stays stopped across restarts).
    @ivar source: the C{.torrent} bytes or the magnet link it was added
        from (what the state dir keeps).
    """

    def __init__(
        self,
        library,
        torrentId: int,
        torrent,
        downloadDir: str,
        addedDate: Optional[int] = None,
        labels: Tuple[str, ...] = (),
        saved: Optional[Dict[str, Any]] = None,
    ) -> None:
        """
        @param library: the L{btorrent.daemon.library.Library} it belongs
            to (told of changes, asked to persist).
        @param saved: what the state file kept of it (totals, dates,
            options), if it was loaded from there.
        """
        saved = saved or {}
        self.library = library
        self.id = torrentId
        self.torrent = torrent
        self.downloadDir = downloadDir
        self.labels = tuple(labels)
        self.addedDate = int(addedDate if addedDate is not None else time.time())
        self.doneDate = int(saved.get("doneDate", 0))
        self.activityDate = int(saved.get("activityDate", 0))
        self.startDate = 0
        self.paused = bool(saved.get("paused", False))
        controls = torrent.controls
        if isinstance(saved.get("controls"), dict):
            try:
                controls.load(saved["controls"])
            except ControlError as e:
                library.log.warn(
                    "{name}: its saved settings are not usable ({error})",
                    name=torrent.name,
                    error=str(e),
                )
        self.corruptBefore = int(saved.get("corruptEver", 0))
        self.secondsDownloadingBefore = int(saved.get("secondsDownloading", 0))
        self.secondsSeedingBefore = int(saved.get("secondsSeeding", 0))
        self.options: Dict[str, Any] = dict(saved.get("options", {}))
        self._runSince: Optional[float] = None
        self._runState = STOPPED
        self._lastTransfer = (0, 0)
        torrent.events.listen("stateChanged", self._stateChanged)
        torrent.events.listen("complete", self._completed)

    @property
    def infoHash(self) -> bytes:
        """
        The torrent's info-hash.
        """
        return self.torrent.infoHash

    # What happens to it

    def _stateChanged(self, old: int, new: int) -> None:
        now = time.time()
        self._accountTime(now)
        if new in (DOWNLOADING, SEEDING):
            self._runSince = now
            self._runState = new
            if old not in (DOWNLOADING, SEEDING):
                self.startDate = int(now)
        self.activityDate = int(now)

    def _accountTime(self, now: float) -> None:
        if self._runSince is not None:
            spent = int(now - self._runSince)
            if self._runState == DOWNLOADING:
                self.secondsDownloadingBefore += spent
            elif self._runState == SEEDING:
                self.secondsSeedingBefore += spent
            self._runSince = None

    def _completed(self) -> None:
        if not self.doneDate:
            self.doneDate = int(time.time())
            self.library.changed(self)

    def noteActivity(self) -> bool:
        """
        Update the activity date if bytes moved since the last call.

        @return: whether they did.
        """
        transfer = (self.torrent.downloaded, self.torrent.uploaded)
        if transfer != self._lastTransfer:
            self._lastTransfer = transfer
            self.activityDate = int(time.time())
            return True
        return False

    # Totals over every run

    @property
    def uploadedEver(self) -> int:
        """
        Bytes uploaded over every run (the transfer controls count them:
        the ratio limit reads them).
        """
        return self.torrent.controls.uploadedEver

    @property
    def downloadedEver(self) -> int:
        """
        Bytes downloaded (verified) over every run.
        """
        return self.torrent.controls.downloadedEver

    @property
    def corruptEver(self) -> int:
        """
        Bytes of pieces that failed their hash check, over every run.
        """
        return self.corruptBefore + getattr(self.torrent, "corrupt", 0)

    def secondsIn(self, state: int) -> int:
        """
        Seconds spent downloading (or seeding) over every run.
        """
        base = (
            self.secondsDownloadingBefore
            if state == DOWNLOADING
            else self.secondsSeedingBefore
        )
        if self._runSince is not None and self._runState == state:
            base += int(time.time() - self._runSince)
        return base

    def toJSON(self) -> Dict[str, Any]:
        """
        What the state file keeps of it.
        """
        return {
            "id": self.id,
            "infoHash": self.infoHash.hex(),
            "downloadDir": self.downloadDir,
            "labels": list(self.labels),
            "paused": self.paused,
            "addedDate": self.addedDate,
            "doneDate": self.doneDate,
            "activityDate": self.activityDate,
            "controls": self.torrent.controls.toJSON(),
            "corruptEver": self.corruptEver,
            "secondsDownloading": self.secondsIn(DOWNLOADING),
            "secondsSeeding": self.secondsIn(SEEDING),
            "queuePosition": self.torrent.queuePosition,
            "options": dict(self.options),
        }

    # ITorrentControl

    def start(self, now: bool = False) -> None:
        """
        Start it (C{now}: ahead of the queue).
        """
        self.paused = False
        if now:
            self.library.queueMove([self], "top")
        self.torrent.start()
        self.library.changed(self)

    def stop(self):
        """
        Stop it; it stays stopped across restarts.
        """
        self.paused = True
        d = self.torrent.stop()
        self.library.changed(self)
        return d

    def verify(self):
        """
        Check its data again.
        """
        return self.torrent.verify()

    def reannounce(self) -> None:
        """
        Announce now.
        """
        announcer = self.torrent.announcer
        if announcer is not None and announcer.running:
            announcer.announceNow(force=True)

    def setOptions(self, options: TorrentOptions) -> None:
        """
        Change its settings (those the engine knows; the rest are kept).

        @raise ControlError: for a bad value.
        """
        # The transfer controls check every value of theirs first: a bad
        # one changes nothing.
        self.torrent.controls.setOptions(options)
        changes = {
            name: getattr(options, name)
            for name in ("labels", "queuePosition", "bandwidthPriority")
            if getattr(options, name) is not None
        }
        if "labels" in changes:
            self.labels = tuple(changes.pop("labels"))
        if "queuePosition" in changes:
            self.library.queueSet(self, changes.pop("queuePosition"))
        for key, value in changes.items():
            self.options[key] = value
        self.library.changed(self)

    def setLocation(self, path: str, move: bool):
        """
        Point it at another download dir (moving its files when C{move}).
        """
        return defer.maybeDeferred(self.library.moveTorrent, self, path, move)

    def renamePath(self, path: str, name: str):
        """
        Renaming files is not supported yet.
        """
        return defer.fail(ControlError("renaming files is not supported"))

    # Status

    def status(self, fields=None) -> TorrentStatus:
        """
        A snapshot for a client (see L{TorrentStatus}).
        """
        return StatusView(self).snapshot(fields)

    def view(self) -> StatusView:
        """
        The same fields, each worked out when read (see L{StatusView}).
        """
        return StatusView(self)
