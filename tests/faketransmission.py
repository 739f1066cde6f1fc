"""
An in-process fake of Transmission 3.00's RPC endpoint on C{twisted.web},
for unit tests of RPC clients: the C{X-Transmission-Session-Id} dance (409),
optional Basic authentication (401 with a C{WWW-Authenticate} challenge),
the tag echo, and a few methods over torrents kept in memory
(C{session-get}, C{session-stats}, C{torrent-add}, C{torrent-get},
C{torrent-start}, C{torrent-stop}, C{torrent-verify}, C{torrent-remove},
C{torrent-set}).  Tests make it misbehave with L{FakeTransmission.override}.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.web.resource import Resource
from twisted.web.server import Site

from btorrent.codec import metainfo

__all__ = ["FakeTransmission", "listen"]


class FakeTransmission(Resource):
    """
    The fake endpoint.

    @ivar requests: every request seen, as C{(method or None, arguments,
        headers)} where headers maps lowercase names to values.
    @ivar calls: the RPC calls answered (past the 401/409 checks), as
        C{(method, arguments)}.
    @ivar torrents: id → torrent record (Transmission's field names).
    @ivar override: if set, C{override(request, body)} answers every
        request instead (return bytes to send, or C{NOT_DONE_YET}).
    @ivar rotate: give a new session id on every request (so a client's
        retry gets another 409).
    """

    isLeaf = True

    def __init__(self, credentials: Optional[Tuple[str, str]] = None) -> None:
        super().__init__()
        self.credentials = credentials
        self.sessionId = secrets.token_urlsafe(36)[:48]
        self.requests: List[Tuple[Optional[str], Any, Dict[str, str]]] = []
        self.calls: List[Tuple[str, Dict[str, Any]]] = []
        self.torrents: Dict[int, Dict[str, Any]] = {}
        self.nextId = 1
        self.override: Optional[Callable] = None
        self.rotate = False

    # HTTP.

    def render_GET(self, request) -> bytes:
        return self.render_POST(request)

    def render_POST(self, request) -> bytes:
        body = request.content.read()
        headers = {
            k.decode().lower(): b",".join(v).decode("latin-1")
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        method = parsed.get("method") if isinstance(parsed, dict) else None
        self.requests.append((method, parsed, headers))
        if self.override is not None:
            return self.override(request, body)
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(
                ":".join(self.credentials).encode()
            ).decode("ascii")
            if headers.get("authorization") != expected:
                request.setResponseCode(401)
                request.setHeader(b"WWW-Authenticate", b'Basic realm="Transmission"')
                return b"<h1>401: Unauthorized</h1>"
        if self.rotate:
            self.sessionId = secrets.token_urlsafe(36)[:48]
        request.setHeader(b"X-Transmission-Session-Id", self.sessionId.encode())
        if headers.get("x-transmission-session-id") != self.sessionId:
            request.setResponseCode(409)
            return b"<h1>409: Conflict</h1>"
        if not isinstance(parsed, dict) or not isinstance(method, str):
            return self._reply({"result": "no method name"}, None)
        arguments = parsed.get("arguments", {})
        self.calls.append((method, arguments))
        handler = getattr(self, "rpc_" + method.replace("-", "_"), None)
        if handler is None:
            result, answer = "method name not recognized", {}
        else:
            try:
                result, answer = "success", handler(arguments)
            except _Refused as e:
                result, answer = str(e), {}
        return self._reply({"result": result, "arguments": answer}, parsed.get("tag"))

    def _reply(self, reply: Dict[str, Any], tag) -> bytes:
        if tag is not None:
            reply["tag"] = tag
        return json.dumps(reply).encode()

    # Methods.

    def rpc_session_get(self, arguments) -> dict:
        return {"version": "3.00 (fake)", "rpc-version": 16, "rpc-version-minimum": 1}

    def rpc_session_stats(self, arguments) -> dict:
        stats = {
            "uploadedBytes": 1000,
            "downloadedBytes": 4000,
            "filesAdded": 2,
            "sessionCount": 1,
            "secondsActive": 3725,
        }
        return {
            "activeTorrentCount": sum(
                1 for t in self.torrents.values() if t["status"] != 0
            ),
            "pausedTorrentCount": sum(
                1 for t in self.torrents.values() if t["status"] == 0
            ),
            "torrentCount": len(self.torrents),
            "downloadSpeed": 1500,
            "uploadSpeed": 0,
            "current-stats": stats,
            "cumulative-stats": dict(stats, sessionCount=7),
        }

    def rpc_torrent_add(self, arguments) -> dict:
        if "metainfo" in arguments:
            try:
                info = metainfo.load(base64.b64decode(arguments["metainfo"]))
            except (ValueError, metainfo.MetainfoError):
                raise _Refused("invalid or corrupt torrent file") from None
            name, infoHash = info.name, info.infoHash.hex()
            files = [
                {
                    "name": "/".join(
                        (info.name,) + f.path if info.multiFile else f.path
                    ),
                    "length": f.length,
                    "bytesCompleted": 0,
                }
                for f in info.files
            ]
        elif str(arguments.get("filename", "")).startswith("magnet:?xt=urn:btih:"):
            infoHash = arguments["filename"][20:60].lower()
            name, files = infoHash, []
        else:
            raise _Refused("invalid or corrupt torrent file")
        for t in self.torrents.values():
            if t["hashString"] == infoHash:
                return {"torrent-duplicate": _pick(t, ["id", "name", "hashString"])}
        torrentId = self.nextId
        self.nextId += 1
        size = sum(f["length"] for f in files)
        self.torrents[torrentId] = {
            "id": torrentId,
            "name": name,
            "hashString": infoHash,
            "status": 0 if arguments.get("paused") else 4,
            "downloadDir": arguments.get("download-dir", "/downloads"),
            "percentDone": 0.0,
            "sizeWhenDone": size,
            "totalSize": size,
            "leftUntilDone": size,
            "isFinished": False,
            "eta": -1,
            "rateDownload": 0,
            "rateUpload": 0,
            "uploadRatio": -1,
            "error": 0,
            "errorString": "",
            "peersConnected": 0,
            "files": files,
            "fileStats": [
                {"bytesCompleted": 0, "wanted": True, "priority": 0} for _ in files
            ],
            "downloadLimited": False,
            "downloadLimit": 100,
            "uploadLimited": False,
            "uploadLimit": 100,
            "seedRatioMode": 0,
            "seedRatioLimit": 2.0,
            "trackers": [],
        }
        return {
            "torrent-added": _pick(
                self.torrents[torrentId], ["id", "name", "hashString"]
            )
        }

    def _selected(self, arguments) -> List[Dict[str, Any]]:
        if "ids" not in arguments:
            return list(self.torrents.values())
        ids = arguments["ids"]
        ids = ids if isinstance(ids, list) else [ids]
        chosen = []
        for t in self.torrents.values():
            if t["id"] in ids or t["hashString"] in ids:
                chosen.append(t)
        return chosen

    def rpc_torrent_get(self, arguments) -> dict:
        fields = arguments.get("fields")
        if not isinstance(fields, list):
            raise _Refused("no fields")
        return {"torrents": [_pick(t, fields) for t in self._selected(arguments)]}

    def rpc_torrent_start(self, arguments) -> dict:
        for t in self._selected(arguments):
            t["status"] = 4
        return {}

    def rpc_torrent_stop(self, arguments) -> dict:
        for t in self._selected(arguments):
            t["status"] = 0
        return {}

    def rpc_torrent_verify(self, arguments) -> dict:
        for t in self._selected(arguments):
            t["status"] = 1
        return {}

    def rpc_torrent_remove(self, arguments) -> dict:
        for t in self._selected(arguments):
            del self.torrents[t["id"]]
        return {}

    def rpc_torrent_set(self, arguments) -> dict:
        for t in self._selected(arguments):
            for key, value in arguments.items():
                if key in ("files-wanted", "files-unwanted") and "fileStats" not in t:
                    t[key] = value
                elif key == "files-wanted":
                    for i in value or range(len(t["fileStats"])):
                        t["fileStats"][i]["wanted"] = True
                elif key == "files-unwanted":
                    for i in value or range(len(t["fileStats"])):
                        t["fileStats"][i]["wanted"] = False
                elif key != "ids":
                    t[key] = value
        return {}


class _Refused(Exception):
    """
    A method's failure: its text becomes the reply's C{result}.
    """


def _pick(torrent: Dict[str, Any], fields) -> Dict[str, Any]:
    return {k: torrent[k] for k in fields if k in torrent}


def listen(reactor, resource: FakeTransmission, path: bytes = b"transmission"):
    """
    Serve C{resource} at C{/transmission/rpc} on 127.0.0.1, any port.

    @return: C{(port, url)}: the listening port (stop it with
        C{stopListening}) and the endpoint's URL.
    """
    root = Resource()
    parent = Resource()
    root.putChild(path, parent)
    parent.putChild(b"rpc", resource)
    site = Site(root)
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/{path.decode()}/rpc"
    return port, url
