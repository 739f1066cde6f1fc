"""
The Fast extension (BEP 6) between btorrent and libtorrent on 127.0.0.1
(libtorrent always offers it): Have All from a libtorrent seeder; a
libtorrent seeder that chokes us with requests outstanding rejects them,
and they go to the other seeder at once, with no timeout; our own rejects,
when we choke a libtorrent leecher, are honoured; and peers that break the
extension's rules are dropped.

btorrent runs as a L{Session} on the trial reactor in debug mode: every
message in and out is a log event (C{"{peer} -> {wireMessage}"} and
C{"{peer} <- {wireMessage}"}), which the tests read.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor, task, threads

from btorrent.codec import wire
from btorrent.daemon.session import Session
from btorrent.engine.requests import REQUEST_TIMEOUT
from btorrent.engine.storage import MultiFileWriter
from btorrent.peer.connection import ExtensionHandshake
from btorrent.peer.fast import allowedFastSet
from tests import hostilepeers
from tests import test_interop_swarm as swarm
from tests.realseeders import libtorrentLeecher, libtorrentSeeder
from tests.test_interop_seed import noParts, pollUntil

#: 64 pieces of 64 KiB (4 blocks each), the last short.
FILES = [("fast.bin", 63 * 65536 + 40000)]
PIECE = 65536

#: Upload rate of the seeder that will choke us: slow enough that requests
#: wait in its queue when it chokes.
SLOW_RATE = 192 * 1024
#: The other seeder's.
FAST_RATE = 1 << 20


def messages(watch, port: int, arrow: str):
    """
    The wire messages the debug log shows for the peer at
    127.0.0.1:C{port}, C{arrow} C{"->"} (received) or C{"<-"} (sent), as
    C{(log time, message)} in order.
    """
    name = f"127.0.0.1:{port}"
    fmt = "{peer} " + arrow + " {wireMessage}"
    # A block is logged by its length, not its bytes: an empty Piece
    # stands for it.
    pieceFormat = "{peer} " + arrow + " Piece({index}, {begin}, <{length} bytes>)"
    found = []
    for event in watch.events:
        if event.get("peer") != name:
            continue
        if event.get("log_format") == fmt:
            found.append((event["log_time"], event["wireMessage"]))
        elif event.get("log_format") == pieceFormat:
            found.append(
                (event["log_time"], wire.Piece(event["index"], event["begin"], b""))
            )
    return found


def ofType(pairs, kind):
    return [(when, message) for when, message in pairs if type(message) is kind]


class DebugSwarm(swarm.SwarmTestCase):
    """
    A downloading or seeding session in debug mode.
    """

    def makeSession(self, fixture, **kwargs):
        self.session = Session(
            reactor,
            port=0,
            interface="127.0.0.1",
            stateDir=fixture.stateDir,
            debug=True,
            **kwargs,
        )
        self.addCleanup(self.stopSession)
        return self.session


class SeederChokesTests(DebugSwarm):
    """
    Two libtorrent seeders; one chokes us mid-download.
    """

    timeout = 90

    @defer.inlineCallbacks
    def test_chokeRejectsGoElsewhere(self):
        """
        Have All comes first from each libtorrent seeder.  When one chokes
        us with requests in its queue, it rejects them; each rejected block
        is free for the other seeder at once (the download ends long before
        a request timeout, L{REQUEST_TIMEOUT}, could have given them back),
        and is asked of it; while it chokes us we ask it only for pieces it
        allows fast; the download completes byte-identical.
        """
        fixture = swarm.Fixture(self, FILES, PIECE)
        choker = libtorrentSeeder(fixture.seedDir, fixture.torrentBytes)
        self.addCleanup(choker.close)
        choker.session.apply_settings({"unchoke_interval": 1})
        swarm.limitLibtorrentUpload(choker, SLOW_RATE)
        other = libtorrentSeeder(fixture.seedDir, fixture.torrentBytes)
        self.addCleanup(other.close)
        swarm.limitLibtorrentUpload(other, FAST_RATE)
        session = self.makeSession(fixture)
        torrent = session.addTorrent(
            fixture.metainfo,
            fixture.downloadDir,
            announcerFactory=noParts,
            chokerFactory=noParts,
        )
        session.startService()
        yield swarm.withTimeout(torrent.ready, 10, "the torrent to start")
        torrent.addPeers([("127.0.0.1", choker.port)])
        yield pollUntil(
            lambda: ofType(messages(self.logWatch, choker.port, "->"), wire.Piece),
            10,
            "blocks from the seeder that will choke",
        )
        torrent.addPeers([("127.0.0.1", other.port)])
        yield pollUntil(
            lambda: ofType(messages(self.logWatch, other.port, "->"), wire.Piece),
            10,
            "blocks from the other seeder",
        )
        # Loopback peers are in libtorrent's local peer class, which ignores
        # unchoke slots: make them count, and leave none.
        choker.session.set_peer_class(
            choker.session.local_peer_class_id,
            {"upload_limit": SLOW_RATE, "ignore_unchoke_slots": False},
        )
        choker.session.apply_settings({"unchoke_slots_limit": 0})
        yield pollUntil(
            lambda: ofType(messages(self.logWatch, choker.port, "->"), wire.Choke),
            10,
            "the seeder to choke us",
        )
        yield swarm.withTimeout(torrent.completed, 60, "the download to complete")
        completedAt = reactor.seconds()
        yield self.finish(torrent, fixture, 60)

        received = messages(self.logWatch, choker.port, "->")
        for port in (choker.port, other.port):
            # Its first message of the peer wire (its BEP 10 handshake may
            # come before: that is the extension protocol's).
            first = [
                message
                for _, message in messages(self.logWatch, port, "->")
                if type(message) is not ExtensionHandshake
            ][0]
            self.assertEqual(first, wire.HaveAll())
        [(chokedAt, _)] = ofType(received, wire.Choke)
        rejects = [
            (when, m)
            for when, m in ofType(received, wire.RejectRequest)
            if when >= chokedAt
        ]
        self.assertTrue(rejects, "the choking seeder rejected nothing")
        toOther = ofType(messages(self.logWatch, other.port, "<-"), wire.Request)
        for rejectedAt, reject in rejects:
            again = [
                when
                for when, m in toOther
                if (m.index, m.begin) == (reject.index, reject.begin)
                and when >= rejectedAt
            ]
            self.assertTrue(again, f"{reject} never asked of the other seeder")
        # Without the rejects these blocks would have waited for the
        # request timeout: the whole download ended long before it.
        self.assertLess(completedAt - chokedAt, REQUEST_TIMEOUT / 4)
        allowed = {m.index for _, m in ofType(received, wire.AllowedFast)}
        askedWhileChoked = [
            m
            for when, m in ofType(
                messages(self.logWatch, choker.port, "<-"), wire.Request
            )
            if when > chokedAt
        ]
        self.assertEqual([m for m in askedWhileChoked if m.index not in allowed], [])
        self.assertEqual(self.logWatch.texts("sent nothing for"), [])
        reasons = self.logWatch.dropReasons(f"127.0.0.1:{choker.port}")
        self.assertEqual(
            [r for r in reasons if r not in ("both complete", "shutting down")], []
        )


class OurRejectsTests(DebugSwarm):
    """
    btorrent seeds to a libtorrent leecher and chokes it with requests
    waiting for the disk.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_rejectsHonoured(self):
        """
        The choke rejects every queued request (but the leecher's
        allowed-fast pieces); libtorrent keeps the connection, asks us for
        nothing else while choked, asks again once unchoked, and completes
        byte-identical.
        """
        fixture = swarm.Fixture(self, FILES, PIECE)

        def slowReads(f, *args):
            # Reads wait a little, so requests queue at the uploader.
            return task.deferLater(reactor, 0.05, lambda: None).addCallback(
                lambda _: threads.deferToThread(f, *args)
            )

        # Every read goes through them: none straight from the page cache.
        self.patch(MultiFileWriter, "readPieceIfCached", lambda self, index: None)

        session = self.makeSession(fixture, runInThread=slowReads)
        torrent = session.addTorrent(
            fixture.metainfo,
            fixture.seedDir,
            announcerFactory=noParts,
            chokerFactory=noParts,
        )
        session.startService()
        yield swarm.withTimeout(torrent.ready, 20, "the seeder to start")
        outDir = os.path.join(fixture.base, "leech")
        leecher = libtorrentLeecher(outDir, fixture.torrentBytes)
        self.addCleanup(leecher.close)
        leecher.connect("127.0.0.1", session.port)
        downloader = torrent.downloader
        yield pollUntil(
            lambda: any(p.peerInterested for p in downloader.peers),
            10,
            "the leecher to be interested",
        )
        [peer] = downloader.peers
        allowed = set(
            allowedFastSet(
                10, "127.0.0.1", fixture.metainfo.infoHash, fixture.metainfo.pieceCount
            )
        )
        peer.unchoke()
        # (It asks for its allowed-fast pieces first.)
        yield pollUntil(
            lambda: any(r[0] not in allowed for r in downloader.peers[peer].serving),
            10,
            "requests waiting to be served",
        )
        peer.choke()
        rejected = ofType(
            messages(self.logWatch, peer.address[1], "<-"), wire.RejectRequest
        )
        self.assertGreater(len(rejected), 0)
        yield task.deferLater(reactor, 1.0, lambda: None)
        self.assertIn(peer, downloader.peers)
        peer.unchoke()
        yield pollUntil(lambda: leecher.finished, 30, "the leecher to finish")
        swarm.seedtests.assertSameFiles(self, FILES, fixture.seedDir, outDir, settle=5)
        port = peer.address[1]
        sent = messages(self.logWatch, port, "<-")
        received = messages(self.logWatch, port, "->")
        [(chokedAt, _)] = ofType(sent, wire.Choke)
        unchokedAt = ofType(sent, wire.Unchoke)[-1][0]
        # While choked, it asked only for its allowed-fast pieces (a
        # request already on the wire when the choke left is answered
        # too: give it 0.2 s).
        whileChoked = [
            m
            for when, m in ofType(received, wire.Request)
            if chokedAt + 0.2 < when < unchokedAt
        ]
        self.assertEqual([m for m in whileChoked if m.index not in allowed], [])
        # Every rejected block was asked for again, and served.
        served = {(m.index, m.begin) for _, m in ofType(sent, wire.Piece)}
        for _, reject in rejected:
            self.assertIn((reject.index, reject.begin), served)
        # One connection all along: not dropped, never reconnected.
        self.assertEqual(len(self.logWatch.texts(" connected (")), 1)
        reasons = self.logWatch.dropReasons(f"127.0.0.1:{port}")
        self.assertEqual([r for r in reasons if r != "both complete"], [])
        self.assertGreaterEqual(torrent.uploaded, fixture.metainfo.totalLength)
        self.assertNoTracebacks()


