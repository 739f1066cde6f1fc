"""
Real libtorrent peers on 127.0.0.1 for download tests: test data on disk,
torrents made by libtorrent itself (L{makeTorrent}, which is
L{tests.realclients.makeLibtorrentTorrent}), a seeder and a leecher.

Everything binds 127.0.0.1 only; DHT, LSD, UPnP, NAT-PMP, PEX and uTP are
off.  A missing libtorrent raises (tests fail, never skip).
"""

from __future__ import annotations

import os
import time
from typing import Optional

try:
    import libtorrent as lt
except ImportError as e:  # pragma: no cover
    raise RuntimeError(
        "the libtorrent Python bindings are missing (pip install libtorrent)"
    ) from e

from tests.realclients import loopbackSession, torrentFlags, writeFiles
from tests.realclients import makeLibtorrentTorrent as makeTorrent
from tests.realpeers import freePort

__all__ = [
    "freePort",
    "writeFiles",
    "writeLargeFile",
    "makeTorrent",
    "LibtorrentPeer",
    "libtorrentSeeder",
    "libtorrentLeecher",
]


def writeLargeFile(path: str, size: int) -> None:
    """
    A large file of pseudo-random bytes, fast (a random 1 MiB block
    repeated with a varying prefix, so that no two pieces are alike).
    """
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        written = 0
        counter = 0
        while written < size:
            block[:8] = counter.to_bytes(8, "big")
            chunk = memoryview(block)[: min(len(block), size - written)]
            f.write(chunk)
            written += len(chunk)
            counter += 1


class LibtorrentPeer:
    """
    A libtorrent session with one torrent, seeding or leeching (the
    settings of L{tests.realclients.loopbackSettings}).

    @ivar port: its listening port on 127.0.0.1.
    """

    def __init__(
        self,
        savePath: str,
        torrent: bytes,
        seed: bool,
        port: Optional[int] = None,
    ) -> None:
        self.port = port or freePort()
        self.session = loopbackSession(self.port)
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(lt.bdecode(torrent))
        params.save_path = savePath
        # Replaces the default flags: the torrent starts at once, not
        # paused or auto-managed (LibtorrentSession.add keeps them).
        params.flags = torrentFlags(seed)
        self.handle = self.session.add_torrent(params)
        self._waitListening()

    def _waitListening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.session.is_listening() and self.session.listen_port():
                return
            time.sleep(0.01)
        raise RuntimeError(f"libtorrent is not listening on {self.port}")

    def reannounce(self) -> None:
        """
        Announce to the trackers now.
        """
        self.handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)

    def connect(self, host: str, port: int) -> None:
        """
        Connect to a peer.
        """
        self.handle.connect_peer((host, port))

    @property
    def finished(self) -> bool:
        """
        Whether every piece is there.
        """
        return self.handle.status().is_finished

    def close(self) -> None:
        """
        End the session.
        """
        if self.session is not None:
            self.session.remove_torrent(self.handle)
            self.session = None
            self.handle = None


def libtorrentSeeder(savePath: str, torrent: bytes, port=None) -> LibtorrentPeer:
    """
    A libtorrent seeder (seed mode: no up-front hash check).
    """
    return LibtorrentPeer(savePath, torrent, seed=True, port=port)


def libtorrentLeecher(savePath: str, torrent: bytes, port=None) -> LibtorrentPeer:
    """
    A libtorrent leecher.
    """
    return LibtorrentPeer(savePath, torrent, seed=False, port=port)
