"""
Benchmark: how fast L{btorrent.engine.resume.recheck} hashes a 1 GiB torrent.

Writes a multi-file torrent (1 GiB by default, files of uneven sizes, 1 MiB
pieces) once into a temporary directory through
L{btorrent.engine.storage.MultiFileWriter}, then rechecks it:

  - B{warm}: the data is in the page cache (right after writing);
  - B{cold}: after C{fsync} and C{posix_fadvise(DONTNEED)} on every file,
    which drops its clean pages from the cache, so the disk is read;
  - B{fresh}: the same torrent just opened in an empty directory (sparse
    files, nothing written), which a new torrent without resume data meets.

The temporary directory is removed at the end.

Run: C{python benchmarks/bench_recheck.py [--size-mib 1024]
[--piece-kib 1024] [--threads N] [--chunk-mib 2] [--dir PATH]}.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from btorrent.codec.metainfo import FileEntry  # noqa: E402
from btorrent.engine.resume import recheck  # noqa: E402
from btorrent.engine.storage import MultiFileWriter  # noqa: E402


@dataclass(frozen=True)
class Metainfo:
    """
    The parts of C{btorrent.codec.metainfo.Metainfo} storage and recheck use.
    """

    name: str
    pieceLength: int
    pieceHashes: Tuple[bytes, ...]
    totalLength: int
    files: Tuple[FileEntry, ...]
    multiFile: bool


def build(directory: str, size: int, pieceLength: int) -> Tuple[Metainfo, float]:
    """
    Write a torrent of C{size} bytes into C{directory}.

    @return: its metainfo and the write rate in MB/s.
    """
    rng = random.Random(1)
    lengths = []
    left = size
    while left > 0:
        n = min(left, rng.randrange(1, 200) * 1024 * 1024 + rng.randrange(0, 99999))
        lengths.append(n)
        left -= n
    files = []
    offset = 0
    for i, n in enumerate(lengths):
        files.append(FileEntry((f"dir{i % 3}", f"file{i}.bin"), n, offset))
        offset += n
    pool = rng.randbytes(64 * 1024 * 1024 + pieceLength)
    pieceCount = -(-size // pieceLength)

    def piece(i: int) -> memoryview:
        start = (i * 7919 * 4099) % (len(pool) - pieceLength)
        length = min(pieceLength, size - i * pieceLength)
        return memoryview(pool)[start : start + length]

    hashes = tuple(hashlib.sha1(piece(i)).digest() for i in range(pieceCount))
    meta = Metainfo("bench", pieceLength, hashes, size, tuple(files), True)
    writer = MultiFileWriter(meta, directory)
    writer.open()
    started = time.perf_counter()
    for i in range(pieceCount):
        writer.writePiece(i, piece(i))
    writer.sync()
    elapsed = time.perf_counter() - started
    writer.close()
    return meta, size / elapsed / 1e6


def dropCache(writer: MultiFileWriter) -> None:
    """
    Ask the kernel to forget the cached pages of every file.
    """
    for path in writer.paths:
        if path is None:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timeRecheck(writer, meta, threads, chunkSize) -> Tuple[float, float]:
    """
    @return: the recheck rate in MB/s (checking every piece passed) and the
        CPU time it took per GiB, in seconds, all threads together (a
        figure that other processes competing for the CPUs do not skew).
    """
    started = time.perf_counter()
    cpuStarted = time.process_time()
    result = recheck(writer, meta, threads=threads, chunkSize=chunkSize)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpuStarted
    if not all(result):
        raise SystemExit(f"recheck failed {result.count(False)} pieces")
    return meta.totalLength / elapsed / 1e6, cpu / (meta.totalLength / 2**30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--piece-kib", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--chunk-mib", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where to write the data")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    size = options.size_mib * 1024 * 1024
    directory = tempfile.mkdtemp(prefix="bench-recheck-", dir=options.dir)
    try:
        meta, writeRate = build(directory, size, options.piece_kib * 1024)
        print(
            f"{options.size_mib} MiB, {len(meta.files)} files, "
            f"{len(meta.pieceHashes)} pieces of {options.piece_kib} KiB, "
            f"{os.cpu_count()} CPUs"
        )
        print(f"write (writePiece + sync): {writeRate:8.0f} MB/s")
        writer = MultiFileWriter(meta, directory)
        chunk = options.chunk_mib * 1024 * 1024
        for cache in ["warm", "cold"]:
            for run in range(options.runs):
                if cache == "cold":
                    dropCache(writer)
                rate, cpu = timeRecheck(writer, meta, options.threads, chunk)
                print(
                    f"recheck, {cache} cache #{run + 1}: {rate:8.0f} MB/s "
                    f"({cpu:.2f} CPU s/GiB, load {os.getloadavg()[0]:.1f})"
                )
        writer.close()
        fresh = tempfile.mkdtemp(prefix="bench-recheck-fresh-", dir=options.dir)
        try:
            empty = MultiFileWriter(meta, fresh)
            empty.open()
            started = time.perf_counter()
            result = recheck(empty, meta, threads=options.threads, chunkSize=chunk)
            elapsed = time.perf_counter() - started
            empty.close()
            if any(result):
                raise SystemExit("a fresh torrent has pieces")
            print(
                f"recheck of the same torrent freshly opened (sparse, never "
                f"written): {elapsed * 1000:.1f} ms"
            )
        finally:
            shutil.rmtree(fresh)
        started = time.perf_counter()
        for i in range(min(256, len(meta.pieceHashes))):
            hashlib.sha1(writer.readPiece(i)).digest()
        elapsed = time.perf_counter() - started
        done = min(256, len(meta.pieceHashes)) * meta.pieceLength
        print(
            f"for comparison, readPiece + sha1 one piece at a time, warm: "
            f"{done / elapsed / 1e6:8.0f} MB/s"
        )
        writer.close()
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
