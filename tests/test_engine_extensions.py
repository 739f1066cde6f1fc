"""
Tests for the seams of magnet links and BEP 10 in the engine:
L{btorrent.engine.extensions} (features, our handshake, what a torrent
installs), L{btorrent.engine.metadataserver} (serving our info dictionary),
the downloader's adopted peers and extension hooks, the announcer's
L{abandon}, the peer connection's extension bookkeeping, and the command
lines that take a magnet link.
"""

from __future__ import annotations

import io

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.cli import foreground
from btorrent.codec import bencode, wire
from btorrent.codec.magnet import Magnet, formatMagnet, parseMagnet
from btorrent.daemon import tap
from btorrent.engine.extensions import (
    CLIENT_NAME,
    EXTENSIONS,
    REQQ,
    extensionFeatures,
    handshakeFields,
    listenAddress,
)
from btorrent.engine.extensionset import installExtensions
from btorrent.engine.metadataserver import MetadataService
from btorrent.engine.pex import PeerExchange
from btorrent.interfaces import IPeerExtension
from btorrent.peer.connection import (
    ExtensionHandshake,
    ExtensionMessage,
    Features,
    PeerConnection,
)
from btorrent.peer.protocol import PeerContext, PeerFactory
from btorrent.peer.utmetadata import (
    SERVES_PER_PEER,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    decodeMetadataMessage,
    encodeMetadataMessage,
)
from btorrent.util import logs
from tests.fakes import FakePeer
from tests.test_announcer import AnnouncerTestCase
from tests.test_downloader import DownloaderMixin

INFO = bencode.encode(
    {b"name": b"x", b"piece length": 16384, b"pieces": b"a" * 20, b"length": 5}
)
BIG_INFO = b"d4:name" + b"1:x" + b"e" + b"x" * 40000  # only its length matters


def extensionPeer(host="10.0.0.1", port=1000, outgoing=True, extended=True):
    """
    A fake peer as an extension sees it: it speaks BEP 10 (unless told),
    C{ut_metadata} and C{ut_pex} included.
    """
    return FakePeer(
        host=host,
        port=port,
        outgoing=outgoing,
        extended=extended,
        peerExtensions={"ut_metadata": 2, "ut_pex": 1},
    )


class ExtensionsTests(SynchronousTestCase):
    def test_features(self):
        """
        Our extensions are added to what the connection offers; a private
        torrent offers none (and so no BEP 10 bit).
        """
        base = Features(fast=True, dht=True)
        features = extensionFeatures(base)
        self.assertEqual((features.fast, features.dht), (True, True))
        self.assertEqual(
            [(name, ourId) for name, ourId, _ in features.extensions],
            [("ut_pex", 1), ("ut_metadata", 2)],
        )
        self.assertEqual(
            dict((n, limit) for n, _, limit in EXTENSIONS)["ut_metadata"], 17 * 1024
        )
        self.assertEqual(extensionFeatures(base, private=True).extensions, ())
        self.assertFalse(
            wire.hasReserved(
                extensionFeatures(None, True).reserved, wire.RESERVED_EXTENDED
            )
        )
        self.assertTrue(
            wire.hasReserved(extensionFeatures().reserved, wire.RESERVED_EXTENDED)
        )

    def test_handshakeFields(self):
        fields = handshakeFields(extensionPeer("10.1.2.3"), 6881, 1234)
        self.assertEqual(
            fields,
            {
                "v": CLIENT_NAME,
                "reqq": REQQ,
                "p": 6881,
                "yourip": bytes([10, 1, 2, 3]),
                "metadata_size": 1234,
            },
        )
        self.assertEqual(CLIENT_NAME, "btorrent 0.1.0")
        fields = handshakeFields(extensionPeer("::ffff:10.1.2.3"), 0)
        self.assertNotIn("p", fields)
        self.assertNotIn("metadata_size", fields)
        self.assertEqual(fields["yourip"], bytes([10, 1, 2, 3]))
        self.assertEqual(len(handshakeFields(extensionPeer("::1"), 1)["yourip"]), 16)
        self.assertNotIn("yourip", handshakeFields(extensionPeer("name.example"), 1))

    def test_listenAddress(self):
        self.assertEqual(listenAddress(extensionPeer(port=5), None), ("10.0.0.1", 5))
        incoming = extensionPeer(port=50000, outgoing=False)
        self.assertIsNone(listenAddress(incoming, None))
        self.assertIsNone(listenAddress(incoming, {"p": b"6881"}))
        self.assertIsNone(listenAddress(incoming, {"p": 70000}))
        self.assertEqual(listenAddress(incoming, {"p": 6881}), ("10.0.0.1", 6881))


