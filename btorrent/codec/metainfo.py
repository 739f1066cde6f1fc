"""
Torrent metainfo (BEP 3, BEP 12, BEP 19, BEP 47, BEP 52 hybrids): loading,
validating and creating C{.torrent} files.

L{load} turns the bytes of a C{.torrent} file into a frozen L{Metainfo}; the
info-hash is the SHA-1 of the raw bytes of the C{info} value exactly as they
stand in the file (never of a re-encoding, so a torrent whose keys are out of
order keeps the hash every other client gives it).  Bytes after the
top-level dictionary (a trailing newline, say) are ignored, as libtorrent
ignores them; the dictionary itself is strictly bencoded.

Torrents are read the way libtorrent reads them (a test holds btorrent to
libtorrent over 178 torrents from other projects' test suites):

  - The fields a download needs (C{info}, C{name}, C{piece length},
    C{pieces}, each file's C{length} and C{path}) are strict: anything
    wrong raises L{MetainfoError}, whose message names the field and the
    problem.
  - A malformed optional field (C{announce}, C{announce-list}, C{url-list},
    C{comment}, C{created by}, C{creation date}, C{name.utf-8},
    C{path.utf-8}, C{attr}, C{symlink path}) costs that field, or the bad
    part of it, not the torrent: it is ignored with a one-line warning in
    L{Metainfo.warnings}.  C{private} is true for any non-zero integer
    (BEP 27 writes 1; libtorrent takes any non-zero value as private); a
    C{private} that is not an integer makes the torrent private, with a
    warning, since keeping a private torrent's peers off the DHT is the
    safe side.
  - BEP 47 file attributes: a pad file (C{attr} with C{p}, or BitComet's
    old C{_____padding_file_} names, as libtorrent takes them) is
    flagged L{FileEntry.padding}: never created, its bytes zeros; it needs
    no C{path}.  A symbolic link (C{l}, with C{symlink path}) takes no room
    in the torrent (its C{length}, if any, is ignored, as libtorrent
    ignores it) and has L{FileEntry.symlink}, its target relative to the
    torrent's directory; a target that would leave that directory is
    dropped with a warning (the entry becomes an empty file).  C{x} sets
    L{FileEntry.executable}, C{h} L{FileEntry.hidden}.
  - A hybrid torrent (BEP 52 v2 metadata next to the v1 C{pieces} and
    C{files}) loads in v1 mode (L{Metainfo.hybrid}); a v2-only torrent is
    refused: "BitTorrent v2-only torrents are not supported yet".
  - Paths follow L{btorrent.codec.safepath}: a component that could lead
    out of the download directory (C{..}, C{/}, C{\\}, NUL, a drive) is
    refused, naming it; empty and C{.} components are dropped; names longer
    than 240 bytes are cut as libtorrent cuts them; depth and length are
    bounded.

L{loadFile} reads only a regular file: a FIFO, a socket, a device or a
directory is refused with an L{OSError} before anything is read from it (a
FIFO would block for ever).

Names and paths are C{bytes} in a torrent.  They are decoded as UTF-8 with
C{errors="surrogateescape"}: valid UTF-8 becomes the expected text, and any
other byte becomes a lone surrogate that C{os.fsencode} turns back into the
very same byte on POSIX, so the file on disk gets exactly the name the
torrent gives it.  Printing such a name needs C{errors="replace"} (or
C{backslashreplace}); L{displayPath} does that.

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
from dataclasses import dataclass, replace
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from btorrent.codec import bencode
from btorrent.codec.safepath import (
    MAX_PATH_BYTES,
    MAX_PATH_DEPTH,
    UnsafePathError,
    checkComponent,
    cleanComponent,
    displayPath,
    normalizePath,
    shownPath,
)
from btorrent.util.readfile import readAtMost

__all__ = [
    "CREATED_BY",
    "MAX_PIECE_COUNT",
    "MAX_PIECE_LENGTH",
    "MAX_TORRENT_SIZE",
    "MAX_TRACKERS",
    "MAX_WARNINGS",
    "V2_ONLY",
    "FileEntry",
    "Metainfo",
    "MetainfoError",
    "autoPieceLength",
    "create",
    "displayPath",
    "load",
    "loadFile",
]

#: The largest C{.torrent} file we read.
MAX_TORRENT_SIZE = 10 * 1024 * 1024
#: The largest piece length we accept.  Not libtorrent's limit (it takes up
#: to 536,854,528 bytes, 512 MiB less 16 KiB): btorrent assembles every
#: piece in memory before it checks and writes it, keeping at least four
#: pieces in flight, so 512 MiB pieces would need gigabytes of memory per
#: torrent.  64 MiB is well above what torrent makers choose (libtorrent,
#: mktorrent and Transmission pick at most 16 MiB by themselves).
MAX_PIECE_LENGTH = 64 * 1024 * 1024
#: The largest number of pieces we accept.
MAX_PIECE_COUNT = 2**21
#: The most tracker URLs taken from a torrent (all tiers) or a magnet link;
#: the rest are ignored.  Each is announced to, and on failure retried: a
#: torrent listing C{http://10.0.0.5:1..65535/announce} would have the
#: daemon connect to every port of that host every half hour.
MAX_TRACKERS = 100
#: The most warnings a torrent's L{Metainfo.warnings} holds; more are
#: counted in a last one.
MAX_WARNINGS = 20
#: The error for a torrent with BEP 52 metadata only.
V2_ONLY = "BitTorrent v2-only torrents are not supported yet"
#: The smallest and largest piece lengths L{create} chooses by itself.
MIN_AUTO_PIECE_LENGTH = 16 * 1024
MAX_AUTO_PIECE_LENGTH = 16 * 1024 * 1024
#: What L{create} writes as C{created by}.
CREATED_BY = "btorrent/0.1.0"
#: What BitComet's pad files are called (before BEP 47's C{attr}):
#: libtorrent takes any path containing it for a pad file.
_OLD_PAD_NAME = "_____padding_file_"


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
    @ivar length: size in bytes (0 for a symbolic link).
    @ivar offset: where the file starts within the torrent's byte stream.
    @ivar padding: a BEP 47 padding file, never created on disk: its bytes
        are zeros.
    @ivar symlink: for a BEP 47 symbolic link, the target's path
        components relative to the torrent root (never leaving it); else
        C{None}.
    @ivar executable: BEP 47 C{x}: the file is created executable.
    @ivar hidden: BEP 47 C{h} (nothing to do on POSIX).
    """

    path: Tuple[str, ...]
    length: int
    offset: int
    padding: bool = False
    symlink: Optional[Tuple[str, ...]] = None
    executable: bool = False
    hidden: bool = False


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
    @ivar warnings: one line for each malformed optional field that was
        ignored (at most L{MAX_WARNINGS}): for the user to see.
    @ivar hybrid: the torrent also holds BEP 52 (v2) metadata, not used.
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
    warnings: Tuple[str, ...] = ()
    hybrid: bool = False

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


