"""
Benchmark: btorrent as a seeder against libtorrent and aria2 as seeders,
with the same libtorrent leecher, and btorrent's start-up recheck.

One run:
  1. writes a file (1 GiB by default) and a torrent of it (256 KiB pieces,
     made by libtorrent);
  2. starts btorrent as a real C{twistd -n --pidfile= btorrent} process on
     that complete directory with no resume data: it rechecks the data, then
     seeds (the time from the process start to "complete, seeding" is
     reported, and the recheck alone, in this process, in MB/s);
  3. starts a libtorrent seeder (seed mode) and an aria2 seeder, each its
     own process;
  4. downloads the torrent with a fresh libtorrent leecher (a subprocess),
     interleaving the seeders, each round starting one further:
     btorrent, libtorrent, aria2, then libtorrent, aria2, btorrent...
     (C{--rounds 3}); the leecher dials the seeder (plaintext: encryption
     is off on the leecher so that no seeder pays for a refused encrypted
     handshake);
  5. prints every wall time (the leecher's, from adding the torrent to
     having every piece) and the seeder's CPU seconds in that time (user +
     system from C{/proc/PID/stat}), per GiB, the medians and btorrent's
     ratios to the others.

Everything is on 127.0.0.1.  Targets: btorrent seeds as fast as aria2 with
at most 1.5x its CPU; the recheck runs at 500 MB/s or more.

Run: C{python benchmarks/bench_seed.py [--size-mib 1024] [--piece-kib 256]
[--rounds 3] [--dir PATH] [--profile] [--seeders btorrent,libtorrent,aria2]}
(C{--profile} runs the btorrent
seeder's service from a .tac under pyinstrument and prints where its
reactor thread's time went).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from btorrent.codec import metainfo  # noqa: E402
from btorrent.engine.resume import recheck  # noqa: E402
from btorrent.engine.storage import MultiFileWriter  # noqa: E402
from tests.realaria2 import Aria2Seeder  # noqa: E402
from tests.realpeers import freePort, stopProcess, waitForTCP  # noqa: E402
from tests.realseeders import makeTorrent, writeLargeFile  # noqa: E402
from tests.twistdproc import (  # noqa: E402
    compileCheckout,
    repositoryEnvironment,
    twistdCommand,
)

_LEECHER = """
import sys, time
sys.path.insert(0, {root!r})
import libtorrent as lt
from tests.realclients import loopbackSession, torrentFlags
from tests.realpeers import freePort
s = loopbackSession(
    freePort(),
    out_enc_policy=int(lt.enc_policy.disabled),
    in_enc_policy=int(lt.enc_policy.disabled),
)
params = lt.add_torrent_params()
params.ti = lt.torrent_info(lt.bdecode(open({torrent!r}, "rb").read()))
params.save_path = {out!r}
params.flags = torrentFlags(False)
start = time.perf_counter()
handle = s.add_torrent(params)
handle.connect_peer(("127.0.0.1", {port}))
deadline = start + {timeout}
while not handle.status().is_finished:
    if time.perf_counter() > deadline:
        status = handle.status()
        sys.exit(
            f"leecher timed out at {{status.progress:.1%}} "
            f"({{status.num_peers}} peers)"
        )
    time.sleep(0.005)
print(time.perf_counter() - start)
s.remove_torrent(handle)
"""

_SEEDER = """
import sys, time
sys.path.insert(0, {root!r})
import libtorrent as lt
from tests.realclients import loopbackSession, torrentFlags
s = loopbackSession({port})
params = lt.add_torrent_params()
params.ti = lt.torrent_info(lt.bdecode(open({torrent!r}, "rb").read()))
params.save_path = {data!r}
params.flags = torrentFlags(True)
s.add_torrent(params)
sys.stdin.read()
"""

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpuSeconds(pid: int) -> float:
    """
    The user + system CPU seconds of process C{pid} (all its threads) so
    far.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def leech(torrentPath: str, outDir: str, seederPort: int, timeout: float) -> float:
    """
    Download with a fresh libtorrent leecher (a subprocess) from the seeder
    on C{seederPort}.

    @return: the wall time from adding the torrent to having every piece.
    """
    os.makedirs(outDir, exist_ok=True)
    script = _LEECHER.format(
        root=ROOT, torrent=torrentPath, out=outDir, port=seederPort, timeout=timeout
    )
    result = subprocess.run(
        [sys.executable, "-c", script], check=True, stdout=subprocess.PIPE
    )
    return float(result.stdout.split()[0])


