"""
The daemon on a DHT of libtorrent nodes, every node on 127.0.0.1: a
trackerless torrent seeded by C{twistd btorrent}, which joined through a
libtorrent bootstrap node, is found by a libtorrent leecher that knows only
a bare magnet link, and downloaded.

Fails (never skips) when libtorrent is missing.
"""

from __future__ import annotations

import os
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.daemonproc import DaemonProcess
from tests.dhtnet import offLoopbackSockets, processSockets
from tests.realclients import (
    LibtorrentSession,
    infoHashOf,
    makeTorrent,
    sha1File,
    writeRandomFile,
)


class DaemonDHTTests(SynchronousTestCase):
    def test_btorrentSeedsThroughTheDHT(self) -> None:
        """
        A libtorrent leecher with only C{magnet:?xt=urn:btih:HASH}, on a DHT
        bootstrapped by a libtorrent node, finds the btorrent daemon that
        seeds the torrent (it announced itself on the DHT) and completes.
        """
        before = processSockets()
        base = os.path.abspath(self.mktemp())
        seedDir = os.path.join(base, "seed")
        os.makedirs(seedDir)
        data = writeRandomFile(os.path.join(seedDir, "blob"), 2 << 20, seed=9)
        torrentPath = makeTorrent(data, [], base)
        infoHash = infoHashOf(torrentPath)
        router = LibtorrentSession(dhtBootstrap=[])
        self.addCleanup(router.close)
        routerAddress = f"127.0.0.1:{router.port}"
        daemon = DaemonProcess(
            self,
            base,
            "--dht-bootstrap",
            routerAddress,
            "--torrent",
            torrentPath,
            downloadDir=seedDir,
        )
        daemon.waitFor(
            lambda: daemon.torrents("status")[0]["status"] == 6, 30, "seeding"
        )
        settings = daemon.rpc.call("session-get", fields=["dht-enabled"])
        self.assertTrue(settings["dht-enabled"])
        leecher = LibtorrentSession(dhtBootstrap=[("127.0.0.1", router.port)])
        self.addCleanup(leecher.close)
        out = os.path.join(base, "out")
        handle = leecher.addMagnet(f"magnet:?xt=urn:btih:{infoHash.hex()}", out)
        deadline = time.monotonic() + 90
        while not leecher.finished(handle):
            self.assertLess(
                time.monotonic(),
                deadline,
                "the leecher never completed\n" + daemon.log()[-3000:],
            )
            leecher.dhtAnnounce(handle)
            time.sleep(0.5)
        self.assertEqual(sha1File(os.path.join(out, "blob")), sha1File(data))
        # The routing table's size is in /metrics (the router, the leecher).
        with urllib.request.urlopen(
            f"http://127.0.0.1:{daemon.rpcPort}/metrics", timeout=10
        ) as response:
            families = {
                f.name: f
                for f in text_string_to_metric_families(response.read().decode())
            }
        [sample] = families["btorrent_dht_nodes"].samples
        self.assertGreaterEqual(sample.value, 1)
        self.assertTrue(daemon.stop())
        # The DHT nodes were kept for the next start.
        self.assertTrue(os.path.exists(os.path.join(daemon.stateDir, "dht.json")))
        self.assertNotIn("Traceback", daemon.log())
        self.assertEqual(offLoopbackSockets(before), [])

    def test_btorrentLeechesThroughTheDHT(self) -> None:
        """
        btorrent, bootstrapped to a libtorrent node and given only
        C{magnet:?xt=urn:btih:HASH}, finds the libtorrent seeder on the DHT,
        fetches the metadata and the data, byte-identical.
        """
        before = processSockets()
        base = os.path.abspath(self.mktemp())
        seedDir = os.path.join(base, "seed")
        os.makedirs(seedDir)
        data = writeRandomFile(os.path.join(seedDir, "blob"), 2 << 20, seed=10)
        torrentPath = makeTorrent(data, [], base)
        infoHash = infoHashOf(torrentPath)
        router = LibtorrentSession(dhtBootstrap=[])
        self.addCleanup(router.close)
        seeder = LibtorrentSession(dhtBootstrap=[("127.0.0.1", router.port)])
        self.addCleanup(seeder.close)
        seed = seeder.add(torrentPath, seedDir, seed=True, dht=True)
        seeder.dhtAnnounce(seed)
        daemon = DaemonProcess(
            self, base, "--dht-bootstrap", f"127.0.0.1:{router.port}"
        )
        daemon.rpc.call("torrent-add", filename=f"magnet:?xt=urn:btih:{infoHash.hex()}")

        def complete() -> bool:
            seeder.dhtAnnounce(seed)
            torrents = daemon.torrents("percentDone", "status", "name")
            return bool(torrents) and torrents[0]["percentDone"] == 1

        daemon.waitFor(complete, 120, "the magnet download through the DHT")
        [torrent] = daemon.torrents("name")
        self.assertEqual(torrent["name"], "blob")
        self.assertEqual(
            sha1File(os.path.join(daemon.downloadDir, "blob")), sha1File(data)
        )
        self.assertTrue(daemon.stop())
        self.assertNotIn("Traceback", daemon.log())
        self.assertEqual(offLoopbackSockets(before), [])
