"""
A real C{twistd -n btorrent} daemon for tests: its own state, download and
log files under a test directory, its peer port and RPC port on 127.0.0.1,
driven over its Transmission RPC.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable, List, Optional

from tests.realpeers import freePort, stopProcess
from tests.realtransmission import RPCClient
from tests.twistdproc import repositoryEnvironment, twistdCommand


class DaemonProcess:
    """
    One C{twistd -n btorrent} process, which can be stopped (SIGTERM),
    killed (SIGKILL) and started again on the same state dir and ports.

    @ivar stateDir: its state dir.
    @ivar downloadDir: its default download dir.
    @ivar peerPort: its peer port.
    @ivar rpcPort: its RPC port.
    @ivar rpc: an L{RPCClient} of its RPC.
    """

    def __init__(
        self,
        test,
        base: str,
        *arguments: str,
        downloadDir: Optional[str] = None,
        start: bool = True,
        auth=None,
    ) -> None:
        self.test = test
        self.base = base
        self.stateDir = os.path.join(base, "state")
        self.downloadDir = downloadDir or os.path.join(base, "downloads")
        os.makedirs(self.downloadDir, exist_ok=True)
        self.logFile = os.path.join(base, "twistd.log")
        self.peerPort = freePort()
        self.rpcPort = freePort()
        self.arguments = list(arguments)
        self.auth = auth
        self.rpc = RPCClient(f"http://127.0.0.1:{self.rpcPort}/transmission/rpc", auth)
        self.process: Optional[subprocess.Popen] = None
        self.runs = 0
        test.addCleanup(self.kill)
        if start:
            self.start()

    def command(self) -> List[str]:
        """
        Its command line.
        """
        return twistdCommand(
            "btorrent",
            "--state-dir",
            self.stateDir,
            "--download-dir",
            self.downloadDir,
            "--port",
            str(self.peerPort),
            "--interface",
            "127.0.0.1",
            "--rpc-port",
            str(self.rpcPort),
            *self.arguments,
            logFile=self.logFile,
        )

    def start(self, timeout: float = 20.0) -> None:
        """
        Start it and wait until its RPC answers.
        """
        self.runs += 1
        self.process = subprocess.Popen(
            self.command(),
            env=repositoryEnvironment(),
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.rpc = RPCClient(self.rpc.url, self.auth)
        self.waitFor(self._answers, timeout, "the RPC to answer")

    def _answers(self) -> bool:
        try:
            self.rpc.call("session-get", fields=["version"])
        except OSError:
            return False
        return True

    def log(self) -> str:
        """
        Its log so far (every run).
        """
        try:
            with open(self.logFile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def waitFor(self, predicate: Callable[[], bool], seconds: float, what) -> None:
        """
        Poll until C{predicate()} holds; fail after C{seconds}, or at once if
        the daemon exited.
        """
        deadline = time.monotonic() + seconds
        while not predicate():
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"twistd exited:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                text = what() if callable(what) else what
                raise AssertionError(
                    f"timed out after {seconds} s waiting for {text}\n"
                    f"{self.log()[-4000:]}"
                )
            time.sleep(0.1)

    def torrents(self, *fields: str) -> list:
        """
        C{torrent-get} of every torrent.
        """
        return self.rpc.call("torrent-get", fields=["id", *fields])["torrents"]

    def stop(self, timeout: float = 15.0) -> bool:
        """
        SIGTERM and wait.

        @return: whether it shut down cleanly: it logged "Server Shut Down."
            and ended by the signal (twistd raises it again once stopped).
        """
        if self.process is None:
            return False
        process, self.process = self.process, None
        before = self.log().count("Server Shut Down.")
        status = stopProcess(process, timeout)
        clean = self.log().count("Server Shut Down.") > before
        return clean and status in (0, -signal.SIGTERM)

    def kill(self) -> None:
        """
        SIGKILL (nothing saved at exit).
        """
        if self.process is None:
            return
        process, self.process = self.process, None
        try:
            process.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
