"""
Benchmarks for L{btorrent.codec.metainfo}.

    python benchmarks/bench_metainfo.py [--size-mib 1024] [--profile]

1. L{metainfo.create} on a 1 GiB file of real (non-sparse) data, written to
   a temporary directory and deleted afterwards: reports GB/s, warm cache
   (the file was just written) and, for comparison, plain SHA-1 over the
   same bytes in one thread.
2. L{metainfo.load} of a 10,000-file, 100,000-piece torrent (target:
   under 0.5 s), with the time spent in L{bencode.decodeWithSpans} shown
   apart; C{--profile} prints a cProfile of the load.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time

from btorrent.codec import bencode, metainfo


def cpuTime() -> float:
    """
    CPU seconds used by this process so far (all threads, user + system).
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def benchCreate(sizeMiB: int) -> None:
    """
    Time L{metainfo.create} on a file of C{sizeMiB} MiB.
    """
    tmp = tempfile.mkdtemp(prefix="bench_metainfo_")
    try:
        path = os.path.join(tmp, "big.bin")
        block = os.urandom(16 * 1024 * 1024)
        with open(path, "wb") as f:
            for i in range(sizeMiB // 16):
                # Vary each block so that no two pieces are equal.
                f.write(i.to_bytes(8, "big") + block[8:])
            f.write(block[: (sizeMiB % 16) * 1024 * 1024])
        size = os.path.getsize(path)

        cpu = cpuTime()
        start = time.perf_counter()
        data = metainfo.create(path, [["http://127.0.0.1:6969/announce"]])
        elapsed = time.perf_counter() - start
        cpu = cpuTime() - cpu
        m = metainfo.load(data)
        print(
            f"create: {size / 2**30:.2f} GiB in {elapsed:.3f} s = "
            f"{size / elapsed / 1e9:.2f} GB/s, {cpu:.2f} CPU s "
            f"({m.pieceCount} pieces of {m.pieceLength // 1024} KiB, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})"
        )

        cpu = cpuTime()
        start = time.perf_counter()
        h = hashlib.sha1()
        view = memoryview(block)
        for _ in range(size // len(block)):
            h.update(view)
        elapsed = time.perf_counter() - start
        cpu = cpuTime() - cpu
        print(
            f"  reference, sha1 in one thread over as many bytes in memory: "
            f"{size / elapsed / 1e9:.2f} GB/s, {cpu:.2f} CPU s"
        )
    finally:
        shutil.rmtree(tmp)


def bigTorrent(fileCount: int = 10000, pieceCount: int = 100000) -> bytes:
    """
    A valid torrent with C{fileCount} files and C{pieceCount} pieces of
    16 KiB, in nested directories.
    """
    pieceLength = 16384
    total = pieceCount * pieceLength
    base = total // fileCount
    files = []
    for i in range(fileCount):
        length = base if i < fileCount - 1 else total - base * (fileCount - 1)
        files.append(
            {
                b"length": length,
                b"path": [b"dir%03d" % (i // 100), b"sub", b"file-%05d.dat" % i],
            }
        )
    info = {
        b"name": b"bench",
        b"piece length": pieceLength,
        b"pieces": os.urandom(20 * pieceCount),
        b"files": files,
    }
    return bencode.encode(
        {b"announce": b"http://127.0.0.1:6969/announce", b"info": info}
    )


def benchLoad(profile: bool) -> None:
    """
    Time L{metainfo.load} of a 10,000-file, 100,000-piece torrent.
    """
    data = bigTorrent()
    best = bestDecode = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        bencode.decodeWithSpans(data)
        bestDecode = min(bestDecode, time.perf_counter() - start)
        start = time.perf_counter()
        m = metainfo.load(data)
        best = min(best, time.perf_counter() - start)
    print(
        f"load: {len(m.files)} files, {m.pieceCount} pieces, "
        f"{len(data) / 1e6:.2f} MB: {best * 1000:.0f} ms "
        f"(of which bencode.decodeWithSpans {bestDecode * 1000:.0f} ms)"
    )
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        metainfo.load(data)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(
            15
        )


def main() -> None:
    """
    Run both benchmarks.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    benchCreate(args.size_mib)
    benchLoad(args.profile)


if __name__ == "__main__":
    main()
