"""
Helpers for DHT tests: an in-memory UDP network of sans-IO L{DHTNode}s on
127.0.0.1 driven by one C{task.Clock}, and a guard that fails a test when a
DHT socket would send anywhere but 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import os
import random
import time
from collections import deque
from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet import defer
from twisted.internet.task import Clock, deferLater

from btorrent.dht.node import DHTNode

Address = Tuple[str, int]

LOOPBACK = "127.0.0.1"


def isLoopback(host: str) -> bool:
    """
    Whether C{host} is an IPv4 loopback address (127.0.0.0/8).
    """
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False


class NonLoopbackDestination(AssertionError):
    """
    A DHT datagram was about to leave 127.0.0.1.
    """


class LoopbackGuard:
    """
    Wraps a C{send(data, address)} callable: every destination must be on
    127.0.0.0/8, else L{NonLoopbackDestination} is raised before the
    datagram is handed on, and the offence is recorded (so that a test
    checks C{violations} even if the exception was swallowed somewhere).

    @ivar violations: the offending destinations.
    @ivar sent: how many datagrams were let through.
    """

    def __init__(self, send: Callable[[bytes, Address], None]) -> None:
        self.wrapped = send
        self.violations: List[Address] = []
        self.sent = 0

    def __call__(self, data: bytes, address: Address) -> None:
        if not isLoopback(address[0]):
            self.violations.append(address)
            raise NonLoopbackDestination(f"DHT datagram to {address!r}")
        self.sent += 1
        self.wrapped(data, address)


def guardProtocol(testCase, protocol) -> LoopbackGuard:
    """
    Install a L{LoopbackGuard} on a L{btorrent.dht.protocol.DHTProtocol}'s
    node (the one path from the node to the socket), and have the test
    fail at cleanup if it ever saw a non-loopback destination.
    """
    guard = LoopbackGuard(protocol.sendDatagram)
    protocol.node.send = guard

    def check() -> None:
        testCase.assertEqual(guard.violations, [], "DHT sent outside 127.0.0.1")

    testCase.addCleanup(check)
    return guard


class MemoryNetwork:
    """
    Datagrams between in-memory nodes, delivered in order by L{pump}.

    @ivar clock: the C{task.Clock} all nodes share.
    @ivar nodes: address -> node.
    @ivar delivered: datagrams delivered so far.
    @ivar lost: datagrams sent to an address where no node listens.
    @ivar down: addresses whose datagrams are dropped (dead nodes).
    """

    def __init__(self, clock: Optional[Clock] = None, seed: int = 0) -> None:
        self.clock = clock if clock is not None else Clock()
        self.rng = random.Random(seed)
        self.nodes: Dict[Address, DHTNode] = {}
        self.queue: deque = deque()
        self.delivered = 0
        self.lost = 0
        self.down: set = set()
        self._nextPort = 10000

    def addNode(
        self, nodeId: Optional[bytes] = None, port: Optional[int] = None, **options
    ) -> DHTNode:
        """
        A started node on 127.0.0.1 (a fresh port unless given).
        """
        if port is None:
            port = self._nextPort
            self._nextPort += 1
        address = (LOOPBACK, port)
        node = DHTNode(
            nodeId,
            self.clock,
            random.Random(self.rng.getrandbits(64)),
            ownAddress=address,
            **options,
        )
        self.attach(node, address)
        node.start()
        return node

    def attach(self, node: DHTNode, address: Address) -> None:
        """
        Plug C{node} in at C{address}.
        """

        def send(data: bytes, to: Address) -> None:
            if not isLoopback(to[0]):
                raise NonLoopbackDestination(f"in-memory DHT datagram to {to!r}")
            self.queue.append((address, to, data))

        node.send = send
        self.nodes[address] = node

    def pump(self, limit: int = 10_000_000) -> int:
        """
        Deliver datagrams until none is left (answers included).

        @return: how many were delivered.
        """
        count = 0
        while self.queue and count < limit:
            source, destination, data = self.queue.popleft()
            node = self.nodes.get(destination)
            if node is None or destination in self.down or source in self.down:
                self.lost += 1
                continue
            count += 1
            node.datagramReceived(data, source)
        self.delivered += count
        return count

    def settle(self, seconds: float, step: float = 1.0) -> None:
        """
        Let C{seconds} pass, delivering everything at each step.
        """
        self.pump()
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(step)
            elapsed += step
            self.pump()


def addressOf(node: DHTNode) -> Address:
    return node.ownAddress


@defer.inlineCallbacks
def waitFor(
    reactor, predicate: Callable[[], bool], timeout: float, what: str, every=None
):
    """
    Poll C{predicate} without blocking the reactor (the DHT services under
    test answer meanwhile).

    @param every: called about once a second while waiting (to nudge a
        real client), if given.
    @raise AssertionError: naming C{what} after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    nudged = 0.0
    while not predicate():
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        if every is not None and now - nudged >= 1.0:
            nudged = now
            every()
        yield deferLater(reactor, 0.05, lambda: None)


def _procAddress(field: str, v6: bool) -> Tuple[str, int]:
    """
    Read C{"0100007F:1AE1"} (an address in C{/proc/net/*}) as
    C{("127.0.0.1", 6881)}.
    """
    hexHost, hexPort = field.split(":")
    raw = bytes.fromhex(hexHost)
    if v6:
        # Four 32-bit words, each in host (little-endian) order.
        packed = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        host = str(ipaddress.IPv6Address(packed))
    else:
        host = str(ipaddress.IPv4Address(raw[::-1]))
    return host, int(hexPort, 16)


def processSockets() -> Dict[int, Tuple[str, Address, Address]]:
    """
    The Internet sockets this process holds (libtorrent's threads
    included), from C{/proc}: inode -> (kind, local address, remote
    address).
    """
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    sockets = {}
    for kind in ("tcp", "udp", "tcp6", "udp6"):
        with open(f"/proc/self/net/{kind}") as f:
            next(f)
            for line in f:
                fields = line.split()
                inode = int(fields[9])
                if inode in inodes:
                    v6 = kind.endswith("6")
                    sockets[inode] = (
                        kind,
                        _procAddress(fields[1], v6),
                        _procAddress(fields[2], v6),
                    )
    return sockets


def offLoopbackSockets(before) -> List[Tuple[str, Address, Address]]:
    """
    The sockets opened since C{before} (a L{processSockets} snapshot) that
    could reach beyond 127.0.0.1: any not bound to a loopback address, or
    connected to a non-loopback one.  A socket bound to 127.0.0.1 cannot
    send to another host at all (the kernel refuses the route: see
    C{tests.test_dht_loopback}).
    """
    bad = []
    for inode, (kind, local, remote) in processSockets().items():
        if inode in before:
            continue
        connected = remote[1] != 0
        if not isLoopback(local[0]) or (connected and not isLoopback(remote[0])):
            bad.append((kind, local, remote))
    return bad