class HostileFastTests(DebugSwarm):
    """
    Peers that break the Fast extension's rules while an honest libtorrent
    seeder serves the download: dropped, no traceback, the download
    completes.
    """

    timeout = 60
    startHonest = swarm.HostilePeerTests.startHonest
    incoming = swarm.HostilePeerTests.incoming
    expectDrop = swarm.HostilePeerTests.expectDrop
    assertReason = swarm.HostilePeerTests.assertReason

    def fastPeer(self, after: bytes) -> hostilepeers.GarbagePeer:
        return hostilepeers.GarbagePeer(
            self.metainfo.infoHash,
            self.metainfo.pieceCount,
            after=after,
            reserved=wire.reservedBytes(fast=True),
        )

    @defer.inlineCallbacks
    def test_rejectNeverRequested(self):
        """
        A Reject for a block we never asked for.
        """
        peer, reasons, _ = yield self.incoming(
            lambda: self.fastPeer(
                wire.encodeMessage(wire.HaveNone())
                + wire.encodeMessage(wire.RejectRequest(0, 0, 16384))
            )
        )
        self.assertReason(reasons, "rejected a request never made")

    @defer.inlineCallbacks
    def test_haveAllAfterBitfield(self):
        """
        Have All after a bitfield.
        """
        peer, reasons, _ = yield self.incoming(
            lambda: self.fastPeer(
                wire.encodeMessage(
                    wire.BitfieldMessage(
                        hostilepeers.fullBitfield(self.metainfo.pieceCount)
                    )
                )
                + wire.encodeMessage(wire.HaveAll())
            )
        )
        self.assertReason(reasons, "have-all/none after other messages")

    @defer.inlineCallbacks
    def test_fastWithoutNegotiation(self):
        """
        Have All from a peer that did not offer the extension.
        """
        peer, reasons, _ = yield self.incoming(
            lambda: hostilepeers.GarbagePeer(
                self.metainfo.infoHash,
                self.metainfo.pieceCount,
                after=wire.encodeMessage(wire.HaveAll()),
            )
        )
        self.assertReason(reasons, "without the Fast extension")
