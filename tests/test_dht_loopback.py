"""
Proof that the DHT tests never leave 127.0.0.1.

What proves it, layer by layer:

1. The kernel: a socket bound to 127.0.0.1 cannot send to another host (the
   route lookup fails with EINVAL before any packet exists).  Every DHT
   socket in the tests (btorrent's L{DHTService}, libtorrent's sessions) is
   bound to 127.0.0.1, and the interop tests audit, through C{/proc}, every
   Internet socket the test process opened (L{tests.dhtnet.offLoopbackSockets}):
   each one is bound to (or connected to) loopback.
2. btorrent's node: in every test, its sends go through a
   L{tests.dhtnet.LoopbackGuard} (real sockets) or an in-memory network
   that refuses other destinations; the guard fails the test on any other
   destination, and the node really would follow an address it is told of
   (shown here), so the guard is what stands between a test and the world.
3. The sources: no test module names the public routers (btorrent's
   L{DEFAULT_BOOTSTRAP} or libtorrent's default), the library never falls
   back to them by itself, every L{DHTService} in the tests binds
   127.0.0.1, and the libtorrent DHT settings refuse a bootstrap node off
   loopback.
"""

from __future__ import annotations

import ast
import errno
import inspect
import os
import random
import socket
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import btorrent
from btorrent.dht import krpc
from btorrent.dht import protocol as dhtprotocol
from btorrent.dht.krpc import FindNode, NodeInfo, Response
from btorrent.dht.node import DHTNode
from tests.dhtnet import (
    LoopbackGuard,
    MemoryNetwork,
    NonLoopbackDestination,
    offLoopbackSockets,
    processSockets,
)
from tests.realclients import LibtorrentSession, loopbackDHTSettings

#: TEST-NET-2 (RFC 5737): documentation addresses, never contacted here.
OUTSIDE = ("198.51.100.7", 6881)
TESTS = os.path.dirname(os.path.abspath(__file__))


class RecordingTransport:
    def __init__(self) -> None:
        self.written = []

    def write(self, data, address) -> None:
        self.written.append(address)


class GuardTests(SynchronousTestCase):
    """
    The guard on btorrent's sends.
    """

    def test_guard(self) -> None:
        sent = []
        guard = LoopbackGuard(lambda data, address: sent.append(address))
        guard(b"x", ("127.0.0.1", 1))
        guard(b"x", ("127.5.6.7", 2))
        self.assertRaises(NonLoopbackDestination, guard, b"x", OUTSIDE)
        self.assertRaises(NonLoopbackDestination, guard, b"x", ("::1", 3))
        self.assertRaises(NonLoopbackDestination, guard, b"x", ("localhost", 3))
        self.assertEqual(sent, [("127.0.0.1", 1), ("127.5.6.7", 2)])
        self.assertEqual(guard.violations, [OUTSIDE, ("::1", 3), ("localhost", 3)])

    def test_nodeFollowsWhatItIsTold(self) -> None:
        """
        A node told of another node off loopback queries it: the guard
        stops the datagram before the transport and records it.  (So the
        guard, not the node, is what keeps a test on loopback.)
        """
        protocol = dhtprotocol.DHTProtocol(Clock(), rng=random.Random(1))
        transport = RecordingTransport()
        protocol.makeConnection(transport)
        self.addCleanup(protocol.doStop)
        queries = []

        def send(data, address) -> None:
            queries.append(krpc.decode(data))
            protocol.sendDatagram(data, address)

        guard = LoopbackGuard(send)
        protocol.node.send = guard
        router = ("127.0.0.1", 6000)
        protocol.node.bootstrap([router])
        self.assertEqual(transport.written, [router])
        answer = Response(
            queries[0].transactionId, b"R" * 20, (NodeInfo(b"N" * 20, OUTSIDE),)
        )
        self.assertRaises(
            NonLoopbackDestination,
            protocol.datagramReceived,
            krpc.encode(answer),
            router,
        )
        self.assertEqual(guard.violations, [OUTSIDE])
        self.assertEqual(transport.written, [router])

    def test_memoryNetworkRefuses(self) -> None:
        net = MemoryNetwork()
        node = net.addNode()
        self.assertRaises(
            NonLoopbackDestination,
            node.send,
            krpc.encode(FindNode(b"t", b"x" * 20, b"y" * 20)),
            OUTSIDE,
        )


