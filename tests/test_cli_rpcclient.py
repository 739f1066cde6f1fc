"""
Tests for L{btorrent.cli.rpcclient}: the Transmission RPC client against
the in-process fake of L{tests.faketransmission} and against servers that
misbehave.
"""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import NOT_DONE_YET

from btorrent.cli import rpcclient
from btorrent.cli.rpcclient import (
    AuthenticationFailed,
    DaemonUnreachable,
    MethodFailed,
    ProtocolError,
    RPCClient,
    RPCError,
)
from tests.faketransmission import FakeTransmission, listen
from tests.realpeers import freePort


class ClientTestCase(TestCase):
    """
    A fake Transmission on loopback and clients of it, all cleaned up.
    """

    def serve(self, credentials=None) -> FakeTransmission:
        """
        Start a fake Transmission; return it (its URL is C{self.url}).
        """
        self.fake = FakeTransmission(credentials)
        port, self.url = listen(reactor, self.fake)
        self.addCleanup(port.stopListening)
        return self.fake

    def client(self, url=None, **kwargs) -> RPCClient:
        """
        A client of C{url} (the fake's by default), closed after the test.
        """
        client = RPCClient(reactor, url or self.url, **kwargs)
        self.addCleanup(client.close)
        return client

    async def failure(self, d: defer.Deferred, kind) -> Exception:
        """
        The exception of type C{kind} that C{d} fails with.
        """
        try:
            result = await d
        except kind as e:
            return e
        self.fail(f"{d} succeeded with {result!r}")


class SessionIdTests(ClientTestCase):
    """
    The X-Transmission-Session-Id dance and the tag.
    """

    async def test_dance(self) -> None:
        """
        The first call gets a 409 carrying the session id, keeps it and
        sends the request again, once; later calls send it straight away.
        """
        fake = self.serve()
        client = self.client()
        reply = await client.call("session-get")
        self.assertEqual(reply["rpc-version"], 16)
        self.assertEqual(len(fake.requests), 2)
        self.assertNotIn("x-transmission-session-id", fake.requests[0][2])
        self.assertEqual(
            fake.requests[1][2]["x-transmission-session-id"], fake.sessionId
        )
        self.assertEqual(client.sessionId, fake.sessionId)
        await client.call("session-get")
        self.assertEqual(len(fake.requests), 3)

    async def test_rotatedId(self) -> None:
        """
        When the daemon rotates its session id, the next call's 409 gives
        the new one and the call goes through.
        """
        fake = self.serve()
        client = self.client()
        await client.call("session-get")
        fake.sessionId = "rotated"
        await client.call("session-get")
        self.assertEqual(client.sessionId, "rotated")
        self.assertEqual(len(fake.requests), 4)

    async def test_409Twice(self) -> None:
        """
        A daemon answering 409 to the retry as well is an error, after two
        requests (never a loop).
        """
        fake = self.serve()
        fake.rotate = True
        client = self.client()
        e = await self.failure(client.call("session-get"), ProtocolError)
        self.assertEqual(
            str(e), f"the daemon at {self.url} refused the session id twice (409)"
        )
        self.assertEqual(len(fake.requests), 2)

    async def test_requestBody(self) -> None:
        """
        The request is one JSON object: method, arguments and a number tag
        that grows with each call.
        """
        fake = self.serve()
        client = self.client()
        await client.call("torrent-get", {"fields": ["id"]})
        await client.call("torrent-get", {"fields": ["name"]})
        bodies = [body for _, body, _ in fake.requests]
        self.assertEqual(bodies[1]["method"], "torrent-get")
        self.assertEqual(bodies[1]["arguments"], {"fields": ["id"]})
        self.assertEqual(bodies[1]["tag"], bodies[0]["tag"])
        self.assertEqual(bodies[2]["tag"], bodies[1]["tag"] + 1)
        self.assertEqual(fake.requests[1][2]["content-type"], "application/json")

    async def test_wrongTag(self) -> None:
        """
        A reply carrying another request's tag is refused.
        """
        fake = self.serve()
        client = self.client()
        await client.call("session-get")
        fake.override = lambda request, body: json.dumps(
            {"result": "success", "arguments": {}, "tag": 999}
        ).encode()
        e = await self.failure(client.call("session-get"), ProtocolError)
        self.assertEqual(
            str(e), f"the answer from {self.url} carries tag 999 instead of 2"
        )

    async def test_noTag(self) -> None:
        """
        A reply without a tag (servers that ignore it) is accepted.
        """
        fake = self.serve()
        fake.override = lambda request, body: b'{"result": "success"}'
        self.assertEqual(await self.client().call("session-get"), {})


