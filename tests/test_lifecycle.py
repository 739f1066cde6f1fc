"""
The seams of the house: a registered BEP 10 extension receives its
messages through a real peer connection; a torrent is stopped and started
again, in memory and against a real libtorrent seeder, and finishes
byte-identical.
"""

from __future__ import annotations

import base64
import os
import random

from twisted.internet import task
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode, wire
from btorrent.codec.wire import Extended, Handshake, encodeHandshake, encodeMessage
from btorrent.control.api import DOWNLOADING, SEEDING, STOPPED
from btorrent.engine.downloader import Downloader
from btorrent.engine.picker import PiecePicker
from btorrent.peer.connection import Features
from btorrent.peer.protocol import PeerContext, PeerProtocol
from tests.builders import fakeTorrent, writeFiles
from tests.daemonproc import DaemonProcess
from tests.fakes import MemoryStorage, syncRunner
from tests.realseeders import libtorrentSeeder, makeTorrent
from tests.test_interop_seed import assertSameFiles

OUR_ID = b"-BT0100-" + b"l" * 12
THEIR_ID = b"-XX0000-" + b"t" * 12


class DummyExtension:
    """
    An extension that records what it gets.
    """

    def __init__(self) -> None:
        self.handshakes = []
        self.messages = []
        self.lost = []

    def handshakeReceived(self, peer, fields) -> None:
        self.handshakes.append(fields)

    def messageReceived(self, peer, payload) -> None:
        self.messages.append(payload)
        peer.sendExtended("ut_dummy", b"pong:" + payload)

    def peerLost(self, peer) -> None:
        self.lost.append(peer)


class ExtensionSeamTests(SynchronousTestCase):
    def test_dummyExtension(self) -> None:
        """
        An extension registered on a torrent's coordinator gets the peer's
        BEP 10 handshake and its messages by name, through a real
        L{PeerProtocol}, and its answers reach the peer under the peer's
        id; a message beyond its size limit ends the connection.
        """
        info, _ = fakeTorrent()
        clock = task.Clock()
        picker = PiecePicker(
            info.pieceCount, info.pieceLength, info.totalLength, random.Random(1)
        )
        downloader = Downloader(
            info,
            picker,
            MemoryStorage(info),
            syncRunner,
            clock,
            MemoryReactor(),
            OUR_ID,
        )
        extension = DummyExtension()
        downloader.extensions["ut_dummy"] = extension
        features = Features(extensions=(("ut_dummy", 3, 64),))
        downloader.features = features
        downloader.startService()
        self.addCleanup(downloader.stopService)
        context = PeerContext(
            info.infoHash, OUR_ID, info.pieceCount, downloader, features
        )
        protocol = PeerProtocol(clock, context=context, address=("127.0.0.1", 7000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(
            transport.value()[:68],
            encodeHandshake(Handshake(info.infoHash, OUR_ID, features.reserved)),
        )
        transport.clear()
        theirs = wire.reservedBytes(extended=True)
        protocol.dataReceived(
            encodeHandshake(Handshake(info.infoHash, THEIR_ID, theirs))
            + encodeMessage(Extended(0, bencode.encode({"m": {"ut_dummy": 9}})))
            + encodeMessage(Extended(3, b"ping"))
        )
        self.assertIn(protocol, downloader.peers)
        self.assertEqual(extension.handshakes, [{"m": {b"ut_dummy": 9}}])
        self.assertEqual(extension.messages, [b"ping"])
        self.assertTrue(
            transport.value().endswith(encodeMessage(Extended(9, b"pong:ping")))
        )
        protocol.dataReceived(encodeMessage(Extended(3, b"x" * 65)))
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)
        self.assertEqual(extension.lost, [protocol])


class StopStartTests(SynchronousTestCase):
    def test_stopStartAgainstLibtorrent(self) -> None:
        """
        A torrent downloading from a real libtorrent seeder (held to a
        slow rate) is stopped half-way and started again, twice; it goes
        on from where it was (no full recheck) and finishes byte-identical.
        """
        base = os.path.abspath(self.mktemp())
        files = [("stopstart/a.bin", 3 * 1024 * 1024), ("stopstart/b/c.bin", 777777)]
        seedDir = os.path.join(base, "seed")
        writeFiles(seedDir, files, seed=21)
        torrent = makeTorrent(seedDir, files, 65536, [])
        seeder = libtorrentSeeder(seedDir, torrent)
        self.addCleanup(seeder.close)
        # Slow, so that the stops land half-way (local peers ignore the
        # session's limits unless told otherwise).
        seeder.session.apply_settings(
            {
                "upload_rate_limit": 600_000,
                "ignore_limits_on_local_network": False,
                # It dials us again at once after each stop.
                "min_reconnect_time": 1,
            }
        )
        seeder.handle.set_upload_limit(600_000)
        daemon = DaemonProcess(self, base)
        reply = daemon.rpc.call(
            "torrent-add", metainfo=base64.b64encode(torrent).decode()
        )
        torrentId = reply["torrent-added"]["id"]

        def status():
            [t] = daemon.rpc.call(
                "torrent-get", ids=[torrentId], fields=["status", "percentDone"]
            )["torrents"]
            return t

        done = 0.0
        for target in (0.25, 0.6):

            def reached(target=target) -> bool:
                seeder.connect("127.0.0.1", daemon.peerPort)
                return status()["percentDone"] >= target

            daemon.waitFor(reached, 60, f"{target:.0%}")
            daemon.rpc.call("torrent-stop", ids=[torrentId])
            daemon.waitFor(lambda: status()["status"] == STOPPED, 10, "the stop")
            progress = status()["percentDone"]
            self.assertGreaterEqual(progress, done)
            done = progress
            daemon.rpc.call("torrent-start", ids=[torrentId])
            daemon.waitFor(
                lambda: status()["status"] in (DOWNLOADING, SEEDING), 10, "the start"
            )
            self.assertGreaterEqual(status()["percentDone"], done)
        seeder.session.apply_settings({"upload_rate_limit": 0})
        seeder.handle.set_upload_limit(-1)
        seeder.connect("127.0.0.1", daemon.peerPort)
        daemon.waitFor(lambda: status()["status"] == SEEDING, 60, "the end")
        assertSameFiles(self, files, seedDir, daemon.downloadDir)
        # Checked once, when it was added (no resume data yet); never again.
        self.assertEqual(daemon.log().count("pieces on disk are good"), 1)
        self.assertTrue(daemon.stop())
        self.assertNotIn("Traceback", daemon.log())
