"""
L{readAtMost}: read a whole small file, refusing one too large, without
allocating the limit.

C{f.read(limit + 1)} asks the allocator for C{limit + 1} bytes before it
reads anything: for a 64 MiB limit, a C{mmap} and a C{munmap} per file.
Reading ten thousand 150-byte resume files that way cost 34 microseconds
each, against 10 for a read of the file's size.
"""

from __future__ import annotations

import os
from typing import BinaryIO

__all__ = ["readAtMost"]


def readAtMost(f: BinaryIO, limit: int) -> bytes:
    """
    Read the rest of the open file C{f} if it holds at most C{limit}
    bytes.

    @return: its bytes; more than C{limit} of them (C{limit + 1}) if the
        file is larger, for the caller to refuse.
    """
    try:
        size = os.fstat(f.fileno()).st_size - f.tell()
    except (OSError, ValueError, AttributeError):
        size = limit
    if size > limit:
        return f.read(limit + 1)
    data = f.read(max(size, 0) + 1)
    if len(data) <= size:
        return data
    # It grew since the fstat (or is not a regular file): read on, bounded.
    return data + f.read(limit + 1 - len(data))
