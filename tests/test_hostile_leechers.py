"""
Hostile leechers against a btorrent seeder on 127.0.0.1: Twisted test
peers speaking L{btorrent.codec.wire} ask for blocks out of range, of length 0 or
over 128 KiB, flood requests without reading, or request while choked.

The peer is dropped (or its requests ignored), nothing crashes, nothing
is logged with a traceback, the seeder's per-peer queue of requests stays
bounded, and the seeder still serves a real libtorrent leecher afterwards.
"""

from __future__ import annotations

import os
import struct

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from btorrent.codec import wire
from btorrent.engine import uploader
from tests import hostilepeers
from tests.realseeders import libtorrentLeecher
from tests.test_interop_seed import Data, LogWatch, pollUntil, startSeeder

#: 64 pieces of 32 KiB and a short last one.
FILES = [("hostile-seed.bin", 64 * 131072 + 1000)]
PIECE = 131072


def rawRequest(index: int, begin: int, length: int) -> bytes:
    """
    A request message built by hand (the codec refuses bad lengths).
    """
    return struct.pack(">IBIII", 13, 6, index, begin, length)


class Leecher(hostilepeers.WirePeer):
    """
    A leecher that says it is interested as soon as the handshakes are
    done (unless told not to), and runs C{onUnchoke(self)} when unchoked.

    @ivar unchoked: a L{Deferred} firing at the first unchoke.
    @ivar blocks: the L{wire.Piece} messages received.
    """

    def __init__(self, metainfo, interested=True, onUnchoke=None, **kwargs):
        super().__init__(metainfo.infoHash, metainfo.pieceCount, **kwargs)
        self.interested = interested
        self.onUnchoke = onUnchoke
        self.unchoked = defer.Deferred()
        self.blocks = []

    def afterHandshake(self) -> None:
        """
        Say we are interested.
        """
        if self.interested:
            self.sendMessage(wire.Interested())

    def messageReceived(self, message) -> None:
        """
        Note blocks and the first unchoke.
        """
        if type(message) is wire.Piece:
            self.blocks.append(message)
        elif type(message) is wire.Unchoke and not self.unchoked.called:
            self.unchoked.callback(self)
            if self.onUnchoke is not None:
                self.onUnchoke(self)


