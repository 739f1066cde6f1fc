"""
The HTTP tracker client (BEP 3, BEP 23, BEP 48 scrape) on Twisted's web
client L{Agent}.

Redirects are followed a bounded number of times, gzip bodies are
decompressed (never past the cap: Twisted's own decoder inflates a whole
chunk at once, up to a thousand times its size), the whole request (connect, headers, body) has a deadline and
the body is capped: a tracker that answers with megabytes, or never answers,
costs a bounded amount of memory and time.  Every failure reaches the caller
as a L{TrackerError} naming what went wrong.
"""

from __future__ import annotations

import zlib
from typing import Optional, Sequence

from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    PotentialDataLoss,
    RedirectAgent,
    ResponseDone,
    ResponseFailed,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IResponse
from zope.interface import implementer

from btorrent import __version__
from btorrent.interfaces import ITrackerClient
from btorrent.tracker.announce import (
    AnnounceRequest,
    AnnounceResponse,
    TrackerError,
    TrackerFailure,
    announceURL,
    decodeHTTPResponse,
    decodeScrapeResponse,
    scrapeRequestURL,
    scrapeURL,
)

__all__ = [
    "HTTPTrackerClient",
    "LiteralFirstEndpointFactory",
    "readCappedBody",
    "USER_AGENT",
]

USER_AGENT = f"btorrent/{__version__}".encode("ascii")
log = Logger()


@implementer(IAgentEndpointFactory)
class LiteralFirstEndpointFactory:
    """
    Endpoints for L{Agent} that connect to an IP literal directly.

    Twisted's default resolves every host, IP literals included, through
    C{getaddrinfo} in the reactor's thread pool; during shutdown that pool
    is gone and the C{stopped} announce to C{http://127.0.0.1/...} would fail
    with a DNS error.  Host names still go through L{HostnameEndpoint}.
    """

    def __init__(self, reactor, connectTimeout: float) -> None:
        self.reactor = reactor
        self.connectTimeout = connectTimeout
        self._tls = BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri):
        """
        The endpoint for C{uri} (a L{twisted.web.client.URI}).
        """
        host = uri.host.decode("ascii")
        if isIPAddress(host):
            endpoint = TCP4ClientEndpoint(
                self.reactor, host, uri.port, timeout=self.connectTimeout
            )
        elif isIPv6Address(host):
            endpoint = TCP6ClientEndpoint(
                self.reactor, host, uri.port, timeout=self.connectTimeout
            )
        else:
            endpoint = HostnameEndpoint(
                self.reactor, uri.host, uri.port, timeout=self.connectTimeout
            )
        if uri.scheme == b"https":
            creator = self._tls.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint


class _CappedBodyReader(Protocol):
    """
    Collect a response body, giving up once it grows past C{limit} bytes;
    with C{gzip}, inflate it as it comes, at most C{limit} bytes of output.
    """

    def __init__(self, deferred: defer.Deferred, limit: int, gzip: bool = False):
        self.deferred = deferred
        self.limit = limit
        self.chunks: list = []
        self.size = 0
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None

    def _fail(self, reason: str) -> None:
        self.chunks = []
        self.transport.stopProducing()
        self.deferred.errback(TrackerError(reason))

    def _add(self, data: bytes) -> bool:
        self.size += len(data)
        if self.size > self.limit:
            self._fail(f"response body larger than {self.limit} bytes")
            return False
        self.chunks.append(data)
        return True

    def dataReceived(self, data: bytes) -> None:
        if self.deferred.called:
            return
        if self._inflater is not None:
            try:
                # One byte more than the room left: getting it means the
                # body is too large, whatever input is still unconsumed.
                data = self._inflater.decompress(data, self.limit - self.size + 1)
            except zlib.error as e:
                self._fail(f"bad gzip body: {e}")
                return
        self._add(data)

    def connectionLost(self, reason: Failure = None) -> None:
        if self.deferred.called:
            return
        if not (reason is None or reason.check(ResponseDone, PotentialDataLoss)):
            self.deferred.errback(reason)
            return
        if self._inflater is not None:
            try:
                rest = self._inflater.flush()
            except zlib.error as e:
                self.deferred.errback(TrackerError(f"bad gzip body: {e}"))
                return
            if not self._inflater.eof:
                self.deferred.errback(TrackerError("truncated gzip body"))
                return
            self.size += len(rest)
            if self.size > self.limit:
                self.deferred.errback(
                    TrackerError(f"response body larger than {self.limit} bytes")
                )
                return
            self.chunks.append(rest)
        self.deferred.callback(b"".join(self.chunks))


def readCappedBody(response: IResponse, limit: int) -> defer.Deferred:
    """
    Read a response body of at most C{limit} bytes, inflated if its
    C{Content-Encoding} is gzip.

    @return: a L{Deferred} firing with the body, or failing with
        L{TrackerError} once the body exceeds C{limit} (the connection is
        then dropped) or is not valid gzip.  Cancelling it drops the
        connection.
    """
    protocol: Optional[_CappedBodyReader] = None

    def cancel(d: defer.Deferred) -> None:
        if protocol is not None and protocol.transport is not None:
            protocol.transport.stopProducing()

    encodings = b",".join(
        response.headers.getRawHeaders(b"content-encoding", [])
    ).lower()
    gzip = any(e.strip() in (b"gzip", b"x-gzip") for e in encodings.split(b","))
    d = defer.Deferred(cancel)
    protocol = _CappedBodyReader(d, limit, gzip)
    response.deliverBody(protocol)
    return d


