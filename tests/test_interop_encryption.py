"""
Message stream encryption (MSE/PE) between btorrent and real clients on
127.0.0.1, with btorrent's C{--encryption} settings:

  - a libtorrent seeder that forces RC4 (and refuses a plaintext
    handshake) -> C{btorrent download --encryption required};
  - C{twistd btorrent --encryption required} seeding -> a libtorrent
    leecher forcing RC4 downloads, a plaintext one cannot;
  - aria2 requiring encryption, as seeder and as leecher;
  - Transmission requiring encryption, seeding (btorrent dials it);
  - peers that break the MSE handshake: dropped, no traceback, bounded
    buffers.

libtorrent settings (C{shared/peers.md}): C{in_enc_policy=0},
C{out_enc_policy=0} (forced), C{allowed_enc_level=2} (RC4 only).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from btorrent.codec import wire
from btorrent.daemon.session import Session
from tests import hostilepeers
from tests.realaria2 import seederFor
from tests.realclients import aria2Leecher
from tests.realpeers import freePort, waitForTCP
from tests.realseeders import libtorrentLeecher, libtorrentSeeder
from tests.realtransmission import Transmission
from tests.test_interop_seed import (
    MULTI,
    MULTI_PIECE,
    Data,
    LogWatch,
    Twistd,
    noParts,
    pollUntil,
)
from tests.twistdproc import downloadCommand, repositoryEnvironment

#: libtorrent's encryption policies and levels.
FORCED, DISABLED = 0, 2
RC4_ONLY = 2


def setEncryption(peer, policy: int, level: int = RC4_ONLY) -> None:
    """
    Set a libtorrent session's encryption policy, in and out, and wait
    until it applies (C{get_settings} is answered by the session's thread,
    after the settings).
    """
    session = peer.session
    session.apply_settings(
        {"in_enc_policy": policy, "out_enc_policy": policy, "allowed_enc_level": level}
    )
    settings = session.get_settings()
    assert settings["in_enc_policy"] == policy, settings


def plaintextAnswer(port: int, infoHash: bytes, seconds: float = 5.0) -> bytes:
    """
    Send a plaintext BitTorrent handshake to 127.0.0.1:C{port}.

    @return: what came back before the peer closed the connection (or
        C{seconds} passed).
    """
    handshake = wire.encodeHandshake(
        wire.Handshake(
            infoHash, hostilepeers.makePeerId(), wire.reservedBytes(fast=True)
        )
    )
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as s:
        s.sendall(handshake)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            received += chunk
    return received


def runDownload(data: Data, outDir: str, *args: str, timeout: float = 40):
    """
    C{btorrent download} of C{data}'s torrent into C{outDir} on
    127.0.0.1, as a subprocess, with C{args}.

    @return: the C{subprocess.CompletedProcess} (text output).
    """
    return subprocess.run(
        downloadCommand()
        + [
            data.torrentPath,
            "-o",
            outDir,
            "--port",
            "0",
            "--interface",
            "127.0.0.1",
            "--quiet",
            *args,
        ],
        env=repositoryEnvironment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def connectedLine(port: int, how: str) -> str:
    """
    btorrent's log line for a peer at 127.0.0.1:C{port} that connected
    C{how} (C{"encrypted"} or C{"plaintext"}).
    """
    return f"peer 127.0.0.1:{port} connected (1 peers, {how})"


class LibtorrentTests(TestCase):
    """
    Against libtorrent forcing RC4.
    """

    timeout = 90

    def test_downloadFromForcedSeeder(self):
        """
        A libtorrent seeder that forces RC4 refuses a plaintext handshake;
        C{btorrent download --encryption required} gets the
        multi-directory torrent from it byte-identical, encrypted.
        """
        base = os.path.abspath(self.mktemp())
        data = Data(base, MULTI, MULTI_PIECE)
        seeder = libtorrentSeeder(data.seedDir, data.torrentBytes)
        self.addCleanup(seeder.close)
        setEncryption(seeder, FORCED)
        self.assertEqual(plaintextAnswer(seeder.port, data.metainfo.infoHash), b"")
        outDir = os.path.join(base, "out")
        result = runDownload(
            data,
            outDir,
            "--encryption",
            "required",
            "--peer",
            f"127.0.0.1:{seeder.port}",
            "--debug",
        )
        self.assertEqual(result.returncode, 0, result.stderr[-4000:])
        data.assertSame(self, outDir)
        self.assertIn(connectedLine(seeder.port, "encrypted"), result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    @defer.inlineCallbacks
    def test_twistdSeedsRequired(self):
        """
        C{twistd btorrent --encryption required} seeding: a libtorrent
        leecher that forces RC4 downloads everything; one that speaks only
        plaintext is refused and gets nothing.
        """
        base = os.path.abspath(self.mktemp())
        data = Data(base, MULTI, MULTI_PIECE)
        twistd = Twistd(
            [data.torrentPath],
            data.seedDir,
            os.path.join(base, "state"),
            os.path.join(base, "twistd.log"),
            extra=["--encryption=required"],
        )
        self.addCleanup(twistd.kill)
        yield twistd.waitForLog("complete, seeding", 20)
        plainDir = os.path.join(base, "plain")
        plain = libtorrentLeecher(plainDir, data.torrentBytes)
        self.addCleanup(plain.close)
        setEncryption(plain, DISABLED)
        plain.connect("127.0.0.1", twistd.port)
        yield twistd.waitForLog("a plaintext handshake, and we require MSE", 10)
        outDir = os.path.join(base, "out")
        leecher = libtorrentLeecher(outDir, data.torrentBytes)
        self.addCleanup(leecher.close)
        setEncryption(leecher, FORCED)
        leecher.connect("127.0.0.1", twistd.port)
        yield pollUntil(lambda: leecher.finished, 20, twistd.log)
        data.assertSame(self, outDir, settle=5)
        self.assertIn("connected (1 peers, encrypted)", twistd.log())
        self.assertNotIn("plaintext)", twistd.log())
        self.assertEqual(plain.handle.status().total_done, 0)
        self.assertFalse(plain.finished)
        code = yield threads.deferToThread(twistd.stop)
        self.assertEqual(code, -signal.SIGTERM, twistd.log())
        twistd.assertCleanLog(self)


class Aria2Tests(TestCase):
    """
    aria2 requiring RC4 (C{--bt-require-crypto=true
    --bt-min-crypto-level=arc4}), both ways.
    """

    timeout = 60
    CRYPTO = ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"]

    def test_fromAria2(self):
        """
        btorrent (its default, preferred) downloads from an aria2 seeder
        that requires encryption, through RC4.
        """
        base = os.path.abspath(self.mktemp())
        data = Data(base, MULTI, MULTI_PIECE)
        seeder = seederFor(self, data.torrentBytes, data.seedDir, extra=self.CRYPTO)
        outDir = os.path.join(base, "out")
        result = runDownload(
            data, outDir, "--peer", f"127.0.0.1:{seeder.port}", "--debug"
        )
        self.assertEqual(
            result.returncode, 0, result.stderr[-4000:] + "\n" + seeder.log()
        )
        data.assertSame(self, outDir)
        self.assertIn(connectedLine(seeder.port, "encrypted"), result.stderr)

    @defer.inlineCallbacks
    def test_toAria2(self):
        """
        A btorrent seeder requiring encryption dials an aria2 leecher that
        requires it too; aria2 gets everything and exits 0.
        """
        base = os.path.abspath(self.mktemp())
        data = Data(base, MULTI, MULTI_PIECE)
        watch = LogWatch.install(self)
        session = Session(
            reactor,
            port=0,
            interface="127.0.0.1",
            stateDir=os.path.join(base, "state"),
            encryption="required",
        )
        torrent = session.addTorrent(
            data.metainfo, data.seedDir, announcerFactory=noParts
        )
        session.startService()
        self.addCleanup(session.stopService)
        yield torrent.ready
        outDir = os.path.join(base, "out")
        port = freePort()
        logPath = os.path.join(base, "aria2.log")
        aria2 = aria2Leecher(
            data.torrentPath, outDir, port=port, logPath=logPath, extra=self.CRYPTO
        )

        def stopAria2():
            if aria2.poll() is None:
                aria2.kill()
                aria2.wait()

        self.addCleanup(stopAria2)
        yield threads.deferToThread(waitForTCP, port, 10, aria2)
        torrent.addPeers([("127.0.0.1", port)])

        def aria2Log() -> str:
            with open(logPath, errors="replace") as f:
                return "the aria2 leecher to exit:\n" + f.read()

        yield pollUntil(lambda: aria2.poll() is not None, 30, aria2Log)
        self.assertEqual(aria2.returncode, 0, aria2Log())
        data.assertSame(self, outDir)
        self.assertGreaterEqual(torrent.uploaded, data.metainfo.totalLength)
        self.assertTrue(watch.texts(connectedLine(port, "encrypted")))
        self.assertEqual(watch.texts("plaintext)"), [])
        self.assertEqual(watch.tracebacks(), [])


class TransmissionTests(TestCase):
    """
    Transmission 3.00 requiring encryption (its C{"encryption": 2}),
    seeding; it dials no loopback peer, so btorrent connects to it.
    """

    timeout = 90

    def test_fromTransmission(self):
        base = os.path.abspath(self.mktemp())
        data = Data(base, MULTI, MULTI_PIECE)
        transmission = Transmission(os.path.join(base, "transmission"))
        self.addCleanup(transmission.stop)
        transmission.rpc("session-set", encryption="required")
        self.assertEqual(transmission.rpc("session-get")["encryption"], "required")
        torrentId = transmission.addTorrent(data.torrentBytes, data.seedDir)
        transmission.waitFor(torrentId, lambda status: status["percentDone"] == 1.0, 30)
        self.assertEqual(
            plaintextAnswer(transmission.peerPort, data.metainfo.infoHash), b""
        )
        outDir = os.path.join(base, "out")
        result = runDownload(
            data,
            outDir,
            "--encryption",
            "required",
            "--peer",
            f"127.0.0.1:{transmission.peerPort}",
            "--debug",
            timeout=60,
        )
        self.assertEqual(
            result.returncode, 0, result.stderr[-4000:] + transmission.log()
        )
        data.assertSame(self, outDir)
        self.assertIn(connectedLine(transmission.peerPort, "encrypted"), result.stderr)


class HostileTests(TestCase):
    """
    Peers that break the MSE handshake, against a btorrent seeder on the
    trial reactor: each is dropped, nothing is logged as a traceback, and
    btorrent never holds more than the handshake's windows of their bytes.
    """

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.watch = LogWatch.install(self)
        base = os.path.abspath(self.mktemp())
        self.data = Data(base, MULTI, MULTI_PIECE)
        self.session = Session(
            reactor,
            port=0,
            interface="127.0.0.1",
            stateDir=os.path.join(base, "state"),
        )
        self.torrent = self.session.addTorrent(
            self.data.metainfo, self.data.seedDir, announcerFactory=noParts
        )
        self.session.startService()
        self.addCleanup(self.session.stopService)
        yield self.torrent.ready
        self.buffered = self.watchBuffers()

    def watchBuffers(self):
        """
        Record the most bytes any incoming connection's MSE layer held.

        @return: a one-element list, kept up to date.
        """
        factory = self.session.listeningPort.factory
        build = factory.buildProtocol
        most = [0]

        def buildProtocol(addr):
            wrapper = build(addr)
            dataReceived = wrapper.dataReceived

            def counting(data):
                dataReceived(data)
                responder = wrapper._responder
                held = len(wrapper._prefix) + len(wrapper._pending)
                if responder is not None:
                    held += len(responder._buffer)
                most[0] = max(most[0], held)

            wrapper.dataReceived = counting
            return wrapper

        factory.buildProtocol = buildProtocol
        return most

    @defer.inlineCallbacks
    def breaks(self, how: str, reason: str):
        """
        A L{BrokenMSEPeer} breaking the handshake C{how} is dropped, the
        log names C{reason}.
        """
        peer = hostilepeers.BrokenMSEPeer(self.data.metainfo.infoHash, how, reactor)
        yield hostilepeers.connectPeer(reactor, self.session.port, peer)
        started = time.monotonic()
        yield pollUntil(lambda: peer.lost.called, 10, f"btorrent to drop {how}")
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 5.0)
        failures = [
            event["reason"]
            for event in self.watch.events
            if event.get("log_format", "").startswith("MSE handshake with")
        ]
        self.assertTrue(any(reason in text for text in failures), failures)
        self.assertEqual(self.watch.tracebacks(), [])
        self.assertEqual(self.flushLoggedErrors(), [])
        # At most one read (64 KiB) beyond the sync windows.
        self.assertLess(self.buffered[0], 70000)
        self.assertEqual(len(self.torrent.downloader.peers), 0)
        return peer

    def test_neverFindsTheHash(self):
        """
        Random bytes where HASH('req1', S) should be.
        """
        return self.breaks("noHash", "HASH('req1', S)")

    @defer.inlineCallbacks
    def test_tenMegabytesOfPadding(self):
        """
        10 MB of padding after the key: dropped after the first window of
        it; most of it never leaves the peer.
        """
        peer = yield self.breaks("padding", "HASH('req1', S)")
        self.assertLess(peer.sent, 10 << 20)

    def test_unknownTorrent(self):
        """
        A correct handshake for a torrent we do not serve.
        """
        return self.breaks("unknownTorrent", "a torrent we do not serve")

    def test_wrongVerificationConstant(self):
        """
        A correct handshake with a verification constant that is not
        zeros.
        """
        return self.breaks("wrongVC", "bad verification constant")
