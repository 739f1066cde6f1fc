"""
Torrent metainfo (BEP 3, BEP 12, BEP 47): loading, validating and creating
C{.torrent} files.

L{load} turns the bytes of a C{.torrent} file into a frozen L{Metainfo}; the
info-hash is the SHA-1 of the raw bytes of the C{info} value exactly as they
stand in the file (never of a re-encoding, so a torrent whose keys are out of
order keeps the hash every other client gives it).  Anything wrong with the
input, including bencoding errors, raises L{MetainfoError}, whose message
names the field and the problem.  Bytes after the top-level dictionary (a
trailing newline, say) are ignored, as libtorrent ignores them; the
dictionary itself is strictly checked.  C{private} is true for any non-zero
integer (BEP 27 writes 1; libtorrent takes any non-zero value as private,
and treating a torrent as private when in doubt is the safe side); a
C{private} that is not an integer is refused rather than guessed at.

L{loadFile} reads only a regular file: a FIFO, a socket, a device or a
directory is refused with an L{OSError} before anything is read from it (a
FIFO would block for ever).

Names and paths are C{bytes} in a torrent.  They are decoded as UTF-8 with
C{errors="surrogateescape"}: valid UTF-8 becomes the expected text, and any
other byte becomes a lone surrogate that C{os.fsencode} turns back into the
very same byte on POSIX, so the file on disk gets exactly the name the
torrent gives it.  Printing such a name needs C{errors="replace"} (or
C{backslashreplace}); L{displayPath} does that.

Every C{name} and path component must be a plain file name: not empty, not
C{.} or C{..}, without C{/}, C{\\} or NUL, and not a drive (C{C:}).
L{safeJoin} applies the same rules and also refuses anything that resolves
outside the download directory (through a symlink, say).

L{create} shares a file, or the regular files of a directory tree in sorted
(byte-wise) path order.  It never follows symbolic links inside the tree
(so nothing outside the tree, and no link loop, ends up in a torrent) and
skips FIFOs, sockets and devices, reporting each through its C{warn}
argument; a file that turns into one of those (or into a symlink) between
listing and hashing is refused, never opened in a way that could block.
The piece count and the size of the C{.torrent} are checked before any
hashing.  Pieces are hashed from large reads in a thread pool (C{hashlib}
releases the GIL), pipelined with reading.

This module is pure: it never imports C{twisted.internet}.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from btorrent.codec import bencode

__all__ = [
    "CREATED_BY",
    "MAX_PIECE_COUNT",
    "MAX_PIECE_LENGTH",
    "MAX_TORRENT_SIZE",
    "FileEntry",
    "Metainfo",
    "MetainfoError",
    "autoPieceLength",
    "checkComponent",
    "create",
    "displayPath",
    "load",
    "loadFile",
    "safeJoin",
]

#: The largest C{.torrent} file we read.
MAX_TORRENT_SIZE = 10 * 1024 * 1024
#: The largest piece length we accept (libtorrent's limit too).
MAX_PIECE_LENGTH = 64 * 1024 * 1024
#: The largest number of pieces we accept.
MAX_PIECE_COUNT = 2**21
#: The smallest and largest piece lengths L{create} chooses by itself.
MIN_AUTO_PIECE_LENGTH = 16 * 1024
MAX_AUTO_PIECE_LENGTH = 16 * 1024 * 1024
#: What L{create} writes as C{created by}.
CREATED_BY = "btorrent/0.1.0"

_DRIVE = re.compile(r"^[A-Za-z]:")


class MetainfoError(ValueError):
    """
    A torrent is malformed, unsafe or cannot be created; the message names
    the field (or path) and the problem.
    """


@dataclass(frozen=True)
class FileEntry:
    """
    One file of a torrent.

    @ivar path: path components relative to the torrent root; C{(name,)} for
        a single-file torrent.
    @ivar length: size in bytes.
    @ivar offset: where the file starts within the torrent's byte stream.
    @ivar padding: a BEP 47 padding file, never created on disk.
    """

    path: Tuple[str, ...]
    length: int
    offset: int
    padding: bool = False


@dataclass(frozen=True)
class Metainfo:
    """
    A validated torrent.

    @ivar name: the suggested name of the file or top directory.
    @ivar infoHash: SHA-1 of the raw C{info} bytes (20 bytes).
    @ivar pieceLength: bytes per piece (the last one may be shorter).
    @ivar pieceHashes: one 20-byte SHA-1 per piece.
    @ivar totalLength: the sum of all file lengths, padding included.
    @ivar files: the files, in torrent order.
    @ivar multiFile: C{True} for a torrent with a C{files} list.
    @ivar announce: the C{announce} URL, if any.
    @ivar trackers: BEP 12 tiers of tracker URLs.
    @ivar private: the BEP 27 private flag.
    @ivar urlList: BEP 19 web seeds.
    @ivar comment: free text, if any.
    @ivar creationDate: seconds since the epoch, if given.
    @ivar createdBy: the program that made the torrent, if given.
    @ivar infoBytes: the raw C{info} value.
    """

    name: str
    infoHash: bytes
    pieceLength: int
    pieceHashes: Tuple[bytes, ...]
    totalLength: int
    files: Tuple[FileEntry, ...]
    multiFile: bool
    announce: Optional[str]
    trackers: Tuple[Tuple[str, ...], ...]
    private: bool
    urlList: Tuple[str, ...]
    comment: Optional[str]
    creationDate: Optional[int]
    createdBy: Optional[str]
    infoBytes: bytes

    @property
    def pieceCount(self) -> int:
        """
        The number of pieces.
        """
        return len(self.pieceHashes)

    def pieceSize(self, index: int) -> int:
        """
        The size of piece C{index}: C{pieceLength} except for a short last
        piece.

        @raise IndexError: if there is no such piece.
        """
        if not 0 <= index < len(self.pieceHashes):
            raise IndexError(f"piece index {index} out of range")
        if index == len(self.pieceHashes) - 1:
            return self.totalLength - index * self.pieceLength
        return self.pieceLength


# Loading


def _text(raw: bytes) -> str:
    """
    Decode a name from a torrent, keeping non-UTF-8 bytes recoverable.
    """
    return raw.decode("utf-8", "surrogateescape")


def displayPath(components: Sequence[str]) -> str:
    """
    A printable C{/}-joined path: bytes that were not UTF-8 show as U+FFFD.
    """
    return "/".join(
        c.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        for c in components
    )


def _shownPath(components: Sequence[str], limit: int = 200) -> str:
    """
    L{displayPath} for an error message: a path longer than C{limit}
    characters (a hostile torrent's can be megabytes) is cut in the middle.
    """
    if len(components) > limit:
        components = (
            list(components[: limit // 2]) + ["..."] + list(components[-(limit // 2) :])
        )
    text = displayPath(components)
    if len(text) > limit:
        text = text[: limit // 2] + "..." + text[-(limit // 2) :]
    return text


def _isUnsafe(component: str) -> bool:
    """
    Whether C{component} is not a plain file name (fast check).
    """
    return (
        component in ("", ".", "..")
        or "/" in component
        or "\\" in component
        or "\x00" in component
        or (component[1:2] == ":" and _DRIVE.match(component) is not None)
    )


def checkComponent(component: str, where: str) -> None:
    """
    Refuse a path component that is not a plain file name.

    @param component: one name (a file or directory name).
    @param where: the field or path to name in the error.
    @raise MetainfoError: for an empty name, C{.}, C{..}, a name with C{/},
        C{\\} or NUL, or a drive such as C{C:}.
    """
    if not _isUnsafe(component):
        return
    shown = _shownPath([component])
    if component in ("", ".", ".."):
        raise MetainfoError(f"{where}: unsafe path component {shown!r}")
    for bad, what in (("/", "'/'"), ("\\", "'\\'"), ("\x00", "NUL")):
        if bad in component:
            raise MetainfoError(f"{where}: path component {shown!r} contains {what}")
    raise MetainfoError(f"{where}: path component {shown!r} is a drive")


def safeJoin(downloadDir: str, components: Sequence[str]) -> str:
    """
    Join path components under C{downloadDir}, refusing any escape.

    @param downloadDir: the directory everything must stay in.
    @param components: names as in L{FileEntry.path} (possibly prefixed with
        the torrent name).
    @return: the joined path (absolute).
    @raise MetainfoError: if a component is unsafe (see L{checkComponent}) or
        the result, symlinks resolved, is not strictly inside C{downloadDir}.
    """
    if not components:
        raise MetainfoError("empty path")
    where = f"path {_shownPath(components)!r}"
    for c in components:
        checkComponent(c, where)
    root = os.path.abspath(downloadDir)
    joined = os.path.join(root, *components)
    realRoot = os.path.realpath(root)
    realJoined = os.path.realpath(joined)
    if os.path.commonpath([realRoot, realJoined]) != realRoot or (
        realJoined == realRoot
    ):
        raise MetainfoError(f"{where} resolves outside {downloadDir!r}")
    return joined


def _require(d: dict, key: bytes, kind: type, where: str):
    """
    Get C{d[key]}, which must exist and be of type C{kind}.
    """
    if key not in d:
        raise MetainfoError(f"{where}: missing {key.decode()!r}")
    value = d[key]
    if not isinstance(value, kind):
        raise MetainfoError(
            f"{where}{key.decode()}: expected {_KIND[kind]}, "
            f"got {_KIND.get(type(value), type(value).__name__)}"
        )
    return value


_KIND = {int: "an integer", bytes: "a string", list: "a list", dict: "a dictionary"}


def _optionalText(d: dict, key: bytes) -> Optional[str]:
    """
    A display-only text field: ignored (C{None}) if absent or not a string.
    """
    value = d.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None


def _url(value: object, where: str) -> Optional[str]:
    """
    A tracker URL: a string; empty ones are dropped.
    """
    if not isinstance(value, bytes):
        raise MetainfoError(f"{where}: expected a string")
    text = value.decode("utf-8", "replace").strip()
    return text or None


def _trackers(top: dict) -> Tuple[Optional[str], Tuple[Tuple[str, ...], ...]]:
    """
    The C{announce} URL and the BEP 12 tiers.
    """
    announce = None
    if b"announce" in top:
        announce = _url(top[b"announce"], "announce")
    tiers: List[Tuple[str, ...]] = []
    if b"announce-list" in top:
        raw = top[b"announce-list"]
        if not isinstance(raw, list):
            raise MetainfoError("announce-list: expected a list of lists")
        seen = set()
        for i, tier in enumerate(raw):
            if not isinstance(tier, list):
                raise MetainfoError(f"announce-list[{i}]: expected a list")
            urls = []
            for j, value in enumerate(tier):
                url = _url(value, f"announce-list[{i}][{j}]")
                if url is not None and url not in seen:
                    seen.add(url)
                    urls.append(url)
            if urls:
                tiers.append(tuple(urls))
    if not tiers and announce is not None:
        tiers = [(announce,)]
    return announce, tuple(tiers)


def _urlList(top: dict) -> Tuple[str, ...]:
    """
    BEP 19 web seeds: a string or a list of strings; anything else ignored.
    """
    raw = top.get(b"url-list")
    if isinstance(raw, bytes):
        raw = [raw]
    if not isinstance(raw, list):
        return ()
    return tuple(
        u.decode("utf-8", "replace") for u in raw if isinstance(u, bytes) and u
    )


def _components(entry: dict, where: str) -> Tuple[str, ...]:
    """
    The path of one entry of C{files}, preferring C{path.utf-8}.
    """
    raw = _require(entry, b"path", list, where)
    if b"path.utf-8" in entry:
        raw = _require(entry, b"path.utf-8", list, where)
    if not raw:
        raise MetainfoError(f"{where}path: empty path")
    out = []
    for j, part in enumerate(raw):
        if not isinstance(part, bytes):
            raise MetainfoError(f"{where}path[{j}]: expected a string")
        out.append(_text(part))
    for c in out:
        if _isUnsafe(c):
            checkComponent(c, f"{where}path {_shownPath(out)!r}")
    return tuple(out)


def _length(d: dict, where: str) -> int:
    """
    A non-negative C{length}.
    """
    length = _require(d, b"length", int, where)
    if length < 0:
        raise MetainfoError(f"{where}length: negative ({length})")
    return length


def _files(info: dict, name: str) -> Tuple[Tuple[FileEntry, ...], bool]:
    """
    The file list of C{info} and whether the torrent is multi-file.
    """
    hasLength = b"length" in info
    hasFiles = b"files" in info
    if hasLength and hasFiles:
        raise MetainfoError("info: both 'length' and 'files' present")
    if not hasLength and not hasFiles:
        raise MetainfoError("info: neither 'length' nor 'files' present")
    if hasLength:
        return (FileEntry((name,), _length(info, "info."), 0, False),), False
    raw = _require(info, b"files", list, "info.")
    if not raw:
        raise MetainfoError("info.files: empty list")
    files = []
    offset = 0
    # (path, index) of every file that is not padding, for _checkConflicts.
    real: List[Tuple[Tuple[str, ...], int]] = []
    for i, entry in enumerate(raw):
        if type(entry) is not dict:
            raise MetainfoError(f"info.files[{i}]: expected a dictionary")
        # The fast path for well-formed entries; the slow one names the
        # problem.
        length = entry.get(b"length")
        if type(length) is not int or length < 0:
            length = _length(entry, f"info.files[{i}].")
        parts = entry.get(b"path.utf-8", entry.get(b"path"))
        if (
            b"path" in entry
            and type(parts) is list
            and parts
            and all(type(p) is bytes for p in parts)
        ):
            path = tuple([p.decode("utf-8", "surrogateescape") for p in parts])
            for c in path:
                if _isUnsafe(c):
                    checkComponent(c, f"info.files[{i}].path {_shownPath(path)!r}")
        else:
            path = _components(entry, f"info.files[{i}].")
        attr = entry.get(b"attr")
        padding = type(attr) is bytes and b"p" in attr
        if not padding:
            real.append((path, i))
        files.append(FileEntry(path, length, offset, padding))
        offset += length
    _checkConflicts(real)
    return tuple(files), True


def _checkConflicts(paths: List[Tuple[Tuple[str, ...], int]]) -> None:
    """
    Refuse a path given twice, or given as a file and also as a directory
    (a prefix of another path).

    In sorted order a path is followed by its duplicates and then by the
    paths beneath it, so comparing neighbours finds every conflict in
    O(n log n) comparisons and no more memory, where collecting every
    directory prefix would cost the square of a path's depth (a 10 MB
    torrent can hold a path of millions of components).

    @param paths: C{(path, index in files)} of the files that are not
        padding; sorted in place.
    @raise MetainfoError: for the conflict whose later file comes first in
        the torrent, naming that file as a sequential check would.
    """
    paths.sort()
    found: Optional[Tuple[int, str]] = None
    for (path, i), (following, j) in zip(paths, paths[1:]):
        n = len(path)
        if len(following) < n or following[:n] != path:
            continue
        if len(following) == n:
            conflict = (
                j,
                f"info.files[{j}].path {_shownPath(path)!r}: duplicate path",
            )
        elif i < j:
            conflict = (
                j,
                f"info.files[{j}].path {_shownPath(following)!r}: "
                f"{_shownPath(path)!r} is also a file",
            )
        else:
            conflict = (
                i,
                f"info.files[{i}].path {_shownPath(path)!r}: also a directory",
            )
        if found is None or conflict[0] < found[0]:
            found = conflict
    if found is not None:
        raise MetainfoError(found[1])


def load(data: bytes) -> Metainfo:
    """
    Parse and validate the bytes of a C{.torrent} file.

    @param data: the whole file.
    @raise MetainfoError: for anything malformed or unsafe (bencoding errors
        included), naming the field and the problem.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MetainfoError(f"expected bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_TORRENT_SIZE:
        raise MetainfoError(
            f"torrent file too large: {len(data)} bytes "
            f"(at most {MAX_TORRENT_SIZE})"
        )
    try:
        # Whatever follows the top-level dictionary is ignored (libtorrent
        # loads such files); the info-hash is over the raw info span anyway.
        top, spans, _ = bencode.decodePrefixWithSpans(data)
    except bencode.BencodeError as e:
        raise MetainfoError(f"not a valid bencoded torrent: {e}") from None
    if not isinstance(top, dict):
        raise MetainfoError("torrent: expected a dictionary at the top level")
    info = _require(top, b"info", dict, "torrent: ")
    start, end = spans[b"info"]
    infoBytes = data[start:end]

    rawName = _require(info, b"name", bytes, "info.")
    if b"name.utf-8" in info:
        rawName = _require(info, b"name.utf-8", bytes, "info.")
    name = _text(rawName)
    checkComponent(name, f"info.name {_shownPath([name])!r}")

    pieceLength = _require(info, b"piece length", int, "info.")
    if pieceLength <= 0:
        raise MetainfoError(f"info.piece length: not positive ({pieceLength})")
    if pieceLength > MAX_PIECE_LENGTH:
        raise MetainfoError(
            f"info.piece length: {pieceLength} is above {MAX_PIECE_LENGTH}"
        )
    pieces = _require(info, b"pieces", bytes, "info.")
    if len(pieces) % 20:
        raise MetainfoError(
            f"info.pieces: length {len(pieces)} is not a multiple of 20"
        )

    files, multiFile = _files(info, name)
    totalLength = sum(f.length for f in files)
    if totalLength == 0:
        raise MetainfoError("info: total length is 0 (no data)")
    expected = -(-totalLength // pieceLength)
    if expected > MAX_PIECE_COUNT:
        raise MetainfoError(
            f"info.pieces: {expected} pieces, more than {MAX_PIECE_COUNT}"
        )
    if len(pieces) // 20 != expected:
        raise MetainfoError(
            f"info.pieces: {len(pieces) // 20} hashes for {expected} pieces "
            f"({totalLength} bytes in pieces of {pieceLength})"
        )
    pieceHashes = tuple(pieces[i : i + 20] for i in range(0, len(pieces), 20))

    # BEP 27 writes 1; libtorrent takes any non-zero integer as private, and
    # so do we: announcing a private torrent's peers to the DHT would be the
    # harm, keeping to its tracker never is.  A non-integer is refused.
    private = info.get(b"private")
    if private is not None and not isinstance(private, int):
        raise MetainfoError("info.private: expected an integer")
    announce, trackers = _trackers(top)
    creationDate = top.get(b"creation date")
    if not isinstance(creationDate, int):
        creationDate = None
    return Metainfo(
        name=name,
        infoHash=hashlib.sha1(infoBytes).digest(),
        pieceLength=pieceLength,
        pieceHashes=pieceHashes,
        totalLength=totalLength,
        files=files,
        multiFile=multiFile,
        announce=announce,
        trackers=trackers,
        private=bool(private),
        urlList=_urlList(top),
        comment=_optionalText(top, b"comment"),
        creationDate=creationDate,
        createdBy=_optionalText(top, b"created by"),
        infoBytes=infoBytes,
    )


def _kind(mode: int) -> str:
    """
    What a file that is not a regular file is, for an error message.
    """
    for test, kind in [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]:
        if test(mode):
            return kind
    return "a special file"


def _notRegular(path: str, mode: int) -> OSError:
    """
    The L{OSError} for C{path}, which is not a regular file: its C{strerror}
    says what it is.
    """
    code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
    return OSError(code, f"not a regular file ({_kind(mode)})", path)


def _openRegular(path: str, noFollow: bool = False) -> int:
    """
    Open C{path} for reading, refusing anything but a regular file without
    ever blocking: a FIFO with no writer would block C{open} and C{read}
    for ever.

    C{path} is checked with C{stat} first (so a device is not even opened),
    then opened with C{O_NONBLOCK} and checked again with C{fstat}, since
    it may have been replaced in between.

    @param noFollow: refuse a symbolic link (C{O_NOFOLLOW}).
    @return: a file descriptor, in blocking mode.
    @raise OSError: if C{path} cannot be opened or is not a regular file.
    """
    mode = (os.lstat if noFollow else os.stat)(path).st_mode
    if not stat.S_ISREG(mode):
        raise _notRegular(path, mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if noFollow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _notRegular(path, mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def loadFile(path: str) -> Metainfo:
    """
    Read and L{load} a C{.torrent} file.

    @raise OSError: if the file cannot be read, or is not a regular file (a
        FIFO, a socket, a device, a directory: refused before anything is
        read, so that nothing blocks); C{strerror} names the problem.
    @raise MetainfoError: if it is larger than L{MAX_TORRENT_SIZE} or invalid.
    """
    with open(_openRegular(path), "rb") as f:
        data = f.read(MAX_TORRENT_SIZE + 1)
    return load(data)


# Creating


def autoPieceLength(totalLength: int) -> int:
    """
    A piece length for C{totalLength} bytes: the smallest power of two that
    gives at most 2000 pieces (so usually 1000 to 2000), between 16 KiB and
    16 MiB.
    """
    target = max(1, -(-totalLength // 2000))
    length = 1 << max(0, (target - 1).bit_length())
    return min(MAX_AUTO_PIECE_LENGTH, max(MIN_AUTO_PIECE_LENGTH, length))


def _walk(
    root: str, warn: Optional[Callable[[str], object]] = None
) -> List[Tuple[Tuple[str, ...], str, int]]:
    """
    The regular files under C{root}, recursively, in sorted path order.

    Symbolic links are never followed (neither to files nor to directories),
    and special files (FIFOs, sockets, devices) are skipped: the torrent holds
    what is really in the tree, and nothing outside it.

    Special files are skipped rather than refused, and reported through
    C{warn}: that is what mktorrent and transmission-create do (they leave
    out everything that is neither a file nor a directory), so a user who
    shares a tree with a stray socket or FIFO in it (a running program's,
    say) gets the torrent they expect, and is told what was left out.
    Symbolic links are skipped silently, as they always have been.

    @param warn: called with a one-line message for each special file
        skipped.
    @return: C{(components, fullPath, size)} for each file.
    """
    out = []
    stack: List[Tuple[str, ...]] = [()]
    while stack:
        rel = stack.pop()
        directory = os.path.join(root, *rel)
        try:
            entries = list(os.scandir(directory))
        except OSError as e:
            raise MetainfoError(f"cannot list {directory}: {e.strerror or e}") from None
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel + (entry.name,))
            elif stat.S_ISREG(st.st_mode):
                out.append((rel + (entry.name,), entry.path, st.st_size))
            elif not stat.S_ISLNK(st.st_mode) and warn is not None:
                warn(f"skipping {entry.path}: {_kind(st.st_mode)}, not a regular file")
    out.sort(key=lambda item: [os.fsencode(c) for c in item[0]])
    return out


def _chunks(
    files: Sequence[Tuple[str, int]],
    chunkSize: int,
    pool: List[bytearray],
    noFollow: bool = False,
) -> Iterator[memoryview]:
    """
    The concatenated contents of C{files} in chunks of C{chunkSize} bytes
    (the last one shorter).

    Each chunk is read into a buffer taken from C{pool} (or a new one when
    the pool is empty); the consumer gives buffers back to C{pool} when it
    is done with them, so that big buffers are reused rather than allocated
    (and page-faulted) again for every chunk.

    Each file is opened through L{_openRegular}, so that one replaced by a
    FIFO (or a device) since it was listed is refused instead of blocking
    the hashing for ever.

    @param noFollow: refuse a file that is a symbolic link (in a tree).
    @raise MetainfoError: if a file is shorter than when it was listed.
    @raise OSError: if a file cannot be opened, or is no longer a regular
        file.
    """

    def take() -> memoryview:
        return memoryview(pool.pop() if pool else bytearray(chunkSize))

    view = take()
    filled = 0
    for path, size in files:
        remaining = size
        with open(_openRegular(path, noFollow), "rb", buffering=0) as f:
            while remaining:
                want = min(chunkSize - filled, remaining)
                got = f.readinto(view[filled : filled + want])
                if not got:
                    raise MetainfoError(f"{path}: file shrank while hashing")
                filled += got
                remaining -= got
                if filled == chunkSize:
                    yield view
                    view = take()
                    filled = 0
    if filled:
        yield view[:filled]


def _hashChunk(chunk: memoryview, pieceLength: int) -> bytes:
    """
    The concatenated SHA-1 digests of the pieces in C{chunk}.
    """
    sha1 = hashlib.sha1
    return b"".join(
        sha1(chunk[i : i + pieceLength]).digest()
        for i in range(0, len(chunk), pieceLength)
    )


def _hashFiles(
    files: Sequence[Tuple[str, int]],
    totalLength: int,
    pieceLength: int,
    progress: Optional[Callable[[int, int], object]],
    noFollow: bool = False,
) -> bytes:
    """
    Hash the concatenation of C{files} piece by piece.

    Reading (in chunks of whole pieces, at least 8 MiB) is pipelined with
    hashing in a thread pool: C{hashlib} releases the GIL, so reading the
    next chunk and hashing the previous ones run at the same time.
    """
    piecesPerChunk = max(1, (8 * 1024 * 1024) // pieceLength)
    chunkSize = piecesPerChunk * pieceLength
    workers = max(2, os.cpu_count() or 1)
    done = 0
    digests = []
    pending: deque = deque()
    buffers: List[bytearray] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def collect() -> None:
            nonlocal done
            future, chunk = pending.popleft()
            digests.append(future.result())
            done += len(chunk)
            if len(chunk) == chunkSize:
                buffers.append(chunk.obj)
            if progress is not None:
                progress(done, totalLength)

        for chunk in _chunks(files, chunkSize, buffers, noFollow):
            pending.append((pool.submit(_hashChunk, chunk, pieceLength), chunk))
            while len(pending) > workers + 1:
                collect()
        while pending:
            collect()
    if done != totalLength:
        raise MetainfoError("files changed while hashing")
    return b"".join(digests)


def _utf8(text: str) -> bytes:
    """
    Text from the command line as UTF-8, undecodable bytes kept as they were.
    """
    return text.encode("utf-8", "surrogateescape")


def _sizeOption(n: int) -> str:
    """
    A piece length as C{--piece-length} takes it: C{256K}, C{4M}.
    """
    return f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"


def _checkLimits(top: dict, totalLength: int, pieceLength: int, automatic: bool) -> int:
    """
    Check, before any hashing, that the torrent will have at most
    L{MAX_PIECE_COUNT} pieces and be at most L{MAX_TORRENT_SIZE} bytes (the
    most L{load}, and other clients, read).

    The size is exact: C{top} is the whole torrent with C{pieceLength} and
    an empty C{info.pieces}, which will hold 20 bytes per piece.

    @param automatic: the piece length was chosen by L{autoPieceLength}; a
        larger one that fits is then taken instead of failing.
    @return: the piece length to use.
    @raise MetainfoError: if the piece length is too small (naming the
        smallest that fits) or no piece length fits (too many files).
    """
    skeleton = len(bencode.encode(top)) - len(b"0:")

    def problem(length: int) -> Optional[str]:
        count = -(-totalLength // length)
        if count > MAX_PIECE_COUNT:
            return f"{count} pieces, more than {MAX_PIECE_COUNT}"
        digits = len(str(length)) - len(str(pieceLength))
        size = skeleton + digits + len(f"{20 * count}:") + 20 * count
        if size > MAX_TORRENT_SIZE:
            return (
                f"the torrent would be {size} bytes, more than the "
                f"{MAX_TORRENT_SIZE} a client loads ({count} pieces)"
            )
        return None

    reason = problem(pieceLength)
    if reason is None:
        return pieceLength
    larger = pieceLength * 2
    while larger <= MAX_PIECE_LENGTH and problem(larger) is not None:
        larger *= 2
    if larger > MAX_PIECE_LENGTH:
        raise MetainfoError(
            f"{reason} even with pieces of {MAX_PIECE_LENGTH} bytes: "
            f"too many files or too much data for one torrent"
        )
    if automatic:
        return larger
    raise MetainfoError(
        f"piece length {pieceLength}: {reason}; choose a larger "
        f"--piece-length (at least {_sizeOption(larger)})"
    )


def create(
    path: str,
    trackers: Sequence[Sequence[str]],
    pieceLength: Optional[int] = None,
    private: bool = False,
    comment: Optional[str] = None,
    progress: Optional[Callable[[int, int], object]] = None,
    warn: Optional[Callable[[str], object]] = None,
) -> bytes:
    """
    Create a torrent for a file or a directory tree.

    A directory becomes a multi-file torrent of the regular files beneath
    it, in sorted path order (symlinks and special files are skipped).
    The piece count and the torrent's size are checked before any data is
    read.

    @param path: the file or directory.
    @param trackers: BEP 12 tiers of tracker URLs; the first URL is also
        C{announce}; C{announce-list} is written when there is more than one.
    @param pieceLength: a power of two from 16 KiB to 64 MiB, or C{None} to
        choose one (L{autoPieceLength}, or larger if the torrent would
        otherwise exceed L{MAX_PIECE_COUNT} or L{MAX_TORRENT_SIZE}).
    @param private: set the BEP 27 private flag.
    @param comment: an optional comment.
    @param progress: called as C{progress(bytesHashed, totalBytes)} as
        hashing advances.
    @param warn: called with a one-line message for each special file
        (FIFO, socket, device) skipped in a directory tree.
    @return: the bytes of the C{.torrent} file.
    @raise MetainfoError: for a missing path, a path that is neither a
        regular file nor a directory, no data, an unsafe name, a bad piece
        length, or a piece length too small for the limits (before hashing).
    @raise OSError: if a file cannot be read, or is no longer a regular file
        when it is hashed.
    """
    path = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise MetainfoError(f"{path}: {e.strerror or e}") from None
    name = os.path.basename(path)
    checkComponent(name, f"name of {path}")
    if stat.S_ISREG(st.st_mode):
        multiFile = False
        listing = [((name,), path, st.st_size)]
    elif stat.S_ISDIR(st.st_mode):
        multiFile = True
        listing = _walk(path, warn)
        if not listing:
            raise MetainfoError(f"{path}: no files in directory")
        for components, full, _ in listing:
            for c in components:
                checkComponent(c, full)
    else:
        raise MetainfoError(
            f"{path}: {_kind(st.st_mode)}, not a regular file or directory"
        )
    totalLength = sum(size for _, _, size in listing)
    if totalLength == 0:
        raise MetainfoError(f"{path}: no data (total size is 0)")

    automatic = pieceLength is None
    if pieceLength is None:
        pieceLength = autoPieceLength(totalLength)
    elif (
        not isinstance(pieceLength, int)
        or pieceLength < MIN_AUTO_PIECE_LENGTH
        or pieceLength > MAX_PIECE_LENGTH
        or pieceLength & (pieceLength - 1)
    ):
        raise MetainfoError(
            f"piece length {pieceLength!r}: must be a power of two "
            f"from {MIN_AUTO_PIECE_LENGTH} to {MAX_PIECE_LENGTH}"
        )

    info: dict = {
        b"name": os.fsencode(name),
        b"piece length": pieceLength,
        b"pieces": b"",
    }
    if multiFile:
        info[b"files"] = [
            {b"length": size, b"path": [os.fsencode(c) for c in components]}
            for components, _, size in listing
        ]
    else:
        info[b"length"] = totalLength
    if private:
        info[b"private"] = 1

    top: dict = {
        b"created by": CREATED_BY,
        b"creation date": int(time.time()),
        b"info": info,
    }
    tiers = [[_utf8(u) for u in tier if u] for tier in trackers]
    tiers = [tier for tier in tiers if tier]
    if tiers:
        top[b"announce"] = tiers[0][0]
        if sum(len(tier) for tier in tiers) > 1:
            top[b"announce-list"] = tiers
    if comment:
        top[b"comment"] = _utf8(comment)

    # Before hashing: a piece length that is too small would otherwise show
    # only once all the data has been read.
    pieceLength = _checkLimits(top, totalLength, pieceLength, automatic)
    info[b"piece length"] = pieceLength

    info[b"pieces"] = _hashFiles(
        [(full, size) for _, full, size in listing],
        totalLength,
        pieceLength,
        progress,
        noFollow=multiFile,
    )
    return bencode.encode(top)
