"""
Safe paths: the one set of rules for the names a torrent gives its files,
used when a torrent is loaded (L{btorrent.codec.metainfo}) and again when
its files are created (C{btorrent.engine.storage}).

A torrent names its files with lists of components under its C{name}.
Each component must be a plain file name: not C{..}, without C{/}, C{\\}
or NUL, and not a drive (C{C:}).  Any of those could lead out of the
download directory (C{\\} and drives on Windows, where a torrent
downloaded here may be seeded from), so a torrent holding one is refused,
and the error names the component.  That is a choice: libtorrent rewrites
such components instead (C{..} becomes C{_}, separators are dropped), which
hides from the user that the torrent was made to escape.

Components that name nothing are dropped, as Transmission does (its bug
5517; libtorrent writes them as C{_}): an empty component and C{.}.  A
path made only of those names no file and is refused.

A component longer than L{MAX_COMPONENT_BYTES} bytes is cut to that length,
keeping a short extension, exactly as libtorrent cuts it (C{file systems
take at most 255 bytes per name}), so that the file gets the name every
libtorrent-based client gives it rather than failing to be created.

A path is bounded in depth (L{MAX_PATH_DEPTH} components below the
torrent's name) and in length (L{MAX_PATH_BYTES} bytes for the name and the
path joined with C{/}): see their comments for the reasons.

L{safeJoin} and L{isWithin} check what the rules cannot see in the names:
where a path leads on disk once symbolic links are followed.

Names are C{str}, decoded from the torrent's bytes as UTF-8 with
C{errors="surrogateescape"} (so that any byte that is not UTF-8 comes back
unchanged on disk); lengths are counted in those bytes.

This module is pure: it never imports C{twisted.internet}.
"""

from __future__ import annotations

import os
import re
from typing import Optional, Sequence, Tuple

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_PATH_BYTES",
    "MAX_PATH_DEPTH",
    "UnsafePathError",
    "checkComponent",
    "componentProblem",
    "cleanComponent",
    "cutComponent",
    "displayPath",
    "isWithin",
    "normalizePath",
    "safeJoin",
    "shownPath",
]

#: The most components a path may have below the torrent's name.  No real
#: torrent comes near (the deepest of the 178 in the conformance corpus has
#: 5, and libtorrent's own v2 parser stops at 100 levels); each level is a
#: directory that storage creates and checks one by one (following links),
#: so a hostile path of 10,000 levels would cost millions of system calls
#: and leave a tree too deep to delete easily.
MAX_PATH_DEPTH = 256
#: The most bytes of the name and the path joined with C{/}: Linux's
#: C{PATH_MAX} is 4096 bytes with the final NUL, so a longer path relative
#: to the download directory can never be opened, wherever that directory
#: is.  (Storage checks the whole path against the file system's own limit
#: before it creates anything.)
MAX_PATH_BYTES = 4095
#: Where a long component is cut: libtorrent's limit (C{sanitize_append_
#: path_element}: 240 bytes, then the extension if it has one of at most 9
#: bytes), below the 255 bytes most file systems take per name.
MAX_COMPONENT_BYTES = 240

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ValueError):
    """
    A path that could lead out of its directory, or names nothing; the
    message names the path and the component.
    """


def displayPath(components: Sequence[str]) -> str:
    """
    A printable C{/}-joined path: bytes that were not UTF-8 show as U+FFFD.
    """
    return "/".join(
        c.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        for c in components
    )


def shownPath(components: Sequence[str], limit: int = 200) -> str:
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


def componentProblem(component: object) -> Optional[str]:
    """
    Why C{component} is not a plain file name, or C{None} if it is one.

    @return: a short phrase such as C{"'..' leads out of its directory"}.
    """
    if not isinstance(component, str):
        return f"{component!r} is not a string"
    if component in ("", "."):
        return f"{component!r} names no file"
    if component == "..":
        return "'..' leads out of its directory"
    shown = shownPath([component])
    for bad, what in (("/", "'/'"), ("\\", "'\\'"), ("\x00", "NUL")):
        if bad in component:
            return f"{shown!r} contains {what}"
    if component[1:2] == ":" and _DRIVE.match(component) is not None:
        return f"{shown!r} is a drive"
    return None


def checkComponent(component: str, where: str) -> None:
    """
    Refuse a path component that is not a plain file name.

    @param component: one name (a file or directory name).
    @param where: the field or path to name in the error.
    @raise UnsafePathError: for an empty name, C{.}, C{..}, a name with
        C{/}, C{\\} or NUL, or a drive such as C{C:}.
    """
    problem = componentProblem(component)
    if problem is not None:
        raise UnsafePathError(f"{where}: unsafe path component: {problem}")


