"""
Tests for L{btorrent.tracker.http}: the HTTP tracker client against real
loopback web servers started by the tests, and against a memory reactor for
the deadlines.
"""

from __future__ import annotations

import gzip

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import resource, server
from twisted.web.util import Redirect
from zope.interface.verify import verifyObject

from btorrent.interfaces import ITrackerClient
from btorrent.tracker import announce as a
from btorrent.tracker.announce import (
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    TrackerError,
    TrackerFailure,
)
from btorrent.tracker.http import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_INTERIM_RESPONSES,
    HTTPTrackerClient,
    _CappedBodyReader,
)

HASH = bytes(range(20))
PEER_ID = b"-BT0100-" + bytes(range(240, 252))


def request(**kw) -> AnnounceRequest:
    fields = dict(
        infoHash=HASH,
        peerId=PEER_ID,
        port=6881,
        uploaded=0,
        downloaded=0,
        left=100,
        event="started",
    )
    fields.update(kw)
    return AnnounceRequest(**fields)


class Canned(resource.Resource):
    """
    Answers every GET with fixed bytes and records the request URIs.
    """

    isLeaf = True

    def __init__(self, body: bytes, code: int = 200, gzipped: bool = False) -> None:
        super().__init__()
        self.body = body
        self.code = code
        self.gzipped = gzipped
        self.uris: list = []

    def render_GET(self, request) -> bytes:
        self.uris.append(request.uri)
        request.setResponseCode(self.code)
        if self.gzipped:
            request.setHeader(b"Content-Encoding", b"gzip")
            return gzip.compress(self.body)
        return self.body


class Silent(Protocol):
    """
    Accepts a connection and never answers.
    """

    instances: list = []

    def connectionMade(self) -> None:
        Silent.instances.append(self)


class LoopbackTestCase(TestCase):
    """
    Start web servers on 127.0.0.1 and stop them afterwards.
    """

    def serve(self, root: resource.Resource) -> str:
        """
        Serve C{root} on a free loopback port; return the base URL.
        """
        port = reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}"

    def client(self, url: str, **kw) -> HTTPTrackerClient:
        return HTTPTrackerClient(url, reactor, **kw)