def startLibtorrentSeeder(torrentPath: str, dataDir: str):
    """
    A libtorrent seeder (seed mode) in its own process, until its stdin
    closes.

    @return: C{(process, port)}.
    """
    port = freePort()
    script = _SEEDER.format(root=ROOT, port=port, torrent=torrentPath, data=dataDir)
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    waitForTCP(port, timeout=15.0, process=process)
    return process, port


#: C{twistd btorrent}'s service (L{btorrent.daemon.tap.makeService}) under
#: pyinstrument, for C{--profile}.
PROFILE_TAC = """
from pyinstrument import Profiler
from twisted.application import service
from twisted.internet import reactor

from btorrent.daemon import tap

options = tap.Options()
options.parseOptions({options!r})
application = service.Application("btorrent")
tap.makeService(options).setServiceParent(application)
profiler = Profiler(interval=0.0005)
profiler.start()


def write():
    profiler.stop()
    with open({out!r}, "w") as f:
        f.write(profiler.output_text(unicode=False, color=False))


reactor.addSystemEventTrigger("after", "shutdown", write)
"""


def startBtorrent(torrentPath, dataDir, stateDir, logPath, profile: bool):
    """
    Start C{twistd -n btorrent} seeding C{dataDir} and wait until it seeds.

    @return: C{(process, port, seconds from start to seeding)}.
    """
    port = freePort()
    options = [
        f"--torrent={torrentPath}",
        f"--download-dir={dataDir}",
        f"--state-dir={stateDir}",
        f"--port={port}",
        "--interface=127.0.0.1",
    ]
    if profile:
        # twistd ends a process stopped by a signal with that signal, so a
        # profiler wrapping it never writes: the .tac profiles the reactor
        # thread of the same service and writes at shutdown.
        tac = logPath + ".tac"
        with open(tac, "w") as f:
            f.write(PROFILE_TAC.format(options=options, out=logPath + ".profile"))
        command = twistdCommand("-y", tac, logFile=logPath)
    else:
        command = twistdCommand("btorrent", *options, logFile=logPath)
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=repositoryEnvironment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(logPath + ".stderr", "wb"),
    )
    while True:
        try:
            with open(logPath) as f:
                if "complete, seeding" in f.read():
                    break
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"twistd exited; see {logPath}")
        if time.perf_counter() - start > 120:
            raise RuntimeError("twistd did not start seeding in 120 s")
        time.sleep(0.01)
    return process, port, time.perf_counter() - start


