"""
Tests for L{btorrent.dht.protocol}: the datagram adapter (oversize
datagrams, send errors) and L{DHTService} on real UDP sockets bound to
127.0.0.1 (bootstrap, announce and lookup between two services, host name
resolution through the reactor, saving and restoring nodes).
"""

from __future__ import annotations

import errno
import random

from twisted.internet import defer, error, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from btorrent.dht import krpc
from btorrent.dht.krpc import Ping, Response
from btorrent.dht.protocol import DHTProtocol, DHTService
from tests import dhtnet
from tests.dhtnet import guardProtocol

X = b"X" * 20
P = ("127.0.0.2", 7000)


class FakeTransport:
    """
    A datagram transport that records writes, or raises C{fail}.
    """

    def __init__(self) -> None:
        self.written = []
        self.fail = None

    def write(self, data, address) -> None:
        if self.fail is not None:
            raise self.fail
        self.written.append((data, address))


class ProtocolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.protocol = DHTProtocol(self.clock, rng=random.Random(1))
        self.transport = FakeTransport()
        self.protocol.makeConnection(self.transport)
        self.addCleanup(self.protocol.doStop)

    def test_answers(self) -> None:
        """
        Datagrams in reach the node; its datagrams go to the transport.
        """
        self.protocol.datagramReceived(krpc.encode(Ping(b"aa", X)), P)
        reply, address = self.transport.written[0]
        self.assertEqual(address, P)
        self.assertEqual(
            krpc.decode(reply), Response(b"aa", self.protocol.node.nodeId, ip=P)
        )

    def test_oversize(self) -> None:
        """
        A datagram over L{krpc.MAX_DATAGRAM} is dropped unread.
        """
        self.protocol.datagramReceived(b"d" + b"x" * krpc.MAX_DATAGRAM, P)
        self.assertEqual(self.protocol.oversize, 1)
        self.assertEqual(self.protocol.node.stats.malformed, 0)
        self.assertEqual(self.transport.written, [])

    def test_sendErrors(self) -> None:
        """
        A socket error on send is counted, never raised into the node.
        """
        data = krpc.encode(Ping(b"aa", X))
        self.transport.fail = OSError(errno.ENETUNREACH, "unreachable")
        self.protocol.datagramReceived(data, P)
        self.transport.fail = error.MessageLengthError()
        self.protocol.datagramReceived(data, ("127.0.0.3", 1))
        self.assertEqual(self.protocol.sendErrors, 4)  # answers and pings back
        self.assertEqual(self.protocol.node.stats.queriesIn, 2)

    def test_noTransport(self) -> None:
        protocol = DHTProtocol(self.clock, rng=random.Random(2))
        protocol.sendDatagram(b"x", P)
        self.assertEqual(protocol.sendErrors, 1)

    def test_stopProtocol(self) -> None:
        """
        Stopping the protocol stops the node and its timers.
        """
        self.protocol.node.bootstrap([P])
        self.assertTrue(self.clock.getDelayedCalls())
        self.protocol.doStop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.protocol.makeConnection(self.transport)


class NamedReactor:
    """
    The real reactor, except that C{resolve} answers from a table (so that
    no name ever reaches DNS).
    """

    def __init__(self, names: dict) -> None:
        self.names = names

    def __getattr__(self, name):
        return getattr(reactor, name)

    def resolve(self, name, timeout=None):
        if name in self.names:
            return defer.succeed(self.names[name])
        return defer.fail(error.DNSLookupError(name))


def waitFor(predicate, what: str):
    return dhtnet.waitFor(reactor, predicate, 10.0, what)


class ServiceTests(TestCase):
    """
    Services on real UDP sockets on 127.0.0.1.
    """

    def service(self, bootstrap=(), reactor=reactor, **kw) -> DHTService:
        service = DHTService(reactor, 0, "127.0.0.1", bootstrap, **kw)
        guardProtocol(self, service.protocol)
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        return service

    @defer.inlineCallbacks
    def test_twoServices(self):
        """
        B bootstraps through A; A announces; B's lookup finds A's peer.
        Stopping saves the nodes, which bootstrap a third service alone.
        """
        a = self.service()
        self.assertEqual(a.listeningPort.getHost().host, "127.0.0.1")
        self.assertEqual(a.node.ownAddress, ("127.0.0.1", a.boundPort))
        saved = []
        b = self.service([("127.0.0.1", a.boundPort)], onSave=saved.append)
        yield waitFor(lambda: len(a.node.table) and len(b.node.table), what="join")
        infoHash = b"I" * 20
        announced = []
        a.announce(infoHash, 6000, done=announced.append)
        yield waitFor(lambda: announced, what="announce")
        self.assertEqual(announced[0].announced, 1)
        found, done = [], []
        b.getPeers(infoHash, found.append, done.append)
        yield waitFor(lambda: done, what="lookup")
        self.assertEqual(found, [("127.0.0.1", 6000)])
        self.assertEqual(b.stats.peersFound, 1)
        yield b.stopService()
        self.assertEqual(
            saved,
            [[{"id": a.node.nodeId.hex(), "host": "127.0.0.1", "port": a.boundPort}]],
        )
        c = self.service(savedNodes=saved[0])
        yield waitFor(lambda: len(c.node.table), what="restored bootstrap")
        self.assertIn(("127.0.0.1", a.boundPort), c.node.table)

    @defer.inlineCallbacks
    def test_resolveNames(self):
        """
        Bootstrap host names are resolved through the reactor; a name that
        does not resolve is skipped.
        """
        a = self.service()
        names = NamedReactor({"router.test": "127.0.0.1"})
        b = self.service(
            [("nowhere.test", 1), ("router.test", a.boundPort)], reactor=names
        )
        yield waitFor(lambda: len(b.node.table), what="join by name")
        self.assertEqual(b.node.bootstrapAddresses, [("127.0.0.1", a.boundPort)])
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_onSaveFailure(self):
        """
        An C{onSave} that raises is logged; the port still closes.
        """

        def broken(nodes):
            raise RuntimeError("disk full")

        a = self.service(onSave=broken)
        yield a.stopService()
        self.assertIsNone(a.listeningPort)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