class AuthenticationTests(ClientTestCase):
    """
    Basic authentication: pre-emptive, or after a 401 challenge.
    """

    async def test_preemptive(self) -> None:
        """
        With credentials, the first request already carries them: a 409,
        then the answer, and no 401.
        """
        fake = self.serve(("alice", "s:cret"))
        client = self.client(auth=("alice", "s:cret"))
        await client.call("session-get")
        self.assertEqual(len(fake.requests), 2)
        expected = "Basic " + base64.b64encode(b"alice:s:cret").decode()
        for _, _, headers in fake.requests:
            self.assertEqual(headers["authorization"], expected)

    async def test_afterChallenge(self) -> None:
        """
        Without pre-emptive credentials, the first request goes without
        them; the 401 challenge brings them, then the 409 dance.
        """
        fake = self.serve(("alice", "secret"))
        client = self.client(auth=("alice", "secret"), preemptive=False)
        reply = await client.call("session-get")
        self.assertEqual(reply["version"], "3.00 (fake)")
        self.assertEqual(len(fake.requests), 3)
        self.assertNotIn("authorization", fake.requests[0][2])
        self.assertIn("authorization", fake.requests[1][2])

    async def test_wrongPassword(self) -> None:
        """
        Wrong credentials are one line, after one request.
        """
        fake = self.serve(("alice", "secret"))
        client = self.client(auth=("alice", "guess"))
        e = await self.failure(client.call("session-get"), AuthenticationFailed)
        self.assertEqual(
            str(e),
            f"authentication failed: the daemon at {self.url} refused the user "
            f"name or password",
        )
        self.assertEqual(len(fake.requests), 1)

    async def test_wrongPasswordAfterChallenge(self) -> None:
        """
        Wrong credentials sent after the challenge fail the same way, after
        two requests.
        """
        fake = self.serve(("alice", "secret"))
        client = self.client(auth=("alice", "guess"), preemptive=False)
        await self.failure(client.call("session-get"), AuthenticationFailed)
        self.assertEqual(len(fake.requests), 2)

    async def test_noCredentials(self) -> None:
        """
        A daemon requiring credentials, asked without: the error says how
        to give them.
        """
        self.serve(("alice", "secret"))
        e = await self.failure(self.client().call("session-get"), AuthenticationFailed)
        self.assertEqual(
            str(e),
            f"authentication failed: the daemon at {self.url} requires a user "
            f"name and password (--auth USER:PASSWORD or BTORRENT_AUTH)",
        )


def status(code: int, headers=()):
    """
    An override answering HTTP C{code} with C{headers}.
    """

    def answer(request, body):
        request.setResponseCode(code)
        for name, value in headers:
            request.setHeader(name, value)
        return b"<h1>no</h1>"

    return answer