#: Invisible and direction-changing characters, dropped from names as
#: libtorrent drops them: they make a name look like another
#: (C{"gnp.exe"} shown as C{"exe.png"}).
_INVISIBLE = re.compile(
    "[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)

#: Control characters (C0, DEL, C1), shown as C{_} as libtorrent does.
_CONTROL = re.compile("[\x01-\x1f\x7f\x80-\x9f]")


def cleanComponent(component: str) -> str:
    """
    A name as it may be shown and written: invisible and
    direction-changing characters dropped, control characters turned into
    C{_}, then cut to L{MAX_COMPONENT_BYTES} (L{cutComponent}).
    """
    cleaned = _CONTROL.sub("_", _INVISIBLE.sub("", component))
    if not cleaned and component:
        # Nothing visible left: a name still (libtorrent's "_").
        cleaned = "_"
    return cutComponent(cleaned)


def cutComponent(component: str) -> str:
    """
    Cut a component longer than L{MAX_COMPONENT_BYTES} bytes as libtorrent
    does: keep the first whole characters that make at least that many
    bytes, then the extension (from a C{.} within the last 9 bytes), if
    any.

    @return: C{component} itself when it is short enough.
    """
    raw = component.encode("utf-8", "surrogateescape")
    if len(raw) <= MAX_COMPONENT_BYTES:
        return component
    # The first character boundary at or past the limit: a UTF-8
    # continuation byte (10xxxxxx) is never a boundary.
    end = MAX_COMPONENT_BYTES
    while end < len(raw) and raw[end] & 0xC0 == 0x80:
        end += 1
    # libtorrent looks for the extension's dot from the end, within the
    # last 9 bytes and after the start of the last character kept.
    last = end - 1
    while last > 0 and raw[last] & 0xC0 == 0x80:
        last -= 1
    dot = raw.rfind(b".", max(len(raw) - 10, last) + 1)
    cut = raw[:end] + (raw[dot:] if dot != -1 else b"")
    return cut.decode("utf-8", "surrogateescape")


def normalizePath(
    components: Sequence[str], where: str, prefix: Sequence[str] = ()
) -> Tuple[str, ...]:
    """
    The path a torrent gives, as it will be on disk: components that name
    nothing (empty, C{.}) dropped, long ones cut (L{cutComponent}), every
    other one checked, the depth and length bounded.

    @param components: the path's components, outermost first.
    @param where: the field to name in an error.
    @param prefix: components above the path (the torrent's name),
        counted in its length.
    @raise UnsafePathError: for an unsafe component, a path of no
        component that names something, or a path deeper than
        L{MAX_PATH_DEPTH} or longer than L{MAX_PATH_BYTES}.
    """
    kept = [c for c in components if c not in ("", ".")]
    if not kept:
        raise UnsafePathError(
            f"{where}: every path component is empty or '.': the path names no file"
        )
    if len(kept) > MAX_PATH_DEPTH:
        raise UnsafePathError(
            f"{where} {shownPath(kept)!r}: {len(kept)} components, more than "
            f"{MAX_PATH_DEPTH} (no real torrent is that deep)"
        )
    for c in kept:
        problem = componentProblem(c)
        if problem is not None:
            raise UnsafePathError(
                f"{where} {shownPath(kept)!r}: unsafe path component: {problem}"
            )
    path = tuple(cleanComponent(c) for c in kept)
    size = sum(len(c.encode("utf-8", "surrogateescape")) + 1 for c in (*prefix, *path))
    if size - 1 > MAX_PATH_BYTES:
        raise UnsafePathError(
            f"{where} {shownPath(path)!r}: {size - 1} bytes with the name, more "
            f"than {MAX_PATH_BYTES} (no file system opens a longer path)"
        )
    return path


def isWithin(path: str, root: str) -> bool:
    """
    @return: whether C{path} is C{root} or lies beneath it (both already
        resolved with C{os.path.realpath}).
    """
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        # Different drives on Windows, or one relative and one absolute.
        return False


def safeJoin(downloadDir: str, components: Sequence[str]) -> str:
    """
    Join path components under C{downloadDir}, refusing any escape.

    @param downloadDir: the directory everything must stay in.
    @param components: names as in a torrent's file list (possibly
        prefixed with the torrent name).
    @return: the joined path (absolute).
    @raise UnsafePathError: if a component is unsafe (see
        L{checkComponent}) or the result, symlinks resolved, is not strictly
        inside C{downloadDir}.
    """
    if not components:
        raise UnsafePathError("empty path")
    where = f"path {shownPath(components)!r}"
    for c in components:
        checkComponent(c, where)
    root = os.path.abspath(downloadDir)
    joined = os.path.join(root, *components)
    realRoot = os.path.realpath(root)
    realJoined = os.path.realpath(joined)
    if not isWithin(realJoined, realRoot) or realJoined == realRoot:
        raise UnsafePathError(f"{where} resolves outside {downloadDir!r}")
    return joined
