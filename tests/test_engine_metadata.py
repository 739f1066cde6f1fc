"""
Tests for L{btorrent.engine.metadata}: a magnet link's metadata phase,
driven through the session with our real peer protocols talking bytes to
scripted remote peers (L{tests.magnetswarm}), a memory reactor and disk
work run synchronously.  Hostile peers included: each is dropped or
ignored, the torrent goes on.
"""

from __future__ import annotations

import hashlib
import os
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.codec import bencode, metainfo, wire
from btorrent.codec.magnet import formatMagnet, parseMagnet
from btorrent.control.api import DOWNLOADING, ERROR_LOCAL, STOPPED
from btorrent.daemon.session import Session
from btorrent.engine.extensions import EXTENSIONS
from btorrent.engine.metadata import (
    MAX_METADATA_SIZE,
    UNKNOWN_LEFT,
    MetadataPhase,
    loadSavedMetadata,
    metadataPath,
    saveMetadata,
)
from btorrent.engine.pex import PeerExchange
from btorrent.engine.storage import MultiFileWriter
from btorrent.engine.torrent import Torrent
from btorrent.interfaces import IAnnounceTarget, IPeerOwner
from btorrent.peer.connection import ExtensionHandshake, ExtensionMessage, Features
from btorrent.peer.extended import OUR_EXTENSION_IDS
from btorrent.peer.utmetadata import (
    REQUEST_TIMEOUT,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    decodeMetadataMessage,
    encodeMetadataMessage,
)
from btorrent.peer.utpex import PexMessage, encodePex
from btorrent.util.heartbeat import Heartbeat
from tests.builders import buildTorrent
from tests.fakes import FakeAnnouncer, SyncReactor, syncRunner
from tests.magnetswarm import Link, RemotePeer, pumpAll

PEER_ID = b"-BT0100-" + b"m" * 12

#: A small multi-file torrent (one metadata piece).
FILES = [("a.bin", 40000), ("empty", 0), ("sub/b.bin", 30000)]
#: Long names: an info dictionary of three metadata pieces.
MANY = [(f"many/{'n' * 60}-{i:04d}.bin", 10 + i) for i in range(400)]


class MagnetMixin:
    files = FILES

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        built = buildTorrent(
            os.path.join(self.base, "seed", "content"), self.files, trackers=()
        )
        self.info, self.root, self.data = built.metainfo, built.path, built.content()
        self.downloadDir = os.path.join(self.base, "download")
        self.stateDir = os.path.join(self.base, "state")
        self.reactor = SyncReactor()
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.links = []

    def session(self, **kwargs):
        session = Session(
            self.reactor,
            port=6881,
            interface="127.0.0.1",
            stateDir=self.stateDir,
            runInThread=syncRunner,
            peerId=PEER_ID,
            **kwargs,
        )
        session.startService()
        self.addCleanup(lambda: session.running and session.stopService())
        return session

    def magnet(self, session, peers=(("127.0.0.1", 7001),), **kwargs):
        link = formatMagnet(self.info.infoHash, "shown", peers=peers)
        return session.addMagnet(link, self.downloadDir, **kwargs)

    def dial(self, index, remote):
        link = Link.dialled(self.reactor, index, remote)
        self.links.append(link)
        return link

    def remote(self, **kwargs):
        kwargs.setdefault("data", self.data)
        return RemotePeer(self.reactor, self.info, **kwargs)

    def advance(self, seconds, step=1.0):
        """
        Let C{seconds} pass one heartbeat at a time, pumping every link.
        """
        elapsed = 0.0
        while elapsed < seconds:
            self.reactor.advance(step)
            elapsed += step
            pumpAll(self.links)

    def assertDownloaded(self):
        for relative, _ in self.files:
            path = os.path.join(self.downloadDir, "content", *relative.split("/"))
            with open(path, "rb") as f:
                got = f.read()
            with open(os.path.join(self.root, *relative.split("/")), "rb") as f:
                self.assertEqual(got, f.read(), relative)

    def logged(self, text):
        return [e for e in self.events if text in (formatEvent(e) or "")]


