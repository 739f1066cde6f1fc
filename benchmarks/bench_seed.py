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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import libtorrent as lt  # noqa: E402

from btorrent import metainfo  # noqa: E402
from btorrent.resume import recheck  # noqa: E402
from btorrent.storage import MultiFileWriter  # noqa: E402


def freePort() -> int:
    """
    A TCP port free on 127.0.0.1.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def writeLargeFile(path: str, size: int) -> None:
    """
    Pseudo-random bytes, fast: a random 1 MiB block with a counter prefix.
    """
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        written = 0
        counter = 0
        while written < size:
            block[:8] = counter.to_bytes(8, "big")
            chunk = memoryview(block)[: min(len(block), size - written)]
            f.write(chunk)
            written += len(chunk)
            counter += 1


def makeTorrent(directory: str, name: str, size: int, pieceLength: int) -> bytes:
    """
    A v1 torrent of C{directory/name}, made by libtorrent.
    """
    entries = [lt.create_file_entry(name, size)]
    ct = lt.create_torrent(entries, pieceLength, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, directory)
    return lt.bencode(ct.generate())


def session(port: int, encryption: bool = True) -> lt.session:
    """
    A libtorrent session on 127.0.0.1 only, no DHT, LSD, UPnP, NAT-PMP,
    uTP.
    """
    settings = {
        "listen_interfaces": f"127.0.0.1:{port}",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": 0,
    }
    if not encryption:
        settings["out_enc_policy"] = int(lt.enc_policy.disabled)
        settings["in_enc_policy"] = int(lt.enc_policy.disabled)
    return lt.session(settings)


FLAGS = (
    lt.torrent_flags.disable_dht
    | lt.torrent_flags.disable_lsd
    | lt.torrent_flags.disable_pex
)


def addTorrent(s: lt.session, torrentBytes: bytes, savePath: str, seed: bool):
    """
    Add a torrent to a libtorrent session.
    """
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(torrentBytes))
    params.save_path = savePath
    params.flags = FLAGS | (lt.torrent_flags.seed_mode if seed else 0)
    return s.add_torrent(params)


def leech(torrentBytes: bytes, outDir: str, seederPort: int, timeout: float):
    """
    Download with a fresh libtorrent leecher from the seeder on
    C{seederPort}.

    @return: the wall time from adding the torrent to having every piece.
    """
    os.makedirs(outDir, exist_ok=True)
    s = session(freePort(), encryption=False)
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


def twistdPath() -> str:
    """
    The twistd of this Python.
    """
    candidate = os.path.join(os.path.dirname(sys.executable), "twistd")
    return candidate if os.path.exists(candidate) else shutil.which("twistd")


#: C{twistd btorrent}'s service (L{btorrent.tap.makeService}) under
#: pyinstrument, for C{--profile}.
PROFILE_TAC = """
from pyinstrument import Profiler
from twisted.application import service
from twisted.internet import reactor

from btorrent import tap

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
    args = [
        "-n",
        "--pidfile=",
        f"--logfile={logPath}",
        "btorrent",
        f"--torrent={torrentPath}",
        f"--download-dir={dataDir}",
        f"--state-dir={stateDir}",
        f"--port={port}",
        *interfaceOption(),
    ]
    if profile:
        # twistd ends a process stopped by a signal with that signal, so a
        # profiler wrapping it never writes: the .tac profiles the reactor
        # thread of the same service and writes at shutdown.
        tac = logPath + ".tac"
        with open(tac, "w") as f:
            f.write(PROFILE_TAC.format(options=args[4:], out=logPath + ".profile"))
        args = args[:3] + ["-y", tac]
    command = [twistdPath(), *args]
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
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


def interfaceOption():
    """
    C{--interface=127.0.0.1} if C{twistd btorrent} has that option.
    """
    from btorrent import tap

    names = {parameter[0] for parameter in tap.Options.optParameters}
    return ["--interface=127.0.0.1"] if "interface" in names else []


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
        torrentBytes = makeTorrent(seedDir, name, size, args.piece_kib << 10)
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
        ltSeeder = session(freePort())
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
            btorrent.send_signal(signal.SIGTERM)
            try:
                btorrent.wait(30)
            except subprocess.TimeoutExpired:
                btorrent.kill()
                btorrent.wait()
            if args.profile:
                profile = os.path.join(base, "twistd.log.profile")
                if os.path.exists(profile):
                    with open(profile) as f:
                        print(f.read())
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
