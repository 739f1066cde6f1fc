"""
Magnet links end to end against real software on 127.0.0.1 (issue 14's
proof list): btorrent fetches the metadata (BEP 9) then the data from a
libtorrent seeder found through opentracker or named in C{x.pe}; a
libtorrent leecher and aria2 get metadata and data from btorrent; peer
exchange (BEP 11) works both ways with libtorrent.

Missing software is a failure, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import time

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from btorrent.codec import metainfo
from btorrent.codec.magnet import formatMagnet
from btorrent.daemon.session import Session
from btorrent.engine.metadata import metadataPath
from tests.realclients import aria2Binary, aria2NetworkFlags, loopbackSession
from tests.realpeers import freePort, stopProcess
from tests.realseeders import lt, makeTorrent, writeFiles
from tests.test_interop_download import (
    Fixture,
    startTracker,
    twistdBtorrentCommand,
    withTimeout,
)
from tests.test_interop_seed import MULTI, MULTI_PIECE, WorkDirectories, noParts
from tests.twistdproc import downloadCommand, repositoryEnvironment


def sleep(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def waitFor(predicate, seconds: float, what: str, interval: float = 0.05):
    """
    Poll C{predicate} on the reactor (without blocking it).
    """
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        yield sleep(interval)


def btorrentSession(stateDir: str) -> Session:
    return Session(reactor, port=0, interface="127.0.0.1", stateDir=stateDir)


class MagnetDownloadTests(TestCase):
    """
    btorrent given a magnet link downloads from a libtorrent seeder.
    """

    timeout = 60

    @defer.inlineCallbacks
    def download(self, fixture, link):
        # A libtorrent torrent refuses connections until it is started.
        yield waitFor(
            lambda: fixture.seeder.handle.status().state == lt.torrent_status.seeding,
            10,
            "the seeder to start",
        )
        session = btorrentSession(fixture.stateDir)
        torrent = session.addMagnet(link, fixture.downloadDir)
        self.assertIsNone(torrent.metainfo)
        self.assertEqual(torrent.metadataPercentComplete, 0.0)
        session.startService()
        try:
            yield withTimeout(torrent.completed, 30)
        finally:
            yield session.stopService()
        fixture.assertSame(self)
        self.assertEqual(torrent.metainfo.infoHash, fixture.metainfo.infoHash)
        self.assertEqual(torrent.metainfo.files, fixture.metainfo.files)
        self.assertEqual(torrent.metadataPercentComplete, 1.0)
        self.assertEqual(torrent.downloaded, fixture.metainfo.totalLength)
        # The fetched torrent is kept: a restart does not fetch it again.
        saved = metainfo.loadFile(
            metadataPath(fixture.stateDir, fixture.metainfo.infoHash)
        )
        self.assertEqual(saved.infoBytes, fixture.metainfo.infoBytes)
        return torrent

    def test_tracker(self):
        """
        C{magnet:?xt=...&tr=<opentracker>}: the seeder is found through the
        tracker; metadata then data, byte-identical, for the
        multi-directory torrent.
        """
        tracker = startTracker(self)
        fixture = Fixture(self, MULTI, MULTI_PIECE, tracker=tracker)
        link = formatMagnet(fixture.metainfo.infoHash, trackers=[tracker.announceURL])
        return self.download(fixture, link)

    def test_directPeer(self):
        """
        No tracker, C{x.pe=127.0.0.1:PORT} of the seeder: the same.
        """
        fixture = Fixture(self, MULTI, MULTI_PIECE)
        link = formatMagnet(
            fixture.metainfo.infoHash,
            "shown",
            peers=[("127.0.0.1", fixture.seeder.port)],
        )
        return self.download(fixture, link)

    @defer.inlineCallbacks
    def test_restartUsesSavedMetadata(self):
        """
        A magnet link added again to a session over the same state
        directory is added from the saved torrent: no metadata phase.
        """
        fixture = Fixture(self, MULTI, MULTI_PIECE)
        link = formatMagnet(
            fixture.metainfo.infoHash, peers=[("127.0.0.1", fixture.seeder.port)]
        )
        yield self.download(fixture, link)
        session = btorrentSession(fixture.stateDir)
        torrent = session.addMagnet(link, fixture.downloadDir)
        self.assertIsNotNone(torrent.metainfo)
        self.assertIsNone(torrent.metadataPhaseFactory)


def libtorrentPeer(
    test,
    saveDir,
    torrentBytes=None,
    magnet=None,
    seed=False,
    downloadLimit=None,
    pex=True,
):
    """
    A libtorrent session on 127.0.0.1 with one torrent (from its bytes or a
    magnet link), PEX on, no DHT or LSD, seeds kept connected to each
    other (PEX needs them).

    @return: C{(session, handle, port)}.
    """
    port = freePort()
    session = loopbackSession(port, close_redundant_connections=False)
    if magnet is not None:
        params = lt.parse_magnet_uri(magnet)
    else:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(lt.bdecode(torrentBytes))
    params.save_path = saveDir
    flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
    if seed:
        flags |= lt.torrent_flags.seed_mode
    if not pex:
        flags |= lt.torrent_flags.disable_pex
    params.flags = flags
    handle = session.add_torrent(params)
    if downloadLimit is not None:
        handle.set_download_limit(downloadLimit)
    deadline = time.monotonic() + 10
    while not session.is_listening():
        if time.monotonic() > deadline:
            raise AssertionError("libtorrent is not listening")
        time.sleep(0.01)
    test.addCleanup(session.remove_torrent, handle)
    return session, handle, port


def connectedTo(handle, port: int) -> bool:
    """
    Whether a libtorrent torrent is connected (past the handshake) to the
    peer listening on C{port}.
    """
    return any(
        p.ip[1] == port
        and not p.flags & lt.peer_info.connecting
        and not p.flags & lt.peer_info.handshake
        for p in handle.get_peer_info()
    )


class SwarmData(WorkDirectories):
    """
    The multi-directory files and their torrent, without any peer.
    """

    def __init__(self, test, trackers=()) -> None:
        super().__init__(test)
        self.files = MULTI
        writeFiles(self.seedDir, MULTI, seed=len(MULTI))
        self.torrentBytes = makeTorrent(self.seedDir, MULTI, MULTI_PIECE, trackers)
        self.metainfo = metainfo.load(self.torrentBytes)

    def assertSame(self, test, outDir):
        from tests.test_interop_seed import assertSameFiles

        assertSameFiles(test, self.files, self.seedDir, outDir, settle=2.0)


class MagnetSeedTests(TestCase):
    """
    btorrent seeds; real leechers given only a magnet link get the
    metadata and the data from it.
    """

    timeout = 60

    @defer.inlineCallbacks
    def seeding(self, data, announce=False):
        session = btorrentSession(data.stateDir)
        torrent = session.addTorrent(
            data.metainfo,
            data.seedDir,
            announcerFactory=None if announce else noParts,
        )
        session.startService()
        self.addCleanup(session.stopService)
        yield withTimeout(torrent.completed, 20)
        return session, torrent

    @defer.inlineCallbacks
    def test_libtorrentLeecher(self):
        """
        A libtorrent leecher given only C{x.pe} of btorrent gets the
        metadata and the data from it.
        """
        data = SwarmData(self)
        session, torrent = yield self.seeding(data)
        link = formatMagnet(data.metainfo.infoHash, peers=[("127.0.0.1", session.port)])
        outDir = os.path.join(data.base, "lt")
        _, handle, _ = libtorrentPeer(self, outDir, magnet=link)
        yield waitFor(lambda: handle.status().has_metadata, 20, "libtorrent's metadata")
        yield waitFor(lambda: handle.status().is_finished, 20, "libtorrent's download")
        data.assertSame(self, outDir)
        self.assertGreater(torrent.uploaded, 0)

    @defer.inlineCallbacks
    def test_aria2Leecher(self):
        """
        aria2 given C{magnet:?xt=...&tr=<opentracker>} (no DHT, no LPD)
        finds btorrent through the tracker and gets metadata and data.
        """
        tracker = startTracker(self)
        data = SwarmData(self, [tracker.announceURL])
        tracker.whitelist([data.metainfo.infoHash])
        session, torrent = yield self.seeding(data, announce=True)
        link = formatMagnet(data.metainfo.infoHash, trackers=[tracker.announceURL])
        outDir = os.path.join(data.base, "aria2")
        os.makedirs(outDir)
        logPath = os.path.join(data.base, "aria2.log")
        with open(logPath, "wb") as log:
            process = subprocess.Popen(
                [
                    aria2Binary(),
                    f"--dir={outDir}",
                    "--seed-time=0",
                    "--bt-enable-lpd=false",
                    "--enable-dht=false",
                    *aria2NetworkFlags(freePort()),
                    link,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.addCleanup(stopProcess, process)
        try:
            yield waitFor(lambda: process.poll() is not None, 40, "aria2 to finish")
        except AssertionError:
            with open(logPath, errors="replace") as f:
                raise AssertionError(
                    f"aria2 did not finish: {f.read()[-3000:]}"
                ) from None
        with open(logPath, errors="replace") as f:
            self.assertEqual(process.returncode, 0, f.read()[-3000:])
        data.assertSame(self, outDir)
        self.assertGreater(torrent.uploaded, 0)


class PexInteropTests(TestCase):
    """
    Peer exchange between btorrent and libtorrent, both ways.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_findSeederThroughPex(self):
        """
        btorrent knows one libtorrent peer, which has the metadata but
        hardly any data (its downloads are limited); that peer's PEX names
        the seeder, from which btorrent completes.
        """
        data = SwarmData(self)
        # The seeder takes no PEX: it must not learn of btorrent and dial it.
        _, _, seedPort = libtorrentPeer(
            self, data.seedDir, data.torrentBytes, seed=True, pex=False
        )
        _, middle, middlePort = libtorrentPeer(
            self,
            os.path.join(data.base, "middle"),
            data.torrentBytes,
            downloadLimit=2000,
        )
        middle.connect_peer(("127.0.0.1", seedPort))
        # Connected before btorrent comes: libtorrent's first PEX message
        # (the next comes a minute later) then names the seeder.
        yield waitFor(
            lambda: connectedTo(middle, seedPort), 10, "the peer to reach the seeder"
        )
        link = formatMagnet(data.metainfo.infoHash, peers=[("127.0.0.1", middlePort)])
        session = btorrentSession(data.stateDir)
        torrent = session.addMagnet(link, data.downloadDir)
        session.startService()
        self.addCleanup(session.stopService)
        yield withTimeout(torrent.completed, 40)
        data.assertSame(self, data.downloadDir)
        self.assertIn(("127.0.0.1", seedPort), torrent.downloader.dialer.candidates)
        self.assertLess(middle.status().progress, 0.5)

    @defer.inlineCallbacks
    def test_libtorrentLearnsFromOurPex(self):
        """
        Two libtorrent peers that know only btorrent learn of each other
        from btorrent's PEX (and usually connect).  Nobody has data (so no piece
        stream delays the PEX message, and nobody completes and leaves).
        """
        data = SwarmData(self)
        session = btorrentSession(data.stateDir)
        torrent = session.addTorrent(
            data.metainfo, data.downloadDir, announcerFactory=noParts
        )
        session.startService()
        self.addCleanup(session.stopService)
        yield withTimeout(torrent.ready, 20)
        leechers = []
        for name in ("one", "two"):
            _, handle, port = libtorrentPeer(
                self, os.path.join(data.base, name), data.torrentBytes
            )
            handle.connect_peer(("127.0.0.1", session.port))
            leechers.append((handle, port))

        def learnedThroughPex():
            # Each knows only btorrent, so a second peer in its list (or a
            # connection between the two) comes from btorrent's PEX: no
            # tracker, DHT or LSD here.  Whether libtorrent dials a peer it
            # learned at once is its own choice (on loopback it sometimes
            # waits for longer than this test).
            (one, onePort), (two, twoPort) = leechers
            met = connectedTo(one, twoPort) or connectedTo(two, onePort)
            listed = all(h.status().list_peers >= 2 for h, _ in leechers)
            listed = listed and torrent.downloader.extensions["ut_pex"].sent >= 2
            return met or listed

        try:
            yield waitFor(learnedThroughPex, 30, "the two peers to learn of each other")
        except AssertionError as e:
            pex = torrent.downloader.extensions["ut_pex"]
            seen = [
                (
                    [(p.ip, int(p.source), int(p.flags)) for p in h.get_peer_info()],
                    str(h.status().state),
                    h.status().list_peers,
                    h.status().connect_candidates,
                )
                for h, _ in leechers
            ]
            raise AssertionError(
                f"{e}; PEX messages sent {pex.sent}, listen ports "
                f"{[port for _, port in leechers]}, their peers {seen}"
            ) from None
        self.assertGreaterEqual(torrent.downloader.extensions["ut_pex"].sent, 1)