class InstallTests(DownloaderMixin, SynchronousTestCase):
    """
    What a torrent with its metadata runs, and the downloader's hooks.
    """

    def install(self, private=False, infoBytes=INFO):
        downloader = self.build()
        info = self.metainfo

        class Info:
            pass

        meta = Info()
        meta.private = private
        meta.infoBytes = infoBytes
        downloader.features = Features(fast=True)
        installExtensions(downloader, meta)
        return downloader, info

    def test_public(self):
        downloader, _ = self.install()
        self.assertTrue(downloader.features.fast)
        self.assertEqual(downloader.features.extensions, EXTENSIONS)
        self.assertIsInstance(downloader.extensions["ut_metadata"], MetadataService)
        self.assertIsInstance(downloader.extensions["ut_pex"], PeerExchange)
        for handler in downloader.extensions.values():
            verifyObject(IPeerExtension, handler)

    def test_private(self):
        downloader, _ = self.install(private=True)
        self.assertEqual(downloader.extensions, {})
        self.assertEqual(downloader.features.extensions, ())
        self.assertTrue(downloader.features.fast)

    def test_handshakeToEveryPeer(self):
        """
        Every peer that speaks BEP 10 gets our handshake with
        C{metadata_size} when it connects; PEX starts keeping it.
        """
        downloader, _ = self.install()
        sent = []
        peer = self.connect()
        self.assertIsNotNone(peer)
        # The peer speaks BEP 10; record our handshake here.
        peer.extended = True
        peer.sendExtensionHandshake = sent.append
        peer.peerExtensions = {}
        downloader.extensions["ut_metadata"].peerConnected(peer)
        self.assertEqual(sent[0]["metadata_size"], len(INFO))
        self.assertEqual(sent[0]["p"], 6881)
        self.assertIn(peer, downloader.extensions["ut_pex"].states)

    def test_hooksCalled(self):
        """
        The downloader calls its extensions' C{peerConnected},
        C{handshakeReceived}, C{messageReceived} and C{peerLost}.
        """
        downloader = self.build()
        calls = []

        class Recorder:
            def peerConnected(self, peer):
                calls.append(("connected", peer))

            def handshakeReceived(self, peer, fields):
                calls.append(("handshake", fields))

            def messageReceived(self, peer, payload):
                calls.append(("message", payload))

            def peerLost(self, peer):
                calls.append(("lost", peer))

        downloader.extensions["ut_pex"] = Recorder()
        peer = self.connect()
        peer.receive(ExtensionHandshake({"p": 1}))
        peer.receive(ExtensionMessage("ut_pex", b"x"))
        peer.receive(ExtensionMessage("ut_other", b"y"))
        peer.drop("bye")
        self.assertEqual(
            calls,
            [
                ("connected", peer),
                ("handshake", {"p": 1}),
                ("message", b"x"),
                ("lost", peer),
            ],
        )

    def test_adoptedPeerGetsHaves(self):
        """
        A peer adopted from the metadata phase has sent messages already:
        our pieces go as C{have}s, never a bitfield.
        """
        self.build(have=[0, 2])
        peer = self.makePeer()
        self.assertTrue(self.downloader.peerConnected(peer, adopted=True))
        self.assertEqual(peer.of(wire.BitfieldMessage), [])
        self.assertEqual(peer.of(wire.Have), [wire.Have(0), wire.Have(2)])
        other = self.makePeer()
        other.fast = True
        self.assertTrue(self.downloader.peerConnected(other, adopted=True))
        self.assertEqual(other.sent[:2], [wire.Have(0), wire.Have(2)])

    def makePeer(self):
        self.count += 1
        return FakePeer(self.downloader, self.metainfo.pieceCount, self.count)


