"""
btorrent in real swarms on 127.0.0.1: downloads from aria2 and from
Transmission, from two real seeders at once, next to a seeder that lies
about its data, and next to peers that break the protocol while an honest
seeder serves the download.

Every test checks that the download is byte-identical and that nothing was
logged as a traceback.  Data and torrents are made at run time.
"""

from __future__ import annotations

import hashlib
import os
import struct

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from btorrent.codec import metainfo, wire
from btorrent.daemon.session import Session
from btorrent.peer.protocol import maxMessageLength
from tests import hostilepeers
from tests import test_interop_seed as seedtests
from tests.realaria2 import seederFor
from tests.realseeders import (
    libtorrentSeeder,
    makeTorrent,
    writeFiles,
    writeLargeFile,
)
from tests.realtransmission import Transmission
from tests.test_interop_seed import noParts

#: A multi-directory torrent: 0-byte files, pieces straddling files.
TREE = [
    ("tree/a.bin", 100000),
    ("tree/empty", 0),
    ("tree/sub/b.bin", 40000),
    ("tree/sub/deeper/zero", 0),
    ("tree/sub/deeper/c.bin", 300001),
    ("tree/z/last.bin", 1),
]

#: For the hostile-peer tests: 129 pieces of 16 KiB (one block each, so
#: every piece comes from one peer), the last short, and 7 spare bits in
#: a bitfield.
HOSTILE_FILES = [("hostile.bin", 128 * 16384 + 5000)]
HOSTILE_PIECE = 16384
#: Four blocks per piece (three in the last), for a liar that sends only
#: the first block of a piece.
SHARED_FILES = [("shared.bin", 64 * 65536 + 40000)]
SHARED_PIECE = 65536

#: Upload rate of the honest libtorrent seeder in the hostile tests: the
#: download lasts about a second, so the hostile peer acts in the middle.
HONEST_RATE = 2 << 20


def withTimeout(d: defer.Deferred, seconds: float, what: str) -> defer.Deferred:
    """
    C{d}, failing with a message naming C{what} after C{seconds}.
    """

    def timedOut(failure):
        failure.trap(defer.TimeoutError)
        raise AssertionError(f"timed out after {seconds} s waiting for {what}")

    d.addTimeout(seconds, reactor)
    d.addErrback(timedOut)
    return d


def peerName(port: int) -> str:
    """
    How btorrent names the peer at 127.0.0.1:C{port} in its log.
    """
    return f"127.0.0.1:{port}"


def limitLibtorrentUpload(seeder, rate: int) -> None:
    """
    Cap a libtorrent seeder's upload to loopback peers (they are in its
    "local" peer class, which global limits do not apply to).
    """
    session = seeder.session
    session.set_peer_class(session.local_peer_class_id, {"upload_limit": rate})


class LogWatch(seedtests.LogWatch):
    """
    Every log event while a test runs, and why peers were dropped.
    """

    def dropReasons(self, name: str):
        """
        Why btorrent dropped the peer called C{name}, as logged.
        """
        return [
            event["reason"]
            for event in self.events
            if event.get("peer") == name and isinstance(event.get("reason"), str)
        ]


class Fixture(seedtests.WorkDirectories):
    """
    Data on disk and its torrent.
    """

    def __init__(self, test, files, pieceLength: int, large: bool = False) -> None:
        super().__init__(test)
        self.files = files
        if large:
            for relative, size in files:
                writeLargeFile(os.path.join(self.seedDir, relative), size)
        else:
            writeFiles(self.seedDir, files, seed=len(files))
        self.torrentBytes = makeTorrent(self.seedDir, files, pieceLength)
        self.metainfo = metainfo.load(self.torrentBytes)

    def assertSame(self, test) -> None:
        """
        Every file is in the download directory, byte-identical.
        """
        seedtests.assertSameFiles(test, self.files, self.seedDir, self.downloadDir)


