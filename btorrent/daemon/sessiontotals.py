"""
The session's counts and totals, as C{session-stats} shows them.

L{SessionTotals} is a part of L{btorrent.daemon.library.Library}
(C{library.totals}): the counts of this run (every torrent's, and what the
torrents removed in this run left, so that the totals never go down when
a torrent goes), the totals of every run (kept in the state file), and
the rates.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

from btorrent.control.api import STOPPED, SessionStats

__all__ = ["REMOVED_KEYS", "STATS_KEYS", "SessionTotals", "torrentCounts"]

#: The totals of every run kept in the state file.
STATS_KEYS = (
    "uploadedBytes",
    "downloadedBytes",
    "filesAdded",
    "sessionCount",
    "secondsActive",
)

#: What a removed torrent leaves to the session's totals of this run.
REMOVED_KEYS = (
    "uploadedBytes",
    "downloadedBytes",
    "piecesVerified",
    "piecesFailed",
    "announcesSucceeded",
    "announcesFailed",
)


def torrentCounts(torrent) -> Dict[str, int]:
    """
    The counts of an engine torrent that the session sums (see
    L{REMOVED_KEYS}).
    """
    succeeded, failed = torrent.announces
    return {
        "uploadedBytes": torrent.uploaded,
        "downloadedBytes": torrent.downloaded,
        "piecesVerified": torrent.piecesVerified,
        "piecesFailed": torrent.piecesFailed,
        "announcesSucceeded": succeeded,
        "announcesFailed": failed,
    }


class SessionTotals:
    """
    The counts of this run and of every run.
    """

    def __init__(self, clock) -> None:
        """
        @param clock: provides C{seconds()}.
        """
        self.clock = clock
        self._cumulative = {key: 0 for key in STATS_KEYS}
        self._current = {key: 0 for key in STATS_KEYS}
        # What removed torrents moved and counted in this run (so that the
        # totals never go down when a torrent goes).
        self._removedCounts = {key: 0 for key in REMOVED_KEYS}
        self._startedAt = clock.seconds()

    def load(self, stats: Any) -> None:
        """
        Take the totals of earlier runs from the state file's C{stats}
        (what is not a count is ignored).
        """
        if isinstance(stats, dict):
            for key in STATS_KEYS:
                value = stats.get(key)
                if isinstance(value, int) and value >= 0:
                    self._cumulative[key] = value

    def sessionStarted(self) -> None:
        """
        A run begins: count it, and its time from now.
        """
        self._cumulative["sessionCount"] += 1
        self._startedAt = self.clock.seconds()

    def fileAdded(self) -> None:
        """
        A torrent was added.
        """
        self._cumulative["filesAdded"] += 1
        self._current["filesAdded"] += 1

    def removing(self, torrent) -> Dict[str, int]:
        """
        A torrent is being removed: its counts stay in the session's.

        @return: its counts now, for L{removed}.
        """
        counted = torrentCounts(torrent)
        for key, value in counted.items():
            self._removedCounts[key] += value
        return counted

    def removed(self, torrent, counted: Dict[str, int]) -> None:
        """
        The torrent stopped and is gone: what it counted since
        L{removing} stays in the session's too.
        """
        for key, value in torrentCounts(torrent).items():
            self._removedCounts[key] += value - counted[key]

    def counts(self, torrents: Iterable[Any]) -> Dict[str, int]:
        """
        The session's counts of this run (L{REMOVED_KEYS}): every
        torrent's, and those of the torrents removed.
        """
        counts = dict(self._removedCounts)
        for torrent in torrents:
            for key, value in torrentCounts(torrent).items():
                counts[key] += value
        return counts

    def current(
        self, torrents: Iterable[Any], counts: Optional[Dict[str, int]] = None
    ) -> dict:
        """
        The totals of this run (L{STATS_KEYS}).
        """
        if counts is None:
            counts = self.counts(torrents)
        current = dict(self._current)
        current["uploadedBytes"] = counts["uploadedBytes"]
        current["downloadedBytes"] = counts["downloadedBytes"]
        current["secondsActive"] = int(self.clock.seconds() - self._startedAt)
        current["sessionCount"] = 1
        return current

    def cumulative(self, current: dict) -> dict:
        """
        The totals of every run, this one's C{current} included.
        """
        cumulative = dict(self._cumulative)
        for key in ("uploadedBytes", "downloadedBytes", "secondsActive"):
            cumulative[key] += current[key]
        return cumulative

    def stats(self, torrents: Iterable[Any]) -> SessionStats:
        """
        Rates, counts and totals of the session's C{torrents} (engine
        torrents).
        """
        torrents = list(torrents)
        active = [t for t in torrents if t.state != STOPPED]
        down = up = 0
        for torrent in active:
            downloader = torrent.downloader
            if downloader is not None and downloader.running:
                down += int(downloader.downloadRate.rate)
                up += int(downloader.uploadRate.rate)
        counts = self.counts(torrents)
        current = self.current(torrents, counts)
        return SessionStats(
            activeTorrentCount=len(active),
            pausedTorrentCount=len(torrents) - len(active),
            torrentCount=len(torrents),
            downloadSpeed=down,
            uploadSpeed=up,
            current=current,
            cumulative=self.cumulative(current),
            piecesVerified=counts["piecesVerified"],
            piecesFailed=counts["piecesFailed"],
            announcesSucceeded=counts["announcesSucceeded"],
            announcesFailed=counts["announcesFailed"],
        )
