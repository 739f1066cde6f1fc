"""
Benchmark: a 1 GiB single-file torrent (256 KiB pieces) from a libtorrent
seeder on 127.0.0.1, downloaded by C{btorrent download}, by a libtorrent
leecher and by aria2 (each a subprocess), interleaved runs, each round
starting one client further than the last (see L{rotated}).

Prints each run's wall time (process start to exit, files complete and
checked by the client) and CPU time (user + system of the leecher process,
from C{os.wait4}), both per GiB, then the medians and btorrent's ratios to
libtorrent and aria2 (this VM's page-cache allocation makes single runs'
wall times vary by 1.5x: CPU seconds are the steadier figure).  aria2 has
no way to be told a peer: it listens and the seeder dials it.

    python benchmarks/bench_download.py [--size 1G] [--runs 3] [--profile]
        [--base PATH]
        [--encrypted] [--clients btorrent,libtorrent,aria2]

C{--profile} runs btorrent under pyinstrument once and prints the profile.

C{--base PATH --clients btorrent,base} compares this checkout with another
(a C{git worktree add /tmp/base HEAD~1}, say), interleaved in the same
output directory: on this machine single runs swing too much for anything
else to show a change of a few percent.  Read the median of the rounds'
ratios, and know the noise: identical code against itself (6 rounds of
256 MiB) gave 1.13 in wall time and 0.89 in CPU.

Without C{--encrypted} every connection is plaintext (btorrent with
C{--encryption tolerated}: its default, preferred, would dial the seeder
through MSE and RC4).  With C{--encrypted} the seeder forces RC4 (libtorrent
C{in_enc_policy=out_enc_policy=0}, C{allowed_enc_level=2}) for the
encrypted runs of btorrent (C{--encryption required}) and of libtorrent's
leecher (forcing RC4 too), which alternate with a plaintext btorrent run
(the seeder back to its defaults) and a plaintext libtorrent run; it prints
what encryption costs btorrent (its speed lost against its plaintext runs),
what it costs libtorrent's leecher (the seeder's RC4 is shared by both),
and the ratio of btorrent's encrypted wall time to libtorrent's.
"""

from __future__ import annotations

import argparse
import compileall
import filecmp
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, NamedTuple, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from tests.realclients import aria2Leecher  # noqa: E402
from tests.realpeers import freePort, waitForTCP  # noqa: E402
from tests.realseeders import (  # noqa: E402
    libtorrentSeeder,
    makeTorrent,
    writeLargeFile,
)
from tests.twistdproc import compileCheckout, downloadCommand  # noqa: E402

PIECE_LENGTH = 256 * 1024

_LEECHER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.realseeders import libtorrentLeecher
torrent = open({torrent!r}, 'rb').read()
leecher = libtorrentLeecher({out!r}, torrent)
if {encrypted!r}:
    leecher.session.apply_settings(
        {{"in_enc_policy": 0, "out_enc_policy": 0, "allowed_enc_level": 2}}
    )
    leecher.session.get_settings()
leecher.connect('127.0.0.1', {port})
while not leecher.finished:
    time.sleep(0.02)
