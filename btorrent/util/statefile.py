"""
State files: JSON with a version field, written so that a crash at any
moment leaves a loadable file, with the previous copy kept as C{.bak}.

Writing: the new content goes to a unique temporary file beside the target,
is flushed and C{fsync}ed; the current file (if any) is hard-linked to
C{NAME.bak} (replacing the old backup atomically); the temporary file is
renamed over C{NAME}; the directory is C{fsync}ed.  At every instant C{NAME}
is either the old or the new content, and C{NAME.bak} is a complete older
copy.

Reading: C{NAME} if it parses and passes the caller's check, else
C{NAME.bak}; the reason the main file was refused is returned for the log.
Never pickle.  Nothing here imports C{twisted.internet}; the writes block on
the disk, so callers run them in a thread.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, Optional, Tuple

from btorrent.util.readfile import readAtMost

__all__ = [
    "MAX_STATE_SIZE",
    "StateFileError",
    "fsyncDirectory",
    "readState",
    "removeTemporaries",
    "writeAtomically",
    "writeState",
]

#: State files larger than this are refused unread.
MAX_STATE_SIZE = 256 * 1024 * 1024

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class StateFileError(ValueError):
    """
    A state file that cannot be used (neither it nor its backup).
    """


def fsyncDirectory(directory: str) -> None:
    """
    C{fsync} a directory so that entries created or renamed in it survive a
    crash (a no-op where directories cannot be opened, or when it is gone).
    """
    try:
        fd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
    except (PermissionError, IsADirectoryError, FileNotFoundError):
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def writeAtomically(path: str, data: bytes, backup: bool = False) -> None:
    """
    Replace the file at C{path} with C{data}, crash-safely (see the module
    docstring); with C{backup}, the file being replaced becomes
    C{path + ".bak"}.

    On any failure the temporary file is removed and C{path} is as it was.

    @raise OSError: for an I/O failure.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(
        dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if backup and os.path.exists(path):
            _linkBackup(path, directory)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    fsyncDirectory(directory)


def _linkBackup(path: str, directory: str) -> None:
    """
    Make C{path + ".bak"} another name of the current C{path}, replacing the
    old backup in one rename.
    """
    staging = os.path.join(
        directory,
        f"{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}.bak.tmp",
    )
    try:
        os.link(path, staging)
    except OSError:
        # No hard links here (some filesystems): copy instead.
        with open(path, "rb") as source, open(staging, "wb") as target:
            target.write(source.read())
            target.flush()
            os.fsync(target.fileno())
    os.replace(staging, path + ".bak")


def removeTemporaries(path: str) -> int:
    """
    Remove the temporary files a writer of C{path} killed mid-save left
    beside it (never C{path} or its backup).

    @return: how many were removed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    prefix = os.path.basename(path) + "."
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if name.startswith(prefix) and name.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, name))
                removed += 1
            except OSError:
                pass
    return removed


def writeState(path: str, state: Any, version: int) -> None:
    """
    Write C{state} (JSON-able) with its C{version}, atomically, keeping the
    previous file as C{.bak}.
    """
    document = {"version": version, **state}
    data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
    writeAtomically(path, data, backup=True)


def _load(path: str, version: int, check: Callable[[dict], None]) -> dict:
    size = os.path.getsize(path)
    if size > MAX_STATE_SIZE:
        raise StateFileError(f"{size} bytes, more than {MAX_STATE_SIZE}")
    with open(path, "rb") as f:
        data = readAtMost(f, MAX_STATE_SIZE)
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise StateFileError(f"not JSON ({e})") from None
    if not isinstance(document, dict):
        raise StateFileError("not a JSON object")
    found = document.get("version")
    if found != version:
        raise StateFileError(f"version {found!r}, not {version}")
    check(document)
    return document


def readState(
    path: str, version: int, check: Callable[[dict], None] = lambda d: None
) -> Tuple[Optional[dict], Optional[str]]:
    """
    Read a state file, falling back to its backup.

    @param check: raises L{StateFileError} (or C{ValueError}) for a document
        that parses but cannot be used.
    @return: C{(document, problem)}: the document (C{None} if there is no
        usable file at all, e.g. on first start), and why the main file was
        not used (C{None} if it was, or if neither exists).
    """
    problems = []
    for candidate in (path, path + ".bak"):
        if not os.path.exists(candidate):
            problems.append(f"{os.path.basename(candidate)} is missing")
            continue
        try:
            document = _load(candidate, version, check)
        except (OSError, ValueError) as e:
            problems.append(f"{os.path.basename(candidate)}: {e}")
            continue
        return document, (None if candidate == path else problems[0])
    if not os.path.exists(path) and not os.path.exists(path + ".bak"):
        return None, None
    raise StateFileError("; ".join(problems))
