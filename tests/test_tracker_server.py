"""
Tests for the tracker server: L{btorrent.trackerserver.swarm} (pure state) and
L{btorrent.trackerserver.server} (HTTP resource, UDP protocol, state file).
"""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from btorrent.trackerserver.swarm import (
    MAX_NUMWANT,
    ConnectionIds,
    RateWindow,
    Swarm,
    SwarmError,
    Torrent,
    normaliseHost,
)

H1 = b"\x01" * 20
H2 = b"\x02" * 20


def pid(n: int) -> bytes:
    """
    A distinct 20-byte peer id.
    """
    return b"-XX0001-" + n.to_bytes(12, "big")


class SwarmAnnounceTests(SynchronousTestCase):
    """
    Announces, events and counts.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.swarm = Swarm(self.clock, random.Random(1))

    def test_firstAnnounce(self) -> None:
        """
        The first peer of a swarm gets no peers and counts itself.
        """
        r = self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 100, "started")
        self.assertEqual(r.peers, [])
        self.assertEqual((r.complete, r.incomplete, r.downloaded), (0, 1, 0))
        self.assertEqual((r.interval, r.minInterval), (1800, 900))

    def test_countsAndNeverSelf(self) -> None:
        """
        Seeders and leechers are counted apart; a peer never gets itself.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 0, "started")
        self.swarm.announce(H1, pid(2), "10.0.0.2", 6882, 5, "started")
        r = self.swarm.announce(H1, pid(3), "10.0.0.3", 6883, 5, "started")
        self.assertEqual((r.complete, r.incomplete), (1, 2))
        self.assertEqual(sorted(p.peerId for p in r.peers), [pid(1), pid(2)])
        r = self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 0)
        self.assertEqual(sorted(p.peerId for p in r.peers), [pid(2), pid(3)])

    def test_otherSwarmSeparate(self) -> None:
        """
        Peers of another info-hash are not returned.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 0)
        r = self.swarm.announce(H2, pid(2), "10.0.0.2", 6881, 0)
        self.assertEqual(r.peers, [])
        self.assertEqual(len(self.swarm.torrents), 2)

    def test_reannounceUpdates(self) -> None:
        """
        A re-announce updates address (with the key), port and left without
        adding a peer.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10, key=3)
        self.swarm.announce(H1, pid(1), "10.0.0.9", 7000, 0, key=3)
        torrent = self.swarm.torrents[H1]
        self.assertEqual(len(torrent), 1)
        entry = torrent.peers[pid(1)]
        self.assertEqual((entry.host, entry.port, entry.left), ("10.0.0.9", 7000, 0))
        self.assertEqual((torrent.seeders, torrent.leechers), (1, 0))

    def test_stoppedRemoves(self) -> None:
        """
        C{stopped} removes the peer; the empty swarm with no downloads goes.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10)
        self.swarm.announce(H1, pid(2), "10.0.0.2", 6881, 0)
        r = self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10, "stopped")
        self.assertEqual(r.peers, [])
        self.assertEqual((r.complete, r.incomplete), (1, 0))
        self.swarm.announce(H1, pid(2), "10.0.0.2", 6881, 0, "stopped")
        self.assertEqual(self.swarm.torrents, {})
        self.assertEqual(self.swarm.peerCount, 0)

    def test_keyGuardsAddressChange(self) -> None:
        """
        A known peer id may move to another address only with its key;
        from its own address the key does not matter.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10, key=7)
        for event in ("", "stopped", "completed"):
            e = self.assertRaises(
                SwarmError,
                self.swarm.announce,
                H1,
                pid(1),
                "10.6.6.6",
                6881,
                0,
                event,
                key=8,
            )
            self.assertIn("another address", str(e))
        self.assertEqual(self.swarm.scrape(H1), (0, 0, 1))
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6882, 10, key=9)
        self.swarm.announce(H1, pid(1), "10.0.0.2", 6881, 10, key=7)
        self.assertEqual(self.swarm.torrents[H1].peers[pid(1)].host, "10.0.0.2")

    def test_keylessPeerBoundToAddress(self) -> None:
        """
        A peer that announced without a key (key 0) can be neither moved
        nor stopped from another address, whatever key is sent (0
        included); from its own address it can, with any key.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10)
        for key in (0, 1):
            for event in ("", "started", "stopped", "completed"):
                e = self.assertRaises(
                    SwarmError,
                    self.swarm.announce,
                    H1,
                    pid(1),
                    "10.6.6.6",
                    6666,
                    0,
                    event,
                    key=key,
                )
                self.assertIn("another address", str(e))
        entry = self.swarm.torrents[H1].peers[pid(1)]
        self.assertEqual((entry.host, entry.port, entry.left), ("10.0.0.1", 6881, 10))
        self.assertEqual(self.swarm.scrape(H1), (0, 0, 1))
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6882, 10, key=5)
        self.assertEqual(entry.port, 6882)
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6882, 10, "stopped")
        self.assertEqual(self.swarm.torrents, {})

    def test_stoppedUnknown(self) -> None:
        """
        C{stopped} from an unknown peer creates nothing.
        """
        r = self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10, "stopped")
        self.assertEqual((r.complete, r.incomplete, r.peers), (0, 0, []))
        self.assertEqual(self.swarm.torrents, {})

    def test_completedCountsOnce(self) -> None:
        """
        C{completed} counts a download once per peer; the swarm with a
        download is remembered after its last peer stops.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10, "started")
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 0, "completed")
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 0, "completed")
        self.assertEqual(self.swarm.scrape(H1), (1, 1, 0))
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 0, "stopped")
        self.assertEqual(self.swarm.scrape(H1), (0, 1, 0))
        self.swarm.announce(H1, pid(2), "10.0.0.2", 6881, 0, "completed")
        self.assertEqual(self.swarm.scrape(H1), (1, 2, 0))

    def test_completedWithoutEvent(self) -> None:
        """
        A known leecher that reaches C{left=0} counts as a download, with no
        event or with C{stopped}; a seed that stops does not.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10, "started")
        self.swarm.announce(H1, pid(2), "10.0.0.2", 6881, 10, "started")
        self.swarm.announce(H1, pid(3), "10.0.0.3", 6881, 0, "started")
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 0)
        self.assertEqual(self.swarm.scrape(H1), (2, 1, 1))
        self.swarm.announce(H1, pid(2), "10.0.0.2", 6881, 0, "stopped")
        self.assertEqual(self.swarm.scrape(H1), (2, 2, 0))
        self.swarm.announce(H1, pid(3), "10.0.0.3", 6881, 0, "stopped")
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 0, "completed")
        self.assertEqual(self.swarm.scrape(H1), (1, 2, 0))

    def test_stoppedLeecher(self) -> None:
        """
        A leecher that stops before finishing is not a download.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10, "started")
        self.swarm.announce(H1, pid(2), "10.0.0.1", 6882, 0, "started")
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 5, "stopped")
        self.assertEqual(self.swarm.scrape(H1), (1, 0, 0))

    def test_scrapeUnknown(self) -> None:
        """
        An unknown info-hash scrapes as zeros.
        """
        self.assertEqual(self.swarm.scrape(H2), (0, 0, 0))

    def test_ipv6AndMapped(self) -> None:
        """
        IPv4-mapped IPv6 addresses are stored as IPv4; IPv6 compressed.
        """
        self.swarm.announce(H1, pid(1), "::ffff:10.0.0.1", 6881, 1)
        self.swarm.announce(H1, pid(2), "2001:DB8:0:0::1", 6881, 1)
        peers = self.swarm.torrents[H1].peers
        self.assertEqual(peers[pid(1)].host, "10.0.0.1")
        self.assertEqual(peers[pid(2)].host, "2001:db8::1")
        self.assertEqual(normaliseHost("127.0.0.1"), "127.0.0.1")
        self.assertRaises(ValueError, normaliseHost, "example.com")