class AnnounceTests(LoopbackTestCase):
    """
    Announces over real loopback HTTP.
    """

    def test_interface(self) -> None:
        """
        L{HTTPTrackerClient} provides L{ITrackerClient}.
        """
        verifyObject(ITrackerClient, self.client("http://127.0.0.1:1/announce"))

    def test_badScheme(self) -> None:
        """
        Only HTTP(S) URLs are accepted.
        """
        self.assertRaises(TrackerError, HTTPTrackerClient, "udp://x:1", reactor)

    @defer.inlineCallbacks
    def test_compactPeers(self):
        """
        The request reaches the tracker percent-encoded, with the announce
        URL's own query kept; compact IPv4 and IPv6 peers come back.
        """
        response = AnnounceResponse(
            interval=1800,
            minInterval=900,
            peers=(("10.0.0.1", 6881), ("2001:db8::2", 51413)),
            complete=1,
            incomplete=2,
            trackerId=b"T",
        )
        tracker = Canned(a.encodeHTTPResponse(response))
        base = self.serve(tracker)
        result = yield self.client(base + "/announce?passkey=x%2Fy").announce(request())
        self.assertEqual(result, response)
        [uri] = tracker.uris
        self.assertTrue(uri.startswith(b"/announce?passkey=x%2Fy&info_hash="))
        self.assertIn(b"info_hash=%00%01%02%03%04%05%06%07%08%09%0A%0B%0C", uri)
        self.assertIn(b"peer_id=-BT0100-%F0%F1%F2%F3%F4%F5%F6%F7%F8%F9%FA%FB", uri)
        self.assertEqual(a.parseAnnounceQuery(uri.split(b"?", 1)[1]), request())

    @defer.inlineCallbacks
    def test_dictionaryPeers(self):
        """
        The original dictionary model of peers is understood.
        """
        response = AnnounceResponse(interval=60, peers=(("10.0.0.1", 1),))
        base = self.serve(Canned(a.encodeHTTPResponse(response, compact=False)))
        result = yield self.client(base + "/announce").announce(request())
        self.assertEqual(result, response)

    @defer.inlineCallbacks
    def test_gzip(self):
        """
        A gzip-encoded body is decompressed.
        """
        response = AnnounceResponse(interval=60, peers=(("10.0.0.1", 1),))
        base = self.serve(Canned(a.encodeHTTPResponse(response), gzipped=True))
        result = yield self.client(base + "/announce").announce(request())
        self.assertEqual(result, response)

    @defer.inlineCallbacks
    def test_redirect(self):
        """
        Redirects are followed, a bounded number of times.
        """
        response = AnnounceResponse(interval=60)
        root = resource.Resource()
        root.putChild(b"real", Canned(a.encodeHTTPResponse(response)))
        base = self.serve(root)
        root.putChild(b"announce", Redirect((base + "/real").encode()))
        root.putChild(b"loop", Redirect((base + "/loop").encode()))
        result = yield self.client(base + "/announce").announce(request())
        self.assertEqual(result, response)
        e = yield self.assertFailure(
            self.client(base + "/loop", maxRedirects=2).announce(request()),
            TrackerError,
        )
        self.assertIn("redirect", str(e).lower())

    @defer.inlineCallbacks
    def test_failureReason(self):
        """
        A C{failure reason} fails with L{TrackerFailure} carrying the
        tracker's words, even with an error status.
        """
        for code in (200, 400):
            base = self.serve(Canned(a.encodeFailure("not authorized"), code=code))
            e = yield self.assertFailure(
                self.client(base + "/announce").announce(request()), TrackerFailure
            )
            self.assertEqual(e.reason, "not authorized")

    @defer.inlineCallbacks
    def test_warning(self):
        """
        A C{warning message} is logged and the response still used.
        """
        events: list = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        base = self.serve(
            Canned(a.encodeHTTPResponse(AnnounceResponse(interval=60, warning="slow")))
        )
        result = yield self.client(base + "/announce").announce(request())
        self.assertEqual(result.warning, "slow")
        self.assertTrue(
            [e for e in events if e.get("trackerWarning") == "slow" and "url" in e]
        )

    @defer.inlineCallbacks
    def test_garbage(self):
        """
        A body that is no tracker response fails with L{TrackerError}; an
        error status without a failure reason names the status.
        """
        base = self.serve(Canned(b"<html>hello</html>"))
        yield self.assertFailure(
            self.client(base + "/announce").announce(request()), TrackerError
        )
        base = self.serve(Canned(b"<html>missing</html>", code=404))
        e = yield self.assertFailure(
            self.client(base + "/announce").announce(request()), TrackerError
        )
        self.assertIn("404", str(e))

    @defer.inlineCallbacks
    def test_oversizedBody(self):
        """
        A body over C{maxBody} fails the request instead of being read whole.
        """
        body = a.encodeHTTPResponse(
            AnnounceResponse(interval=60, peers=(("10.0.0.1", 1),) * 20000)
        )
        self.assertGreater(len(body), 100000)
        base = self.serve(Canned(body))
        e = yield self.assertFailure(
            self.client(base + "/announce", maxBody=4096).announce(request()),
            TrackerError,
        )
        self.assertIn("larger than 4096", str(e))
        # The same body within the cap is fine (its first peers are read).
        result = yield self.client(base + "/announce").announce(request())
        self.assertEqual(len(result.peers), a.MAX_RESPONSE_PEERS)

    @defer.inlineCallbacks
    def test_oversizedGzipBody(self):
        """
        The cap applies to the decompressed body (no gzip bombs).
        """
        body = a.encodeHTTPResponse(AnnounceResponse(interval=60, warning="x" * 200000))
        base = self.serve(Canned(body, gzipped=True))
        yield self.assertFailure(
            self.client(base + "/announce", maxBody=10000).announce(request()),
            TrackerError,
        )

    @defer.inlineCallbacks
    def test_neverAnswers(self):
        """
        A tracker that accepts the connection and never answers fails the
        request after the timeout, and the connection is dropped.
        """
        Silent.instances = []
        port = reactor.listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/announce"
        e = yield self.assertFailure(
            self.client(url, timeout=0.2).announce(request()), TrackerError
        )
        self.assertIn("no answer within 0.2 s", str(e))
        self.assertEqual(len(Silent.instances), 1)
        # Let the server side see the close so that the reactor is clean.
        for _ in range(20):
            if not Silent.instances[0].transport.connected:
                break
            yield deferLater(0.01)
        self.assertFalse(Silent.instances[0].transport.connected)

    @defer.inlineCallbacks
    def test_refused(self):
        """
        A closed port fails with L{TrackerError}.
        """
        port = reactor.listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")
        number = port.getHost().port
        yield port.stopListening()
        e = yield self.assertFailure(
            self.client(f"http://127.0.0.1:{number}/announce").announce(request()),
            TrackerError,
        )
        self.assertIn("refused", str(e).lower())


