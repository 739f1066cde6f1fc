"""
Real BitTorrent clients on 127.0.0.1 for interop tests: libtorrent sessions
(Python bindings, in-process) as seeder or leecher, and aria2 as a leecher
subprocess.  Flags follow C{shared/peers.md}: loopback only, no DHT, LSD,
UPnP, NAT-PMP, PEX or uTP.

Everything raises (so the test fails, never skips) when the software is
missing.  Reusable by any interop test::

    data = writeRandomFile(os.path.join(d, "seed", "blob"), 4 << 20)
    torrent = makeTorrent(data, ["http://127.0.0.1:PORT/announce"], d)
    with LibtorrentSession() as seeder, LibtorrentSession() as leecher:
        seeder.add(torrent, os.path.dirname(data), seed=True)
        h = leecher.add(torrent, os.path.join(d, "out"))
        waitUntil(lambda: leecher.finished(h), 30, "libtorrent leecher")
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from tests.builders import writeFiles
from tests.realpeers import freePort


def writeRandomFile(path: str, size: int, seed: int = 0) -> str:
    """
    Write C{size} pseudo-random bytes to C{path} (creating directories).

    @return: C{path}.
    """
    writeFiles(os.path.dirname(path) or ".", [(os.path.basename(path), size)], seed)
    return path


def sha1File(path: str) -> str:
    """
    The SHA-1 of a file's contents, hex.
    """
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _lt():
    try:
        import libtorrent
    except ImportError as e:
        raise RuntimeError(
            "libtorrent Python bindings are missing (pip install libtorrent)"
        ) from e
    return libtorrent


def makeLibtorrentTorrent(
    parent: str,
    files: Sequence[Tuple[str, int]],
    pieceLength: int,
    trackers: Iterable[str] = (),
    hybrid: bool = False,
) -> bytes:
    """
    A torrent made by libtorrent itself over files that exist under
    C{parent} (a v1 torrent, or a v1 + v2 hybrid): interop tests share
    torrents that our codec did not make.

    @param files: C{(relative path, size)}; a single entry without C{/}
        makes a single-file torrent, else every path starts with the
        torrent's name.
    @param trackers: announce URLs, one tier each.
    @param hybrid: make a v1 + v2 hybrid (libtorrent's default, without
        C{v1_only}): BEP 47 pad files align every file to a piece.
    @return: the .torrent bytes.
    """
    lt = _lt()
    entries = [lt.create_file_entry(path, size) for path, size in files]
    flags = 0 if hybrid else lt.create_torrent.v1_only
    creator = lt.create_torrent(entries, pieceLength, flags=flags)
    for tier, url in enumerate(trackers):
        creator.add_tracker(url, tier)
    lt.set_piece_hashes(creator, parent)
    return lt.bencode(creator.generate())


def makeTorrent(
    dataPath: str,
    trackers: Sequence[str],
    directory: str,
    pieceLength: int = 1 << 16,
) -> str:
    """
    Make a v1 .torrent of one file with libtorrent.

    @param dataPath: the file to share.
    @param trackers: announce URLs, one tier each.
    @param directory: where to write C{<name>.torrent}.
    @return: the .torrent path.
    """
    name = os.path.basename(dataPath)
    data = makeLibtorrentTorrent(
        os.path.dirname(os.path.abspath(dataPath)),
        [(name, os.path.getsize(dataPath))],
        pieceLength,
        trackers,
    )
    path = os.path.join(directory, name + ".torrent")
    with open(path, "wb") as f:
        f.write(data)
    return path


def infoHashOf(torrentPath: str) -> bytes:
    """
    The v1 info-hash of a .torrent, as 20 bytes.
    """
    lt = _lt()
    info = lt.torrent_info(torrentPath)
    return bytes.fromhex(str(info.info_hashes().v1))


def loopbackSettings(port: int) -> dict:
    """
    libtorrent session settings for a peer on 127.0.0.1 only
    (C{shared/peers.md}): it listens on C{port} and dials out from
    127.0.0.1; no DHT, LSD, UPnP, NAT-PMP or uTP; several peers of one
    address (every peer here is 127.0.0.1); no alerts.

    C{udp_tracker_token_expiry} is 0: libtorrent keeps UDP tracker
    connection ids in one cache for the whole process, keyed by the
    tracker's IP address alone (not its port), and after an error reply it
    keeps using the cached id until it expires (60 s by default).  Every
    tracker in these tests is on 127.0.0.1, each with its own secret, so an
    id from one test's tracker made the next test's tracker refuse every
    announce for a minute.  With 0, every announce connects first.
    """
    return {
        "listen_interfaces": f"127.0.0.1:{port}",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": 0,
        "udp_tracker_token_expiry": 0,
    }


def loopbackDHTSettings(port: int, bootstrap: Sequence[Tuple[str, int]]) -> dict:
    """
    L{loopbackSettings} with libtorrent's DHT on, for 127.0.0.1 only
    (C{shared/peers.md}): the DHT node listens on 127.0.0.1:C{port} (UDP,
    the listen interface must be explicit) and bootstraps from C{bootstrap}
    alone (an empty list makes it a first node); nodes and peers may share
    one IP; a high packet rate from one IP (every node here is 127.0.0.1)
    is not banned.

    @param bootstrap: C{(host, port)} pairs, every host 127.0.0.1.
    @raise ValueError: for a bootstrap host that is not 127.0.0.1 (the
        defaults of libtorrent point at the internet).
    """
    for host, _ in bootstrap:
        if host != "127.0.0.1":
            raise ValueError(f"DHT bootstrap node off loopback: {host!r}")
    settings = loopbackSettings(port)
    settings.update(
        {
            "enable_dht": True,
            "dht_bootstrap_nodes": ",".join(f"{h}:{p}" for h, p in bootstrap),
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_block_ratelimit": 1000,
        }
    )
    return settings


def loopbackSession(port: int, **overrides):
    """
    A libtorrent session with L{loopbackSettings}, updated by C{overrides}.
    """
    settings = loopbackSettings(port)
    settings.update(overrides)
    return _lt().session(settings)


def torrentFlags(seed: bool = False, dht: bool = False):
    """
    libtorrent torrent flags that keep a torrent off DHT, LSD and PEX; with
    C{seed}, also C{seed_mode} (trust the data, no up-front hash check);
    with C{dht}, the torrent uses the session's DHT.
    """
    lt = _lt()
    flags = lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    if not dht:
        flags |= lt.torrent_flags.disable_dht
    if seed:
        flags |= lt.torrent_flags.seed_mode
    return flags


class LibtorrentSession:
    """
    One libtorrent session listening on 127.0.0.1 only
    (L{loopbackSettings}); with C{dhtBootstrap}, its DHT node runs on
    127.0.0.1 too (L{loopbackDHTSettings}).

    @ivar port: its listening port (TCP, and UDP for the DHT).
    """

    def __init__(
        self,
        port: Optional[int] = None,
        dhtBootstrap: Optional[Sequence[Tuple[str, int]]] = None,
    ) -> None:
        self.lt = _lt()
        self.port = port or freePort()
        if dhtBootstrap is None:
            self.settings = loopbackSettings(self.port)
        else:
            self.settings = loopbackDHTSettings(self.port, dhtBootstrap)
        self.session = self.lt.session(self.settings)
        self.handles: List = []

    def add(self, torrentPath: str, saveDir: str, seed: bool = False, dht=False):
        """
        Add a torrent; C{seed} trusts the data in C{saveDir} without a check;
        C{dht} lets it announce and look up peers on the session's DHT.

        @return: the torrent handle.
        """
        lt = self.lt
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrentPath)
        params.save_path = saveDir
        params.flags |= torrentFlags(seed, dht)
        handle = self.session.add_torrent(params)
        self.handles.append(handle)
        return handle

    def addMagnet(self, uri: str, saveDir: str, dht: bool = True):
        """
        Add a magnet link (its peers from C{x.pe}, or, with C{dht}, from the
        session's DHT).

        @return: the torrent handle.
        """
        params = self.lt.parse_magnet_uri(uri)
        params.save_path = saveDir
        params.flags |= torrentFlags(False, dht)
        handle = self.session.add_torrent(params)
        self.handles.append(handle)
        return handle

    def dhtAnnounce(self, handle) -> None:
        """
        Look up peers and announce the torrent on the DHT now.
        """
        handle.force_dht_announce()

    def finished(self, handle) -> bool:
        """
        Whether the torrent has every piece.
        """
        return handle.status().is_finished

    def reannounce(self, handle) -> None:
        """
        Announce to every tracker now, ignoring the minimum interval.
        """
        handle.force_reannounce(0, -1, self.lt.reannounce_flags_t.ignore_min_interval)

    def close(self) -> None:
        """
        Remove every torrent (libtorrent sends C{stopped}) and drop the
        session.
        """
        for handle in self.handles:
            try:
                self.session.remove_torrent(handle)
            except Exception:
                pass
        self.handles = []
        self.session = None

    def __enter__(self) -> LibtorrentSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def aria2Binary() -> str:
    """
    The aria2c path.

    @raise RuntimeError: if aria2 is not installed.
    """
    binary = shutil.which("aria2c")
    if binary is None:
        raise RuntimeError("aria2c is not installed (apt-get install -y aria2)")
    return binary


#: aria2's options for a peer on 127.0.0.1 only (C{shared/peers.md}): no
#: IPv6, DHT, LSD or PEX; no preallocation; quiet console.
ARIA2_NETWORK_FLAGS = (
    "--interface=127.0.0.1",
    "--disable-ipv6=true",
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--file-allocation=none",
    "--console-log-level=warn",
    "--summary-interval=0",
)


def aria2NetworkFlags(port: int) -> List[str]:
    """
    aria2's options to listen for peers on 127.0.0.1:C{port} and nowhere
    else (L{ARIA2_NETWORK_FLAGS}).
    """
    return [f"--listen-port={port}", *ARIA2_NETWORK_FLAGS]


def aria2Leecher(
    torrentPath: str,
    outDir: str,
    port: Optional[int] = None,
    logPath: Optional[str] = None,
    extra: Sequence[str] = (),
) -> subprocess.Popen:
    """
    Start aria2 as a leecher on 127.0.0.1 that exits (status 0) once the
    download is complete (C{--seed-time=0}).  aria2 1.36 announces to
    C{udp://} trackers only through DHT: give it HTTP trackers.
    """
    os.makedirs(outDir, exist_ok=True)
    args = [
        aria2Binary(),
        f"--dir={outDir}",
        "--seed-time=0",
        *aria2NetworkFlags(port or freePort()),
        *extra,
        torrentPath,
    ]
    log = open(logPath or os.devnull, "wb")
    try:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def waitUntil(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """
    Poll C{predicate} until it is true.

    @raise AssertionError: naming C{what} after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
