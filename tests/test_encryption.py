"""
Tests for L{btorrent.peer.encryption} and its wiring: the policy's three
settings, the peer factories that wrap their protocols in MSE, two real
L{PeerProtocol}s talking through it in memory, and the session's lookup of
a torrent by its MSE hash.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec.wire import Handshake, encodeHandshake
from btorrent.daemon.session import Session
from btorrent.peer import encryption
from btorrent.peer.connection import Features
from btorrent.peer.framer import READ_SIZE
from btorrent.peer.mse import CRYPTO_RC4, MSEError, obfuscatedHash
from btorrent.peer.msetransport import (
    INLINE_DECRYPT,
    MAX_UNDECRYPTED,
    MSEIncomingProtocol,
    MSEOutgoingProtocol,
)
from btorrent.peer.protocol import (
    PeerClientFactory,
    PeerContext,
    PeerFactory,
    PeerProtocol,
)
from tests.builders import buildTorrent
from tests.fakes import HeldRunner
from tests.test_msetransport import BT_HANDSHAKE, Recorder, StringPair
from tests.test_peer import LogCapture, RecordingOwner, Router

INFO_HASH = b"I" * 20
OTHER_HASH = b"O" * 20
CLIENT_ID = b"-BT0001-client......"
SERVER_ID = b"-BT0001-server......"
ADDRESS = IPv4Address("TCP", "127.0.0.1", 6881)


class PolicyTests(SynchronousTestCase):
    """
    Transmission's three settings.
    """

    def test_modes(self):
        self.assertEqual(encryption.MODES, ("tolerated", "preferred", "required"))
        self.assertEqual(encryption.DEFAULT, "preferred")
        for mode in encryption.MODES:
            self.assertEqual(encryption.checkMode(mode), mode)
        for bad in ("", "always", "PREFERRED", None):
            self.assertRaises(ValueError, encryption.checkMode, bad)

    def test_outgoing(self):
        """
        Tolerated dials in plaintext; the others offer RC4 only, and only
        preferred falls back to plaintext.
        """
        self.assertIsNone(encryption.outgoingProvide("tolerated"))
        self.assertEqual(encryption.outgoingProvide("preferred"), CRYPTO_RC4)
        self.assertEqual(encryption.outgoingProvide("required"), CRYPTO_RC4)
        self.assertEqual(
            [encryption.fallsBackToPlaintext(m) for m in encryption.MODES],
            [False, True, False],
        )

    def test_incoming(self):
        """
        Required refuses a plain handshake and plaintext within MSE;
        tolerated chooses plaintext within MSE when offered.
        """
        options = {}
        for mode in encryption.MODES:
            wrapper = encryption.wrapIncoming(
                PeerProtocol(task.Clock()), task.Clock(), lambda h: None, mode
            )
            self.assertIsInstance(wrapper, MSEIncomingProtocol)
            options[mode] = (
                wrapper._allowLegacy,
                wrapper._allowPlaintext,
                wrapper._allowRC4,
                wrapper._preferRC4,
            )
        self.assertEqual(
            options,
            {
                "tolerated": (True, True, True, False),
                "preferred": (True, True, True, True),
                "required": (False, False, True, True),
            },
        )


class TwoPeers:
    """
    A dialling and a listening L{PeerProtocol} of a torrent, each behind
    the wrapper its factory builds, over C{StringTransport}s.
    """

    def __init__(
        self,
        test,
        provide: Optional[int],
        mode: str,
        mseHash: bytes = INFO_HASH,
    ) -> None:
        self.clock = task.Clock()
        features = Features(fast=True)
        self.clientOwner = RecordingOwner()
        self.serverOwner = RecordingOwner()
        clientContext = PeerContext(INFO_HASH, CLIENT_ID, 8, self.clientOwner, features)
        serverContext = PeerContext(INFO_HASH, SERVER_ID, 8, self.serverOwner, features)
        clientFactory = PeerClientFactory(clientContext, self.clock)
        clientFactory.mseProvide = provide
        client = clientFactory.buildProtocol(ADDRESS)
        if provide is not None and mseHash != INFO_HASH:
            client = MSEOutgoingProtocol(
                client.wrappedProtocol, self.clock, mseHash, provide=provide
            )
        serverFactory = PeerFactory(Router(serverContext), self.clock)
        serverFactory.encryption = mode
        table = {obfuscatedHash(INFO_HASH): INFO_HASH}
        table[obfuscatedHash(OTHER_HASH)] = OTHER_HASH
        serverFactory.mseLookup = table.get
        server = serverFactory.buildProtocol(ADDRESS)
        self.client, self.server = client, server
        self.wire = StringPair(client, server, chunk=7)
        self.wire.run()

    def peer(self, wrapper) -> PeerProtocol:
        return getattr(wrapper, "wrappedProtocol", None) or wrapper


class WiringTests(SynchronousTestCase):
    """
    Real peer protocols through the factories' wrappers.
    """

    def setUp(self):
        self.log = LogCapture(self)

    def test_encryptedBothWays(self):
        """
        An MSE dial to a listener that prefers it: RC4, both peers say so,
        the BitTorrent handshakes went through it.
        """
        pair = TwoPeers(self, CRYPTO_RC4, "preferred")
        self.assertEqual(len(pair.clientOwner.connected), 1)
        self.assertEqual(len(pair.serverOwner.connected), 1)
        client = pair.clientOwner.connected[0]
        server = pair.serverOwner.connected[0]
        self.assertTrue(client.isEncrypted)
        self.assertTrue(server.isEncrypted)
        self.assertTrue(client.fast and server.fast)
        self.assertNotIn(b"BitTorrent protocol", bytes(pair.wire.wire))

    def test_plainDialAccepted(self):
        """
        A plain dial to a listener that tolerates or prefers MSE: a plain
        connection.
        """
        for mode in ("tolerated", "preferred"):
            pair = TwoPeers(self, None, mode)
            [server] = pair.serverOwner.connected
            self.assertFalse(server.isEncrypted)
            self.assertIn(b"BitTorrent protocol", bytes(pair.wire.wire))

    def test_requiredRefusesPlain(self):
        """
        A listener that requires encryption drops a plain handshake before
        any routing.
        """
        pair = TwoPeers(self, None, "required")
        self.assertEqual(pair.serverOwner.connected, [])
        self.assertTrue(pair.wire.serverTransport.disconnecting)
        self.assertIsInstance(pair.server.handshakeError, MSEError)

    def test_skeyMustMatchHandshake(self):
        """
        The BitTorrent handshake must name the torrent MSE named.
        """
        pair = TwoPeers(self, CRYPTO_RC4, "preferred", mseHash=OTHER_HASH)
        self.assertEqual(pair.serverOwner.connected, [])
        self.assertTrue(pair.wire.serverTransport.disconnecting)
        reasons = [e.get("reason") for e in self.log.events if "reason" in e]
        self.assertIn("handshake for another info-hash than its MSE handshake", reasons)

    def test_unknownTorrent(self):
        """
        An MSE handshake for a torrent we do not serve never completes.
        """
        clock = task.Clock()
        owner = RecordingOwner()
        context = PeerContext(OTHER_HASH, CLIENT_ID, 8, owner)
        factory = PeerClientFactory(context, clock)
        factory.mseProvide = CRYPTO_RC4
        client = factory.buildProtocol(ADDRESS)
        serverFactory = PeerFactory(Router(context), clock)
        serverFactory.mseLookup = {obfuscatedHash(INFO_HASH): INFO_HASH}.get
        server = serverFactory.buildProtocol(ADDRESS)
        wire = StringPair(client, server, chunk=100)
        wire.run()
        self.assertTrue(wire.serverTransport.disconnecting)
        self.assertIsInstance(server.handshakeError, MSEError)
        client.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(factory.mseFailed)
        self.assertEqual(owner.connected, [])
        # The dialling peer's owner hears of a failed connection, with the
        # MSE error as its reason.
        [(address, reason)] = owner.failed
        self.assertIsInstance(reason.value, MSEError)


class ShutdownTests(SynchronousTestCase):
    """
    A listening factory that stops aborts the connections still in their
    MSE handshake, and only those.
    """

    def test_stopFactory(self):
        clock = task.Clock()
        owner = RecordingOwner()
        context = PeerContext(INFO_HASH, SERVER_ID, 8, owner)
        factory = PeerFactory(Router(context), clock)
        factory.mseLookup = {}.get
        factory.doStart()
        waiting = factory.buildProtocol(ADDRESS)
        waitingTransport = StringTransport()
        waiting.makeConnection(waitingTransport)
        waiting.dataReceived(b"\x07" * 50)
        self.assertTrue(waiting.handshaking)
        plain = factory.buildProtocol(ADDRESS)
        plainTransport = StringTransport()
        plain.makeConnection(plainTransport)
        plain.dataReceived(encodeHandshake(Handshake(INFO_HASH, CLIENT_ID, bytes(8))))
        self.assertFalse(plain.handshaking)
        self.assertEqual(len(owner.connected), 1)
        factory.doStop()
        self.assertTrue(waitingTransport.disconnecting)
        self.assertFalse(plainTransport.disconnecting)
        waiting.connectionLost(Failure(ConnectionDone()))
        # The MSE deadline is gone (the open connection's heartbeat stays).
        self.assertEqual(
            [c for c in clock.getDelayedCalls() if "_timedOut" in repr(c)], []
        )


class SessionLookupTests(SynchronousTestCase):
    """
    The session finds a torrent by C{HASH('req2', infoHash)} and wraps its
    incoming connections.
    """

    def makeInfo(self, name: bytes):
        return buildTorrent(
            self.mktemp(),
            [(name.decode() + ".bin", 1000)],
            None,
            single=True,
            trackers=[["http://127.0.0.1:1/a"]],
        ).metainfo

    def test_lookup(self):
        session = Session(MemoryReactorClock(), port=0, encryption="required")
        first = self.makeInfo(b"a")
        session.addTorrent(first, self.mktemp())
        self.assertEqual(
            session._skeyLookup(obfuscatedHash(first.infoHash)), first.infoHash
        )
        second = self.makeInfo(b"b")
        session.addTorrent(second, self.mktemp())
        self.assertEqual(
            session._skeyLookup(obfuscatedHash(second.infoHash)), second.infoHash
        )
        self.assertIsNone(session._skeyLookup(obfuscatedHash(b"x" * 20)))
        del session.torrents[first.infoHash]
        self.assertIsNone(session._skeyLookup(obfuscatedHash(first.infoHash)))
        self.assertEqual(session.torrents[second.infoHash].encryption, "required")

    def test_lookupWithoutRebuilding(self):
        """
        The map follows additions and removals: a handshake naming a
        torrent, or none, never maps every torrent again.
        """
        session = Session(MemoryReactorClock(), port=0, encryption="required")
        infos = [self.makeInfo(name) for name in (b"a", b"b", b"c")]
        for info in infos:
            session.addTorrent(info, self.mktemp())
        self.successResultOf(session.removeTorrent(infos[0].infoHash))
        mapped = session._skeys
        self.assertEqual(
            session._skeyLookup(obfuscatedHash(infos[1].infoHash)), infos[1].infoHash
        )
        self.assertIsNone(session._skeyLookup(obfuscatedHash(infos[0].infoHash)))
        self.assertIsNone(session._skeyLookup(obfuscatedHash(b"x" * 20)))
        self.assertIs(session._skeys, mapped)
        self.assertEqual(set(mapped.values()), {infos[1].infoHash, infos[2].infoHash})

    def test_listeningFactoryWraps(self):
        reactor = MemoryReactorClock()
        session = Session(reactor, port=0, encryption="tolerated")
        session._listen()
        factory = reactor.tcpServers[0][1]
        self.assertEqual(factory.encryption, "tolerated")
        wrapper = factory.buildProtocol(ADDRESS)
        self.assertIsInstance(wrapper, MSEIncomingProtocol)
        self.assertIsInstance(wrapper.wrappedProtocol, PeerProtocol)

    def test_setEncryption(self):
        """
        The RPC's C{session-set encryption} reaches the torrents, their
        downloaders and the listening factory.
        """
        reactor = MemoryReactorClock()
        session = Session(reactor, port=0)
        session._listen()
        torrent = session.addTorrent(self.makeInfo(b"c"), self.mktemp())
        session.setEncryption("required")
        self.assertEqual(session.encryption, "required")
        self.assertEqual(torrent.encryption, "required")
        self.assertEqual(reactor.tcpServers[0][1].encryption, "required")
        self.assertRaises(ValueError, session.setEncryption, "sometimes")

    def test_badMode(self):
        self.assertRaises(ValueError, Session, MemoryReactorClock(), encryption="on")


class ThreadedDecryptionTests(SynchronousTestCase):
    """
    Big RC4 chunks are decrypted off the reactor thread, one job at a time
    per connection, in order; what arrives meanwhile joins the next job;
    waiting ciphertext is bounded.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.runner = HeldRunner()
        self.clientPeer = Recorder(BT_HANDSHAKE)
        self.serverPeer = Recorder()
        client = MSEOutgoingProtocol(self.clientPeer, self.clock, INFO_HASH)
        self.server = MSEIncomingProtocol(
            self.serverPeer,
            self.clock,
            {obfuscatedHash(INFO_HASH): INFO_HASH}.get,
            runInThread=self.runner,
        )
        self.wire = StringPair(client, self.server, chunk=100000)
        self.wire.run()
        self.assertTrue(self.server.isEncrypted)
        self.assertEqual(bytes(self.serverPeer.received), BT_HANDSHAKE)
        self.serverPeer.received.clear()

    def send(self, *chunks):
        """
        The client writes C{chunks}; each reaches the server as one read.
        """
        for chunk in chunks:
            self.clientPeer.transport.write(chunk)
            data = self.wire.clientTransport.value()
            self.wire.clientTransport.clear()
            self.server.dataReceived(data)

    def test_smallInline(self):
        """
        A small chunk with nothing under way is decrypted at once.
        """
        self.send(b"x" * INLINE_DECRYPT)
        self.assertEqual(bytes(self.serverPeer.received), b"x" * INLINE_DECRYPT)
        self.assertEqual(self.runner.calls, [])

    def test_orderAndBatches(self):
        """
        A big chunk goes to a thread; the chunks that follow (small ones
        too) wait and go together in the next job; all arrive in order.
        """
        a, b, c = (bytes([n]) * (INLINE_DECRYPT + 1) for n in (1, 2, 3))
        self.send(a, b"small", b, c)
        self.assertEqual(bytes(self.serverPeer.received), b"")
        self.assertEqual(len(self.runner.calls), 1)
        self.runner.runOne()
        self.assertEqual(bytes(self.serverPeer.received), a)
        self.assertEqual(len(self.runner.calls), 1)
        self.runner.runOne()
        self.assertEqual(bytes(self.serverPeer.received), a + b"small" + b + c)
        self.send(b"after")
        self.assertEqual(bytes(self.serverPeer.received)[-5:], b"after")

    def test_readingPausedWhenBehind(self):
        """
        Ciphertext waiting up to L{MAX_UNDECRYPTED} pauses reading until
        the thread caught up; a pause asked by the peer protocol holds.
        """
        transport = self.wire.serverTransport
        big = b"z" * (1 << 20)
        self.send(big)
        for _ in range(MAX_UNDECRYPTED // len(big) + 1):
            self.send(big)
        self.assertEqual(transport.producerState, "paused")
        self.serverPeer.transport.pauseProducing()
        self.runner.runOne()
        self.assertEqual(transport.producerState, "paused")
        self.serverPeer.transport.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.runner.runOne()
        self.assertEqual(len(self.serverPeer.received), len(big) * 6)

    def test_smallReadsSmallReadAhead(self):
        """
        Reads made small (a download limit) make one read waiting for the
        thread pause reading, so a limited peer cannot slip megabytes in
        while the thread pool is busy; the usual size brings back
        L{MAX_UNDECRYPTED}.
        """
        transport = self.wire.serverTransport
        self.server.bufferSize = 50_000
        chunk = b"q" * 50_000
        self.send(chunk)
        self.assertEqual(transport.producerState, "producing")
        self.send(chunk)
        self.assertEqual(transport.producerState, "paused")
        self.runner.runOne()
        self.assertEqual(transport.producerState, "producing")
        self.runner.runOne()
        self.assertEqual(len(self.serverPeer.received), 100_000)
        self.server.bufferSize = READ_SIZE
        self.send(chunk, chunk, chunk)
        self.assertEqual(transport.producerState, "producing")

    def test_peerClosesWhileBusy(self):
        """
        What the peer sent before closing is delivered before the loss.
        """
        data = b"d" * (INLINE_DECRYPT * 2)
        self.send(data)
        self.server.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.serverPeer.lost)
        self.runner.runOne()
        self.assertEqual(bytes(self.serverPeer.received), data)
        self.assertIsNotNone(self.serverPeer.lost)

    def test_weCloseWhileBusy(self):
        """
        When we closed the connection, what is being decrypted is dropped
        and the loss is told at once.
        """
        self.send(b"d" * (INLINE_DECRYPT * 2))
        self.serverPeer.transport.abortConnection()
        self.server.connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(self.serverPeer.lost)
        self.runner.runOne()
        self.assertEqual(bytes(self.serverPeer.received), b"")

    def test_threadFails(self):
        """
        A failing job aborts the connection, logged.
        """
        self.send(b"d" * (INLINE_DECRYPT * 2))
        f, args, d = self.runner.calls.pop(0)
        d.errback(Failure(RuntimeError("boom")))
        self.assertTrue(self.wire.serverTransport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
