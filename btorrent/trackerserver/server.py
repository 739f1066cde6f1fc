"""
The tracker server: HTTP announce, scrape and statistics as a
L{twisted.web} resource tree, UDP announce, scrape and connect (BEP 15) as a
L{DatagramProtocol}, and the service that expires peers and keeps download
counts in a state file.  Swarm state is L{btorrent.trackerserver.swarm.Swarm};
wire formats are L{btorrent.tracker.announce}.

Choices, in one place:
  - HTTP: the peer's address is the connection's source address.  The C{ip}
    parameter (and the UDP C{IP address} field) is honoured only when the
    request comes from a loopback address and names an IP literal: a client
    on the tracker's own machine may say which address others should use,
    nobody else can put another host into a swarm.  (Do not put this
    tracker behind a reverse proxy on the same machine: every request would
    come from loopback.)
  - HTTP: compact peers (BEP 23, IPv6 in C{peers6}, BEP 7) unless the client
    sends C{compact=0}; then the dictionary model with C{peer id} unless it
    sends C{no_peer_id=1}.  C{left} is required (counts depend on it).
  - HTTP scrape (BEP 48) needs at least one C{info_hash} (no full scrape)
    and takes at most L{MAX_SCRAPE_HASHES}.
  - Every refusal is a C{failure reason} with HTTP status 200, which is what
    clients read.
  - HTTP connections are bounded in time and number (L{TrackerSite}): a
    client has L{DEFAULT_REQUEST_TIMEOUT} seconds to send a whole request
    after connecting or after its previous answer, however steadily it
    trickles bytes (slowloris), and at most L{DEFAULT_MAX_CONNECTIONS} are
    open at once, L{DEFAULT_MAX_CONNECTIONS_PER_HOST} from one address;
    beyond that a new connection is closed at once, so that one host cannot
    use up the descriptors or the slots every other client needs.
  - UDP: datagrams that are not a BEP 15 request (short, garbage, connect
    without the protocol id) get no answer.  A request with a wrong or
    expired connection id gets an error packet (C{"bad connection id"}, 25
    bytes) only when that is no larger than the request, otherwise nothing:
    an unconnected source can never get more bytes back than it sent (the
    connect reply is 16 bytes for a 16-byte request).  A malformed request
    with a good connection id gets an error packet.
  - UDP connection ids are an HMAC of the client's IP address and the
    current minute under a random secret (L{ConnectionIds}): nothing is
    stored per connect, an id is valid 120 to 180 s after it is issued, for
    that IP (any port).
  - Swarm policy (expiry after two intervals, download counting, the
    C{key} needed to move a peer id to another address, caps, the bounded
    archive of download counts of swarms with no peer) is in
    L{btorrent.trackerserver.swarm}.
  - The state file holds what L{Swarm.downloadCounts} gives, so it is
    bounded by the caps on swarms and archived counts.
"""

from __future__ import annotations

import io
import ipaddress
import json
from typing import Dict, List, Mapping, Optional, Tuple

from twisted.application.service import Service
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web import pages
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from btorrent.codec import bencode
from btorrent.engine.storage import writeFileAtomically
from btorrent.tracker import announce as codec
from btorrent.trackerserver.swarm import (
    AnnounceResult,
    ConnectionIds,
    Swarm,
    SwarmError,
    normaliseHost,
)
from btorrent.util import logs

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_CONNECTIONS_PER_HOST",
    "DEFAULT_REQUEST_TIMEOUT",
    "MAX_REQUEST_BODY",
    "NOT_READING",
    "TOO_SLOW",
    "MAX_SCRAPE_HASHES",
    "AnnounceResource",
    "ScrapeResource",
    "StateFileError",
    "StatsResource",
    "SwarmService",
    "TrackerChannel",
    "TrackerResource",
    "TrackerSite",
    "UDPTrackerProtocol",
    "encodeCompactResponse",
    "encodeDictionaryResponse",
    "encodeUDPAnnounceResponse",
    "loadState",
    "peerAddress",
    "readAllowFile",
    "saveState",
]