class HostileLeecherTests(TestCase):
    """
    One btorrent seeder per test, one hostile leecher.
    """

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        self.data = Data(self.base, FILES, PIECE)
        self.metainfo = self.data.metainfo
        self.watch = LogWatch.install(self)
        self.session, [self.torrent] = yield startSeeder(
            self, [self.data], os.path.join(self.base, "state")
        )
        self.maxQueue = 0
        self.maxCache = 0
        sampler = task.LoopingCall(self.sample)
        sampler.start(0.001)
        self.addCleanup(sampler.stop)

    def sample(self) -> None:
        """
        Record the longest per-peer request queue and the read cache size.
        """
        engine = self.torrent.downloader
        for state in engine.peers.values():
            self.maxQueue = max(self.maxQueue, len(state.serving))
        self.maxCache = max(self.maxCache, engine.uploader.cacheBytes)

    def connect(self, peer) -> defer.Deferred:
        """
        Connect C{peer} to the seeder.
        """
        return hostilepeers.connectPeer(reactor, self.session.port, peer)

    @defer.inlineCallbacks
    def dropped(self, peer, what: str, reason: str = ""):
        """
        Wait for the seeder to close C{peer}'s connection (test peers never
        close first), and check that it logged C{reason} for it.
        """
        yield pollUntil(lambda: peer.lost.called, 10, f"{what} to be dropped")
        name = f"127.0.0.1:{peer.localPort}"
        reasons = [
            event["reason"]
            for event in self.watch.events
            if event.get("peer") == name and isinstance(event.get("reason"), str)
        ]
        self.assertTrue(
            any(reason in logged for logged in reasons),
            f"no drop reason with {reason!r} among {reasons!r}",
        )

    @defer.inlineCallbacks
    def stillServes(self):
        """
        A real libtorrent leecher gets the whole torrent from the seeder;
        nothing was logged with a traceback; the bounds held.
        """
        outDir = os.path.join(self.base, "out")
        leecher = libtorrentLeecher(outDir, self.data.torrentBytes)
        self.addCleanup(leecher.close)
        leecher.connect("127.0.0.1", self.session.port)
        yield pollUntil(lambda: leecher.finished, 20, "the libtorrent leecher")
        self.data.assertSame(self, outDir, settle=5)
        self.assertEqual(self.watch.tracebacks(), [])
        self.assertLessEqual(self.maxQueue, uploader.MAX_PEER_QUEUE)
        self.assertLessEqual(self.maxCache, uploader.READ_CACHE_BYTES)

    @defer.inlineCallbacks
    def badRequest(self, index: int, begin: int, length: int, reason: str):
        """
        Once unchoked, a leecher sends one bad request: it is dropped and
        gets no block.
        """
        peer = Leecher(
            self.metainfo,
            onUnchoke=lambda p: p.send(rawRequest(index, begin, length)),
        )
        yield self.connect(peer)
        yield pollUntil(lambda: peer.unchoked.called, 10, "an unchoke")
        yield self.dropped(peer, f"a request {index}:{begin}+{length}", reason)
        self.assertEqual(peer.blocks, [])
        yield self.stillServes()

    def test_requestBeyondItsPiece(self):
        """
        A block that ends past the end of its piece.
        """
        return self.badRequest(0, PIECE - 100, 16384, "bad request")

    def test_requestBeyondTheShortLastPiece(self):
        """
        A whole-piece-sized block of the short last piece.
        """
        return self.badRequest(self.metainfo.pieceCount - 1, 0, PIECE, "bad request")

    def test_requestIndexOutOfRange(self):
        """
        A piece index past the last piece.
        """
        return self.badRequest(self.metainfo.pieceCount, 0, 16384, "out of range")

    def test_requestHugeIndex(self):
        """
        A piece index of 2**32 - 1.
        """
        return self.badRequest(0xFFFFFFFF, 0, 16384, "out of range")

    def test_requestHugeBegin(self):
        """
        An offset of 2**32 - 1 (C{begin + length} overflows 32 bits).
        """
        return self.badRequest(0, 0xFFFFFFFF, 16384, "bad request")

    def test_requestZeroLength(self):
        """
        A block of length 0.
        """
        return self.badRequest(0, 0, 0, "block of 0 bytes")

    def test_requestOver128KiB(self):
        """
        A block of 128 KiB + 1 (also one byte past the end of the 128 KiB
        piece: the length limit, checked first, is what drops it).
        """
        return self.badRequest(0, 0, 131073, "block of 131073 bytes")

    @defer.inlineCallbacks
    def test_requestExactly128KiBOfABigPiece(self):
        """
        The limit itself is not refused: a leecher asking for a 128 KiB
        block (the whole piece) gets it and stays connected.
        """
        peer = Leecher(
            self.metainfo, onUnchoke=lambda p: p.send(rawRequest(3, 0, PIECE))
        )
        yield self.connect(peer)
        yield pollUntil(lambda: peer.blocks, 10, "the block")
        content = hostilepeers.TorrentContent(self.metainfo, self.data.seedDir)
        self.assertEqual(peer.blocks, [wire.Piece(3, 0, content.block(3, 0, PIECE))])
        self.assertFalse(peer.lost.called)
        yield self.stillServes()

    @defer.inlineCallbacks
    def test_requestFloodWithoutReading(self):
        """
        A leecher that stops reading and sends 100,000 valid requests: the
        seeder queues at most L{uploader.MAX_PEER_QUEUE} of them for it,
        then drops it.
        """

        def flood(peer):
            peer.transport.pauseProducing()
            count = self.metainfo.pieceCount - 1
            requests = b"".join(
                rawRequest(i % count, (i // count) % 2 * 16384, 16384)
                for i in range(100000)
            )
            peer.send(requests)

        peer = Leecher(self.metainfo, onUnchoke=flood)
        yield self.connect(peer)
        yield pollUntil(lambda: peer.unchoked.called, 10, "an unchoke")
        yield self.dropped(peer, "the flooding leecher", "too many requests")
        self.assertGreater(self.maxQueue, 0)
        yield self.stillServes()

    @defer.inlineCallbacks
    def test_requestsWhileChoked(self):
        """
        A leecher that never says it is interested stays choked; its
        50,000 requests are ignored (nothing served, nothing queued), and
        once it is interested and unchoked it is served normally.
        """
        peer = Leecher(self.metainfo, interested=False)
        yield self.connect(peer)
        yield pollUntil(lambda: peer.handshake is not None, 10, "the handshake")
        peer.send(b"".join(rawRequest(i % 64, 0, 16384) for i in range(50000)))
        # The seeder reads every request before this Interested (one TCP
        # stream, in order).
        peer.onUnchoke = lambda p: p.send(rawRequest(5, 16384, 16384))
        peer.sendMessage(wire.Interested())
        yield pollUntil(lambda: peer.blocks, 10, "the block asked for once unchoked")
        self.assertEqual([(b.index, b.begin) for b in peer.blocks], [(5, 16384)])
        self.assertFalse(peer.lost.called)
        self.assertLessEqual(self.maxQueue, 1)
        yield self.stillServes()

    @defer.inlineCallbacks
    def test_everyHostileLeecherAtOnce(self):
        """
        All of the above at the same time, while a libtorrent leecher
        downloads.
        """
        count = self.metainfo.pieceCount
        bad = [
            (0, PIECE - 100, 16384),
            (count, 0, 16384),
            (0, 0, 0),
            (0, 0, 131073),
        ]
        peers = []
        for index, begin, length in bad:
            peers.append(
                Leecher(
                    self.metainfo,
                    onUnchoke=lambda p, r=(index, begin, length): p.send(
                        rawRequest(*r)
                    ),
                )
            )

        def flood(peer):
            peer.transport.pauseProducing()
            peer.send(b"".join(rawRequest(i % 64, 0, 16384) for i in range(100000)))

        peers.append(Leecher(self.metainfo, onUnchoke=flood))
        choked = Leecher(self.metainfo, interested=False)
        for peer in peers + [choked]:
            yield self.connect(peer)
        yield pollUntil(lambda: choked.handshake is not None, 10, "the handshake")
        choked.send(b"".join(rawRequest(i % 64, 0, 16384) for i in range(50000)))
        yield self.stillServes()
        # Peers the choker did not get to are not dropped, only ignored;
        # those it unchoked are dropped.
        for peer in peers:
            if peer.unchoked.called:
                yield self.dropped(peer, "a hostile leecher")
            self.assertEqual(peer.blocks, [])
        self.assertEqual(choked.blocks, [])
