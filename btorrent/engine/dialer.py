"""
Connection slots and dialing: the addresses we know for a torrent, which to
dial when a slot is free, and how long to wait after a failure.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Optional, Set, Tuple

from twisted.logger import Logger

from btorrent.util import logs

__all__ = [
    "MAX_CANDIDATES",
    "MAX_FAILURES",
    "RETRY_DELAY",
    "Dialer",
    "isLocalAddress",
    "normalizeHost",
]

#: Reconnection back-off: first delay, and how many failures we accept.
RETRY_DELAY = 30.0
MAX_FAILURES = 5

#: Addresses remembered per torrent (libtorrent keeps about 3,000): past
#: it, the oldest that is not being dialled is forgotten, so that trackers,
#: PEX and the DHT cannot grow the list without bound.
MAX_CANDIDATES = 3000

Address = Tuple[str, int]


def normalizeHost(host: str) -> str:
    """
    An address in one spelling: an IPv4-mapped IPv6 address
    (C{::ffff:127.0.0.1}) as its IPv4 address, IPv6 compressed; names
    unchanged.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return str(mapped)
    return str(address)


def isLocalAddress(host: str) -> bool:
    """
    Whether C{host} names this machine (a loopback or unspecified address,
    in any spelling).
    """
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(normalizeHost(host))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class _Candidate:
    """
    An address to connect to, with its failures, and whether it was a
    seed when we last saw it (not dialled while we are complete).
    """

    __slots__ = ("failures", "notBefore", "seed")

    def __init__(self) -> None:
        self.failures = 0
        self.notBefore = 0.0
        self.seed = False


