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
from tests.test_interop_download import Fixture, startTracker, withTimeout
from tests.test_interop_seed import MULTI, MULTI_PIECE, WorkDirectories, noParts


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
        link = formatMagnet(
            fixture.metainfo.infoHash, trackers=[tracker.announceURL]
        )
        return self.download(fixture, link)

    def test_directPeer(self):
        """
        No tracker, C{x.pe=127.0.0.1:PORT} of the seeder: the same.
        """
        fixture = Fixture(self, MULTI, MULTI_PIECE)
        link = formatMagnet(
            fixture.metainfo.infoHash, "shown", peers=[("127.0.0.1", fixture.seeder.port)]
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
