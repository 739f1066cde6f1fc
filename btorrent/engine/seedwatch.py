"""
The enforcement of a seeding torrent's limits.

L{SeedingWatch} is a part of L{btorrent.engine.controls.TorrentControls}
(C{controls.seeding}).  While the torrent runs it notes when it last moved
a byte; once it seeds, it stops it when its seed ratio is reached (an
upload budget stops uploads at the very byte, not at the next heartbeat)
or when it has been idle for its idle limit.  The limits themselves are
the controls' (L{btorrent.engine.seedlimits}).
"""

from __future__ import annotations

from typing import Optional

from btorrent.control.api import SEEDING
from btorrent.engine.bandwidth import UP

__all__ = ["SeedingWatch"]


class SeedingWatch:
    """
    The seeding limits of one torrent, watched.

    @ivar lastActivity: when the torrent last moved a byte (clock
        seconds).
    """

    def __init__(self, controls) -> None:
        """
        @param controls: the torrent's
            L{btorrent.engine.controls.TorrentControls}.
        """
        self.controls = controls
        self.torrent = controls.torrent
        self.lastActivity = self.torrent.reactor.seconds()
        self._totals = (0, 0)
        self._finishing = False

    def attach(self, now: float) -> None:
        """
        The torrent runs: count activity from now.
        """
        torrent = self.torrent
        self.lastActivity = max(self.lastActivity, now)
        self._totals = (torrent.uploaded, torrent.downloaded)
        self._finishing = False

    def tick(self, now: float) -> None:
        """
        A heartbeat: note activity, check the seeding limits.
        """
        torrent = self.torrent
        totals = (torrent.uploaded, torrent.downloaded)
        if totals != self._totals:
            self._totals = totals
            self.lastActivity = now
        self.check(now)

    def check(self, now: float) -> None:
        """
        Stop the torrent if it seeds and a limit is reached; else keep
        its upload budget to its ratio's goal.
        """
        controls = self.controls
        if self._finishing:
            # Stopping: the spent budget holds every upload back till then.
            return
        if self.torrent.state != SEEDING:
            self._setBudget(None)
            return
        goal = controls.seedRatioGoal
        if goal is not None:
            left = goal - controls.uploadedEver
            if left <= 0:
                self._finish(
                    "its seed ratio {ratio} is reached", ratio=controls.seedRatio
                )
                return
            self._setBudget(left)
        else:
            self._setBudget(None)
        minutes = controls.seedIdleMinutes
        if minutes is not None and now - self.lastActivity >= minutes * 60:
            controls.finishedByIdle = True
            self._finish("idle for {minutes} minutes", minutes=minutes)

    def _setBudget(self, left: Optional[int]) -> None:
        """
        Stop uploads at once when the ratio's goal is reached (not at the
        next heartbeat).
        """
        bandwidth = self.controls.bandwidth
        limiter = bandwidth.limiters[UP]
        if left is None:
            if limiter.budget is not None:
                bandwidth.setUploadBudget(None, None)
        elif limiter.budget is None:
            bandwidth.setUploadBudget(left, self._budgetSpent)
        else:
            limiter.budget = left
            limiter.onExhausted = self._budgetSpent

    def _budgetSpent(self) -> None:
        # In the middle of a send: decide once the reactor is free.
        reactor = self.torrent.reactor
        reactor.callLater(0, self.check, reactor.seconds())

    def _finish(self, text: str, **fields) -> None:
        self._finishing = True
        bandwidth = self.controls.bandwidth
        limiter = bandwidth.limiters[UP]
        if limiter.budget is not None:
            limiter.budget = min(limiter.budget, 0)
        else:
            bandwidth.setUploadBudget(0, None)
        self.controls.logLine(
            "info", "{name}: seeding done, " + text + "; stopping", **fields
        )
        self.torrent.events.emit("seedLimitReached")
        # Not from inside whatever called us (a state change, a send).
        self.torrent.reactor.callLater(0, self._stopNow)

    def _stopNow(self) -> None:
        if self._finishing and self.torrent.running:
            self.torrent.stop()