class EndlessHeaders(Protocol):
    """
    Answers a request with a status line and then header lines, as fast as
    the client reads them, until the connection goes; counts what it sent.
    """

    instances: list = []

    def connectionMade(self) -> None:
        EndlessHeaders.instances.append(self)
        self.sent = 0
        self.closed = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        if not self.sent:
            self.sent = 17
            self.transport.write(b"HTTP/1.1 200 OK\r\n")
            self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        chunk = b"".join(
            b"X-Junk-%d: %s\r\n" % (self.sent + i, b"j" * 1000) for i in range(16)
        )
        self.sent += len(chunk)
        self.transport.write(chunk)

    def stopProducing(self) -> None:
        pass

    def connectionLost(self, reason=None) -> None:
        self.closed.callback(self.sent)


class HeaderLimitLoopbackTests(LoopbackTestCase):
    """
    A real server streaming headers forever: the client stops reading at
    the limit and fails at once, not at the deadline.
    """

    @defer.inlineCallbacks
    def test_endlessHeaders(self):
        """
        The request fails with the limit's error well before its 30 s
        deadline, and the server sees the connection close.
        """
        EndlessHeaders.instances = []
        port = reactor.listenTCP(
            0, Factory.forProtocol(EndlessHeaders), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/announce"
        started = reactor.seconds()
        e = yield self.assertFailure(self.client(url).announce(request()), TrackerError)
        elapsed = reactor.seconds() - started
        self.assertEqual(
            str(e), f"response headers larger than {MAX_HEADER_BYTES} bytes"
        )
        self.assertLess(elapsed, 5)
        [server] = EndlessHeaders.instances
        sent = yield server.closed
        # What the server got written before the close: what we read, and
        # what the kernel's buffers held.  Unbounded before (30 MB in 10 s).
        self.assertLess(sent, 16 * (1 << 20))


class HeaderLimitTests(SynchronousTestCase):
    """
    The response head limits, on a memory reactor, fed whole and byte by
    byte.
    """

    def connect(self, **kw):
        clock = MemoryReactorClock()
        client = HTTPTrackerClient("http://127.0.0.1:9/announce", clock, **kw)
        d = client.announce(request())
        protocol = clock.tcpClients[0][2].buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return d, protocol, transport

    def response(self, headers: int = 0, interim: int = 0, body: bytes = b"") -> bytes:
        body = body or a.encodeHTTPResponse(AnnounceResponse(interval=60))
        head = b"HTTP/1.1 100 Continue\r\n\r\n" * interim
        head += b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
        head += b"".join(b"X-%d: v\r\n" % i for i in range(headers))
        return head + b"\r\n" + body

    def feed(self, protocol, transport, data: bytes, step: int) -> None:
        for i in range(0, len(data), step):
            if transport.disconnecting:
                break
            protocol.dataReceived(data[i : i + step])

    def test_withinLimits(self) -> None:
        """
        A response with the most headers and interim responses allowed
        (one header line being C{Content-Length}) is read, whole or byte by
        byte (a CR LF split between reads included), with a body whose
        lines are not counted.
        """
        body = a.encodeHTTPResponse(AnnounceResponse(interval=60, warning="\r\n" * 149))
        data = self.response(
            headers=MAX_HEADERS - 1, interim=MAX_INTERIM_RESPONSES, body=body
        )
        for step in (len(data), 1, 7):
            d, protocol, transport = self.connect()
            self.feed(protocol, transport, data, step)
            self.assertEqual(self.successResultOf(d).interval, 60)

    def refused(self, data: bytes, step: int, **kw) -> str:
        d, protocol, transport = self.connect(**kw)
        self.feed(protocol, transport, data, step)
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(d)
        from twisted.internet.error import ConnectionAborted
        from twisted.python.failure import Failure

        protocol.connectionLost(Failure(ConnectionAborted()))
        return str(self.failureResultOf(d, TrackerError).value)

    def test_tooManyHeaders(self) -> None:
        """
        One header line more than allowed fails the request; interim
        responses' headers count too.
        """
        data = self.response(headers=MAX_HEADERS)
        for step in (len(data), 1):
            self.assertEqual(
                self.refused(data, step), f"more than {MAX_HEADERS} response headers"
            )
        self.assertEqual(
            self.refused(self.response(headers=3), 1, maxHeaders=3),
            "more than 3 response headers",
        )
        interim = b"HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n"
        self.assertEqual(
            self.refused(interim * 3 + self.response(), 5, maxHeaders=3),
            "more than 3 response headers",
        )

    def test_tooManyBytes(self) -> None:
        """
        Endless header bytes are cut at the limit: what was taken in is the
        limit and one read at most.
        """
        line = b"X-Long: " + b"x" * 8000 + b"\r\n"
        data = b"HTTP/1.1 200 OK\r\n" + line * 100
        for step in (4096, 1):
            d, protocol, transport = self.connect()
            fed = 0
            while not transport.disconnecting:
                protocol.dataReceived(data[fed : fed + step])
                fed += step
            self.assertLessEqual(fed, MAX_HEADER_BYTES + step)
            self.assertGreater(fed, MAX_HEADER_BYTES)
        self.assertEqual(
            self.refused(data, 1000, maxHeaderBytes=5000),
            "response headers larger than 5000 bytes",
        )

    def test_tooManyInterim(self) -> None:
        """
        Endless interim responses are refused after a few.
        """
        data = b"HTTP/1.1 100 Continue\r\n\r\n" * 1000
        for step in (len(data), 1):
            self.assertEqual(
                self.refused(data, step),
                f"more than {MAX_INTERIM_RESPONSES} interim responses",
            )


class CancelTests(SynchronousTestCase):
    """
    Cancelling a request (the announcer does when it stops) fails it with
    L{defer.CancelledError}, whatever stage it was at: no tracker failed.
    A deadline passing is still a L{TrackerError}.
    """

    def test_cancelWhileConnecting(self) -> None:
        """
        While connecting (Twisted says C{ConnectingCancelledError}).
        """
        clock = MemoryReactorClock()
        client = HTTPTrackerClient("http://127.0.0.1:9/announce", clock)
        for call in (client.announce, lambda r: client.scrape([HASH])):
            d = call(request())
            d.cancel()
            self.failureResultOf(d, defer.CancelledError)

    def test_cancelWhileWaiting(self) -> None:
        """
        Connected, waiting for the answer, or reading the body: the
        connection is closed.
        """
        for answer in (b"", b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nd"):
            clock = MemoryReactorClock()
            client = HTTPTrackerClient("http://127.0.0.1:9/announce", clock)
            d = client.announce(request())
            protocol = clock.tcpClients[0][2].buildProtocol(None)
            transport = StringTransport()
            protocol.makeConnection(transport)
            protocol.dataReceived(answer)
            d.cancel()
            self.failureResultOf(d, defer.CancelledError)
            # Closed (stopProducing closes a real connection).
            self.assertTrue(
                transport.disconnecting or transport.producerState == "stopped"
            )
            self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancelAfterAnswer(self) -> None:
        """
        Cancelling an answered request changes nothing.
        """
        clock = MemoryReactorClock()
        client = HTTPTrackerClient("http://127.0.0.1:9/announce", clock)
        d = client.announce(request())
        protocol = clock.tcpClients[0][2].buildProtocol(None)
        protocol.makeConnection(StringTransport())
        body = a.encodeHTTPResponse(AnnounceResponse(interval=61))
        protocol.dataReceived(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        d.cancel()
        self.assertEqual(self.successResultOf(d).interval, 61)

    def test_deadlineIsNoCancel(self) -> None:
        """
        The request's own deadline is a tracker failing.
        """
        clock = MemoryReactorClock()
        client = HTTPTrackerClient("http://127.0.0.1:9/announce", clock, timeout=5)
        d = client.announce(request())
        clock.advance(5)
        e = self.failureResultOf(d, TrackerError)
        self.assertIn("no answer within 5 s", e.getErrorMessage())


def deferLater(seconds: float) -> defer.Deferred:
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)


class ScrapeTests(LoopbackTestCase):
    """
    HTTP scrape (BEP 48).
    """

    @defer.inlineCallbacks
    def test_scrape(self):
        """
        The scrape URL is derived from the announce URL; figures come back
        per info-hash.
        """
        other = b"\xee" * 20
        files = {HASH: ScrapeStats(1, 2, 3), other: ScrapeStats(4, 5, 6)}
        tracker = Canned(a.encodeScrapeResponse(files))
        root = resource.Resource()
        root.putChild(b"scrape.php", tracker)
        base = self.serve(root)
        result = yield self.client(base + "/announce.php?pk=1").scrape([HASH, other])
        self.assertEqual(result, files)
        [uri] = tracker.uris
        self.assertEqual(a.parseScrapeQuery(uri.split(b"?", 1)[1]), [HASH, other])
        self.assertIn(b"pk=1", uri)

    @defer.inlineCallbacks
    def test_onlyAskedFor(self):
        """
        Figures of info-hashes not asked for (a tracker may send thousands)
        are not kept.
        """
        files = {bytes([i]) * 20: ScrapeStats(i, i, i) for i in range(1, 200)}
        files[HASH] = ScrapeStats(1, 2, 3)
        root = resource.Resource()
        root.putChild(b"scrape", Canned(a.encodeScrapeResponse(files)))
        base = self.serve(root)
        result = yield self.client(base + "/announce").scrape([HASH])
        self.assertEqual(result, {HASH: ScrapeStats(1, 2, 3)})

    @defer.inlineCallbacks
    def test_unsupported(self):
        """
        Without C{announce} as the last path component, scrape fails at once.
        """
        e = yield self.assertFailure(
            self.client("http://127.0.0.1:1/tracker").scrape([HASH]), TrackerError
        )
        self.assertIn("scrape is not supported", str(e))

    @defer.inlineCallbacks
    def test_failure(self):
        """
        A failure reason from a scrape fails with L{TrackerFailure}.
        """
        root = resource.Resource()
        root.putChild(b"scrape", Canned(a.encodeFailure("no scrape here")))
        base = self.serve(root)
        e = yield self.assertFailure(
            self.client(base + "/announce").scrape([HASH]), TrackerFailure
        )
        self.assertEqual(e.reason, "no scrape here")


class CappedBodyTests(SynchronousTestCase):
    """
    The body reader caps what it keeps, inflated bytes included.
    """

    def reader(self, limit: int, gzipped: bool = True):
        d = defer.Deferred()
        reader = _CappedBodyReader(d, limit, gzipped)
        transport = StringTransport()
        reader.makeConnection(transport)
        return d, reader, transport

    def test_gzipBombInOneChunk(self):
        """
        One 64 KiB chunk that inflates to 64 MiB: the reader stops at the
        cap and keeps nothing (Twisted's decoder would inflate it whole).
        """
        bomb = gzip.compress(bytes(64 << 20))
        self.assertLess(len(bomb), 100 << 10)
        d, reader, transport = self.reader(1 << 20)
        reader.dataReceived(bomb)
        e = self.failureResultOf(d, TrackerError)
        self.assertIn("larger than 1048576", e.getErrorMessage())
        self.assertEqual(reader.chunks, [])
        self.assertLessEqual(reader.size, (1 << 20) + 1)
        self.assertEqual(transport.producerState, "stopped")

    def test_gzipByteByByte(self):
        """
        A gzip body fed one byte at a time inflates to the same bytes.
        """
        body = bytes(range(256)) * 40
        d, reader, _ = self.reader(len(body))
        for byte in gzip.compress(body):
            reader.dataReceived(bytes([byte]))
        reader.connectionLost(None)
        self.assertEqual(self.successResultOf(d), body)

    def test_badGzip(self):
        """
        Garbage or a truncated gzip body is a L{TrackerError}.
        """
        d, reader, _ = self.reader(1000)
        reader.dataReceived(b"not gzip at all")
        self.assertIn(
            "bad gzip", self.failureResultOf(d, TrackerError).getErrorMessage()
        )
        d, reader, _ = self.reader(1000)
        reader.dataReceived(gzip.compress(b"x" * 500)[:-10])
        reader.connectionLost(None)
        self.assertIn(
            "truncated", self.failureResultOf(d, TrackerError).getErrorMessage()
        )

    def test_identity(self):
        """
        Without gzip the bytes are kept as they come, up to the cap.
        """
        d, reader, _ = self.reader(10, gzipped=False)
        reader.dataReceived(b"12345")
        reader.dataReceived(b"67890")
        reader.connectionLost(None)
        self.assertEqual(self.successResultOf(d), b"1234567890")
        d, reader, _ = self.reader(10, gzipped=False)
        reader.dataReceived(b"12345678901")
        self.failureResultOf(d, TrackerError)


class DeadlineTests(SynchronousTestCase):
    """
    Deadlines on a memory reactor: no real time passes.
    """

    def test_connectTimeout(self) -> None:
        """
        A connection that never completes fails after C{timeout}.
        """
        clock = MemoryReactorClock()
        client = HTTPTrackerClient("http://127.0.0.1:9/announce", clock, timeout=10)
        d = client.announce(request())
        self.assertEqual(len(clock.tcpClients), 1)
        self.assertNoResult(d)
        clock.advance(9.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        e = self.failureResultOf(d, TrackerError)
        self.assertIn("10 s", e.getErrorMessage())

    def test_responseTimeout(self) -> None:
        """
        A connection that is made but never answered fails after C{timeout}
        and is closed.
        """
        clock = MemoryReactorClock()
        client = HTTPTrackerClient("http://127.0.0.1:9/announce", clock, timeout=10)
        d = client.announce(request())
        host, port, factory, timeout, bind = clock.tcpClients[0]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertTrue(transport.value().startswith(b"GET /announce?info_hash="))
        clock.advance(5)
        self.assertNoResult(d)
        clock.advance(5)
        self.failureResultOf(d, TrackerError)
        self.assertTrue(transport.disconnecting)

    def test_slowBodyTimeout(self) -> None:
        """
        Headers that arrive but a body that never finishes still hit the
        deadline.
        """
        clock = MemoryReactorClock()
        client = HTTPTrackerClient("http://127.0.0.1:9/announce", clock, timeout=10)
        d = client.announce(request())
        factory = clock.tcpClients[0][2]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nd8:interval"
        )
        clock.advance(11)
        self.failureResultOf(d, TrackerError)


class LiteralFirstEndpointFactoryTests(SynchronousTestCase):
    """
    IP literals are connected to directly, never through the resolver (whose
    thread pool is gone while the reactor shuts down and C{stopped} is sent).
    """

    def endpoint(self, url: bytes):
        from twisted.web.client import URI

        from btorrent.tracker.http import LiteralFirstEndpointFactory

        factory = LiteralFirstEndpointFactory(MemoryReactorClock(), 7.0)
        return factory.endpointForURI(URI.fromBytes(url))

    def test_ipv4Literal(self) -> None:
        """
        An IPv4 literal gets a plain TCP4 endpoint: a request connects at once,
        without name resolution.
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint

        class NoResolver:
            """
            A name resolver that must not be used.
            """

            def resolveHostName(self, *args, **kwargs):
                raise AssertionError("an IP literal was resolved")

        reactor = MemoryReactorClock()
        reactor.nameResolver = NoResolver()
        client = HTTPTrackerClient("http://127.0.0.1:6969/announce", reactor)
        client.announce(request())
        self.assertEqual(reactor.tcpClients[0][:2], ("127.0.0.1", 6969))
        self.assertIsInstance(
            self.endpoint(b"http://127.0.0.1:6969/announce"), TCP4ClientEndpoint
        )

    def test_ipv6Literal(self) -> None:
        """
        An IPv6 literal gets a TCP6 endpoint.
        """
        from twisted.internet.endpoints import TCP6ClientEndpoint

        self.assertIsInstance(
            self.endpoint(b"http://[::1]:6969/announce"), TCP6ClientEndpoint
        )

    def test_hostName(self) -> None:
        """
        A host name goes through L{HostnameEndpoint}.
        """
        from twisted.internet.endpoints import HostnameEndpoint

        self.assertIsInstance(
            self.endpoint(b"http://tracker.example/announce"), HostnameEndpoint
        )

    def test_https(self) -> None:
        """
        HTTPS wraps the TCP endpoint in TLS.
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint

        endpoint = self.endpoint(b"https://127.0.0.1:443/announce")
        self.assertNotIsInstance(endpoint, TCP4ClientEndpoint)
        self.assertIsInstance(endpoint._wrappedEndpoint, TCP4ClientEndpoint)