class SwarmValidationTests(SynchronousTestCase):
    """
    Invalid announces are refused with a reason, leaving no state.
    """

    def setUp(self) -> None:
        self.swarm = Swarm(Clock(), random.Random(1))

    def assertRefused(self, *args, reason: str) -> None:
        e = self.assertRaises(SwarmError, self.swarm.announce, *args)
        self.assertIn(reason, str(e))
        self.assertEqual(self.swarm.torrents, {})

    def test_badValues(self) -> None:
        """
        Wrong lengths, port 0 or too large, negative left, unknown events,
        host names are refused.
        """
        self.assertRefused(b"short", pid(1), "10.0.0.1", 1, 0, reason="info_hash")
        self.assertRefused(H1 + b"x", pid(1), "10.0.0.1", 1, 0, reason="info_hash")
        self.assertRefused(H1, b"p" * 19, "10.0.0.1", 1, 0, reason="peer_id")
        self.assertRefused(H1, pid(1), "10.0.0.1", 0, 0, reason="port")
        self.assertRefused(H1, pid(1), "10.0.0.1", 65536, 0, reason="port")
        self.assertRefused(H1, pid(1), "10.0.0.1", -1, 0, reason="port")
        self.assertRefused(H1, pid(1), "10.0.0.1", 1, -5, reason="left")
        self.assertRefused(H1, pid(1), "10.0.0.1", 1, 0, "paused", reason="event")
        self.assertRefused(H1, pid(1), "host.example", 1, 0, reason="ip")

    def test_allowList(self) -> None:
        """
        With an allow-list, other info-hashes are refused.
        """
        swarm = Swarm(Clock(), allowed=[H1])
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 0)
        e = self.assertRaises(SwarmError, swarm.announce, H2, pid(1), "10.0.0.1", 1, 0)
        self.assertIn("not registered", str(e))
        self.assertEqual(list(swarm.torrents), [H1])


class SwarmSamplingTests(SynchronousTestCase):
    """
    Peer samples: sizes, caps, never the asker, uniform enough.
    """

    def fill(self, swarm: Swarm, count: int) -> None:
        for i in range(count):
            swarm.announce(H1, pid(i), "10.0.0.1", 1000 + i, 1)

    def test_numwantDefaultAndCap(self) -> None:
        """
        The default is 50 peers; negative means the default; more than 200
        gives 200; 0 gives none.
        """
        swarm = Swarm(Clock(), random.Random(2))
        self.fill(swarm, 300)
        me = pid(5)
        self.assertEqual(len(swarm.announce(H1, me, "10.0.0.1", 1005, 1).peers), 50)
        self.assertEqual(
            len(swarm.announce(H1, me, "10.0.0.1", 1005, 1, numwant=-1).peers), 50
        )
        self.assertEqual(
            len(swarm.announce(H1, me, "10.0.0.1", 1005, 1, numwant=10**9).peers),
            MAX_NUMWANT,
        )
        self.assertEqual(
            len(swarm.announce(H1, me, "10.0.0.1", 1005, 1, numwant=0).peers), 0
        )

    @settings(max_examples=200, deadline=None)
    @given(
        size=st.integers(1, 60),
        me=st.integers(0, 59),
        numwant=st.integers(-3, 250),
        seed=st.integers(0, 2**32),
        removals=st.lists(st.integers(0, 59), max_size=20),
    )
    def test_sampleNeverSelf(self, size, me, numwant, seed, removals) -> None:
        """
        Whatever the swarm size, removals and numwant, a sample holds
        distinct peers of the swarm, never the asker, and as many as asked
        (capped) or all the others.
        """
        swarm = Swarm(Clock(), random.Random(seed))
        self.fill(swarm, size)
        for r in removals:
            swarm.announce(H1, pid(r), "10.0.0.1", 1000 + r, 1, "stopped")
        me %= size
        r = swarm.announce(H1, pid(me), "10.0.0.1", 1000 + me, 1, numwant=numwant)
        ids = [p.peerId for p in r.peers]
        self.assertNotIn(pid(me), ids)
        self.assertEqual(len(ids), len(set(ids)))
        torrent = swarm.torrents[H1]
        self.assertTrue(set(ids) <= set(torrent.peers))
        wanted = 50 if numwant < 0 else min(numwant, MAX_NUMWANT)
        self.assertEqual(len(ids), min(wanted, len(torrent) - 1))
        self.assertEqual(r.incomplete, len(torrent))
        self.assertEqual(
            sorted(e.index for e in torrent.peers.values()), list(range(len(torrent)))
        )

    def test_sampleUniform(self) -> None:
        """
        Over many samples every other peer turns up about equally often,
        whether few of many (5 of 19) or most (15 of 19) are asked for.
        """
        swarm = Swarm(Clock(), random.Random(3))
        self.fill(swarm, 20)
        for numwant in (5, 15):
            seen = {}
            for _ in range(2000):
                r = swarm.announce(H1, pid(0), "10.0.0.1", 1000, 1, numwant=numwant)
                self.assertEqual(len(r.peers), numwant)
                for p in r.peers:
                    seen[p.peerId] = seen.get(p.peerId, 0) + 1
            self.assertEqual(len(seen), 19)
            expected = 2000 * numwant / 19
            self.assertTrue(
                all(abs(n - expected) < 0.15 * expected for n in seen.values()),
                (numwant, expected, seen),
            )

    def test_torrentSampleExcludeAbsent(self) -> None:
        """
        L{Torrent.sample} with no peer to exclude samples from every peer.
        """
        swarm = Swarm(Clock(), random.Random(3))
        self.fill(swarm, 3)
        torrent = swarm.torrents[H1]
        self.assertEqual(len(torrent.sample(10, None, random.Random(0))), 3)
        self.assertEqual(Torrent().sample(10, None, random.Random(0)), [])


class SwarmExpiryTests(SynchronousTestCase):
    """
    Peers silent for two intervals expire.
    """

    def test_expire(self) -> None:
        """
        L{Swarm.expire} drops peers last seen more than two intervals ago,
        and their swarms when nothing is left.
        """
        clock = Clock()
        swarm = Swarm(clock, interval=100, minInterval=50)
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 1)
        swarm.announce(H2, pid(2), "10.0.0.1", 2, 0, "completed")
        clock.advance(150)
        swarm.announce(H1, pid(3), "10.0.0.1", 3, 0)
        clock.advance(50)
        self.assertEqual(swarm.expire(), 0)
        clock.advance(1)
        self.assertEqual(swarm.expire(), 2)
        self.assertEqual(list(swarm.torrents[H1].peers), [pid(3)])
        self.assertEqual(swarm.scrape(H2), (0, 1, 0))
        self.assertEqual(swarm.peerCount, 1)
        clock.advance(200)
        self.assertEqual(swarm.expire(), 1)
        self.assertNotIn(H1, swarm.torrents)
        stats = swarm.stats()
        self.assertEqual(
            (stats.torrents, stats.archived, stats.peers, stats.downloaded),
            (0, 1, 0, 1),
        )


class SwarmCapTests(SynchronousTestCase):
    """
    Caps bound the memory a flood of announces can take.
    """

    def test_torrentCap(self) -> None:
        """
        Beyond C{maxTorrents} a new info-hash is refused; known ones work.
        """
        swarm = Swarm(Clock(), maxTorrents=2)
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 1)
        swarm.announce(H2, pid(1), "10.0.0.1", 1, 1)
        e = self.assertRaises(
            SwarmError, swarm.announce, b"\x03" * 20, pid(1), "10.0.0.1", 1, 1
        )
        self.assertIn("too many torrents", str(e))
        swarm.announce(H1, pid(2), "10.0.0.1", 2, 1)
        self.assertEqual(len(swarm.torrents), 2)

    def test_peerCaps(self) -> None:
        """
        Beyond C{maxPeersPerTorrent} or C{maxPeers} a new peer is refused; a
        known peer may still re-announce.
        """
        swarm = Swarm(Clock(), maxPeersPerTorrent=2, maxPeers=3)
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 1)
        swarm.announce(H1, pid(2), "10.0.0.1", 2, 1)
        e = self.assertRaises(SwarmError, swarm.announce, H1, pid(3), "10.0.0.1", 3, 1)
        self.assertIn("torrent full", str(e))
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 0)
        swarm.announce(H2, pid(3), "10.0.0.1", 3, 1)
        e = self.assertRaises(SwarmError, swarm.announce, H2, pid(4), "10.0.0.1", 4, 1)
        self.assertIn("too many peers", str(e))
        e = self.assertRaises(
            SwarmError, swarm.announce, b"\x05" * 20, pid(4), "10.0.0.1", 4, 1
        )
        self.assertIn("too many peers", str(e))
        self.assertEqual(swarm.peerCount, 3)

    def test_floodBounded(self) -> None:
        """
        A flood of random info-hashes and peer ids never holds more than
        the caps.
        """
        rng = random.Random(7)
        swarm = Swarm(Clock(), maxTorrents=50, maxPeersPerTorrent=10, maxPeers=200)
        refused = 0
        for _ in range(5000):
            h = rng.choice([H1, H2, rng.randbytes(20)])
            try:
                swarm.announce(h, rng.randbytes(20), "10.0.0.1", 1, 1)
            except SwarmError:
                refused += 1
        self.assertLessEqual(len(swarm.torrents), 50)
        self.assertLessEqual(swarm.peerCount, 200)
        self.assertEqual(swarm.peerCount, sum(len(t) for t in swarm.torrents.values()))
        self.assertGreater(refused, 4000)


