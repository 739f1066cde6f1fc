"""
A swarm of 200 btorrent DHT nodes in one process: sans-IO cores wired
together in memory (all on 127.0.0.1, one C{task.Clock}).  After they
bootstrap one by one through the first node, every lookup for an announced
info-hash must find its announcer.  The test prints the median hops and
messages per lookup.
"""

from __future__ import annotations

import random
import statistics

from twisted.trial.unittest import SynchronousTestCase

from btorrent.dht.routing import K
from tests.dhtnet import MemoryNetwork

NODES = 200
TORRENTS = 20
LOOKUPS_PER_TORRENT = 5


class SwarmTests(SynchronousTestCase):
    def test_swarm(self) -> None:
        rng = random.Random(2024)
        net = MemoryNetwork(seed=2024)
        nodes = [net.addNode() for _ in range(NODES)]
        router = nodes[0].ownAddress
        for node in nodes[1:]:
            node.bootstrap([router])
            net.pump()
            net.clock.advance(0.05)
        joinDatagrams = net.delivered
        self.assertEqual(net.lost, 0)
        sizes = sorted(len(node.table) for node in nodes)
        self.assertGreaterEqual(sizes[0], K)

        announcers = {}
        for _ in range(TORRENTS):
            infoHash = rng.randbytes(20)
            announcer = rng.choice(nodes)
            port = rng.randrange(1024, 65536)
            done = []
            announcer.announce(infoHash, port, done=done.append)
            net.pump()
            self.assertEqual(done[0].announced, K)
            announcers[infoHash] = ("127.0.0.1", port)

        hops, queries, datagrams = [], [], []
        for infoHash, peer in announcers.items():
            for _ in range(LOOKUPS_PER_TORRENT):
                seeker = rng.choice(nodes)
                found, done = [], []
                before = net.delivered
                seeker.getPeers(infoHash, found.append, done.append)
                net.pump()
                self.assertTrue(done[0].done)
                self.assertIn(peer, found, f"lookup from {seeker.ownAddress}")
                hops.append(done[0].hops)
                queries.append(done[0].queries)
                datagrams.append(net.delivered - before)
        self.assertEqual(net.lost, 0)
        total = sum(node.stats.lookups for node in nodes)
        print(
            f"\nDHT swarm of {NODES} nodes: join {joinDatagrams} datagrams"
            f" ({joinDatagrams / (NODES - 1):.0f} per node), routing table sizes"
            f" min {sizes[0]} median {statistics.median(sizes)} max {sizes[-1]};"
            f" {len(hops)} get_peers lookups all found the announcer:"
            f" median hops {statistics.median(hops)},"
            f" median queries {statistics.median(queries)},"
            f" median datagrams {statistics.median(datagrams)}"
            f" (queries + answers + pings back); {total} lookups in all"
        )
        self.assertLessEqual(statistics.median(queries), 30)
