"""
aria2 as a seeder on 127.0.0.1 for download tests (C{tests/realclients.py}
has only the leecher).

Flags follow C{shared/peers.md}: loopback only, no DHT, LSD or PEX, no
up-front hash check (C{--bt-seed-unverified}), seeding forever
(C{--seed-ratio=0.0}).  A missing aria2 raises (the test fails, never
skips).
"""

from __future__ import annotations

import os
import subprocess
from typing import Optional, Sequence

from tests.realclients import aria2Binary, aria2NetworkFlags
from tests.realpeers import freePort, stopProcess, waitForTCP

__all__ = ["Aria2Seeder", "seederFor"]


class Aria2Seeder:
    """
    One C{aria2c} process seeding one torrent.

    @ivar port: its BitTorrent listening port on 127.0.0.1.
    @ivar process: the C{subprocess.Popen}.
    @ivar logPath: where its output goes (for failure messages).
    """

    def __init__(
        self,
        torrentPath: str,
        dataDir: str,
        logPath: str,
        port: Optional[int] = None,
        extra: Sequence[str] = (),
    ) -> None:
        """
        Start seeding; returns once aria2 accepts connections (about 1 s).

        @param torrentPath: the .torrent file.
        @param dataDir: the directory holding the torrent's data (the file
            of a single-file torrent, or the torrent's top directory).
        @param logPath: a file for aria2's output.
        @param port: its listening port (a free one by default).
        @param extra: more aria2 options (e.g. C{--max-upload-limit=1M}).
        @raise RuntimeError: if aria2 is missing or does not start listening.
        """
        self.port = port or freePort()
        self.logPath = logPath
        args = [
            aria2Binary(),
            f"--dir={dataDir}",
            "--bt-seed-unverified=true",
            "--seed-ratio=0.0",
            "--check-integrity=false",
            *aria2NetworkFlags(self.port),
            *extra,
            torrentPath,
        ]
        with open(logPath, "wb") as log:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            waitForTCP(self.port, timeout=15.0, process=self.process)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"aria2 did not start seeding: {e}; {self.log()}") from e

    def log(self) -> str:
        """
        The end of aria2's output so far.
        """
        try:
            with open(self.logPath, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """
        Stop aria2 (SIGTERM, then SIGKILL after 5 s).
        """
        stopProcess(self.process)


def seederFor(test, torrentBytes: bytes, dataDir: str, **kwargs) -> Aria2Seeder:
    """
    Write C{torrentBytes} next to C{dataDir}, start an L{Aria2Seeder} over it
    and stop it when C{test} ends.

    @param test: a trial C{TestCase} (for C{mktemp} and C{addCleanup}).
    @param kwargs: more arguments for L{Aria2Seeder}.
    """
    base = os.path.abspath(test.mktemp())
    os.makedirs(base)
    torrentPath = os.path.join(base, "aria2.torrent")
    with open(torrentPath, "wb") as f:
        f.write(torrentBytes)
    seeder = Aria2Seeder(
        torrentPath, dataDir, os.path.join(base, "aria2.log"), **kwargs
    )
    test.addCleanup(seeder.stop)
    return seeder