class SwarmArchiveTests(SynchronousTestCase):
    """
    A swarm whose last peer goes leaves L{Swarm.torrents} at once; its
    download count is kept in the bounded L{Swarm.archive}.
    """

    def flood(self, swarm: Swarm, count: int, rng: random.Random) -> list:
        """
        C{count} C{completed} announces with random info-hashes and peer
        ids; return the info-hashes.
        """
        hashes = [rng.randbytes(20) for _ in range(count)]
        for h in hashes:
            swarm.announce(h, rng.randbytes(20), "10.6.6.6", 6666, 0, "completed")
        return hashes

    def test_completedFloodFreesTheCap(self) -> None:
        """
        After C{completed} announces with random info-hashes have expired,
        no swarm is held against C{maxTorrents}: a new announce is
        accepted, and each flooded info-hash still scrapes its download.
        """
        clock = Clock()
        swarm = Swarm(clock, interval=100, maxTorrents=100)
        hashes = self.flood(swarm, 100, random.Random(1))
        e = self.assertRaises(SwarmError, swarm.announce, H1, pid(1), "10.0.0.1", 1, 5)
        self.assertIn("too many torrents", str(e))
        clock.advance(201)
        self.assertEqual(swarm.expire(), 100)
        self.assertEqual((swarm.torrents, swarm.peerCount), ({}, 0))
        self.assertEqual(len(swarm.archive), 100)
        r = swarm.announce(H1, pid(1), "10.0.0.1", 1, 5, "started")
        self.assertEqual((r.complete, r.incomplete, r.downloaded), (0, 1, 0))
        for h in hashes:
            self.assertEqual(swarm.scrape(h), (0, 1, 0))
        stats = swarm.stats()
        self.assertEqual(
            (stats.torrents, stats.archived, stats.downloaded), (1, 100, 100)
        )

    def test_stoppedLastPeerArchives(self) -> None:
        """
        The swarm goes with its last peer's C{stopped} too, its count to
        the archive; a swarm with no download leaves nothing.
        """
        swarm = Swarm(Clock(), maxTorrents=1)
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 0, "completed")
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 0, "stopped")
        self.assertEqual((swarm.torrents, dict(swarm.archive)), ({}, {H1: 1}))
        r = swarm.announce(H2, pid(2), "10.0.0.2", 1, 3, "stopped")
        self.assertEqual(r.downloaded, 0)
        swarm.announce(H2, pid(2), "10.0.0.2", 1, 3)
        swarm.announce(H2, pid(2), "10.0.0.2", 1, 3, "stopped")
        self.assertEqual((swarm.torrents, dict(swarm.archive)), ({}, {H1: 1}))
        r = swarm.announce(H1, pid(3), "10.0.0.3", 1, 3, "stopped")
        self.assertEqual(r.downloaded, 1)

    def test_revivedSwarmKeepsCount(self) -> None:
        """
        An archived swarm announced again takes its count back out of the
        archive and goes on counting; a full tracker leaves it archived.
        """
        clock = Clock()
        swarm = Swarm(clock, interval=100, maxTorrents=1)
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 0, "completed")
        swarm.announce(H1, pid(2), "10.0.0.2", 1, 0, "completed")
        clock.advance(201)
        swarm.expire()
        self.assertEqual(dict(swarm.archive), {H1: 2})
        swarm.announce(H2, pid(3), "10.0.0.3", 1, 5)
        self.assertRaises(SwarmError, swarm.announce, H1, pid(3), "10.0.0.3", 1, 5)
        self.assertEqual(swarm.scrape(H1), (0, 2, 0))
        swarm.announce(H2, pid(3), "10.0.0.3", 1, 5, "stopped")
        r = swarm.announce(H1, pid(3), "10.0.0.3", 1, 5, "started")
        self.assertEqual((r.incomplete, r.downloaded), (1, 2))
        self.assertEqual(dict(swarm.archive), {})
        swarm.announce(H1, pid(3), "10.0.0.3", 1, 0, "completed")
        self.assertEqual(swarm.scrape(H1), (1, 3, 0))
        self.assertEqual(swarm.stats().downloaded, 3)
        clock.advance(201)
        swarm.expire()
        self.assertEqual(dict(swarm.archive), {H1: 3})
        self.assertEqual(swarm.stats().downloaded, 3)

    def test_archiveBounded(self) -> None:
        """
        Beyond C{maxArchived} the least recently used count goes; a scrape
        or an announce counts as a use; the download counts (the state
        file) stay within C{maxArchived} plus the swarms with peers.
        """
        clock = Clock()
        swarm = Swarm(clock, interval=100, maxTorrents=1000, maxArchived=10)
        hashes = self.flood(swarm, 50, random.Random(2))
        clock.advance(201)
        swarm.expire()
        self.assertEqual(list(swarm.archive), hashes[40:])
        self.assertEqual(swarm.scrape(hashes[0]), (0, 0, 0))
        self.assertEqual(swarm.stats().downloaded, 10)
        # hashes[40] is used: hashes[41] is the oldest now.
        self.assertEqual(swarm.scrape(hashes[40]), (0, 1, 0))
        more = self.flood(swarm, 1, random.Random(3))
        swarm.announce(hashes[42], pid(1), "10.0.0.1", 1, 5)
        clock.advance(201)
        swarm.expire()
        self.assertNotIn(hashes[41], swarm.archive)
        self.assertEqual(swarm.scrape(hashes[40]), (0, 1, 0))
        self.assertEqual(list(swarm.archive)[-3:], [more[0], hashes[42], hashes[40]])
        self.assertEqual(len(swarm.archive), 10)
        self.assertEqual(swarm.stats().downloaded, 10)
        self.flood(swarm, 5, random.Random(4))
        counts = swarm.downloadCounts()
        self.assertEqual(len(counts), 15)
        self.assertEqual(list(counts)[:10], list(swarm.archive))

    def test_completedNotSeedingIgnored(self) -> None:
        """
        C{completed} from an unknown peer that still needs data counts no
        download (as opentracker does).
        """
        swarm = Swarm(Clock())
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 5, "completed")
        self.assertEqual(swarm.scrape(H1), (0, 0, 1))


class SwarmStateTests(SynchronousTestCase):
    """
    Download counts out and back in.
    """

    def test_roundTrip(self) -> None:
        """
        L{Swarm.downloadCounts} feeds L{Swarm.restoreDownloadCounts}.
        """
        swarm = Swarm(Clock())
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 0, "completed")
        swarm.announce(H2, pid(1), "10.0.0.1", 1, 1)
        counts = swarm.downloadCounts()
        self.assertEqual(counts, {H1: 1})
        other = Swarm(Clock())
        self.assertEqual(other.restoreDownloadCounts(counts), 1)
        self.assertEqual(other.scrape(H1), (0, 1, 0))

    def test_restoreFiltered(self) -> None:
        """
        Bad hashes, zero counts and refused hashes are left out.
        """
        swarm = Swarm(Clock(), allowed=[H1, H2])
        taken = swarm.restoreDownloadCounts(
            {b"x": 3, b"\x09" * 20: 4, H1: 0, H2: 5, H1 + b"": 0}
        )
        self.assertEqual(taken, 1)
        self.assertEqual(swarm.downloadCounts(), {H2: 5})

    def test_restoreBounded(self) -> None:
        """
        Restored counts go to the archive, not against C{maxTorrents}; of
        more than C{maxArchived}, the last ones (most recently used) are
        kept, in order.
        """
        counts = {bytes([i]) * 20: i for i in range(1, 21)}
        swarm = Swarm(Clock(), maxTorrents=1, maxArchived=5)
        self.assertEqual(swarm.restoreDownloadCounts(counts), 5)
        self.assertEqual(list(swarm.archive.items()), list(counts.items())[15:])
        self.assertEqual(swarm.torrents, {})
        self.assertEqual(swarm.stats().downloaded, sum(range(16, 21)))
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 5)
        self.assertEqual(swarm.scrape(bytes([20]) * 20), (0, 20, 0))