class _Warnings:
    """
    The warnings of one load: at most L{MAX_WARNINGS} lines, then a count
    (a hostile torrent can hold a million bad tracker URLs).
    """

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.more = 0

    def add(self, line: str) -> None:
        """
        Record one warning.
        """
        if len(self.lines) < MAX_WARNINGS:
            self.lines.append(line)
        else:
            self.more += 1

    def result(self) -> Tuple[str, ...]:
        """
        @return: the warnings for L{Metainfo.warnings}.
        """
        if self.more:
            return tuple(self.lines) + (f"... and {self.more} more warnings",)
        return tuple(self.lines)


def _text(raw: bytes) -> str:
    """
    Decode a name from a torrent, keeping non-UTF-8 bytes recoverable.
    """
    return raw.decode("utf-8", "surrogateescape")


_KIND = {int: "an integer", bytes: "a string", list: "a list", dict: "a dictionary"}


def _kindOf(value: object) -> str:
    """
    What C{value} is, for a message.
    """
    return _KIND.get(type(value), type(value).__name__)


def _require(d: dict, key: bytes, kind: type, where: str):
    """
    Get C{d[key]}, which must exist and be of type C{kind}.
    """
    if key not in d:
        raise MetainfoError(f"{where}: missing {key.decode()!r}")
    value = d[key]
    if not isinstance(value, kind):
        raise MetainfoError(
            f"{where}{key.decode()}: expected {_KIND[kind]}, got {_kindOf(value)}"
        )
    return value


