"""
Connection slots exhausted by idle peers, with real sockets: 500
connections that complete the handshake and then say nothing but
keep-alives, against a btorrent seeder (the in-process
L{btorrent.daemon.session.Session}, 50 slots).

Before L{btorrent.engine.slots}, they filled every slot and an honest peer
was refused for as long as they stayed.  Now a newcomer takes the slot of
the peer idle longest, so a real libtorrent leecher gets in at once and
downloads everything, even while the 500 reconnect as soon as they are
dropped; and peers that only handshake are dropped at their deadline, so
that the slots are freed when nobody new comes.
"""

from __future__ import annotations

import os
import resource
import time

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from btorrent.engine.downloader import TICK
from tests import hostilepeers
from tests.realseeders import libtorrentLeecher
from tests.test_interop_seed import Data, LogWatch, pollUntil, startSeeder

#: 4 MiB and a bit, in 64 KiB pieces.
FILES = [("idle-flood.bin", 4 * 1024 * 1024 + 1234)]
PIECE = 65536

#: Idle connections.
ATTACKERS = 500

EVICTED = "idle, and the slots are full: room for a newcomer"
QUIET = "said nothing useful within 2 s of its handshake"

#: A test peer's id starts so (L{hostilepeers.makePeerId}).
ATTACKER_ID = b"-TT0001-"


def raiseFileLimit(needed: int) -> None:
    """
    Raise the soft limit of open files to the hard one; fail if it stays
    below C{needed} (both ends of every connection are in this process).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed and (hard == resource.RLIM_INFINITY or hard > soft):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise AssertionError(f"{needed} open files needed, the limit is {soft}")


class IdlePeerFloodTests(TestCase):
    """
    One btorrent seeder per test, 500 idle connections.
    """

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        raiseFileLimit(4 * ATTACKERS)
        self.base = os.path.abspath(self.mktemp())
        self.data = Data(self.base, FILES, PIECE)
        self.metainfo = self.data.metainfo
        self.watch = LogWatch.install(self)
        self.session, [self.torrent] = yield startSeeder(
            self, [self.data], os.path.join(self.base, "state")
        )
        self.downloader = self.torrent.downloader
        self.assertEqual(self.downloader.maxPeers, 50)
        self.mostPeers = 0
        sampler = task.LoopingCall(self.sample)
        sampler.start(0.005)
        self.addCleanup(sampler.stop)

    def sample(self) -> None:
        """
        Record the most peers connected at once.
        """
        self.mostPeers = max(self.mostPeers, len(self.downloader.peers))

    def swarm(self, **kwargs) -> hostilepeers.IdleSwarm:
        """
        Start L{ATTACKERS} idle connections to the seeder (closed when the
        test ends).
        """
        swarm = hostilepeers.IdleSwarm(
            reactor,
            self.session.port,
            self.metainfo.infoHash,
            self.metainfo.pieceCount,
            count=ATTACKERS,
            **kwargs,
        )
        swarm.start()
        self.addCleanup(swarm.stop)
        return swarm

    def attackersIn(self) -> int:
        """
        How many slots the idle connections hold.
        """
        return sum(1 for p in self.downloader.peers if p.peerId.startswith(ATTACKER_ID))

    def dropped(self, reason: str) -> int:
        """
        How many peers the seeder logged as dropped for C{reason}.
        """
        return sum(
            1
            for event in self.watch.events
            if event.get("reason") == reason
            and event.get("log_format", "").startswith("peer {host}:{port} dropped")
        )

    def accepted(self) -> int:
        """
        How many idle connections the torrent accepted so far: those
        dropped since, and those holding a slot.
        """
        return self.dropped(EVICTED) + self.dropped(QUIET) + self.attackersIn()

    @defer.inlineCallbacks
    def test_honestLeecherGetsIn(self):
        """
        With every slot held by idle connections that reconnect a second
        after they are dropped, a real libtorrent leecher gets a slot within
        5 s (libtorrent itself takes about 1.5 s to dial a peer it is given,
        attack or not) and downloads the whole torrent; the slots never
        exceed 50.
        """
        swarm = self.swarm(reconnect=1.0, keepAlive=2.0)
        yield pollUntil(
            lambda: swarm.connections >= ATTACKERS and self.attackersIn() == 50,
            60,
            lambda: f"the idle peers to fill the slots ({swarm.connections} open)",
        )
        outDir = os.path.join(self.base, "out")
        leecher = libtorrentLeecher(outDir, self.data.torrentBytes)
        self.addCleanup(leecher.close)
        started = time.monotonic()
        leecher.connect("127.0.0.1", self.session.port)

        def leecherIn():
            return any(
                not p.peerId.startswith(ATTACKER_ID) for p in self.downloader.peers
            )

        yield pollUntil(leecherIn, 5, "the libtorrent leecher to get a slot", 0.01)
        gotIn = time.monotonic() - started
        yield pollUntil(lambda: leecher.finished, 60, "the libtorrent leecher")
        self.data.assertSame(self, outDir, settle=5)
        self.assertLess(gotIn, 5)
        self.assertLessEqual(self.mostPeers, 50)
        # The first wave alone: every arrival past 50 took an idle slot (the
        # leecher may finish before the last of them has handshaken).
        yield pollUntil(
            lambda: self.accepted() >= ATTACKERS,
            30,
            lambda: f"every idle connection to be accepted ({self.accepted()})",
        )
        self.assertGreaterEqual(self.dropped(EVICTED), ATTACKERS - 50)
        self.assertEqual(swarm.failures, 0)
        self.assertEqual(self.watch.tracebacks(), [])

    @defer.inlineCallbacks
    def test_quietPeersFreeSlots(self):
        """
        500 connections, once each, sending only keep-alives: 450 are
        dropped as newcomers arrive, and the 50 left are dropped at their
        deadline (shortened to 2 s here: 30 s by default), freeing every
        slot.
        """
        self.downloader.quietDeadline = 2.0
        swarm = self.swarm(reconnect=None, keepAlive=0.5)
        yield pollUntil(
            lambda: self.accepted() >= ATTACKERS,
            60,
            lambda: f"the torrent to accept every connection ({self.accepted()})",
        )
        arrived = time.monotonic()
        yield pollUntil(
            lambda: not self.downloader.peers and not swarm.open,
            2.0 + 2 * TICK,
            lambda: f"the slots to be freed ({len(self.downloader.peers)} held)",
        )
        freedAfter = time.monotonic() - arrived
        self.assertLess(freedAfter, 2.0 + 2 * TICK)
        self.assertEqual(swarm.connections, ATTACKERS)
        self.assertEqual(swarm.closedByBtorrent, ATTACKERS)
        self.assertEqual(self.dropped(EVICTED) + self.dropped(QUIET), ATTACKERS)
        self.assertGreaterEqual(self.dropped(QUIET), 50)
        self.assertLessEqual(self.mostPeers, 50)
        self.assertEqual(swarm.failures, 0)
        self.assertEqual(self.watch.tracebacks(), [])
