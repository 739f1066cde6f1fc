"""
Tests for the tracker server: L{btorrent.tracker.swarm} (pure state) and
L{btorrent.tracker.server} (HTTP resource, UDP protocol, state file).
"""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from btorrent.tracker.swarm import (
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
        A re-announce updates address, port and left without adding a peer.
        """
        self.swarm.announce(H1, pid(1), "10.0.0.1", 6881, 10)
        self.swarm.announce(H1, pid(1), "10.0.0.9", 7000, 0)
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
        Over many samples every other peer turns up about equally often.
        """
        swarm = Swarm(Clock(), random.Random(3))
        self.fill(swarm, 20)
        seen = {}
        for _ in range(2000):
            for p in swarm.announce(H1, pid(0), "10.0.0.1", 1000, 1, numwant=5).peers:
                seen[p.peerId] = seen.get(p.peerId, 0) + 1
        self.assertEqual(len(seen), 19)
        # 2000 * 5 / 19 ~ 526 each.
        self.assertTrue(all(400 < n < 650 for n in seen.values()), seen)

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
        self.assertEqual((stats.torrents, stats.peers, stats.downloaded), (1, 0, 1))


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
        Bad hashes, zero counts, refused hashes and counts beyond the cap
        are left out.
        """
        swarm = Swarm(Clock(), maxTorrents=1, allowed=[H1, H2])
        taken = swarm.restoreDownloadCounts(
            {b"x": 3, b"\x09" * 20: 4, H1: 0, H2: 5, H1 + b"": 0}
        )
        self.assertEqual(taken, 1)
        self.assertEqual(swarm.downloadCounts(), {H2: 5})


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
        An id is valid for its address only, for at least 60 s and never
        more than 120 s.
        """
        clock = Clock()
        clock.advance(1000)
        ids = ConnectionIds(clock, secret=b"k" * 32)
        cid = ids.make("127.0.0.1", 5000)
        self.assertTrue(ids.check(cid, "127.0.0.1", 5000))
        self.assertFalse(ids.check(cid, "127.0.0.1", 5001))
        self.assertFalse(ids.check(cid, "127.0.0.2", 5000))
        self.assertFalse(ids.check(cid ^ 1, "127.0.0.1", 5000))
        clock.advance(60)
        self.assertTrue(ids.check(cid, "127.0.0.1", 5000))
        clock.advance(60)
        self.assertFalse(ids.check(cid, "127.0.0.1", 5000))

    def test_secretMatters(self) -> None:
        """
        Another secret (another tracker, or after a restart) makes other ids.
        """
        clock = Clock()
        a = ConnectionIds(clock)
        b = ConnectionIds(clock)
        self.assertNotEqual(a.make("::1", 1), b.make("::1", 1))
        self.assertFalse(b.check(a.make("::1", 1), "::1", 1))

    @given(st.integers(0, 2**64 - 1))
    def test_guessFails(self, guess) -> None:
        """
        Random ids are refused (2**-63 chance each).
        """
        ids = ConnectionIds(Clock(), secret=b"s" * 32)
        if guess not in (ids.make("10.0.0.1", 80),):
            self.assertFalse(ids.check(guess, "10.0.0.1", 80))