#: The most bytes of request body a connection may send (announces and
#: scrapes have none; what comes is discarded, and past this the connection
#: is closed).
MAX_REQUEST_BODY = 64 * 1024
#: The most info-hashes one HTTP scrape may ask for.
MAX_SCRAPE_HASHES = 100
#: The UDP error for a wrong or expired connection id.
BAD_CONNECTION_ID = "bad connection id"
#: Seconds a client has to send a whole request (nginx gives 60 to the
#: headers, C{client_header_timeout}; an announce is one short line).
DEFAULT_REQUEST_TIMEOUT = 30.0
#: The most HTTP connections open at once, and from one address (a big NAT
#: or a seedbox: libtorrent makes at most 50 HTTP announces at once).
DEFAULT_MAX_CONNECTIONS = 4096
DEFAULT_MAX_CONNECTIONS_PER_HOST = 128
#: Why a connection is dropped (L{TrackerSite.dropped} counts by these).
TOO_SLOW = "sent no whole request in time"
NOT_READING = "did not read its answers"
#: Seconds between two reports of connections refused or dropped.
_REPORT_INTERVAL = 60.0

log = Logger(observer=logs.observer)


def _isLoopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(normaliseHost(host)).is_loopback
    except ValueError:
        return False


def peerAddress(source: str, claimed: Optional[str]) -> str:
    """
    The address to record for a peer: C{claimed} (the C{ip} parameter) when
    C{source} is loopback and C{claimed} is an IP literal, else C{source}.

    @raise SwarmError: when the source address is not an IP address.
    """
    if claimed is not None and _isLoopback(source):
        try:
            return normaliseHost(claimed)
        except ValueError:
            pass
    try:
        return normaliseHost(source)
    except ValueError:
        raise SwarmError("invalid source address") from None


def encodeDictionaryResponse(result: AnnounceResult, noPeerId: bool) -> bytes:
    """
    Bencode an announce response in the original dictionary model (BEP 3):
    C{peers} is a list of C{ip}, C{port} and (unless C{noPeerId}) C{peer id}.
    IPv6 peers are in the same list.

    L{btorrent.tracker.announce.encodeHTTPResponse} has no peer ids (its
    L{AnnounceResponse} holds addresses only), hence this server-side
    encoder.
    """
    peers = []
    for p in result.peers:
        entry = {b"ip": p.host.encode("ascii"), b"port": p.port}
        if not noPeerId:
            entry[b"peer id"] = p.peerId
        peers.append(entry)
    return bencode.encode(
        {
            b"interval": result.interval,
            b"min interval": result.minInterval,
            b"complete": result.complete,
            b"incomplete": result.incomplete,
            b"peers": peers,
        }
    )


def encodeCompactResponse(result: AnnounceResult) -> bytes:
    """
    Bencode an announce response with compact peers: IPv4 in C{peers}
    (BEP 23), IPv6 in C{peers6} (BEP 7).

    The same dictionary as L{btorrent.tracker.announce.encodeHTTPResponse}
    builds, but from each peer's compact form cached in the swarm (encoded
    once by the codec's C{encodeCompactPeers}): the codec parses every
    address with L{ipaddress} on every response, which made it 90% of the
    cost of an announce.
    """
    v4 = [p.compact for p in result.peers if len(p.compact) == 6]
    v6 = [p.compact for p in result.peers if len(p.compact) == 18]
    body = {
        b"interval": result.interval,
        b"min interval": result.minInterval,
        b"complete": result.complete,
        b"incomplete": result.incomplete,
        b"peers": b"".join(v4),
    }
    if v6:
        body[b"peers6"] = b"".join(v6)
    return bencode.encode(body)


def encodeUDPAnnounceResponse(
    transactionId: int, result: AnnounceResult, v6: bool
) -> bytes:
    """
    A BEP 15 announce response: the header from
    L{btorrent.tracker.announce.encodeUDPResponse}, then the cached compact
    form of each peer of the request's address family (6 bytes over IPv4,
    18 over IPv6).
    """
    header = codec.encodeUDPResponse(
        codec.UDPAnnounceResponse(
            transactionId,
            codec.AnnounceResponse(
                interval=result.interval,
                complete=result.complete,
                incomplete=result.incomplete,
            ),
        ),
        v6=v6,
    )
    size = 18 if v6 else 6
    return header + b"".join(p.compact for p in result.peers if len(p.compact) == size)


