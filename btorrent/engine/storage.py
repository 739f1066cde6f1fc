"""
Where a torrent's bytes live on disk.

L{FileLayout} is pure arithmetic: it maps a byte range of the torrent (a
piece, a block) onto the files it spans.  L{MultiFileWriter} creates the
files and moves pieces in and out of them with C{os.pwrite}/C{os.preadv} on
raw descriptors, keeping a bounded, least-recently-used pool of open files.

Neither class imports C{twisted.internet}: the torrent runs the blocking
methods of L{MultiFileWriter} in a thread pool, possibly several at once.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from bisect import bisect_right
from collections import OrderedDict
from typing import Any, List, Optional, Sequence, Set, Tuple

from twisted.logger import Logger
from zope.interface import implementer

from btorrent.codec.safepath import componentProblem, isWithin
from btorrent.engine.partsfile import PartsFile
from btorrent.interfaces import IPieceStorage
from btorrent.util.statefile import fsyncDirectory, writeAtomically

__all__ = [
    "DEFAULT_UMASK",
    "FileLayout",
    "MultiFileWriter",
    "StorageError",
    "fsyncDirectory",
    "writeFileAtomically",
]

#: A slice of a byte range within one file: C{(fileIndex, fileOffset, length)}.
Slice = Tuple[int, int, int]

#: What L{MultiFileWriter.fileStats} reports per file: C{(size, mtime_ns)},
#: or C{None} for a missing file, something that is not a regular file, or
#: a padding file.
FileStat = Optional[Tuple[int, int]]

_HAS_PREADV = hasattr(os, "preadv")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_SEEK_DATA = getattr(os, "SEEK_DATA", 0)
_SEEK_HOLE = getattr(os, "SEEK_HOLE", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

#: The bits taken away from the modes of the files and directories a
#: torrent creates, whatever the process's umask (twistd's background mode
#: sets 077): C{rw-r--r--} files and C{rwxr-xr-x} directories, as
#: Transmission's default C{umask} of 022 gives.
DEFAULT_UMASK = 0o022


class StorageError(Exception):
    """
    A path outside the download directory, or an I/O failure.
    """


class FileLayout:
    """
    How a torrent's byte stream is cut into files.

    The torrent is one stream of C{totalLength} bytes; file C{i} holds the
    bytes C{[files[i].offset, files[i].offset + files[i].length)}.  Pieces
    are C{pieceLength} bytes each, the last one possibly shorter.

    L{slices} returns every file a range touches, B{padding files included}
    (so that the slices always cover the range exactly); a writer must skip
    the slices whose file is padding (L{isPadding}).  0-byte files never
    appear in a slice.

    @ivar files: the file entries (objects with C{path}, C{length},
        C{offset} and C{padding}).
    @ivar pieceLength: the nominal piece length.
    @ivar totalLength: the length of the whole torrent.
    @ivar pieceCount: the number of pieces.
    """

    def __init__(
        self, files: Sequence[Any], pieceLength: int, totalLength: int
    ) -> None:
        """
        @param files: objects with C{length}, C{offset} and C{padding}
            attributes, in torrent order, each starting where the previous
            one ends.
        @param pieceLength: the nominal piece length (> 0).
        @param totalLength: the sum of the file lengths.
        @raise ValueError: for inconsistent figures.
        """
        if pieceLength <= 0:
            raise ValueError(f"piece length must be positive, not {pieceLength}")
        if totalLength < 0:
            raise ValueError(f"negative total length {totalLength}")
        self.files = tuple(files)
        self.pieceLength = pieceLength
        self.totalLength = totalLength
        self.pieceCount = -(-totalLength // pieceLength)
        # Only non-empty files take part in the bisection: a 0-byte file
        # shares its offset with its neighbour and holds no byte.
        self._starts: List[int] = []
        self._indexes: List[int] = []
        position = 0
        for i, entry in enumerate(self.files):
            if entry.length < 0:
                raise ValueError(f"file {i} has a negative length")
            if entry.offset != position:
                raise ValueError(
                    f"file {i} starts at {entry.offset}, expected {position}"
                )
            if entry.length:
                self._starts.append(entry.offset)
                self._indexes.append(i)
            position += entry.length
        if position != totalLength:
            raise ValueError(
                f"files add up to {position} bytes, total length is {totalLength}"
            )

    def pieceSize(self, index: int) -> int:
        """
        @return: the length of piece C{index} (the last one may be short).
        @raise ValueError: for an index out of range.
        """
        if not 0 <= index < self.pieceCount:
            raise ValueError(f"piece index {index} out of range")
        return min(self.pieceLength, self.totalLength - index * self.pieceLength)

    def isPadding(self, fileIndex: int) -> bool:
        """
        @return: whether file C{fileIndex} is a padding file (BEP 47), whose
            bytes are zeros never stored on disk.
        """
        return bool(self.files[fileIndex].padding)

    def slices(self, index: int, begin: int, length: int) -> List[Slice]:
        """
        Map C{length} bytes at C{begin} within piece C{index} onto files.

        @return: C{(fileIndex, fileOffset, length)} tuples, in order, whose
            lengths add up to C{length}; none for a 0-byte file; padding
            files included.
        @raise ValueError: if the range does not lie within the piece.
        """
        size = self.pieceSize(index)
        if begin < 0 or length < 0 or begin + length > size:
            raise ValueError(
                f"range {begin}+{length} outside piece {index} of {size} bytes"
            )
        return self.rangeSlices(index * self.pieceLength + begin, length)

    def rangeSlices(self, offset: int, length: int) -> List[Slice]:
        """
        Map C{length} bytes at C{offset} within the whole torrent onto files.

        @return: as for L{slices}.
        @raise ValueError: if the range does not lie within the torrent.
        """
        if offset < 0 or length < 0 or offset + length > self.totalLength:
            raise ValueError(
                f"range {offset}+{length} outside a torrent of "
                f"{self.totalLength} bytes"
            )
        result: List[Slice] = []
        if not length:
            return result
        starts, indexes, files = self._starts, self._indexes, self.files
        k = bisect_right(starts, offset) - 1
        end = offset + length
        while offset < end:
            fileIndex = indexes[k]
            entry = files[fileIndex]
            inFile = offset - entry.offset
            n = min(entry.length - inFile, end - offset)
            result.append((fileIndex, inFile, n))
            offset += n
            k += 1
        return result

    def paddingBlocks(self, index: int, blockSize: int) -> List[int]:
        """
        The blocks of piece C{index} that lie wholly in padding files: their
        bytes are zeros by definition, so a downloader need not request
        them (libtorrent never does) but fills them with zeros itself.

        @param blockSize: the request size (16 KiB), the last block of the
            piece possibly shorter.
        @return: block indexes within the piece, ascending.
        @raise ValueError: for an index out of range.
        """
        size = self.pieceSize(index)
        start = index * self.pieceLength
        result = []
        for block, begin in enumerate(range(0, size, blockSize)):
            length = min(blockSize, size - begin)
            slices = self.rangeSlices(start + begin, length)
            if all(self.files[fileIndex].padding for fileIndex, _, _ in slices):
                result.append(block)
        return result

    def pieceRange(self, fileIndex: int) -> range:
        """
        @return: the indexes of the pieces that hold bytes of file
            C{fileIndex} (empty for a 0-byte file).
        """
        entry = self.files[fileIndex]
        if not entry.length:
            return range(0)
        first = entry.offset // self.pieceLength
        last = (entry.offset + entry.length - 1) // self.pieceLength
        return range(first, last + 1)


def _checkComponent(component: Any) -> None:
    """
    Refuse a path component that could name something other than one entry
    inside its parent directory (the rules of L{btorrent.codec.safepath}).

    @raise StorageError: for an empty, C{.}, C{..}, absolute,
        separator-bearing or drive component.
    """
    problem = componentProblem(component)
    if problem is not None:
        raise StorageError(f"unsafe path component: {problem}")


class _OpenFile:
    """
    One descriptor in the pool, with the number of threads using it.
    """

    __slots__ = ("fd", "writable", "users")

    def __init__(self, fd: int, writable: bool) -> None:
        self.fd = fd
        self.writable = writable
        self.users = 0


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

    Every path is checked before use, lexically (no C{..}, no absolute
    component) and on disk: the real path (symbolic links resolved) of
    every directory and file must lie within the real path of the download
    directory, so that a symbolic link planted inside it cannot lead
    outside.  The check runs again whenever a file is opened.  A path that
    leads outside is refused with a L{StorageError} whose one line names
    it and where it leads.

    BEP 47 attributes: a file with C{executable} set gets the executable
    bits wherever it has read bits (C{rw-r--r--} becomes C{rwxr-xr-x}).  A
    symbolic link (an entry with C{symlink}, its target relative to the
    torrent's directory) is created after every file, with a relative
    target, and only if it really leads inside the torrent's directory
    once links already on disk are followed; otherwise an empty file takes
    its place and a warning is logged and kept in L{warnings}.  Symbolic
    links hold no data and are never opened.

    Files and directories are created with the modes C{0o666} and C{0o777}
    less C{umask} (L{DEFAULT_UMASK}: C{rw-r--r--} and C{rwxr-xr-x}), set
    explicitly, so that the process's umask does not matter; what already
    exists keeps its mode.

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
    @ivar maxOpenFiles: the bound of the descriptor pool.
    @ivar peakOpenFiles: the largest number of descriptors ever open at
        once (for tests and statistics).
    @ivar umask: the bits taken away from the modes of what is created.
    """

    log = Logger()

    def __init__(
        self,
        metainfo: Any,
        downloadDir: str,
        maxOpenFiles: int = 64,
        umask: int = DEFAULT_UMASK,
    ) -> None:
        """
        @param metainfo: a C{btorrent.codec.metainfo.Metainfo} (uses C{name},
            C{files}, C{multiFile}, C{pieceLength}, C{totalLength}).
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
        self.maxOpenFiles = maxOpenFiles
        self.layout = FileLayout(
            metainfo.files, metainfo.pieceLength, metainfo.totalLength
        )
        self.downloadDir = os.path.abspath(downloadDir)
        _checkComponent(metainfo.name)
        if metainfo.multiFile:
            self.root = os.path.join(self.downloadDir, metainfo.name)
        else:
            if len(self.layout.files) != 1:
                raise StorageError("a single-file torrent must have one file")
            self.root = self.downloadDir
        self.paths: List[Optional[str]] = []
        for entry in self.layout.files:
            if entry.padding:
                self.paths.append(None)
                continue
            if metainfo.multiFile:
                if not entry.path:
                    raise StorageError("a file with an empty path")
                for component in entry.path:
                    _checkComponent(component)
                self.paths.append(os.path.join(self.root, *entry.path))
            else:
                self.paths.append(os.path.join(self.downloadDir, metainfo.name))
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)
        self._pool: OrderedDict[int, _OpenFile] = OrderedDict()
        self._dirty: Set[int] = set()
        self._dirtyDirs: Set[str] = set()
        # File selection: the unwanted files, and those of them whose bytes
        # go to the parts file (decided when opened; it only shrinks then).
        self._unwanted: frozenset = frozenset()
        self._redirect: frozenset = frozenset()
        self._opened = False
        self.partsPath: Optional[str] = None
        self.parts: Optional[PartsFile] = None
        # Copying from the parts file excludes reads and writes that touch
        # redirected files.
        self._gate = threading.Condition()
        self._gateUsers = 0
        self._moving = False
        # open() and setUnwanted() one at a time.
        self._selecting = threading.Lock()
        self._realDownloadDir: Optional[str] = None
        self.warnings: List[str] = []
        self.peakOpenFiles = 0

    # Paths

    def _realBase(self) -> str:
        """
        @return: the real path of the download directory.
        """
        if self._realDownloadDir is None:
            self._realDownloadDir = os.path.realpath(self.downloadDir)
        return self._realDownloadDir

    def _checkInside(self, path: str) -> None:
        """
        @raise StorageError: if C{path}, symbolic links resolved, is not
            within the download directory.
        """
        real = os.path.realpath(path)
        if not isWithin(real, self._realBase()):
            raise StorageError(
                f"{path!r} leads outside the download directory "
                f"{self.downloadDir!r} (to {real!r}, through a symbolic link): "
                f"refused"
            )

    def _checkLengths(self) -> None:
        """
        Refuse, before anything is created, a path longer than the
        filesystem takes or a name longer than a file name may be: a
        hostile torrent can give a path of millions of components, and
        creating directories until the system says no would leave a tree
        too deep to delete easily.

        @raise StorageError: naming the path (shortened).
        """
        nameMax = _pathconf(self.downloadDir, "PC_NAME_MAX", 255)
        pathMax = _pathconf(self.downloadDir, "PC_PATH_MAX", 4096)
        name = self.metainfo.name
        for fileIndex, path in enumerate(self.paths):
            if path is None:
                continue
            size = len(os.fsencode(path))
            if size >= pathMax:
                raise StorageError(
                    f"file {fileIndex}: path of {size} bytes is too long for "
                    f"the filesystem (at most {pathMax - 1}): {_shorten(path)!r}"
                )
            components = (name,)
            if self.metainfo.multiFile:
                components += tuple(self.layout.files[fileIndex].path)
            for component in components:
                if len(os.fsencode(component)) > nameMax:
                    raise StorageError(
                        f"file {fileIndex}: name too long for the filesystem "
                        f"(at most {nameMax} bytes): {_shorten(component)!r}"
                    )

    def _makeDirectories(self, directory: str, checked: Set[str]) -> None:
        """
        Create C{directory} and its missing parents below the download
        directory one level at a time, checking each existing level so that
        nothing is ever created through a link that leads outside.
        """
        if directory in checked:
            return
        relative = os.path.relpath(directory, self.downloadDir)
        current = self.downloadDir
        if relative != ".":
            for component in relative.split(os.sep):
                current = os.path.join(current, component)
                if current in checked:
                    continue
                if os.path.lexists(current):
                    self._checkInside(current)
                    if not os.path.isdir(current):
                        raise StorageError(f"{current!r} is not a directory")
                else:
                    self._makeDirectory(current)
                    with self._lock:
                        self._dirtyDirs.add(os.path.dirname(current))
                checked.add(current)
        checked.add(directory)

    def _makeDirectory(self, path: str) -> None:
        """
        Create the directory C{path} with the mode L{umask} gives, whatever
        the process's umask (set through a descriptor: never through a
        link).
        """
        os.mkdir(path, 0o777 & ~self.umask)
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC)
        try:
            os.fchmod(fd, 0o777 & ~self.umask)
        finally:
            os.close(fd)

    def _makeDownloadDirectory(self) -> None:
        """
        Create the download directory and its missing parents, each with
        the mode L{umask} gives.
        """
        missing = []
        path = self.downloadDir
        while not os.path.lexists(path):
            missing.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        for path in reversed(missing):
            try:
                self._makeDirectory(path)
            except FileExistsError:
                pass

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
        try:
            self._makeDownloadDirectory()
            self._realDownloadDir = os.path.realpath(self.downloadDir)
            self._checkLengths()
            redirect = frozenset(
                i
                for i in self._unwanted
                if self.paths[i] is not None and not os.path.lexists(self.paths[i])
            )
            with self._lock:
                self._redirect = redirect
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
                self._makeDirectories(os.path.dirname(path), checked)
                entry = self.layout.files[fileIndex]
                if entry.symlink is not None:
                    links.append(fileIndex)
                    continue
                self._createFile(fileIndex)
                if entry.executable:
                    self._makeExecutable(fileIndex)
            for fileIndex in links:
                self._createSymlink(fileIndex)
            self._openParts()
            if fresh and self.parts.pieces:
                # Files just created whose bytes wait in the parts file (a
                # file made wanted while stopped).
                self._copyFromParts(frozenset(fresh))
                self._freeUnneededSlots()
        except (OSError, OverflowError) as e:
            # OverflowError: a length beyond off_t (2**63) for ftruncate.
            raise StorageError(f"cannot create the torrent's files: {e}") from e
        self._opened = True
        self.log.debug(
            "Opened {count} files under {root}", count=len(self.paths), root=self.root
        )

    def _createFile(self, fileIndex: int) -> None:
        """
        Create file C{fileIndex}, or bring an existing one to its entry's
        length.
        """
        path = self.paths[fileIndex]
        assert path is not None
        length = self.layout.files[fileIndex].length
        if os.path.lexists(path):
            self._checkInside(path)
            if not os.path.isfile(path):
                raise StorageError(f"{path!r} is not a regular file")
            if os.stat(path).st_size == length:
                return
        else:
            with self._lock:
                self._dirtyDirs.add(os.path.dirname(path))
        with self._descriptor(fileIndex, write=True, create=True) as fd:
            if os.fstat(fd).st_size != length:
                os.ftruncate(fd, length)
                with self._lock:
                    self._dirty.add(fileIndex)

    def _makeExecutable(self, fileIndex: int) -> None:
        """
        Give file C{fileIndex} the executable bits wherever it has read
        bits (through its descriptor: never through a link).
        """
        with self._descriptor(fileIndex, write=False) as fd:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            wanted = mode | (mode & 0o444) >> 2
            if wanted != mode:
                os.fchmod(fd, wanted)

    def _createSymlink(self, fileIndex: int) -> None:
        """
        Create the symbolic link of entry C{fileIndex}, if it leads inside
        the torrent's directory; else an empty file, with a warning.

        The target is written relative to the link's real directory, so
        that a directory on the way that is itself a link (inside the
        download directory) cannot make it lead elsewhere; where it leads
        is checked again once it exists, following every link on disk.
        """
        path = self.paths[fileIndex]
        assert path is not None
        entry = self.layout.files[fileIndex]
        realRoot = os.path.realpath(self.root)
        target = os.path.relpath(
            os.path.join(realRoot, *entry.symlink),
            os.path.realpath(os.path.dirname(path)),
        )
        if os.path.islink(path):
            if os.readlink(path) == target:
                return
            # A link holds no data: an old one is replaced.
            os.unlink(path)
        elif os.path.lexists(path):
            if not os.path.isfile(path) or os.path.getsize(path):
                raise StorageError(
                    f"{path!r} is in the way of a symbolic link of the torrent"
                )
            # An empty file: what an earlier run created in its place.
            os.unlink(path)
        os.symlink(target, path)
        with self._lock:
            self._dirtyDirs.add(os.path.dirname(path))
        real = os.path.realpath(path)
        if isWithin(real, realRoot) and real != realRoot:
            return
        os.unlink(path)
        self._createFile(fileIndex)
        problem = (
            f"{path!r}: a symbolic link to {target!r} would lead to {real!r}, "
            f"outside the torrent's directory; an empty file instead"
        )
        self.warnings.append(problem)
        self.log.warn(
            "{torrent}: {problem}", torrent=self.metainfo.name, problem=problem
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
        if self._redirect:
            with _Shared(self):
                self._writeSelected(index, view, size)
            return
        position = 0
        for fileIndex, fileOffset, length in self.layout.slices(index, 0, size):
            if not self.layout.files[fileIndex].padding:
                self._write(fileIndex, fileOffset, view[position : position + length])
            position += length

    def _writeSelected(self, index: int, view: memoryview, size: int) -> None:
        """
        L{writePiece} when some files are redirected to the parts file.
        """
        redirect = self._redirect
        position = 0
        for fileIndex, fileOffset, length in self.layout.slices(index, 0, size):
            part = view[position : position + length]
            if fileIndex in redirect:
                try:
                    self.parts.write(index, position, part)
                except OSError as e:
                    raise StorageError(
                        f"cannot write the parts file {self.parts.path!r}: {e}"
                    ) from e
            elif not self.layout.files[fileIndex].padding:
                self._write(fileIndex, fileOffset, part)
            position += length

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
        if self._redirect:
            with _Shared(self):
                buffer = bytearray(length)
                self._readSlices(slices, memoryview(buffer))
                return bytes(buffer)
        if len(slices) == 1 and not self.layout.files[slices[0][0]].padding:
            # Most blocks lie in one file: one pread, no buffer to copy.
            return self._readBytes(*slices[0])
        buffer = bytearray(length)
        self._readSlices(slices, memoryview(buffer))
        return bytes(buffer)

    def readPiece(self, index: int) -> bytes:
        """
        Read a whole piece.

        @return: as for L{readBlock}.
        """
        return self.readBlock(index, 0, self.layout.pieceSize(index))

    def sync(self) -> None:
        """
        C{fsync} every file written or resized since the last call, and the
        directories L{open} added entries to, so that what
        L{writePiece} wrote before this call survives a crash.

        @raise StorageError: for an I/O failure (the files stay marked for
            the next call).
        """
        if self.parts is not None:
            try:
                self.parts.sync()
            except OSError as e:
                raise StorageError(f"cannot sync the parts file: {e}") from e
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            dirs, self._dirtyDirs = self._dirtyDirs, set()
        pending = sorted(dirty)
        done = 0
        try:
            for fileIndex in pending:
                with self._descriptor(fileIndex, write=False) as fd:
                    os.fsync(fd)
                done += 1
            for directory in sorted(dirs):
                fsyncDirectory(directory)
                dirs.discard(directory)
        except BaseException as e:
            with self._lock:
                self._dirty.update(pending[done:])
                self._dirtyDirs |= dirs
            if isinstance(e, OSError):
                raise StorageError(f"cannot sync: {e}") from e
            raise

    def close(self) -> None:
        """
        Close every open descriptor (waiting for those in use).  The writer
        can be used again afterwards: descriptors are reopened on demand.
        Data not yet L{sync}ed is not flushed to the disk by this.
        """
        with self._available:
            while any(f.users for f in self._pool.values()):
                self._available.wait()
            for entry in self._pool.values():
                os.close(entry.fd)
            self._pool.clear()
        if self.parts is not None:
            self.parts.close()

    # File selection

    @property
    def unwanted(self) -> frozenset:
        """
        The indexes of the unwanted files.
        """
        return self._unwanted

    @property
    def redirected(self) -> frozenset:
        """
        The files whose bytes are kept in the parts file (unwanted, and
        not on disk when opened).
        """
        return self._redirect

    def partsPieces(self) -> frozenset:
        """
        The pieces that have bytes in the parts file.
        """
        if self.parts is None:
            return frozenset()
        return self.parts.pieces

    def _defaultPartsPath(self) -> str:
        return os.path.join(
            self.downloadDir, "." + self.metainfo.infoHash.hex() + ".parts"
        )

    def _openParts(self) -> None:
        path = self.partsPath or self._defaultPartsPath()
        if self.parts is None or self.parts.path != path:
            if self.parts is not None:
                self.parts.close()
            self.parts = PartsFile(
                path, self.layout.pieceLength, self.layout.pieceCount
            )
        self.parts.load()

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

    def _setUnwanted(self, files: frozenset, partsPath: Optional[str]) -> None:
        for index in files:
            if not 0 <= index < len(self.paths):
                raise ValueError(f"file index {index} out of range")
        if partsPath is not None and partsPath != self.partsPath:
            if self._opened and self.parts is not None and self.parts.pieces:
                raise ValueError("the parts file cannot move while in use")
            self.partsPath = partsPath
        with self._lock:
            self._unwanted = files
        if not self._opened:
            return
        if self.parts is None:
            self._openParts()
        leaving = self._redirect - files
        if leaving:
            self._wantAgain(leaving)

    def _wantAgain(self, files: frozenset) -> None:
        """
        Create redirected files that became wanted, and move their bytes
        from the parts file into them, with reads and writes of redirected
        files held back meanwhile.
        """
        with self._gate:
            while self._moving or self._gateUsers:
                self._gate.wait()
            self._moving = True
        try:
            checked: Set[str] = set()
            for fileIndex in sorted(files):
                entry = self.layout.files[fileIndex]
                self._makeDirectories(os.path.dirname(self.paths[fileIndex]), checked)
                if entry.symlink is not None:
                    self._createSymlink(fileIndex)
                    continue
                self._createFile(fileIndex)
                if entry.executable:
                    self._makeExecutable(fileIndex)
            self._copyFromParts(files)
            # The bytes must be on the disk before their slots go.
            for fileIndex in sorted(files):
                if self.layout.files[fileIndex].length:
                    with self._descriptor(fileIndex, write=False) as fd:
                        os.fsync(fd)
            for directory in sorted({os.path.dirname(self.paths[i]) for i in files}):
                fsyncDirectory(directory)
            with self._lock:
                self._redirect = self._redirect - files
            self._freeUnneededSlots()
        except (OSError, OverflowError) as e:
            raise StorageError(f"cannot create the wanted files: {e}") from e
        finally:
            with self._gate:
                self._moving = False
                self._gate.notify_all()

    def _copyFromParts(self, files: frozenset) -> None:
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
                    self._write(fileIndex, fileOffset, memoryview(buffer))
                position += length

    def _freeUnneededSlots(self) -> None:
        """
        Free the slots of pieces that no longer touch a redirected file.
        """
        redirect = self._redirect
        layout = self.layout
        for piece in sorted(self.parts.pieces):
            slices = layout.slices(piece, 0, layout.pieceSize(piece))
            if not any(fileIndex in redirect for fileIndex, _, _ in slices):
                self.parts.free(piece)

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
        if self._redirect:
            with _Shared(self):
                self._readSlices(slices, view)
            return
        self._readSlices(slices, view)

    def fileStats(self) -> List[FileStat]:
        """
        Look at the files as they are now, for fast-resume data.

        Works before L{open} too: nothing is created.

        @return: one entry per file, C{(size, mtime_ns)} for a regular file,
            C{None} for a missing one, something that is not a regular file,
            a padding file or a symbolic link.
        """
        result: List[FileStat] = []
        redirect = self._redirect
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
            with self._descriptor(fileIndex, write=False) as fd:
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

    @property
    def openFileCount(self) -> int:
        """
        How many descriptors are open now.
        """
        with self._lock:
            return len(self._pool)

    # The descriptor pool

    def _descriptor(self, fileIndex: int, write: bool, create: bool = False):
        """
        @return: a context manager giving a descriptor for file C{fileIndex}
            for the duration of the C{with} block.
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
            self._checkInside(path)
            if not os.path.islink(path):
                # Nothing may swap in a link between the check and the open.
                flags |= _O_NOFOLLOW
        elif create:
            self._checkInside(os.path.dirname(path))
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

    # I/O

    def _write(self, fileIndex: int, fileOffset: int, view: memoryview) -> None:
        """
        Write all of C{view} at C{fileOffset} in file C{fileIndex}.
        """
        try:
            with self._descriptor(fileIndex, write=True) as fd:
                while view:
                    written = os.pwrite(fd, view, fileOffset)
                    if written <= 0:
                        raise StorageError(f"short write to file {fileIndex}")
                    view = view[written:]
                    fileOffset += written
        except (OSError, OverflowError) as e:
            raise StorageError(f"cannot write {self.paths[fileIndex]!r}: {e}") from e
        with self._lock:
            self._dirty.add(fileIndex)

    def _readSlices(self, slices: List[Slice], view: memoryview) -> None:
        """
        Read the slices into C{view}, one after the other; padding slices
        are left as they are (the caller's buffer must be zeroed there).
        """
        position = 0
        files = self.layout.files
        redirect = self._redirect
        for fileIndex, fileOffset, length in slices:
            target = view[position : position + length]
            if files[fileIndex].padding:
                target[:] = bytes(length)
            elif redirect and fileIndex in redirect:
                self._readParts(files[fileIndex].offset + fileOffset, target)
            else:
                self._read(fileIndex, fileOffset, target)
            position += length

    def _readParts(self, offset: int, target: memoryview) -> None:
        """
        Fill C{target} with the torrent's bytes from C{offset} as the parts
        file holds them (zeros for pieces it has not).
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

    def _readBytes(self, fileIndex: int, fileOffset: int, length: int) -> bytes:
        """
        Read C{length} bytes at C{fileOffset} in file C{fileIndex} with
        C{pread}, which returns them without an intermediate buffer.

        @raise StorageError: as for L{_read}.
        """
        try:
            with self._descriptor(fileIndex, write=False) as fd:
                data = os.pread(fd, length, fileOffset)
        except (OSError, OverflowError) as e:
            raise StorageError(f"cannot read {self.paths[fileIndex]!r}: {e}") from e
        if len(data) == length:
            return data
        # A short read (the file ends early, or a signal): the slow path
        # finishes the job or says what is wrong.
        buffer = bytearray(length)
        buffer[: len(data)] = data
        self._read(fileIndex, fileOffset + len(data), memoryview(buffer)[len(data) :])
        return bytes(buffer)

    def _read(self, fileIndex: int, fileOffset: int, target: memoryview) -> None:
        """
        Fill C{target} from C{fileOffset} in file C{fileIndex}.

        @raise StorageError: if the file ends early (shorter than its
            entry: changed behind our back) or cannot be read.
        """
        try:
            with self._descriptor(fileIndex, write=False) as fd:
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


class _Shared:
    """
    A read or write of a writer with redirected files, for a C{with} block:
    it waits while bytes move out of the parts file.
    """

    __slots__ = ("writer",)

    def __init__(self, writer: MultiFileWriter) -> None:
        self.writer = writer

    def __enter__(self) -> None:
        writer = self.writer
        with writer._gate:
            while writer._moving:
                writer._gate.wait()
            writer._gateUsers += 1

    def __exit__(self, *exc: object) -> None:
        writer = self.writer
        with writer._gate:
            writer._gateUsers -= 1
            if not writer._gateUsers:
                writer._gate.notify_all()


class _Lease:
    """
    A descriptor borrowed from a L{MultiFileWriter}'s pool for a C{with}
    block.
    """

    __slots__ = ("writer", "fileIndex", "write", "create")

    def __init__(
        self, writer: MultiFileWriter, fileIndex: int, write: bool, create: bool
    ) -> None:
        self.writer = writer
        self.fileIndex = fileIndex
        self.write = write
        self.create = create

    def __enter__(self) -> int:
        return self.writer._acquire(self.fileIndex, self.write, self.create)

    def __exit__(self, *exc: object) -> None:
        self.writer._release(self.fileIndex)


def _pathconf(path: str, name: str, default: int) -> int:
    """
    A limit of the filesystem holding C{path}, or C{default} where the
    platform cannot say.
    """
    try:
        value = os.pathconf(path, name)
    except (AttributeError, ValueError, OSError):  # pragma: no cover (platform)
        return default
    return value if value and value > 0 else default


def _shorten(text: str, limit: int = 120) -> str:
    """
    C{text}, cut in the middle when longer than C{limit} characters.
    """
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "..." + text[-half:]


def writeFileAtomically(path: str, data: bytes) -> None:
    """
    Replace the file at C{path} with C{data} so that a crash at any moment
    leaves either the old file or the new one (see
    L{btorrent.util.statefile.writeAtomically}).

    @raise OSError: for an I/O failure.
    """
    writeAtomically(path, data)
