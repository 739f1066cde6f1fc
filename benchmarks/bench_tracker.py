"""
Benchmark: announces per second and memory of C{twistd btorrent-tracker}.

    python benchmarks/bench_tracker.py [--peers 10000] [--torrents 100]
        [--window 64] [--connections 8] [--flood 50000]
        [--completed-flood 100000]

Starts C{twistd -n btorrent-tracker} as a subprocess on 127.0.0.1 (the
repository on C{PYTHONPATH}, so no install is needed), then, from this
process (the other core):

1. B{UDP}: C{--peers} simulated peers (distinct peer ids and ports, spread
   over C{--torrents} info-hashes) connect once and announce C{started},
   then every peer announces again (a regular re-announce); up to
   C{--window} requests in flight, replies matched by transaction id.
2. B{HTTP}: the same over HTTP/1.1 keep-alive on C{--connections}
   connections, requests pipelined C{--window} deep per connection, on
   other info-hashes.
3. B{flood}: C{--flood} UDP announces with random info-hashes and peer ids
   against the tracker's caps (C{--max-torrents 10000 --max-peers 100000}
   for this run): the tracker's memory must stay bounded, the announces
   beyond the caps get a failure.
4. B{completed flood}: C{--completed-flood} UDP announces with random
   info-hashes and peer ids and C{event=completed} (each would leave a
   download count behind), in rounds of C{--max-torrents} (10,000) against
   a tracker with C{--interval 2 --sweep-interval 1 --max-archived 20000}
   and a state file: after each round, once the peers have expired, no
   torrent may be held against the cap, the archived download counts stay
   within C{--max-archived}, the RSS stays flat once the archive is full,
   and a normal announce of a new torrent must be answered; at the end the
   state file must hold at most C{--max-torrents + --max-archived} counts.
   Any of these not held exits non-zero.

After each phase it prints announces/s and the tracker's RSS (VmRSS) from
C{/proc}, and checks C{/stats}.  Everything is bounded in count and has
timeouts; the tracker is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

from btorrent.tracker import announce as codec  # noqa: E402
from tests.realpeers import freePort  # noqa: E402
from tests.twistdproc import (  # noqa: E402
    compileCheckout,
    repositoryEnvironment,
    twistdCommand,
)


def rss(pid: int) -> str:
    """
    VmRSS and VmHWM of a process, in MiB.
    """
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    return f"RSS {fields['VmRSS']:.1f} MiB (peak {fields['VmHWM']:.1f} MiB)"


def cpuSeconds(pid: int) -> float:
    """
    User + system CPU seconds a process has used (from C{/proc}): a figure
    that holds on a loaded machine, where announces/s does not.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(port: int) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/stats", timeout=10) as r:
        return json.loads(r.read())