def _optionalText(d: dict, key: bytes, warnings: _Warnings) -> Optional[str]:
    """
    A display-only text field: C{None} if absent; ignored with a warning if
    not a string.
    """
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    warnings.add(f"{key.decode()}: expected a string, got {_kindOf(value)}; ignored")
    return None


def _url(value: object) -> Optional[str]:
    """
    A tracker or web seed URL from a string, stripped; C{None} when empty.
    """
    assert isinstance(value, bytes)
    text = value.decode("utf-8", "replace").strip()
    return text or None


def _trackers(
    top: dict, warnings: _Warnings
) -> Tuple[Optional[str], Tuple[Tuple[str, ...], ...]]:
    """
    The C{announce} URL and the BEP 12 tiers, as libtorrent reads them:
    tiers that are not lists and URLs that are not strings are skipped
    (with a warning), empty URLs and duplicates dropped; C{announce} is the
    only tier when C{announce-list} gives none.
    """
    announce = None
    raw = top.get(b"announce")
    if isinstance(raw, bytes):
        announce = _url(raw)
    elif raw is not None:
        warnings.add(f"announce: expected a string, got {_kindOf(raw)}; ignored")
    tiers: List[Tuple[str, ...]] = []
    raw = top.get(b"announce-list")
    if raw is not None and not isinstance(raw, list):
        warnings.add(
            f"announce-list: expected a list of lists, got {_kindOf(raw)}; ignored"
        )
    elif raw is not None:
        seen: set = set()
        badTiers = badURLs = beyond = 0
        for tier in raw:
            if not isinstance(tier, list):
                badTiers += 1
                continue
            urls = []
            for value in tier:
                if not isinstance(value, bytes):
                    badURLs += 1
                    continue
                url = _url(value)
                if url is not None and url not in seen:
                    if len(seen) >= MAX_TRACKERS:
                        beyond += 1
                        continue
                    seen.add(url)
                    urls.append(url)
            if urls:
                tiers.append(tuple(urls))
        if beyond:
            warnings.add(
                f"announce-list: {beyond} trackers beyond the first "
                f"{MAX_TRACKERS}; ignored"
            )
        if badTiers:
            warnings.add(
                f"announce-list: {badTiers} of {len(raw)} tiers are not lists; "
                f"ignored"
            )
        if badURLs:
            warnings.add(f"announce-list: {badURLs} URLs are not strings; ignored")
    if not tiers and announce is not None:
        tiers = [(announce,)]
    return announce, tuple(tiers)


def _urlList(top: dict, warnings: _Warnings) -> Tuple[str, ...]:
    """
    BEP 19 web seeds: a string or a list of strings; empty ones dropped,
    anything else ignored with a warning.
    """
    raw = top.get(b"url-list")
    if raw is None:
        return ()
    if isinstance(raw, bytes):
        raw = [raw]
    if not isinstance(raw, list):
        warnings.add(
            f"url-list: expected a string or a list, got {_kindOf(raw)}; ignored"
        )
        return ()
    urls = []
    bad = 0
    for value in raw:
        if not isinstance(value, bytes):
            bad += 1
            continue
        url = _url(value)
        if url is not None and url not in urls:
            urls.append(url)
    if bad:
        warnings.add(f"url-list: {bad} URLs are not strings; ignored")
    return tuple(urls)


def _creationDate(top: dict, warnings: _Warnings) -> Optional[int]:
    """
    C{creation date}: an integer, else ignored with a warning.
    """
    value = top.get(b"creation date")
    if value is None or isinstance(value, int):
        return value
    warnings.add(f"creation date: expected an integer, got {_kindOf(value)}; ignored")
    return None


def _private(info: dict, warnings: _Warnings) -> bool:
    """
    The BEP 27 flag: any non-zero integer; anything else but an integer is
    taken as private (the safe side), with a warning.
    """
    value = info.get(b"private")
    if value is None or isinstance(value, int):
        return bool(value)
    warnings.add(
        f"info.private: expected an integer, got {_kindOf(value)}; "
        f"the torrent is taken as private"
    )
    return True