def _describe(failure: Failure, timeout: float) -> str:
    """
    A short, human description of why an HTTP request failed.
    """
    if failure.check(defer.TimeoutError, defer.CancelledError):
        return f"no answer within {timeout:g} s"
    if failure.check(ResponseFailed):
        reasons = failure.value.reasons
        if reasons:
            inner = reasons[0]
            if inner.check(defer.CancelledError):
                return f"no answer within {timeout:g} s"
            return f"response failed: {inner.getErrorMessage()}"
    if failure.check(DNSLookupError, ConnectError):
        return failure.getErrorMessage()
    return f"{failure.type.__name__}: {failure.getErrorMessage()}"


@implementer(ITrackerClient)
class HTTPTrackerClient:
    """
    A client for one HTTP(S) tracker announce URL.

    @ivar url: the announce URL, as C{str}.
    @ivar timeout: seconds allowed for a whole request (connect included).
    @ivar maxBody: the largest response body accepted, in bytes.
    """

    def __init__(
        self,
        url: str,
        reactor,
        agent: Optional[IAgent] = None,
        timeout: float = 30.0,
        maxBody: int = 1 << 20,
        maxRedirects: int = 5,
    ) -> None:
        """
        @param url: an C{http://} or C{https://} announce URL.
        @param reactor: provides C{IReactorTCP} and C{IReactorTime} (and
            C{IReactorSSL} for HTTPS).
        @param agent: the L{IAgent} to send requests through; redirect and
            gzip handling are added (redirects around it, gzip in
            L{readCappedBody}).  By default an L{Agent} on
            C{reactor} with C{timeout} as its connect timeout.
        @raise TrackerError: if C{url} is not an HTTP(S) URL.
        """
        if not url.lower().startswith(("http://", "https://")):
            raise TrackerError(f"not an HTTP tracker URL: {url}")
        self.url = url
        self.reactor = reactor
        self.timeout = timeout
        self.maxBody = maxBody
        if agent is None:
            agent = Agent.usingEndpointFactory(
                reactor, LiteralFirstEndpointFactory(reactor, timeout)
            )
        self.agent = RedirectAgent(agent, redirectLimit=maxRedirects)

    def __repr__(self) -> str:
        return f"<HTTPTrackerClient {self.url}>"

    def _get(self, url: bytes) -> defer.Deferred:
        """
        GET C{url}; fire with C{(status code, body)}.
        """
        headers = Headers({b"User-Agent": [USER_AGENT], b"Accept-Encoding": [b"gzip"]})
        d = self.agent.request(b"GET", url, headers, None)

        def gotResponse(response: IResponse) -> defer.Deferred:
            return readCappedBody(response, self.maxBody).addCallback(
                lambda body: (response.code, body)
            )

        d.addCallback(gotResponse)
        d.addTimeout(self.timeout, self.reactor, onTimeoutCancel=self._timedOut)
        d.addErrback(self._wrapFailure)
        return d

    def _timedOut(self, result, timeout: float):
        """
        The deadline passed and the request was cancelled: whatever the
        cancellation produced, report the deadline.
        """
        raise TrackerError(f"no answer within {timeout:g} s")

    def _wrapFailure(self, failure: Failure) -> Failure:
        if failure.check(TrackerError):
            return failure
        return Failure(TrackerError(_describe(failure, self.timeout)))

    def _decode(self, result, decoder):
        code, body = result
        try:
            return decoder(body)
        except TrackerFailure:
            raise
        except TrackerError:
            if code == 200:
                raise
            raise TrackerError(f"HTTP status {code}") from None

    def announce(self, request: AnnounceRequest) -> defer.Deferred:
        """
        Announce to the tracker.

        @return: a L{Deferred} firing with an L{AnnounceResponse}, or failing
            with L{TrackerError}.
        """
        try:
            url = announceURL(self.url, request)
        except TrackerError as e:
            return defer.fail(e)
        d = self._get(url)
        d.addCallback(self._decode, decodeHTTPResponse)
        d.addCallback(self._gotAnnounce)
        return d

    def _gotAnnounce(self, response: AnnounceResponse) -> AnnounceResponse:
        if response.warning:
            log.warn(
                "Tracker {url} warns: {trackerWarning}",
                url=self.url,
                trackerWarning=response.warning,
            )
        return response

    def scrape(self, infoHashes: Sequence[bytes]) -> defer.Deferred:
        """
        Scrape the tracker (BEP 48) at the URL derived from the announce URL.

        @return: a L{Deferred} firing with a dict mapping info-hashes to
            L{ScrapeStats}, or failing with L{TrackerError} (also when the
            announce URL gives no scrape URL).
        """
        try:
            url = scrapeRequestURL(scrapeURL(self.url), infoHashes)
        except TrackerError as e:
            return defer.fail(e)
        d = self._get(url)
        d.addCallback(self._decode, decodeScrapeResponse)
        return d