class RateWindowTests(SynchronousTestCase):
    """
    Events per second over the last minute.
    """

    def test_window(self) -> None:
        """
        Events older than the window no longer count.
        """
        clock = Clock()
        rate = RateWindow(clock, window=60)
        rate.add(30)
        clock.advance(30)
        rate.add(30)
        self.assertEqual(rate.total(), 60)
        self.assertEqual(rate.perSecond(), 1.0)
        clock.advance(30)
        self.assertEqual(rate.total(), 30)
        clock.advance(30)
        self.assertEqual(rate.total(), 0)
        clock.advance(600)
        rate.add()
        self.assertEqual(rate.total(), 1)


class ConnectionIdTests(SynchronousTestCase):
    """
    Stateless BEP 15 connection ids.
    """

    def test_validWindow(self) -> None:
        """
        An id is valid for its IP address only (any port), and, whatever
        the phase of the 60 s epoch it is issued in, still accepted 120 s
        after it was issued (the two minutes of the issue) and refused from
        180 s on.
        """
        for phase in (0, 0.001, 1, 30, 59, 59.999):
            clock = Clock()
            clock.advance(6000 + phase)
            ids = ConnectionIds(clock, secret=b"k" * 32)
            cid = ids.make("127.0.0.1")
            self.assertTrue(ids.check(cid, "127.0.0.1"))
            self.assertFalse(ids.check(cid, "127.0.0.2"))
            self.assertFalse(ids.check(cid ^ 1, "127.0.0.1"))
            self.assertFalse(ids.check(-1, "127.0.0.1"))
            self.assertFalse(ids.check(2**64, "127.0.0.1"))
            for age in (1, 60, 90, 119, 120):
                clock.advance(age - (clock.seconds() - 6000 - phase))
                self.assertTrue(ids.check(cid, "127.0.0.1"), (phase, age))
            clock.advance(60)
            self.assertEqual(clock.seconds(), 6000 + phase + 180)
            self.assertFalse(ids.check(cid, "127.0.0.1"), phase)
            clock.advance(1000)
            self.assertFalse(ids.check(cid, "127.0.0.1"), phase)

    def test_secretMatters(self) -> None:
        """
        Another secret (another tracker, or after a restart) makes other ids.
        """
        clock = Clock()
        a = ConnectionIds(clock)
        b = ConnectionIds(clock)
        self.assertNotEqual(a.make("::1"), b.make("::1"))
        self.assertFalse(b.check(a.make("::1"), "::1"))

    @given(st.integers(0, 2**64 - 1))
    def test_guessFails(self, guess) -> None:
        """
        Random ids are refused (2**-63 chance each).
        """
        ids = ConnectionIds(Clock(), secret=b"s" * 32)
        if guess != ids.make("10.0.0.1"):
            self.assertFalse(ids.check(guess, "10.0.0.1"))


# --- server: HTTP, UDP, service, options -----------------------------------

import json  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402

from twisted.internet.address import IPv4Address, IPv6Address  # noqa: E402
from twisted.internet.error import ConnectionDone  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.logger import globalLogPublisher  # noqa: E402
from twisted.python import usage  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from btorrent.codec import bencode  # noqa: E402
from btorrent.tracker import announce as codec  # noqa: E402
from btorrent.trackerserver.server import (  # noqa: E402
    MAX_REQUEST_BODY,
    MAX_SCRAPE_HASHES,
    StateFileError,
    SwarmService,
    TrackerResource,
    TrackerSite,
    UDPTrackerProtocol,
    loadState,
    readAllowFile,
    saveState,
)
from btorrent.trackerserver.tap import Options, makeService  # noqa: E402


def q(**fields) -> bytes:
    """
    A query string; bytes values are percent-encoded as they are.
    """
    parts = []
    for name, value in fields.items():
        if isinstance(value, bytes):
            value = codec.percentEncode(value)
        parts.append(f"{name}={value}")
    return "&".join(parts).encode("ascii")


def announceQuery(infoHash=H1, peerId=None, port=6881, left=0, **extra) -> bytes:
    """
    A well-formed announce query, overridable field by field.
    """
    fields = {
        "info_hash": infoHash,
        "peer_id": peerId if peerId is not None else pid(1),
        "port": port,
        "uploaded": 0,
        "downloaded": 0,
        "left": left,
    }
    fields.update(extra)
    return q(**{k: v for k, v in fields.items() if v is not None})


class HTTPClient:
    """
    Requests through a real L{TrackerSite} and its HTTP parser, over a
    L{StringTransport}.
    """

    def __init__(self, swarm: Swarm) -> None:
        self.site = TrackerSite(TrackerResource(swarm), reactor=Clock())

    def raw(self, data: bytes, peer=None):
        peer = peer or IPv4Address("TCP", "10.0.0.1", 40000)
        protocol = self.site.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        protocol.dataReceived(data)
        self.lastTransport = transport
        if transport.disconnecting:
            # What the reactor does once the transport has closed.
            protocol.connectionLost(Failure(ConnectionDone()))
        head, _, body = transport.value().partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head else None
        return status, head, body

    def get(self, path: bytes, query: bytes = b"", peer=None):
        target = path + (b"?" + query if query else b"")
        status, head, body = self.raw(b"GET " + target + b" HTTP/1.0\r\n\r\n", peer)
        return status, body

    def announce(self, query: bytes, peer=None) -> dict:
        status, body = self.get(b"/announce", query, peer)
        assert status == 200, (status, body)
        return bencode.decode(body)


def fromHost(host: str, port: int = 40000):
    """
    The address of an HTTP client at C{host}.
    """
    if ":" in host:
        return IPv6Address("TCP", host, port)
    return IPv4Address("TCP", host, port)


