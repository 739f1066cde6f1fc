"""
Tests for L{btorrent.peer.msetransport}: MSE in front of a protocol, two
peers in memory (C{iosim}), or over C{StringTransport}s fed one byte at a
time; time from a L{task.Clock}.
"""

from __future__ import annotations

from typing import List, Optional

from twisted.internet import task
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from btorrent.codec.wire import Handshake, encodeHandshake
from btorrent.peer.mse import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    INITIAL_PAYLOAD_MAX,
    MSEError,
    obfuscatedHash,
)
from btorrent.peer.msetransport import (
    HANDSHAKE_TIMEOUT,
    MSEIncomingProtocol,
    MSEOutgoingProtocol,
)

INFO_HASH = bytes(range(20))
OTHER_HASH = b"\xaa" * 20
BT_HANDSHAKE = encodeHandshake(Handshake(INFO_HASH, b"-BT0001-abcdefghijkl"))
SECRET = b"a secret message that must not show on the wire"


def lookup(infoHash: bytes) -> Optional[bytes]:
    return {obfuscatedHash(INFO_HASH): INFO_HASH}.get(infoHash)


class Recorder(Protocol):
    """
    A stand-in for the peer protocol: writes C{greeting} when connected,
    records what it receives and how it was lost.
    """

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.received = bytearray()
        self.lost: Optional[Failure] = None

    def connectionMade(self) -> None:
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason


def pair(clientWrapper, serverWrapper) -> iosim.IOPump:
    """
    Connect two protocols in memory and run until quiet.
    """
    return iosim.connect(
        serverWrapper,
        iosim.makeFakeServer(serverWrapper),
        clientWrapper,
        iosim.makeFakeClient(clientWrapper),
    )


class StringPair:
    """
    Two protocols over C{StringTransport}s, moved by hand so that a test
    chooses the chunk size and sees every byte on the wire.
    """

    def __init__(self, client, server, chunk: int = 1) -> None:
        self.client, self.server = client, server
        self.clientTransport = StringTransport()
        self.serverTransport = StringTransport()
        self.chunk = chunk
        self.wire = bytearray()
        client.makeConnection(self.clientTransport)
        server.makeConnection(self.serverTransport)

    def _move(self, source: StringTransport, target) -> bool:
        data = source.value()
        source.clear()
        self.wire += data
        for i in range(0, len(data), self.chunk):
            target.dataReceived(data[i : i + self.chunk])
        return bool(data)

    def step(self) -> bool:
        moved = self._move(self.clientTransport, self.server)
        return self._move(self.serverTransport, self.client) or moved

    def run(self) -> None:
        while self.step():
            pass


