"""
Interop: btorrent's DHT with libtorrent's, every node on 127.0.0.1.

1. btorrent's L{DHTService} is the only bootstrap node of a libtorrent
   seeder and of a libtorrent leecher that knows nothing but a bare magnet
   link: both join through btorrent, the seeder announces, the leecher's
   lookup finds it and the download completes.
2. btorrent joins a DHT of libtorrent nodes (through a libtorrent bootstrap
   node): libtorrent answers its find_node and get_peers, and btorrent's
   lookup finds the libtorrent seeder's announce.

libtorrent settings follow C{shared/peers.md}
(L{tests.realclients.loopbackDHTSettings}).  The tests fail, never skip,
when libtorrent is missing.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from btorrent.dht.protocol import DHTService
from tests.dhtnet import guardProtocol, offLoopbackSockets, processSockets, waitFor
from tests.realclients import (
    LibtorrentSession,
    infoHashOf,
    makeTorrent,
    sha1File,
    writeRandomFile,
)
from tests.realpeers import freePort


class DHTInteropTests(TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.socketsBefore = processSockets()
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.directory, "seed"))
        self.data = writeRandomFile(
            os.path.join(self.directory, "seed", "blob"), 3 << 20, seed=5
        )
        # No tracker: peers come from the DHT only.
        self.torrent = makeTorrent(self.data, [], self.directory)
        self.infoHash = infoHashOf(self.torrent)

    def assertLoopbackOnly(self) -> None:
        """
        Every Internet socket opened during the test (btorrent's and
        libtorrent's, listening and connected) is on 127.0.0.1.
        """
        self.assertEqual(offLoopbackSockets(self.socketsBefore), [])

    def btorrentNode(self, bootstrap=()) -> DHTService:
        service = DHTService(reactor, freePort(), "127.0.0.1", bootstrap)
        guardProtocol(self, service.protocol)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def libtorrent(self, bootstrap) -> LibtorrentSession:
        session = LibtorrentSession(dhtBootstrap=bootstrap)
        self.addCleanup(session.close)
        return session

    @defer.inlineCallbacks
    def test_libtorrentSwarmThroughBtorrent(self):
        """
        A libtorrent seeder and a libtorrent leecher with a bare magnet,
        both bootstrapped only through btorrent's node, find each other
        and the leecher completes.
        """
        node = self.btorrentNode()
        router = [("127.0.0.1", node.boundPort)]
        seeder = self.libtorrent(router)
        seed = seeder.add(self.torrent, os.path.dirname(self.data), seed=True, dht=True)
        leecher = self.libtorrent(router)
        out = os.path.join(self.directory, "out")
        magnet = f"magnet:?xt=urn:btih:{self.infoHash.hex()}"
        leech = leecher.addMagnet(magnet, out)

        def nudge() -> None:
            seeder.dhtAnnounce(seed)
            leecher.dhtAnnounce(leech)

        seederPeer = ("127.0.0.1", seeder.port)
        yield waitFor(
            reactor,
            lambda: seederPeer
            in node.node.peerStore.get(
                self.infoHash, reactor.seconds(), 50, node.node.rng
            ),
            30,
            "the libtorrent seeder's announce to btorrent",
            every=nudge,
        )
        yield waitFor(
            reactor,
            lambda: leecher.finished(leech),
            60,
            "the libtorrent leecher to complete",
            every=nudge,
        )
        self.assertEqual(sha1File(os.path.join(out, "blob")), sha1File(self.data))
        stats = node.stats
        self.assertIn(("127.0.0.1", seeder.port), node.node.table)
        self.assertIn(("127.0.0.1", leecher.port), node.node.table)
        self.assertGreaterEqual(stats.announcesIn, 1)
        self.assertGreater(stats.queriesIn, 2)
        self.assertEqual(stats.badTokens, 0)
        self.assertLoopbackOnly()
        print(
            f"\nlibtorrent swarm through btorrent's DHT node: {stats.queriesIn}"
            f" queries in, {stats.announcesIn} announces, {stats.nodes} nodes"
        )

    @defer.inlineCallbacks
    def test_btorrentLooksUpThroughLibtorrent(self):
        """
        btorrent bootstraps through a libtorrent node; libtorrent nodes
        answer its find_node and get_peers; its lookup finds the libtorrent
        seeder's announce.
        """
        router = self.libtorrent([])
        routerAddress = ("127.0.0.1", router.port)
        seeder = self.libtorrent([routerAddress])
        seed = seeder.add(self.torrent, os.path.dirname(self.data), seed=True, dht=True)
        node = self.btorrentNode([routerAddress])
        yield waitFor(
            reactor,
            lambda: routerAddress in node.node.table,
            20,
            "btorrent to join through libtorrent",
        )
        found, lookups = [], []

        def lookup() -> None:
            seeder.dhtAnnounce(seed)
            if not lookups or lookups[-1].done:
                lookups.append(node.getPeers(self.infoHash, found.append))

        seederPeer = ("127.0.0.1", seeder.port)
        yield waitFor(
            reactor,
            lambda: seederPeer in found,
            40,
            "btorrent's get_peers to find the libtorrent seeder",
            every=lookup,
        )
        yield waitFor(
            reactor,
            lambda: ("127.0.0.1", seeder.port) in node.node.table,
            20,
            "the libtorrent seeder's DHT node in btorrent's table",
            every=lambda: node.node.findNode(os.urandom(20)),
        )
        stats = node.stats
        self.assertGreater(stats.responsesIn, 1)
        self.assertEqual(stats.malformed, 0)
        self.assertLoopbackOnly()
        print(
            f"\nbtorrent through libtorrent's DHT: {len(lookups)} get_peers"
            f" lookups, {stats.queriesOut} queries out, {stats.responsesIn}"
            f" answers, {stats.nodes} nodes"
        )