class ErrorTests(ClientTestCase):
    """
    Each failure is an L{RPCError} with one clear line.
    """

    async def test_connectionRefused(self) -> None:
        """
        Nothing listening: "connection refused".
        """
        url = f"http://127.0.0.1:{freePort()}/transmission/rpc"
        e = await self.failure(self.client(url).call("session-get"), DaemonUnreachable)
        self.assertEqual(
            str(e), f"cannot reach the daemon at {url}: connection refused"
        )

    async def test_forbidden(self) -> None:
        """
        403 (the whitelist, or a lockout).
        """
        self.serve().override = status(403)
        e = await self.failure(self.client().call("session-get"), ProtocolError)
        self.assertEqual(e.status, 403)
        self.assertEqual(
            str(e),
            f"forbidden: the daemon at {self.url} refuses this client (403: not "
            f"in its rpc-whitelist, or locked out after failed logins)",
        )

    async def test_misdirected(self) -> None:
        """
        421 (a host name the daemon does not accept).
        """
        self.serve().override = status(421)
        e = await self.failure(self.client().call("session-get"), ProtocolError)
        self.assertEqual(
            str(e),
            f"misdirected request: the daemon at {self.url} refuses the host "
            f"name 127.0.0.1 (421: use its IP address, or add the name to its "
            f"rpc-host-whitelist)",
        )

    async def test_otherStatus(self) -> None:
        """
        Any other status (a 404 from a wrong path, a 500, a redirect, which
        is not followed) is named.
        """
        fake = self.serve()
        for code in (404, 500, 301):
            fake.override = status(code, [(b"Location", b"http://127.0.0.1:1/")])
            e = await self.failure(self.client().call("session-get"), ProtocolError)
            self.assertEqual(
                str(e), f"unexpected answer from {self.url}: HTTP status {code}"
            )

    async def test_notJSON(self) -> None:
        """
        A body that is not JSON (a web page, garbage) is one line.
        """
        fake = self.serve()
        for body in (b"<html>hello</html>", b"\xff\xfe\x00garbage", b""):
            fake.override = lambda request, _, body=body: body
            e = await self.failure(self.client().call("session-get"), ProtocolError)
            self.assertEqual(
                str(e),
                f"the answer from {self.url} is not JSON (is it a Transmission "
                f"RPC address?)",
            )

    async def test_notAReply(self) -> None:
        """
        JSON that is not a reply object (a list, no result, a number result,
        arguments that are not an object) is refused.
        """
        fake = self.serve()
        for body in (
            b"[1, 2]",
            b'{"arguments": {}}',
            b'{"result": 1}',
            b'"success"',
        ):
            fake.override = lambda request, _, body=body: body
            e = await self.failure(self.client().call("session-get"), ProtocolError)
            self.assertEqual(
                str(e),
                f"the answer from {self.url} is not a Transmission RPC reply "
                f"(no result)",
            )
        fake.override = lambda request, _: b'{"result": "success", "arguments": []}'
        e = await self.failure(self.client().call("session-get"), ProtocolError)
        self.assertIn("arguments that are not an object", str(e))

    async def test_deepJSON(self) -> None:
        """
        JSON nested deeper than the parser goes is a clear error, not a
        RecursionError.
        """
        self.serve().override = lambda request, _: b"[" * 200000 + b"]" * 200000
        e = await self.failure(self.client().call("session-get"), ProtocolError)
        self.assertIn("is not JSON", str(e))

    async def test_methodFailed(self) -> None:
        """
        A result other than success is the daemon's text, after the method;
        control characters in it are escaped and a long one is cut.
        """
        fake = self.serve()
        client = self.client()
        e = await self.failure(
            client.call("torrent-add", {"metainfo": "AAAA"}), MethodFailed
        )
        self.assertEqual(str(e), "torrent-add: invalid or corrupt torrent file")
        self.assertEqual(e.result, "invalid or corrupt torrent file")
        fake.override = lambda request, _: json.dumps(
            {"result": "bad\x1b[2J\nthing" + "x" * 1000}
        ).encode()
        e = await self.failure(client.call("torrent-get"), MethodFailed)
        self.assertTrue(str(e).startswith("torrent-get: bad\\x1b[2J\\nthingxxx"))
        self.assertTrue(str(e).endswith("... (cut)"))
        self.assertLess(len(str(e)), 400)


