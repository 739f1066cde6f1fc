"""
The RPC's HTTP side (L{btorrent.control.rpc}), driven with raw request
bytes through an in-memory transport: the checks and their order (address,
password and lockout, Host, session id), the 413 before the body is
stored, JSON limits, paths and HTTP methods, every refusal a JSON
C{result}.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Dict, List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from btorrent.control.access import hashPassword, transmissionHash
from btorrent.control.rpc import (
    MAX_BODY_SIZE,
    MAX_JSON_DEPTH,
    MAX_JSON_OBJECTS,
    makeRPCSite,
    parseRequestBody,
)
from tests.fakesession import exampleSession

#: A cheap hash: the lockout test makes 100 failed logins.
PASSWORD_HASH = hashPassword("pass", iterations=1000)


class Data(Resource):
    """
    A page hung on the root, as the web page or /metrics will be.
    """

    isLeaf = True

    def __init__(self, body: bytes, contentType: str) -> None:
        super().__init__()
        self.body = body
        self.contentType = contentType.encode()

    def render_GET(self, request):
        request.setHeader(b"Content-Type", self.contentType)
        return self.body


class Response:
    """
    A parsed HTTP response.
    """

    def __init__(self, raw: bytes) -> None:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.statusLine = lines[0]
        self.code = int(lines[0].split()[1])
        self.headers: Dict[bytes, List[bytes]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = int(self.header(b"content-length") or len(rest))
        self.body = rest[:length]
        self.rest = rest[length:]

    def header(self, name: bytes) -> Optional[bytes]:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def json(self) -> dict:
        return json.loads(self.body)


def httpRequest(
    method: bytes = b"POST",
    path: bytes = b"/transmission/rpc",
    headers: Optional[List[Tuple[bytes, bytes]]] = None,
    body: bytes = b"",
    host: bytes = b"127.0.0.1:9091",
) -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: " + host]
    for name, value in headers or []:
        lines.append(name + b": " + value)
    if body or method == b"POST":
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Wire:
    """
    The RPC site on a fake session, with a clock, reached through
    in-memory transports.
    """

    def __init__(self, case: SynchronousTestCase, **kw) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        directory = os.path.abspath(case.mktemp())
        os.makedirs(directory)
        self.session = exampleSession(self.clock.seconds, directory)
        self.site = makeRPCSite(self.session, self.clock, fetchURL=self._noFetch, **kw)
        self.sessionId = b""

    def _noFetch(self, url, cookies):
        return fail(AssertionError("no fetching here"))

    def connect(self, address=None):
        if address is None:
            address = IPv4Address("TCP", "127.0.0.1", 40000)
        protocol = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def send(self, raw: bytes, address=None) -> Response:
        protocol, transport = self.connect(address)
        protocol.dataReceived(raw)
        return Response(transport.value())

    def rpc(
        self,
        request: dict,
        headers: Optional[List[Tuple[bytes, bytes]]] = None,
        **kw,
    ) -> Response:
        """
        POST a request with the current session id (learnt from a 409).
        """
        if not self.sessionId:
            self.sessionId = self.send(httpRequest(b"GET", headers=headers)).header(
                b"X-Transmission-Session-Id"
            )
        allHeaders = [(b"X-Transmission-Session-Id", self.sessionId)] + (headers or [])
        body = json.dumps(request).encode()
        return self.send(httpRequest(headers=allHeaders, body=body, **kw))


def basic(user: bytes, password: bytes) -> Tuple[bytes, bytes]:
    return (b"Authorization", b"Basic " + base64.b64encode(user + b":" + password))


class SessionIdTests(SynchronousTestCase):
    """
    C{X-Transmission-Session-Id}: 409 with the current id, for GET too.
    """

    def setUp(self) -> None:
        self.wire = Wire(self)

    def test_getGives409(self) -> None:
        """
        A GET (how Sonarr, Radarr and Flood start) learns the id from a
        409, on both paths.
        """
        for path in (b"/transmission/rpc", b"/transmission/rpc/"):
            response = self.wire.send(httpRequest(b"GET", path))
            self.assertEqual(response.code, 409)
            sessionId = response.header(b"X-Transmission-Session-Id")
            self.assertEqual(len(sessionId), 48)
            self.assertTrue(sessionId.isalnum())
            self.assertEqual(
                response.header(b"Content-Type"), b"application/json; charset=UTF-8"
            )
            self.assertIn(sessionId.decode(), response.json["result"])
            self.assertEqual(response.json["arguments"], {})

    def test_postNeedsId(self) -> None:
        """
        A POST without the id, or with another, is refused before it runs.
        """
        body = json.dumps(
            {"method": "torrent-remove", "arguments": {"ids": [1]}}
        ).encode()
        for headers in ([], [(b"X-Transmission-Session-Id", b"x" * 48)]):
            response = self.wire.send(httpRequest(headers=headers, body=body))
            self.assertEqual(response.code, 409)
        self.assertEqual(len(self.wire.session.torrents()), 2)

    def test_idWorks(self) -> None:
        response = self.wire.rpc({"method": "session-stats", "tag": 7})
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json["result"], "success")
        self.assertEqual(response.json["tag"], 7)
        self.assertEqual(
            response.header(b"Content-Type"), b"application/json; charset=UTF-8"
        )

    def test_hourlyRotation(self) -> None:
        """
        After an hour the id is stale: 409 with a new one, which works.
        """
        self.assertEqual(self.wire.rpc({"method": "port-test"}).code, 200)
        old = self.wire.sessionId
        self.wire.clock.advance(3600)
        response = self.wire.rpc({"method": "port-test"})
        self.assertEqual(response.code, 409)
        new = response.header(b"X-Transmission-Session-Id")
        self.assertNotEqual(new, old)
        self.wire.sessionId = new
        self.assertEqual(self.wire.rpc({"method": "port-test"}).code, 200)

    def test_sessionGetShowsId(self) -> None:
        response = self.wire.rpc(
            {"method": "session-get", "arguments": {"fields": ["session-id"]}}
        )
        self.assertEqual(
            response.json["arguments"]["session-id"].encode(), self.wire.sessionId
        )


class ContentTypeTests(SynchronousTestCase):
    """
    The body is JSON whatever the Content-Type.
    """

    def test_anyContentType(self) -> None:
        wire = Wire(self)
        for contentType in [
            b"application/x-www-form-urlencoded",
            b"application/json",
            b"json",
            b"text/plain",
            b"multipart/form-data; boundary=xyz",
            None,
        ]:
            headers = [] if contentType is None else [(b"Content-Type", contentType)]
            response = wire.rpc(
                {"method": "torrent-get", "arguments": {"fields": ["id"]}}, headers
            )
            self.assertEqual(response.code, 200, contentType)
            self.assertEqual(
                response.json["arguments"]["torrents"], [{"id": 1}, {"id": 2}]
            )

    def test_keepAlive(self) -> None:
        """
        Two requests on one connection are both answered.
        """
        wire = Wire(self)
        sessionId = wire.send(httpRequest(b"GET")).header(b"X-Transmission-Session-Id")
        body = b'{"method":"port-test"}'
        one = httpRequest(
            headers=[(b"X-Transmission-Session-Id", sessionId)], body=body
        )
        protocol, transport = wire.connect()
        protocol.dataReceived(one + one)
        first = Response(transport.value())
        second = Response(first.rest)
        self.assertEqual((first.code, second.code), (200, 200))


class AddressTests(SynchronousTestCase):
    """
    The client address against the whitelist: 403, first of all checks.
    """

    def test_defaultLoopbackOnly(self) -> None:
        wire = Wire(self)
        for address in [
            IPv4Address("TCP", "127.0.0.1", 1),
            IPv6Address("TCP", "::1", 1),
            IPv6Address("TCP", "::ffff:127.0.0.1", 1),
        ]:
            self.assertEqual(wire.send(httpRequest(b"GET"), address).code, 409, address)
        for address in [
            IPv4Address("TCP", "192.168.1.5", 1),
            IPv4Address("TCP", "127.0.0.2", 1),
            IPv6Address("TCP", "fe80::1", 1),
        ]:
            response = wire.send(httpRequest(b"GET"), address)
            self.assertEqual(response.code, 403, address)
            self.assertIn("unauthorized IP address", response.json["result"])

    def test_beforeAuth(self) -> None:
        """
        A foreign address is refused even with the right password, and its
        attempts do not count as failed logins.
        """
        wire = Wire(self, username="user", passwordHash=PASSWORD_HASH)
        foreign = IPv4Address("TCP", "10.1.1.1", 1)
        for _ in range(3):
            response = wire.send(
                httpRequest(b"GET", headers=[basic(b"user", b"x")]), foreign
            )
            self.assertEqual(response.code, 403)
        self.assertEqual(wire.site.access.logins.failures, 0)

    def test_wildcards(self) -> None:
        wire = Wire(self, whitelist="127.0.0.1,192.168.*.*")
        self.assertEqual(
            wire.send(httpRequest(b"GET"), IPv4Address("TCP", "192.168.7.9", 1)).code,
            409,
        )
        self.assertEqual(
            wire.send(httpRequest(b"GET"), IPv4Address("TCP", "192.169.7.9", 1)).code,
            403,
        )


class AuthTests(SynchronousTestCase):
    """
    Basic authentication, and the lockout.
    """

    def setUp(self) -> None:
        self.wire = Wire(self, username="user", passwordHash=PASSWORD_HASH)

    def test_challenge(self) -> None:
        """
        No credentials, or wrong ones: 401 with Transmission's realm (what
        makes transmission-remote and browsers send credentials).
        """
        for headers in (
            [],
            [basic(b"user", b"nope")],
            [basic(b"root", b"pass")],
            [(b"Authorization", b"Basic ???")],
        ):
            response = self.wire.send(httpRequest(b"GET", headers=headers))
            self.assertEqual(response.code, 401)
            self.assertEqual(
                response.header(b"WWW-Authenticate"), b'Basic realm="Transmission"'
            )
            self.assertIn("unauthorized user", response.json["result"])

    def test_rightPassword(self) -> None:
        response = self.wire.rpc({"method": "port-test"}, [basic(b"user", b"pass")])
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json["result"], "success")

    def test_authBeforeHostAndSessionId(self) -> None:
        """
        Wrong credentials with a foreign Host and no session id: 401.
        """
        response = self.wire.send(httpRequest(b"GET", host=b"evil.example"))
        self.assertEqual(response.code, 401)

    def test_transmissionHash(self) -> None:
        """
        A password hash from a Transmission settings.json works.
        """
        wire = Wire(self, username="u", passwordHash=transmissionHash("pw"))
        self.assertEqual(
            wire.rpc({"method": "port-test"}, [basic(b"u", b"pw")]).code, 200
        )

    def test_plainPasswordRefused(self) -> None:
        clock = Clock()
        session = exampleSession(clock.seconds)
        self.assertRaises(
            ValueError, makeRPCSite, session, clock, username="u", passwordHash="pw"
        )
        self.assertRaises(ValueError, makeRPCSite, session, clock, username="u")

    def test_lockout(self) -> None:
        """
        After 100 failed logins in a row every request is refused with 403,
        the right password and other pages included, until restart.
        """
        page = Data(b"<html>hello</html>", "text/html")
        self.wire.site.resource.putChild(b"", page)
        for i in range(100):
            response = self.wire.send(
                httpRequest(b"GET", headers=[basic(b"user", b"%d" % i)])
            )
            self.assertEqual(response.code, 401)
        for path in (b"/transmission/rpc", b"/"):
            response = self.wire.send(
                httpRequest(b"GET", path, headers=[basic(b"user", b"pass")])
            )
            self.assertEqual(response.code, 403)
            self.assertIn(
                "too many unsuccessful login attempts", response.json["result"]
            )
        # A new site (a restart) lets the right password in again.
        wire = Wire(self, username="user", passwordHash=PASSWORD_HASH)
        self.assertEqual(
            wire.rpc({"method": "port-test"}, [basic(b"user", b"pass")]).code, 200
        )


class HostTests(SynchronousTestCase):
    """
    The Host header against DNS rebinding: 421 before the session id.
    """

    def test_foreignHost(self) -> None:
        wire = Wire(self)
        good = wire.rpc({"method": "port-test"})
        self.assertEqual(good.code, 200)
        for host in [b"evil.example", b"evil.example:9091", b"127.0.0.1.nip.io"]:
            response = wire.rpc(
                {"method": "torrent-remove", "arguments": {}}, host=host
            )
            self.assertEqual(response.code, 421, host)
            self.assertEqual(response.statusLine, b"HTTP/1.1 421 Misdirected Request")
            self.assertIn("DNS rebinding", response.json["result"])
        self.assertEqual(len(wire.session.torrents()), 2)

    def test_allowedHosts(self) -> None:
        wire = Wire(self, hostWhitelist=["nas.lan"])
        for host in [b"127.0.0.1", b"localhost:9091", b"[::1]:9091", b"NAS.lan:9091"]:
            self.assertEqual(wire.send(httpRequest(b"GET", host=host)).code, 409, host)

    def test_everyPage(self) -> None:
        """
        The web page and C{/metrics} (every torrent's name) are behind the
        same check: a page rebinding its name to 127.0.0.1 reads nothing.
        """
        wire = Wire(self)
        wire.site.resource.putChild(b"metrics", Data(b"names", "text/plain"))
        wire.site.resource.putChild(b"", Data(b"<html>", "text/html"))
        for path in (b"/metrics", b"/"):
            for host in (b"evil.example", b"evil.example:9091"):
                response = wire.send(httpRequest(b"GET", path=path, host=host))
                self.assertEqual(response.code, 421, (path, host))
            response = wire.send(httpRequest(b"GET", path=path))
            self.assertEqual(response.code, 200, path)

    def test_missingHost(self) -> None:
        wire = Wire(self)
        response = wire.send(b"GET /transmission/rpc HTTP/1.0\r\n\r\n")
        self.assertEqual(response.code, 421)

    def test_passwordAllowsAnyHost(self) -> None:
        wire = Wire(self, username="user", passwordHash=PASSWORD_HASH)
        response = wire.rpc(
            {"method": "port-test"}, [basic(b"user", b"pass")], host=b"nas.example"
        )
        self.assertEqual(response.code, 200)


class BodyLimitTests(SynchronousTestCase):
    """
    Bodies over the limit: 413 as soon as the length is known, nothing
    stored.
    """

    def test_default(self) -> None:
        self.assertEqual(MAX_BODY_SIZE, 32 * 1024 * 1024)

    def test_contentLength(self) -> None:
        """
        A 50 MB Content-Length is answered 413 at once, before any body
        byte, even before the session id or the password are checked; the
        body that follows is dropped, and the connection closes after the
        linger time.
        """
        wire = Wire(self, username="user", passwordHash=PASSWORD_HASH)
        protocol, transport = wire.connect()
        protocol.dataReceived(
            b"POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Expect: 100-continue\r\nContent-Length: 50000000\r\n\r\n"
        )
        response = Response(transport.value())
        self.assertEqual(response.code, 413)
        self.assertEqual(response.header(b"Connection"), b"close")
        self.assertIn("larger than 33554432 bytes", response.json["result"])
        self.assertNotIn(b"100 Continue", transport.value())
        request = protocol._channel.requests[0]
        self.assertIsNone(request.content)
        for _ in range(20):
            protocol.dataReceived(b"x" * 100_000)
        self.assertIsNone(request.content)
        self.assertEqual(Response(transport.value()).rest, b"")
        self.assertFalse(transport.disconnecting)
        wire.clock.advance(10)
        self.assertTrue(transport.disconnecting)

    def test_refusedBeforeTheBody(self) -> None:
        """
        A large or chunked body from a client the checks of every page
        refuse (no password, an address not whitelisted, a foreign Host) is
        answered at once and never kept: an attacker cannot have us store
        32 MB per connection.  A small one goes the usual way.
        """
        cases = [
            (dict(username="user", passwordHash=PASSWORD_HASH), None, b"", 401),
            (dict(whitelist=["10.0.0.*"]), None, b"", 403),
            ({}, None, b"evil.example", 421),
        ]
        for kw, address, host, code in cases:
            wire = Wire(self, **kw)
            protocol, transport = wire.connect(address)
            protocol.dataReceived(
                b"POST /transmission/rpc HTTP/1.1\r\nHost: "
                + (host or b"127.0.0.1")
                + b"\r\nContent-Length: 20000000\r\n\r\n"
                + b"x" * 1000
            )
            response = Response(transport.value())
            self.assertEqual(response.code, code, kw)
            self.assertEqual(response.header(b"Connection"), b"close")
            if code == 401:
                self.assertEqual(
                    response.header(b"WWW-Authenticate"), b'Basic realm="Transmission"'
                )
            request = protocol._channel.requests[0]
            self.assertIsNone(request.content)
            protocol.dataReceived(b"x" * 100_000)
            self.assertIsNone(request.content)
        wire = Wire(self, username="user", passwordHash=PASSWORD_HASH)
        small = wire.send(httpRequest(body=b"{}"))
        self.assertEqual(small.code, 401)

    def test_boundary(self) -> None:
        """
        A body of exactly the limit is taken; one byte more is not.
        """
        wire = Wire(self)
        wire.site.maxBodySize = 1000
        request = json.dumps({"method": "port-test", "tag": 1}).encode()
        body = request + b" " * (1000 - len(request))
        self.assertEqual(wire.rpc({"method": "port-test"}).code, 200)
        headers = [(b"X-Transmission-Session-Id", wire.sessionId)]
        self.assertEqual(wire.send(httpRequest(headers=headers, body=body)).code, 200)
        self.assertEqual(
            wire.send(httpRequest(headers=headers, body=body + b" ")).code, 413
        )

    def test_chunked(self) -> None:
        """
        A chunked body is cut off once it passes the limit; what came is
        let go.
        """
        wire = Wire(self)
        wire.site.maxBodySize = 10_000
        protocol, transport = wire.connect()
        protocol.dataReceived(
            b"POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        request = protocol._channel.requests[0]
        for _ in range(9):
            protocol.dataReceived(b"3e8\r\n" + b"a" * 1000 + b"\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"3e8\r\n" + b"a" * 1000 + b"\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"1\r\na\r\n")
        self.assertEqual(Response(transport.value()).code, 413)
        self.assertTrue(request.content.closed)
        protocol.dataReceived(b"3e8\r\n" + b"a" * 1000 + b"\r\n0\r\n\r\n")
        self.assertTrue(transport.disconnecting)

    def test_serverUnharmed(self) -> None:
        wire = Wire(self)
        wire.send(
            b"POST /transmission/rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n"
        )
        self.assertEqual(wire.rpc({"method": "port-test"}).code, 200)


class JSONTests(SynchronousTestCase):
    """
    Request bodies that are not good JSON: HTTP 200 with a clear result.
    """

    def setUp(self) -> None:
        self.wire = Wire(self)
        self.wire.rpc({"method": "port-test"})
        self.headers = [(b"X-Transmission-Session-Id", self.wire.sessionId)]

    def post(self, body: bytes) -> Response:
        return self.wire.send(httpRequest(headers=self.headers, body=body))

    def test_bad(self) -> None:
        for body, text in [
            (b"", "invalid JSON"),
            (b"{", "invalid JSON"),
            (b"\xff\xfe", "not UTF-8"),
            (b"[" * 100_000, f"nested deeper than {MAX_JSON_DEPTH}"),
            (b'{"a":' * 40 + b"1" + b"}" * 40, f"nested deeper than {MAX_JSON_DEPTH}"),
            (b"[1]", "not a JSON object"),
            (b"NaN", "is not a JSON value"),
            (
                b'{"a": [' + b",".join([b"{}"] * (MAX_JSON_OBJECTS + 1)) + b"]}",
                f"more than {MAX_JSON_OBJECTS} objects",
            ),
            (
                b'{"method": "torrent-get", "arguments": {"ids": {}, "fields": ["id"]}}',
                '"ids"',
            ),
            (b'{"method": "warp-drive"}', "method name not recognized"),
        ]:
            response = self.post(body)
            self.assertEqual(response.code, 200, body[:20])
            self.assertIn(text, response.json["result"])
            self.assertNotIn("Traceback", response.json["result"])
        self.assertEqual(
            self.wire.rpc({"method": "port-test"}).json["result"], "success"
        )

    def test_constants(self) -> None:
        """
        NaN and Infinity, which Python's decoder takes, are not JSON.
        """
        for body in [b'{"tag": NaN}', b"[Infinity]", b"-Infinity"]:
            self.assertRaises(ValueError, parseRequestBody, body)
            response = self.post(body)
            self.assertIn("is not a JSON value", response.json["result"])

    @given(st.binary(max_size=300))
    @settings(max_examples=300)
    def test_garbage(self, body: bytes) -> None:
        """
        Any bytes decode or raise L{ValueError}.
        """
        try:
            parseRequestBody(body)
        except ValueError:
            pass

    @given(st.lists(st.sampled_from(list(b'[]{}",:\\ 1a')), max_size=200))
    @settings(max_examples=300)
    def test_bracketSoup(self, chars) -> None:
        """
        Brackets, quotes and escapes in any order decode or raise
        L{ValueError} (the depth scan and the decoder agree on strings).
        """
        try:
            parseRequestBody(bytes(chars))
        except ValueError:
            pass

    def test_depth(self) -> None:
        """
        Nesting up to the limit parses; brackets inside strings do not
        count.
        """
        ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
        self.assertEqual(parseRequestBody(ok), parseRequestBody(ok))
        self.assertRaises(ValueError, parseRequestBody, b"[" + ok + b"]")
        self.assertEqual(
            parseRequestBody(b'{"a": "' + b"[" * 1000 + b'"}'), {"a": "[" * 1000}
        )
        self.assertEqual(parseRequestBody(b'["\\"[[["]'), ['"[[['])

    @given(st.text(alphabet='[]{}"\\/ ab\u00e9\n', max_size=50))
    @settings(max_examples=300)
    def test_stringsNeverCount(self, text) -> None:
        """
        Any string, with brackets, quotes and escapes, inside a value
        nested as deep as allowed parses back to itself: the depth scan
        skips whole strings, escapes included.
        """
        value = [text, {"k" + text: text}]
        for _ in range(MAX_JSON_DEPTH - 2):
            value = [value]
        body = json.dumps(value).encode("utf-8")
        self.assertEqual(parseRequestBody(body), value)


class PathTests(SynchronousTestCase):
    """
    Paths and HTTP methods.
    """

    def setUp(self) -> None:
        self.wire = Wire(self)
        self.wire.rpc({"method": "port-test"})
        self.headers = [(b"X-Transmission-Session-Id", self.wire.sessionId)]

    def test_notFound(self) -> None:
        for path in [
            b"/",
            b"/nope",
            b"/transmission",
            b"/transmission/",
            b"/transmission/rpc/x",
        ]:
            response = self.wire.send(httpRequest(b"GET", path, self.headers))
            self.assertEqual(response.code, 404, path)
            self.assertIn("/transmission/rpc", response.json["result"])

    def test_methodNotAllowed(self) -> None:
        for method in [b"GET", b"PUT", b"DELETE"]:
            response = self.wire.send(httpRequest(method, headers=self.headers))
            self.assertEqual(response.code, 405, method)
            self.assertEqual(response.header(b"Allow"), b"POST")
            self.assertIn("POST", response.json["result"])

    def test_putChild(self) -> None:
        """
        Pages hung on the root (the web page, /metrics) are served, behind
        the same address and password checks.
        """
        wire = Wire(self, username="user", passwordHash=PASSWORD_HASH)
        wire.site.resource.putChild(b"", Data(b"page", "text/html"))
        wire.site.resource.putChild(b"metrics", Data(b"m 1\n", "text/plain"))
        auth = [basic(b"user", b"pass")]
        self.assertEqual(wire.send(httpRequest(b"GET", b"/", auth)).body, b"page")
        self.assertEqual(
            wire.send(httpRequest(b"GET", b"/metrics", auth)).body, b"m 1\n"
        )
        self.assertEqual(wire.send(httpRequest(b"GET", b"/metrics")).code, 401)
        foreign = IPv4Address("TCP", "10.0.0.1", 1)
        self.assertEqual(wire.send(httpRequest(b"GET", b"/", auth), foreign).code, 403)

    def test_internalError(self) -> None:
        """
        Should the methods fail outright, the answer is still a JSON line.
        """
        self.wire.site.methods.handle = lambda request: fail(RuntimeError("boom"))
        response = self.wire.send(
            httpRequest(headers=self.headers, body=b'{"method":"x"}')
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json["result"], "internal error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
