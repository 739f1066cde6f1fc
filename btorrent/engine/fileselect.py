"""
File selection: which files of a torrent are wanted and at what priority,
and what that means for its pieces.

A piece is wanted when it holds a byte of a wanted file; its priority is
the highest of the wanted files it holds bytes of (Transmission's rule).
Padding files (BEP 47) and 0-byte files hold no byte: their flags only say
whether a 0-byte file is created.

Pure: values in, values out.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Sequence, Tuple

from btorrent.control.api import (
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NORMAL,
    ControlError,
)

__all__ = ["FileSelection", "checkFileIndexes", "checkPriority"]

_PRIORITIES = (PRIORITY_LOW, PRIORITY_NORMAL, PRIORITY_HIGH)


def checkFileIndexes(indexes: Any, fileCount: int) -> Tuple[int, ...]:
    """
    File indexes from a client, checked.

    @raise ControlError: "file index out of range" for anything but
        integers in 0..C{fileCount - 1}.
    """
    try:
        result = tuple(indexes)
    except TypeError:
        raise ControlError("file indexes must be a list") from None
    for index in result:
        if type(index) is not int or not 0 <= index < fileCount:
            raise ControlError("file index out of range")
    return result


def checkPriority(priority: Any) -> int:
    """
    @raise ControlError: unless -1, 0 or 1.
    """
    if type(priority) is not int or priority not in _PRIORITIES:
        raise ControlError(
            f"a priority must be -1 (low), 0 (normal) or 1 (high), not {priority!r}"[
                :200
            ]
        )
    return priority


class FileSelection:
    """
    Per-file wanted flags and priorities of one torrent.

    @ivar wanted: per file, whether it is wanted.
    @ivar priorities: per file, L{PRIORITY_LOW}..L{PRIORITY_HIGH}.
    """

    def __init__(self, files: Sequence[Any], pieceLength: int, totalLength: int):
        """
        @param files: the torrent's file entries (C{length}, C{offset},
            C{padding}).
        @param pieceLength: the torrent's piece length.
        @param totalLength: the torrent's length.
        """
        self.files = tuple(files)
        self.pieceLength = pieceLength
        self.totalLength = totalLength
        self.pieceCount = -(-totalLength // pieceLength)
        self.wanted: List[bool] = [True] * len(self.files)
        self.priorities: List[int] = [PRIORITY_NORMAL] * len(self.files)

    @property
    def fileCount(self) -> int:
        """
        How many files the torrent has.
        """
        return len(self.files)

    def setWanted(self, indexes: Iterable[int], wanted: bool) -> bool:
        """
        Mark files wanted or not.

        @raise ControlError: for an index out of range (nothing changed).
        @return: whether anything changed.
        """
        indexes = checkFileIndexes(indexes, len(self.files))
        changed = False
        for index in indexes:
            if self.wanted[index] != bool(wanted):
                self.wanted[index] = bool(wanted)
                changed = True
        return changed

    def setPriority(self, indexes: Iterable[int], priority: int) -> bool:
        """
        Give files a priority.

        @raise ControlError: for an index out of range or a bad priority
            (nothing changed).
        @return: whether anything changed.
        """
        priority = checkPriority(priority)
        indexes = checkFileIndexes(indexes, len(self.files))
        changed = False
        for index in indexes:
            if self.priorities[index] != priority:
                self.priorities[index] = priority
                changed = True
        return changed

    def _holdsBytes(self, index: int) -> bool:
        entry = self.files[index]
        return bool(entry.length) and not getattr(entry, "padding", False)

    def pieceRange(self, index: int) -> range:
        """
        The pieces holding bytes of file C{index}.
        """
        entry = self.files[index]
        if not entry.length:
            return range(0)
        first = entry.offset // self.pieceLength
        last = (entry.offset + entry.length - 1) // self.pieceLength
        return range(first, last + 1)

    def wantedPieces(self) -> List[int]:
        """
        The pieces holding a byte of a wanted file, ascending.
        """
        wanted = bytearray(self.pieceCount)
        for index in range(len(self.files)):
            if self.wanted[index] and self._holdsBytes(index):
                for piece in self.pieceRange(index):
                    wanted[piece] = 1
        return [piece for piece in range(self.pieceCount) if wanted[piece]]

    def piecePriorities(self) -> List[int]:
        """
        Per piece, the highest priority among the wanted files it holds
        bytes of (normal for a piece of no wanted file).
        """
        result = [None] * self.pieceCount
        for index in range(len(self.files)):
            if not (self.wanted[index] and self._holdsBytes(index)):
                continue
            priority = self.priorities[index]
            for piece in self.pieceRange(index):
                current = result[piece]
                if current is None or priority > current:
                    result[piece] = priority
        return [PRIORITY_NORMAL if p is None else p for p in result]

    @property
    def allNormal(self) -> bool:
        """
        Whether no wanted file has a priority other than normal.
        """
        return all(
            p == PRIORITY_NORMAL or not w for p, w in zip(self.priorities, self.wanted)
        )

    def unwantedFiles(self) -> List[int]:
        """
        The indexes of the files not wanted.
        """
        return [i for i, wanted in enumerate(self.wanted) if not wanted]

    def fileProgress(self, have) -> List[int]:
        """
        Per file, the bytes of it in pieces we have (Transmission's
        C{bytesCompleted}).

        @param have: our pieces (supports C{index in have}).
        """
        pieceLength = self.pieceLength
        result = []
        for entry in self.files:
            if not entry.length:
                result.append(0)
                continue
            start = entry.offset
            end = entry.offset + entry.length
            first = start // pieceLength
            last = (end - 1) // pieceLength
            done = 0
            for piece in range(first, last + 1):
                if piece in have:
                    low = max(start, piece * pieceLength)
                    high = min(end, (piece + 1) * pieceLength)
                    done += high - low
            result.append(done)
        return result

    def toJSON(self) -> dict:
        """
        @return: a plain dict for the state file: the unwanted files and
            the files of each priority but normal.
        """
        return {
            "unwanted": self.unwantedFiles(),
            "high": [i for i, p in enumerate(self.priorities) if p == PRIORITY_HIGH],
            "low": [i for i, p in enumerate(self.priorities) if p == PRIORITY_LOW],
        }

    def load(self, data: Any) -> None:
        """
        Apply L{toJSON}'s dict (checked whole before anything changes).

        @raise ControlError: for a bad value.
        """
        if not isinstance(data, dict):
            raise ControlError("a file selection must be an object")
        lists = {}
        for key in ("unwanted", "high", "low"):
            value = data.get(key, [])
            if not isinstance(value, list):
                raise ControlError(f"{key!r} must be a list of file indexes")
            lists[key] = checkFileIndexes(value, len(self.files))
        self.wanted = [True] * len(self.files)
        self.priorities = [PRIORITY_NORMAL] * len(self.files)
        for index in lists["unwanted"]:
            self.wanted[index] = False
        for index in lists["high"]:
            self.priorities[index] = PRIORITY_HIGH
        for index in lists["low"]:
            self.priorities[index] = PRIORITY_LOW