leecher.close()
"""


#: libtorrent settings that force RC4, and its defaults back.
FORCED_RC4 = {"in_enc_policy": 0, "out_enc_policy": 0, "allowed_enc_level": 2}
DEFAULT_ENCRYPTION = {"in_enc_policy": 1, "out_enc_policy": 1, "allowed_enc_level": 3}


def setSeederEncryption(seeder, settings) -> None:
    """
    Apply encryption settings to the seeder's session, and wait until they
    hold.
    """
    seeder.session.apply_settings(settings)
    applied = seeder.session.get_settings()
    assert all(applied[key] == value for key, value in settings.items()), applied


class Usage(NamedTuple):
    """
    What a client's run took: wall seconds, and its CPU seconds (user +
    system) with the system part on its own (the kernel copying the bytes
    into the page cache, which on this VM costs 1 to 4 s a GiB depending on
    where the memory comes from).
    """

    wall: float
    cpu: float
    system: float


def waitChild(process: subprocess.Popen, start: float) -> Usage:
    """
    Reap C{process} with C{os.wait4}.

    @return: its L{Usage} since C{start} (CPU of that process and of its
        children).
    @raise SystemExit: if it failed.
    """
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{process.args[:3]} exited with {process.returncode}")
    return Usage(wall, usage.ru_utime + usage.ru_stime, usage.ru_stime)


def runBtorrent(
    torrentPath, out, seeder, profile=False, encryption="tolerated", root=ROOT
) -> Usage:
    """
    C{btorrent download} of the torrent from the seeder, run from the
    checkout C{root} (this one by default).
    """
    command = downloadCommand()
    if profile:
        command = [sys.executable, "-m", "pyinstrument", "-m", "btorrent.cli.main"]
        command.append("download")
    command += [
        torrentPath,
        "-o",
        out,
        "--port",
        "0",
        "--interface",
        "127.0.0.1",
        "--peer",
        f"127.0.0.1:{seeder.port}",
        "--quiet",
        "--encryption",
        encryption,
    ]
    start = time.monotonic()
    return waitChild(subprocess.Popen(command, cwd=root), start)


def runLibtorrent(torrentPath, out, seeder, encrypted=False) -> Usage:
    script = _LEECHER.format(
        root=ROOT, torrent=torrentPath, out=out, port=seeder.port, encrypted=encrypted
    )
    start = time.monotonic()
    return waitChild(subprocess.Popen([sys.executable, "-c", script]), start)


def runAria2(torrentPath, out, seeder) -> Usage:
    """
    aria2 as the leecher: it listens, the seeder dials it, it exits once
    complete (C{--seed-time=0}).
    """
    port = freePort()
    start = time.monotonic()
    process = aria2Leecher(
        torrentPath, out, port=port, logPath=os.path.join(out, "..", "aria2.log")
    )
    waitForTCP(port, timeout=15.0, process=process)
    seeder.connect("127.0.0.1", port)
    return waitChild(process, start)


def settle(out: str) -> None:
    """
    Remove a run's download and flush the disk, so that the next client
    does not run beside the kernel writing back this one's gigabyte (the
    order of the clients in a round otherwise decides who pays for whose
    writeback).
    """
    shutil.rmtree(out, ignore_errors=True)
    os.sync()


def rotated(clients: list, run: int) -> list:
    """
    The order of the clients in round C{run}: each round starts one client
    further, so that over as many rounds as there are clients each runs
    after each other one, and none always pays for the same predecessor
    (each run starts just after the last one's gigabyte was deleted and
    flushed, and this VM's cost of fresh page cache drifts: in one run of
    rounds ordered aria2, libtorrent, btorrent, libtorrent's leecher had
    2.0-2.4 system seconds per GiB, against 0.5-1.0 in most earlier runs).
    """
    start = run % len(clients)
    return list(clients[start:]) + list(clients[:start])


RUNNERS = {"btorrent": runBtorrent, "libtorrent": runLibtorrent, "aria2": runAria2}


def parseSize(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1:].upper()]
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=parseSize, default=1 << 30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--clients",
        default="btorrent,libtorrent,aria2",
        help="the leechers to run, comma-separated, in their order of the first "
        "round (each next round starts one further)",
    )
    parser.add_argument(
        "--base",
        default=None,
        help="another checkout of btorrent (say a git worktree of the commit "
        "before a change), run as the client 'base': --clients btorrent,base",
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--dir", default=None, help="work directory (kept)")
    parser.add_argument(
        "--encrypted",
        action="store_true",
        help="the seeder forces RC4: btorrent and libtorrent encrypted, "
        "against btorrent in plaintext",
    )
    args = parser.parse_args()
    compileCheckout()
    runners = dict(RUNNERS)
    if args.base is not None:
        base = os.path.abspath(args.base)
        if not os.path.isdir(os.path.join(base, "btorrent")):
            parser.error(f"--base: no btorrent package in {base}")
        compileall.compile_dir(os.path.join(base, "btorrent"), quiet=1)
        runners["base"] = functools.partial(runBtorrent, root=base)
    unknown = set(args.clients.split(",")) - set(runners)
    if unknown:
        parser.error(f"unknown clients (or 'base' without --base): {unknown}")
    work = args.dir or tempfile.mkdtemp(prefix="bench_download.")
    seedDir = os.path.join(work, "seed")
    os.makedirs(seedDir, exist_ok=True)
    data = os.path.join(seedDir, "big.bin")
    if not os.path.exists(data) or os.path.getsize(data) != args.size:
        print(f"writing {args.size} bytes of test data...", flush=True)
        writeLargeFile(data, args.size)
    torrent = makeTorrent(seedDir, [("big.bin", args.size)], PIECE_LENGTH)
    torrentPath = os.path.join(work, "big.torrent")
    with open(torrentPath, "wb") as f:
        f.write(torrent)
    seeder = libtorrentSeeder(seedDir, torrent)
    try:
        if args.profile:
            out = os.path.join(work, "profile")
            shutil.rmtree(out, ignore_errors=True)
            encryption = "tolerated"
            if args.encrypted:
                setSeederEncryption(seeder, FORCED_RC4)
                encryption = "required"
            runBtorrent(torrentPath, out, seeder, profile=True, encryption=encryption)
            return
        if args.encrypted:
            return encryptedRuns(args, work, data, torrentPath, seeder)
        clients = args.clients.split(",")
        results: Dict[str, List[Tuple[float, float]]] = {c: [] for c in clients}
        gib = args.size / (1 << 30)
        for run in range(args.runs):
            for name in rotated(clients, run):
                out = os.path.join(work, "out")
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                wall, cpu, system = runners[name](torrentPath, out, seeder)
                same = filecmp.cmp(data, os.path.join(out, "big.bin"), shallow=False)
                results[name].append((wall, cpu))
                print(
                    f"run {run + 1} {name:10} {wall:6.2f} s wall "
                    f"{cpu:6.2f} s CPU ({system:5.2f} system)  ({wall / gib:5.2f} / "
                    f"{cpu / gib:5.2f} s per GiB) {'identical' if same else 'DIFFERENT'}",
                    flush=True,
                )
                if not same:
                    raise SystemExit(f"{name} produced a different file")
                settle(out)
        printMedians(results, gib)
    finally:
        seeder.close()
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


def printMedians(results: Dict[str, List[Tuple[float, float]]], gib: float) -> None:
    """
    Print each client's median wall and CPU seconds per GiB, and
    btorrent's ratios to the others: the ratio of the medians, and the
    median of each round's ratio (a round's clients run one after another,
    so its ratio is the least touched by the machine's drift).
    """
    medians = {
        name: (
            statistics.median(w for w, _ in runs) / gib,
            statistics.median(c for _, c in runs) / gib,
        )
        for name, runs in results.items()
    }
    print("medians per GiB:  wall s   CPU s")
    for name, (wall, cpu) in medians.items():
        print(f"  {name:12} {wall:8.2f} {cpu:7.2f}")
    if "btorrent" in medians:
        bw, bc = medians["btorrent"]
        for name, (wall, cpu) in medians.items():
            if name == "btorrent":
                continue
            rounds = list(zip(results["btorrent"], results[name]))
            roundWall = statistics.median(b[0] / o[0] for b, o in rounds)
            roundCPU = statistics.median(b[1] / o[1] for b, o in rounds)
            print(
                f"btorrent / {name}: wall {bw / wall:.2f}, CPU {bc / cpu:.2f} "
                f"(median of the rounds' ratios: wall {roundWall:.2f}, "
                f"CPU {roundCPU:.2f})"
            )


def encryptedRuns(args, work, data, torrentPath, seeder) -> None:
    """
    Alternate btorrent in plaintext, btorrent with RC4 and libtorrent with
    RC4 (the seeder forcing it for the last two), and print the figures.
    """
    runs = (
        ("btorrent-plain", DEFAULT_ENCRYPTION, runBtorrent, {}),
        ("btorrent-rc4", FORCED_RC4, runBtorrent, {"encryption": "required"}),
        ("libtorrent-plain", DEFAULT_ENCRYPTION, runLibtorrent, {}),
        ("libtorrent-rc4", FORCED_RC4, runLibtorrent, {"encrypted": True}),
    )
    results = {name: [] for name, *_ in runs}
    cpus = {name: [] for name, *_ in runs}
    for run in range(args.runs):
        for name, settings, runner, kwargs in rotated(runs, run):
            setSeederEncryption(seeder, settings)
            out = os.path.join(work, "out")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            seconds, cpu, system = runner(torrentPath, out, seeder, **kwargs)
            same = filecmp.cmp(data, os.path.join(out, "big.bin"), shallow=False)
            results[name].append(seconds)
            cpus[name].append(cpu)
            print(
                f"run {run + 1} {name:15} {seconds:6.2f} s "
                f"{args.size / seconds / 1e6:7.1f} MB/s, CPU {cpu:6.2f} s "
                f"({system:5.2f} system) "
                f"{'identical' if same else 'DIFFERENT'}",
                flush=True,
            )
            if not same:
                raise SystemExit(f"{name} produced a different file")
            settle(out)
    for label, pick in (("best", min), ("median", statistics.median)):
        plain = pick(results["btorrent-plain"])
        rc4 = pick(results["btorrent-rc4"])
        lt = pick(results["libtorrent-rc4"])
        ltPlain = pick(results["libtorrent-plain"])
        print(
            f"{label}: btorrent plaintext {plain:.2f} s, RC4 {rc4:.2f} s "
            f"(speed lost to encryption {100 * (1 - plain / rc4):.0f} %, "
            f"target <= 25 %); libtorrent plaintext {ltPlain:.2f} s, RC4 "
            f"{lt:.2f} s (it loses {100 * (1 - ltPlain / lt):.0f} %); "
            f"btorrent / libtorrent with RC4: {rc4 / lt:.2f} (target <= 1.3)"
        )
    print(
        "median CPU s: "
        + ", ".join(f"{name} {statistics.median(cpus[name]):.2f}" for name in cpus)
    )


if __name__ == "__main__":
    main()
