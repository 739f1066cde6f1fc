"""
The HTTP tracker client (BEP 3, BEP 23, BEP 48 scrape) on Twisted's web
client L{Agent}.

Redirects are followed a bounded number of times, gzip bodies are
decompressed (never past the cap: Twisted's own decoder inflates a whole
chunk at once, up to a thousand times its size), the whole request
(connect, headers, body) has a deadline, the body is capped, and so are the
response headers (Twisted's parser takes any number of them; a wrapper in
front of it counts bytes and lines until the end of the headers): a tracker
that answers with megabytes, or never answers, costs a bounded amount of
memory and time.  Every failure reaches the caller as a L{TrackerError}
naming what went wrong, except that cancelling a request (the announcer does
when it stops) fails it with L{defer.CancelledError}: no tracker failed.
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
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
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
    MAX_ERROR_TEXT,
    AnnounceRequest,
    AnnounceResponse,
    TrackerError,
    TrackerFailure,
    announceURL,
    decodeHTTPResponse,
    decodeScrapeResponse,
    scrapeRequestURL,
    scrapeURL,
    trackerText,
)
from btorrent.util import logs

__all__ = [
    "HTTPTrackerClient",
    "HeaderLimitedEndpointFactory",
    "LiteralFirstEndpointFactory",
    "MAX_HEADER_BYTES",
    "MAX_HEADERS",
    "MAX_INTERIM_RESPONSES",
    "readCappedBody",
    "USER_AGENT",
]

USER_AGENT = f"btorrent/{__version__}".encode("ascii")
#: The most bytes of response head (status lines and headers, of any
#: interim 1xx responses too) taken from a tracker.
MAX_HEADER_BYTES = 64 * 1024
#: The most header lines taken from a tracker (Apache's default for
#: requests, C{LimitRequestFields}).
MAX_HEADERS = 100
#: The most interim (1xx) responses taken before the response.
MAX_INTERIM_RESPONSES = 5
log = Logger(observer=logs.observer)


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


class _HeadLimit(Protocol):
    """
    Stands between a connection and the HTTP client protocol, passing bytes
    on, and counts the bytes and header lines of the response head until
    its blank line (going on through at most L{MAX_INTERIM_RESPONSES}
    interim 1xx responses, which Twisted's parser skips); past C{maxBytes}
    or C{maxLines} the connection is aborted and the client protocol told
    why.  After the head, bytes pass uncounted: the body has its own cap
    (L{readCappedBody}).

    The client protocol gets the real transport, so that it writes and
    closes as usual.
    """

    def __init__(self, wrapped: Protocol, maxBytes: int, maxLines: int) -> None:
        self.wrapped = wrapped
        self.maxBytes = maxBytes
        self.maxLines = maxLines
        self._counting = True
        self._bytes = 0
        self._lines = 0
        # The current line: its first 16 bytes and its length so far; the
        # status line of the current head; whether the next line is one.
        self._line = b""
        self._lineLength = 0
        self._status = b""
        self._statusNext = True
        self._interim = 0
        self._refusal: Optional[str] = None

    def makeConnection(self, transport) -> None:
        """
        Connect, and connect the client protocol to the same transport.
        """
        super().makeConnection(transport)
        self.wrapped.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        """
        Count the head and pass everything on, or refuse.
        """
        if self._refusal is not None:
            return
        if self._counting:
            self._counting = not self._headEnds(data)
            if self._refusal is not None:
                self.transport.abortConnection()
                return
        self.wrapped.dataReceived(data)

    def _refuse(self, reason: str) -> bool:
        self._refusal = reason
        return False

    def _headEnds(self, data: bytes) -> bool:
        """
        Count C{data} as head; return whether the head ends in it.  Sets
        C{_refusal} past a limit.
        """
        start = 0
        while True:
            newline = data.find(b"\n", start)
            stop = len(data) if newline < 0 else newline
            self._bytes += stop - start + (newline >= 0)
            if self._bytes > self.maxBytes:
                return self._refuse(
                    f"response headers larger than {self.maxBytes} bytes"
                )
            if len(self._line) < 16:
                self._line += data[start : min(stop, start + 16 - len(self._line))]
            self._lineLength += stop - start
            if newline < 0:
                return False
            line, length = self._line, self._lineLength
            self._line, self._lineLength = b"", 0
            start = newline + 1
            if self._statusNext:
                self._status = line
                self._statusNext = False
            elif length == 0 or (length == 1 and line == b"\r"):
                # The blank line: the end of this head.  An interim 1xx
                # response is followed by another head (and a log line from
                # Twisted's parser, hence a cap on their number).
                if not _isInterim(self._status):
                    return True
                self._interim += 1
                if self._interim > MAX_INTERIM_RESPONSES:
                    return self._refuse(
                        f"more than {MAX_INTERIM_RESPONSES} interim responses"
                    )
                self._statusNext = True
            else:
                self._lines += 1
                if self._lines > self.maxLines:
                    return self._refuse(f"more than {self.maxLines} response headers")

    def connectionLost(self, reason: Failure = None) -> None:
        """
        Tell the client protocol; if we cut the connection, say why.
        """
        if self._refusal is not None:
            reason = Failure(TrackerError(self._refusal))
        self.wrapped.connectionLost(reason)


def _isInterim(statusLine: bytes) -> bool:
    """
    Whether a status line (its first 16 bytes) is of a 1xx response.
    """
    parts = statusLine.split(None, 2)
    return len(parts) >= 2 and len(parts[1]) == 3 and parts[1][:1] == b"1"


class _HeadLimitFactory(Factory):
    """
    Builds the client protocol of C{factory} behind a L{_HeadLimit}.
    """

    def __init__(self, factory, maxBytes: int, maxLines: int) -> None:
        self.factory = factory
        self.maxBytes = maxBytes
        self.maxLines = maxLines

    def doStart(self) -> None:
        self.factory.doStart()

    def doStop(self) -> None:
        self.factory.doStop()

    def buildProtocol(self, addr) -> Optional[_HeadLimit]:
        wrapped = self.factory.buildProtocol(addr)
        if wrapped is None:
            return None
        return _HeadLimit(wrapped, self.maxBytes, self.maxLines)


@implementer(IStreamClientEndpoint)
class _HeadLimitedEndpoint:
    """
    An endpoint whose connections go through L{_HeadLimit}; C{connect}
    fires with the client protocol itself, as L{Agent} expects.
    """

    def __init__(self, endpoint, maxBytes: int, maxLines: int) -> None:
        self.endpoint = endpoint
        self.maxBytes = maxBytes
        self.maxLines = maxLines

    def connect(self, factory) -> defer.Deferred:
        d = self.endpoint.connect(
            _HeadLimitFactory(factory, self.maxBytes, self.maxLines)
        )
        return d.addCallback(lambda limit: limit.wrapped)


@implementer(IAgentEndpointFactory)
class HeaderLimitedEndpointFactory:
    """
    Endpoints of another L{IAgentEndpointFactory} whose responses may have
    at most C{maxBytes} bytes of head and C{maxHeaders} header lines:
    Twisted's client parser has no limit of its own (only 16 KiB a line),
    and a tracker could stream headers for as long as the deadline lasts
    (333 MB in 10 s on loopback, +534 MB of memory).  A response over a
    limit fails with L{TrackerError} saying which, at once.
    """

    def __init__(
        self,
        endpointFactory,
        maxBytes: int = MAX_HEADER_BYTES,
        maxHeaders: int = MAX_HEADERS,
    ) -> None:
        self.endpointFactory = endpointFactory
        self.maxBytes = maxBytes
        self.maxHeaders = maxHeaders

    def endpointForURI(self, uri):
        """
        The endpoint for C{uri} (a L{twisted.web.client.URI}).
        """
        return _HeadLimitedEndpoint(
            self.endpointFactory.endpointForURI(uri), self.maxBytes, self.maxHeaders
        )


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
            if inner.check(TrackerError):
                return inner.getErrorMessage()
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
        maxHeaderBytes: int = MAX_HEADER_BYTES,
        maxHeaders: int = MAX_HEADERS,
    ) -> None:
        """
        @param url: an C{http://} or C{https://} announce URL.
        @param reactor: provides C{IReactorTCP} and C{IReactorTime} (and
            C{IReactorSSL} for HTTPS).
        @param agent: the L{IAgent} to send requests through; redirect and
            gzip handling are added (redirects around it, gzip in
            L{readCappedBody}).  By default an L{Agent} on
            C{reactor} with C{timeout} as its connect timeout and the
            header limits (L{HeaderLimitedEndpointFactory}).
        @param maxHeaderBytes: the most bytes of response head, per
            response (redirects included); used by the default agent only.
        @param maxHeaders: the most response header lines, likewise.
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
                reactor,
                HeaderLimitedEndpointFactory(
                    LiteralFirstEndpointFactory(reactor, timeout),
                    maxHeaderBytes,
                    maxHeaders,
                ),
            )
        self.agent = RedirectAgent(agent, redirectLimit=maxRedirects)

    def __repr__(self) -> str:
        return f"<HTTPTrackerClient {self.url}>"

    def _get(self, url: bytes) -> defer.Deferred:
        """
        GET C{url}; fire with C{(status code, body)}, or fail with
        L{TrackerError}, or, once cancelled, with L{defer.CancelledError}.

        Cancelling the request itself fails it with whatever stage it was
        at (C{ConnectingCancelledError}, C{ResponseNeverReceived}, ...),
        which must not read as a tracker failing: the L{Deferred} returned
        has a canceller of its own that remembers the cancellation.
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
        cancelled = []

        def cancel(result: defer.Deferred) -> None:
            cancelled.append(True)
            d.cancel()

        result = defer.Deferred(cancel)

        def deliver(outcome):
            if result.called:
                # Cancelled, and the request took a while to stop: done.
                return None
            if cancelled and isinstance(outcome, Failure):
                outcome = Failure(defer.CancelledError())
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)
            return None

        d.addBoth(deliver)
        return result

    def _timedOut(self, result, timeout: float):
        """
        The deadline passed and the request was cancelled: whatever the
        cancellation produced, report the deadline.
        """
        raise TrackerError(f"no answer within {timeout:g} s")

    def _wrapFailure(self, failure: Failure) -> Failure:
        if failure.check(TrackerError):
            return failure
        # Twisted's parse errors quote the tracker's line (up to 16 KiB).
        description = _describe(failure, self.timeout)
        return Failure(TrackerError(trackerText(description, MAX_ERROR_TEXT)))

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
            L{ScrapeStats} (only those asked for: a tracker may send
            thousands), or failing with L{TrackerError} (also when the
            announce URL gives no scrape URL).
        """
        try:
            url = scrapeRequestURL(scrapeURL(self.url), infoHashes)
        except TrackerError as e:
            return defer.fail(e)
        wanted = set(infoHashes)
        d = self._get(url)
        d.addCallback(self._decode, decodeScrapeResponse)
        d.addCallback(lambda files: {h: s for h, s in files.items() if h in wanted})
        return d