class MetadataPhaseTests(MagnetMixin, SynchronousTestCase):
    """
    The happy paths: fetch, save, hand over, download.
    """

    def test_interfaces(self):
        session = self.session()
        torrent = self.magnet(session)
        verifyObject(IPeerOwner, torrent.metadataPhase)
        verifyObject(IAnnounceTarget, torrent.metadataPhase)

    def test_fetchThenDownload(self):
        """
        A magnet link naming one seeder in C{x.pe}: the metadata is
        fetched, the torrent is saved in the state directory, checked, and
        downloaded over the same connection, handed to the downloader.
        """
        session = self.session()
        torrent = self.magnet(session)
        self.assertIsNone(torrent.metainfo)
        self.assertEqual(torrent.state, DOWNLOADING)
        self.assertEqual(torrent.name, "shown")
        self.assertEqual(torrent.metadataPercentComplete, 0.0)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        host, port, _, _, bindAddress = self.reactor.tcpClients[0]
        self.assertEqual(
            (host, port, bindAddress), ("127.0.0.1", 7001, ("127.0.0.1", 0))
        )
        seeder = self.remote()
        link = self.dial(0, seeder)
        link.pump()
        self.assertEqual(torrent.metainfo.infoHash, self.info.infoHash)
        self.assertEqual(torrent.name, "content")
        self.assertEqual(torrent.metadataPercentComplete, 1.0)
        self.assertEqual(seeder.metadataRequests, [0])
        self.assertTrue(torrent.completed.called)
        self.assertDownloaded()
        # The connection went to the downloader, which got the data over
        # it: one dial, and it was closed only once both were complete.
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.assertTrue(self.logged("handed to the download"))
        self.assertEqual(link.transport.disconnecting, True)
        self.assertEqual(torrent.downloader.downloaded, self.info.totalLength)
        saved = metainfo.loadFile(metadataPath(self.stateDir, self.info.infoHash))
        self.assertEqual(saved.infoBytes, self.info.infoBytes)

    def test_ourHandshakes(self):
        """
        Our extended handshake offers ut_pex and ut_metadata with our ids,
        C{p}, C{v}, C{reqq} and C{yourip}, and no C{metadata_size} during
        the phase; after the hand-over the downloader sends it again with
        C{metadata_size}.
        """
        session = self.session()
        self.magnet(session)
        seeder = self.remote()
        seeder.answerMetadata = False
        link = self.dial(0, seeder)
        link.pump()
        [first] = seeder.extended
        self.assertEqual(first["m"], {b"ut_pex": 1, b"ut_metadata": 2})
        self.assertEqual(first["p"], 6881)
        self.assertEqual(first["v"], b"btorrent 0.1.0")
        self.assertEqual(first["yourip"], bytes([127, 0, 0, 1]))
        self.assertGreaterEqual(first["reqq"], 1)
        self.assertNotIn("metadata_size", first)
        seeder.answerMetadata = True
        seeder.metadataMessage(encodeMetadataMessage(MetadataRequest(0)))
        link.pump()
        self.assertEqual(len(seeder.extended), 2)
        self.assertEqual(seeder.extended[1]["metadata_size"], len(self.info.infoBytes))

    def test_requestsWhileLackingAreRejected(self):
        """
        A peer asking us for the metadata during the phase gets a reject.
        """
        session = self.session()
        self.magnet(session)
        seeder = self.remote()
        seeder.answerMetadata = False
        link = self.dial(0, seeder)
        link.pump()
        seeder.sendMetadata(MetadataRequest(0))
        link.pump()
        replies = [
            decodeMetadataMessage(e.payload)
            for e in seeder.received
            if type(e) is ExtensionMessage and e.name == "ut_metadata"
        ]
        self.assertIn(MetadataReject(0), replies)

    def test_threePiecesTwoPeers(self):
        """
        An info dictionary of three pieces is fetched from two peers, at
        most two requests outstanding per peer; the progress shows.
        """
        self.files = MANY
        self.setUp()
        session = self.session()
        torrent = self.magnet(session, peers=[("127.0.0.1", 7001), ("127.0.0.1", 7002)])
        one, two = self.remote(), self.remote()
        one.answerMetadata = two.answerMetadata = False
        links = [self.dial(0, one), self.dial(1, two)]
        pumpAll(links)
        self.assertEqual(sorted(one.metadataRequests + two.metadataRequests), [0, 1, 2])
        self.assertLessEqual(len(one.metadataRequests), 2)
        self.assertLessEqual(len(two.metadataRequests), 2)
        # Answer one piece: a third of the metadata.
        holder = one if 0 in one.metadataRequests else two
        holder.answerMetadata = True
        holder.metadataMessage(encodeMetadataMessage(MetadataRequest(0)))
        pumpAll(links)
        self.assertAlmostEqual(torrent.metadataPercentComplete, 1 / 3)
        one.answerMetadata = two.answerMetadata = True
        for remote in (one, two):
            for piece in list(remote.metadataRequests):
                if piece != 0:
                    remote.metadataMessage(
                        encodeMetadataMessage(MetadataRequest(piece))
                    )
        pumpAll(links)
        self.assertEqual(torrent.metainfo.infoHash, self.info.infoHash)
        self.assertTrue(torrent.completed.called)
        self.assertDownloaded()

    def test_timeoutGoesToAnotherPeer(self):
        """
        A peer that never answers: after the request timeout, the piece is
        asked of another peer (the phase's timer is the heartbeat).
        """
        session = self.session()
        torrent = self.magnet(session)
        silent = self.remote()
        silent.answerMetadata = False
        link = self.dial(0, silent)
        link.pump()
        self.assertEqual(silent.metadataRequests, [0])
        torrent.addPeers([("127.0.0.1", 7002)])
        self.assertEqual(len(self.reactor.tcpClients), 2)
        other = self.remote()
        other.answerMetadata = False
        self.dial(1, other)
        pumpAll(self.links)
        self.assertEqual(other.metadataRequests, [])
        other.answerMetadata = True
        self.advance(REQUEST_TIMEOUT + 1)
        self.assertEqual(other.metadataRequests, [0])
        self.assertIsNotNone(torrent.metainfo)

    def test_incomingPeer(self):
        """
        A peer that dials us during the phase is routed to it (the
        session's C{ownerFor}) and gives us the metadata.
        """
        session = self.session()
        torrent = self.magnet(session, peers=())
        context = session.ownerFor(self.info.infoHash)
        self.assertIs(context.owner, torrent.metadataPhase)
        self.assertIsNone(context.pieceCount)
        self.assertIsNone(session.ownerFor(b"x" * 20))
        _, serverFactory, _, _ = self.reactor.tcpServers[0]
        seeder = self.remote(port=7100)
        link = Link.incoming(serverFactory, seeder, ("127.0.0.1", 50000))
        self.links.append(link)
        link.pump()
        self.assertTrue(torrent.completed.called)
        self.assertDownloaded()
        self.assertIs(session.ownerFor(self.info.infoHash).owner, torrent.downloader)

    def test_trackerAnnouncer(self):
        """
        The phase announces to the magnet's trackers with C{left} 16384
        (libtorrent's value while the size is unknown); the peers they
        give are dialled; once the metadata is here the announcer is
        abandoned without a C{stopped}, and the torrent's own takes over.
        """
        announcers = []

        def phaseAnnouncer(target, trackers):
            announcers.append(FakeAnnouncer(target, trackers))
            return announcers[-1]

        torrentAnnouncers = []
        torrent = Torrent(
            None,
            None,
            self.stateDir,
            PEER_ID,
            syncRunner,
            self.reactor,
            port=6881,
            infoHash=self.info.infoHash,
            storageFactory=lambda info: MultiFileWriter(info, self.downloadDir),
            announcerFactory=lambda t: torrentAnnouncers.append(FakeAnnouncer(t))
            or torrentAnnouncers[-1],
            heartbeat=Heartbeat(self.reactor),
        )
        torrent.metadataPhaseFactory = partial(
            MetadataPhase,
            trackers=[["http://127.0.0.1:1/announce"]],
            announcerFactory=phaseAnnouncer,
        )
        torrent.start()
        [announcer] = announcers
        self.assertEqual(announcer.trackers, (("http://127.0.0.1:1/announce",),))
        target = announcer.target
        self.assertEqual(
            (target.left, target.uploaded, target.downloaded, target.port),
            (UNKNOWN_LEFT, 0, 0, 6881),
        )
        self.assertEqual(target.infoHash, self.info.infoHash)
        self.assertEqual(self.reactor.tcpClients, [])
        target.addPeers([("127.0.0.1", 7005), ("127.0.0.1", 6881)])
        self.assertEqual(
            [c[:2] for c in self.reactor.tcpClients], [("127.0.0.1", 7005)]
        )
        self.dial(0, self.remote()).pump()
        self.assertTrue(announcer.abandoned)
        self.assertFalse(announcer.stopped)
        self.assertEqual(len(torrentAnnouncers), 1)
        self.assertTrue(torrent.completed.called)

    def test_stopDuringThePhase(self):
        """
        Stopping the torrent stops the phase: its connections close, its
        announcer stops; started again, it fetches again.
        """
        session = self.session()
        torrent = self.magnet(session)
        seeder = self.remote()
        seeder.answerMetadata = False
        link = self.dial(0, seeder)
        link.pump()
        phase = torrent.metadataPhase
        d = torrent.stop()
        self.successResultOf(d)
        link.pump()
        self.assertTrue(link.lost)
        self.assertFalse(phase.running)
        self.assertIsNone(torrent.metadataPhase)
        self.assertEqual(torrent.state, STOPPED)
        self.assertIsNone(session.ownerFor(self.info.infoHash))
        torrent.start()
        self.assertIsNot(torrent.metadataPhase, phase)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_queuedTorrentClosesPeers(self):
        """
        If the download queue is full when the metadata arrives, the
        phase's connections close (the downloader dials when it runs).
        """
        session = self.session(downloadQueueSize=1)
        other = buildTorrent(
            os.path.join(self.base, "o", "seed", "content"), [("x", 100)], trackers=()
        ).metainfo
        session.addTorrent(other, os.path.join(self.base, "odl"))
        torrent = self.magnet(session)
        link = self.dial(0, self.remote())
        link.pump()
        self.assertIsNotNone(torrent.metainfo)
        self.assertTrue(link.lost)
        self.assertIsNone(torrent.downloader)

    def test_savedMetadataIsUsed(self):
        """
        A magnet link whose torrent an earlier fetch saved is added from
        it: no metadata phase.
        """
        saveMetadata(
            self.stateDir,
            self.info.infoHash,
            self.info.infoBytes and (b"d4:info" + self.info.infoBytes + b"e"),
        )
        session = self.session()
        torrent = self.magnet(session)
        self.assertIsNotNone(torrent.metainfo)
        self.assertIsNone(torrent.metadataPhase)
        self.assertEqual(torrent.metainfo.infoHash, self.info.infoHash)

    def test_savedMetadataOfAnotherTorrent(self):
        """
        A saved file that is not the torrent (or not a torrent) is
        ignored, with a warning: the metadata is fetched again.
        """
        os.makedirs(self.stateDir)
        with open(metadataPath(self.stateDir, self.info.infoHash), "wb") as f:
            f.write(b"garbage")
        self.assertIsNone(loadSavedMetadata(self.stateDir, self.info.infoHash))
        other = buildTorrent(
            os.path.join(self.base, "o", "seed", "content"), [("x", 100)], trackers=()
        ).metainfo
        saveMetadata(
            self.stateDir, self.info.infoHash, b"d4:info" + other.infoBytes + b"e"
        )
        self.assertIsNone(loadSavedMetadata(self.stateDir, self.info.infoHash))
        self.assertEqual(len(self.logged("ignoring the saved torrent")), 2)
        self.assertIsNone(self.magnet(self.session()).metainfo)

    def test_addMagnetErrors(self):
        """
        A malformed link is a L{MagnetError}; the same torrent twice a
        C{ValueError}.
        """
        session = self.session()
        self.assertRaises(ValueError, session.addMagnet, "magnet:?xt=nothing", ".")
        self.magnet(session)
        self.assertRaises(ValueError, self.magnet, session)
        self.assertRaises(
            ValueError,
            session.addMagnet,
            parseMagnet(formatMagnet(self.info.infoHash)),
            ".",
        )