class KernelTests(SynchronousTestCase):
    """
    What the operating system guarantees, and the audit of sockets.
    """

    def test_loopbackSocketCannotRouteOut(self) -> None:
        """
        A UDP socket bound to 127.0.0.1 cannot be connected to another
        host: the route lookup fails.  (Connecting a UDP socket sends
        nothing; sending would fail the same way.)
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            e = self.assertRaises(OSError, s.connect, OUTSIDE)
            self.assertEqual(e.errno, errno.EINVAL)

    def test_auditSeesLibtorrent(self) -> None:
        """
        The socket audit sees the sockets libtorrent's threads open (so it
        can fail), and they are on 127.0.0.1.
        """
        before = processSockets()
        session = LibtorrentSession(dhtBootstrap=[])
        self.addCleanup(session.close)
        deadline = time.monotonic() + 10
        while True:
            new = [v for k, v in processSockets().items() if k not in before]
            ports = {(kind, local) for kind, local, _ in new}
            if {
                ("udp", ("127.0.0.1", session.port)),
                ("tcp", ("127.0.0.1", session.port)),
            } <= ports:
                break
            self.assertLess(time.monotonic(), deadline, f"libtorrent sockets: {new}")
            time.sleep(0.05)
        self.assertEqual(offLoopbackSockets(before), [])

    def test_auditFlagsWildcard(self) -> None:
        """
        A socket bound to all interfaces (which could send anywhere) is
        flagged; so is any IPv6 socket.
        """
        before = processSockets()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("0.0.0.0", 0))
            port = s.getsockname()[1]
            self.assertEqual(
                offLoopbackSockets(before), [("udp", ("0.0.0.0", port), ("0.0.0.0", 0))]
            )
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
            self.assertEqual(len(offLoopbackSockets(before)), 1)

    def test_libtorrentDHTSettings(self) -> None:
        """
        libtorrent's DHT in the tests listens on an explicit 127.0.0.1
        address, bootstraps from 127.0.0.1 only, and never uses LSD, UPnP
        or NAT-PMP; anything else is refused.
        """
        settings = loopbackDHTSettings(5000, [("127.0.0.1", 6000)])
        self.assertEqual(settings["listen_interfaces"], "127.0.0.1:5000")
        self.assertEqual(settings["outgoing_interfaces"], "127.0.0.1")
        self.assertEqual(settings["dht_bootstrap_nodes"], "127.0.0.1:6000")
        self.assertEqual(loopbackDHTSettings(5000, [])["dht_bootstrap_nodes"], "")
        for key in ["enable_lsd", "enable_upnp", "enable_natpmp"]:
            self.assertIs(settings[key], False)
        for host in ["10.0.0.1", "localhost", "dht.libtorrent.org", "0.0.0.0"]:
            self.assertRaises(ValueError, loopbackDHTSettings, 5000, [(host, 6881)])


def _sources(directory: str):
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as f:
                yield name, path, f.read()


class SourceTests(SynchronousTestCase):
    """
    No test can reach the public DHT by naming it, and the library never
    reaches it on its own.
    """

    def test_noTestNamesPublicRouters(self) -> None:
        """
        No test module but this one mentions L{DEFAULT_BOOTSTRAP} or any of
        the public routers (btorrent's, or libtorrent's default).
        """
        names = ["DEFAULT_BOOTSTRAP", "dht.libtorrent.org"]
        names += [host for host, _ in dhtprotocol.DEFAULT_BOOTSTRAP]
        self.assertEqual(len(names), 5)
        me = os.path.basename(__file__)
        found = []
        for name, _, text in _sources(TESTS):
            if name == me:
                continue
            for needle in names:
                if needle.lower() in text.lower():
                    found.append((name, needle))
        self.assertEqual(found, [])

    def test_libraryNeverDefaultsToRouters(self) -> None:
        """
        L{DHTService} has no default bootstrap, L{DHTNode.bootstrap} asks
        nobody unless told, and no module of btorrent reads
        L{DEFAULT_BOOTSTRAP} except the daemon's composition root.
        """
        parameter = inspect.signature(dhtprotocol.DHTService).parameters["bootstrap"]
        self.assertIs(parameter.default, inspect.Parameter.empty)
        self.assertEqual(
            inspect.signature(DHTNode.bootstrap).parameters["addresses"].default, ()
        )
        root = os.path.dirname(btorrent.__file__)
        readers = set()
        for directory, _, files in os.walk(root):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    read = (
                        (
                            isinstance(node, ast.Name)
                            and node.id == "DEFAULT_BOOTSTRAP"
                            and isinstance(node.ctx, ast.Load)
                        )
                        or (
                            isinstance(node, ast.Attribute)
                            and node.attr == "DEFAULT_BOOTSTRAP"
                        )
                        or (
                            isinstance(node, ast.alias)
                            and node.name == "DEFAULT_BOOTSTRAP"
                        )
                    )
                    if read:
                        readers.add(os.path.relpath(path, root))
        # bootstrapNodes turns the command line's options into nodes, for
        # the two composition roots that call it (tested below).
        self.assertLessEqual(readers, {"dht/protocol.py"})

    def test_bootstrapNodes(self) -> None:
        """
        No DHT with --no-dht; the nodes given; the public routers only when
        nothing is said.
        """
        self.assertIsNone(dhtprotocol.bootstrapNodes(True, [("127.0.0.1", 1)]))
        self.assertEqual(
            dhtprotocol.bootstrapNodes(False, [("127.0.0.1", 1)]), [("127.0.0.1", 1)]
        )
        self.assertEqual(
            dhtprotocol.bootstrapNodes(False, []),
            list(dhtprotocol.DEFAULT_BOOTSTRAP),
        )

    def test_testCommandsNeverReachTheRouters(self) -> None:
        """
        Every daemon and download command the tests and benchmarks build
        turns the DHT off unless it names loopback nodes.
        """
        from tests.twistdproc import downloadCommand, twistdCommand

        self.assertIn("--no-dht", downloadCommand())
        self.assertIn("--no-dht", twistdCommand("btorrent", logFile="x.log"))
        command = twistdCommand(
            "btorrent", "--dht-bootstrap", "127.0.0.1:7000", logFile="x.log"
        )
        self.assertNotIn("--no-dht", command)

    def test_servicesBindLoopback(self) -> None:
        """
        Every L{DHTService} a test creates, and every UDP port a DHT test
        module opens, binds the literal 127.0.0.1.
        """
        checked = 0
        for name, path, text in _sources(TESTS):
            tree = ast.parse(text, path)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                called = getattr(func, "attr", None) or getattr(func, "id", None)
                if called == "DHTService":
                    position = 2
                elif called == "listenUDP" and "dht" in name:
                    position = None
                else:
                    continue
                interface = [k.value for k in node.keywords if k.arg == "interface"]
                if position is not None and len(node.args) > position:
                    interface.append(node.args[position])
                self.assertEqual(len(interface), 1, f"{name}:{node.lineno}")
                self.assertIsInstance(
                    interface[0], ast.Constant, f"{name}:{node.lineno}"
                )
                self.assertEqual(
                    interface[0].value, "127.0.0.1", f"{name}:{node.lineno}"
                )
                checked += 1
        self.assertGreaterEqual(checked, 2)
