"""
A real Transmission (transmission-daemon 3.00) on 127.0.0.1 for interop
tests, driven over its JSON RPC.

Transmission ignores 127.x peers it learns from a tracker, but accepts
incoming loopback connections; it waits about 10 s before its first unchoke
or request, and remembers peers by IP, so each test gets a fresh daemon.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from typing import Optional, Tuple

from tests.realpeers import freePort, stopProcess


class RPCClient:
    """
    A blocking client of a Transmission RPC (Transmission's or btorrent's).

    @ivar url: the RPC's address, e.g. C{http://127.0.0.1:P/transmission/rpc}.
    """

    def __init__(
        self, url: str, auth: Optional[Tuple[str, str]] = None, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.auth = auth
        self.timeout = timeout
        self._session = ""
        # Straight to 127.0.0.1, whatever proxy the environment names.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, **arguments) -> dict:
        """
        Call one RPC method; handles the X-Transmission-Session-Id dance.

        @return: the C{arguments} of the reply.
        @raise RuntimeError: when the C{result} is not C{success}.
        """
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        headers = {}
        if self.auth is not None:
            credentials = base64.b64encode(":".join(self.auth).encode()).decode()
            headers["Authorization"] = "Basic " + credentials
        for _ in range(3):
            request = urllib.request.Request(
                self.url,
                data=body,
                headers={**headers, "X-Transmission-Session-Id": self._session},
            )
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    reply = json.loads(response.read())
            except urllib.error.HTTPError as e:
                if e.code == 409:
                    self._session = e.headers["X-Transmission-Session-Id"]
                    continue
                raise
            if reply.get("result") != "success":
                raise RuntimeError(f"RPC {method}: {reply.get('result')}")
            return reply.get("arguments", {})
        raise RuntimeError("RPC: no session id")


class Transmission:
    """
    One transmission-daemon process with its own config directory.

    @ivar peerPort: its BitTorrent listening port on 127.0.0.1.
    @ivar rpcURL: its RPC endpoint.
    @ivar rpcPort: its RPC (and web) port on 127.0.0.1.
    """

    def __init__(
        self,
        directory: str,
        auth: Optional[Tuple[str, str]] = None,
        webHome: Optional[str] = None,
    ) -> None:
        """
        Start the daemon.

        @param directory: its own directory (config, log, downloads).
        @param auth: C{(user, password)} to require on its RPC, or C{None}.
        @param webHome: a directory it serves at C{/transmission/web/}
            (C{TRANSMISSION_WEB_HOME}), instead of its own web client.
        """
        binary = shutil.which("transmission-daemon")
        if binary is None:
            raise RuntimeError(
                "transmission-daemon is not installed "
                "(apt-get install -y transmission-daemon)"
            )
        self.directory = directory
        self.configDir = os.path.join(directory, "config")
        os.makedirs(self.configDir, exist_ok=True)
        self.peerPort = freePort()
        self.rpcPort = freePort()
        settings = {
            "dht-enabled": False,
            "lpd-enabled": False,
            "pex-enabled": False,
            "utp-enabled": False,
            "port-forwarding-enabled": False,
            "peer-port": self.peerPort,
            "peer-port-random-on-start": False,
            "bind-address-ipv4": "127.0.0.1",
            "bind-address-ipv6": "::1",
            "rpc-bind-address": "127.0.0.1",
            "rpc-port": self.rpcPort,
            "rpc-authentication-required": auth is not None,
            "rpc-username": auth[0] if auth else "",
            "rpc-password": auth[1] if auth else "",
            "rpc-whitelist": "127.0.0.1",
            "rpc-whitelist-enabled": True,
            "rpc-host-whitelist-enabled": False,
            "encryption": 0,
            "start-added-torrents": True,
            "download-dir": os.path.join(directory, "downloads"),
            "incomplete-dir-enabled": False,
            "speed-limit-up-enabled": False,
            "speed-limit-down-enabled": False,
            "ratio-limit-enabled": False,
            "idle-seeding-limit-enabled": False,
            "message-level": 2,
        }
        with open(os.path.join(self.configDir, "settings.json"), "w") as f:
            json.dump(settings, f)
        self.logFile = os.path.join(directory, "transmission.log")
        environment = dict(os.environ)
        if webHome is not None:
            environment["TRANSMISSION_WEB_HOME"] = webHome
        self.process = subprocess.Popen(
            [binary, "-f", "-g", self.configDir, "-e", self.logFile],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.auth = auth
        self.rpcURL = f"http://127.0.0.1:{self.rpcPort}/transmission/rpc"
        self.client = RPCClient(self.rpcURL, auth)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.rpc("session-get")
                break
            except (OSError, urllib.error.URLError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "transmission-daemon did not start; log: " + self.log()
                    ) from None
                time.sleep(0.1)

    @property
    def webURL(self) -> str:
        """
        The address of the web client it serves.
        """
        return f"http://127.0.0.1:{self.rpcPort}/transmission/web/"

    def log(self) -> str:
        """
        The daemon's log so far (for failure messages).
        """
        try:
            with open(self.logFile, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def rpc(self, method: str, **arguments) -> dict:
        """
        Call one RPC method (see L{RPCClient.call}).

        @return: the C{arguments} of the reply.
        """
        return self.client.call(method, **arguments)

    def addTorrent(self, torrentBytes: bytes, downloadDir: str) -> int:
        """
        Add a torrent (seeding if C{downloadDir} already holds the data).

        @return: Transmission's id of the torrent.
        """
        reply = self.rpc(
            "torrent-add",
            metainfo=base64.b64encode(torrentBytes).decode(),
            **{"download-dir": downloadDir, "paused": False},
        )
        added = reply.get("torrent-added") or reply.get("torrent-duplicate")
        return added["id"]

    def status(self, torrentId: int) -> dict:
        """
        Progress figures of one torrent.
        """
        reply = self.rpc(
            "torrent-get",
            ids=[torrentId],
            fields=[
                "percentDone",
                "status",
                "peersConnected",
                "uploadedEver",
                "downloadedEver",
                "haveValid",
                "errorString",
                "recheckProgress",
            ],
        )
        return reply["torrents"][0]

    def waitFor(self, torrentId: int, predicate, timeout: float) -> dict:
        """
        Poll until C{predicate(status)} holds (blocking; use from a thread or
        before the reactor-driven part of a test).
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(torrentId)
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"transmission: timed out in state {status}")
            time.sleep(0.2)

    def stop(self) -> None:
        """
        Stop the daemon.
        """
        stopProcess(self.process, 10)
