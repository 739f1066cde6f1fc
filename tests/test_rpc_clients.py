"""
The RPC on a real loopback port against what real clients send: Sonarr's
and Radarr's requests replayed byte for byte, hostile clients (a 50 MB
body, deep JSON, wrong passwords, wrong types...), and C{torrent-add} of
an http URL fetched with treq from a local web server.
"""

from __future__ import annotations

import base64
import json
import os
import re

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.util import Redirect

from btorrent.codec import metainfo
from btorrent.control.access import hashPassword
from btorrent.control.api import SEEDING
from tests.fakesession import exampleSession
from tests.rpcserver import RPCServer, exchange, streamBody
from tests.test_rpc_methods import SONARR_FIELDS, makeTorrentFile

#: Sonarr's user agent and the headers its HttpClient adds (Sonarr 4 on
#: .NET 6: TransmissionProxy.BuildRequest sets Accept: application/json
#: and pre-emptive Basic credentials; ProcessRequest adds the JSON
#: Content-Type and the session id).
SONARR_UA = b"Sonarr/4.0.11.2680 (ubuntu 22.04)"


def sonarrGet(port: int, auth: bytes) -> bytes:
    return (
        b"GET /transmission/rpc HTTP/1.1\r\n"
        b"Host: 127.0.0.1:%d\r\n"
        b"User-Agent: %s\r\n"
        b"Accept: application/json\r\n"
        b"Authorization: Basic %s\r\n"
        b"Accept-Encoding: gzip, deflate, br\r\n"
        b"\r\n" % (port, SONARR_UA, auth)
    )


def sonarrPost(port: int, auth: bytes, sessionId: bytes, body: bytes) -> bytes:
    return (
        b"POST /transmission/rpc HTTP/1.1\r\n"
        b"Host: 127.0.0.1:%d\r\n"
        b"User-Agent: %s\r\n"
        b"Accept: application/json\r\n"
        b"Authorization: Basic %s\r\n"
        b"X-Transmission-Session-Id: %s\r\n"
        b"Accept-Encoding: gzip, deflate, br\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n"
        b"\r\n%s" % (port, SONARR_UA, auth, sessionId, len(body), body)
    )


