"""
Benchmark: many torrents in one daemon.

For each N (1,000 and 10,000 by default):
  1. writes N small complete torrents (one 16 KiB file each, under one
     download dir) and the daemon's state dir as the daemon itself keeps
     it (C{state.json} and a copy of each C{.torrent}), as if they had been
     added through the RPC;
  2. starts a real C{twistd -n btorrent} on it: every torrent is checked
     (no resume data yet) and seeds; SIGTERM saves the resume data;
  3. starts it again: the time from the process start until every torrent
     seeds (C{torrent-get} polled over the RPC) is the start with fast
     resume; then the CPU it uses while idle (no peers) over
     C{--idle-seconds}, from C{/proc}, and its resident memory;
  4. adds C{--add} more torrents through the RPC (C{torrent-add}) while it
     runs, and reports how long that took.

Targets (issue 11): 10,000 torrents start with fast resume in under 10 s,
idle under 5 % of a core, RSS under 1 GiB; (issue 10) 5,000 idle seeding
torrents under 10 % of a core.

Run: C{python benchmarks/bench_scale.py [--counts 1000 10000]
[--idle-seconds 30] [--add 1000] [--dir PATH]}.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from btorrent.codec import bencode  # noqa: E402
from tests.realpeers import freePort, stopProcess  # noqa: E402
from tests.realtransmission import RPCClient  # noqa: E402
from tests.twistdproc import (  # noqa: E402
    compileCheckout,
    repositoryEnvironment,
    twistdCommand,
)

PIECE = 16384
TICKS = os.sysconf("SC_CLK_TCK")


def makeTorrent(name: str, data: bytes) -> bytes:
    """
    A single-file torrent of C{data}, without a tracker.
    """
    info = {
        b"name": name.encode(),
        b"piece length": PIECE,
        b"length": len(data),
        b"pieces": hashlib.sha1(data).digest(),
    }
    return bencode.encode({b"info": info})


def infoHash(torrent: bytes) -> bytes:
    return hashlib.sha1(bencode.encode(bencode.decode(torrent)[b"info"])).digest()


def prepare(base: str, count: int, first: int = 0) -> list:
    """
    Data and torrents for C{count} torrents; the state dir lists the
    first C{count} of them.

    @return: the torrents' bytes.
    """
    downloads = os.path.join(base, "downloads")
    state = os.path.join(base, "state")
    torrentsDir = os.path.join(state, "torrents")
    os.makedirs(downloads, exist_ok=True)
    os.makedirs(torrentsDir, exist_ok=True)
    torrents = []
    entries = []
    for number in range(first, first + count):
        name = f"t{number:06d}.bin"
        data = number.to_bytes(8, "big") * (PIECE // 8)
        with open(os.path.join(downloads, name), "wb") as f:
            f.write(data)
        torrent = makeTorrent(name, data)
        torrents.append(torrent)
        digest = infoHash(torrent).hex()
        with open(os.path.join(torrentsDir, digest + ".torrent"), "wb") as f:
            f.write(torrent)
        entries.append(
            {
                "id": number + 1,
                "infoHash": digest,
                "downloadDir": downloads,
                "labels": [],
                "paused": False,
                "addedDate": int(time.time()),
                "queuePosition": number,
            }
        )
    if first == 0:
        with open(os.path.join(state, "state.json"), "w") as f:
            json.dump({"version": 1, "nextId": count + 1, "torrents": entries}, f)
    return torrents


def cpuSeconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rssMiB(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Daemon:
    def __init__(self, base: str) -> None:
        self.base = base
        self.rpcPort = freePort()
        self.peerPort = freePort()
        self.log = os.path.join(base, "twistd.log")
        self.process = None
        self.rpc = RPCClient(
            f"http://127.0.0.1:{self.rpcPort}/transmission/rpc", timeout=120
        )

    def start(self) -> float:
        started = time.monotonic()
        arguments = [
            "--state-dir",
            os.path.join(self.base, "state"),
            "--download-dir",
            os.path.join(self.base, "downloads"),
            "--port",
            str(self.peerPort),
            "--interface",
            "127.0.0.1",
            "--rpc-port",
            str(self.rpcPort),
        ]
        if _hasOption("no-dht"):
            # Never a public DHT router from a benchmark.
            arguments.append("--no-dht")
        self.process = subprocess.Popen(
            twistdCommand("btorrent", *arguments, logFile=self.log),
            env=repositoryEnvironment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return started

    def seeding(self) -> int:
        try:
            torrents = self.rpc.call("torrent-get", fields=["status"])["torrents"]
        except OSError:
            return -1
        return sum(1 for t in torrents if t["status"] == 6)

    def waitSeeding(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.seeding() < count:
            if self.process.poll() is not None:
                raise RuntimeError("the daemon exited; see " + self.log)
            if time.monotonic() > deadline:
                raise RuntimeError(f"not all {count} seeding after {timeout} s")
            time.sleep(1.0)

    def stop(self) -> None:
        stopProcess(self.process, 600)


def _hasOption(option: str) -> bool:
    """
    Whether C{twistd btorrent} has the option (C{no-dht} once the DHT is
    in).
    """
    from btorrent.daemon import tap

    return any(option == p[0] for p in tap.Options.optParameters + tap.Options.optFlags)


def run(count: int, idleSeconds: float, adds: int, directory: str) -> dict:
    base = tempfile.mkdtemp(prefix=f"scale-{count}-", dir=directory)
    daemon = None
    try:
        prepare(base, count)
        daemon = Daemon(base)
        started = daemon.start()
        daemon.waitSeeding(count, 3600)
        firstStart = time.monotonic() - started
        print(
            f"{count} torrents: first start (full check) {firstStart:.1f} s", flush=True
        )
        daemon.stop()
        started = daemon.start()
        daemon.waitSeeding(count, 3600)
        fastStart = time.monotonic() - started
        pid = daemon.process.pid
        time.sleep(5)
        before = cpuSeconds(pid)
        time.sleep(idleSeconds)
        idle = (cpuSeconds(pid) - before) / idleSeconds
        rss = rssMiB(pid)
        print(
            f"{count} torrents: start with fast resume {fastStart:.1f} s, idle "
            f"{100 * idle:.1f} % of a core, RSS {rss:.0f} MiB",
            flush=True,
        )
        extra = prepare(base, adds, first=count)
        addStart = time.monotonic()
        for torrent in extra:
            daemon.rpc.call("torrent-add", metainfo=base64.b64encode(torrent).decode())
        addTime = time.monotonic() - addStart
        daemon.waitSeeding(count + adds, 3600)
        allSeeding = time.monotonic() - addStart
        daemon.stop()
        return {
            "count": count,
            "firstStart": firstStart,
            "fastStart": fastStart,
            "idleCore": idle,
            "rssMiB": rss,
            "adds": adds,
            "addSeconds": addTime,
            "addedSeedingSeconds": allSeeding,
        }
    finally:
        # A failure or ^C must not leave a daemon running (and spinning).
        if daemon is not None and daemon.process is not None:
            if daemon.process.poll() is None:
                daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--add", type=int, default=1000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    compileCheckout()
    for count in args.counts:
        result = run(count, args.idle_seconds, args.add, args.dir)
        print(
            f"{result['count']:>6} torrents: first start {result['firstStart']:.1f} s "
            f"(full check), start with fast resume {result['fastStart']:.1f} s, "
            f"idle {100 * result['idleCore']:.1f} % of a core, "
            f"RSS {result['rssMiB']:.0f} MiB; "
            f"{result['adds']} added over the RPC in {result['addSeconds']:.1f} s, "
            f"all seeding {result['addedSeedingSeconds']:.1f} s after",
            flush=True,
        )


if __name__ == "__main__":
    main()
