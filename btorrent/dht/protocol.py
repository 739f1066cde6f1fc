"""
The DHT on a UDP port: a thin Twisted adapter around L{DHTNode}.

L{DHTProtocol} feeds every datagram to the node and writes what the node
sends; L{DHTService} listens on a port, resolves the bootstrap host names,
bootstraps, and hands the nodes worth keeping to C{onSave} when it stops.

Nothing here chooses where to connect: the node only ever talks to the
bootstrap addresses it is given, the saved nodes, and the nodes it learns
from them.  L{DEFAULT_BOOTSTRAP} (the public routers) is for the daemon to
pass on; no test may use it.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Callable, List, Optional, Sequence, Tuple

from twisted.application.service import Service
from twisted.internet import defer, error
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from btorrent.dht.krpc import MAX_DATAGRAM
from btorrent.dht.node import DHTNode, DHTStats, Lookup
from btorrent.util import logs

__all__ = ["DEFAULT_BOOTSTRAP", "DHTProtocol", "DHTService", "bootstrapNodes"]

Address = Tuple[str, int]

#: The well-known public routers of the mainline DHT.  Only the daemon's
#: composition root may pass these on; tests never do.
DEFAULT_BOOTSTRAP: Tuple[Address, ...] = (
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("router.utorrent.com", 6881),
)


def _isIPv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


class DHTProtocol(DatagramProtocol):
    """
    Datagrams between a UDP port and a L{DHTNode}.

    @ivar node: the node.
    @ivar oversize: datagrams dropped for exceeding L{MAX_DATAGRAM}.
    @ivar sendErrors: datagrams the socket refused.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        reactor,
        nodeId: Optional[bytes] = None,
        rng: Optional[random.Random] = None,
        savedNodes: Sequence = (),
        **nodeOptions,
    ) -> None:
        """
        @param reactor: the clock of the node (C{IReactorTime}).
        @param rng: randomness for the node; a C{SystemRandom} by default.
        @param nodeOptions: passed to L{DHTNode}.
        """
        self.reactor = reactor
        self.node = DHTNode(
            nodeId,
            reactor,
            rng if rng is not None else random.SystemRandom(),
            send=self.sendDatagram,
            savedNodes=savedNodes,
            **nodeOptions,
        )
        self.oversize = 0
        self.sendErrors = 0

    def startProtocol(self) -> None:
        self.node.start()

    def stopProtocol(self) -> None:
        self.node.stop()

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        if len(data) > MAX_DATAGRAM:
            self.oversize += 1
            return
        self.node.datagramReceived(data, (addr[0], addr[1]))

    def sendDatagram(self, data: bytes, address: Address) -> None:
        """
        Write one datagram; a socket error is counted and logged, never
        raised into the node.
        """
        if self.transport is None:
            self.sendErrors += 1
            return
        try:
            self.transport.write(data, address)
        except (OSError, error.MessageLengthError) as e:
            self.sendErrors += 1
            self.log.debug(
                "DHT send to {address} failed: {error}", address=address, error=e
            )