class Dialer:
    """
    The addresses of one torrent's peers and the dials under way.

    A dial holds a connection slot from when it starts until its handshake
    (then the connected peer holds it) or its failure.

    @ivar maxPeers: connected peers at most, whoever dialled.
    @ivar listenPort: our own port (never dialled on this machine).
    @ivar ourAddresses: our own addresses besides loopback.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        clock,
        dial: Callable[[Address, Callable[[bool], None]], Any],
        maxPeers: int = 50,
        listenPort: int = 0,
        banned: Optional[Set[Any]] = None,
    ) -> None:
        """
        @param clock: provides C{seconds()}.
        @param dial: C{dial(address, onEnd) -> connector}: start a
            connection; C{onEnd(handshaken)} is called once when it ends,
            successful or not.  The connector has C{disconnect()}.
            C{onEnd(False, retryPlaintext=True)} asks for the same address
            at once with C{dial(address, onEnd, plaintext=True)} (its MSE
            handshake failed; tried once).
        @param maxPeers: connected peers at most.
        @param listenPort: the port we listen on.
        @param banned: keys never dialled (addresses among them).
        """
        self.clock = clock
        self.dial = dial
        self.maxPeers = maxPeers
        self.listenPort = listenPort
        self.ourAddresses: Tuple[str, ...] = ()
        self.banned = banned if banned is not None else set()
        self.candidates: OrderedDict[Address, _Candidate] = OrderedDict()
        self.connecting: Dict[Address, Any] = {}
        self._handshaken: Set[Address] = set()
        #: C{globalRoom()}: connections the session still allows across
        #: its torrents (its global peer limit), or C{None} for no limit.
        self.globalRoom: Optional[Callable[[], int]] = None

    def isSelf(self, address: Address) -> bool:
        """
        Whether C{address} is us: our port on this machine (in any spelling
        of its address).
        """
        host, port = address
        if port != self.listenPort:
            return False
        host = normalizeHost(host)
        return isLocalAddress(host) or host in self.ourAddresses

    def add(self, peers: Iterable[Address]) -> None:
        """
        Remember addresses to dial (ourselves and banned ones excluded).
        """
        for host, port in peers:
            address = (normalizeHost(host), port)
            if self.isSelf(address) or address in self.banned:
                continue
            if address not in self.candidates:
                self.candidates[address] = _Candidate()
                if len(self.candidates) > MAX_CANDIDATES:
                    self._forgetOldest()

    def _forgetOldest(self) -> None:
        for address in self.candidates:
            if address not in self.connecting:
                del self.candidates[address]
                return

    def forget(self, address: Address) -> None:
        """
        Never dial C{address} again (unless it is added again).
        """
        self.candidates.pop(address, None)

    def pending(self) -> int:
        """
        Dials under way that hold a slot (not yet past their handshake).
        """
        return len(self.connecting) - len(self._handshaken)

    def connectMore(self, connected: Set[Address], complete: bool) -> None:
        """
        Dial candidates while slots are free.

        @param connected: the addresses of the connected peers.
        @param complete: we have every piece (seeds are not dialled).
        """
        if not self.candidates:
            return
        now = self.clock.seconds()
        used = len(connected) + self.pending()
        # The session's room is asked for only when there is someone to
        # dial: it counts every torrent's peers, and every torrent ticks.
        room = None
        for address, candidate in list(self.candidates.items()):
            if used >= self.maxPeers:
                return
            if address in self.connecting or address in connected:
                continue
            if candidate.notBefore > now:
                continue
            if complete and candidate.seed:
                continue
            if room is None and self.globalRoom is not None:
                room = self.globalRoom()
            if room is not None and room <= 0:
                return
            self._dial(address)
            used += 1
            if room is not None:
                room -= 1

    def _dial(self, address: Address, plaintext: bool = False) -> None:
        def onEnd(handshaken: bool, retryPlaintext: bool = False) -> None:
            if retryPlaintext and not plaintext and address in self.connecting:
                # Its MSE handshake failed and the policy allows plaintext:
                # once more at once, the slot still held.
                self.log.info(
                    "MSE handshake with {host}:{port} failed: "
                    "connecting again in plaintext",
                    host=address[0],
                    port=address[1],
                )
                self._dial(address, plaintext=True)
                return
            self.ended(address, handshaken)

        self.log.debug("connecting to {host}:{port}", host=address[0], port=address[1])
        if plaintext:
            self.connecting[address] = self.dial(address, onEnd, plaintext=True)
        else:
            self.connecting[address] = self.dial(address, onEnd)

    def handshaken(self, address: Address) -> None:
        """
        A dial got its handshake: the connected peer holds its slot now.
        """
        if address in self.connecting:
            self._handshaken.add(address)

    def ended(self, address: Address, handshaken: bool) -> None:
        """
        A dial ended; after a failure, wait longer each time, and give up
        after L{MAX_FAILURES}.
        """
        self.connecting.pop(address, None)
        self._handshaken.discard(address)
        candidate = self.candidates.get(address)
        if candidate is None:
            return
        if handshaken:
            candidate.failures = 0
            candidate.notBefore = self.clock.seconds() + RETRY_DELAY
            return
        candidate.failures += 1
        if candidate.failures >= MAX_FAILURES:
            self.log.info(
                "giving up on {host}:{port} after {failures} failures",
                host=address[0],
                port=address[1],
                failures=candidate.failures,
            )
            del self.candidates[address]
            return
        delay = RETRY_DELAY * 2 ** (candidate.failures - 1)
        candidate.notBefore = self.clock.seconds() + delay

    def retrySeeds(self) -> None:
        """
        We want pieces again (files became wanted): seeds left when we
        were complete may be dialled at once.
        """
        for candidate in self.candidates.values():
            if candidate.seed:
                candidate.notBefore = 0.0

    def peerLeft(self, address: Address, wasSeed: bool) -> None:
        """
        A connected peer left: remember whether it was a seed.
        """
        candidate = self.candidates.get(address)
        if candidate is not None:
            candidate.seed = wasSeed

    def stop(self) -> None:
        """
        Abandon the dials under way and forget every address.
        """
        for connector in list(self.connecting.values()):
            connector.disconnect()
        self.connecting.clear()
        self._handshaken.clear()
        self.candidates.clear()