class HandshakeTests(SynchronousTestCase):
    """
    Two wrapped protocols talk through MSE.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clientPeer = Recorder(BT_HANDSHAKE)
        self.serverPeer = Recorder()

    def outgoing(self, **kw) -> MSEOutgoingProtocol:
        return MSEOutgoingProtocol(self.clientPeer, self.clock, INFO_HASH, **kw)

    def incoming(self, **kw) -> MSEIncomingProtocol:
        return MSEIncomingProtocol(self.serverPeer, self.clock, lookup, **kw)

    def test_rc4(self):
        """
        By default both sides end up on RC4: the client's first write went
        as MSE's initial payload, later writes both ways arrive decrypted,
        nothing readable crosses the wire, and the deadline is gone.
        """
        client, server = self.outgoing(), self.incoming()
        wire = StringPair(client, server, chunk=1)
        wire.run()
        self.assertEqual(bytes(self.serverPeer.received), BT_HANDSHAKE)
        self.serverPeer.transport.write(b"reply " + SECRET)
        self.clientPeer.transport.write(b"more " + SECRET)
        wire.run()
        self.assertEqual(bytes(self.clientPeer.received), b"reply " + SECRET)
        self.assertEqual(
            bytes(self.serverPeer.received), BT_HANDSHAKE + b"more " + SECRET
        )
        for side in (client, server):
            self.assertTrue(side.isEncrypted)
            self.assertEqual(side.selected, CRYPTO_RC4)
            self.assertEqual(side.infoHash, INFO_HASH)
            self.assertIsNone(side.handshakeError)
        self.assertNotIn(SECRET, bytes(wire.wire))
        self.assertNotIn(b"BitTorrent protocol", bytes(wire.wire))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_plaintextSelected(self):
        """
        When the responder selects plaintext, the payload crosses in clear
        after the handshake (the initial payload is still encrypted).
        """
        client, server = self.outgoing(), self.incoming(allowRC4=False)
        wire = StringPair(client, server, chunk=7)
        wire.run()
        self.clientPeer.transport.write(SECRET)
        self.serverPeer.transport.writeSequence([b"re", b"ply"])
        wire.run()
        self.assertEqual(bytes(self.serverPeer.received), BT_HANDSHAKE + SECRET)
        self.assertEqual(bytes(self.clientPeer.received), b"reply")
        for side in (client, server):
            self.assertFalse(side.isEncrypted)
            self.assertEqual(side.selected, CRYPTO_PLAINTEXT)
        self.assertIn(SECRET, bytes(wire.wire))
        self.assertNotIn(b"BitTorrent protocol", bytes(wire.wire))

    def test_plaintextOnly(self):
        client = self.outgoing(provide=CRYPTO_PLAINTEXT)
        server = self.incoming()
        pair(client, server)
        self.assertEqual(client.selected, CRYPTO_PLAINTEXT)
        self.assertEqual(bytes(self.serverPeer.received), BT_HANDSHAKE)

    def test_inMemoryPeers(self):
        """
        The same over iosim's transports, with C{writeSequence} and a large
        write.
        """
        client, server = self.outgoing(), self.incoming()
        pump = pair(client, server)
        big = bytes(range(256)) * 4096
        self.clientPeer.transport.writeSequence([b"a", b"bc", big])
        self.serverPeer.transport.write(big)
        pump.flush()
        self.assertEqual(bytes(self.serverPeer.received), BT_HANDSHAKE + b"abc" + big)
        self.assertEqual(bytes(self.clientPeer.received), big)

    def test_writesDuringTheHandshake(self):
        """
        What the client writes after its initial payload went out, but
        before the responder's step 4 arrived, is held and sent in order;
        so is what the server writes before its handshake is over.
        """
        client, server = self.outgoing(), self.incoming()
        wire = StringPair(client, server, chunk=1000)
        self.serverPeer.transport.write(b"early ")
        # Ya to the server, Yb back: the client sends step 3 with IA.
        wire.step()
        self.assertIsNone(client.selected)
        self.clientPeer.transport.write(b"then ")
        self.clientPeer.transport.writeSequence([b"this"])
        wire.run()
        self.assertEqual(bytes(self.serverPeer.received), BT_HANDSHAKE + b"then this")
        self.assertEqual(bytes(self.clientPeer.received), b"early ")

    def test_initialPayloadCap(self):
        """
        An initial payload over 65535 bytes: the first 65535 go with step 3,
        the rest after the handshake, in order.
        """
        self.clientPeer = Recorder(bytes(range(251)) * 300)
        client, server = self.outgoing(), self.incoming()
        pair(client, server)
        self.assertGreater(len(self.clientPeer.greeting), INITIAL_PAYLOAD_MAX)
        self.assertEqual(bytes(self.serverPeer.received), self.clientPeer.greeting)

    def test_transportInterfaces(self):
        """
        The wrapper is its protocol's transport and provides what the real
        transport provides; producers pass through.
        """
        client = self.outgoing()
        transport = StringTransport()
        client.makeConnection(transport)
        self.assertIs(self.clientPeer.transport, client)
        for interface in (ITransport, IConsumer, IPushProducer):
            self.assertTrue(interface.providedBy(client))

        @implementer(IPushProducer)
        class Producer:
            pass

        producer = Producer()
        client.registerProducer(producer, True)
        self.assertIs(transport.producer, producer)
        client.unregisterProducer()
        self.assertIsNone(transport.producer)
        self.assertEqual(client.getPeer(), transport.getPeer())
        self.assertEqual(client.getHost(), transport.getHost())
        client.loseConnection()
        self.assertTrue(transport.disconnecting)


class LegacyTests(SynchronousTestCase):
    """
    An incoming plain BitTorrent handshake.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.serverPeer = Recorder()

    def test_passThrough(self):
        client = Recorder(BT_HANDSHAKE)
        server = MSEIncomingProtocol(self.serverPeer, self.clock, lookup)
        wire = StringPair(client, server, chunk=1)
        wire.run()
        self.assertEqual(bytes(self.serverPeer.received), BT_HANDSHAKE)
        self.serverPeer.transport.write(SECRET)
        wire.run()
        self.assertEqual(bytes(client.received), SECRET)
        self.assertIsNone(server.selected)
        self.assertFalse(server.isEncrypted)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refused(self):
        """
        With C{allowLegacy=False} a plaintext handshake is dropped and the
        wrapped protocol learns why.
        """
        client = Recorder(BT_HANDSHAKE)
        server = MSEIncomingProtocol(
            self.serverPeer, self.clock, lookup, allowLegacy=False
        )
        pair(client, server)
        self.assertEqual(bytes(self.serverPeer.received), b"")
        self.assertIsInstance(server.handshakeError, MSEError)
        self.assertIsNotNone(self.serverPeer.lost)
        self.assertTrue(self.serverPeer.lost.check(MSEError))

    def test_mseRefused(self):
        """
        Allowing neither plaintext nor RC4 within MSE refuses MSE.
        """
        client = MSEOutgoingProtocol(Recorder(BT_HANDSHAKE), self.clock, INFO_HASH)
        server = MSEIncomingProtocol(
            self.serverPeer,
            self.clock,
            lookup,
            allowPlaintext=False,
            allowRC4=False,
        )
        pair(client, server)
        self.assertTrue(self.serverPeer.lost.check(MSEError))


