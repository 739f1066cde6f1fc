"""
Real clients through btorrent's tracker server on 127.0.0.1: libtorrent
seeds aria2 leechers over HTTP with the tracker run as a C{twistd -n
btorrent-tracker} subprocess (proving the plugin), and libtorrent seeds
libtorrent leechers over UDP with the tracker in-process on the trial
reactor.  Every download is compared byte for byte and the scrape counts
are checked against what the clients did.

These tests fail (never skip) when libtorrent, aria2 or twistd is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.request

from twisted.internet import defer, reactor, task, threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from btorrent.tracker import announce as codec
from btorrent.trackerserver.server import (
    TrackerResource,
    TrackerSite,
    UDPTrackerProtocol,
    loadState,
)
from btorrent.trackerserver.swarm import ConnectionIds, Swarm
from tests.realclients import (
    LibtorrentSession,
    aria2Leecher,
    freePort,
    infoHashOf,
    makeTorrent,
    sha1File,
    waitUntil,
    writeRandomFile,
)

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def httpGet(url: str) -> bytes:
    """
    GET a loopback URL (no proxy).
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return response.read()


def httpScrape(port: int, infoHash: bytes) -> tuple:
    """
    Scrape one info-hash over HTTP: C{(complete, downloaded, incomplete)}.
    """
    url = codec.scrapeRequestURL(f"http://127.0.0.1:{port}/scrape", [infoHash])
    stats = codec.decodeScrapeResponse(httpGet(url.decode("ascii")))[infoHash]
    return (stats.complete, stats.downloaded, stats.incomplete)


def udpScrape(port: int, infoHash: bytes) -> tuple:
    """
    Connect and scrape over UDP (BEP 15) with a blocking socket:
    C{(complete, downloaded, incomplete)}.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.bind(("127.0.0.1", 0))
        s.sendto(
            codec.encodeUDPRequest(codec.UDPConnectRequest(1)), ("127.0.0.1", port)
        )
        reply = codec.decodeUDPResponse(s.recv(2048))
        assert isinstance(reply, codec.UDPConnectResponse), reply
        request = codec.UDPScrapeRequest(reply.connectionId, 2, (infoHash,))
        s.sendto(codec.encodeUDPRequest(request), ("127.0.0.1", port))
        reply = codec.decodeUDPResponse(s.recv(2048))
        assert isinstance(reply, codec.UDPScrapeResponse), reply
        stats = reply.stats[0]
        return (stats.complete, stats.downloaded, stats.incomplete)


class TwistdTracker:
    """
    C{twistd -n btorrent-tracker} as a subprocess on 127.0.0.1, with the
    repository on C{PYTHONPATH} so its C{twisted/plugins} is found.
    """

    def __init__(self, directory: str, *extra: str) -> None:
        twistd = shutil.which("twistd")
        if twistd is None:
            raise RuntimeError("twistd is not installed (pip install Twisted)")
        self.port = freePort()
        self.logPath = os.path.join(directory, "tracker.log")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [REPOSITORY] + [p for p in [env.get("PYTHONPATH")] if p]
        )
        with open(self.logPath, "wb") as log:
            self.process = subprocess.Popen(
                [
                    twistd,
                    "-n",
                    "--pidfile=",
                    "btorrent-tracker",
                    "--port",
                    str(self.port),
                    "--interface",
                    "127.0.0.1",
                    *extra,
                ],
                cwd=directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        waitUntil(self._ready, 15, "twistd btorrent-tracker to listen")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"twistd exited:\n{self.log()}")
        try:
            httpGet(f"http://127.0.0.1:{self.port}/stats")
        except OSError:
            return False
        return True

    def log(self) -> str:
        with open(self.logPath, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> int:
        """
        SIGTERM and wait; return the exit status.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)


