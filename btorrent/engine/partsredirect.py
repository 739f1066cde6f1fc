"""
Unwanted files kept out of the download directory.

A file unwanted (file selection) and not on disk when the storage opens
is never created: the bytes of it that verified pieces hold (pieces
straddling a wanted file) go to a parts file
(L{btorrent.engine.partsfile}).  L{PartsRedirection} knows which files are
redirected, reads and writes their bytes there, and moves them out into
the real file when it becomes wanted again, holding back reads and writes
of redirected files meanwhile.  It does not import C{twisted.internet}.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

from btorrent.engine.filelayout import FileLayout, StorageError
from btorrent.engine.filepool import FilePool
from btorrent.engine.partsfile import PartsFile

__all__ = ["PartsRedirection"]


class PartsRedirection:
    """
    The unwanted files of a storage and those of them redirected to the
    parts file.

    @ivar unwanted: the indexes of the unwanted files.
    @ivar files: the indexes of the redirected files: unwanted, and not on
        disk when the storage opened (the set only shrinks then).
    @ivar partsPath: where the parts file lives (C{None}: C{defaultPath}).
    @ivar parts: the L{PartsFile}, once opened.
    """

    def __init__(self, layout: FileLayout, defaultPath: str) -> None:
        """
        @param layout: the torrent's L{FileLayout}.
        @param defaultPath: where the parts file lives unless told
            otherwise.
        """
        self.layout = layout
        self.defaultPath = defaultPath
        self.unwanted: frozenset = frozenset()
        self.files: frozenset = frozenset()
        self.partsPath: Optional[str] = None
        self.parts: Optional[PartsFile] = None
        self._lock = threading.Lock()
        # Copying from the parts file excludes reads and writes that touch
        # redirected files.
        self._gate = threading.Condition()
        self._gateUsers = 0
        self._moving = False

    def setUnwanted(self, files: frozenset) -> None:
        """
        Which files are unwanted now.
        """
        with self._lock:
            self.unwanted = files

    def redirect(self, files: frozenset) -> None:
        """
        Send the bytes of C{files} to the parts file (as the storage
        opens).
        """
        with self._lock:
            self.files = files

    def release(self, files: frozenset) -> None:
        """
        C{files} are on disk now: their bytes go there again.
        """
        with self._lock:
            self.files = self.files - files

    def partsPieces(self) -> frozenset:
        """
        The pieces that have bytes in the parts file.
        """
        if self.parts is None:
            return frozenset()
        return self.parts.pieces

    def openParts(self) -> None:
        """
        Open (or reopen, if its path changed) the parts file and read what
        it holds.
        """
        path = self.partsPath or self.defaultPath
        if self.parts is None or self.parts.path != path:
            if self.parts is not None:
                self.parts.close()
            self.parts = PartsFile(
                path, self.layout.pieceLength, self.layout.pieceCount
            )
        self.parts.load()

    def sync(self) -> None:
        """
        C{fsync} the parts file, if open.

        @raise StorageError: for an I/O failure.
        """
        if self.parts is not None:
            try:
                self.parts.sync()
            except OSError as e:
                raise StorageError(f"cannot sync the parts file: {e}") from e

    def close(self) -> None:
        """
        Close the parts file, if open.
        """
        if self.parts is not None:
            self.parts.close()

    # Bytes in and out

    def write(self, index: int, position: int, data: Any) -> None:
        """
        Keep C{data} at C{position} within piece C{index}.

        @raise StorageError: for an I/O failure.
        """
        try:
            self.parts.write(index, position, data)
        except OSError as e:
            raise StorageError(
                f"cannot write the parts file {self.parts.path!r}: {e}"
            ) from e

    def read(self, offset: int, target: memoryview) -> None:
        """
        Fill C{target} with the torrent's bytes from C{offset} as the parts
        file holds them (zeros for pieces it has not).

        @raise StorageError: for an I/O failure.
        """
        pieceLength = self.layout.pieceLength
        try:
            while target:
                piece = offset // pieceLength
                within = offset - piece * pieceLength
                n = min(len(target), pieceLength - within)
                self.parts.read(piece, within, target[:n])
                target = target[n:]
                offset += n
        except OSError as e:
            raise StorageError(
                f"cannot read the parts file {self.parts.path!r}: {e}"
            ) from e

    def copyOut(self, files: frozenset, pool: FilePool) -> None:
        """
        Copy the bytes of C{files} that the parts file holds into them.
        """
        layout = self.layout
        for piece in sorted(self.parts.pieces):
            size = layout.pieceSize(piece)
            position = 0
            for fileIndex, fileOffset, length in layout.slices(piece, 0, size):
                if fileIndex in files:
                    buffer = bytearray(length)
                    self.parts.read(piece, position, buffer)
                    pool.write(fileIndex, fileOffset, memoryview(buffer))
                position += length

    def freeUnneededSlots(self) -> None:
        """
        Free the slots of pieces that no longer touch a redirected file.
        """
        redirect = self.files
        layout = self.layout
        for piece in sorted(self.parts.pieces):
            slices = layout.slices(piece, 0, layout.pieceSize(piece))
            if not any(fileIndex in redirect for fileIndex, _, _ in slices):
                self.parts.free(piece)

    # The gate

    def shared(self) -> _Shared:
        """
        @return: a context manager for a read or write that touches
            redirected files: it waits while bytes move out of the parts
            file.
        """
        return _Shared(self)

    def moving(self) -> _Moving:
        """
        @return: a context manager for moving bytes out of the parts file:
            it waits for the reads and writes under way and holds back new
            ones.
        """
        return _Moving(self)


class _Shared:
    """
    See L{PartsRedirection.shared}.
    """

    __slots__ = ("redirection",)

    def __init__(self, redirection: PartsRedirection) -> None:
        self.redirection = redirection

    def __enter__(self) -> None:
        redirection = self.redirection
        with redirection._gate:
            while redirection._moving:
                redirection._gate.wait()
            redirection._gateUsers += 1

    def __exit__(self, *exc: object) -> None:
        redirection = self.redirection
        with redirection._gate:
            redirection._gateUsers -= 1
            if not redirection._gateUsers:
                redirection._gate.notify_all()


class _Moving:
    """
    See L{PartsRedirection.moving}.
    """

    __slots__ = ("redirection",)

    def __init__(self, redirection: PartsRedirection) -> None:
        self.redirection = redirection

    def __enter__(self) -> None:
        redirection = self.redirection
        with redirection._gate:
            while redirection._moving or redirection._gateUsers:
                redirection._gate.wait()
            redirection._moving = True

    def __exit__(self, *exc: object) -> None:
        redirection = self.redirection
        with redirection._gate:
            redirection._moving = False
            redirection._gate.notify_all()


def defaultPartsPath(downloadDir: str, infoHash: bytes) -> str:
    """
    Where a torrent's parts file lives by default: C{.<info-hash>.parts}
    in its download directory.
    """
    return os.path.join(downloadDir, "." + infoHash.hex() + ".parts")