class FailureTests(SynchronousTestCase):
    """
    A handshake that fails or stalls ends the connection, and the wrapped
    protocol's C{connectionLost} says why.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clientPeer = Recorder(BT_HANDSHAKE)
        self.serverPeer = Recorder()

    def test_unknownTorrent(self):
        client = MSEOutgoingProtocol(self.clientPeer, self.clock, OTHER_HASH)
        server = MSEIncomingProtocol(self.serverPeer, self.clock, lookup)
        pair(client, server)
        self.assertIn("do not serve", str(server.handshakeError))
        self.assertTrue(self.serverPeer.lost.check(MSEError))
        # The client only sees the connection close mid-handshake.
        self.assertTrue(self.clientPeer.lost.check(MSEError))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refusesRC4OnlyPeerWhenPlaintextOnly(self):
        client = MSEOutgoingProtocol(
            self.clientPeer, self.clock, INFO_HASH, provide=CRYPTO_RC4
        )
        server = MSEIncomingProtocol(
            self.serverPeer, self.clock, lookup, allowRC4=False
        )
        pair(client, server)
        self.assertIn("offers nothing", str(server.handshakeError))

    def test_timeoutIncoming(self):
        """
        A peer that sends nothing (or too little) is dropped at the
        deadline.
        """
        server = MSEIncomingProtocol(self.serverPeer, self.clock, lookup)
        transport = StringTransport()
        server.makeConnection(transport)
        server.dataReceived(b"\x13BitTorrent")
        self.clock.advance(HANDSHAKE_TIMEOUT - 0.1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertIn("no MSE handshake within", str(server.handshakeError))
        server.connectionLost(Failure(Exception("closed")))
        self.assertTrue(self.serverPeer.lost.check(MSEError))

    def test_timeoutOutgoing(self):
        client = MSEOutgoingProtocol(self.clientPeer, self.clock, INFO_HASH, timeout=5)
        transport = StringTransport()
        client.makeConnection(transport)
        self.assertGreaterEqual(len(transport.value()), 96)
        self.clock.advance(5)
        self.assertTrue(transport.disconnecting)
        # Late bytes after the failure are ignored.
        client.dataReceived(b"x" * 1000)
        self.assertEqual(bytes(self.clientPeer.received), b"")

    def test_closedMidHandshake(self):
        """
        A peer that closes during the handshake: the wrapped protocol gets
        an L{MSEError} and the deadline is cancelled.
        """
        server = MSEIncomingProtocol(self.serverPeer, self.clock, lookup)
        server.makeConnection(StringTransport())
        server.dataReceived(b"\x00" * 50)
        server.connectionLost(Failure(Exception("reset")))
        self.assertTrue(self.serverPeer.lost.check(MSEError))
        self.assertIn("reset", self.serverPeer.lost.getErrorMessage())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_garbage(self):
        """
        Garbage instead of a key exchange is dropped once the sync window
        is exhausted, without buffering the rest.
        """
        server = MSEIncomingProtocol(self.serverPeer, self.clock, lookup)
        transport = StringTransport()
        server.makeConnection(transport)
        server.dataReceived(b"\x01" * (10 << 20))
        self.assertTrue(transport.disconnecting)
        self.assertIn("HASH('req1', S)", str(server.handshakeError))

    def test_lostAfterSuccess(self):
        """
        After the handshake the wrapped protocol gets the transport's own
        reason.
        """
        client = MSEOutgoingProtocol(self.clientPeer, self.clock, INFO_HASH)
        server = MSEIncomingProtocol(self.serverPeer, self.clock, lookup)
        wire = StringPair(client, server, chunk=4096)
        wire.run()
        reason = Failure(Exception("bye"))
        server.connectionLost(reason)
        self.assertIs(self.serverPeer.lost, reason)


class DeliveryOrderTests(SynchronousTestCase):
    """
    Data that arrives in the same chunk as the end of the handshake reaches
    the wrapped protocol after its pending writes go out.
    """

    def test_remainderDelivered(self):
        clock = task.Clock()
        writes: List[bytes] = []

        class Echo(Recorder):
            def dataReceived(self, data):
                Recorder.dataReceived(self, data)
                writes.append(bytes(data))
                self.transport.write(b"echo:" + data)

        serverPeer = Echo()
        clientPeer = Recorder(BT_HANDSHAKE)
        client = MSEOutgoingProtocol(clientPeer, clock, INFO_HASH)
        server = MSEIncomingProtocol(serverPeer, clock, lookup)
        wire = StringPair(client, server, chunk=100000)
        wire.run()
        self.assertEqual(writes, [BT_HANDSHAKE])
        self.assertEqual(bytes(clientPeer.received), b"echo:" + BT_HANDSHAKE)