def _attributes(d: dict, where: str, warnings: _Warnings) -> bytes:
    """
    The BEP 47 C{attr} letters of a file entry (C{b""} if none, or
    ignored with a warning if not a string).
    """
    attr = d.get(b"attr")
    if attr is None or isinstance(attr, bytes):
        return attr or b""
    warnings.add(f"{where}attr: expected a string, got {_kindOf(attr)}; ignored")
    return b""


def _name(info: dict, warnings: _Warnings) -> str:
    """
    The torrent's name, preferring a well-formed C{name.utf-8}.
    """
    raw = _require(info, b"name", bytes, "info.")
    utf8 = info.get(b"name.utf-8")
    if isinstance(utf8, bytes):
        raw = utf8
    elif utf8 is not None:
        warnings.add(
            f"info.name.utf-8: expected a string, got {_kindOf(utf8)}; "
            f"'name' used instead"
        )
    name = _text(raw)
    try:
        checkComponent(name, f"info.name {shownPath([name])!r}")
    except UnsafePathError as e:
        raise MetainfoError(str(e)) from None
    return cleanComponent(name)


def _length(d: dict, where: str) -> int:
    """
    A non-negative C{length}.
    """
    length = _require(d, b"length", int, where)
    if length < 0:
        raise MetainfoError(f"{where}length: negative ({length})")
    return length


def _rawPath(entry: dict, where: str, warnings: _Warnings) -> Optional[List[str]]:
    """
    The components of one entry of C{files} as they stand (C{path.utf-8}
    when it is a list, else C{path}), or C{None} when it has neither.
    """
    raw = entry.get(b"path.utf-8")
    if raw is not None and not isinstance(raw, list):
        warnings.add(
            f"{where}path.utf-8: expected a list, got {_kindOf(raw)}; "
            f"'path' used instead"
        )
        raw = None
    field = "path.utf-8"
    if raw is None:
        if b"path" not in entry:
            return None
        raw = _require(entry, b"path", list, where)
        field = "path"
    out = []
    for j, part in enumerate(raw):
        if not isinstance(part, bytes):
            raise MetainfoError(
                f"{where}{field}[{j}]: expected a string, got {_kindOf(part)}"
            )
        out.append(_text(part))
    return out


#: Anything in components joined with NUL that needs a closer look: an
#: empty, C{.} or C{..} component, a separator, something like a drive, a
#: component that may be long enough to be cut, a control character or an
#: invisible or direction-changing one (see L{safepath.cleanComponent}).
_UNUSUAL = re.compile(
    r"(?:^|\x00)(?:\.{0,2}(?:\x00|$)|.:)|[/\\]|[^\x00]{61}"
    "|[\x01-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]",
    re.DOTALL,
)


def _path(raw: List[str], name: str, index: int) -> Tuple[str, ...]:
    """
    The normalised path of a file (see L{normalizePath}).
    """
    if len(raw) <= MAX_PATH_DEPTH:
        # The fast path for well-formed entries: one regular expression
        # over the components joined with NUL (which no component may hold).
        joined = "\x00".join(raw)
        if (
            len(joined) + len(name) < MAX_PATH_BYTES // 4
            and joined.count("\x00") == len(raw) - 1
            and _UNUSUAL.search(joined) is None
        ):
            return tuple(raw)
    try:
        return normalizePath(raw, f"info.files[{index}].path", prefix=(name,))
    except UnsafePathError as e:
        raise MetainfoError(str(e)) from None


def _entry(
    entry: dict, index: int, offset: int, name: str, warnings: _Warnings
) -> FileEntry:
    """
    One entry of C{files} at C{offset}, with its BEP 47 attributes.
    """
    where = f"info.files[{index}]."
    flags = _attributes(entry, where, warnings)
    symlink = b"l" in flags
    padding = b"p" in flags
    if symlink:
        # A link takes no room in the torrent, whatever its 'length' says
        # (libtorrent lays it out so, and needs no 'length').
        length = 0
    else:
        length = _length(entry, where)
    parts = _rawPath(entry, where, warnings)
    if parts is None:
        if not padding:
            raise MetainfoError(f"{where}: missing 'path'")
        # A pad file needs no path: it is never on disk.
        path: Tuple[str, ...] = (".pad", str(length))
    elif padding:
        # Never on disk: any path will do, a safe one is kept for show.
        try:
            path = normalizePath(parts, f"{where}path", prefix=(name,))
        except UnsafePathError:
            path = (".pad", str(length))
    else:
        path = _path(parts, name, index)
        padding = _OLD_PAD_NAME in "/".join(path)
    target = None
    if symlink and not padding:
        target = _symlinkTarget(entry, path, where, warnings)
    return FileEntry(
        path, length, offset, padding, target, b"x" in flags, b"h" in flags
    )