def seederStarted(fixture) -> bool:
    """
    Whether the fixture's libtorrent seeder takes connections (a libtorrent
    torrent refuses them until it is started).
    """
    return fixture.seeder.handle.status().state == lt.torrent_status.seeding


class MagnetCommandLineTests(TestCase):
    """
    C{btorrent download MAGNET} and C{twistd btorrent --torrent MAGNET} as
    subprocesses.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_downloadCommand(self):
        """
        C{btorrent download 'magnet:?xt=...&x.pe=...'} exits 0 with every
        file byte-identical (with its progress bar, which shows the
        metadata first).
        """
        fixture = Fixture(self, MULTI, MULTI_PIECE)
        yield waitFor(lambda: seederStarted(fixture), 10, "the seeder to start")
        link = formatMagnet(
            fixture.metainfo.infoHash, peers=[("127.0.0.1", fixture.seeder.port)]
        )
        process = subprocess.Popen(
            downloadCommand()
            + [link, "-o", fixture.downloadDir, "--port", "0"]
            + ["--interface", "127.0.0.1", "--state-dir", fixture.stateDir],
            env=repositoryEnvironment(),
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(lambda: process.poll() is None and process.kill())
        yield waitFor(lambda: process.poll() is not None, 40, "btorrent download")
        stderr = process.stderr.read()
        self.assertEqual(process.returncode, 0, stderr)
        self.assertIn("multi: download complete", stderr)
        fixture.assertSame(self)
        self.assertTrue(
            os.path.exists(metadataPath(fixture.stateDir, fixture.metainfo.infoHash))
        )

    @defer.inlineCallbacks
    def test_twistd(self):
        """
        C{twistd -n btorrent --torrent MAGNET}: the files arrive, the
        fetched torrent replaces the link in the daemon's torrent list.
        """
        fixture = Fixture(self, MULTI, MULTI_PIECE)
        yield waitFor(lambda: seederStarted(fixture), 10, "the seeder to start")
        fixture.torrentPath = formatMagnet(
            fixture.metainfo.infoHash, peers=[("127.0.0.1", fixture.seeder.port)]
        )
        logFile = os.path.join(fixture.base, "twistd.log")
        process = subprocess.Popen(
            twistdBtorrentCommand(fixture, freePort(), logFile),
            env=repositoryEnvironment(),
            cwd=fixture.base,
        )
        self.addCleanup(lambda: process.poll() is None and process.kill())

        def log():
            try:
                with open(logFile) as f:
                    return f.read()
            except OSError:
                return ""

        try:
            yield waitFor(lambda: "download complete" in log(), 40, "the download")
        except AssertionError:
            raise AssertionError(log()[-4000:]) from None
        self.assertIn("metadata received", log())
        process.terminate()
        yield waitFor(lambda: process.poll() is not None, 10, "twistd to stop")
        fixture.assertSame(self)
        # The daemon keeps it in its torrent list, in place of the link.
        hexHash = fixture.metainfo.infoHash.hex()
        torrents = os.path.join(fixture.stateDir, "torrents")
        saved = metainfo.loadFile(os.path.join(torrents, hexHash + ".torrent"))
        self.assertEqual(saved.infoHash, fixture.metainfo.infoHash)
        self.assertFalse(os.path.exists(os.path.join(torrents, hexHash + ".magnet")))