class MetadataServiceTests(SynchronousTestCase):
    def setUp(self):
        self.service = MetadataService(BIG_INFO, lambda: 6881, {"infoHash": "x"})
        self.peer = extensionPeer()

    def replies(self):
        return [decodeMetadataMessage(p) for _, p in self.peer.extendedSent]

    def test_interface(self):
        verifyObject(IPeerExtension, self.service)

    def test_handshake(self):
        self.service.peerConnected(self.peer)
        [fields] = self.peer.handshakes
        self.assertEqual(fields["metadata_size"], len(BIG_INFO))
        silent = extensionPeer(extended=False)
        self.service.peerConnected(silent)
        self.assertEqual(silent.handshakes, [])
        self.service.handshakeReceived(self.peer, {"m": {}})

    def test_serves(self):
        """
        Requests are answered with 16 KiB pieces; a piece out of range is
        rejected; data and rejects from the peer are ignored.
        """
        for piece in (0, 2, 3):
            self.service.messageReceived(
                self.peer, encodeMetadataMessage(MetadataRequest(piece))
            )
        first, last, beyond = self.replies()
        self.assertEqual(first, MetadataData(0, len(BIG_INFO), BIG_INFO[:16384]))
        self.assertEqual(last, MetadataData(2, len(BIG_INFO), BIG_INFO[32768:]))
        self.assertEqual(beyond, MetadataReject(3))
        self.service.messageReceived(
            self.peer, encodeMetadataMessage(MetadataData(5, 9, b"x"))
        )
        self.service.messageReceived(
            self.peer, encodeMetadataMessage(MetadataReject(1))
        )
        self.assertEqual(len(self.peer.extendedSent), 3)
        self.assertIsNone(self.peer.dropped)

    def test_floodRejected(self):
        """
        A peer asking for more than a few copies gets rejects; forgotten
        when it leaves.
        """
        pieces = 3
        for _ in range(SERVES_PER_PEER * pieces + 2):
            self.service.messageReceived(
                self.peer, encodeMetadataMessage(MetadataRequest(0))
            )
        replies = self.replies()
        self.assertIsInstance(replies[-1], MetadataReject)
        self.service.peerLost(self.peer)
        self.peer.extendedSent = []
        self.service.messageReceived(
            self.peer, encodeMetadataMessage(MetadataRequest(0))
        )
        self.assertIsInstance(self.replies()[0], MetadataData)

    def test_garbage(self):
        for payload in (b"d3:abc", b"i1e", b"d8:msg_typei0ee", b"x" * 20000):
            peer = extensionPeer()
            self.service.messageReceived(peer, payload)
            self.assertIsNotNone(peer.dropped, payload[:20])