class SonarrTests(TestCase):
    """
    Sonarr's conversation (TransmissionProxy.cs), replayed on one
    keep-alive connection with pre-emptive Basic credentials.
    """

    timeout = 60

    async def test_sonarr(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        session = exampleSession(reactor.seconds, directory)
        server = RPCServer(
            self,
            session,
            reactor,
            username="sonarr",
            passwordHash=hashPassword("hunter2", iterations=10_000),
        )
        port = server.port
        auth = base64.b64encode(b"sonarr:hunter2")
        torrentPath, data = makeTorrentFile(self, "Show.S01E01.mkv")
        infoHash = metainfo.load(data).infoHash.hex()
        meta = base64.b64encode(data)

        # AuthenticateClient: a GET that must answer 409 with the id.
        (first,) = await deferToThread(exchange, port, sonarrGet(port, auth))
        self.assertEqual(first.code, 409)
        sid = first.header(b"X-Transmission-Session-Id")
        self.assertEqual(len(sid), 48)

        bodies = [
            b'{"method":"session-get"}',
            b'{"method":"torrent-add","arguments":{"metainfo":"%s","paused":false,'
            b'"download-dir":"/srv/tv/sonarr","labels":["tv-sonarr"]}}' % meta,
            b'{"method":"torrent-set","arguments":{"ids":["%s"],"seedRatioLimit":1.0,'
            b'"seedRatioMode":1,"seedIdleLimit":1440,"seedIdleMode":1}}'
            % infoHash.encode(),
            b'{"method":"queue-move-top","arguments":{"ids":["%s"]}}'
            % infoHash.encode(),
            b'{"method":"torrent-get","arguments":{"fields":%s,"ids":["%s"]}}'
            % (json.dumps(SONARR_FIELDS).replace(" ", "").encode(), infoHash.encode()),
            b'{"method":"torrent-remove","arguments":{"ids":["%s"],'
            b'"delete-local-data":true}}' % infoHash.encode(),
        ]
        responses = await deferToThread(
            exchange, port, *[sonarrPost(port, auth, sid, body) for body in bodies]
        )
        for response in responses:
            self.assertEqual(response.code, 200)
            self.assertEqual(
                response.header(b"Content-Type"), b"application/json; charset=UTF-8"
            )
        answers = [json.loads(r.body) for r in responses]
        for answer in answers:
            self.assertEqual(answer["result"], "success", answer)

        config = answers[0]["arguments"]
        # Sonarr's ValidateVersion reads the first dotted number: >= 2.40.
        major, minor = map(int, re.match(r"(\d+)\.(\d+)", config["version"]).groups())
        self.assertGreaterEqual((major, minor), (2, 40))
        self.assertGreaterEqual(config["rpc-version"], 14)
        self.assertEqual(config["download-dir"], directory)
        self.assertIs(type(config["seedRatioLimited"]), bool)
        self.assertIs(type(config["idle-seeding-limit-enabled"]), bool)

        self.assertEqual(
            answers[1]["arguments"],
            {
                "torrent-added": {
                    "hashString": infoHash,
                    "id": 3,
                    "name": "Show.S01E01.mkv",
                }
            },
        )
        source, options = session.added[0]
        self.assertEqual(source, data)
        self.assertEqual(options.downloadDir, "/srv/tv/sonarr")
        self.assertEqual(options.labels, ("tv-sonarr",))
        self.assertFalse(options.paused)

        (torrent,) = answers[4]["arguments"]["torrents"]
        self.assertEqual(sorted(torrent), sorted(SONARR_FIELDS))
        self.assertEqual(torrent["hashString"], infoHash)
        self.assertEqual(torrent["downloadDir"], "/srv/tv/sonarr")
        self.assertEqual(torrent["labels"], ["tv-sonarr"])
        self.assertEqual(
            torrent["queuePosition"] if "queuePosition" in torrent else 0, 0
        )
        self.assertEqual(
            (torrent["seedRatioLimit"], torrent["seedRatioMode"]), (1.0, 1)
        )
        self.assertEqual((torrent["seedIdleLimit"], torrent["seedIdleMode"]), (1440, 1))
        self.assertEqual(torrent["fileCount"], 1)
        for name in ("eta", "totalSize", "leftUntilDone", "status", "secondsSeeding"):
            self.assertIs(type(torrent[name]), int, name)
        self.assertEqual(
            [c for c in session.calls if c[0] == "queueMove"],
            [("queueMove", [3], "top")],
        )
        self.assertIn(("removeTorrent", 3, True), session.calls)
        self.assertIsNone(session.torrent(infoHash))


class HostileTests(TestCase):
    """
    Clients that misbehave get their clear answer; the server stays well.
    """

    timeout = 120

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.session = exampleSession(reactor.seconds, directory)
        self.server = RPCServer(self, self.session, reactor)

    async def sessionId(self) -> bytes:
        (response,) = await deferToThread(
            exchange,
            self.server.port,
            b"GET /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        )
        return response.header(b"X-Transmission-Session-Id")

    def post(self, body: bytes, sid: bytes, host: bytes = b"127.0.0.1") -> bytes:
        return (
            b"POST /transmission/rpc/ HTTP/1.1\r\nHost: %s\r\n"
            b"X-Transmission-Session-Id: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (host, sid, len(body), body)
        )

    async def call(self, body: bytes, sid: bytes, **kw):
        (response,) = await deferToThread(
            exchange, self.server.port, self.post(body, sid, **kw)
        )
        return response

    async def assertHealthy(self) -> None:
        sid = await self.sessionId()
        response = await self.call(
            b'{"method":"torrent-get","arguments":{"fields":["id"]}}', sid
        )
        self.assertEqual(
            json.loads(response.body)["arguments"]["torrents"], [{"id": 1}, {"id": 2}]
        )

    async def test_fiftyMegabytes(self) -> None:
        """
        A 50 MB body, sent whole: 413 with a JSON result; the server read
        and dropped it without keeping it.  With chunked encoding too.
        """
        megabyte = b"x" * (1 << 20)
        head = (
            b"POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: %d\r\n\r\n" % (50 << 20)
        )
        response, sent = await deferToThread(
            streamBody, self.server.port, head, megabyte, 50
        )
        self.assertEqual(response.code, 413)
        self.assertIn("larger than", json.loads(response.body)["result"])
        chunk = b"100000\r\n" + megabyte + b"\r\n"
        head = (
            b"POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        response, sent = await deferToThread(
            streamBody, self.server.port, head, chunk, 50
        )
        self.assertEqual(response.code, 413)
        await self.assertHealthy()

    async def test_sequence(self) -> None:
        """
        No session id, a stale one, a foreign Host, deep JSON, wrong types,
        an unknown method, a local non-torrent file: each its answer.
        """
        port = self.server.port
        bare = b'{"method":"session-stats"}'
        (response,) = await deferToThread(
            exchange,
            port,
            b"POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(bare), bare),
        )
        self.assertEqual(response.code, 409)
        response = await self.call(bare, b"0" * 48)
        self.assertEqual(response.code, 409)
        sid = response.header(b"X-Transmission-Session-Id")
        response = await self.call(bare, sid, host=b"attacker.example")
        self.assertEqual(response.code, 421)

        notTorrent = os.path.abspath(self.mktemp())
        with open(notTorrent, "wb") as f:
            f.write(b"#!/bin/sh\necho hi\n")
        cases = [
            (b"[" * 200_000, "nested deeper"),
            (b'{"method":"torrent-remove","arguments":{"ids":{}}}', '"ids" must be'),
            (
                b'{"method":"torrent-set","arguments":{"ids":1,"peer-limit":"x"}}',
                "peer-limit",
            ),
            (
                b'{"method":"session-set","arguments":{"speed-limit-down":-5}}',
                "speed-limit-down",
            ),
            (
                b'{"method":"torrent-set","arguments":{"ids":1,"files-wanted":[1000000000]}}',
                "file index out of range",
            ),
            (b'{"method":"rm -rf"}', "method name not recognized"),
            (
                b'{"method":"torrent-add","arguments":{"filename":"%s"}}'
                % notTorrent.encode(),
                "invalid or corrupt torrent file",
            ),
        ]
        for body, text in cases:
            response = await self.call(body, sid)
            self.assertEqual(response.code, 200)
            self.assertIn(text, json.loads(response.body)["result"])
        self.assertEqual(len(self.session.torrents()), 2)
        self.assertEqual(self.session.torrent(1).options.peerLimit, 50)
        await self.assertHealthy()

    async def test_lockout(self) -> None:
        """
        100 wrong passwords lock everyone out with 403.
        """
        server = RPCServer(
            self,
            self.session,
            reactor,
            username="u",
            passwordHash=hashPassword("right", iterations=1000),
        )
        requests = [
            b"GET /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\n\r\n"
            % base64.b64encode(b"u:wrong%d" % i)
            for i in range(100)
        ]
        responses = await deferToThread(exchange, server.port, *requests)
        self.assertEqual({r.code for r in responses}, {401})
        right = (
            b"GET /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\n\r\n"
            % base64.b64encode(b"u:right")
        )
        (response,) = await deferToThread(exchange, server.port, right)
        self.assertEqual(response.code, 403)
        self.assertIn("too many", json.loads(response.body)["result"])


class _Slow(Resource):
    """
    A body without Content-Length that never ends (until the client gives
    up).
    """

    isLeaf = True

    def render_GET(self, request):
        def more():
            if not request._disconnected:
                request.write(b"d" * 65536)
                reactor.callLater(0, more)

        more()
        return NOT_DONE_YET


class _Big(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Length", b"%d" % (metainfo.MAX_TORRENT_SIZE + 1))
        request.write(b"d")
        return NOT_DONE_YET


class _Root(Resource):
    def getChild(self, path, request):
        return notFound()


class URLTests(TestCase):
    """
    C{torrent-add} with an http URL: fetched with treq, capped.
    """

    timeout = 60

    def setUp(self) -> None:
        self.torrentPath, self.data = makeTorrentFile(self)
        web = _Root()
        torrent = Resource()
        torrent.isLeaf = True
        torrent.render_GET = lambda request: self.data
        web.putChild(b"t.torrent", torrent)
        web.putChild(b"moved", Redirect(b"/t.torrent"))
        web.putChild(b"endless", _Slow())
        web.putChild(b"big", _Big())
        self.web = reactor.listenTCP(0, Site(web), interface="127.0.0.1")
        self.addCleanup(self.web.stopListening)
        self.base = f"http://127.0.0.1:{self.web.getHost().port}"
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.session = exampleSession(reactor.seconds, directory)
        self.server = RPCServer(self, self.session, reactor)

    async def add(self, url: str) -> dict:
        (first,) = await deferToThread(
            exchange,
            self.server.port,
            b"GET /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        )
        sid = first.header(b"X-Transmission-Session-Id")
        body = json.dumps(
            {"method": "torrent-add", "arguments": {"filename": url}}
        ).encode()
        (response,) = await deferToThread(
            exchange,
            self.server.port,
            b"POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Transmission-Session-Id: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (sid, len(body), body),
        )
        return json.loads(response.body)

    async def test_fetch(self) -> None:
        answer = await self.add(self.base + "/t.torrent")
        self.assertEqual(answer["result"], "success")
        self.assertEqual(self.session.added[0][0], self.data)
        answer = await self.add(self.base + "/moved")
        self.assertIn("torrent-duplicate", answer["arguments"])

    async def test_errors(self) -> None:
        answer = await self.add(self.base + "/missing")
        self.assertEqual(
            answer["result"], "gotMetadataFromURL: http error 404: Not Found"
        )
        answer = await self.add(self.base + "/big")
        self.assertIn("larger than", answer["result"])
        answer = await self.add(self.base + "/endless")
        self.assertIn("larger than", answer["result"])
        answer = await self.add("http://127.0.0.1:1/refused.torrent")
        self.assertIn("gotMetadataFromURL", answer["result"])
        self.assertEqual(self.session.added, [])
        self.assertEqual(self.session.torrent(1).state, SEEDING)
