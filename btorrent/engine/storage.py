"""
Where a torrent's bytes live on disk.

L{MultiFileWriter} is a torrent's L{IPieceStorage}: it moves pieces in and
out of the files with three parts, each in its own module:

  - L{btorrent.engine.filetree.FileTree}: where the files go, the checks
    on their paths, their creation (directories, sparse files, modes,
    symbolic links);
  - L{btorrent.engine.filepool.FilePool}: the bounded cache of open
    descriptors, lent to threads, and the positional reads and writes;
  - L{btorrent.engine.partsredirect.PartsRedirection}: the unwanted files
    whose bytes live in a parts file instead.

L{FileLayout} (L{btorrent.engine.filelayout}) maps byte ranges onto files.
None of them imports C{twisted.internet}: the torrent runs the blocking
methods of L{MultiFileWriter} in a thread pool, possibly several at once.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from typing import Any, Iterator, List, Optional, Set, Tuple

from twisted.logger import Logger
from zope.interface import implementer

from btorrent.engine.filelayout import FileLayout, Slice, StorageError
from btorrent.engine.filepool import FilePool
from btorrent.engine.filetree import FileTree
from btorrent.engine.partsfile import PartsFile
from btorrent.engine.partsredirect import PartsRedirection, defaultPartsPath
from btorrent.interfaces import IPieceStorage
from btorrent.util import logs
from btorrent.util.statefile import fsyncDirectory, writeAtomically

__all__ = [
    "DEFAULT_UMASK",
    "FileLayout",
    "MultiFileWriter",
    "StorageError",
    "fsyncDirectory",
    "writeFileAtomically",
]

#: What L{MultiFileWriter.fileStats} reports per file: C{(size, mtime_ns)},
#: or C{None} for a missing file, something that is not a regular file, or
#: a padding file.
FileStat = Optional[Tuple[int, int]]

_SEEK_DATA = getattr(os, "SEEK_DATA", 0)
_SEEK_HOLE = getattr(os, "SEEK_HOLE", 0)

#: The bits taken away from the modes of the files and directories a
#: torrent creates, whatever the process's umask (twistd's background mode
#: sets 077): C{rw-r--r--} files and C{rwxr-xr-x} directories, as
#: Transmission's default C{umask} of 022 gives.
DEFAULT_UMASK = 0o022


@implementer(IPieceStorage)
class MultiFileWriter:
    """
    A torrent's files on disk, behind L{IPieceStorage}.

    A single-file torrent lives at C{downloadDir/name}; a multi-file torrent
    at C{downloadDir/name/<path...>}.  Padding files are never created, read
    or written: they read back as zeros.

    L{open} creates every directory and file (0-byte files included),
    sparse: a file shorter than its entry is extended with C{ftruncate}
    (no data written, no preallocation); a file B{longer} than its entry is
    truncated to its length, so that the file is exactly what the torrent
    says (its extra bytes are not part of the torrent).  A file already of
    the right length is left untouched (its mtime does not change, so
    fast-resume data stays valid).

    Every path is checked before use, lexically and on disk (symbolic
    links resolved), whenever a file is created or opened; the BEP 47
    attributes (executable bits, symbolic links) are applied and modes set
    from C{umask}: see L{FileTree}.

    Descriptors are kept in a least-recently-used pool of at most
    C{maxOpenFiles}; a thread needing a descriptor while all of them are in
    use by other threads waits for one.  All methods are thread-safe.

    Unwanted files (L{setUnwanted}) that are not on disk when the storage
    is opened are never created: the bytes of theirs that verified pieces
    hold (pieces straddling a wanted file) live in a parts file
    (L{btorrent.engine.partsfile}); L{fileStats} reports that file for
    them, so that fast-resume data notices when it changes.  Such a file
    that becomes wanted is created and gets its bytes from the parts file.
    A file already on disk stays in use whether wanted or not.

    @ivar layout: the L{FileLayout}.
    @ivar paths: the absolute path of each file (C{None} for padding).
    @ivar warnings: one line for each symbolic link that could not be
        created as such (see above), most recent last.
    @ivar umask: the bits taken away from the modes of what is created.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        metainfo: Any,
        downloadDir: str,
        maxOpenFiles: int = 64,
        umask: int = DEFAULT_UMASK,
    ) -> None:
        """
        @param metainfo: a C{btorrent.codec.metainfo.Metainfo} (uses C{name},
            C{files}, C{multiFile}, C{pieceLength}, C{totalLength},
            C{infoHash}).
        @param downloadDir: the directory holding the torrent's data.
        @param maxOpenFiles: how many descriptors may be open at once.
        @param umask: the permission bits taken away from the modes of the
            files (C{0o666}) and directories (C{0o777}) it creates,
            whatever the process's umask.
        @raise StorageError: for a name or path component that could escape
            the download directory.
        @raise ValueError: for C{maxOpenFiles} < 1, a C{umask} outside
            C{0..0o777} or an inconsistent file list.
        """
        if maxOpenFiles < 1:
            raise ValueError("maxOpenFiles must be at least 1")
        if not 0 <= umask <= 0o777:
            raise ValueError(f"umask must be 0..0o777, not {umask:#o}")
        self.umask = umask
        self.metainfo = metainfo
        self.layout = FileLayout(
            metainfo.files, metainfo.pieceLength, metainfo.totalLength
        )
        self.tree = FileTree(metainfo, self.layout, downloadDir, umask, self.log)
        self.downloadDir = self.tree.downloadDir
        self.root = self.tree.root
        self.paths: List[Optional[str]] = self.tree.paths
        self.warnings: List[str] = self.tree.warnings
        self.pool = FilePool(self.paths, self.tree.checkInside, umask, maxOpenFiles)
        self.redirection = PartsRedirection(
            self.layout, defaultPartsPath(self.downloadDir, metainfo.infoHash)
        )
        self._opened = False
        # open() and setUnwanted() one at a time.
        self._selecting = threading.Lock()

    @property
    def maxOpenFiles(self) -> int:
        """
        The bound of the descriptor pool.
        """
        return self.pool.maxOpenFiles

    @property
    def peakOpenFiles(self) -> int:
        """
        The largest number of descriptors ever open at once.
        """
        return self.pool.peakOpenFiles

    @property
    def openFileCount(self) -> int:
        """
        How many descriptors are open now.
        """
        return self.pool.openFileCount

    # IPieceStorage

    def open(self) -> None:
        """
        Create the directory tree and every file, sparse, each exactly its
        entry's length, with the executable bits its entry asks for; then
        the symbolic links.  Padding files are never created.

        @raise StorageError: for a path leading outside the download
            directory, something in the way (a directory where a file
            belongs) or an I/O failure.  Unwanted files not on disk are
            not created (see L{setUnwanted}).
        """
        with self._selecting:
            self._open()

    def _open(self) -> None:
        tree, pool, redirection = self.tree, self.pool, self.redirection
        try:
            tree.makeDownloadDirectory()
            tree.resolveBase()
            tree.checkLengths()
            redirect = frozenset(
                i
                for i in redirection.unwanted
                if self.paths[i] is not None and not os.path.lexists(self.paths[i])
            )
            redirection.redirect(redirect)
            fresh = [
                i
                for i, path in enumerate(self.paths)
                if path is not None
                and i not in redirect
                and self.layout.files[i].length
                and not os.path.lexists(path)
            ]
            checked: Set[str] = set()
            links = []
            for fileIndex, path in enumerate(self.paths):
                if path is None or fileIndex in redirect:
                    continue
                if tree.create(fileIndex, pool, checked):
                    links.append(fileIndex)
            for fileIndex in links:
                tree.createSymlink(fileIndex, pool)
            redirection.openParts()
            if fresh and redirection.parts.pieces:
                # Files just created whose bytes wait in the parts file (a
                # file made wanted while stopped).
                redirection.copyOut(frozenset(fresh), pool)
                redirection.freeUnneededSlots()
        except (OSError, OverflowError) as e:
            # OverflowError: a length beyond off_t (2**63) for ftruncate.
            raise StorageError(f"cannot create the torrent's files: {e}") from e
        self._opened = True
        self.log.debug(
            "Opened {count} files under {root}", count=len(self.paths), root=self.root
        )

    def writePiece(self, index: int, data: Any) -> None:
        """
        Write a whole piece across every file it spans (skipping padding).

        @param index: the piece index.
        @param data: a bytes-like object of exactly the piece's length.
        @raise ValueError: for a bad index or length.
        @raise StorageError: for an I/O failure.
        """
        view = memoryview(data).cast("B")
        size = self.layout.pieceSize(index)
        if len(view) != size:
            raise ValueError(f"piece {index} is {size} bytes, got {len(view)}")
        if self.redirection.files:
            with self.redirection.shared():
                self._writeSelected(index, view, size)
            return
        write = self.pool.write
        files = self.layout.files
        for fileIndex, fileOffset, _, part in self._parts(
            self.layout.slices(index, 0, size), view
        ):
            if not files[fileIndex].padding:
                write(fileIndex, fileOffset, part)

    def _writeSelected(self, index: int, view: memoryview, size: int) -> None:
        """
        L{writePiece} when some files are redirected to the parts file.
        """
        redirection = self.redirection
        redirect = redirection.files
        for fileIndex, fileOffset, position, part in self._parts(
            self.layout.slices(index, 0, size), view
        ):
            if fileIndex in redirect:
                redirection.write(index, position, part)
            elif not self.layout.files[fileIndex].padding:
                self.pool.write(fileIndex, fileOffset, part)

    def readBlock(self, index: int, begin: int, length: int) -> bytes:
        """
        Read C{length} bytes at C{begin} within piece C{index}.

        @return: exactly C{length} bytes; zeros where nothing was written
            (and for padding).
        @raise ValueError: for a range outside the piece.
        @raise StorageError: for a missing file, a file shorter than its
            entry, or an I/O failure.
        """
        slices = self.layout.slices(index, begin, length)
        if self.redirection.files:
            with self.redirection.shared():
                buffer = bytearray(length)
                self._readSlices(slices, memoryview(buffer))
                return bytes(buffer)
        if len(slices) == 1 and not self.layout.files[slices[0][0]].padding:
            # Most blocks lie in one file: one pread, no buffer to copy.
            return self.pool.readBytes(*slices[0])
        buffer = bytearray(length)
        self._readSlices(slices, memoryview(buffer))
        return bytes(buffer)

    def readPiece(self, index: int) -> bytes:
        """
        Read a whole piece.

        @return: as for L{readBlock}.
        """
        return self.readBlock(index, 0, self.layout.pieceSize(index))

    def readPieceIfCached(self, index: int):
        """
        Read a whole piece without waiting for the disk, if every byte of
        it is in the page cache and its files are open (see
        L{FilePool.readIfCached}); a piece with bytes in the parts file is
        left to L{readPiece}.

        @return: the piece, a read-only buffer, or C{None}.
        """
        if self.redirection.files:
            return None
        size = self.layout.pieceSize(index)
        view = memoryview(bytearray(size))
        files = self.layout.files
        readIfCached = self.pool.readIfCached
        for fileIndex, fileOffset, _, part in self._parts(
            self.layout.slices(index, 0, size), view
        ):
            # Padding is zeros, as the new buffer is.
            if not files[fileIndex].padding and not readIfCached(
                fileIndex, fileOffset, part
            ):
                return None
        return view.toreadonly()

    def sync(self) -> None:
        """
        C{fsync} every file written or resized since the last call, and the
        directories L{open} added entries to, so that what
        L{writePiece} wrote before this call survives a crash.

        @raise StorageError: for an I/O failure (the files stay marked for
            the next call).
        """
        self.redirection.sync()
        dirty = self.pool.takeWritten()
        dirs = self.tree.takeChangedDirectories()
        pending = sorted(dirty)
        done = 0
        try:
            for fileIndex in pending:
                self.pool.fsync(fileIndex)
                done += 1
            for directory in sorted(dirs):
                fsyncDirectory(directory)
                dirs.discard(directory)
        except BaseException as e:
            self.pool.markAllWritten(pending[done:])
            self.tree.markChanged(dirs)
            if isinstance(e, OSError):
                raise StorageError(f"cannot sync: {e}") from e
            raise

    def close(self) -> None:
        """
        Close every open descriptor (waiting for those in use).  The writer
        can be used again afterwards: descriptors are reopened on demand.
        Data not yet L{sync}ed is not flushed to the disk by this.
        """
        self.pool.closeAll()
        self.redirection.close()

    # File selection

    @property
    def unwanted(self) -> frozenset:
        """
        The indexes of the unwanted files.
        """
        return self.redirection.unwanted

    @property
    def redirected(self) -> frozenset:
        """
        The files whose bytes are kept in the parts file (unwanted, and
        not on disk when opened).
        """
        return self.redirection.files

    @property
    def partsPath(self) -> Optional[str]:
        """
        Where the parts file lives (C{None}: C{.<info-hash>.parts} in the
        download directory).
        """
        return self.redirection.partsPath

    @property
    def parts(self) -> Optional[PartsFile]:
        """
        The parts file, once opened.
        """
        return self.redirection.parts

    def partsPieces(self) -> frozenset:
        """
        The pieces that have bytes in the parts file.
        """
        return self.redirection.partsPieces()

    def setUnwanted(self, files, partsPath: Optional[str] = None) -> None:
        """
        Say which files are unwanted.  Before L{open}: they will not be
        created (unless already on disk).  Once open: a redirected file
        that became wanted is created and its bytes are copied from the
        parts file (blocking: run it in a thread); a file on disk stays.

        @param files: file indexes.
        @param partsPath: where the parts file lives (by default
            C{.<info-hash>.parts} in the download directory).
        @raise ValueError: for an index out of range (nothing is changed).
        @raise StorageError: for an I/O failure while copying.
        """
        with self._selecting:
            self._setUnwanted(frozenset(files), partsPath)

    def trySetUnwanted(self, files, partsPath: Optional[str] = None) -> bool:
        """
        L{setUnwanted} at once if that needs no disk: before the first
        L{open}, and while no L{open} or L{setUnwanted} runs (in a thread).
        Safe on the reactor's thread: it never waits.

        @return: whether the selection was taken; if not, call
            L{setUnwanted} in a thread.
        @raise ValueError: as for L{setUnwanted}.
        """
        if not self._selecting.acquire(blocking=False):
            return False
        try:
            if self._opened:
                return False
            self._setUnwanted(frozenset(files), partsPath)
            return True
        finally:
            self._selecting.release()

    def _setUnwanted(self, files: frozenset, partsPath: Optional[str]) -> None:
        redirection = self.redirection
        for index in files:
            if not 0 <= index < len(self.paths):
                raise ValueError(f"file index {index} out of range")
        if partsPath is not None and partsPath != redirection.partsPath:
            if self._opened and redirection.parts is not None:
                if redirection.parts.pieces:
                    raise ValueError("the parts file cannot move while in use")
            redirection.partsPath = partsPath
        redirection.setUnwanted(files)
        if not self._opened:
            return
        if redirection.parts is None:
            redirection.openParts()
        leaving = redirection.files - files
        if leaving:
            self._wantAgain(leaving)

    def _wantAgain(self, files: frozenset) -> None:
        """
        Create redirected files that became wanted, and move their bytes
        from the parts file into them, with reads and writes of redirected
        files held back meanwhile.
        """
        tree, pool, redirection = self.tree, self.pool, self.redirection
        with redirection.moving():
            try:
                checked: Set[str] = set()
                for fileIndex in sorted(files):
                    if tree.create(fileIndex, pool, checked):
                        tree.createSymlink(fileIndex, pool)
                redirection.copyOut(files, pool)
                # The bytes must be on the disk before their slots go.
                for fileIndex in sorted(files):
                    if self.layout.files[fileIndex].length:
                        pool.fsync(fileIndex)
                for directory in sorted(
                    {os.path.dirname(self.paths[i]) for i in files}
                ):
                    fsyncDirectory(directory)
                redirection.release(files)
                redirection.freeUnneededSlots()
            except (OSError, OverflowError) as e:
                raise StorageError(f"cannot create the wanted files: {e}") from e

    # Beyond IPieceStorage

    def readInto(self, offset: int, buffer: Any) -> None:
        """
        Fill C{buffer} with the torrent's bytes from C{offset} (within the
        whole torrent), without intermediate copies: for a recheck reading
        large sequential chunks.

        @param buffer: a writable bytes-like object (C{bytearray},
            C{memoryview}).
        @raise ValueError: for a range outside the torrent.
        @raise StorageError: as for L{readBlock}.
        """
        view = memoryview(buffer).cast("B")
        slices = self.layout.rangeSlices(offset, len(view))
        if self.redirection.files:
            with self.redirection.shared():
                self._readSlices(slices, view)
            return
        self._readSlices(slices, view)

    def _readSlices(self, slices: List[Slice], view: memoryview) -> None:
        """
        Read the slices into C{view}, one after the other; padding slices
        are left as they are (the caller's buffer must be zeroed there).
        """
        files = self.layout.files
        redirection = self.redirection
        redirect = redirection.files
        for fileIndex, fileOffset, _, target in self._parts(slices, view):
            if files[fileIndex].padding:
                target[:] = bytes(len(target))
            elif redirect and fileIndex in redirect:
                redirection.read(files[fileIndex].offset + fileOffset, target)
            else:
                self.pool.read(fileIndex, fileOffset, target)

    @staticmethod
    def _parts(
        slices: List[Slice], view: memoryview
    ) -> Iterator[Tuple[int, int, int, memoryview]]:
        """
        Walk C{slices} laid end to end over C{view}.

        @return: per slice, C{(fileIndex, fileOffset, position, part)}: where
            it starts in C{view}, and that part of C{view}.
        """
        position = 0
        for fileIndex, fileOffset, length in slices:
            yield fileIndex, fileOffset, position, view[position : position + length]
            position += length

    def checkFiles(self) -> None:
        """
        Check that the files this writer keeps are still there at their
        length (something outside may delete or truncate them while the
        torrent runs; an open descriptor would hide it).

        @raise StorageError: naming the first file gone or cut short.
        """
        redirect = self.redirection.files
        for fileIndex, (path, entry) in enumerate(zip(self.paths, self.layout.files)):
            if path is None or entry.symlink is not None or fileIndex in redirect:
                continue
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                raise StorageError(f"{path!r} is gone") from None
            except OSError as e:
                raise StorageError(f"cannot stat {path!r}: {e}") from e
            if not stat.S_ISREG(st.st_mode):
                raise StorageError(f"{path!r} is no longer a regular file")
            if st.st_size < entry.length:
                raise StorageError(
                    f"{path!r} was cut to {st.st_size} bytes (it has {entry.length})"
                )

    def fileStats(self) -> List[FileStat]:
        """
        Look at the files as they are now, for fast-resume data.

        Works before L{open} too: nothing is created.

        @return: one entry per file, C{(size, mtime_ns)} for a regular file,
            C{None} for a missing one, something that is not a regular file,
            a padding file or a symbolic link.
        """
        result: List[FileStat] = []
        redirect = self.redirection.files
        partsStat = None
        if redirect and self.parts is not None:
            partsStat = self.parts.stat()
        for fileIndex, (path, entry) in enumerate(zip(self.paths, self.layout.files)):
            if path is None or entry.symlink is not None:
                result.append(None)
                continue
            if fileIndex in redirect:
                # Its bytes are in the parts file.
                result.append(partsStat if entry.length else None)
                continue
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                result.append(None)
                continue
            except OSError as e:
                raise StorageError(f"cannot stat {path!r}: {e}") from e
            if stat.S_ISREG(st.st_mode):
                result.append((st.st_size, st.st_mtime_ns))
            else:
                result.append(None)
        return result

    def dataExtents(
        self, fileIndex: int, limit: int = 4096
    ) -> Optional[List[Tuple[int, int]]]:
        """
        Where file C{fileIndex} holds data, as opposed to holes that read as
        zeros (C{SEEK_DATA}/C{SEEK_HOLE}): a recheck need not read and hash
        a piece that lies entirely in holes.

        Conservative: a filesystem that knows nothing of holes reports the
        whole file as data.

        @param limit: give up (C{None}) past this many extents.
        @return: C{(start, end)} byte ranges in ascending order, within the
            entry's length; C{None} when unknown (no C{SEEK_DATA} on this
            platform, too many extents): assume everything is data.
        @raise StorageError: for a missing file or an I/O failure.
        """
        if not (_SEEK_DATA and _SEEK_HOLE):  # pragma: no cover (platform)
            return None
        length = self.layout.files[fileIndex].length
        extents: List[Tuple[int, int]] = []
        try:
            with self.pool.lease(fileIndex, write=False) as fd:
                size = min(length, os.fstat(fd).st_size)
                position = 0
                while position < size:
                    try:
                        start = os.lseek(fd, position, _SEEK_DATA)
                    except OSError as e:
                        if e.errno == errno.ENXIO:
                            break
                        if e.errno == errno.EINVAL:  # pragma: no cover
                            return None
                        raise
                    if start >= size:
                        break
                    end = min(size, os.lseek(fd, start, _SEEK_HOLE))
                    if len(extents) == limit:
                        return None
                    extents.append((start, end))
                    position = end
        except OSError as e:
            raise StorageError(
                f"cannot look for holes in {self.paths[fileIndex]!r}: {e}"
            ) from e
        return extents


def writeFileAtomically(path: str, data: bytes) -> None:
    """
    Replace the file at C{path} with C{data} so that a crash at any moment
    leaves either the old file or the new one (see
    L{btorrent.util.statefile.writeAtomically}).

    @raise OSError: for an I/O failure.
    """
    writeAtomically(path, data)