class SwarmTestCase(TestCase):
    """
    Runs one btorrent L{Session} on the trial reactor and watches the log.
    """

    timeout = 60

    def setUp(self) -> None:
        self.logWatch = LogWatch.install(self)
        self.session = None
        self._sessionStopped = False

    @defer.inlineCallbacks
    def startDownload(self, fixture: Fixture):
        """
        Start a session with the fixture's torrent, no peers yet.

        @return: a L{Deferred} firing with the L{Torrent} once it runs.
        """
        self.session = Session(
            reactor, port=0, interface="127.0.0.1", stateDir=fixture.stateDir
        )
        torrent = self.session.addTorrent(
            fixture.metainfo,
            fixture.downloadDir,
            announcerFactory=noParts,
            chokerFactory=noParts,
        )
        # Before starting: a start that fails half-way (its thread pool
        # running) must still be stopped, or the process cannot exit.
        self.addCleanup(self.stopSession)
        self.session.startService()
        yield withTimeout(torrent.ready, 10, "the torrent to start")
        return torrent

    def stopSession(self) -> defer.Deferred:
        """
        Stop the session (once).
        """
        if self._sessionStopped:
            return defer.succeed(None)
        self._sessionStopped = True
        return self.session.stopService()

    @defer.inlineCallbacks
    def finish(self, torrent, fixture: Fixture, seconds: float = 30):
        """
        Wait for the download, stop the session, and check the files, the
        byte count and the log.
        """
        yield withTimeout(torrent.completed, seconds, "the download to complete")
        downloaded = torrent.downloaded
        yield self.stopSession()
        fixture.assertSame(self)
        self.assertEqual(downloaded, fixture.metainfo.totalLength)
        self.assertNoTracebacks()

    def assertNoTracebacks(self) -> None:
        """
        Nothing was logged with a failure or a traceback.
        """
        self.assertEqual(self.logWatch.tracebacks(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def perPeerDownloads(self, torrent):
        """
        Follow the block bytes each peer delivered, by address, until the
        download completes (seeders are dropped then).

        @return: the dict kept up to date.
        """
        counts = {}
        downloader = torrent.downloader

        def verified(index):
            for peer in downloader.peers:
                counts[peer.address] = peer.bytesDownloaded

        self.onPieceVerified(torrent, verified)
        return counts

    def onPieceVerified(self, torrent, callback) -> None:
        """
        Call C{callback(index)} for each piece verified.
        """
        torrent.downloader.events.listen("pieceVerified", callback)

    def firstPieceVerified(self, torrent) -> defer.Deferred:
        """
        A L{Deferred} firing once a piece was verified.
        """
        d = defer.Deferred()

        def verified(index):
            if not d.called:
                d.callback(index)

        self.onPieceVerified(torrent, verified)
        return d


class RealSeederTests(SwarmTestCase):
    """
    btorrent downloads from real seeders other than libtorrent.
    """

    @defer.inlineCallbacks
    def test_aria2MultiDirectory(self):
        """
        From an aria2 seeder, every file of a multi-directory torrent with
        0-byte files and pieces straddling files arrives byte-identical;
        the 0-byte files are created.
        """
        fixture = Fixture(self, TREE, 32768)
        seeder = seederFor(self, fixture.torrentBytes, fixture.seedDir)
        torrent = yield self.startDownload(fixture)
        torrent.addPeers([("127.0.0.1", seeder.port)])
        try:
            # Checks every file, the 0-byte ones included.
            yield self.finish(torrent, fixture, 20)
        except BaseException:
            print(seeder.log())
            raise

    @defer.inlineCallbacks
    def test_transmissionSingleFile(self):
        """
        From a Transmission seeder (btorrent connects to it: Transmission
        waits about 10 s before unchoking), a single file with a short
        last piece arrives byte-identical.
        """
        fixture = Fixture(self, [("single.bin", 40 * 65536 + 1234)], 65536)
        self.assertNotEqual(
            fixture.metainfo.pieceSize(fixture.metainfo.pieceCount - 1), 65536
        )
        transmission = yield threads.deferToThread(
            Transmission, os.path.join(fixture.base, "transmission")
        )
        self.addCleanup(threads.deferToThread, transmission.stop)
        torrentId = yield threads.deferToThread(
            transmission.addTorrent, fixture.torrentBytes, fixture.seedDir
        )
        yield threads.deferToThread(
            transmission.waitFor,
            torrentId,
            lambda s: s["percentDone"] == 1 and s["status"] == 6,
            15,
        )
        torrent = yield self.startDownload(fixture)
        torrent.addPeers([("127.0.0.1", transmission.peerPort)])
        try:
            yield self.finish(torrent, fixture, 35)
        except BaseException:
            print(transmission.log())
            raise

    @defer.inlineCallbacks
    def test_twoSeeders(self):
        """
        With a libtorrent and an aria2 seeder at once, btorrent takes data
        from both.  (Each is capped at 8 MiB/s, so that neither can serve
        all 32 MiB before the other starts: unlimited, either one may do it
        in a fraction of a second.)
        """
        fixture = Fixture(self, [("big.bin", 32 << 20)], 262144, large=True)
        aria2 = seederFor(
            self, fixture.torrentBytes, fixture.seedDir, extra=["--max-upload-limit=8M"]
        )
        lt = libtorrentSeeder(fixture.seedDir, fixture.torrentBytes)
        self.addCleanup(lt.close)
        limitLibtorrentUpload(lt, 8 << 20)
        torrent = yield self.startDownload(fixture)
        counts = self.perPeerDownloads(torrent)
        ltAddress = ("127.0.0.1", lt.port)
        aria2Address = ("127.0.0.1", aria2.port)
        torrent.addPeers([ltAddress, aria2Address])
        yield self.finish(torrent, fixture, 30)
        self.assertGreaterEqual(counts.get(ltAddress, 0), 262144, counts)
        self.assertGreaterEqual(counts.get(aria2Address, 0), 262144, counts)
        self.assertGreaterEqual(
            sum(counts.values()), fixture.metainfo.totalLength, counts
        )
        self.assertGreaterEqual(
            lt.handle.status().total_payload_upload, counts[ltAddress]
        )


class LiarTests(SwarmTestCase):
    """
    A seeder that corrupts every piece it serves, next to an honest
    libtorrent seeder.
    """

    @defer.inlineCallbacks
    def test_liarIsBanned(self):
        """
        btorrent detects the bad pieces, takes them from the honest seeder,
        finishes byte-identical, drops the liar after its third bad piece,
        does not connect to it again and refuses it when it comes back.
        """
        fixture = Fixture(self, HOSTILE_FILES, HOSTILE_PIECE)
        content = hostilepeers.TorrentContent(fixture.metainfo, fixture.seedDir)
        honest = libtorrentSeeder(fixture.seedDir, fixture.torrentBytes)
        self.addCleanup(honest.close)
        limitLibtorrentUpload(honest, HONEST_RATE)
        liarId = hostilepeers.makePeerId()
        listening, factory = hostilepeers.listenPeers(
            reactor, lambda: hostilepeers.LyingSeeder(content, peerId=liarId)
        )
        self.addCleanup(listening.stopListening)
        liarAddress = ("127.0.0.1", listening.getHost().port)
        torrent = yield self.startDownload(fixture)
        torrent.addPeers([liarAddress, ("127.0.0.1", honest.port)])
        liar = yield withTimeout(factory.firstPeer(), 5, "btorrent to dial the liar")
        yield withTimeout(liar.lost, 10, "btorrent to drop the liar")
        self.assertGreaterEqual(len(liar.corrupted), 3)
        self.assertFalse(torrent.completed.called)
        # Given again, the liar's address is not dialled.
        torrent.addPeers([liarAddress])
        # Coming back on its own (a new connection, the same peer id), it is
        # refused right after the handshakes.
        back = hostilepeers.LyingSeeder(content, peerId=liarId)
        yield hostilepeers.connectPeer(reactor, self.session.port, back)
        yield withTimeout(back.lost, 5, "btorrent to refuse the liar")
        self.assertEqual(back.messages, [])
        self.assertEqual(back.served, 0)
        yield self.finish(torrent, fixture, 20)
        self.assertEqual(len(factory.peers), 1)
        self.assertGreaterEqual(len(self.logWatch.texts("failed its hash check")), 3)
        # Banned at its third bad piece.
        strikes = [
            event["strikes"]
            for event in self.logWatch.events
            if "strikes" in event and event.get("port") == liarAddress[1]
        ]
        self.assertEqual(strikes[:1], [3])
        self.assertIn(
            "sent bad pieces", self.logWatch.dropReasons(peerName(liarAddress[1]))
        )


class SharedPieceLiarTests(SwarmTestCase):
    """
    A liar that sends only one corrupt block of a piece, the honest
    libtorrent seeder the rest: no failed piece names the culprit alone.
    """

    @defer.inlineCallbacks
    def test_liarFoundInSharedPieces(self):
        """
        The failed pieces had two senders each; once each passes, its
        blocks prove the liar, who is banned at its third strike; the
        honest seeder is never blamed and the download is byte-identical.
        """
        fixture = Fixture(self, SHARED_FILES, SHARED_PIECE)
        content = hostilepeers.TorrentContent(fixture.metainfo, fixture.seedDir)
        honest = libtorrentSeeder(fixture.seedDir, fixture.torrentBytes)
        self.addCleanup(honest.close)
        limitLibtorrentUpload(honest, HONEST_RATE)
        listening, factory = hostilepeers.listenPeers(
            reactor, lambda: hostilepeers.FirstBlockLiar(content)
        )
        self.addCleanup(listening.stopListening)
        liarAddress = ("127.0.0.1", listening.getHost().port)
        honestAddress = ("127.0.0.1", honest.port)
        torrent = yield self.startDownload(fixture)
        torrent.addPeers([liarAddress, honestAddress])
        liar = yield withTimeout(factory.firstPeer(), 5, "btorrent to dial the liar")
        yield withTimeout(liar.lost, 20, "btorrent to drop the liar")
        self.assertGreaterEqual(len(liar.corrupted), 3)
        yield self.finish(torrent, fixture, 30)
        failures = self.logWatch.texts("failed its hash check")
        self.assertGreaterEqual(len(failures), 3)
        self.assertEqual(
            [text for text in failures if "(1 peers took part)" in text], []
        )
        strikes = [
            (event.get("port"), event["strikes"])
            for event in self.logWatch.events
            if "strikes" in event
        ]
        self.assertEqual(strikes, [(liarAddress[1], 3)])
        self.assertIn(
            "sent bad pieces", self.logWatch.dropReasons(peerName(liarAddress[1]))
        )
        self.assertNotIn(
            "sent bad pieces", self.logWatch.dropReasons(peerName(honest.port))
        )


class HostilePeerTests(SwarmTestCase):
    """
    A peer breaks the protocol while an honest libtorrent seeder serves the
    download: btorrent drops that connection, the download completes
    byte-identical, nothing is logged as a traceback.
    """

    @defer.inlineCallbacks
    def startHonest(self):
        """
        The fixture, a capped honest seeder, and btorrent downloading from
        it; returns once the first piece is verified.
        """
        self.fixture = Fixture(self, HOSTILE_FILES, HOSTILE_PIECE)
        self.metainfo = self.fixture.metainfo
        self.content = hostilepeers.TorrentContent(self.metainfo, self.fixture.seedDir)
        honest = libtorrentSeeder(self.fixture.seedDir, self.fixture.torrentBytes)
        self.addCleanup(honest.close)
        limitLibtorrentUpload(honest, HONEST_RATE)
        torrent = yield self.startDownload(self.fixture)
        first = self.firstPieceVerified(torrent)
        torrent.addPeers([("127.0.0.1", honest.port)])
        yield withTimeout(first, 10, "a first piece from the honest seeder")
        return torrent

    @defer.inlineCallbacks
    def incoming(self, makePeer, watch=False):
        """
        Mid-download, a hostile peer from C{makePeer()} connects to
        btorrent; check that it is dropped and the download completes.

        @param watch: record what btorrent's incoming connections buffer.
        @return: a L{Deferred} firing with C{(peer, drop reasons logged,
            buffer stats or None)}.
        """
        torrent = yield self.startHonest()
        seen = self.watchIncoming() if watch else None
        peer = makePeer()
        yield hostilepeers.connectPeer(reactor, self.session.port, peer)
        reasons = yield self.expectDrop(torrent, peer, peer.localPort)
        stats = seen[("127.0.0.1", peer.localPort)] if watch else None
        return peer, reasons, stats

    @defer.inlineCallbacks
    def outgoing(self, makePeer):
        """
        Mid-download, btorrent connects to a hostile peer from
        C{makePeer()}; check that it is dropped and the download completes.

        @return: a L{Deferred} firing with C{(peer, drop reasons logged)}.
        """
        torrent = yield self.startHonest()
        listening, factory = hostilepeers.listenPeers(reactor, makePeer)
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        torrent.addPeers([("127.0.0.1", port)])
        peer = yield withTimeout(factory.firstPeer(), 5, "btorrent to dial")
        reasons = yield self.expectDrop(torrent, peer, port)
        return peer, reasons

    @defer.inlineCallbacks
    def expectDrop(self, torrent, peer, port):
        """
        The hostile peer's connection closes before the download completes
        (the test peers never close first); then the download completes.

        @return: the drop reasons btorrent logged for the peer.
        """
        completedWhenLost = []
        peer.lost.addCallback(
            lambda reason: completedWhenLost.append(torrent.completed.called)
        )
        yield withTimeout(
            defer.DeferredList(
                [peer.lost, torrent.completed],
                fireOnOneCallback=True,
                fireOnOneErrback=True,
                consumeErrors=True,
            ),
            30,
            "the hostile peer to be dropped or the download to complete",
        )
        reasons = self.logWatch.dropReasons(peerName(port))
        self.assertTrue(
            peer.lost.called,
            f"the hostile peer is still connected when the download completed "
            f"(drop reasons logged for it: {reasons})",
        )
        self.assertEqual(
            completedWhenLost,
            [False],
            f"the hostile peer was kept until the download completed "
            f"(drop reasons logged for it: {reasons})",
        )
        yield self.finish(torrent, self.fixture)
        return reasons

    def watchIncoming(self):
        """
        Watch the bytes btorrent's incoming connections receive and how many
        it holds in its buffers.

        @return: C{{address: {"received": n, "maxBuffered": n}}}, kept up to
            date.
        """
        factory = self.session.listeningPort.factory
        build = factory.buildProtocol
        seen = {}

        def buildProtocol(addr):
            protocol = build(addr)
            stats = seen[(addr.host, addr.port)] = {"received": 0, "maxBuffered": 0}
            dataReceived = protocol.dataReceived
            # The peer protocol, behind the MSE wrapper that tells a plain
            # handshake from an encrypted one.
            peer = getattr(protocol, "wrappedProtocol", protocol)

            def counting(data):
                stats["received"] += len(data)
                dataReceived(data)
                connection = peer.connection
                buffered = connection.framer.buffered
                stats["maxBuffered"] = max(stats["maxBuffered"], buffered)

            protocol.dataReceived = counting
            return protocol

        factory.buildProtocol = buildProtocol
        return seen

    def garbage(self, **kwargs) -> hostilepeers.GarbagePeer:
        """
        A L{GarbagePeer} of the torrent.
        """
        return hostilepeers.GarbagePeer(
            self.metainfo.infoHash, self.metainfo.pieceCount, **kwargs
        )

    def assertReason(self, reasons, *needles):
        """
        btorrent logged a drop reason containing one of C{needles}.
        """
        for reason in reasons:
            if any(needle in reason for needle in needles):
                return
        self.fail(f"no drop reason with {needles!r} among {reasons!r}")

    @defer.inlineCallbacks
    def test_giantLengthPrefix(self):
        """
        A length prefix of 2**32-1 followed by 10 MB of junk: btorrent drops
        the connection on the prefix, without buffering the junk.
        """
        junk = os.urandom(1 << 20) * 10
        peer, reasons, stats = yield self.incoming(
            lambda: self.garbage(after=b"\xff\xff\xff\xff" + junk), watch=True
        )
        self.assertReason(reasons, "4294967295")
        limit = maxMessageLength(self.metainfo.pieceCount) + 4
        self.assertLess(stats["maxBuffered"], limit, stats)
        self.assertLess(stats["received"], 1 << 20, stats)
        self.assertLess(peer.bytesReceived, 1 << 20)

    @defer.inlineCallbacks
    def test_bitfieldTooLong(self):
        """
        A bitfield one byte longer than the torrent's.
        """
        peer, reasons, _ = yield self.incoming(
            lambda: self.garbage(
                after=rawBitfield(b"\xff" * ((self.metainfo.pieceCount + 7) // 8 + 1))
            )
        )
        self.assertTrue(reasons, "no drop reason logged")

    @defer.inlineCallbacks
    def test_bitfieldSpareBits(self):
        """
        A bitfield with its spare bits set (btorrent dialled the peer).
        """

        def make():
            bits = bytearray(hostilepeers.fullBitfield(self.metainfo.pieceCount))
            bits[-1] |= 0x01
            return self.garbage(after=rawBitfield(bytes(bits)))

        peer, reasons = yield self.outgoing(make)
        self.assertTrue(reasons, "no drop reason logged")

    @defer.inlineCallbacks
    def test_haveOutOfRange(self):
        """
        A have for the piece after the last.
        """
        peer, reasons, _ = yield self.incoming(
            lambda: self.garbage(
                after=wire.encodeMessage(wire.Have(self.metainfo.pieceCount))
            )
        )
        self.assertReason(reasons, "range")

    @defer.inlineCallbacks
    def test_pieceNeverRequested(self):
        """
        A peer that chokes us and announced no piece sends a (true) block:
        nothing was ever requested from it.
        """
        peer, reasons, _ = yield self.incoming(
            lambda: self.garbage(
                after=wire.encodeMessage(
                    wire.Piece(0, 0, self.content.block(0, 0, HOSTILE_PIECE))
                )
            )
        )
        self.assertTrue(reasons, "no drop reason logged")

    @defer.inlineCallbacks
    def test_pieceBeyondItsPiece(self):
        """
        A block that would end past the end of its piece.
        """
        peer, reasons, _ = yield self.incoming(
            lambda: self.garbage(
                after=wire.encodeMessage(wire.Piece(1, HOSTILE_PIECE - 10, bytes(100)))
            )
        )
        self.assertTrue(reasons, "no drop reason logged")

    @defer.inlineCallbacks
    def test_pieceOfTheWrongLength(self):
        """
        A seeder that answers each request with a block one byte short.
        """
        peer, reasons = yield self.outgoing(
            lambda: hostilepeers.WrongLengthSeeder(self.content, -1)
        )
        self.assertGreater(peer.served, 0)
        self.assertTrue(reasons, "no drop reason logged")

    @defer.inlineCallbacks
    def test_messagesBeforeHandshake(self):
        """
        Messages where the handshake should be (the peer connects).  Not a
        BitTorrent handshake, they are taken for an MSE one (whose first
        bytes are a random key), which they break once past its sync
        window.  (Fewer bytes wait for MSE's deadline:
        L{tests.test_interop_encryption}.)
        """
        messages = wire.encodeMessage(wire.Unchoke()) + wire.encodeMessage(wire.Have(0))
        peer, reasons, _ = yield self.incoming(
            lambda: self.garbage(sendHandshake=False, before=messages * 50)
        )
        self.assertIsNone(peer.handshake)
        self.assertReason(reasons, "HASH('req1', S)")

    @defer.inlineCallbacks
    def test_messagesBeforeHandshakeReply(self):
        """
        Messages where the handshake should be (btorrent dialled the peer).
        """
        peer, reasons = yield self.outgoing(
            lambda: self.garbage(
                sendHandshake=False,
                before=wire.encodeMessage(wire.Unchoke())
                + wire.encodeMessage(wire.Have(0)),
            )
        )
        self.assertReason(reasons, "handshake")

    @defer.inlineCallbacks
    def test_wrongInfoHash(self):
        """
        A peer connects with the info-hash of another torrent.
        """
        peer, reasons, _ = yield self.incoming(
            lambda: hostilepeers.GarbagePeer(otherInfoHash(), self.metainfo.pieceCount)
        )
        self.assertIsNone(peer.handshake)
        self.assertReason(reasons, "info-hash")

    @defer.inlineCallbacks
    def test_wrongInfoHashReply(self):
        """
        A peer btorrent dialled answers with the info-hash of another
        torrent.
        """
        peer, reasons = yield self.outgoing(
            lambda: hostilepeers.GarbagePeer(otherInfoHash(), self.metainfo.pieceCount)
        )
        self.assertReason(reasons, "info-hash")

    @defer.inlineCallbacks
    def test_keepAliveFlood(self):
        """
        A peer that sends nothing but keep-alives, 16 MB of them in 0.2 s.
        """
        peer, reasons, stats = yield self.incoming(
            lambda: hostilepeers.KeepAliveFlood(
                self.metainfo.infoHash, self.metainfo.pieceCount, reactor
            ),
            watch=True,
        )
        self.assertLess(stats["maxBuffered"], 4, stats)
        self.assertTrue(reasons, "no drop reason logged")


def rawBitfield(bits: bytes) -> bytes:
    """
    A bitfield message with C{bits}, whatever their length.
    """
    return struct.pack(">IB", 1 + len(bits), wire.BITFIELD) + bits


def otherInfoHash() -> bytes:
    """
    An info-hash that is not the test torrent's.
    """
    return hashlib.sha1(b"another torrent").digest()