def _query(request) -> bytes:
    return request.uri.partition(b"?")[2]


def _sourceHost(request) -> Optional[str]:
    return getattr(request.getClientAddress(), "host", None)


class _GetOnly(Resource):
    """
    A leaf that answers GET (and HEAD) only; other methods get 405.
    """

    isLeaf = True

    def render(self, request):
        """
        Dispatch GET and HEAD; answer anything else with 405.
        """
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            request.setHeader(b"content-type", b"text/plain")
            return codec.encodeFailure("method not allowed")
        return super().render(request)


class _BencodedResource(_GetOnly):
    """
    A leaf answering GET with a bencoded body.
    """

    def __init__(self, swarm: Swarm) -> None:
        super().__init__()
        self.swarm = swarm

    def _reply(self, request, body: bytes) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"cache-control", b"no-cache")
        return body

    def _fail(self, request, reason: str) -> bytes:
        return self._reply(request, codec.encodeFailure(reason))


class AnnounceResource(_BencodedResource):
    """
    C{/announce}: BEP 3 announces with BEP 23 compact and BEP 7 C{peers6}.
    """

    def render_GET(self, request) -> bytes:
        """
        Record the announce; answer with peers or a C{failure reason}.
        """
        try:
            # twisted.web has split and percent-decoded the query already
            # (as codec.parseQuery would: "+" is a space, blanks kept).
            args = request.args
            announce = codec.announceRequestFromArgs(args)
            if not args.get(b"left"):
                raise SwarmError("missing left")
            source = _sourceHost(request)
            if source is None:
                raise SwarmError("invalid source address")
            host = peerAddress(source, announce.ip)
            result = self.swarm.announce(
                announce.infoHash,
                announce.peerId,
                host,
                announce.port,
                announce.left,
                announce.event,
                announce.numwant,
                announce.key,
            )
        except (codec.TrackerError, SwarmError) as e:
            return self._fail(request, str(e))
        compact = args.get(b"compact", [b"1"])[0] != b"0"
        if not compact:
            noPeerId = args.get(b"no_peer_id", [b"0"])[0] == b"1"
            return self._reply(request, encodeDictionaryResponse(result, noPeerId))
        return self._reply(request, encodeCompactResponse(result))


class ScrapeResource(_BencodedResource):
    """
    C{/scrape}: BEP 48 scrape of the info-hashes asked for.
    """

    def render_GET(self, request) -> bytes:
        """
        Answer with the counts of each info-hash asked for.
        """
        try:
            hashes = codec.parseScrapeQuery(_query(request))
        except codec.TrackerError as e:
            return self._fail(request, str(e))
        if not hashes:
            return self._fail(request, "scrape requires info_hash")
        if len(hashes) > MAX_SCRAPE_HASHES:
            return self._fail(
                request, f"at most {MAX_SCRAPE_HASHES} info_hash per scrape"
            )
        files = {h: codec.ScrapeStats(*self.swarm.scrape(h)) for h in hashes}
        return self._reply(request, codec.encodeScrapeResponse(files))


class StatsResource(_GetOnly):
    """
    C{/stats}: totals as JSON.
    """

    def __init__(self, swarm: Swarm) -> None:
        super().__init__()
        self.swarm = swarm

    def render_GET(self, request) -> bytes:
        """
        Torrents (swarms with peers), archived download counts (swarms
        with none), peers, seeders, leechers, downloads and announces per
        second over the last minute.
        """
        stats = self.swarm.stats()
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-cache")
        body = {
            "torrents": stats.torrents,
            "archived": stats.archived,
            "peers": stats.peers,
            "seeders": stats.seeders,
            "leechers": stats.leechers,
            "downloaded": stats.downloaded,
            "announcesPerSecond": round(self.swarm.announces.perSecond(), 3),
        }
        return json.dumps(body, sort_keys=True).encode("ascii") + b"\n"


class TrackerResource(Resource):
    """
    The root: C{/announce}, C{/scrape} and C{/stats}; anything else is 404.
    """

    def __init__(self, swarm: Swarm) -> None:
        super().__init__()
        self.swarm = swarm
        self.putChild(b"announce", AnnounceResource(swarm))
        self.putChild(b"scrape", ScrapeResource(swarm))
        self.putChild(b"stats", StatsResource(swarm))

    def getChild(self, path: bytes, request):
        """
        Anything but the three children: 404.
        """
        return pages.notFound()