class TwistdTrackerTests(SynchronousTestCase):
    """
    The tracker as a twistd plugin subprocess, with libtorrent and aria2.
    """

    def test_libtorrentSeedsAria2OverHTTP(self) -> None:
        """
        A libtorrent seeder and two aria2 leechers find each other through
        C{twistd btorrent-tracker} over HTTP; both downloads are identical
        to the seed; the scrape shows one seed, two downloads and no
        leechers; the state file keeps the count; the log has no traceback.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        stateFile = os.path.join(directory, "state.json")
        tracker = TwistdTracker(directory, "--state-file", stateFile)
        self.addCleanup(tracker.stop)
        port = tracker.port
        seedDir = os.path.join(directory, "seed")
        data = writeRandomFile(os.path.join(seedDir, "blob.bin"), 3 << 20, seed=11)
        torrent = makeTorrent(data, [f"http://127.0.0.1:{port}/announce"], directory)
        infoHash = infoHashOf(torrent)

        with LibtorrentSession() as seeder:
            seeder.add(torrent, seedDir, seed=True)
            waitUntil(lambda: httpScrape(port, infoHash)[0] == 1, 10, "the seed")
            leechers = [
                aria2Leecher(
                    torrent,
                    os.path.join(directory, f"aria2-{i}"),
                    logPath=os.path.join(directory, f"aria2-{i}.log"),
                )
                for i in range(2)
            ]
            for i, process in enumerate(leechers):
                self.addCleanup(lambda p=process: p.poll() is None and p.kill())
                self.assertEqual(process.wait(timeout=60), 0, f"aria2 {i} failed")
            for i in range(2):
                self.assertEqual(
                    sha1File(os.path.join(directory, f"aria2-{i}", "blob.bin")),
                    sha1File(data),
                )
            # aria2 announced completed, then stopped on exit.
            waitUntil(
                lambda: httpScrape(port, infoHash) == (1, 2, 0), 10, "scrape 1/2/0"
            )
            stats = json.loads(httpGet(f"http://127.0.0.1:{port}/stats"))
            self.assertEqual(
                (stats["torrents"], stats["peers"], stats["seeders"]), (1, 1, 1)
            )
            # At least 5 announces: the seed, each aria2 started and stopped.
            self.assertGreaterEqual(stats["announcesPerSecond"], round(5 / 60, 3))

        # twistd re-raises SIGTERM after a clean shutdown.
        self.assertIn(tracker.stop(), (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down", tracker.log())
        self.assertEqual(loadState(stateFile), {infoHash: 2})
        log = tracker.log()
        self.assertNotIn("Traceback", log)
        self.assertIn("btorrent.trackerserver.server", log)


class InProcessUDPTests(TestCase):
    """
    The tracker in-process on the trial reactor, with libtorrent over UDP.
    """

    timeout = 90

    def poll(self, predicate, timeout: float, what: str) -> defer.Deferred:
        """
        Fire when C{predicate()} is true, polling on the reactor.
        """
        deadline = reactor.seconds() + timeout

        @defer.inlineCallbacks
        def loop():
            while not predicate():
                if reactor.seconds() > deadline:
                    raise AssertionError(f"timed out waiting for {what}")
                yield task.deferLater(reactor, 0.05, lambda: None)

        return loop()

    @defer.inlineCallbacks
    def test_libtorrentOverUDP(self):
        """
        A libtorrent seeder and two libtorrent leechers swarm through the
        UDP tracker; downloads are identical; UDP scrape shows 3 seeds and 2
        downloads, then 1 seed after the leechers stop.
        """
        swarm = Swarm(reactor)
        port = freePort()
        tcp = reactor.listenTCP(
            port, TrackerSite(TrackerResource(swarm)), interface="127.0.0.1"
        )
        self.addCleanup(tcp.stopListening)
        udp = reactor.listenUDP(
            port,
            UDPTrackerProtocol(swarm, ConnectionIds(reactor)),
            interface="127.0.0.1",
        )
        self.addCleanup(udp.stopListening)

        directory = os.path.abspath(self.mktemp())
        seedDir = os.path.join(directory, "seed")
        data = writeRandomFile(os.path.join(seedDir, "blob.bin"), 4 << 20, seed=12)
        torrent = makeTorrent(data, [f"udp://127.0.0.1:{port}/announce"], directory)
        infoHash = infoHashOf(torrent)

        seeder = LibtorrentSession()
        self.addCleanup(seeder.close)
        seeder.add(torrent, seedDir, seed=True)
        yield self.poll(lambda: swarm.scrape(infoHash)[0] == 1, 15, "the seed")

        leechers = []
        for i in range(2):
            session = LibtorrentSession()
            self.addCleanup(session.close)
            handle = session.add(torrent, os.path.join(directory, f"lt-{i}"))
            leechers.append((session, handle))

        yield self.poll(
            lambda: all(s.finished(h) for s, h in leechers),
            30,
            "both leechers",
        )
        # libtorrent is finished once every piece passed its check, which
        # may be before its disk threads wrote the last blocks.
        expected = sha1File(data)
        for i in range(2):
            path = os.path.join(directory, f"lt-{i}", "blob.bin")
            yield self.poll(
                lambda path=path: os.path.exists(path) and sha1File(path) == expected,
                5,
                f"leecher {i}'s file to be identical",
            )
        yield self.poll(
            lambda: swarm.scrape(infoHash) == (3, 2, 0),
            15,
            "completed",
        )
        stats = yield threads.deferToThread(udpScrape, port, infoHash)
        self.assertEqual(stats, (3, 2, 0))

        for session, handle in leechers:
            session.session.remove_torrent(handle)
            session.handles.remove(handle)
        yield self.poll(lambda: swarm.scrape(infoHash) == (1, 2, 0), 15, "stopped")
        stats = yield threads.deferToThread(udpScrape, port, infoHash)
        self.assertEqual(stats, (1, 2, 0))
        peers = swarm.torrents[infoHash].peers
        self.assertEqual([p.port for p in peers.values()], [seeder.port])
