"""
Helpers that run real BitTorrent software on 127.0.0.1 for the interop
tests (see C{shared/peers.md}).

Each helper is independent: it starts its program on free loopback ports,
waits until the program answers, and stops it in L{stop}.  A missing binary
raises L{MissingSoftware} so that the test fails (never skips).  These are
blocking helpers meant for C{setUp}/C{setUpClass} and cleanups.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from typing import Iterable, Optional
from urllib.parse import quote_from_bytes

__all__ = [
    "MissingSoftware",
    "freePort",
    "freeUDPPort",
    "waitForTCP",
    "stopProcess",
    "Opentracker",
]


class MissingSoftware(RuntimeError):
    """
    A program an interop test needs is not installed.
    """


def _require(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingSoftware(f"{name} is not installed ({install})")
    return path


def freePort() -> int:
    """
    A port free for both TCP and UDP on 127.0.0.1 right now (a tracker, or
    a peer that also takes UDP, uses both).
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1")


def freeUDPPort() -> int:
    """
    A UDP port free on 127.0.0.1 right now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitForTCP(port: int, timeout: float = 10.0, process=None) -> None:
    """
    Block until something accepts TCP connections on 127.0.0.1:C{port}.

    @raise RuntimeError: after C{timeout} seconds, or if C{process} exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")
        time.sleep(0.02)


def stopProcess(process: subprocess.Popen, timeout: float = 5.0) -> Optional[int]:
    """
    Stop a subprocess: SIGTERM, then SIGKILL if it is still running after
    C{timeout} seconds; reap it either way.

    @return: its exit status.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class Opentracker:
    """
    One opentracker (HTTP and UDP tracker) on 127.0.0.1.

    Debian's opentracker serves only whitelisted info-hashes.  Run as root it
    chroots into its directory and drops to C{nobody}, so the directory and
    the whitelist in it are made readable by everyone; C{-w /whitelist.txt}
    names the file inside the directory.  Its peers never expire during a
    test: restart it per test class.

    @ivar httpPort: its TCP (HTTP) port.
    @ivar udpPort: its UDP port.
    """

    def __init__(self, infoHashes: Iterable[bytes] = ()) -> None:
        """
        @param infoHashes: the 20-byte info-hashes to whitelist at start.
        """
        self.binary = _require("opentracker", "apt-get install -y opentracker")
        self.infoHashes = list(infoHashes)
        self.directory: Optional[str] = None
        self.process: Optional[subprocess.Popen] = None
        self.httpPort = 0
        self.udpPort = 0

    @property
    def announceURL(self) -> str:
        """
        The HTTP announce URL.
        """
        return f"http://127.0.0.1:{self.httpPort}/announce"

    @property
    def udpURL(self) -> str:
        """
        The UDP announce URL.
        """
        return f"udp://127.0.0.1:{self.udpPort}/announce"

    def _writeWhitelist(self) -> None:
        path = os.path.join(self.directory, "whitelist.txt")
        with open(path + ".new", "w") as f:
            f.write("".join(h.hex() + "\n" for h in self.infoHashes))
        os.chmod(path + ".new", 0o644)
        os.replace(path + ".new", path)

    def start(self) -> Opentracker:
        """
        Start the tracker and wait until both ports answer.

        @return: C{self}.
        """
        self.directory = tempfile.mkdtemp(prefix="opentracker-")
        os.chmod(self.directory, 0o755)
        self._writeWhitelist()
        self.logPath = os.path.join(self.directory, "opentracker.log")
        self._log = open(self.logPath, "wb")
        for _ in range(5):
            self.httpPort = freePort()
            self.udpPort = freeUDPPort()
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "-i",
                    "127.0.0.1",
                    "-p",
                    str(self.httpPort),
                    "-P",
                    str(self.udpPort),
                    "-d",
                    self.directory,
                    "-w",
                    "/whitelist.txt",
                ],
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            try:
                waitForTCP(self.httpPort, process=self.process)
                self._waitForUDP()
            except RuntimeError:
                # Most likely a port taken between freePort() and exec.
                self._kill()
                continue
            if self.infoHashes:
                self._waitForAccepted(self.infoHashes[0])
            return self
        with open(self.logPath, "rb") as f:
            output = f.read().decode("utf-8", "replace")
        raise RuntimeError(f"opentracker did not start: {output}")

    def _waitForUDP(self, timeout: float = 10.0) -> None:
        """
        Block until a BEP 15 connect request is answered.
        """
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.1)
            tid = random.getrandbits(32)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError("opentracker exited")
                s.sendto(
                    struct.pack("!QII", 0x41727101980, 0, tid),
                    ("127.0.0.1", self.udpPort),
                )
                try:
                    data = s.recv(64)
                except OSError:
                    continue
                if len(data) == 16 and struct.unpack("!II", data[:8]) == (0, tid):
                    return
        raise RuntimeError(f"opentracker does not answer on UDP {self.udpPort}")

    def whitelist(self, infoHashes: Iterable[bytes], timeout: float = 10.0) -> None:
        """
        Add info-hashes to the whitelist, reload it (SIGHUP) and wait until
        the tracker accepts the first of them.
        """
        added = list(infoHashes)
        self.infoHashes.extend(added)
        self._writeWhitelist()
        self.process.send_signal(signal.SIGHUP)
        if added:
            self._waitForAccepted(added[0], timeout)

    def _waitForAccepted(self, infoHash: bytes, timeout: float = 10.0) -> None:
        """
        Block until the tracker accepts C{infoHash}.  Opentracker reads its
        whitelist in a thread of its own, at start and on SIGHUP, so its
        ports answer before the list is loaded: an announce in that window
        fails with "not authorized".
        """
        # A "stopped" announce from a throwaway peer adds nobody to the swarm
        # but tells whether the info-hash is accepted yet.
        url = (
            f"{self.announceURL}?info_hash={quote_from_bytes(infoHash, safe='')}"
            f"&peer_id={'-WL0000-' + 'x' * 12}&port=1&uploaded=0&downloaded=0"
            f"&left=0&event=stopped&compact=1"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url, timeout=2) as r:
                if b"failure reason" not in r.read():
                    return
            time.sleep(0.05)
        raise RuntimeError("opentracker did not load its whitelist")

    def _kill(self) -> None:
        if self.process is None:
            return
        stopProcess(self.process)
        self.process = None

    def stop(self) -> None:
        """
        Stop the tracker and remove its directory.
        """
        self._kill()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