class HostileMetadataTests(MagnetMixin, SynchronousTestCase):
    """
    Peers that lie or flood during the phase: each is dropped or ignored,
    the fetch goes on with others, nothing raises.
    """

    def twoPeers(self):
        session = self.session()
        torrent = self.magnet(session, peers=[("127.0.0.1", 7001), ("127.0.0.1", 7002)])
        return session, torrent

    def test_wrongHash(self):
        """
        Metadata that fails the SHA-1 check: its sender is dropped and
        never dialled again; an honest peer gives the right one.
        """
        session, torrent = self.twoPeers()
        liar = self.remote()
        liar.corruptMetadata = True
        liarLink = self.dial(0, liar)
        liarLink.pump()
        self.assertTrue(liarLink.lost)
        self.assertIsNone(torrent.metainfo)
        self.assertTrue(self.logged("sent metadata that does not match"))
        phase = torrent.metadataPhase
        self.assertNotIn(("127.0.0.1", 7001), phase.dialer.candidates)
        honest = self.remote()
        self.dial(1, honest).pump()
        self.assertTrue(torrent.completed.called)
        self.advance(120)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_totalSizeOf2To31(self):
        """
        A data message whose C{total_size} is 2**31: dropped.
        """
        session, torrent = self.twoPeers()
        liar = self.remote()
        liar.answerMetadata = False
        link = self.dial(0, liar)
        link.pump()
        liar.sendMetadata(MetadataData(0, 2**31, b"x" * 16384))
        link.pump()
        self.assertTrue(link.lost)
        self.dial(1, self.remote()).pump()
        self.assertTrue(torrent.completed.called)

    def test_metadataSizeTooLarge(self):
        """
        A peer announcing a C{metadata_size} of 2**31 (above our 10 MB) is
        never asked; the connection stays (it may have data later).
        """
        session, torrent = self.twoPeers()
        big = self.remote(metadataSize=2**31)
        link = self.dial(0, big)
        link.pump()
        self.assertEqual(big.metadataRequests, [])
        self.assertFalse(link.closed)
        self.assertTrue(self.logged("above our limit"))
        self.assertEqual(MAX_METADATA_SIZE, 10_000_000)
        self.dial(1, self.remote()).pump()
        self.assertTrue(torrent.completed.called)

    def test_oneMebibyteMessage(self):
        """
        A ut_metadata message of 1 MiB: the connection is closed on its
        length prefix, before anything is buffered.
        """
        session, torrent = self.twoPeers()
        flood = self.remote()
        flood.answerMetadata = False
        link = self.dial(0, flood)
        link.pump()
        theirId = OUR_EXTENSION_IDS["ut_metadata"]
        payload = encodeMetadataMessage(MetadataData(0, 1 << 20, b"x" * 16384))
        header = (2 + (1 << 20)).to_bytes(4, "big") + bytes([20, theirId])
        flood.sendRaw(header + payload)
        link.pump()
        self.assertTrue(link.lost)
        self.assertLess(link.protocol.connection.framer.buffered, 1024)
        self.dial(1, self.remote()).pump()
        self.assertTrue(torrent.completed.called)

    def test_messageAboveTheExtensionLimit(self):
        """
        A whole ut_metadata message of 20 KiB (above its 17 KiB limit) is
        refused too.
        """
        session, torrent = self.twoPeers()
        flood = self.remote()
        flood.answerMetadata = False
        link = self.dial(0, flood)
        link.pump()
        flood.connection.sendExtended("ut_metadata", b"d8:msg_typei1ee" + b"x" * 20480)
        link.pump()
        self.assertTrue(link.lost)

    def test_dataNeverAskedFor(self):
        """
        A data block for a piece never asked for is ignored; the peer
        stays.
        """
        self.files = MANY
        self.setUp()
        session = self.session()
        torrent = self.magnet(session)
        peer = self.remote()
        peer.answerMetadata = False
        link = self.dial(0, peer)
        link.pump()
        self.assertEqual(peer.metadataRequests, [0, 1])
        size = len(self.info.infoBytes)
        peer.sendMetadata(MetadataData(2, size, self.info.infoBytes[2 * 16384 :]))
        link.pump()
        self.assertFalse(link.closed)
        self.assertEqual(torrent.metadataPhase.fetcher.piecesReceived, 0)

    def test_garbageBencode(self):
        """
        Garbage in a ut_metadata message or a PEX message: the peer is
        dropped.  A garbage extended handshake is ignored (as libtorrent
        does): the peer stays.
        """
        session = self.session()
        torrent = self.magnet(
            session,
            peers=[("127.0.0.1", 7001), ("127.0.0.1", 7002), ("127.0.0.1", 7003)],
        )
        links = []
        for index, name in enumerate(["ut_metadata", "ut_pex", None]):
            peer = self.remote()
            peer.answerMetadata = False
            link = self.dial(index, peer)
            link.pump()
            if name is None:
                theirId = 0
            else:
                theirId = OUR_EXTENSION_IDS[name]
            peer.sendRaw(wire.encodeMessage(wire.Extended(theirId, b"d3:abc")))
            link.pump()
            links.append(link)
        self.assertEqual([link.lost for link in links], [True, True, False])
        self.assertIsNone(torrent.metainfo)
        self.assertFalse(self.flushLoggedErrors())

    def pexPeer(self, port=7001):
        session = self.session()
        torrent = self.magnet(session, peers=[("127.0.0.1", port)])
        peer = self.remote()
        peer.answerMetadata = False
        link = self.dial(0, peer)
        link.pump()
        return torrent, peer, link

    def test_pexTenThousandEntries(self):
        """
        A PEX message of 10,000 IPv4 entries: the first 200 are taken (what
        one source may give us), the rest ignored; the peer stays.
        """
        torrent, peer, link = self.pexPeer()
        added = b"".join(
            bytes([10, i >> 8 & 255, i & 255, 1]) + (6881).to_bytes(2, "big")
            for i in range(10000)
        )
        peer.connection.sendExtended("ut_pex", bencode.encode({b"added": added}))
        link.pump()
        self.assertFalse(link.closed)
        candidates = torrent.metadataPhase.dialer.candidates
        self.assertEqual(len(candidates), 1 + 200)

    def test_pexTenThousandEntriesWithFlags(self):
        """
        With their flags, 10,000 entries are over the 64 KiB we take for a
        PEX message: the peer is dropped on the length prefix.
        """
        torrent, peer, link = self.pexPeer()
        many = PexMessage(
            added=tuple(
                ((f"10.{i >> 8 & 255}.{i & 255}.1", 6881), 0) for i in range(10000)
            )
        )
        peer.connection.sendExtended("ut_pex", encodePex(many))
        link.pump()
        self.assertTrue(link.lost)
        self.assertEqual(len(torrent.metadataPhase.dialer.candidates), 1)

    def test_pexOddLengths(self):
        """
        Lists whose length is not a multiple of an entry are ignored; the
        peer stays.
        """
        torrent, peer, link = self.pexPeer()
        peer.connection.sendExtended(
            "ut_pex",
            bencode.encode(
                {b"added": b"1234567", b"added.f": b"\x00", b"added6": b"x" * 19}
            ),
        )
        link.pump()
        self.assertFalse(link.closed)
        self.assertEqual(len(torrent.metadataPhase.dialer.candidates), 1)

    def test_pexFlood(self):
        """
        A seventh PEX message within a minute gets the peer dropped.
        """
        torrent, peer, link = self.pexPeer()
        for _ in range(6):
            peer.connection.sendExtended("ut_pex", encodePex(PexMessage()))
            link.pump()
        self.assertFalse(link.closed)
        peer.connection.sendExtended("ut_pex", encodePex(PexMessage()))
        link.pump()
        self.assertTrue(link.lost)
        self.assertTrue(self.logged("more than 6 PEX messages"))

    def test_haveOutOfRangeAtHandOver(self):
        """
        A peer that announced, during the phase, a piece the torrent turns
        out not to have is dropped when the piece count is known; the
        download goes on with others.
        """
        session = self.session()
        torrent = self.magnet(session, peers=[("127.0.0.1", 7001), ("127.0.0.1", 7002)])
        liar = self.remote(data=None)
        liar.answerMetadata = False
        liarLink = self.dial(0, liar)
        liarLink.pump()
        liar.connection.sendMessage(wire.Have(self.info.pieceCount + 5))
        liarLink.pump()
        self.assertFalse(liarLink.closed)
        self.dial(1, self.remote())
        # The liar sits on the first request: the other peer is asked later.
        self.advance(REQUEST_TIMEOUT + 1)
        self.assertTrue(liarLink.lost)
        self.assertTrue(self.logged("have 10 out of range"))
        self.assertTrue(torrent.completed.called)

    def test_unusableMetadata(self):
        """
        Metadata whose hash matches but which is not a usable torrent (no
        piece length): the torrent stops with a local error.
        """
        bad = bencode.encode({b"name": b"x", b"length": 5, b"pieces": b"a" * 20})

        class BadInfo:
            infoBytes = bad
            infoHash = hashlib.sha1(bad).digest()
            pieceCount = 1
            pieceLength = 16384

        badInfo = self.info = BadInfo()
        session = self.session()
        torrent = self.magnet(session)
        self.dial(0, RemotePeer(self.reactor, badInfo)).pump()
        self.assertEqual(torrent.error, ERROR_LOCAL)
        self.assertIn("invalid metadata", torrent.errorString)
        self.failureResultOf(torrent.ready)


