"""
Tests for L{btorrent.daemon.library}: the daemon's torrent list and the
session API over it, with real files, a memory reactor and disk work run
at once.
"""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.control.api import (
    DOWNLOAD_WAIT,
    STOPPED,
    AddOptions,
    ControlError,
    ISessionControl,
    ITorrentControl,
    SessionSettings,
    TorrentOptions,
)
from btorrent.daemon.library import (
    FREE_SPACE_TIMEOUT,
    INVALID_TORRENT,
    Library,
    deleteTorrentData,
)
from btorrent.daemon.session import Session
from tests.builders import buildTorrent, writeFiles
from tests.fakes import HeldRunner, SyncReactor, syncRunner


class LibraryTestsMixin:
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self.stateDir = os.path.join(self.base, "state")
        self.downloadDir = os.path.join(self.base, "downloads")
        os.makedirs(self.downloadDir)
        self.reactor = SyncReactor()
        self.one = buildTorrent(
            os.path.join(self.base, "src", "one"), [("a.bin", 40000), ("d/b.bin", 5)]
        ).torrentBytes
        self.two = buildTorrent(
            os.path.join(self.base, "src", "two"), [("c", 99)]
        ).torrentBytes

    def makeLibrary(self, collectorPause=None, runInThread=syncRunner) -> Library:
        session = Session(
            self.reactor,
            port=0,
            stateDir=self.stateDir,
            runInThread=runInThread,
            downloadQueueSize=1,
        )
        library = Library(
            session,
            self.stateDir,
            SessionSettings(downloadDir=self.downloadDir),
            self.reactor,
            addDefaults={"announcerFactory": lambda t: None},
            collectorPause=collectorPause,
        )
        library.load()
        return library

    def add(self, library, data, **options):
        return self.successResultOf(library.addTorrent(data, AddOptions(**options)))


class AddTests(LibraryTestsMixin, SynchronousTestCase):
    def test_interfaces(self) -> None:
        library = self.makeLibrary()
        verifyObject(ISessionControl, library)
        record = self.add(library, self.one).torrent
        verifyObject(ITorrentControl, record)

    def test_addAndDuplicate(self) -> None:
        """
        A torrent gets the next id; adding it again answers duplicate with
        the same torrent and changes nothing.
        """
        library = self.makeLibrary()
        first = self.add(library, self.one, labels=("tv",))
        self.assertFalse(first.duplicate)
        self.assertEqual(first.torrent.id, 1)
        again = self.add(library, self.one, labels=("other",))
        self.assertTrue(again.duplicate)
        self.assertIs(again.torrent, first.torrent)
        self.assertEqual(first.torrent.labels, ("tv",))
        self.assertEqual(self.add(library, self.two).torrent.id, 2)
        self.assertEqual([r.id for r in library.torrents()], [1, 2])
        hexHash = first.torrent.infoHash.hex()
        self.assertIs(library.torrent(hexHash), first.torrent)
        self.assertIs(library.torrent(hexHash.upper()), first.torrent)
        self.assertIsNone(library.torrent(3))
        self.assertIsNone(library.torrent("zz" * 20))

    def test_invalid(self) -> None:
        """
        Bytes that are not a torrent: a clear error, nothing added.
        """
        library = self.makeLibrary()
        for data in (b"", b"garbage", b"d4:infoi1ee", b"\x00" * 100):
            failure = self.failureResultOf(library.addTorrent(data, AddOptions()))
            failure.trap(ControlError)
            self.assertEqual(str(failure.value), INVALID_TORRENT)
        self.assertEqual(library.torrents(), [])

    def test_relativeDownloadDir(self) -> None:
        """
        A download dir must be absolute.
        """
        library = self.makeLibrary()
        failure = self.failureResultOf(
            library.addTorrent(self.one, AddOptions(downloadDir="rel"))
        )
        self.assertEqual(str(failure.value), "download-dir must be an absolute path")


class PersistenceTests(LibraryTestsMixin, SynchronousTestCase):
    def test_restart(self) -> None:
        """
        A new library over the same state dir brings back every torrent
        with its id, labels, download dir, totals, and whether it was
        stopped.
        """
        library = self.makeLibrary()
        one = self.add(library, self.one, labels=("a", "b")).torrent
        two = self.add(library, self.two, paused=True).torrent
        one.torrent.controls.uploadedBefore = 12345
        self.successResultOf(library.save())
        again = self.makeLibrary()
        records = again.torrents()
        self.assertEqual([r.id for r in records], [1, 2])
        self.assertEqual(records[0].labels, ("a", "b"))
        self.assertEqual(records[0].uploadedEver, 12345)
        self.assertFalse(records[0].paused)
        self.assertTrue(records[1].paused)
        self.assertEqual(records[1].infoHash, two.infoHash)
        self.assertEqual(records[0].downloadDir, self.downloadDir)
        # The next id goes on from where it was.
        self.assertEqual(
            self.add(
                again,
                buildTorrent(
                    os.path.join(self.base, "src", "three"), [("x", 1)]
                ).torrentBytes,
            ).torrent.id,
            3,
        )

    def test_brokenMainFileUsesBackup(self) -> None:
        """
        A state file that cannot be read gives way to its backup.
        """
        library = self.makeLibrary()
        self.add(library, self.one)
        self.successResultOf(library.save())
        self.add(library, self.two)
        self.successResultOf(library.save())
        with open(os.path.join(self.stateDir, "state.json"), "w") as f:
            f.write("{half")
        again = self.makeLibrary()
        self.assertEqual(len(again.torrents()), 1)

    def test_missingTorrentCopySkipsOne(self) -> None:
        """
        A torrent whose copy vanished from the state dir is skipped (logged);
        the others come back.
        """
        library = self.makeLibrary()
        one = self.add(library, self.one).torrent
        self.add(library, self.two)
        self.successResultOf(library.save())
        os.unlink(
            os.path.join(self.stateDir, "torrents", one.infoHash.hex() + ".torrent")
        )
        again = self.makeLibrary()
        self.assertEqual([r.id for r in again.torrents()], [2])
        self.flushLoggedErrors()