def _symlinkTarget(
    entry: dict,
    path: Tuple[str, ...],
    where: str,
    warnings: _Warnings,
) -> Optional[Tuple[str, ...]]:
    """
    The target of a BEP 47 symbolic link, relative to the torrent root, or
    C{None} (with a warning) when it is missing, malformed, or would leave
    the torrent's directory: the entry is then an empty file.
    """
    raw = entry.get(b"symlink path")
    shown = shownPath(path)
    if not isinstance(raw, list) or not all(isinstance(p, bytes) for p in raw):
        what = "missing" if raw is None else "not a list of strings"
        warnings.add(f"{where}symlink path of {shown!r}: {what}; an empty file instead")
        return None
    try:
        target = normalizePath([_text(p) for p in raw], f"{where}symlink path")
    except UnsafePathError as e:
        warnings.add(f"{e}; {shown!r} becomes an empty file")
        return None
    if target == path:
        warnings.add(
            f"{where}symlink path: {shown!r} points to itself; an empty file instead"
        )
        return None
    return target


def _files(
    info: dict, name: str, warnings: _Warnings
) -> Tuple[Tuple[FileEntry, ...], bool]:
    """
    The file list of C{info} and whether the torrent is multi-file.
    """
    if b"files" not in info:
        if b"length" not in info:
            raise MetainfoError("info: neither 'length' nor 'files' present")
        length = _length(info, "info.")
        flags = _attributes(info, "info.", warnings)
        if b"l" in flags:
            raise MetainfoError(
                "info.attr: a single-file torrent that is a symbolic link "
                "holds no data"
            )
        entry = FileEntry(
            (name,),
            length,
            0,
            padding=b"p" in flags,
            executable=b"x" in flags,
            hidden=b"h" in flags,
        )
        return (entry,), False
    raw = _require(info, b"files", list, "info.")
    if b"length" in info:
        # libtorrent goes by 'files' alone.
        warnings.add("info: both 'length' and 'files' present; 'length' ignored")
    if not raw:
        raise MetainfoError("info.files: empty list")
    files = []
    offset = 0
    # (path, index) of every file that is not padding, for _checkConflicts.
    real: List[Tuple[Tuple[str, ...], int]] = []
    for i, entry in enumerate(raw):
        if type(entry) is not dict:
            raise MetainfoError(f"info.files[{i}]: expected a dictionary")
        parts = entry.get(b"path")
        length = entry.get(b"length")
        if (
            b"attr" not in entry
            and type(length) is int
            and length >= 0
            and type(parts) is list
            and b"path.utf-8" not in entry
            and all([type(p) is bytes for p in parts])
        ):
            # The fast path for well-formed entries of plain files.
            path = _path([_text(p) for p in parts], name, i)
            padding = _OLD_PAD_NAME in "/".join(path)
            if not padding:
                real.append((path, i))
            files.append(FileEntry(path, length, offset, padding))
        else:
            entry = _entry(entry, i, offset, name, warnings)
            if not entry.padding:
                real.append((entry.path, i))
            files.append(entry)
            length = entry.length
        offset += length
    _checkConflicts(real)
    if any(f.symlink is not None for f in files):
        files = _resolveLinks(files)
    return tuple(files), True


