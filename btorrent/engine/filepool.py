"""
The open files of a torrent's storage.

L{FilePool} keeps a bounded, least-recently-used set of raw descriptors,
lends them to threads for the duration of a C{with} block (a lease),
opens a file only after checking where its path really leads, and moves
bytes in and out with C{os.pwrite}/C{os.pread}/C{os.preadv}.  It
remembers which files were written since the last C{sync}.

It does not import C{twisted.internet}: the storage runs in a thread pool,
possibly several threads at once, and every method is thread-safe.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Callable, Iterable, List, Optional, Set, Tuple

from btorrent.engine.filelayout import StorageError

__all__ = ["FilePool"]

_HAS_PREADV = hasattr(os, "preadv")
#: C{preadv2} with C{RWF_NOWAIT} (Linux 4.14): a read that returns at once
#: what the page cache holds, and never waits for the disk.
RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0) if _HAS_PREADV else 0
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class _OpenFile:
    """
    One descriptor in the pool, with the number of threads using it.
    """

    __slots__ = ("fd", "writable", "users")

    def __init__(self, fd: int, writable: bool) -> None:
        self.fd = fd
        self.writable = writable
        self.users = 0


class FilePool:
    """
    Descriptors for a torrent's files, at most L{maxOpenFiles} open at
    once; a thread needing one while all of them are in use by other
    threads waits for one.

    @ivar paths: the absolute path of each file (C{None} for padding);
        the storage's own list.
    @ivar maxOpenFiles: the bound of the pool.
    @ivar peakOpenFiles: the largest number of descriptors ever open at
        once (for tests and statistics).
    @ivar umask: the bits taken away from the mode of a file it creates.
    """

    def __init__(
        self,
        paths: List[Optional[str]],
        checkInside: Callable[[str], None],
        umask: int,
        maxOpenFiles: int,
    ) -> None:
        """
        @param paths: the absolute path of each file (C{None} for padding).
        @param checkInside: C{checkInside(path)} raises L{StorageError} if
            C{path}, links resolved, leads outside the download directory;
            called before every open.
        @param umask: the bits taken away from the mode (C{0o666}) of a
            file it creates.
        @param maxOpenFiles: how many descriptors may be open at once.
        """
        self.paths = paths
        self.checkInside = checkInside
        self.umask = umask
        self.maxOpenFiles = maxOpenFiles
        self.peakOpenFiles = 0
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)
        self._pool: OrderedDict[int, _OpenFile] = OrderedDict()
        self._written: Set[int] = set()

    # Leases

    def lease(self, fileIndex: int, write: bool, create: bool = False) -> _Lease:
        """
        @param write: the descriptor must be writable.
        @param create: create the file if it is missing (with the mode
            L{umask} gives).
        @return: a context manager giving a descriptor for file
            C{fileIndex} for the duration of the C{with} block.
        """
        return _Lease(self, fileIndex, write, create)

    def _acquire(self, fileIndex: int, write: bool, create: bool) -> int:
        """
        Take a descriptor for C{fileIndex} from the pool, opening it (and
        closing the least recently used idle one) when needed.
        """
        with self._available:
            while True:
                entry = self._pool.get(fileIndex)
                if entry is not None and (entry.writable or not write):
                    entry.users += 1
                    self._pool.move_to_end(fileIndex)
                    return entry.fd
                if entry is not None and entry.users == 0:
                    # Open read-only before; reopen for writing.
                    del self._pool[fileIndex]
                    os.close(entry.fd)
                    continue
                if entry is None and len(self._pool) < self.maxOpenFiles:
                    break
                if entry is None and self._evictIdle():
                    break
                self._available.wait()
            fd, writable = self._openFile(fileIndex, write, create)
            opened = _OpenFile(fd, writable)
            opened.users = 1
            self._pool[fileIndex] = opened
            if len(self._pool) > self.peakOpenFiles:
                self.peakOpenFiles = len(self._pool)
            return fd

    def _evictIdle(self) -> bool:
        """
        Close the least recently used descriptor nobody is using.  Called
        with the lock held.

        @return: whether one was closed.
        """
        for fileIndex, entry in self._pool.items():
            if entry.users == 0:
                del self._pool[fileIndex]
                os.close(entry.fd)
                return True
        return False

    def _release(self, fileIndex: int) -> None:
        """
        Give back a descriptor taken with L{_acquire}.
        """
        with self._available:
            entry = self._pool[fileIndex]
            entry.users -= 1
            if entry.users == 0:
                self._available.notify_all()

    def _openFile(self, fileIndex: int, write: bool, create: bool) -> Tuple[int, bool]:
        """
        Open file C{fileIndex} after checking where its path really leads.

        @return: the descriptor and whether it is writable.
        @raise StorageError: for a path outside the download directory, a
            missing file (unless C{create}) or a file that cannot be opened
            for writing when C{write}.
        """
        path = self.paths[fileIndex]
        assert path is not None
        flags = _O_CLOEXEC | _O_BINARY
        if os.path.lexists(path):
            self.checkInside(path)
            if not os.path.islink(path):
                # Nothing may swap in a link between the check and the open.
                flags |= _O_NOFOLLOW
        elif create:
            self.checkInside(os.path.dirname(path))
            # Ours, so its mode is ours to set.
            flags |= os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, flags | os.O_RDWR, 0o666 & ~self.umask)
            if flags & os.O_EXCL:
                try:
                    os.fchmod(fd, 0o666 & ~self.umask)
                except OSError:
                    os.close(fd)
                    raise
            return fd, True
        except PermissionError:
            if write:
                raise StorageError(f"{path!r} is not writable") from None
            try:
                return os.open(path, flags | os.O_RDONLY), False
            except OSError as e:
                raise StorageError(f"cannot open {path!r}: {e}") from e
        except FileNotFoundError:
            raise StorageError(f"{path!r} is missing") from None
        except OSError as e:
            raise StorageError(f"cannot open {path!r}: {e}") from e

    def closeAll(self) -> None:
        """
        Close every open descriptor (waiting for those in use).  They are
        reopened on demand afterwards.
        """
        with self._available:
            while any(f.users for f in self._pool.values()):
                self._available.wait()
            for entry in self._pool.values():
                os.close(entry.fd)
            self._pool.clear()

    @property
    def openFileCount(self) -> int:
        """
        How many descriptors are open now.
        """
        with self._lock:
            return len(self._pool)

    # What was written since the last sync

    def markWritten(self, fileIndex: int) -> None:
        """
        File C{fileIndex} changed (written, resized): the next sync must
        C{fsync} it.
        """
        with self._lock:
            self._written.add(fileIndex)

    def takeWritten(self) -> Set[int]:
        """
        @return: the files changed since the last call (forgotten here: give
            back those not synced with L{markAllWritten}).
        """
        with self._lock:
            written, self._written = self._written, set()
        return written

    def markAllWritten(self, fileIndexes: Iterable[int]) -> None:
        """
        L{markWritten} for each of C{fileIndexes}.
        """
        with self._lock:
            self._written.update(fileIndexes)

    def fsync(self, fileIndex: int) -> None:
        """
        C{fsync} file C{fileIndex}.

        @raise OSError: for an I/O failure.
        """
        with self.lease(fileIndex, write=False) as fd:
            os.fsync(fd)

    # I/O

    def write(self, fileIndex: int, fileOffset: int, view: memoryview) -> None:
        """
        Write all of C{view} at C{fileOffset} in file C{fileIndex}.

        @raise StorageError: for an I/O failure.
        """
        try:
            with self.lease(fileIndex, write=True) as fd:
                while view:
                    written = os.pwrite(fd, view, fileOffset)
                    if written <= 0:
                        raise StorageError(f"short write to file {fileIndex}")
                    view = view[written:]
                    fileOffset += written
        except (OSError, OverflowError) as e:
            raise StorageError(f"cannot write {self.paths[fileIndex]!r}: {e}") from e
        self.markWritten(fileIndex)

    def readIfCached(self, fileIndex: int, fileOffset: int, target: memoryview) -> bool:
        """
        Fill C{target} from C{fileOffset} in file C{fileIndex} without ever
        waiting for the disk: only if the file is open already (opening
        may wait), the pool's lock is free (a thread holds it while it
        opens or closes a file, which may wait for the disk too) and every
        byte is in the page cache (C{RWF_NOWAIT}).  Safe on the reactor's
        thread.

        The read is done holding the lock, so that no thread closes the
        descriptor meanwhile; it never waits, and a piece copied this way
        is small (see the uploader's C{INLINE_READ_BYTES}).

        @return: whether all of C{target} was read; if not, read it with
            L{read} in a thread, which also tells what is wrong, if
            anything.
        """
        if not RWF_NOWAIT or not self._lock.acquire(blocking=False):
            return False
        try:
            entry = self._pool.get(fileIndex)
            if entry is None:
                return False
            self._pool.move_to_end(fileIndex)
            return os.preadv(entry.fd, [target], fileOffset, RWF_NOWAIT) == len(target)
        except (OSError, OverflowError):
            # Not in the page cache (EAGAIN), or a fault the threaded read
            # will report.
            return False
        finally:
            self._lock.release()

    def readBytes(self, fileIndex: int, fileOffset: int, length: int) -> bytes:
        """
        Read C{length} bytes at C{fileOffset} in file C{fileIndex} with
        C{pread}, which returns them without an intermediate buffer.

        @raise StorageError: as for L{read}.
        """
        try:
            with self.lease(fileIndex, write=False) as fd:
                data = os.pread(fd, length, fileOffset)
        except (OSError, OverflowError) as e:
            raise StorageError(f"cannot read {self.paths[fileIndex]!r}: {e}") from e
        if len(data) == length:
            return data
        # A short read (the file ends early, or a signal): the slow path
        # finishes the job or says what is wrong.
        buffer = bytearray(length)
        buffer[: len(data)] = data
        self.read(fileIndex, fileOffset + len(data), memoryview(buffer)[len(data) :])
        return bytes(buffer)

    def read(self, fileIndex: int, fileOffset: int, target: memoryview) -> None:
        """
        Fill C{target} from C{fileOffset} in file C{fileIndex}.

        @raise StorageError: if the file ends early (shorter than its
            entry: changed behind our back) or cannot be read.
        """
        try:
            with self.lease(fileIndex, write=False) as fd:
                while target:
                    if _HAS_PREADV:
                        n = os.preadv(fd, [target], fileOffset)
                    else:  # pragma: no cover (platforms without preadv)
                        chunk = os.pread(fd, len(target), fileOffset)
                        n = len(chunk)
                        target[:n] = chunk
                    if n == 0:
                        raise StorageError(
                            f"{self.paths[fileIndex]!r} ends before offset "
                            f"{fileOffset + len(target)}"
                        )
                    target = target[n:]
                    fileOffset += n
        except (OSError, OverflowError) as e:
            raise StorageError(f"cannot read {self.paths[fileIndex]!r}: {e}") from e


class _Lease:
    """
    A descriptor borrowed from a L{FilePool} for a C{with} block.
    """

    __slots__ = ("pool", "fileIndex", "write", "create")

    def __init__(
        self, pool: FilePool, fileIndex: int, write: bool, create: bool
    ) -> None:
        self.pool = pool
        self.fileIndex = fileIndex
        self.write = write
        self.create = create

    def __enter__(self) -> int:
        return self.pool._acquire(self.fileIndex, self.write, self.create)

    def __exit__(self, *exc: object) -> None:
        self.pool._release(self.fileIndex)