class PrivateMagnetTests(MagnetMixin, SynchronousTestCase):
    """
    A magnet link whose torrent turns out to be private.
    """

    def setUp(self):
        MagnetMixin.setUp(self)
        built = buildTorrent(
            os.path.join(self.base, "seed", "content"),
            self.files,
            trackers=(),
            private=True,
        )
        self.info, self.root, self.data = built.metainfo, built.path, built.content()

    def test_pexPeersDropped(self):
        """
        Peers learned from PEX are closed and not passed on; the
        downloader runs without PEX and ut_metadata.
        """
        session = self.session()
        torrent = self.magnet(session)
        given = self.remote()
        given.answerMetadata = False
        givenLink = self.dial(0, given)
        givenLink.pump()
        given.connection.sendExtended(
            "ut_pex", encodePex(PexMessage(added=((("127.0.0.1", 7009), 0),)))
        )
        givenLink.pump()
        self.assertEqual(self.reactor.tcpClients[1][:2], ("127.0.0.1", 7009))
        learned = self.remote()
        learned.answerMetadata = False
        learnedLink = self.dial(1, learned)
        learnedLink.pump()
        given.answerMetadata = True
        given.metadataMessage(encodeMetadataMessage(MetadataRequest(0)))
        pumpAll(self.links)
        self.assertTrue(torrent.metainfo.private)
        self.assertTrue(learnedLink.lost)
        self.assertTrue(self.logged("1 peers handed to the download"))
        self.assertNotIn(("127.0.0.1", 7009), torrent.downloader.dialer.candidates)
        self.assertEqual(torrent.downloader.extensions, {})
        self.assertEqual(torrent.downloader.features.extensions, ())
        self.assertTrue(torrent.completed.called)


