"""
Where a torrent's files go under its download directory, and their
creation.

L{FileTree} computes every file's path, checks each one lexically and on
disk (symbolic links resolved) and against the filesystem's limits, and
creates the directories and files with the modes its C{umask} gives:
sparse files at their entry's length, the BEP 47 executable bits and
symbolic links.  It does not import C{twisted.internet}.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Any, List, Optional, Set

from twisted.logger import Logger

from btorrent.codec.safepath import isWithin
from btorrent.engine.filelayout import FileLayout, StorageError, checkComponent
from btorrent.engine.filepool import FilePool

__all__ = ["FileTree"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class FileTree:
    """
    A torrent's paths under its download directory.

    A single-file torrent lives at C{downloadDir/name}; a multi-file torrent
    at C{downloadDir/name/<path...>}.  Padding files have no path.

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
    less C{umask} (C{DEFAULT_UMASK}: C{rw-r--r--} and C{rwxr-xr-x}), set
    explicitly, so that the process's umask does not matter; what already
    exists keeps its mode.

    @ivar downloadDir: the download directory (absolute).
    @ivar root: the torrent's directory (C{downloadDir} for a single-file
        torrent).
    @ivar paths: the absolute path of each file (C{None} for padding).
    @ivar warnings: one line for each symbolic link that could not be
        created as such, most recent last.
    @ivar umask: the bits taken away from the modes of what is created.
    """

    def __init__(
        self,
        metainfo: Any,
        layout: FileLayout,
        downloadDir: str,
        umask: int,
        log: Logger,
    ) -> None:
        """
        @param metainfo: uses C{name}, C{multiFile}.
        @param layout: the torrent's L{FileLayout}.
        @param downloadDir: the directory holding the torrent's data.
        @param umask: the permission bits taken away from the modes of the
            files (C{0o666}) and directories (C{0o777}) it creates.
        @param log: where a symbolic link refused is logged.
        @raise StorageError: for a name or path component that could escape
            the download directory.
        """
        self.metainfo = metainfo
        self.layout = layout
        self.umask = umask
        self.log = log
        self.downloadDir = os.path.abspath(downloadDir)
        checkComponent(metainfo.name)
        if metainfo.multiFile:
            self.root = os.path.join(self.downloadDir, metainfo.name)
        else:
            if len(layout.files) != 1:
                raise StorageError("a single-file torrent must have one file")
            self.root = self.downloadDir
        self.paths: List[Optional[str]] = []
        for entry in layout.files:
            if entry.padding:
                self.paths.append(None)
                continue
            if metainfo.multiFile:
                if not entry.path:
                    raise StorageError("a file with an empty path")
                for component in entry.path:
                    checkComponent(component)
                self.paths.append(os.path.join(self.root, *entry.path))
            else:
                self.paths.append(os.path.join(self.downloadDir, metainfo.name))
        self.warnings: List[str] = []
        self._realDownloadDir: Optional[str] = None
        self._lock = threading.Lock()
        self._changedDirs: Set[str] = set()

    # Checks

    def _realBase(self) -> str:
        """
        @return: the real path of the download directory.
        """
        if self._realDownloadDir is None:
            self._realDownloadDir = os.path.realpath(self.downloadDir)
        return self._realDownloadDir

    def resolveBase(self) -> None:
        """
        Look again at where the download directory really is (once it
        exists).
        """
        self._realDownloadDir = os.path.realpath(self.downloadDir)

    def checkInside(self, path: str) -> None:
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

    def checkLengths(self) -> None:
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

    # Directories

    def takeChangedDirectories(self) -> Set[str]:
        """
        @return: the directories that got entries since the last call
            (forgotten here: give back those not synced with
            L{markChanged}).
        """
        with self._lock:
            dirs, self._changedDirs = self._changedDirs, set()
        return dirs

    def markChanged(self, directories) -> None:
        """
        These directories got entries: the next sync must C{fsync} them.
        """
        with self._lock:
            self._changedDirs.update(directories)

    def makeDirectories(self, directory: str, checked: Set[str]) -> None:
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
                    self.checkInside(current)
                    if not os.path.isdir(current):
                        raise StorageError(f"{current!r} is not a directory")
                else:
                    self._makeDirectory(current)
                    self.markChanged((os.path.dirname(current),))
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

    def makeDownloadDirectory(self) -> None:
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

    # Files

    def create(self, fileIndex: int, pool: FilePool, checked: Set[str]) -> bool:
        """
        Create entry C{fileIndex} and its directories: a file (with the
        executable bits its entry asks for) or, for a symbolic link,
        nothing yet.

        @param checked: the directories already made or checked.
        @return: whether it is a symbolic link, to be made with
            L{createSymlink} once every file exists.
        """
        path = self.paths[fileIndex]
        assert path is not None
        self.makeDirectories(os.path.dirname(path), checked)
        entry = self.layout.files[fileIndex]
        if entry.symlink is not None:
            return True
        self._createFile(fileIndex, pool)
        if entry.executable:
            self._makeExecutable(fileIndex, pool)
        return False

    def _createFile(self, fileIndex: int, pool: FilePool) -> None:
        """
        Create file C{fileIndex}, or bring an existing one to its entry's
        length.
        """
        path = self.paths[fileIndex]
        assert path is not None
        length = self.layout.files[fileIndex].length
        if os.path.lexists(path):
            self.checkInside(path)
            if not os.path.isfile(path):
                raise StorageError(f"{path!r} is not a regular file")
            if os.stat(path).st_size == length:
                return
        else:
            self.markChanged((os.path.dirname(path),))
        with pool.lease(fileIndex, write=True, create=True) as fd:
            if os.fstat(fd).st_size != length:
                os.ftruncate(fd, length)
                pool.markWritten(fileIndex)

    def _makeExecutable(self, fileIndex: int, pool: FilePool) -> None:
        """
        Give file C{fileIndex} the executable bits wherever it has read
        bits (through its descriptor: never through a link).
        """
        with pool.lease(fileIndex, write=False) as fd:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            wanted = mode | (mode & 0o444) >> 2
            if wanted != mode:
                os.fchmod(fd, wanted)

    def createSymlink(self, fileIndex: int, pool: FilePool) -> None:
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
        self.markChanged((os.path.dirname(path),))
        real = os.path.realpath(path)
        if isWithin(real, realRoot) and real != realRoot:
            return
        os.unlink(path)
        self._createFile(fileIndex, pool)
        problem = (
            f"{path!r}: a symbolic link to {target!r} would lead to {real!r}, "
            f"outside the torrent's directory; an empty file instead"
        )
        self.warnings.append(problem)
        self.log.warn(
            "{torrent}: {problem}", torrent=self.metainfo.name, problem=problem
        )


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