def timeRecheck(info, dataDir: str) -> float:
    """
    Recheck the data in this process (warm page cache).

    @return: seconds.
    """
    storage = MultiFileWriter(info, dataDir)
    storage.open()
    try:
        start = time.perf_counter()
        pieces = recheck(storage, info)
        elapsed = time.perf_counter() - start
    finally:
        storage.close()
    if not all(pieces):
        raise RuntimeError("the recheck found missing pieces in complete data")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--piece-kib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--seeders",
        default="btorrent,libtorrent,aria2",
        help="the seeders to run, comma-separated, in their order of the first "
        "round (each next round starts one further)",
    )
    parser.add_argument("--dir", default=None, help="where the data goes")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the btorrent seeder with pyinstrument",
    )
    args = parser.parse_args(argv)
    compileCheckout()
    size = args.size_mib << 20
    base = tempfile.mkdtemp(prefix="bench-seed-", dir=args.dir)
    btorrent = None
    others = []
    try:
        seedDir = os.path.join(base, "seed")
        os.makedirs(seedDir)
        name = "seed.bin"
        print(f"writing {args.size_mib} MiB ...", flush=True)
        writeLargeFile(os.path.join(seedDir, name), size)
        torrentBytes = makeTorrent(seedDir, [(name, size)], args.piece_kib << 10)
        torrentPath = os.path.join(base, "seed.torrent")
        with open(torrentPath, "wb") as f:
            f.write(torrentBytes)
        info = metainfo.load(torrentBytes)
        mb = size / 1e6

        recheckTimes = [timeRecheck(info, seedDir) for _ in range(2)]
        best = min(recheckTimes)
        print(
            f"recheck of {args.size_mib} MiB (warm cache, in-process): "
            f"{', '.join(f'{t:.2f} s' for t in recheckTimes)}; "
            f"best {mb / best:.0f} MB/s (target >= 500)",
            flush=True,
        )

        btorrent, btPort, startup = startBtorrent(
            torrentPath,
            seedDir,
            os.path.join(base, "state"),
            os.path.join(base, "twistd.log"),
            args.profile,
        )
        print(
            f"twistd btorrent: process start to seeding (recheck included) "
            f"{startup:.2f} s",
            flush=True,
        )
        seeders = {"btorrent": (btorrent, btPort)}
        names = args.seeders.split(",")
        if "libtorrent" in names:
            seeders["libtorrent"] = startLibtorrentSeeder(torrentPath, seedDir)
            others.append(seeders["libtorrent"][0])
        if "aria2" in names:
            aria2 = Aria2Seeder(torrentPath, seedDir, os.path.join(base, "aria2.log"))
            seeders["aria2"] = (aria2.process, aria2.port)
            others.append(aria2.process)
        gib = size / (1 << 30)
        times = {who: [] for who in names}
        cpus = {who: [] for who in names}
        for round in range(args.rounds):
            # Each round starts one seeder further (see bench_download's
            # rotated): who comes after whom moves the figures here.
            start = round % len(names)
            for who in names[start:] + names[:start]:
                process, port = seeders[who]
                outDir = os.path.join(base, f"out-{who}-{round}")
                cpuBefore = cpuSeconds(process.pid)
                try:
                    elapsed = leech(torrentPath, outDir, port, timeout=300)
                except subprocess.CalledProcessError:
                    with open(os.path.join(base, "twistd.log")) as f:
                        drops = [line for line in f if "Dropping" in line]
                    print(f"{who}: leecher failed; btorrent's drops: {drops[-5:]}")
                    raise
                cpu = cpuSeconds(process.pid) - cpuBefore
                shutil.rmtree(outDir)
                times[who].append(elapsed)
                cpus[who].append(cpu)
                print(
                    f"round {round + 1}: libtorrent leecher from {who:10s} "
                    f"{elapsed:6.2f} s  {mb / elapsed:6.0f} MB/s, seeder CPU "
                    f"{cpu:5.2f} s  ({elapsed / gib:5.2f} / {cpu / gib:5.2f} "
                    f"s per GiB)",
                    flush=True,
                )
        print("medians per GiB:  wall s   CPU s")
        medians = {
            who: (
                statistics.median(times[who]) / gib,
                statistics.median(cpus[who]) / gib,
            )
            for who in names
        }
        for who, (wall, cpu) in medians.items():
            print(f"  {who:12} {wall:8.2f} {cpu:7.2f}")
        bw, bc = medians["btorrent"]
        for who, (wall, cpu) in medians.items():
            if who != "btorrent":
                print(f"btorrent / {who}: wall {bw / wall:.2f}, CPU {bc / cpu:.2f}")
    finally:
        for process in others:
            stopProcess(process)
        if btorrent is not None and btorrent.poll() is None:
            stopProcess(btorrent, 30)
            if args.profile:
                profile = os.path.join(base, "twistd.log.profile")
                if os.path.exists(profile):
                    with open(profile) as f:
                        print(f.read())
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
