"""
Tests for L{btorrent.daemon.statusview}: the fields of a torrent, each
worked out when read, and the snapshot made from them.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from btorrent.control.api import AddOptions, SessionSettings, TorrentStatus
from btorrent.daemon.library import Library
from btorrent.daemon.session import Session
from btorrent.daemon.statusview import COSTLY, STATUS_FIELDS, clientName
from tests.builders import buildTorrent
from tests.fakes import SyncReactor, syncRunner


class StatusViewTests(SynchronousTestCase):
    def setUp(self) -> None:
        base = os.path.abspath(self.mktemp())
        built = buildTorrent(
            os.path.join(base, "src", "one"),
            [("a.bin", 40000), ("d/b.bin", 5)],
            trackers=[["http://127.0.0.1:1/announce"]],
        )
        session = Session(
            SyncReactor(),
            port=0,
            stateDir=os.path.join(base, "state"),
            runInThread=syncRunner,
        )
        self.library = Library(
            session,
            os.path.join(base, "state"),
            SessionSettings(downloadDir=os.path.join(base, "src")),
            SyncReactor(),
            addDefaults={"announcerFactory": lambda t: None},
        )
        self.library.load()
        added = self.successResultOf(
            self.library.addTorrent(built.torrentBytes, AddOptions(paused=True))
        )
        self.record = added.torrent

    def test_viewIsTheSnapshot(self) -> None:
        """
        Every field of the view is the snapshot's.
        """
        snapshot = self.record.status()
        self.assertIsInstance(snapshot, TorrentStatus)
        view = self.record.view()
        for name in STATUS_FIELDS:
            self.assertEqual(getattr(view, name), getattr(snapshot, name), name)
        self.assertEqual(snapshot.name, "one")
        self.assertEqual(snapshot.totalSize, 40005)
        self.assertEqual(len(snapshot.files), 2)
        self.assertEqual(len(snapshot.trackers), 1)
        self.assertTrue(snapshot.magnetLink.startswith("magnet:?xt=urn:btih:"))

    def test_onlyWhatIsRead(self) -> None:
        """
        Reading a cheap field does not work out the costly ones (files,
        trackers, pieces, the magnet link).
        """
        controls = self.record.torrent.controls

        def files():
            raise AssertionError("files worked out")

        controls.files = files
        view = self.record.view()
        self.assertEqual(view.name, "one")
        self.assertEqual(view.percentDone, 0.0)
        self.assertRaises(AssertionError, getattr, view, "files")

    def test_snapshotWithoutCostlyParts(self) -> None:
        """
        A snapshot leaves out the costly parts not asked for, with the
        neutral value of their type.
        """
        bare = self.record.status(fields=frozenset())
        self.assertEqual(
            {name: getattr(bare, name) for name in COSTLY},
            {"files": (), "peers": (), "trackers": (), "pieces": b"", "magnetLink": ""},
        )
        some = self.record.status(fields=frozenset({"files"}))
        self.assertEqual(len(some.files), 2)
        self.assertEqual(some.trackers, ())

    def test_clientName(self) -> None:
        self.assertEqual(clientName(b"-TR3000-xxxxxxxxxxxx"), "Transmission 3.0.0.0")
        self.assertEqual(clientName(b"-qB4\xff50-xxxxxxxxxxxx"), "qBittorrent 4.?.5.0")
        self.assertEqual(clientName(b"M7-2-0--xxxxxxxxxxxx"), "")
        self.assertEqual(clientName(None), "")
