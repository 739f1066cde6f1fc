"""
The level of btorrent's own log lines.

Every logger in btorrent sends its events through L{observer}, a
L{FilteringLogObserver} in front of Twisted's global log publisher, with
the level predicate L{levels}.  By default everything passes (tests, and
C{btorrent download}, which filters its own observer); the daemon's
composition root calls L{setLevel}C{(LogLevel.info)} unless C{--debug}, so
that debug lines (a torrent's every state change, every peer message) are
neither formatted nor written to its log unless asked for: ten thousand
torrents starting and stopping once wrote 22 MB of debug lines.
"""

from __future__ import annotations

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

__all__ = ["levels", "observer", "passes", "setLevel"]

#: The predicate: the least level that passes, by namespace.
levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.debug)

#: What btorrent's loggers send their events to.
observer = FilteringLogObserver(globalLogPublisher, [levels])

#: The priority of each level by the name of its L{Logger} method.
_PRIORITY = {
    "debug": 0,
    "info": 1,
    "warn": 2,
    "error": 3,
    "failure": 4,
    "critical": 4,
}
_PRIORITY_OF_LEVEL = {
    LogLevel.debug: 0,
    LogLevel.info: 1,
    LogLevel.warn: 2,
    LogLevel.error: 3,
    LogLevel.critical: 4,
}
#: The least priority that passes (L{setLevel}).
_threshold = 0


def passes(method: str) -> bool:
    """
    Whether a line logged with the L{Logger} method C{method} (C{"debug"},
    C{"info"}, ...) would pass L{setLevel}'s level: callers with many
    lines below it (ten thousand torrents starting) skip building the
    event at all.
    """
    return _PRIORITY.get(method, 4) >= _threshold


def setLevel(level) -> None:
    """
    Let btorrent's lines of C{level} and above through, the others not.

    @param level: a L{LogLevel} constant.
    """
    global _threshold
    levels.setLogLevelForNamespace("", level)
    _threshold = _PRIORITY_OF_LEVEL[level]