class HandOverTests(MagnetMixin, SynchronousTestCase):
    """
    What moves to the downloader with a connection.
    """

    def test_pexStateMoves(self):
        """
        The PEX state of a handed-over peer moves to the downloader's peer
        exchange: what it was told carries on.
        """
        session = self.session()
        torrent = self.magnet(session)
        seeder = self.remote(port=7001, data=None)
        seeder.answerMetadata = False
        link = self.dial(0, seeder)
        link.pump()
        phase = torrent.metadataPhase
        [peer] = phase.peers
        state = phase.pex.states[peer]
        seeder.answerMetadata = True
        seeder.metadataMessage(encodeMetadataMessage(MetadataRequest(0)))
        link.pump()
        pex = torrent.downloader.extensions["ut_pex"]
        self.assertIsInstance(pex, PeerExchange)
        self.assertIs(pex.states[peer], state)
        self.assertEqual(phase.pex.states, {})
        self.assertIs(peer.context.owner, torrent.downloader)
        self.assertEqual(peer.context.pieceCount, self.info.pieceCount)

    def test_lateIncomingAfterHandOver(self):
        """
        Once handed over, the phase takes no peer (the session routes to
        the downloader).
        """
        session = self.session()
        torrent = self.magnet(session)
        self.dial(0, self.remote()).pump()
        phase = torrent.metadataPhase
        self.assertTrue(phase.handedOver)
        self.assertIsNone(phase.peerContext())

        class Peer:
            peerId = b"-XX0000-" + b"x" * 12
            address = ("127.0.0.1", 9)

        self.assertFalse(phase.peerConnected(Peer()))
        self.assertEqual(session.ownerFor(self.info.infoHash).owner, torrent.downloader)

    def test_fastPeerGetsHaveNone(self):
        """
        With the Fast extension, C{have none} comes first (BEP 6), and no
        bitfield follows after the hand-over.
        """
        session = self.session()
        link = formatMagnet(self.info.infoHash, peers=[("127.0.0.1", 7001)])
        torrent = session.addMagnet(link, self.downloadDir)
        self.successResultOf(torrent.stop())
        torrent.metadataPhaseFactory = partial(
            torrent.metadataPhaseFactory, features=Features(fast=True)
        )
        torrent.start()

        class FastRemote(RemotePeer):
            def features(self):
                return Features(fast=True, extensions=EXTENSIONS)

        remote = FastRemote(self.reactor, self.info, data=self.data)
        remote.answerMetadata = False
        self.dial(1, remote).pump()
        kinds = [type(e).__name__ for e in remote.received]
        self.assertEqual(
            kinds[:3], ["HandshakeReceived", "HaveNone", "ExtensionHandshake"]
        )
        remote.answerMetadata = True
        remote.metadataMessage(encodeMetadataMessage(MetadataRequest(0)))
        pumpAll(self.links)
        kinds = [type(e).__name__ for e in remote.received]
        self.assertNotIn("BitfieldMessage", kinds)
        self.assertEqual(kinds.count("HaveNone"), 1)
        self.assertTrue(torrent.completed.called)