def _resolveLinks(files: List[FileEntry]) -> List[FileEntry]:
    """
    Read symbolic link targets as libtorrent reads them: relative to the
    torrent's root when that names a file or directory of the torrent,
    else relative to the link's own directory when that does (as macOS
    framework bundles write them: C{Versions/Current} -> C{A}), else
    relative to the root all the same.  Either way the target stays
    inside the torrent's directory.

    Directories are kept in a tree of dictionaries, so that the cost is in
    proportion to the number of components, however deep the paths.
    """
    tree: dict = {}
    paths = set()
    for f in files:
        if f.padding:
            continue
        paths.add(f.path)
        node = tree
        for component in f.path[:-1]:
            node = node.setdefault(component, {})

    def exists(path: Tuple[str, ...]) -> bool:
        if path in paths:
            return True
        node = tree
        for component in path:
            node = node.get(component)
            if node is None:
                return False
        return True

    out = []
    for f in files:
        if f.symlink is not None and not exists(f.symlink):
            beside = f.path[:-1] + f.symlink
            if f.path[:-1] and beside != f.path and exists(beside):
                f = replace(f, symlink=beside)
        out.append(f)
    return out


def _checkConflicts(paths: List[Tuple[Tuple[str, ...], int]]) -> None:
    """
    Refuse a path given twice, or given as a file and also as a directory
    (a prefix of another path).

    In sorted order a path is followed by its duplicates and then by the
    paths beneath it, so comparing neighbours finds every conflict in
    O(n log n) comparisons and no more memory, where collecting every
    directory prefix would cost the square of a path's depth.

    Duplicates are refused as Transmission refuses them; libtorrent renames
    the second file instead (C{foo.1.txt}), which gives the user a file the
    torrent never named.

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
                f"info.files[{j}].path {shownPath(path)!r}: duplicate path",
            )
        elif i < j:
            conflict = (
                j,
                f"info.files[{j}].path {shownPath(following)!r}: "
                f"{shownPath(path)!r} is also a file",
            )
        else:
            conflict = (
                i,
                f"info.files[{i}].path {shownPath(path)!r}: also a directory",
            )
        if found is None or conflict[0] < found[0]:
            found = conflict
    if found is not None:
        raise MetainfoError(found[1])


def _isV2Only(info: dict) -> bool:
    """
    Whether C{info} holds BEP 52 metadata and no v1 C{pieces}.
    """
    return b"pieces" not in info and (b"meta version" in info or b"file tree" in info)


def load(data: bytes) -> Metainfo:
    """
    Parse and validate the bytes of a C{.torrent} file.

    @param data: the whole file.
    @raise MetainfoError: for anything malformed or unsafe in the fields a
        download needs (bencoding errors included), naming the field and
        the problem; for a v2-only torrent, L{V2_ONLY}.
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
    if _isV2Only(info):
        raise MetainfoError(V2_ONLY)
    warnings = _Warnings()

    name = _name(info, warnings)
    pieceLength = _require(info, b"piece length", int, "info.")
    if pieceLength <= 0:
        raise MetainfoError(f"info.piece length: not positive ({pieceLength})")
    if pieceLength > MAX_PIECE_LENGTH:
        raise MetainfoError(
            f"info.piece length: {pieceLength} is above {MAX_PIECE_LENGTH}, "
            f"the most btorrent takes (it holds whole pieces in memory)"
        )
    pieces = _require(info, b"pieces", bytes, "info.")
    if len(pieces) % 20:
        raise MetainfoError(
            f"info.pieces: length {len(pieces)} is not a multiple of 20"
        )

    files, multiFile = _files(info, name, warnings)
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

    private = _private(info, warnings)
    announce, trackers = _trackers(top, warnings)
    urlList = _urlList(top, warnings)
    comment = _optionalText(top, b"comment", warnings)
    createdBy = _optionalText(top, b"created by", warnings)
    creationDate = _creationDate(top, warnings)
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
        private=private,
        urlList=urlList,
        comment=comment,
        creationDate=creationDate,
        createdBy=createdBy,
        infoBytes=infoBytes,
        warnings=warnings.result(),
        hybrid=b"meta version" in info or b"file tree" in info,
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
        data = readAtMost(f, MAX_TORRENT_SIZE)
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


def _checkCreated(component: str, where: str) -> None:
    """
    L{checkComponent} for a name L{create} is to write into a torrent.

    @raise MetainfoError: for a name no client could safely create.
    """
    try:
        checkComponent(component, where)
    except UnsafePathError as e:
        raise MetainfoError(str(e)) from None


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
    _checkCreated(name, f"name of {path}")
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
                _checkCreated(c, full)
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