class SizeAndTimeTests(ClientTestCase):
    """
    The answer's size cap and the timeouts.
    """

    async def test_declaredTooBig(self) -> None:
        """
        An answer whose Content-Length is over the cap is refused without
        being read.
        """
        self.serve().override = lambda request, _: b" " * 5000
        client = self.client(maxAnswer=1000)
        e = await self.failure(client.call("session-get"), ProtocolError)
        self.assertEqual(
            str(e), f"the answer from {self.url} is bigger than 1000 bytes"
        )

    async def test_streamedTooBig(self) -> None:
        """
        A chunked answer that never ends is cut at the cap: the connection
        is dropped, and the server sees it gone.
        """
        fake = self.serve()
        gone = defer.Deferred()
        sent = []

        def endless(request, _):
            def more():
                if gone.called:
                    return
                request.write(b" " * 65536)
                sent.append(1)
                if len(sent) < 1000:
                    reactor.callLater(0, more)

            request.notifyFinish().addBoth(lambda _: gone.callback(None))
            more()
            return NOT_DONE_YET

        fake.override = endless
        client = self.client(maxAnswer=300000)
        e = await self.failure(client.call("session-get"), ProtocolError)
        self.assertEqual(
            str(e), f"the answer from {self.url} is bigger than 300000 bytes"
        )
        await gone
        self.assertLess(len(sent), 100)

    async def test_noAnswer(self) -> None:
        """
        A daemon that takes the request and never answers: the call gives up
        after its timeout.
        """
        fake = self.serve()
        pending = []

        def never(request, _):
            pending.append(request)
            return NOT_DONE_YET

        fake.override = never
        client = self.client(timeout=0.3)
        e = await self.failure(client.call("session-get"), DaemonUnreachable)
        self.assertEqual(
            str(e), f"no answer from the daemon at {self.url} within 0.3 s"
        )

    async def test_stalledBody(self) -> None:
        """
        A daemon that sends the headers and part of the body, then nothing:
        the call gives up after its timeout too.
        """
        fake = self.serve()

        def stall(request, _):
            request.setHeader(b"Content-Length", b"100")
            request.write(b'{"result": ')
            return NOT_DONE_YET

        fake.override = stall
        client = self.client(timeout=0.3)
        e = await self.failure(client.call("session-get"), DaemonUnreachable)
        self.assertIn("within 0.3 s", str(e))

    async def test_closedWithoutAnswer(self) -> None:
        """
        A server that accepts and closes the connection at once.
        """

        class Hangup(Protocol):
            def connectionMade(self):
                self.transport.loseConnection()

        port = reactor.listenTCP(0, Factory.forProtocol(Hangup), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/transmission/rpc"
        e = await self.failure(self.client(url).call("session-get"), DaemonUnreachable)
        self.assertEqual(
            str(e),
            f"the daemon at {url} closed the connection without answering",
        )

    def test_connectReasons(self) -> None:
        """
        Why a connection failed, in a few words, for each kind of failure.
        """
        from twisted.internet import error

        reason = rpcclient._connectReason
        self.assertEqual(reason(error.ConnectionRefusedError()), "connection refused")
        self.assertEqual(reason(error.TimeoutError()), "timed out")
        self.assertEqual(reason(error.DNSLookupError("x.invalid")), "unknown host")
        self.assertEqual(reason(error.NoRouteError()), "no route to host")
        self.assertEqual(
            reason(error.ConnectError(osError="bad\nthing")), "bad\\nthing"
        )


class DecodeTests(SynchronousTestCase):
    """
    The reply decoder on any bytes: the arguments, or an L{RPCError} with
    one line.
    """

    def setUp(self) -> None:
        self.client = RPCClient(MemoryReactorClock(), "http://127.0.0.1:1/rpc")

    def check(self, data: bytes) -> None:
        try:
            arguments = self.client._decode("m", 1, data)
        except RPCError as e:
            self.assertNotIn("\n", str(e))
            self.assertLess(len(str(e)), 500)
        else:
            self.assertIsInstance(arguments, dict)

    @given(st.binary(max_size=200))
    def test_anyBytes(self, data: bytes) -> None:
        """
        Random bytes.
        """
        self.check(data)

    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
            lambda inner: st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=8), inner, max_size=4),
            max_leaves=20,
        ),
        st.sampled_from(["result", "arguments", "tag"]),
    )
    def test_anyJSON(self, value, key: str) -> None:
        """
        Any JSON value, alone or under one of the reply's keys.
        """
        self.check(json.dumps(value).encode())
        self.check(json.dumps({"result": "success", key: value}).encode())

    def test_truncated(self) -> None:
        """
        Every truncation of a good reply.
        """
        good = json.dumps(
            {"result": "success", "arguments": {"torrents": [{"id": 1}]}, "tag": 1}
        ).encode()
        for end in range(len(good)):
            self.assertRaises(ProtocolError, self.client._decode, "m", 1, good[:end])
        self.assertEqual(self.client._decode("m", 1, good), {"torrents": [{"id": 1}]})
