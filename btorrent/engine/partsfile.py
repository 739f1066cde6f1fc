"""
The parts file: the bytes of verified pieces that belong to files we do not
keep on disk (unwanted files), as libtorrent keeps them.

A piece that straddles a wanted and an unwanted file is downloaded and
verified whole; the bytes of its wanted files go to those files, the
others here, so that the unwanted files are never created.  If such a file
becomes wanted later, its bytes are copied from here into it.

Layout (all integers big-endian)::

    header   8 bytes  b"BTPARTS1"
             8 bytes  the piece length
    slot k   8 bytes  the piece's index + 1 (0: a free slot)
             piece length bytes: the piece, each byte at its offset within
             the piece; only the slices of files not on disk are written
             (the rest are holes)

Slots are found again by reading their headers when the file is opened.
A slot is written only for a piece that passed its hash check; a slot
claimed by a crash halfway through is caught by the recheck like any
other torn write (resume data is written only after a C{sync}).

Blocking file I/O, thread-safe; no C{twisted.internet}.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Dict, FrozenSet, List, Optional, Tuple

from twisted.logger import Logger

from btorrent.util import logs

__all__ = ["MAGIC", "PartsFile"]

#: The first bytes of every parts file.
MAGIC = b"BTPARTS1"

_HEADER = 16
_SLOT_HEADER = 8
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class PartsFile:
    """
    One torrent's parts file.

    @ivar path: where it lives.
    @ivar pieceLength: the torrent's piece length (the size of a slot's
        data).
    """

    log = Logger(observer=logs.observer)

    def __init__(self, path: str, pieceLength: int, pieceCount: int) -> None:
        """
        @param path: the file (created at the first write).
        @param pieceLength: the torrent's piece length.
        @param pieceCount: the torrent's piece count.
        """
        if pieceLength <= 0:
            raise ValueError("piece length must be positive")
        self.path = path
        self.pieceLength = pieceLength
        self.pieceCount = pieceCount
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        self._slots: Dict[int, int] = {}
        self._free: List[int] = []
        self._slotCount = 0
        self._loaded = False
        self._dirty = False

    # Slots

    def _slotOffset(self, slot: int) -> int:
        return _HEADER + slot * (_SLOT_HEADER + self.pieceLength)

    def load(self) -> None:
        """
        Read the slot headers of an existing file.  A file that is not a
        parts file of this piece length is removed, and slots naming
        impossible or repeated pieces are freed, with a log line (the
        recheck then finds those pieces missing).

        @raise OSError: when the file cannot be read.
        """
        with self._lock:
            self._loadLocked()

    def _loadLocked(self) -> None:
        self._close()
        self._slots.clear()
        self._free.clear()
        self._slotCount = 0
        self._loaded = True
        try:
            fd = os.open(self.path, os.O_RDONLY | _O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{self.path!r} is not a regular file")
            header = os.pread(fd, _HEADER, 0)
            if header != MAGIC + self.pieceLength.to_bytes(8, "big"):
                self.log.warn(
                    "{path}: not a parts file for pieces of {pieceLength} "
                    "bytes; starting afresh",
                    path=self.path,
                    pieceLength=self.pieceLength,
                )
                self._discard()
                return
            # The last slot may end in a hole (its data is sparse).
            slotSize = _SLOT_HEADER + self.pieceLength
            count = -(-max(0, st.st_size - _HEADER) // slotSize)
            for slot in range(count):
                raw = os.pread(fd, _SLOT_HEADER, self._slotOffset(slot))
                number = int.from_bytes(raw.ljust(_SLOT_HEADER, b"\0"), "big")
                index = number - 1
                if number == 0 or index >= self.pieceCount or index in self._slots:
                    if number:
                        self.log.warn(
                            "{path}: slot {slot} names piece {index}: freed",
                            path=self.path,
                            slot=slot,
                            index=index,
                        )
                    self._free.append(slot)
                else:
                    self._slots[index] = slot
            self._slotCount = count
        finally:
            os.close(fd)

    def _discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    @property
    def pieces(self) -> FrozenSet[int]:
        """
        The pieces that have a slot.
        """
        with self._lock:
            self._ensureLoaded()
            return frozenset(self._slots)

    def _ensureLoaded(self) -> None:
        """
        Load the slots if not yet done (with the lock held).
        """
        if not self._loaded:
            self._loadLocked()

    def _openLocked(self) -> int:
        if self._fd is None:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o666)
            if os.fstat(fd).st_size < _HEADER:
                os.pwrite(fd, MAGIC + self.pieceLength.to_bytes(8, "big"), 0)
            self._fd = fd
        return self._fd

    def _slotFor(self, index: int) -> Tuple[int, int]:
        """
        The descriptor and the slot of piece C{index}, allocating one.
        """
        with self._lock:
            self._ensureLoaded()
            fd = self._openLocked()
            slot = self._slots.get(index)
            if slot is None:
                if self._free:
                    slot = min(self._free)
                    self._free.remove(slot)
                else:
                    slot = self._slotCount
                    self._slotCount += 1
                os.pwrite(fd, (index + 1).to_bytes(8, "big"), self._slotOffset(slot))
                self._slots[index] = slot
            self._dirty = True
            return fd, slot

    # I/O

    def write(self, index: int, offset: int, data) -> None:
        """
        Keep C{data}, the bytes at C{offset} within piece C{index}.

        @raise OSError: for an I/O failure.
        @raise ValueError: for a range outside the piece.
        """
        view = memoryview(data).cast("B")
        if not 0 <= index < self.pieceCount:
            raise ValueError(f"piece {index} out of range")
        if offset < 0 or offset + len(view) > self.pieceLength:
            raise ValueError(f"range {offset}+{len(view)} outside a piece")
        fd, slot = self._slotFor(index)
        position = self._slotOffset(slot) + _SLOT_HEADER + offset
        while view:
            written = os.pwrite(fd, view, position)
            if written <= 0:
                raise OSError(f"short write to {self.path!r}")
            view = view[written:]
            position += written

    def read(self, index: int, offset: int, target) -> bool:
        """
        Fill C{target} with the bytes at C{offset} within piece C{index}
        (zeros where nothing was kept).

        @return: whether the piece has a slot.
        @raise OSError: for an I/O failure.
        """
        view = memoryview(target).cast("B")
        with self._lock:
            self._ensureLoaded()
            slot = self._slots.get(index)
            fd = None if slot is None else self._openLocked()
        if slot is None:
            view[:] = bytes(len(view))
            return False
        position = self._slotOffset(slot) + _SLOT_HEADER + offset
        while view:
            n = os.preadv(fd, [view], position)
            if n == 0:
                # A hole at the end of the file reads as nothing.
                view[:] = bytes(len(view))
                break
            view = view[n:]
            position += n
        return True

    def free(self, index: int) -> None:
        """
        Forget piece C{index}'s slot (its bytes moved to their file); the
        file is removed once no slot is used.
        """
        with self._lock:
            self._ensureLoaded()
            slot = self._slots.pop(index, None)
            if slot is None:
                return
            if not self._slots:
                self._close()
                self._discard()
                self._free.clear()
                self._slotCount = 0
                self._dirty = False
                return
            fd = self._openLocked()
            os.pwrite(fd, bytes(_SLOT_HEADER), self._slotOffset(slot))
            self._free.append(slot)
            self._dirty = True

    def sync(self) -> None:
        """
        C{fsync} what was written since the last call.
        """
        with self._lock:
            if self._fd is not None and self._dirty:
                os.fsync(self._fd)
                self._dirty = False

    def stat(self) -> Optional[Tuple[int, int]]:
        """
        @return: C{(size, mtime_ns)} of the file, or C{None} if there is
            none.
        """
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return (st.st_size, st.st_mtime_ns)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """
        Close the descriptor (reopened on demand).
        """
        with self._lock:
            self._close()
