"""
C{/metrics} of a real C{twistd -n btorrent}, read over HTTP and parsed with
C{prometheus_client}'s own parsers: after the daemon downloads a torrent
from a real libtorrent seeder (announcing to a dead tracker, then to a real
opentracker), the download counter covers the torrent's size, one torrent
is seeding, every piece was verified once, and the announces count by
result.  The page is behind the RPC's whitelist and password.
"""

from __future__ import annotations

import base64
import os
import time
import urllib.error
import urllib.request
from typing import Dict, Optional, Tuple

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parseOpenMetrics,
)
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.builders import buildTorrent
from tests.daemonproc import DaemonProcess
from tests.realpeers import Opentracker, freePort
from tests.realseeders import libtorrentSeeder

#: What Prometheus sends.
OPENMETRICS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(
    port: int, path: str = "/metrics", headers: Optional[Dict[str, str]] = None
) -> Tuple[int, Dict[str, str], bytes]:
    """
    GET a page of a daemon on 127.0.0.1.

    @return: the status, the headers and the body.
    """
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers=headers or {}
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def samples(text: str, openMetrics: bool = False) -> Dict[tuple, float]:
    """
    Every sample, by name and sorted labels.
    """
    parse = parseOpenMetrics if openMetrics else text_string_to_metric_families
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse(text)
        for s in family.samples
    }


class MetricsDaemonTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)

    def test_download(self) -> None:
        """
        A 2 MB torrent downloaded from libtorrent: the counters cover it,
        in both formats; the page is scraped without any session id.
        """
        size = 2_000_000
        data = os.path.join(self.base, "data")
        dead = f"http://127.0.0.1:{freePort()}/announce"
        tracker = Opentracker().start()
        self.addCleanup(tracker.stop)
        built = buildTorrent(
            data,
            [("watched.bin", size)],
            32768,
            single=True,
            trackers=[[dead], [tracker.announceURL]],
        )
        torrent, info = built.torrentBytes, built.metainfo
        tracker.whitelist([info.infoHash])
        seeder = libtorrentSeeder(data, torrent)
        self.addCleanup(seeder.close)

        daemon = DaemonProcess(self, os.path.join(self.base, "daemon"))
        started = time.monotonic()
        status, headers, body = get(daemon.rpcPort)
        self.assertEqual(status, 200)
        before = samples(body.decode("utf-8"))
        self.assertEqual(before[("btorrent_downloaded_bytes_total", ())], 0)
        self.assertEqual(before[("btorrent_torrents", (("state", "seeding"),))], 0)

        added = daemon.rpc.call(
            "torrent-add", metainfo=base64.b64encode(torrent).decode()
        )["torrent-added"]
        seeder.connect("127.0.0.1", daemon.peerPort)
        daemon.waitFor(
            lambda: daemon.torrents("percentDone", "status")[0]["status"] == 6,
            60,
            "the download",
        )

        def announced() -> bool:
            found = samples(get(daemon.rpcPort)[2].decode("utf-8"))
            return found[("btorrent_tracker_announces_total", (("result", "success"),))]

        daemon.waitFor(announced, 20, "an announce answered by opentracker")
        status, headers, body = get(daemon.rpcPort)
        self.assertEqual(status, 200)
        self.assertEqual(
            headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8"
        )
        found = samples(body.decode("utf-8"))
        self.assertGreaterEqual(found[("btorrent_downloaded_bytes_total", ())], size)
        self.assertEqual(found[("btorrent_torrents", (("state", "seeding"),))], 1)
        self.assertEqual(
            sum(v for (n, _), v in found.items() if n == "btorrent_torrents"), 1
        )
        self.assertEqual(found[("btorrent_pieces_verified_total", ())], info.pieceCount)
        self.assertEqual(found[("btorrent_pieces_failed_total", ())], 0)
        # The dead tracker of the first tier failed, opentracker answered.
        self.assertGreaterEqual(
            found[("btorrent_tracker_announces_total", (("result", "failure"),))], 1
        )
        self.assertGreaterEqual(
            found[("btorrent_tracker_announces_total", (("result", "success"),))], 1
        )
        labels = (("info_hash", info.infoHash.hex()), ("name", "watched.bin"))
        self.assertEqual(found[("btorrent_torrent_progress_ratio", labels)], 1.0)
        self.assertEqual(found[("btorrent_torrent_size_bytes", labels)], size)
        self.assertEqual(
            found[("btorrent_torrent_downloaded_bytes_total", labels)], size
        )
        self.assertEqual(added["hashString"], info.infoHash.hex())
        self.assertNotIn(("btorrent_dht_nodes", ()), found)

        status, headers, body = get(
            daemon.rpcPort, headers={"Accept": OPENMETRICS_ACCEPT}
        )
        self.assertEqual(status, 200)
        self.assertTrue(
            headers["Content-Type"].startswith(
                "application/openmetrics-text; version=1.0.0"
            )
        )
        text = body.decode("utf-8")
        self.assertTrue(text.endswith("# EOF\n"))
        again = samples(text, openMetrics=True)
        self.assertGreaterEqual(again[("btorrent_downloaded_bytes_total", ())], size)
        self.assertEqual(again[("btorrent_pieces_verified_total", ())], info.pieceCount)

        # The log: each change of state, and a progress line at completion,
        # not one every few seconds (at most one a minute while it runs).
        log = daemon.log()
        for state in ("checking", "downloading", "seeding"):
            self.assertIn(f"watched.bin: {state}\n", log)
        progress = [line for line in log.splitlines() if "% down " in line]
        minutes = (time.monotonic() - started) // 60
        self.assertGreaterEqual(len(progress), 1)
        self.assertLessEqual(len(progress), 1 + minutes)
        self.assertIn("watched.bin: 100.0% down", progress[-1])

        # After a restart the session's totals go on from where they were.
        self.assertTrue(daemon.stop())
        daemon.start()
        found = samples(get(daemon.rpcPort)[2].decode("utf-8"))
        self.assertGreaterEqual(found[("btorrent_downloaded_bytes_total", ())], size)
        self.assertEqual(
            found[("btorrent_torrent_downloaded_bytes_total", labels)], size
        )

    def test_dht(self) -> None:
        """
        Two daemons whose DHTs know only each other (on 127.0.0.1): each
        one's C{btorrent_dht_nodes} comes to count the other.
        """
        first = DaemonProcess(self, os.path.join(self.base, "a"), start=False)
        second = DaemonProcess(self, os.path.join(self.base, "b"), start=False)
        first.arguments += ["--dht-bootstrap", f"127.0.0.1:{second.peerPort}"]
        second.arguments += ["--dht-bootstrap", f"127.0.0.1:{first.peerPort}"]
        first.start()
        second.start()
        for daemon in (first, second):

            def nodes(daemon=daemon):
                found = samples(get(daemon.rpcPort)[2].decode("utf-8"))
                return found.get(("btorrent_dht_nodes", ()), -1) >= 1

            daemon.waitFor(nodes, 30, "a DHT node counted")

    def test_password(self) -> None:
        """
        With a password, no metrics without the right credentials.
        """
        secret = os.path.join(self.base, "secret")
        with open(secret, "w") as f:
            f.write("hunter2\n")
        daemon = DaemonProcess(
            self,
            os.path.join(self.base, "daemon"),
            "--rpc-username",
            "prometheus",
            "--rpc-password-file",
            secret,
            auth=("prometheus", "hunter2"),
        )
        status, headers, body = get(daemon.rpcPort)
        self.assertEqual(status, 401)
        self.assertEqual(headers["WWW-Authenticate"], 'Basic realm="Transmission"')
        self.assertNotIn(b"btorrent_", body)
        wrong = base64.b64encode(b"prometheus:nope").decode()
        status, _, body = get(
            daemon.rpcPort, headers={"Authorization": "Basic " + wrong}
        )
        self.assertEqual(status, 401)
        right = base64.b64encode(b"prometheus:hunter2").decode()
        status, _, body = get(
            daemon.rpcPort, headers={"Authorization": "Basic " + right}
        )
        self.assertEqual(status, 200)
        self.assertIn(("btorrent_peers", ()), samples(body.decode("utf-8")))

    def test_whitelist(self) -> None:
        """
        From an address outside the whitelist: 403, no metrics (the only
        address allowed here is one this machine never uses).
        """
        daemon = DaemonProcess(
            self,
            os.path.join(self.base, "daemon"),
            "--rpc-whitelist",
            "192.0.2.1",
            start=False,
        )
        # It is up once it answers at all (with the refusal).
        daemon._answers = lambda: _status(daemon.rpcPort) is not None
        daemon.start()
        status, _, body = get(daemon.rpcPort)
        self.assertEqual(status, 403)
        self.assertIn(b"unauthorized IP address 127.0.0.1", body)
        self.assertNotIn(b"btorrent_", body)


def _status(port: int) -> Optional[int]:
    """
    The status of C{/metrics}, or C{None} while nothing listens.
    """
    try:
        return get(port)[0]
    except OSError:
        return None
