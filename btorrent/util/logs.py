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

__all__ = ["levels", "observer", "setLevel"]

#: The predicate: the least level that passes, by namespace.
levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.debug)

#: What btorrent's loggers send their events to.
observer = FilteringLogObserver(globalLogPublisher, [levels])


def setLevel(level) -> None:
    """
    Let btorrent's lines of C{level} and above through, the others not.

    @param level: a L{LogLevel} constant.
    """
    levels.setLogLevelForNamespace("", level)