class HTTPAnnounceTests(SynchronousTestCase):
    """
    C{/announce} over HTTP.
    """

    def setUp(self) -> None:
        self.swarm = Swarm(Clock(), random.Random(4))
        self.http = HTTPClient(self.swarm)

    def test_compactWithPeers6(self) -> None:
        """
        Compact responses carry IPv4 peers in C{peers} and IPv6 peers in
        C{peers6}, with counts and intervals; the address is the source's.
        """
        self.http.announce(
            announceQuery(peerId=pid(1), port=1001), fromHost("10.0.0.1")
        )
        self.http.announce(
            announceQuery(peerId=pid(2), port=1002, left=5), fromHost("2001:db8::2")
        )
        body = self.http.announce(
            announceQuery(peerId=pid(3), port=1003, left=5, compact=1),
            fromHost("10.0.0.3"),
        )
        self.assertEqual(body[b"peers"], bytes([10, 0, 0, 1]) + struct.pack("!H", 1001))
        self.assertEqual(
            codec.decodeCompactPeers(body[b"peers6"], v6=True), (("2001:db8::2", 1002),)
        )
        self.assertEqual(
            (body[b"complete"], body[b"incomplete"], body[b"interval"]), (1, 2, 1800)
        )
        self.assertEqual(body[b"min interval"], 900)
        response = codec.decodeHTTPResponse(bencode.encode(body))
        self.assertEqual(
            set(response.peers), {("10.0.0.1", 1001), ("2001:db8::2", 1002)}
        )

    def test_compactDefault(self) -> None:
        """
        Without C{compact} the answer is compact.
        """
        self.http.announce(announceQuery(peerId=pid(1)), fromHost("10.0.0.1"))
        body = self.http.announce(announceQuery(peerId=pid(2)), fromHost("10.0.0.2"))
        self.assertIsInstance(body[b"peers"], bytes)

    def test_dictionaryModel(self) -> None:
        """
        C{compact=0} gives the dictionary model with peer ids;
        C{no_peer_id=1} leaves them out.
        """
        self.http.announce(
            announceQuery(peerId=pid(1), port=1001), fromHost("10.0.0.1")
        )
        self.http.announce(announceQuery(peerId=pid(2), port=1002), fromHost("::1"))
        body = self.http.announce(
            announceQuery(peerId=pid(3), compact=0), fromHost("10.0.0.3")
        )
        self.assertEqual(
            sorted(body[b"peers"], key=lambda p: p[b"port"]),
            [
                {b"ip": b"10.0.0.1", b"port": 1001, b"peer id": pid(1)},
                {b"ip": b"::1", b"port": 1002, b"peer id": pid(2)},
            ],
        )
        body = self.http.announce(
            announceQuery(peerId=pid(3), compact=0, no_peer_id=1), fromHost("10.0.0.3")
        )
        self.assertEqual(
            sorted(p[b"ip"] for p in body[b"peers"]), [b"10.0.0.1", b"::1"]
        )
        self.assertTrue(all(b"peer id" not in p for p in body[b"peers"]))

    def test_ipParameter(self) -> None:
        """
        C{ip} is ignored from other hosts, honoured from loopback when it is
        an IP literal.
        """
        self.http.announce(
            announceQuery(peerId=pid(1), ip="10.9.9.9"), fromHost("10.0.0.1")
        )
        self.http.announce(
            announceQuery(peerId=pid(2), ip="10.8.8.8"), fromHost("127.0.0.1")
        )
        self.http.announce(
            announceQuery(peerId=pid(3), ip="a.example"), fromHost("::1")
        )
        peers = self.swarm.torrents[H1].peers
        self.assertEqual(peers[pid(1)].host, "10.0.0.1")
        self.assertEqual(peers[pid(2)].host, "10.8.8.8")
        self.assertEqual(peers[pid(3)].host, "::1")

    def test_keyFromQuery(self) -> None:
        """
        The C{key} parameter guards a peer id against a move to another
        address, over HTTP as in the swarm.
        """
        self.http.announce(announceQuery(key="ABCD0001"), fromHost("10.0.0.1"))
        body = self.http.announce(
            announceQuery(key="ABCD0002", event="stopped"), fromHost("10.0.0.2")
        )
        self.assertIn(b"another address", body[b"failure reason"])
        body = self.http.announce(announceQuery(key="ABCD0001"), fromHost("10.0.0.2"))
        self.assertIn(b"interval", body)

    def test_keylessPeerFromAnotherAddress(self) -> None:
        """
        A peer that announced without C{key} cannot be stopped from another
        address by someone sending its peer id without a key (or with
        one); from its own address it can.
        """
        self.http.announce(announceQuery(left=5), fromHost("10.0.0.1"))
        for extra in ({}, {"key": "00000000"}, {"key": "ABCD0001"}):
            body = self.http.announce(
                announceQuery(event="stopped", **extra), fromHost("10.6.6.6")
            )
            self.assertIn(b"another address", body[b"failure reason"])
        self.assertEqual(self.swarm.scrape(H1), (0, 0, 1))
        body = self.http.announce(
            announceQuery(event="stopped", left=5), fromHost("10.0.0.1")
        )
        self.assertEqual(body[b"incomplete"], 0)
        self.assertEqual(self.swarm.torrents, {})

    def test_completedFlood(self) -> None:
        """
        C{completed} announces with random info-hashes over HTTP (no
        connection id needed) fill the torrent cap only until their peers
        expire: then a new torrent is accepted, the flooded info-hashes
        scrape their downloads, and the state saved is bounded by
        C{maxArchived}.
        """
        clock = Clock()
        swarm = Swarm(clock, interval=100, maxTorrents=20)
        swarm.maxArchived = 30
        http = HTTPClient(swarm)
        rng = random.Random(9)
        hashes = []
        for i in range(40):
            hashes.append(rng.randbytes(20))
            http.announce(
                announceQuery(infoHash=hashes[-1], event="completed", key=i),
                fromHost("10.6.6.6"),
            )
            if i == 19:
                body = http.announce(announceQuery(infoHash=H1, left=5))
                self.assertIn(b"too many torrents", body[b"failure reason"])
                clock.advance(201)
                swarm.expire()
        clock.advance(201)
        swarm.expire()
        body = http.announce(announceQuery(infoHash=H1, left=5))
        self.assertEqual((body[b"complete"], body[b"incomplete"]), (0, 1))
        status, body = http.get(
            b"/scrape", q(info_hash=hashes[-1]) + b"&" + q(info_hash=hashes[0])
        )
        stats = codec.decodeScrapeResponse(body)
        self.assertEqual(stats[hashes[-1]], codec.ScrapeStats(0, 1, 0))
        self.assertEqual(stats[hashes[0]], codec.ScrapeStats(0, 0, 0))
        self.assertEqual(len(swarm.archive), 30)
        path = self.mktemp()
        service = SwarmService(swarm, clock, stateFile=path)
        service.startService()
        service.stopService()
        self.assertEqual(set(loadState(path)), set(hashes[10:]))

    def test_mappedSource(self) -> None:
        """
        A v4-mapped source on a dual-stack socket is recorded as IPv4.
        """
        self.http.announce(announceQuery(), fromHost("::ffff:10.1.2.3"))
        self.assertEqual(self.swarm.torrents[H1].peers[pid(1)].host, "10.1.2.3")

    def test_numwant(self) -> None:
        """
        A large C{numwant} is capped at 200 peers; a negative one other
        than -1, or one too large to read, is refused.
        """
        for i in range(250):
            self.swarm.announce(H1, pid(100 + i), "10.0.0.1", 1000 + i, 1)
        body = self.http.announce(announceQuery(numwant=100000))
        self.assertEqual(len(body[b"peers"]), 200 * 6)
        body = self.http.announce(announceQuery(numwant=-1))
        self.assertEqual(len(body[b"peers"]), 50 * 6)
        for bad in ("-5", "9" * 40, "x"):
            body = self.http.announce(announceQuery(numwant=bad))
            self.assertIn(b"failure reason", body)

    def test_hostileQueries(self) -> None:
        """
        Missing or malformed fields get a C{failure reason} and leave no
        state.
        """
        cases = [
            b"",
            b"info_hash",
            b"&&&==&",
            b"%zz%",
            announceQuery(infoHash=b"x" * 19),
            announceQuery(infoHash=b"x" * 21),
            announceQuery(infoHash=None),
            announceQuery(peerId=b"p" * 3),
            announceQuery(port=0),
            announceQuery(port=65536),
            announceQuery(port=-1),
            announceQuery(port=None),
            announceQuery(left=-1),
            announceQuery(left=None),
            announceQuery(left="1e5"),
            announceQuery(uploaded=-3),
            announceQuery(event="paused"),
            announceQuery(event=b"\xff"),
            announceQuery(left="9" * 100),
        ]
        for query in cases:
            body = self.http.announce(query)
            self.assertIn(b"failure reason", body, query)
            self.assertNotIn(b"interval", body)
        self.assertEqual(self.swarm.torrents, {})

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_garbageQueryProperty(self, data) -> None:
        """
        Any bytes after C{?} give a bencoded dictionary: a failure or a
        real answer, never an error page.
        """
        query = codec.percentEncode(data).encode("ascii").replace(b"%3D", b"=")
        query = query.replace(b"%26", b"&")
        body = self.http.announce(query)
        self.assertTrue(b"failure reason" in body or b"interval" in body)

    def test_allowList(self) -> None:
        """
        Info-hashes outside the allow-list get a failure reason.
        """
        http = HTTPClient(Swarm(Clock(), allowed=[H2]))
        body = http.announce(announceQuery(infoHash=H1))
        self.assertEqual(
            body, {b"failure reason": b"torrent not registered with this tracker"}
        )
        self.assertIn(b"interval", http.announce(announceQuery(infoHash=H2)))

    def test_caps(self) -> None:
        """
        Beyond the caps new torrents and peers get a failure reason.
        """
        http = HTTPClient(Swarm(Clock(), maxTorrents=1, maxPeersPerTorrent=1))
        http.announce(announceQuery(infoHash=H1))
        body = http.announce(announceQuery(infoHash=H2))
        self.assertIn(b"too many torrents", body[b"failure reason"])
        body = http.announce(announceQuery(infoHash=H1, peerId=pid(2)))
        self.assertIn(b"torrent full", body[b"failure reason"])