class FakePhasePeer:
    """
    A connected peer as the metadata phase sees it, for property tests.
    """

    def __init__(self, number):
        self.peerId = b"-FP0000-" + b"%012d" % number
        self.address = ("10.0.0.1", 1000 + number)
        self.extended = True
        self.fast = False
        self.outgoing = False
        self.peerExtensions = {"ut_metadata": 3, "ut_pex": 4}
        self.peerPieces = None
        self.dropped = None
        self.sent = []

    def sendExtensionHandshake(self, fields):
        return True

    def sendExtended(self, name, payload):
        self.sent.append((name, payload))
        return True

    def drop(self, reason):
        self.dropped = reason


class PhasePropertyTests(MagnetMixin, SynchronousTestCase):
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["ut_metadata", "ut_pex", "handshake"]),
                st.binary(max_size=300)
                | st.builds(
                    lambda kind, piece, size, block: bencode.encode(
                        {b"msg_type": kind, b"piece": piece, b"total_size": size}
                    )
                    + block,
                    st.integers(-1, 3),
                    st.integers(-1, 5),
                    st.integers(-1, 2**40),
                    st.binary(max_size=100),
                ),
            ),
            max_size=20,
        )
    )
    @settings(max_examples=150, deadline=None)
    def test_anyMessages(self, messages):
        """
        Whatever extension messages peers send during the phase, nothing
        raises, the fetch state stays bounded, and a peer is either kept
        or dropped.
        """
        if not hasattr(self, "phase"):
            session = self.session()
            self.phase = self.magnet(session, peers=()).metadataPhase
            self.count = 0
        phase = self.phase
        self.count += 1
        peer = FakePhasePeer(self.count)
        self.assertTrue(phase.peerConnected(peer))
        for name, payload in messages:
            if peer.dropped:
                break
            if name == "handshake":
                try:
                    fields = bencode.decode(payload)
                except bencode.BencodeError:
                    continue
                if not isinstance(fields, dict):
                    continue
                fields = {
                    k.decode("utf-8", "replace"): v
                    for k, v in fields.items()
                    if isinstance(k, bytes)
                }
                phase.peerMessage(peer, ExtensionHandshake(fields))
            else:
                phase.peerMessage(peer, ExtensionMessage(name, payload))
        phase.peerLost(peer, None)
        self.assertNotIn(peer, phase.peers)
        self.assertLessEqual(len(phase.dialer.candidates), 200 * self.count)
        self.assertLessEqual(phase.fetcher.size or 0, MAX_METADATA_SIZE)