class BodilessRequest(Request):
    """
    A request whose body is never stored: announce, scrape and C{/stats}
    take none.  (A plain L{Request} writes any body to memory or, past 100
    KB, to a temporary file, however large the client says it is.)  A
    connection sending more than L{MAX_REQUEST_BODY} bytes of body is
    closed.
    """

    _bodySize = 0
    _refused = False

    def gotLength(self, length: Optional[int]) -> None:
        """
        The headers are in: keep an empty body, and close the connection
        at once when the declared length is over the limit.
        """
        self.content = io.BytesIO()
        if length is not None and length > MAX_REQUEST_BODY:
            self._tooLarge()

    def handleContentChunk(self, data: bytes) -> None:
        """
        Count and discard a piece of the body.
        """
        self._bodySize += len(data)
        if self._bodySize > MAX_REQUEST_BODY:
            self._tooLarge()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """
        Answer the request, unless its body was refused.
        """
        if not self._refused:
            super().requestReceived(command, path, version)

    def _tooLarge(self) -> None:
        if self._refused:
            return
        self._refused = True
        log.info(
            "Closing a connection from {client}: request body over {limit} bytes",
            client=_sourceHost(self),
            limit=MAX_REQUEST_BODY,
        )
        self.channel.loseConnection()


def _ignore(*args) -> None:
    """
    Do nothing.
    """