class AbandonTests(AnnouncerTestCase):
    def test_abandonSendsNoStopped(self):
        """
        L{Announcer.abandon} stops without a C{stopped} announce; one in
        flight is cancelled; nothing is scheduled after.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.client("a").answer()
        announcer.announceNow(force=True)
        announcer.abandon()
        self.assertFalse(announcer.running)
        self.assertEqual([r.event for _, r in self.asked], ["started", ""])
        self.assertEqual(len(self.client("a").cancelled), 1)
        self.clock.advance(7200)
        self.assertEqual(len(self.asked), 2)
        self.assertIsNone(announcer.nextAnnounceAt)
        announcer.abandon()


class ConnectionExtensionTests(SynchronousTestCase):
    """
    The peer connection's BEP 10 bookkeeping that magnet links rely on.
    """

    def open(self, pieceCount=None):
        clock = task.Clock()
        ours = PeerConnection(
            clock,
            b"o" * 20,
            Features(extensions=EXTENSIONS),
            infoHash=b"h" * 20,
            pieceCount=pieceCount,
        )
        theirs = PeerConnection(clock, b"t" * 20, Features(extensions=EXTENSIONS))
        ours.start()
        theirs.start()
        theirs.receiveData(b"".join(ours.dataToSend()))
        theirs.accept(b"h" * 20, 4)
        ours.receiveData(b"".join(theirs.dataToSend()))
        ours.accept()
        return ours, theirs

    def test_bitfieldAfterExtendedHandshake(self):
        """
        libtorrent sends its extended handshake before its bitfield: with
        the piece count unknown, the bitfield is kept (not a violation)
        and reported once the count is known.
        """
        ours, theirs = self.open()
        theirs.sendExtensionHandshake({"metadata_size": 5})
        theirs._out.append(wire.encodeMessage(wire.BitfieldMessage(b"\xf0")))
        events = ours.receiveData(b"".join(theirs.dataToSend()))
        self.assertEqual([type(e).__name__ for e in events], ["ExtensionHandshake"])
        self.assertFalse(ours.closed)
        self.assertEqual(ours.setPieceCount(4), [wire.BitfieldMessage(b"\xf0")])

    def test_bitfieldAfterExtendedHandshakeKnownCount(self):
        """
        The same with the piece count known: a bitfield, not C{have}s.
        """
        ours, theirs = self.open(pieceCount=4)
        theirs.sendExtensionHandshake({})
        theirs._out.append(wire.encodeMessage(wire.BitfieldMessage(b"\xf0")))
        events = ours.receiveData(b"".join(theirs.dataToSend()))
        self.assertEqual(events[-1], wire.BitfieldMessage(b"\xf0"))

    def test_incomingLearnsExtensionsWhenRouted(self):
        """
        An incoming connection is built before its torrent is known: the
        extension ids of the torrent it is routed to apply (they were the
        factory's, none, so every extension message was ignored).
        """
        owner = Owner()

        class Router:
            peerId = b"o" * 20

            def ownerFor(self, infoHash):
                return PeerContext(
                    infoHash, b"o" * 20, None, owner, Features(extensions=EXTENSIONS)
                )

        clock = task.Clock()
        protocol = PeerFactory(Router(), clock).buildProtocol(
            IPv4Address("TCP", "10.0.0.1", 5000)
        )
        protocol.makeConnection(StringTransport())
        remote = PeerConnection(
            clock, b"t" * 20, Features(extensions=EXTENSIONS), infoHash=b"h" * 20
        )
        remote.start()
        protocol.dataReceived(b"".join(remote.dataToSend()))
        remote.receiveData(protocol.transport.value())
        remote.accept()
        remote.sendExtensionHandshake({})
        # Our ut_metadata id, 2 (we sent no handshake here).
        request = encodeMetadataMessage(MetadataRequest(0))
        remote._out.append(wire.encodeMessage(wire.Extended(2, request)))
        protocol.dataReceived(b"".join(remote.dataToSend()))
        kinds = [type(m).__name__ for m in owner.messages]
        self.assertEqual(kinds, ["ExtensionHandshake", "ExtensionMessage"])
        self.assertEqual(owner.messages[1].name, "ut_metadata")


class Owner:
    def __init__(self):
        self.messages = []

    def peerConnected(self, peer):
        return True

    def peerMessage(self, peer, message):
        self.messages.append(message)

    def peerBlocks(self, peer, blocks):
        for message in blocks:
            self.peerMessage(peer, message)

    def peerLost(self, peer, reason):
        pass


class CommandLineTests(SynchronousTestCase):
    LINK = formatMagnet(b"\x01" * 20, "x", ["http://127.0.0.1:1/announce"])

    def test_tapTakesMagnets(self):
        options = tap.Options()
        options.parseStrictly(
            ["--torrent", self.LINK, "--state-dir", self.mktemp(), "-d", self.mktemp()]
        )
        [(link, magnet)] = options["metainfos"]
        self.assertEqual(link, self.LINK)
        self.assertIsInstance(magnet, Magnet)
        self.assertEqual(magnet.infoHash, b"\x01" * 20)

    def test_tapBadMagnet(self):
        options = tap.Options()
        e = self.assertRaises(
            usage.UsageError,
            options.parseStrictly,
            ["--torrent", "magnet:?xt=urn:btih:zz", "-d", self.mktemp()],
        )
        self.assertIn("invalid magnet link", str(e))

    def test_tapServiceAddsMagnet(self):
        from btorrent.daemon import session as sessionModule

        added = []

        class FakeSession(sessionModule.Session):
            def addMagnet(self, magnet, directory, **kwargs):
                added.append(("magnet", parseMagnet(magnet).infoHash))
                return super().addMagnet(magnet, directory, **kwargs)

            def addTorrent(self, info, directory, **kwargs):
                added.append(("torrent", info))

        self.patch(sessionModule, "Session", FakeSession)
        options = tap.Options()
        options.parseStrictly(
            [
                "--torrent",
                self.LINK,
                "--state-dir",
                self.mktemp(),
                "-d",
                self.mktemp(),
                "--port",
                "0",
                "--rpc-port",
                "0",
                "--no-dht",
            ]
        )
        # makeService sets the level of btorrent's lines for the process.
        self.addCleanup(logs.setLevel, LogLevel.debug)
        tap.makeService(options)
        self.assertEqual(added, [("magnet", b"\x01" * 20)])

    def test_downloadBadMagnet(self):
        err = io.StringIO()
        parser = foreground.argparse.ArgumentParser()
        foreground.addDownloadParser(parser.add_subparsers())
        args = parser.parse_args(["download", "magnet:?xt=urn:btmh:1220" + "0" * 64])
        self.assertEqual(foreground.runDownload(args, err=err), 1)
        self.assertIn("invalid magnet link", err.getvalue())
        self.assertIn("v2-only", err.getvalue())

    def test_downloadAddsMagnet(self):
        from btorrent.daemon import session as sessionModule
        from tests.test_foreground import FakeSession, FakeTorrent, Reactor, parse

        calls = []

        class MagnetSession(FakeSession):
            def addMagnet(self, magnet, directory, **kwargs):
                calls.append(magnet)
                self.torrent = FakeTorrent(None, 0)
                self.torrent.name = "x"
                self.torrent.metadataPercentComplete = 0.5
                return self.torrent

        self.patch(sessionModule, "Session", MagnetSession)
        args = parse("-o", self.mktemp())
        from btorrent.codec.magnet import parseMagnet

        err = io.StringIO()
        d = foreground.download(Reactor(), args, parseMagnet(self.LINK), err)
        self.assertEqual(len(calls), 1)
        torrent = MagnetSession.made[-1].torrent
        torrent.completed.callback(None)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertIn("x: download complete", err.getvalue())