class ControlTests(LibraryTestsMixin, SynchronousTestCase):
    def test_stopStart(self) -> None:
        """
        Stop and start through the API change the state, and stop is
        remembered.
        """
        library = self.makeLibrary()
        library.startService()
        self.addCleanup(library.stopService)
        record = self.add(library, self.one).torrent
        self.assertNotEqual(record.torrent.state, STOPPED)
        self.successResultOf(defer.maybeDeferred(record.stop))
        self.assertEqual(record.torrent.state, STOPPED)
        self.assertTrue(record.paused)
        record.start()
        self.assertFalse(record.paused)
        self.assertNotEqual(record.torrent.state, STOPPED)

    def test_downloadQueue(self) -> None:
        """
        With a download queue of one, a second incomplete torrent waits.
        """
        library = self.makeLibrary()
        library.startService()
        self.addCleanup(library.stopService)
        one = self.add(library, self.one).torrent
        two = self.add(library, self.two).torrent
        states = {one.torrent.state, two.torrent.state}
        self.assertIn(DOWNLOAD_WAIT, states)
        waiting = one if one.torrent.state == DOWNLOAD_WAIT else two
        running = two if waiting is one else one
        self.successResultOf(defer.maybeDeferred(running.stop))
        self.assertNotEqual(waiting.torrent.state, DOWNLOAD_WAIT)

    def test_removeWithData(self) -> None:
        """
        Removing with its data deletes the torrent's own files and the
        directories it made, and nothing else.
        """
        library = self.makeLibrary()
        record = self.add(library, self.one).torrent
        root = os.path.join(self.downloadDir, "one")
        writeFiles(root, [("a.bin", 40000), ("d/b.bin", 5), ("mine.txt", 3)])
        with open(os.path.join(self.downloadDir, "other"), "w") as f:
            f.write("keep")
        self.successResultOf(library.removeTorrent(record, deleteData=True))
        self.assertEqual(sorted(os.listdir(root)), ["mine.txt"])
        self.assertTrue(os.path.exists(os.path.join(self.downloadDir, "other")))
        self.assertEqual(library.torrents(), [])
        self.assertEqual(library.recentlyRemoved(0), [1])
        self.assertEqual(os.listdir(os.path.join(self.stateDir, "torrents")), [])

    def test_removeKeepsData(self) -> None:
        library = self.makeLibrary()
        record = self.add(library, self.one).torrent
        root = os.path.join(self.downloadDir, "one")
        writeFiles(root, [("a.bin", 40000), ("d/b.bin", 5)])
        self.successResultOf(library.removeTorrent(record, deleteData=False))
        self.assertTrue(os.path.exists(os.path.join(root, "a.bin")))

    def test_settings(self) -> None:
        """
        Settings change all at once or not at all.
        """
        library = self.makeLibrary()
        library.setSettings({"downloadQueueSize": 3, "seedRatioLimit": 2})
        self.assertEqual(library.settings.downloadQueueSize, 3)
        self.assertEqual(library.session.downloadQueue.size, 3)
        for changes in (
            {"nope": 1},
            {"downloadQueueSize": "3"},
            {"downloadQueueSize": -1},
            {"downloadDir": "relative"},
            {"peerPort": 70000},
            {"downloadQueueSize": 4, "dhtEnabled": 3},
        ):
            self.assertRaises(ControlError, library.setSettings, changes)
        self.assertEqual(library.settings.downloadQueueSize, 3)

    def test_fixedSettings(self) -> None:
        """
        The peer port, DHT and PEX are set up as the daemon starts: a change
        is refused (with what to do instead) rather than said to be done;
        the value they have is accepted, as clients send whole forms.
        """
        library = self.makeLibrary()
        settings = library.settings
        same = {
            "peerPort": settings.peerPort,
            "dhtEnabled": settings.dhtEnabled,
            "pexEnabled": settings.pexEnabled,
        }
        library.setSettings(dict(same, downloadQueueSize=2))
        self.assertEqual(settings.downloadQueueSize, 2)
        for name, value, text in (
            ("peerPort", settings.peerPort + 1, "--port"),
            ("dhtEnabled", not settings.dhtEnabled, "--no-dht"),
            ("pexEnabled", not settings.pexEnabled, "PEX"),
        ):
            error = self.assertRaises(
                ControlError, library.setSettings, {name: value, "downloadQueueSize": 4}
            )
            self.assertIn(text, str(error))
            self.assertEqual(getattr(settings, name), same[name])
            self.assertEqual(settings.downloadQueueSize, 2)

    def test_peerLimit(self) -> None:
        library = self.makeLibrary()
        record = self.add(library, self.one).torrent
        record.setOptions(TorrentOptions(peerLimit=7))
        self.assertEqual(record.status(frozenset()).maxConnectedPeers, 7)
        self.assertRaises(ControlError, record.setOptions, TorrentOptions(peerLimit=0))

    def test_queueMove(self) -> None:
        library = self.makeLibrary()
        one = self.add(library, self.one).torrent
        two = self.add(library, self.two).torrent
        library.queueMove([two], "top")
        self.assertLess(two.torrent.queuePosition, one.torrent.queuePosition)
        library.queueMove([two], "down")
        self.assertLess(one.torrent.queuePosition, two.torrent.queuePosition)

    def test_status(self) -> None:
        """
        A status carries the sizes, files and magnet link.
        """
        library = self.makeLibrary()
        record = self.add(library, self.one).torrent
        status = record.status()
        self.assertEqual(status.totalSize, 40005)
        self.assertEqual(
            [(f.name, f.length) for f in status.files],
            [("one/a.bin", 40000), ("one/d/b.bin", 5)],
        )
        self.assertTrue(status.magnetLink.startswith("magnet:?xt=urn:btih:"))
        self.assertEqual(status.eta, -1)

    def test_addParsesInAThread(self) -> None:
        """
        The torrent is parsed in a thread (pure Python over bytes anyone may
        craft), and its copy kept in one; two adds of the same torrent at
        once give one torrent and a duplicate.
        """
        runner = HeldRunner()
        library = self.makeLibrary(runInThread=runner)
        runner.runAll()
        first = library.addTorrent(self.one, AddOptions())
        second = library.addTorrent(self.one, AddOptions())
        self.assertNoResult(first)
        self.assertEqual(
            [call[0].__name__ for call in runner.calls], ["_parse", "_parse"]
        )
        while runner.calls:
            runner.runAll()
        one, two = self.successResultOf(first), self.successResultOf(second)
        self.assertFalse(one.duplicate)
        self.assertTrue(two.duplicate)
        self.assertIs(two.torrent, one.torrent)
        self.assertEqual(len(library.records), 1)

    def test_freeSpace(self) -> None:
        library = self.makeLibrary()
        self.assertGreater(self.successResultOf(library.freeSpace(self.downloadDir)), 0)
        failure = self.failureResultOf(library.freeSpace("/no/such/dir"), ControlError)
        self.assertIn("/no/such/dir", str(failure.value))

    def test_freeSpaceInAThread(self) -> None:
        """
        The lookup runs in a thread (C{statvfs} waits for a hung mount);
        who asks meanwhile shares it; its answer reaches everyone.
        """
        runner = HeldRunner()
        library = self.makeLibrary(runInThread=runner)
        runner.runAll()
        first = library.freeSpace(self.downloadDir)
        second = library.freeSpace(self.downloadDir)
        self.assertNoResult(first)
        self.assertEqual(len(runner.calls), 1)
        runner.runAll()
        free = self.successResultOf(first)
        self.assertGreater(free, 0)
        self.assertEqual(self.successResultOf(second), free)

    def test_freeSpaceHung(self) -> None:
        """
        A lookup with no answer in L{FREE_SPACE_TIMEOUT} seconds fails
        for its callers; while it hangs, new callers share it rather
        than take another thread; when it ends at last, nobody hears of it
        twice.
        """
        runner = HeldRunner()
        library = self.makeLibrary(runInThread=runner)
        runner.runAll()
        first = library.freeSpace(self.downloadDir)
        self.reactor.advance(FREE_SPACE_TIMEOUT)
        failure = self.failureResultOf(first, ControlError)
        self.assertIn("no answer", str(failure.value))
        second = library.freeSpace(self.downloadDir)
        self.assertEqual(len(runner.calls), 1)
        runner.runAll()
        self.assertGreater(self.successResultOf(second), 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class DeleteDataTests(SynchronousTestCase):
    def test_neverOutside(self) -> None:
        """
        A symbolic link in the torrent's tree leading outside is not
        followed.
        """
        base = os.path.abspath(self.mktemp())
        outside = os.path.join(base, "outside")
        writeFiles(outside, [("a.bin", 3)])
        downloads = os.path.join(base, "downloads")
        os.makedirs(downloads)
        os.symlink(outside, os.path.join(downloads, "one"))
        info = buildTorrent(
            os.path.join(base, "src", "one"), [("a.bin", 3), ("b", 1)]
        ).metainfo
        deleteTorrentData(info, downloads)
        self.assertTrue(os.path.exists(os.path.join(outside, "a.bin")))
