"""
Benchmark: btorrent as a seeder against libtorrent as a seeder, with the
same libtorrent leecher, and btorrent's start-up recheck.

One run:
  1. writes a file (1 GiB by default) and a torrent of it (256 KiB pieces,
     made by libtorrent);
  2. starts btorrent as a real C{twistd -n --pidfile= btorrent} process on
     that complete directory with no resume data: it rechecks the data, then
     seeds (the time from the process start to "complete, seeding" is
     reported, and the recheck alone, in this process, in MB/s);
  3. starts a libtorrent seeder (seed mode, in this process);
  4. downloads the torrent with a fresh libtorrent leecher, alternating the
     seeder: btorrent, libtorrent, btorrent, libtorrent (C{--rounds 2}); the
     leecher dials the seeder (plaintext: encryption is off on the leecher
     so that neither seeder pays for a refused encrypted handshake);
  5. prints every wall time, the medians and their ratio.

Everything is on 127.0.0.1.  Targets: btorrent seeds within 2x of
libtorrent's time; the recheck runs at 500 MB/s or more.

Run: C{python benchmarks/bench_seed.py [--size-mib 1024] [--piece-kib 256]
[--rounds 2] [--dir PATH] [--profile]} (C{--profile} runs the btorrent
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

import libtorrent as lt  # noqa: E402

from btorrent.codec import metainfo  # noqa: E402
from btorrent.engine.resume import recheck  # noqa: E402
from btorrent.engine.storage import MultiFileWriter  # noqa: E402
from tests.realclients import loopbackSession, torrentFlags  # noqa: E402
from tests.realpeers import freePort, stopProcess  # noqa: E402
from tests.realseeders import makeTorrent, writeLargeFile  # noqa: E402
from tests.twistdproc import repositoryEnvironment, twistdCommand  # noqa: E402


def addTorrent(s: lt.session, torrentBytes: bytes, savePath: str, seed: bool):
    """
    Add a torrent to a libtorrent session.
    """
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(torrentBytes))
    params.save_path = savePath
    params.flags = torrentFlags(seed)
    return s.add_torrent(params)


def leech(torrentBytes: bytes, outDir: str, seederPort: int, timeout: float):
    """
    Download with a fresh libtorrent leecher from the seeder on
    C{seederPort}.

    @return: the wall time from adding the torrent to having every piece.
    """
    os.makedirs(outDir, exist_ok=True)
    s = loopbackSession(
        freePort(),
        out_enc_policy=int(lt.enc_policy.disabled),
        in_enc_policy=int(lt.enc_policy.disabled),
    )
    start = time.perf_counter()
    handle = addTorrent(s, torrentBytes, outDir, seed=False)
    handle.connect_peer(("127.0.0.1", seederPort))
    deadline = start + timeout
    while not handle.status().is_finished:
        if time.perf_counter() > deadline:
            status = handle.status()
            raise RuntimeError(
                f"leecher timed out at {status.progress:.1%} "
                f"({status.num_peers} peers)"
            )
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    s.remove_torrent(handle)
    del s
    return elapsed


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
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where the data goes")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the btorrent seeder with pyinstrument",
    )
    args = parser.parse_args(argv)
    size = args.size_mib << 20
    base = tempfile.mkdtemp(prefix="bench-seed-", dir=args.dir)
    btorrent = None
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
        ltSeeder = loopbackSession(freePort())
        addTorrent(ltSeeder, torrentBytes, seedDir, seed=True)
        ltPort = ltSeeder.listen_port()

        times = {"btorrent": [], "libtorrent": []}
        for round in range(args.rounds):
            for who, port in (("btorrent", btPort), ("libtorrent", ltPort)):
                outDir = os.path.join(base, f"out-{who}-{round}")
                try:
                    elapsed = leech(torrentBytes, outDir, port, timeout=300)
                except RuntimeError as e:
                    with open(os.path.join(base, "twistd.log")) as f:
                        drops = [line for line in f if "Dropping" in line]
                    print(f"{who}: {e}; btorrent's drops: {drops[-5:]}")
                    raise
                shutil.rmtree(outDir)
                times[who].append(elapsed)
                print(
                    f"round {round + 1}: libtorrent leecher from {who:10s} "
                    f"{elapsed:6.2f} s  {mb / elapsed:6.0f} MB/s",
                    flush=True,
                )
        bt = statistics.median(times["btorrent"])
        ltTime = statistics.median(times["libtorrent"])
        print(
            f"median: btorrent {bt:.2f} s, libtorrent {ltTime:.2f} s, "
            f"ratio {bt / ltTime:.2f} (target <= 2)"
        )
        del ltSeeder
    finally:
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
