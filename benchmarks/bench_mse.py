"""
Benchmarks for L{btorrent.peer.mse}.

    python benchmarks/bench_mse.py [--size-mib 1024] [--chunk-kib 64]

1. RC4 throughput: one stream of an MSE handshake (C{cryptography}'s ARC4)
   over C{--size-mib} MiB in C{--chunk-kib} KiB chunks, the way the
   protocol wrapper applies it to each chunk received; MB/s of wall time
   and CPU seconds.
2. Handshakes per second: a full initiator/responder exchange in memory
   (two 768-bit modular exponentiations per side, SHA-1, RC4 keying).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from btorrent.peer.mse import MSEInitiator, MSEResponder, obfuscatedHash

INFO_HASH = bytes(range(20))


def cpuTime() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def handshake() -> MSEInitiator:
    initiator = MSEInitiator(INFO_HASH, initialPayload=bytes(68))
    responder = MSEResponder({obfuscatedHash(INFO_HASH): INFO_HASH}.get)
    step2 = responder.dataReceived(initiator.start())
    step4 = responder.dataReceived(initiator.dataReceived(step2))
    initiator.dataReceived(step4)
    assert initiator.done and responder.done
    return initiator


def benchRC4(sizeMiB: int, chunkKiB: int) -> None:
    encrypt = handshake().encrypt
    chunk = os.urandom(chunkKiB * 1024)
    count = sizeMiB * 1024 // chunkKiB
    startWall, startCPU = time.perf_counter(), cpuTime()
    for _ in range(count):
        encrypt(chunk)
    wall, cpu = time.perf_counter() - startWall, cpuTime() - startCPU
    total = count * len(chunk)
    print(
        f"RC4: {total / 2**20:.0f} MiB in {chunkKiB} KiB chunks:"
        f" {wall:.2f} s, {total / wall / 1e6:.0f} MB/s"
        f" ({total / wall / 2**20:.0f} MiB/s), CPU {cpu:.2f} s"
    )


def benchHandshakes(count: int = 200) -> None:
    start = time.perf_counter()
    for _ in range(count):
        handshake()
    elapsed = time.perf_counter() - start
    print(
        f"handshakes: {count} in {elapsed:.2f} s,"
        f" {elapsed / count * 1000:.2f} ms each (both sides)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunk-kib", type=int, default=64)
    args = parser.parse_args()
    benchRC4(args.size_mib, args.chunk_kib)
    benchHandshakes()


if __name__ == "__main__":
    main()