class DHTService(Service):
    """
    A DHT node listening on UDP.

    @ivar protocol: the L{DHTProtocol} (its C{node} is the L{DHTNode}).
    @ivar listeningPort: the C{IListeningPort} while running.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        reactor,
        port: int,
        interface: str,
        bootstrap: Sequence[Address],
        nodeId: Optional[bytes] = None,
        savedNodes: Sequence = (),
        onSave: Optional[Callable[[List[dict]], None]] = None,
        rng: Optional[random.Random] = None,
        **nodeOptions,
    ) -> None:
        """
        @param port: the UDP port (0: any free port).
        @param interface: the address to bind (C{""}: all).
        @param bootstrap: C{(host, port)} to join through; host names are
            resolved at start.  Pass L{DEFAULT_BOOTSTRAP} explicitly for the
            public DHT.
        @param nodeId: our id (C{None}: random).
        @param savedNodes: what C{onSave} received last time.
        @param onSave: called with the nodes worth keeping (a JSON-able
            list) when the service stops.
        """
        self.reactor = reactor
        self.port = port
        self.interface = interface
        self.bootstrapAddresses = [(host, int(p)) for host, p in bootstrap]
        self.onSave = onSave
        self.protocol = DHTProtocol(
            reactor, nodeId, rng, savedNodes=savedNodes, **nodeOptions
        )
        self.listeningPort = None

    @property
    def node(self) -> DHTNode:
        """
        The L{DHTNode}.
        """
        return self.protocol.node

    @property
    def stats(self) -> DHTStats:
        """
        The node's counters (L{DHTStats}).
        """
        return self.protocol.node.stats

    def startService(self) -> None:
        Service.startService(self)
        self.listeningPort = self.reactor.listenUDP(
            self.port, self.protocol, interface=self.interface
        )
        host = self.listeningPort.getHost()
        if self.interface and _isIPv4(self.interface):
            self.node.ownAddress = (self.interface, host.port)
        self.log.info(
            "DHT node {nodeId} on UDP {host}:{port}",
            nodeId=self.node.nodeId.hex(),
            host=host.host,
            port=host.port,
        )
        self._resolveAndBootstrap()

    def _resolveAndBootstrap(self) -> defer.Deferred:
        def resolved(ip: str, port: int) -> Optional[Address]:
            return (ip, port)

        def unresolved(failure, host: str) -> None:
            self.log.info(
                "DHT bootstrap host {host} not resolved: {error}",
                host=host,
                error=failure.getErrorMessage(),
            )
            return None

        pending = []
        for host, port in self.bootstrapAddresses:
            if _isIPv4(host):
                pending.append(defer.succeed((host, port)))
            else:
                d = self.reactor.resolve(host)
                d.addCallback(resolved, port)
                d.addErrback(unresolved, host)
                pending.append(d)

        def bootstrap(results) -> None:
            if self.running:
                self.node.bootstrap([a for a in results if a is not None])

        return defer.gatherResults(pending).addCallback(bootstrap)

    def stopService(self):
        Service.stopService(self)
        if self.onSave is not None:
            try:
                self.onSave(self.node.serialize())
            except Exception:
                self.log.failure("DHT onSave failed")
        port, self.listeningPort = self.listeningPort, None
        if port is None:
            return None
        return port.stopListening()

    @property
    def boundPort(self) -> Optional[int]:
        """
        The UDP port number listened on, while running.
        """
        return None if self.listeningPort is None else self.listeningPort.getHost().port

    def addNode(self, address: Address) -> None:
        """
        Ping a node heard of elsewhere (a peer's PORT message: its IP and
        the port it gave); it joins the table if it answers.
        """
        self.node.addNode(address)

    def getPeers(
        self,
        infoHash: bytes,
        callback: Callable[[Address], None],
        done: Optional[Callable[[Lookup], None]] = None,
    ) -> Lookup:
        """
        Look up peers of C{infoHash}; C{callback((host, port))} for each new
        one as it arrives, C{done(lookup)} at the end.
        """
        return self.node.getPeers(infoHash, callback, done)

    def announce(
        self,
        infoHash: bytes,
        port: int,
        impliedPort: bool = False,
        callback: Optional[Callable[[Address], None]] = None,
        done: Optional[Callable[[Lookup], None]] = None,
    ) -> Lookup:
        """
        Announce ourselves as a peer of C{infoHash} on TCP C{port} (or, with
        C{impliedPort}, on the UDP port), after a get_peers lookup whose
        peers go to C{callback}.
        """
        return self.node.announce(infoHash, port, impliedPort, callback, done)


def bootstrapNodes(noDHT: bool, nodes: Sequence[Address]) -> Optional[List[Address]]:
    """
    The DHT's bootstrap nodes from a command line: none with C{--no-dht},
    the nodes given with C{--dht-bootstrap}, else the public routers.

    @return: a list of C{(host, port)}, or C{None} for no DHT.
    """
    if noDHT:
        return None
    if nodes:
        return list(nodes)
    return list(DEFAULT_BOOTSTRAP)