class HTTPOtherTests(SynchronousTestCase):
    """
    C{/scrape}, C{/stats} and everything that is not an announce.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.swarm = Swarm(self.clock, random.Random(5))
        self.http = HTTPClient(self.swarm)

    def test_scrape(self) -> None:
        """
        A scrape answers the counts of each info-hash asked for, zeros for
        unknown ones.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 1, 0, "completed")
        self.swarm.announce(H1, pid(2), "10.0.0.2", 1, 9)
        status, body = self.http.get(
            b"/scrape", q(info_hash=H1) + b"&" + q(info_hash=H2)
        )
        self.assertEqual(status, 200)
        stats = codec.decodeScrapeResponse(body)
        self.assertEqual(stats[H1], codec.ScrapeStats(1, 1, 1))
        self.assertEqual(stats[H2], codec.ScrapeStats(0, 0, 0))

    def test_scrapeRefused(self) -> None:
        """
        No info-hash, a bad one, or too many get a failure reason.
        """
        for query in (
            b"",
            q(info_hash=b"short"),
            b"&".join(
                [q(info_hash=bytes([i]) * 20) for i in range(MAX_SCRAPE_HASHES + 1)]
            ),
        ):
            status, body = self.http.get(b"/scrape", query)
            self.assertEqual(status, 200)
            self.assertIn(b"failure reason", bencode.decode(body))

    def test_stats(self) -> None:
        """
        C{/stats} gives the totals and announces per second over the last
        minute as JSON.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 1, 0, "completed")
        self.swarm.announce(H1, pid(2), "10.0.0.2", 1, 9)
        self.swarm.announce(H2, pid(2), "10.0.0.2", 1, 9)
        status, body = self.http.get(b"/stats")
        self.assertEqual(status, 200)
        self.assertEqual(
            json.loads(body),
            {
                "torrents": 2,
                "archived": 0,
                "peers": 3,
                "seeders": 1,
                "leechers": 2,
                "downloaded": 1,
                "announcesPerSecond": 0.05,
            },
        )
        self.clock.advance(61)
        self.assertEqual(
            json.loads(self.http.get(b"/stats")[1])["announcesPerSecond"], 0
        )

    def test_otherRequests(self) -> None:
        """
        Unknown paths are 404, POST is 405, a garbage request line is 400;
        nothing is logged as an error.
        """
        self.assertEqual(self.http.get(b"/")[0], 404)
        self.assertEqual(self.http.get(b"/nothing")[0], 404)
        status, _, _ = self.http.raw(b"POST /announce HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 405)
        status, _, _ = self.http.raw(b"\x00\xff garbage\r\n\r\n")
        self.assertEqual(status, 400)
        status, _, _ = self.http.raw(
            b"GET /announce?" + b"a" * 70000 + b" HTTP/1.0\r\n"
        )
        # Twisted drops a request line over 16 KiB without an answer.
        self.assertIsNone(status)
        self.assertTrue(self.http.lastTransport.disconnecting)
        self.assertEqual(self.flushLoggedErrors(), [])


class RequestBodyTests(SynchronousTestCase):
    """
    Announces and scrapes have no body: whatever a client sends as one is
    never stored (twisted.web would write it to a temporary file, without
    limit), and a connection sending more than L{MAX_REQUEST_BODY} is
    closed.
    """

    def setUp(self) -> None:
        self.swarm = Swarm(Clock(), random.Random(4))
        self.site = TrackerSite(TrackerResource(self.swarm), reactor=Clock())
        self.requests = []
        factory = self.site.requestFactory

        def recording(*args, **kwargs):
            request = factory(*args, **kwargs)
            self.requests.append(request)
            return request

        self.site.requestFactory = recording

    def connect(self):
        peer = IPv4Address("TCP", "10.0.0.1", 40000)
        protocol = self.site.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        return protocol, transport

    def test_smallBodyIgnored(self) -> None:
        """
        A request with a small body is answered as if it had none.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            b"GET /announce?" + announceQuery() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertIn(b" 200 ", head)
        self.assertIn(b"interval", body)
        self.assertEqual(self.stored(), 0)

    def test_limit(self) -> None:
        """
        A body of exactly L{MAX_REQUEST_BODY} bytes is still answered; one
        more byte closes the connection unanswered.
        """
        for size, answered in ((MAX_REQUEST_BODY, True), (MAX_REQUEST_BODY + 1, False)):
            protocol, transport = self.connect()
            protocol.dataReceived(
                b"GET /announce?" + announceQuery() + b" HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: %d\r\n\r\n" % size
            )
            for _ in range(size // 1000):
                protocol.dataReceived(b"x" * 1000)
            protocol.dataReceived(b"x" * (size % 1000))
            self.assertEqual(b" 200 " in transport.value(), answered, size)
            self.assertEqual(transport.disconnecting, not answered, size)

    def test_declaredHugeBody(self) -> None:
        """
        A declared body larger than L{MAX_REQUEST_BODY} closes the
        connection before any of it arrives.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            b"GET /announce HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 10000000000\r\n\r\n"
        )
        self.assertTrue(transport.disconnecting)
        for _ in range(20):
            protocol.dataReceived(b"x" * 1000000)
        self.assertLessEqual(self.stored(), 0)

    def test_chunkedHugeBody(self) -> None:
        """
        A chunked body is counted as it comes: past L{MAX_REQUEST_BODY} the
        connection is closed, and nothing is kept.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            b"GET /announce HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n" % 100000 + b"x" * 100000 + b"\r\n"
        for _ in range(20):
            protocol.dataReceived(chunk)
        self.assertTrue(transport.disconnecting)
        self.assertLessEqual(self.stored(), 0)

    def stored(self) -> int:
        """
        The bytes of body the requests kept.
        """
        total = 0
        for request in self.requests:
            content = request.content
            if content is not None:
                content.seek(0, os.SEEK_END)
                total += content.tell()
        return total


class FakeDatagramTransport:
    """
    Collects what a L{DatagramProtocol} writes.
    """

    def __init__(self) -> None:
        self.written = []

    def write(self, data: bytes, addr) -> None:
        self.written.append((data, addr))


class UDPTests(SynchronousTestCase):
    """
    BEP 15 through L{UDPTrackerProtocol} and a fake transport.
    """

    client = ("10.0.0.7", 7000)

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(10_000)
        self.swarm = Swarm(self.clock, random.Random(6))
        self.protocol = UDPTrackerProtocol(
            self.swarm, ConnectionIds(self.clock, secret=b"t" * 32)
        )
        self.transport = FakeDatagramTransport()
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes, addr=None, v6=False):
        """
        Deliver one datagram; return the decoded reply or C{None}.
        """
        addr = addr or self.client
        before = len(self.transport.written)
        self.protocol.datagramReceived(data, addr)
        replies = self.transport.written[before:]
        self.assertLessEqual(len(replies), 1)
        if not replies:
            return None
        data, to = replies[0]
        self.assertEqual(to, addr)
        return codec.decodeUDPResponse(data, v6=v6)

    def connect(self, addr=None) -> int:
        reply = self.send(codec.encodeUDPRequest(codec.UDPConnectRequest(77)), addr)
        self.assertIsInstance(reply, codec.UDPConnectResponse)
        self.assertEqual(reply.transactionId, 77)
        return reply.connectionId

    def announcePacket(self, cid, peerId=None, port=6881, left=0, event="", **kw):
        request = codec.AnnounceRequest(
            infoHash=kw.pop("infoHash", H1),
            peerId=peerId or pid(1),
            port=port,
            uploaded=0,
            downloaded=0,
            left=left,
            event=event,
            numwant=kw.pop("numwant", -1),
            **kw,
        )
        return codec.encodeUDPRequest(codec.UDPAnnounceRequest(cid, 5, request))

    def test_connectAnnounceScrape(self) -> None:
        """
        Connect, announce (getting the other peers), scrape.
        """
        self.swarm.announce(H1, pid(9), "10.0.0.9", 9999, 0)
        cid = self.connect()
        reply = self.send(self.announcePacket(cid, left=10, event="started"))
        self.assertIsInstance(reply, codec.UDPAnnounceResponse)
        self.assertEqual(reply.transactionId, 5)
        self.assertEqual(reply.response.peers, (("10.0.0.9", 9999),))
        self.assertEqual(
            (
                reply.response.complete,
                reply.response.incomplete,
                reply.response.interval,
            ),
            (1, 1, 1800),
        )
        self.assertEqual(self.swarm.torrents[H1].peers[pid(1)].host, "10.0.0.7")
        self.send(self.announcePacket(cid, left=0, event="completed"))
        scrape = codec.encodeUDPRequest(codec.UDPScrapeRequest(cid, 6, (H2, H1)))
        reply = self.send(scrape)
        self.assertEqual(
            reply,
            codec.UDPScrapeResponse(
                6, (codec.ScrapeStats(0, 0, 0), codec.ScrapeStats(2, 1, 0))
            ),
        )

    def test_scrapeManyHashes(self) -> None:
        """
        A scrape of the most hashes BEP 15 fits in a packet (74) is
        answered; one of 1000 (a 20 KB datagram) gets a short error and no
        work, never a reply larger than the request.
        """
        cid = self.connect()
        hashes = tuple(bytes([i % 256, i // 256]) * 10 for i in range(1000))
        limit = codec.UDP_MAX_SCRAPE
        reply = self.send(
            codec.encodeUDPRequest(codec.UDPScrapeRequest(cid, 6, hashes[:limit]))
        )
        self.assertEqual(len(reply.stats), limit)
        packet = struct.pack(">QII", cid, 2, 7) + b"".join(hashes)
        before = len(self.transport.written)
        reply = self.send(packet)
        self.assertIsInstance(reply, codec.UDPErrorResponse)
        self.assertEqual(reply.transactionId, 7)
        self.assertLess(len(self.transport.written[before][0]), 100)

    def test_connectReplySize(self) -> None:
        """
        The connect reply is 16 bytes, as the request.
        """
        self.protocol.datagramReceived(
            codec.encodeUDPRequest(codec.UDPConnectRequest(1)), self.client
        )
        self.assertEqual(len(self.transport.written[0][0]), 16)

    def test_badConnectionId(self) -> None:
        """
        A wrong id gets a 25-byte error for an announce, and silence for a
        request shorter than that error; the swarm is untouched.
        """
        cid = self.connect()
        reply = self.send(self.announcePacket(cid ^ 0xFF))
        self.assertEqual(reply, codec.UDPErrorResponse(5, "bad connection id"))
        self.assertEqual(len(self.transport.written[-1][0]), 25)
        empty = codec.encodeUDPRequest(codec.UDPScrapeRequest(cid ^ 1, 6, ()))
        self.assertIsNone(self.send(empty))
        self.assertEqual(self.swarm.torrents, {})

    def test_idOfAnotherAddress(self) -> None:
        """
        An id issued to another IP address is refused; one issued to the
        same address from another port (a NAT rebinding, or libtorrent's
        per-process id cache) is accepted.
        """
        cid = self.connect(("10.0.0.8", 7000))
        self.assertEqual(
            self.send(self.announcePacket(cid)),
            codec.UDPErrorResponse(5, "bad connection id"),
        )
        cid = self.connect(("10.0.0.7", 7001))
        self.assertIsInstance(
            self.send(self.announcePacket(cid)), codec.UDPAnnounceResponse
        )

    def test_idExpires(self) -> None:
        """
        An id still works 120 s after the connect, never after 180 s.
        """
        cid = self.connect()
        self.clock.advance(120)
        self.assertIsInstance(
            self.send(self.announcePacket(cid)), codec.UDPAnnounceResponse
        )
        self.clock.advance(60)
        self.assertEqual(
            self.send(self.announcePacket(cid)),
            codec.UDPErrorResponse(5, "bad connection id"),
        )

    def test_shortAndGarbage(self) -> None:
        """
        Short datagrams, garbage and a connect without the protocol id get
        no answer.
        """
        for data in (
            b"",
            b"\x00",
            b"x" * 15,
            struct.pack("!QII", 0x41727101981, 0, 1),
            struct.pack("!QII", 0x41727101980, 0, 1) + b"extra",
            struct.pack("!QII", 1, 9, 1),
            b"\xff" * 98,
        ):
            self.assertIsNone(self.send(data), data)

    def test_malformedWithGoodId(self) -> None:
        """
        A malformed request with a good id gets an error.
        """
        cid = self.connect()
        short = self.announcePacket(cid)[:60]
        self.assertEqual(
            self.send(short), codec.UDPErrorResponse(5, "malformed request")
        )
        badEvent = bytearray(self.announcePacket(cid))
        badEvent[80:84] = struct.pack("!I", 9)
        self.assertEqual(
            self.send(bytes(badEvent)), codec.UDPErrorResponse(5, "malformed request")
        )
        scrape = codec.encodeUDPRequest(codec.UDPScrapeRequest(cid, 6, (H1,)))
        self.assertIsInstance(self.send(scrape + b"x"), codec.UDPErrorResponse)

    def test_refusedAnnounce(self) -> None:
        """
        Port 0, negative left, an unknown info-hash with an allow-list get
        an error with the reason.
        """
        cid = self.connect()
        reply = self.send(self.announcePacket(cid, port=0))
        self.assertEqual(reply, codec.UDPErrorResponse(5, "port must be 1..65535"))
        reply = self.send(self.announcePacket(cid, left=-1))
        self.assertEqual(reply, codec.UDPErrorResponse(5, "left must not be negative"))
        self.swarm.allowed = frozenset([H2])
        reply = self.send(self.announcePacket(cid))
        self.assertIn("not registered", reply.message)
        self.assertEqual(self.swarm.torrents, {})

    def test_numwantCap(self) -> None:
        """
        A UDP announce gets at most 200 peers.
        """
        for i in range(300):
            self.swarm.announce(H1, pid(100 + i), "10.0.0.1", 1000 + i, 1)
        cid = self.connect()
        reply = self.send(self.announcePacket(cid, numwant=2**31 - 1))
        self.assertEqual(len(reply.response.peers), 200)

    def test_keylessPeerStaysPut(self) -> None:
        """
        Over UDP too, key 0 from another address cannot stop a peer that
        announced with key 0.
        """
        cid = self.connect()
        self.send(self.announcePacket(cid, left=5))
        other = ("10.6.6.6", 7000)
        cid2 = self.connect(other)
        reply = self.send(self.announcePacket(cid2, event="stopped"), other)
        self.assertEqual(
            reply, codec.UDPErrorResponse(5, "peer_id in use from another address")
        )
        self.assertEqual(self.swarm.scrape(H1), (0, 0, 1))

    def test_completedFloodBounded(self) -> None:
        """
        C{completed} announces over UDP with random info-hashes, then
        expiry, hold no torrent; a normal announce is answered.
        """
        self.swarm.maxTorrents = 10
        self.swarm.maxArchived = 15
        rng = random.Random(10)
        cid = self.connect()
        for _ in range(3):
            for _ in range(10):
                packet = self.announcePacket(
                    cid, infoHash=rng.randbytes(20), event="completed"
                )
                self.assertIsInstance(self.send(packet), codec.UDPAnnounceResponse)
            self.clock.advance(2 * self.swarm.interval + 1)
            cid = self.connect()
            self.swarm.expire()
            self.assertEqual(len(self.swarm.torrents), 0)
        self.assertEqual(len(self.swarm.archive), 15)
        reply = self.send(self.announcePacket(cid, left=5, event="started"))
        self.assertIsInstance(reply, codec.UDPAnnounceResponse)

    def test_ipField(self) -> None:
        """
        The IP field is honoured from loopback only.
        """
        cid = self.connect()
        self.send(self.announcePacket(cid, ip="10.5.5.5"))
        loop = ("127.0.0.1", 7000)
        cid2 = self.connect(loop)
        self.send(self.announcePacket(cid2, peerId=pid(2), ip="10.6.6.6"), loop)
        peers = self.swarm.torrents[H1].peers
        self.assertEqual(peers[pid(1)].host, "10.0.0.7")
        self.assertEqual(peers[pid(2)].host, "10.6.6.6")

    def test_ipv6(self) -> None:
        """
        Over IPv6 the peers are 18 bytes each, IPv6 ones only.
        """
        self.swarm.announce(H1, pid(8), "2001:db8::8", 8888, 0)
        self.swarm.announce(H1, pid(9), "10.0.0.9", 9999, 0)
        addr = ("2001:db8::1", 7000, 0, 0)
        cid = self.connect(addr)
        reply = self.send(self.announcePacket(cid), addr, v6=True)
        self.assertEqual(reply.response.peers, (("2001:db8::8", 8888),))
        self.assertEqual(reply.response.complete, 3)

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=200))
    def test_garbageProperty(self, data) -> None:
        """
        Random datagrams never raise, and an unconnected source never gets
        more bytes back than it sent.
        """
        before = len(self.transport.written)
        self.protocol.datagramReceived(data, self.client)
        for reply, _ in self.transport.written[before:]:
            self.assertLessEqual(len(reply), len(data))
        self.assertEqual(self.swarm.torrents, {})


class StateFileTests(SynchronousTestCase):
    """
    L{saveState} and L{loadState}.
    """

    def test_roundTrip(self) -> None:
        """
        Counts written are read back; no temporary file is left.
        """
        path = self.mktemp()
        saveState(path, {H1: 3, H2: 1})
        self.assertEqual(loadState(path), {H1: 3, H2: 1})
        self.assertFalse(os.path.exists(path + ".tmp"))

    def test_saveFailure(self) -> None:
        """
        When the new state cannot be written (here: C{fsync} fails), the
        previous file stays as it was and no temporary file is left.
        """
        directory = self.mktemp()
        os.mkdir(directory)
        path = os.path.join(directory, "state.json")
        saveState(path, {H1: 3})

        def failingFsync(fd):
            raise OSError(5, "Input/output error")

        self.patch(os, "fsync", failingFsync)
        self.assertRaises(OSError, saveState, path, {H1: 4})
        self.assertEqual(os.listdir(directory), ["state.json"])
        self.assertEqual(loadState(path), {H1: 3})

    def test_missing(self) -> None:
        """
        A missing file reads as no counts.
        """
        self.assertEqual(loadState(self.mktemp()), {})

    def test_garbage(self) -> None:
        """
        Anything but a version 1 state file raises L{StateFileError}.
        """
        for body in (
            b"\x00\xff garbage",
            b"[]",
            b'{"version": 2, "downloaded": {}}',
            b'{"version": 1}',
            b'{"version": 1, "downloaded": {"zz": 1}}',
            b'{"version": 1, "downloaded": {"' + b"g" * 40 + b'": 1}}',
            b'{"version": 1, "downloaded": {"' + b"a" * 40 + b'": -1}}',
            b'{"version": 1, "downloaded": {"' + b"a" * 40 + b'": "1"}}',
        ):
            path = self.mktemp()
            with open(path, "wb") as f:
                f.write(body)
            self.assertRaises(StateFileError, loadState, path)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"{}" + b" " * 100)
        self.assertRaises(StateFileError, loadState, path, maxSize=10)
        os.mkdir(path + "d")
        self.assertRaises(StateFileError, loadState, path + "d")