def startTracker(port: int, *extra: str) -> subprocess.Popen:
    """
    Start C{twistd -n btorrent-tracker} and wait until it answers.
    """
    process = subprocess.Popen(
        twistdCommand(
            "btorrent-tracker",
            "--port",
            str(port),
            "--interface",
            "127.0.0.1",
            *extra,
            logFile="-",
        ),
        env=repositoryEnvironment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            stats(port)
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit("the tracker did not start") from None
            time.sleep(0.1)


def stopTracker(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def peerId(n: int) -> bytes:
    return b"-BN0001-" + n.to_bytes(12, "big")


def infoHash(prefix: bytes, n: int) -> bytes:
    return prefix + n.to_bytes(20 - len(prefix), "big")


# --- UDP -------------------------------------------------------------------


class UDPClient:
    """
    A BEP 15 client that keeps up to C{window} requests in flight.
    """

    def __init__(self, port: int, window: int) -> None:
        self.address = ("127.0.0.1", port)
        self.window = window
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.settimeout(2.0)
        self.connectionId = self.connect()

    def connect(self) -> int:
        self.sock.sendto(
            codec.encodeUDPRequest(codec.UDPConnectRequest(1)), self.address
        )
        reply = codec.decodeUDPResponse(self.sock.recv(2048))
        assert isinstance(reply, codec.UDPConnectResponse), reply
        self.connectedAt = time.monotonic()
        return reply.connectionId

    def run(self, requests):
        """
        Send every L{codec.AnnounceRequest} (at most 2**32); return
        (answers, failures, lost, seconds).
        """
        if time.monotonic() - self.connectedAt > 30:
            self.connectionId = self.connect()
        # Encoded before the clock starts: the tracker is measured, not us.
        packets = [
            codec.encodeUDPRequest(
                codec.UDPAnnounceRequest(self.connectionId, tid, request)
            )
            for tid, request in enumerate(requests)
        ]
        start = time.perf_counter()
        pending = {}
        answers = failures = lost = 0
        it = enumerate(packets)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.window:
                try:
                    tid, packet = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending[tid] = True
                self.sock.sendto(packet, self.address)
            if not pending:
                return answers, failures, lost, time.perf_counter() - start
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                lost += len(pending)
                pending.clear()
                continue
            action, rtid = struct.unpack_from("!II", data)
            if pending.pop(rtid, None) is None:
                continue
            if action == codec.ACTION_ANNOUNCE:
                answers += 1
            else:
                failures += 1


def announces(hashPrefix, peers, torrents, event, rng):
    for n in range(peers):
        yield codec.AnnounceRequest(
            infoHash=infoHash(hashPrefix, n % torrents),
            peerId=peerId(n),
            port=1024 + n % 60000,
            uploaded=0,
            downloaded=0,
            left=0 if n % 10 == 0 else 1 << 20,
            event=event,
            numwant=50,
            key=rng.getrandbits(32),
        )


def benchUDP(port, pid, peers, torrents, window) -> None:
    client = UDPClient(port, window)
    rng = random.Random(1)
    for label, event in (("started", "started"), ("re-announce", "")):
        cpu = cpuSeconds(pid)
        answers, failures, lost, elapsed = client.run(
            announces(b"U", peers, torrents, event, rng)
        )
        cpu = cpuSeconds(pid) - cpu
        print(
            f"UDP  {label:11} {peers} announces in {elapsed:.2f} s: "
            f"{answers / elapsed:8.0f} announces/s, tracker CPU "
            f"{cpu / peers * 1e6:.0f} us each "
            f"(answered {answers}, failures {failures}, lost {lost}); {rss(pid)}"
        )


# --- HTTP ------------------------------------------------------------------


def httpRequest(port: int, request: codec.AnnounceRequest) -> bytes:
    url = codec.announceURL(f"http://127.0.0.1:{port}/announce", request)
    path = url.split(b"/", 3)[3]
    return (
        b"GET /" + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"User-Agent: bench_tracker\r\n\r\n"
    )


def benchHTTP(port, pid, peers, torrents, window, connections) -> None:
    import selectors

    rng = random.Random(2)
    for label, event in (("started", "started"), ("re-announce", "")):
        requests = [
            httpRequest(port, r) for r in announces(b"H", peers, torrents, event, rng)
        ]
        socks = [
            socket.create_connection(("127.0.0.1", port)) for _ in range(connections)
        ]
        cpu = cpuSeconds(pid)
        start = time.perf_counter()
        answers = failures = 0
        # Each connection takes every connections-th request, pipelined
        # `window` deep, all connections at once.
        selector = selectors.DefaultSelector()
        state = {}
        for i, s in enumerate(socks):
            s.setblocking(False)
            queue = requests[i::connections]
            state[s] = {"queue": queue, "next": 0, "inflight": 0, "buf": bytearray()}
            selector.register(s, selectors.EVENT_READ)

        def refill(s, state=state):
            st = state[s]
            n = min(window - st["inflight"], len(st["queue"]) - st["next"])
            if n > 0:
                s.setblocking(True)
                s.sendall(b"".join(st["queue"][st["next"] : st["next"] + n]))
                s.setblocking(False)
                st["next"] += n
                st["inflight"] += n

        for s in socks:
            refill(s)
        remaining = sum(len(st["queue"]) for st in state.values())
        deadline = time.monotonic() + 120
        while remaining:
            if time.monotonic() > deadline:
                raise SystemExit("HTTP benchmark timed out")
            for key, _ in selector.select(timeout=5):
                s = key.fileobj
                st = state[s]
                try:
                    data = s.recv(1 << 18)
                except BlockingIOError:
                    continue
                if not data:
                    raise SystemExit("tracker closed an HTTP connection")
                st["buf"] += data
                while st["inflight"]:
                    buf = st["buf"]
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = bytes(buf[:end]).lower()
                    i = head.find(b"content-length:")
                    length = int(head[i + 15 :].split(b"\r\n", 1)[0])
                    if len(buf) < end + 4 + length:
                        break
                    body = bytes(buf[end + 4 : end + 4 + length])
                    del buf[: end + 4 + length]
                    st["inflight"] -= 1
                    remaining -= 1
                    if body.startswith(b"d14:failure reason"):
                        failures += 1
                    else:
                        answers += 1
                refill(s)
        elapsed = time.perf_counter() - start
        for s in socks:
            selector.unregister(s)
            s.close()
        cpu = cpuSeconds(pid) - cpu
        print(
            f"HTTP {label:11} {peers} announces in {elapsed:.2f} s: "
            f"{answers / elapsed:8.0f} announces/s, tracker CPU "
            f"{cpu / peers * 1e6:.0f} us each "
            f"(answered {answers}, failures {failures}); {rss(pid)}"
        )


def benchFlood(flood: int, window: int) -> None:
    port = freePort()
    process = startTracker(port, "--max-torrents", "10000", "--max-peers", "100000")
    try:
        client = UDPClient(port, window)
        rng = random.Random(3)

        def randomAnnounces():
            for n in range(flood):
                yield codec.AnnounceRequest(
                    infoHash=rng.randbytes(20),
                    peerId=rng.randbytes(20),
                    port=1 + n % 65535,
                    uploaded=0,
                    downloaded=0,
                    left=1,
                    event="started",
                )

        answers, failures, lost, elapsed = client.run(randomAnnounces())
        s = stats(port)
        print(
            f"UDP  flood       {flood} random info-hashes in {elapsed:.2f} s: "
            f"{(answers + failures) / elapsed:8.0f} replies/s (answered {answers}, "
            f"refused by the caps {failures}, lost {lost}); torrents held "
            f"{s['torrents']}, peers {s['peers']}; {rss(process.pid)}"
        )
    finally:
        stopTracker(process)


class FloodCheckFailed(SystemExit):
    """
    A bound the completed-flood phase checks was not held (exits 1).
    """


def check(condition: bool, what: str) -> None:
    """
    Exit non-zero naming C{what} unless it held.
    """
    if not condition:
        print(f"FAIL: {what}")
        raise FloodCheckFailed(1)


def rssMiB(pid: int) -> float:
    """
    The VmRSS of a process in MiB.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def exchangeOnce(client: UDPClient, message, transactionId: int):
    """
    Send one BEP 15 request built by C{message(connectionId)} and return the
    decoded reply with C{transactionId} (replies to earlier, lost requests
    are skipped), or C{None} after the client's timeout.
    """
    if time.monotonic() - client.connectedAt > 30:
        client.connectionId = client.connect()
    client.sock.sendto(
        codec.encodeUDPRequest(message(client.connectionId)), client.address
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            data = client.sock.recv(4096)
        except socket.timeout:
            return None
        if struct.unpack_from("!I", data, 4)[0] == transactionId:
            return codec.decodeUDPResponse(data)
    return None


def benchCompletedFlood(flood: int, window: int) -> None:
    """
    Rounds of C{completed} announces with random info-hashes; check after
    each that the caps hold (see the module docstring).
    """
    maxTorrents, maxArchived, interval = 10_000, 20_000, 2
    directory = tempfile.mkdtemp(prefix="bench_tracker_")
    statePath = os.path.join(directory, "state.json")
    port = freePort()
    process = startTracker(
        port,
        "--max-torrents",
        str(maxTorrents),
        "--max-peers",
        "100000",
        "--max-archived",
        str(maxArchived),
        "--interval",
        str(interval),
        "--min-interval",
        "1",
        "--sweep-interval",
        "1",
        "--state-file",
        statePath,
    )
    try:
        client = UDPClient(port, window)
        rng = random.Random(4)
        rounds = -(-flood // maxTorrents)
        plateau = None
        firstHash = b""
        print(
            f"UDP  completed flood: {flood} announces with random info-hashes "
            f"and event=completed in {rounds} rounds; --max-torrents "
            f"{maxTorrents} --max-archived {maxArchived} --interval {interval}"
        )
        for number in range(1, rounds + 1):
            size = min(maxTorrents, flood - (number - 1) * maxTorrents)
            hashes = [rng.randbytes(20) for _ in range(size)]
            firstHash = hashes[0]
            requests = [
                codec.AnnounceRequest(
                    infoHash=h,
                    peerId=rng.randbytes(20),
                    port=1 + n % 65535,
                    uploaded=0,
                    downloaded=1 << 20,
                    left=0,
                    event="completed",
                    key=rng.getrandbits(32),
                )
                for n, h in enumerate(hashes)
            ]
            answers, failures, lost, elapsed = client.run(requests)
            during = stats(port)
            # The peers expire after two intervals; the sweep runs each second.
            deadline = time.monotonic() + 30
            after = stats(port)
            while after["torrents"] and time.monotonic() < deadline:
                time.sleep(0.25)
                after = stats(port)
            memory = rssMiB(process.pid)
            print(
                f"  round {number:2}: {size} in {elapsed:.2f} s (answered "
                f"{answers}, refused {failures}, lost {lost}); torrents "
                f"{during['torrents']}, after expiry {after['torrents']}, "
                f"archived {after['archived']}; RSS {memory:.1f} MiB"
            )
            check(
                during["torrents"] <= maxTorrents and during["peers"] <= 100_000,
                f"torrents held {during['torrents']} <= --max-torrents {maxTorrents}",
            )
            check(after["torrents"] == 0, "no empty torrent held after expiry")
            check(
                after["archived"] <= maxArchived,
                f"archived counts {after['archived']} <= --max-archived "
                f"{maxArchived}",
            )
            if plateau is None and after["archived"] >= maxArchived:
                plateau = memory
            elif plateau is not None:
                check(
                    memory <= plateau + 8,
                    f"RSS {memory:.1f} MiB within 8 MiB of {plateau:.1f} MiB "
                    "(archive full)",
                )
            tid = 0x5EED0000 + number

            def normal(event: str, tid=tid, number=number):
                return exchangeOnce(
                    client,
                    lambda cid: codec.UDPAnnounceRequest(
                        cid,
                        tid,
                        codec.AnnounceRequest(
                            infoHash=infoHash(b"N", number),
                            peerId=peerId(number),
                            port=6881,
                            uploaded=0,
                            downloaded=0,
                            left=1 << 20,
                            event=event,
                        ),
                    ),
                    tid,
                )

            reply = normal("started")
            check(
                isinstance(reply, codec.UDPAnnounceResponse)
                and reply.response.incomplete == 1,
                f"a normal announce of a new torrent is answered ({reply!r:.80})",
            )
            # Stopped again, so that the next round meets an empty tracker.
            normal("stopped")
        tid = 0x5CA40001
        reply = exchangeOnce(
            client,
            lambda cid: codec.UDPScrapeRequest(cid, tid, (firstHash,)),
            tid,
        )
        check(
            isinstance(reply, codec.UDPScrapeResponse)
            and reply.stats[0].downloaded == 1,
            f"a torrent of the last round still scrapes its download "
            f"({reply!r:.100})",
        )
    finally:
        stopTracker(process)
    try:
        with open(statePath, "rb") as f:
            saved = json.loads(f.read())["downloaded"]
        fileSize = os.path.getsize(statePath)
        check(
            len(saved) <= maxTorrents + maxArchived,
            f"state file holds {len(saved)} counts <= --max-torrents + "
            f"--max-archived ({maxTorrents + maxArchived})",
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    memory = (
        f"RSS within 8 MiB of {plateau:.1f} MiB once the archive was full"
        if plateau is not None
        else "(the archive never filled)"
    )
    print(
        f"  held in every round: torrents <= {maxTorrents}, none after expiry, "
        f"archived <= {maxArchived}, {memory}, a normal announce answered; "
        f"the last round scrapes its downloads; state file {len(saved)} counts "
        f"({fileSize} bytes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--torrents", type=int, default=100)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--flood", type=int, default=50_000)
    parser.add_argument("--completed-flood", type=int, default=100_000)
    args = parser.parse_args()
    compileCheckout()
    port = freePort()
    process = startTracker(port)
    try:
        print(f"tracker pid {process.pid} on 127.0.0.1:{port}; idle {rss(process.pid)}")
        benchUDP(port, process.pid, args.peers, args.torrents, args.window)
        benchHTTP(
            port, process.pid, args.peers, args.torrents, args.window, args.connections
        )
        s = stats(port)
        print(
            f"/stats: {s['torrents']} torrents, {s['peers']} peers, "
            f"{s['seeders']} seeders, {s['leechers']} leechers, "
            f"{s['announcesPerSecond']} announces/s over the last minute"
        )
        assert s["peers"] == 2 * args.peers, s
    finally:
        stopTracker(process)
    if args.flood:
        benchFlood(args.flood, args.window)
    if args.completed_flood:
        benchCompletedFlood(args.completed_flood, args.window)


if __name__ == "__main__":
    main()