class TrackerChannel(HTTPChannel):
    """
    An HTTP channel with a deadline on each request: from the connection
    (or the end of the previous answer) to the last byte of the request,
    headers and any body, at most the site's C{requestTimeout} seconds,
    however the bytes trickle in.  Twisted's own timeout is an idle timeout,
    reset by every byte: a client sending one byte every 5 s was never
    dropped.

    A client whose answers back up (the transport's buffer is full: it
    pipelines requests and does not read) is dropped too: Twisted answers
    every request already read before it stops reading, and 64 KiB of
    pipelined announces made 380 KiB of answers wait in memory, per
    connection.  No tracker client pipelines.

    It tells its L{TrackerSite} when it closes.
    """

    _deadline = None
    _dropped = False
    _host: Optional[str] = None

    def connectionMade(self) -> None:
        """
        Start the deadline of the first request.
        """
        super().connectionMade()
        self._startDeadline()

    def _startDeadline(self) -> None:
        self._cancelDeadline()
        self._deadline = self.callLater(self.site.requestTimeout, self._tooSlow)

    def _cancelDeadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _tooSlow(self) -> None:
        self._deadline = None
        self._drop(TOO_SLOW)

    def _drop(self, reason: str) -> None:
        if self._dropped:
            return
        self._dropped = True
        self._cancelDeadline()
        self.site.connectionDropped(reason)
        self.transport.abortConnection()
        # Read no more, not even the requests already buffered (Twisted
        # does the same after a request that closes the connection).
        self.dataReceived = self.lineReceived = self.rawDataReceived = _ignore

    def timeoutConnection(self) -> None:
        """
        Twisted's idle timeout (no byte for the site's C{timeout}): drop the
        connection as too slow, without Twisted's log line per connection
        (an attacker's connections would each write one).
        """
        self._drop(TOO_SLOW)

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: the client does not read its
        answers.  Drop it.
        """
        super().pauseProducing()
        self._drop(NOT_READING)

    def allContentReceived(self) -> None:
        """
        The request is in: no deadline while it is answered.
        """
        self._cancelDeadline()
        super().allContentReceived()

    def requestDone(self, request) -> None:
        """
        The answer is written: the next request on a persistent connection
        has its own deadline (started first, as the next request may be
        read, and answered, within this call).
        """
        if self.persistent:
            self._startDeadline()
        super().requestDone(request)

    def connectionLost(self, reason) -> None:
        """
        Drop the deadline and tell the site.
        """
        self._cancelDeadline()
        super().connectionLost(reason)
        self.site.channelClosed(self._host)


class TrackerSite(Site):
    """
    A L{Site} that writes no access log line per request unless asked
    (announces are many and carry nothing worth keeping), times idle
    connections out after 30 s, never stores a request body
    (L{BodilessRequest}), gives each request a deadline
    (L{TrackerChannel}) and bounds the connections open at once, in all and
    from one address: past a bound a new connection is closed at once.  Log
    lines say how many connections were refused or dropped, at most once a
    minute.

    @ivar openConnections: connections open now.
    @ivar refused: connections refused so far.
    @ivar dropped: connections dropped so far, by reason (L{TOO_SLOW},
        L{NOT_READING}).
    """

    requestFactory = BodilessRequest
    protocol = TrackerChannel

    def __init__(
        self,
        resource,
        accessLog: bool = False,
        requestTimeout: float = DEFAULT_REQUEST_TIMEOUT,
        maxConnections: int = DEFAULT_MAX_CONNECTIONS,
        maxConnectionsPerHost: int = DEFAULT_MAX_CONNECTIONS_PER_HOST,
        **kwargs,
    ) -> None:
        """
        @param requestTimeout: seconds a client has to send a whole request.
        @param maxConnections: the most connections open at once.
        @param maxConnectionsPerHost: the most from one IP address.
        @param kwargs: for L{Site} (C{reactor}, C{timeout}: the idle
            timeout, 30 s by default).
        """
        kwargs.setdefault("timeout", 30)
        super().__init__(resource, **kwargs)
        self.accessLog = accessLog
        self.requestTimeout = requestTimeout
        self.maxConnections = maxConnections
        self.maxConnectionsPerHost = maxConnectionsPerHost
        self.openConnections = 0
        self.refused = 0
        self.dropped: Dict[str, int] = {}
        self._perHost: Dict[str, int] = {}
        self._refusedSinceLog = 0
        self._droppedSinceLog: Dict[str, int] = {}
        self._lastReport: Optional[float] = None

    def buildProtocol(self, addr):
        """
        A L{TrackerChannel}, or C{None} (the connection is closed) when
        there are C{maxConnections} open, or C{maxConnectionsPerHost} from
        the same address.
        """
        host = getattr(addr, "host", None)
        if self.openConnections >= self.maxConnections or (
            host is not None
            and self._perHost.get(host, 0) >= self.maxConnectionsPerHost
        ):
            self._refuse()
            return None
        channel = super().buildProtocol(addr)
        channel._host = host
        self.openConnections += 1
        if host is not None:
            self._perHost[host] = self._perHost.get(host, 0) + 1
        return channel

    def _refuse(self) -> None:
        self.refused += 1
        self._refusedSinceLog += 1
        self._report()

    def _report(self) -> None:
        """
        Log the connections refused and dropped since the last report, at
        most once a minute: an attacker gets no log line per connection.
        """
        now = self.reactor.seconds()
        if self._lastReport is not None and now - self._lastReport < _REPORT_INTERVAL:
            return
        self._lastReport = now
        if self._refusedSinceLog:
            log.warn(
                "Refused {count} HTTP connections: {open} open, at most "
                "{limit} ({perHost} from one address)",
                count=self._refusedSinceLog,
                open=self.openConnections,
                limit=self.maxConnections,
                perHost=self.maxConnectionsPerHost,
            )
        for reason, count in sorted(self._droppedSinceLog.items()):
            log.info(
                "Dropped {count} HTTP connections that {reason}",
                count=count,
                reason=(
                    f"{reason} ({self.requestTimeout:g} s)"
                    if reason == TOO_SLOW
                    else reason
                ),
            )
        self._refusedSinceLog = 0
        self._droppedSinceLog = {}

    def channelClosed(self, host: Optional[str]) -> None:
        """
        A L{TrackerChannel} from C{host} closed.
        """
        self.openConnections -= 1
        if host is not None:
            left = self._perHost.get(host, 0) - 1
            if left > 0:
                self._perHost[host] = left
            else:
                self._perHost.pop(host, None)

    def connectionDropped(self, reason: str) -> None:
        """
        A L{TrackerChannel} is dropped, for C{reason}.
        """
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self._droppedSinceLog[reason] = self._droppedSinceLog.get(reason, 0) + 1
        self._report()

    def log(self, request) -> None:
        """
        Write the access log line only if C{accessLog}.
        """
        if self.accessLog:
            super().log(request)


class UDPTrackerProtocol(DatagramProtocol):
    """
    BEP 15 over one UDP port: connect, announce and scrape.

    @param swarm: the L{Swarm}.
    @param connectionIds: the L{ConnectionIds} issuing and checking ids.
    """

    def __init__(self, swarm: Swarm, connectionIds: ConnectionIds) -> None:
        self.swarm = swarm
        self.connectionIds = connectionIds

    def _send(self, message, addr, v6: bool) -> None:
        self.transport.write(codec.encodeUDPResponse(message, v6=v6), addr)

    def datagramReceived(self, data: bytes, addr: Tuple) -> None:
        """
        Answer one request, or stay silent (see the module docstring).
        """
        source = addr[0]
        try:
            host = normaliseHost(source)
        except ValueError:
            return
        v6 = ":" in host
        try:
            message = codec.decodeUDPRequest(data)
        except codec.TrackerCodecError:
            self._malformed(data, addr, host, v6)
            return
        if isinstance(message, codec.UDPConnectRequest):
            connectionId = self.connectionIds.make(host)
            self._send(
                codec.UDPConnectResponse(message.transactionId, connectionId),
                addr,
                v6,
            )
            return
        if not self.connectionIds.check(message.connectionId, host):
            self._badConnection(message.transactionId, len(data), addr, v6)
            return
        if isinstance(message, codec.UDPAnnounceRequest):
            self._announce(message, addr, source, v6)
        else:
            stats = tuple(
                codec.ScrapeStats(*self.swarm.scrape(h)) for h in message.infoHashes
            )
            self._send(codec.UDPScrapeResponse(message.transactionId, stats), addr, v6)

    def _malformed(self, data: bytes, addr, host: str, v6: bool) -> None:
        """
        A datagram the codec refused: an error if it carries a good
        connection id, else silence.
        """
        if len(data) < 16:
            return
        connectionId = int.from_bytes(data[:8], "big")
        transactionId = int.from_bytes(data[12:16], "big")
        if self.connectionIds.check(connectionId, host):
            self._send(
                codec.UDPErrorResponse(transactionId, "malformed request"), addr, v6
            )

    def _badConnection(self, transactionId: int, size: int, addr, v6: bool) -> None:
        if 8 + len(BAD_CONNECTION_ID) <= size:
            self._send(
                codec.UDPErrorResponse(transactionId, BAD_CONNECTION_ID), addr, v6
            )

    def _announce(self, message, addr, source: str, v6: bool) -> None:
        r = message.request
        try:
            host = peerAddress(source, r.ip)
            result = self.swarm.announce(
                r.infoHash,
                r.peerId,
                host,
                r.port,
                r.left,
                r.event,
                r.numwant,
                r.key,
            )
        except SwarmError as e:
            self._send(codec.UDPErrorResponse(message.transactionId, str(e)), addr, v6)
            return
        self.transport.write(
            encodeUDPAnnounceResponse(message.transactionId, result, v6), addr
        )


class StateFileError(Exception):
    """
    A state file that cannot be read as one.
    """


def saveState(path: str, counts: Mapping[bytes, int]) -> None:
    """
    Write download counts to C{path} atomically (with
    L{btorrent.engine.storage.writeFileAtomically}: on failure the previous file
    stays as it was).

    The format is JSON: C{{"version": 1, "downloaded": {"<40 hex>": n}}},
    the counts in the order given (L{Swarm.downloadCounts} gives the least
    recently used first, and L{Swarm.restoreDownloadCounts} keeps the last
    ones when there are more than it may hold).
    """
    body = json.dumps(
        {"version": 1, "downloaded": {h.hex(): n for h, n in counts.items()}}
    ).encode("ascii")
    writeFileAtomically(path, body)


def loadState(path: str, maxSize: int = 64 * 1024 * 1024) -> Dict[bytes, int]:
    """
    Read download counts written by L{saveState}.

    @return: info-hash to count, in the file's order; empty if the file
        does not exist.
    @raise StateFileError: for anything that is not such a file.
    """
    try:
        with open(path, "rb") as f:
            body = f.read(maxSize + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise StateFileError(f"cannot read {path}: {e.strerror or e}") from None
    if len(body) > maxSize:
        raise StateFileError(f"{path} is larger than {maxSize} bytes")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise StateFileError(f"{path} is not JSON: {e}") from None
    if not isinstance(value, dict) or value.get("version") != 1:
        raise StateFileError(f"{path} is not a version 1 tracker state file")
    downloaded = value.get("downloaded")
    if not isinstance(downloaded, dict):
        raise StateFileError(f"{path} has no downloaded counts")
    counts = {}
    for key, count in downloaded.items():
        if type(count) is not int or count < 0 or len(key) != 40:
            raise StateFileError(f"{path}: bad entry {key!r}")
        try:
            counts[bytes.fromhex(key)] = count
        except ValueError:
            raise StateFileError(f"{path}: bad info-hash {key!r}") from None
    return counts


class SwarmService(Service):
    """
    Runs the periodic work of a L{Swarm}: the expiry sweep, and saving the
    download counts to a state file (loaded on start, saved periodically
    and on stop).

    @param swarm: the L{Swarm}.
    @param clock: the reactor's time (C{IReactorTime}).
    @param stateFile: a path, or C{None} to keep nothing.
    @param sweepInterval: seconds between expiry sweeps.
    @param saveInterval: seconds between saves.
    """

    def __init__(
        self,
        swarm: Swarm,
        clock,
        stateFile: Optional[str] = None,
        sweepInterval: float = 60.0,
        saveInterval: float = 300.0,
    ) -> None:
        self.swarm = swarm
        self.clock = clock
        self.stateFile = stateFile
        self.sweepInterval = sweepInterval
        self.saveInterval = saveInterval
        self._loops: List[LoopingCall] = []

    def startService(self) -> None:
        """
        Load the state file and start the periodic calls.
        """
        super().startService()
        if self.stateFile is not None:
            try:
                counts = loadState(self.stateFile)
            except StateFileError as e:
                log.warn(
                    "Ignoring the tracker state file: {error}; starting empty",
                    error=str(e),
                )
            else:
                taken = self.swarm.restoreDownloadCounts(counts)
                log.info(
                    "Loaded download counts of {count} torrents from {path}",
                    count=taken,
                    path=self.stateFile,
                )
        self._start(self.sweep, self.sweepInterval)
        if self.stateFile is not None:
            self._start(self.save, self.saveInterval)

    def _start(self, f, interval: float) -> None:
        loop = LoopingCall(f)
        loop.clock = self.clock
        loop.start(interval, now=False).addErrback(
            lambda failure: log.failure("Periodic tracker task failed", failure)
        )
        self._loops.append(loop)

    def sweep(self) -> None:
        """
        Expire silent peers.
        """
        dropped = self.swarm.expire()
        if dropped:
            log.info("Expired {count} silent peers", count=dropped)

    def save(self) -> None:
        """
        Save the download counts now (errors are logged, not raised).
        """
        if self.stateFile is None:
            return
        try:
            saveState(self.stateFile, self.swarm.downloadCounts())
        except OSError as e:
            log.error(
                "Cannot save the tracker state to {path}: {error}",
                path=self.stateFile,
                error=e.strerror or str(e),
            )

    def stopService(self) -> None:
        """
        Stop the periodic calls and save once more.
        """
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        self.save()
        return super().stopService()


def readAllowFile(path: str) -> List[bytes]:
    """
    Read an allow-list: one 40-hex info-hash per line; blank lines and
    lines starting with C{#} are skipped; a C{#} after the hash starts a
    comment.

    @raise OSError: when the file cannot be read.
    @raise ValueError: naming the first bad line (C{"line N: ..."}).
    """
    hashes = []
    with open(path, "rb") as f:
        data = f.read()
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.split(b"#", 1)[0].strip()
        if not line:
            continue
        word = line.split()[0]
        if len(line.split()) != 1 or len(word) != 40:
            raise ValueError(f"line {number}: not a 40-hex info-hash: {raw[:80]!r}")
        try:
            hashes.append(bytes.fromhex(word.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(
                f"line {number}: not a 40-hex info-hash: {raw[:80]!r}"
            ) from None
    return hashes