class SwarmServiceTests(SynchronousTestCase):
    """
    The periodic sweep and the state file.
    """

    def setUp(self) -> None:
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_sweep(self) -> None:
        """
        Silent peers are expired by the periodic sweep.
        """
        clock = Clock()
        swarm = Swarm(clock, interval=100)
        service = SwarmService(swarm, clock, sweepInterval=10)
        service.startService()
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 1)
        clock.advance(200)
        self.assertEqual(swarm.peerCount, 1)
        clock.advance(10)
        self.assertEqual(swarm.peerCount, 0)
        service.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stateFile(self) -> None:
        """
        Counts are saved periodically and on stop, and loaded on start.
        """
        clock = Clock()
        path = self.mktemp()
        swarm = Swarm(clock)
        service = SwarmService(swarm, clock, stateFile=path, saveInterval=30)
        service.startService()
        swarm.announce(H1, pid(1), "10.0.0.1", 1, 0, "completed")
        self.assertFalse(os.path.exists(path))
        clock.advance(30)
        self.assertEqual(loadState(path), {H1: 1})
        swarm.announce(H1, pid(2), "10.0.0.1", 2, 0, "completed")
        service.stopService()
        self.assertEqual(loadState(path), {H1: 2})
        again = Swarm(clock)
        SwarmService(again, clock, stateFile=path).startService()
        self.assertEqual(again.scrape(H1), (0, 2, 0))

    def test_garbageStateFile(self) -> None:
        """
        A garbage state file is logged and the tracker starts empty.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"\x89PNG garbage")
        clock = Clock()
        swarm = Swarm(clock)
        service = SwarmService(swarm, clock, stateFile=path)
        service.startService()
        self.assertEqual(swarm.torrents, {})
        self.assertTrue(
            any(
                "Ignoring the tracker state file" in e.get("log_format", "")
                for e in self.events
            )
        )
        service.stopService()
        self.assertEqual(loadState(path), {})

    def test_saveFailureLogged(self) -> None:
        """
        A state file that cannot be written is logged, not raised.
        """
        clock = Clock()
        path = os.path.join(self.mktemp(), "missing-dir", "state.json")
        service = SwarmService(Swarm(clock), clock, stateFile=path)
        service.startService()
        service.stopService()
        self.assertTrue(
            any("Cannot save" in e.get("log_format", "") for e in self.events)
        )


class OptionsTests(SynchronousTestCase):
    """
    C{twistd btorrent-tracker} options.
    """

    def parse(self, *args) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def writeFile(self, body: bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(body)
        return path

    def test_defaults(self) -> None:
        """
        Port 6969 on every IPv4 address, no allow-list, no state file.
        """
        options = self.parse()
        self.assertEqual((options["port"], options["interface"]), (6969, "0.0.0.0"))
        self.assertIsNone(options["allowed"])
        self.assertIsNone(options["state-file"])

    def test_badValues(self) -> None:
        """
        A bad port, interface, interval or cap is a usage error.
        """
        for args in (
            ["--port", "abc"],
            ["--port", "0"],
            ["--port", "65536"],
            ["--interface", "localhost"],
            ["--interval", "0"],
            ["--interval", "10", "--min-interval", "20"],
            ["--max-torrents", "0"],
            ["--max-peers", "-1"],
            ["--save-interval", "0"],
            ["--max-archived", "-1"],
            ["--sweep-interval", "0"],
        ):
            self.assertRaises(usage.UsageError, self.parse, *args)

    def test_allowFile(self) -> None:
        """
        The allow file takes 40-hex lines, comments and blank lines.
        """
        path = self.writeFile(
            b"# allowed\n\n"
            + H1.hex().encode()
            + b"\n  "
            + H2.hex().upper().encode()
            + b"  # second\n"
        )
        self.assertEqual(self.parse("--allow-file", path)["allowed"], [H1, H2])
        self.assertEqual(readAllowFile(path), [H1, H2])

    def test_badAllowFile(self) -> None:
        """
        A missing file or a bad line is a usage error naming it.
        """
        e = self.assertRaises(
            usage.UsageError, self.parse, "--allow-file", self.mktemp()
        )
        self.assertIn("cannot read allow file", str(e))
        directory = self.mktemp()
        os.mkdir(directory)
        e = self.assertRaises(usage.UsageError, self.parse, "--allow-file", directory)
        self.assertIn("cannot read allow file", str(e))
        for bad in (b"abc", b"g" * 40, H1.hex().encode() + b" extra", b"\xff" * 40):
            path = self.writeFile(b"# ok\n" + H1.hex().encode() + b"\n" + bad + b"\n")
            e = self.assertRaises(usage.UsageError, self.parse, "--allow-file", path)
            self.assertIn("line 3", str(e))

    def test_makeService(self) -> None:
        """
        The service holds the swarm service and the TCP and UDP ports on
        the one port and interface, with the options applied.
        """
        options = self.parse(
            "--port",
            "7000",
            "--interface",
            "127.0.0.1",
            "--interval",
            "60",
            "--min-interval",
            "30",
            "--max-torrents",
            "5",
        )
        from btorrent.trackerserver import tap
        from tests.test_tracker_server_limits import ListeningReactor

        self.patch(tap, "raiseOpenFilesLimit", lambda: None)
        reactor = ListeningReactor()
        top = makeService(options, reactor=reactor)
        kinds = sorted(type(s).__name__ for s in top)
        self.assertEqual(kinds, ["ListeningPort", "ListeningPort", "SwarmService"])
        self.assertEqual(
            [(port, interface) for port, _, _, interface in reactor.tcpServers]
            + [(port, interface) for port, _, interface, _ in reactor.udpServers],
            [(7000, "127.0.0.1")] * 2,
        )
        self.assertEqual(
            (top.swarm.interval, top.swarm.minInterval, top.swarm.maxTorrents),
            (60, 30, 5),
        )
        self.assertEqual(top.swarm.maxArchived, 100_000)
        top = makeService(
            self.parse("--max-archived", "7", "--sweep-interval", "2"),
            reactor=ListeningReactor(),
        )
        self.assertEqual(top.swarm.maxArchived, 7)
        [swarmService] = [s for s in top if isinstance(s, SwarmService)]
        self.assertEqual(swarmService.sweepInterval, 2)


class CachedEncodingTests(SynchronousTestCase):
    """
    The server's responses built from cached compact peers are byte for byte
    what the codec builds from addresses.
    """

    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)),
                st.integers(1, 65535),
                st.integers(0, 3),
            ),
            max_size=30,
        ),
        st.integers(0, 2**32 - 1),
    )
    def test_sameBytesAsCodec(self, peers, transactionId) -> None:
        """
        HTTP compact and UDP (v4 and v6) announce responses equal the
        codec's encodings of the same values.
        """
        from btorrent.trackerserver.server import (
            encodeCompactResponse,
            encodeUDPAnnounceResponse,
        )

        swarm = Swarm(Clock(), random.Random(0))
        for i, (host, port, left) in enumerate(peers):
            swarm.announce(H1, pid(i + 1), host, port, left)
        result = swarm.announce(H1, pid(0), "10.0.0.1", 1, 1, numwant=200)
        response = codec.AnnounceResponse(
            interval=result.interval,
            minInterval=result.minInterval,
            peers=tuple((p.host, p.port) for p in result.peers),
            complete=result.complete,
            incomplete=result.incomplete,
        )
        self.assertEqual(
            encodeCompactResponse(result), codec.encodeHTTPResponse(response)
        )
        for v6 in (False, True):
            self.assertEqual(
                encodeUDPAnnounceResponse(transactionId, result, v6),
                codec.encodeUDPResponse(
                    codec.UDPAnnounceResponse(transactionId, response), v6=v6
                ),
            )
