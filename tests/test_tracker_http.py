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
from btorrent.tracker.http import HTTPTrackerClient, _CappedBodyReader

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
        # The same body within the cap is fine.
        result = yield self.client(base + "/announce").announce(request())
        self.assertEqual(len(result.peers), 20000)

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
