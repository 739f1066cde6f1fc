"""
The UDP tracker client (BEP 15).

One L{UDPTrackerProtocol} listens on one UDP port and serves every UDP
tracker client of the process, the way C{twisted.names} tracks its queries:
each request in flight is a transaction id mapped to its L{Deferred} and its
timeout L{DelayedCall}.  A datagram is accepted only from the address the
request went to, with a live transaction id, the expected action (or the
error action) and a valid length; anything else is dropped and the request
keeps waiting.

A L{UDPTrackerClient} per tracker URL runs the BEP 15 exchange: connect
(the connection id is kept for 60 s and shared by every client of the same
tracker address), then announce or scrape, retransmitting after
C{base * 2 ** n} seconds for C{n} up to C{maxRetries}.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btorrent.interfaces import ITrackerClient
from btorrent.tracker.announce import (
    ACTION_ANNOUNCE,
    ACTION_CONNECT,
    ACTION_ERROR,
    ACTION_SCRAPE,
    UDP_MAX_SCRAPE,
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    TrackerCodecError,
    TrackerError,
    TrackerFailure,
    UDPAnnounceRequest,
    UDPAnnounceResponse,
    UDPConnectRequest,
    UDPConnectResponse,
    UDPErrorResponse,
    UDPScrapeRequest,
    UDPScrapeResponse,
    decodeUDPResponse,
    encodeUDPRequest,
    peekUDPResponse,
)
from btorrent.util import logs

__all__ = [
    "CONNECTION_ID_LIFETIME",
    "UDPTrackerProtocol",
    "UDPTrackerClient",
    "sharedProtocol",
    "stopSharedProtocols",
]

#: Seconds a connection id may be used after the connect response (BEP 15).
CONNECTION_ID_LIFETIME = 60.0

log = Logger(observer=logs.observer)

Address = Tuple[str, int]


class _Timeout(Exception):
    """
    One transmission of a request got no answer in time (internal).
    """


@dataclass
class _Transaction:
    """
    A request in flight: where it went, what answer it expects, who waits.
    """

    address: Address
    action: int
    v6: bool
    validate: Callable[[object, int], bool]
    deferred: defer.Deferred
    timeout: IDelayedCall


def _normaliseAddress(address: Tuple) -> Address:
    """
    C{(host, port)} with C{host} in canonical form (for IPv6 datagrams the
    sender address also carries flow info and scope id).
    """
    host, port = address[0], address[1]
    try:
        host = str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    return (host, port)


def _validLength(action: int, size: int, v6: bool) -> bool:
    """
    Whether a response of C{size} bytes has a valid length for C{action}:
    a connect response is 16 bytes, an announce response 20 bytes and whole
    6-byte (IPv4) or 18-byte (IPv6) peers.
    """
    if action == ACTION_CONNECT:
        return size == 16
    if action == ACTION_ANNOUNCE:
        return size >= 20 and (size - 20) % (18 if v6 else 6) == 0
    return True


class UDPTrackerProtocol(DatagramProtocol):
    """
    One UDP socket shared by every UDP tracker client.

    @ivar connections: tracker address mapped to C{(connection id, time
        received)}.
    """

    def __init__(self, clock, rng: Optional[random.Random] = None) -> None:
        """
        @param clock: provides C{IReactorTime}.
        @param rng: a source of transaction ids (default: C{SystemRandom}).
        """
        self.clock = clock
        self.rng = rng if rng is not None else random.SystemRandom()
        self.transactions: Dict[int, _Transaction] = {}
        self.connections: Dict[Address, Tuple[int, float]] = {}
        self.clients: Dict[str, UDPTrackerClient] = {}

    def newTransactionId(self) -> int:
        """
        A random 32-bit transaction id not in use.
        """
        while True:
            tid = self.rng.getrandbits(32)
            if tid not in self.transactions:
                return tid

    def connectionId(self, address: Address) -> Optional[int]:
        """
        The connection id for C{address} if it is younger than
        L{CONNECTION_ID_LIFETIME}, else C{None}.
        """
        entry = self.connections.get(address)
        if entry is None:
            return None
        cid, when = entry
        if self.clock.seconds() - when >= CONNECTION_ID_LIFETIME:
            del self.connections[address]
            return None
        return cid

    def send(
        self,
        address: Address,
        packet: bytes,
        transactionId: int,
        action: int,
        timeout: float,
        validate: Callable[[object, int], bool] = lambda message, size: True,
        v6: bool = False,
    ) -> defer.Deferred:
        """
        Send one request and wait for its answer.

        @param transactionId: the id in C{packet}; must not be in flight.
        @param action: the action the answer must carry (or the error
            action).
        @param timeout: seconds to wait.
        @param validate: a further check of the decoded answer and its size
            in bytes (e.g. the number of scrape entries); an answer failing
            it is dropped.
        @return: a L{Deferred} firing with the decoded answer, failing with
            L{TrackerFailure} for an error answer, or with C{_Timeout}.
            Cancelling it forgets the transaction.
        """
        if transactionId in self.transactions:
            raise ValueError(f"transaction {transactionId} already in flight")

        def cancel(d: defer.Deferred) -> None:
            self._forget(transactionId)

        d = defer.Deferred(cancel)
        call = self.clock.callLater(timeout, self._timedOut, transactionId)
        self.transactions[transactionId] = _Transaction(
            _normaliseAddress(address), action, v6, validate, d, call
        )
        if self.transport is None:
            self._forget(transactionId)
            return defer.fail(TrackerError("the UDP tracker port is not listening"))
        try:
            self.transport.write(packet, address)
        except (OSError, ValueError) as e:
            # ValueError: Twisted's InvalidAddressError, e.g. an IPv6 address
            # given to an IPv4 socket.
            self._forget(transactionId)
            return defer.fail(TrackerError(f"cannot send to {address}: {e}"))
        return d

    def _forget(self, transactionId: int) -> Optional[_Transaction]:
        tx = self.transactions.pop(transactionId, None)
        if tx is not None and tx.timeout.active():
            tx.timeout.cancel()
        return tx

    def _timedOut(self, transactionId: int) -> None:
        tx = self.transactions.pop(transactionId, None)
        if tx is not None:
            tx.deferred.errback(_Timeout())

    def datagramReceived(self, data: bytes, addr) -> None:
        """
        Match an answer to its transaction, or drop it.
        """
        try:
            action, transactionId = peekUDPResponse(data)
        except TrackerCodecError:
            log.debug("Dropped a short datagram from {addr}", addr=addr)
            return
        tx = self.transactions.get(transactionId)
        if tx is None:
            log.debug(
                "Dropped a datagram with unknown transaction {tid} from {addr}",
                tid=transactionId,
                addr=addr,
            )
            return
        if _normaliseAddress(addr) != tx.address:
            log.debug(
                "Dropped a datagram from {addr}, expected {expected}",
                addr=addr,
                expected=tx.address,
            )
            return
        if action != tx.action and action != ACTION_ERROR:
            log.debug(
                "Dropped a datagram with action {action} from {addr}",
                action=action,
                addr=addr,
            )
            return
        try:
            message = decodeUDPResponse(data, v6=tx.v6)
        except TrackerCodecError as e:
            log.debug("Dropped a bad datagram from {addr}: {e}", addr=addr, e=e)
            return
        if action != ACTION_ERROR and not (
            _validLength(action, len(data), tx.v6) and tx.validate(message, len(data))
        ):
            log.debug("Dropped a datagram of a bad length from {addr}", addr=addr)
            return
        self._forget(transactionId)
        if isinstance(message, UDPErrorResponse):
            tx.deferred.errback(TrackerFailure(message.message))
        else:
            tx.deferred.callback(message)

    def clientFor(self, url: str, **kwargs) -> UDPTrackerClient:
        """
        The client for C{url} using this protocol, made on first use.
        """
        client = self.clients.get(url)
        if client is None:
            client = UDPTrackerClient(url, self.clock, protocol=self, **kwargs)
        return client

    def stop(self) -> defer.Deferred:
        """
        Fail every request in flight and stop listening.
        """
        for tid in list(self.transactions):
            tx = self._forget(tid)
            tx.deferred.errback(TrackerError("the UDP tracker port was closed"))
        port = self.transport
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening)


_shared: Dict[Tuple[object, bool], UDPTrackerProtocol] = {}


def sharedProtocol(
    reactor, v6: bool = False, interface: Optional[str] = None
) -> UDPTrackerProtocol:
    """
    The process-wide protocol for C{reactor} and address family, listening
    on an ephemeral port once first asked for.

    @param interface: the address to bind when the port is opened; by
        default every IPv4 (or, for C{v6}, IPv6) address.
    """
    key = (reactor, v6)
    protocol = _shared.get(key)
    if protocol is None or protocol.transport is None:
        protocol = UDPTrackerProtocol(reactor)
        if interface is None:
            interface = "::" if v6 else ""
        reactor.listenUDP(0, protocol, interface=interface)
        _shared[key] = protocol
    return protocol


def stopSharedProtocols(reactor) -> defer.Deferred:
    """
    Stop the process-wide protocols of C{reactor} (for a clean shutdown or
    the end of a test).
    """
    ds = []
    for key in [k for k in _shared if k[0] is reactor]:
        ds.append(_shared.pop(key).stop())
    return defer.gatherResults(ds)


def _isV6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


@implementer(ITrackerClient)
class UDPTrackerClient:
    """
    A client for one C{udp://host:port} tracker.

    @ivar url: the announce URL, as C{str}.
    @ivar retransmitBase: seconds before the first retransmission; the
        n-th waits C{retransmitBase * 2 ** n}.
    @ivar maxRetries: the largest C{n}: C{maxRetries + 1} transmissions of
        each packet in all before giving up.
    """

    def __init__(
        self,
        url: str,
        reactor,
        retransmitBase: float = 15.0,
        maxRetries: int = 8,
        protocol=None,
    ) -> None:
        """
        @param url: a C{udp://host:port[/path]} URL.
        @param reactor: provides C{IReactorTime}, and C{IReactorUDP} and
            C{IReactorCore} (C{resolve}) when C{protocol} is not given or
            the host is a name.
        @param protocol: the L{UDPTrackerProtocol} to send through, or a
            function of C{v6} (whether the tracker's address is IPv6)
            returning one or raising L{TrackerError}; by default the
            process-wide one of the address family (L{sharedProtocol}).
        @raise TrackerError: if C{url} is not a usable UDP tracker URL.
        """
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme.lower() != "udp" or not parts.hostname or not port:
            raise TrackerError(f"not a UDP tracker URL: {url}")
        self.url = url
        self.host = parts.hostname
        self.port = port
        self.reactor = reactor
        self.retransmitBase = retransmitBase
        self.maxRetries = maxRetries
        self._protocol = protocol
        if isinstance(protocol, UDPTrackerProtocol):
            protocol.clients.setdefault(url, self)

    def __repr__(self) -> str:
        return f"<UDPTrackerClient {self.url}>"

    def _resolve(self) -> defer.Deferred:
        """
        Fire with C{(protocol, (ip, port), v6)}.
        """
        try:
            ipaddress.ip_address(self.host)
            d = defer.succeed(self.host)
        except ValueError:
            d = self.reactor.resolve(self.host)

        def resolved(ip: str):
            v6 = _isV6(ip)
            protocol = self._protocol
            if protocol is None:
                protocol = sharedProtocol(self.reactor, v6)
            elif not isinstance(protocol, UDPTrackerProtocol):
                protocol = protocol(v6)
            return protocol, _normaliseAddress((ip, self.port)), v6

        def failed(f: Failure):
            if f.check(TrackerError, defer.CancelledError):
                return f
            raise TrackerError(f"cannot resolve {self.host}: {f.getErrorMessage()}")

        return d.addCallbacks(resolved, failed)

    def _exchange(
        self,
        build: Callable[[int, int], bytes],
        action: int,
        validate: Callable[[object, int], bool],
    ) -> defer.Deferred:
        """
        Connect if needed, then send the packet C{build(connectionId,
        transactionId)} until an answer comes or the retries run out.

        An error answer to a request sent with a connection id we had
        before this exchange began (kept from an earlier one) may mean the
        tracker no longer knows that id (it restarted, or its ids expire
        sooner than 60 s): the id is dropped and the exchange starts once
        more with a connect.  An error answer to a fresh id is final.
        """
        state = {"current": None, "cancelled": False, "fresh": False}

        def cancel(d: defer.Deferred) -> None:
            state["cancelled"] = True
            if state["current"] is not None:
                state["current"].cancel()

        result = defer.Deferred(cancel)

        def fail(reason) -> None:
            if not result.called:
                result.errback(reason)

        def attempt(protocol, address, v6, n: int, previous=None) -> None:
            """
            Transmission number C{n}; C{previous} is C{(connection id or
            None, transaction id)} of the transmission it repeats, whose
            transaction id is reused when the packet is the same, so that a
            late answer to it still counts.
            """
            if state["cancelled"]:
                return
            timeout = self.retransmitBase * 2**n
            cid = protocol.connectionId(address)
            if (
                previous is not None
                and previous[0] == cid
                and previous[1] not in protocol.transactions
            ):
                tid = previous[1]
            else:
                tid = protocol.newTransactionId()
            if cid is None:
                packet = encodeUDPRequest(UDPConnectRequest(tid))
                d = protocol.send(
                    address,
                    packet,
                    tid,
                    ACTION_CONNECT,
                    timeout,
                    lambda m, size: isinstance(m, UDPConnectResponse),
                    v6,
                )

                def connected(message: UDPConnectResponse) -> None:
                    protocol.connections[address] = (
                        message.connectionId,
                        protocol.clock.seconds(),
                    )
                    state["fresh"] = True
                    attempt(protocol, address, v6, n)

                d.addCallback(connected)
            else:
                try:
                    packet = build(cid, tid)
                except TrackerError as e:
                    fail(e)
                    return
                d = protocol.send(address, packet, tid, action, timeout, validate, v6)
                d.addCallback(lambda message: result.callback(message))
            state["current"] = d

            def retry(f: Failure) -> None:
                if f.check(_Timeout):
                    if n < self.maxRetries:
                        attempt(protocol, address, v6, n + 1, (cid, tid))
                    else:
                        fail(
                            TrackerError(f"no answer after {self.maxRetries + 1} tries")
                        )
                elif f.check(defer.CancelledError):
                    pass
                else:
                    if f.check(TrackerFailure) and cid is not None:
                        # The connection id may be the problem: forget it,
                        # and if it was not fresh, connect and ask again.
                        if protocol.connections.get(address, (None,))[0] == cid:
                            del protocol.connections[address]
                        if not state["fresh"]:
                            state["fresh"] = True
                            log.info(
                                "{url} refused a kept connection id ({reason});"
                                " connecting again",
                                url=self.url,
                                reason=f.getErrorMessage(),
                            )
                            attempt(protocol, address, v6, n)
                            return
                    fail(f)

            d.addErrback(retry)

        def resolved(args) -> None:
            protocol, address, v6 = args
            attempt(protocol, address, v6, 0)

        d = self._resolve()
        state["current"] = d
        d.addCallbacks(resolved, fail)
        return result

    def announce(self, request: AnnounceRequest) -> defer.Deferred:
        """
        Announce to the tracker.

        @return: a L{Deferred} firing with an L{AnnounceResponse} (C{interval},
            C{complete}, C{incomplete}, C{peers}), or failing with
            L{TrackerError}.
        """
        request = AnnounceRequest(**{**request.__dict__, "trackerId": None})

        def build(cid: int, tid: int) -> bytes:
            return encodeUDPRequest(UDPAnnounceRequest(cid, tid, request))

        d = self._exchange(
            build,
            ACTION_ANNOUNCE,
            lambda m, size: isinstance(m, UDPAnnounceResponse),
        )

        def done(message: UDPAnnounceResponse) -> AnnounceResponse:
            return message.response

        return d.addCallback(done)

    def scrape(self, infoHashes: Sequence[bytes]) -> defer.Deferred:
        """
        Scrape the tracker, in batches of at most 74 info-hashes.

        @return: a L{Deferred} firing with a dict mapping each info-hash to
            its L{ScrapeStats}, or failing with L{TrackerError}.
        """
        hashes = list(infoHashes)
        batches = [
            hashes[i : i + UDP_MAX_SCRAPE]
            for i in range(0, len(hashes), UDP_MAX_SCRAPE)
        ] or [[]]
        ds = [self._scrapeBatch(batch) for batch in batches]
        d = defer.gatherResults(ds, consumeErrors=True)

        def merged(results: List[Dict[bytes, ScrapeStats]]):
            out: Dict[bytes, ScrapeStats] = {}
            for r in results:
                out.update(r)
            return out

        def unwrap(f: Failure) -> Failure:
            if f.check(defer.FirstError):
                return f.value.subFailure
            return f

        return d.addCallbacks(merged, unwrap)

    def _scrapeBatch(self, batch: List[bytes]) -> defer.Deferred:
        def build(cid: int, tid: int) -> bytes:
            return encodeUDPRequest(UDPScrapeRequest(cid, tid, tuple(batch)))

        def valid(m, size: int) -> bool:
            return isinstance(m, UDPScrapeResponse) and size == 8 + 12 * len(batch)

        d = self._exchange(build, ACTION_SCRAPE, valid)
        return d.addCallback(lambda m: dict(zip(batch, m.stats)))
