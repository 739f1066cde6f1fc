"""
L{Library}: the daemon's torrent list and the session API
(L{ISessionControl}) over it.

The list lives in the state dir: a copy of each torrent's C{.torrent}
(C{torrents/HEX.torrent}) or magnet link (C{torrents/HEX.magnet}), and one
JSON file, C{state.json}, with a version field: every torrent's id,
download dir, labels, whether the user stopped it, dates, totals over every
run and settings; the session's settings and cumulative statistics.  Two
parts help the library:

  - L{LibraryState} (L{btorrent.daemon.librarystate}) reads and writes
    C{state.json} (atomically, in a thread, saves merged);
  - L{SessionTotals} (L{btorrent.daemon.sessiontotals}) keeps the
    session's counts and totals for C{session-stats}.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btorrent.codec import metainfo as metainfoCodec
from btorrent.control.api import (
    CHECK_WAIT,
    CHECKING,
    DOWNLOADING,
    SEEDING,
    STOPPED,
    AddOptions,
    AddResult,
    ControlError,
    ISessionControl,
    SessionSettings,
    SessionStats,
)
from btorrent.daemon.librarystate import SAVE_DELAY, STATE_VERSION, LibraryState
from btorrent.daemon.queueorder import moved, placed
from btorrent.daemon.records import TorrentRecord
from btorrent.daemon.sessiontotals import SessionTotals
from btorrent.util import logs
from btorrent.util.gcpause import CollectorPause
from btorrent.util.statefile import writeAtomically

__all__ = ["INVALID_TORRENT", "SAVE_DELAY", "STATE_VERSION", "Library"]

#: What the RPC answers for bytes that are not a torrent.
INVALID_TORRENT = "invalid or corrupt torrent file"

#: Seconds between two saves of the totals while torrents transfer.
SAVE_INTERVAL = 60.0

#: Seconds a free-space lookup may take before its callers hear that it
#: failed (a hung network mount; its thread is left to finish).
FREE_SPACE_TIMEOUT = 5.0

#: Settings that only the command line sets, and what changing one over
#: the RPC answers (Transmission applies them at once; here the port, the
#: DHT and PEX are set up as the daemon starts).
_FIXED_SETTINGS = {
    "peerPort": "peer-port cannot change while the daemon runs: "
    "start it with --port",
    "dhtEnabled": "dht-enabled cannot change while the daemon runs: "
    "start it with or without --no-dht",
    "pexEnabled": "pex-enabled cannot change: btorrent exchanges peers (PEX) "
    "for every public torrent",
}

#: Removed torrents remembered for C{recently-active}.
MAX_REMOVED = 1000


@implementer(ISessionControl)
class Library(Service):
    """
    The daemon's torrents, persisted, with the session API.

    @ivar session: the L{btorrent.daemon.session.Session} running them.
    @ivar settings: the L{SessionSettings} in force.
    @ivar records: C{id -> TorrentRecord}, in id order.
    @ivar state: its L{LibraryState}: the state file.
    @ivar totals: its L{SessionTotals}: the session's counts and totals.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        session,
        stateDir: str,
        settings: SessionSettings,
        clock,
        shutdown: Callable[[], None] = lambda: None,
        addDefaults: Optional[Dict[str, Any]] = None,
        collectorPause: Optional[CollectorPause] = None,
    ) -> None:
        """
        @param session: the session that runs the torrents.
        @param stateDir: where the list is kept.
        @param settings: the settings to start with (the command line's,
            over what the state file kept).
        @param clock: provides C{seconds()}.
        @param shutdown: stops the daemon (C{session-close}).
        @param addDefaults: keyword arguments for C{Session.addTorrent}
            (C{maxPeers}, C{pieceOrder}, C{uploadSlots}, C{resumeInterval}).
        @param collectorPause: a L{CollectorPause} that L{load} begins and
            that ends once the torrents are up, or C{None}.
        """
        self.session = session
        self.stateDir = stateDir
        self.torrentsDir = os.path.join(stateDir, "torrents")
        self.statePath = os.path.join(stateDir, "state.json")
        self.settings = settings
        self.clock = clock
        self.shutdown = shutdown
        self.addDefaults = dict(addDefaults or {})
        self.records: Dict[int, TorrentRecord] = {}
        self._byHash: Dict[bytes, TorrentRecord] = {}
        self._nextId = 1
        #: Past the last queue position (a new torrent goes there).
        self._nextPosition = 0
        self._removed: List[tuple] = []
        self.totals = SessionTotals(clock)
        self.state = LibraryState(
            self.statePath, self.stateDocument, session.runInThread, clock, self.log
        )
        self._nextSave = 0.0
        self._changedAt = 0.0
        #: Started, and some torrent is still reading its disk.
        self._starting = False
        #: Free-space lookups under way: path -> who waits for each.
        self._freeSpaceWaiting: Dict[str, List[defer.Deferred]] = {}
        #: Holds the garbage collector off while the torrents come up
        #: (the composition root gives one; see L{btorrent.util.gcpause}).
        self.collectorPause = collectorPause

    # Loading and saving

    def load(self) -> None:
        """
        Bring back the torrents of the state file (or its backup): each as
        it was, stopped ones stopped.  Problems with one torrent are logged
        and skip it.
        """
        os.makedirs(self.torrentsDir, exist_ok=True)
        document = self.state.read()
        if document is None:
            return
        self.totals.load(document.get("stats", {}))
        self._nextId = max(int(document.get("nextId", 1) or 1), 1)
        self._loadSessionControls(document.get("sessionControls"))
        pause = self.collectorPause
        if pause is not None and document.get("torrents"):
            # Until they are up (L{_tick}).
            pause.begin(self.clock.seconds())
        try:
            for entry in document.get("torrents", []):
                try:
                    self._loadTorrent(entry)
                except (OSError, ValueError, KeyError, TypeError) as e:
                    self.log.error(
                        "state file: cannot bring back a torrent ({entry}): {error}",
                        entry=str(entry)[:200],
                        error=str(e),
                    )
        except BaseException:
            self._endPause()
            raise

    def _loadSessionControls(self, data) -> None:
        """
        Bring back the session's limits; the command line's settings then
        win (L{applySettings} at start).
        """
        if not isinstance(data, dict):
            return
        controls = self.session.controls
        try:
            controls.load(data)
        except ControlError as e:
            self.log.warn(
                "state file: session limits not usable ({error})", error=str(e)
            )
            return
        for name, value in controls.settings().items():
            if hasattr(self.settings, name):
                setattr(self.settings, name, value)

    def _loadTorrent(self, entry: dict) -> None:
        infoHash = bytes.fromhex(entry["infoHash"])
        if len(infoHash) != 20 or infoHash in self._byHash:
            raise ValueError("bad or repeated info-hash")
        torrentPath = os.path.join(self.torrentsDir, infoHash.hex() + ".torrent")
        downloadDir = entry.get("downloadDir") or self.settings.downloadDir
        if os.path.exists(torrentPath):
            info = metainfoCodec.loadFile(torrentPath)
            torrent = self.session.addTorrent(
                info, downloadDir, start=False, **self.addDefaults
            )
        else:
            magnetPath = os.path.join(self.torrentsDir, infoHash.hex() + ".magnet")
            with open(magnetPath, encoding="utf-8") as f:
                link = f.read(65536).strip()
            torrent = self._addMagnet(link, downloadDir)
        torrentId = int(entry["id"])
        if torrentId in self.records or torrentId <= 0:
            torrentId = self._nextId
        self._nextId = max(self._nextId, torrentId + 1)
        record = TorrentRecord(
            self,
            torrentId,
            torrent,
            downloadDir,
            addedDate=int(entry.get("addedDate", time.time())),
            labels=tuple(str(label) for label in entry.get("labels", [])),
            saved=entry,
        )
        torrent.queuePosition = int(entry.get("queuePosition", torrentId))
        self._nextPosition = max(self._nextPosition, torrent.queuePosition + 1)
        self._register(record)

    def _addMagnet(self, link: str, downloadDir: str):
        from btorrent.codec.magnet import parseMagnet

        hexHash = parseMagnet(link).infoHash.hex()

        def metadataArrived(torrentBytes: bytes):
            # The fetched torrent replaces the magnet link in the state
            # dir: a restart does not fetch it again.
            return self.session.runInThread(self._keepFetched, hexHash, torrentBytes)

        return self.session.addMagnet(
            link,
            downloadDir,
            start=False,
            onMetadata=metadataArrived,
            **self.addDefaults,
        )

    def _keepFetched(self, hexHash: str, torrentBytes: bytes) -> None:
        """
        In a thread: keep a torrent fetched from a magnet link's peers as
        C{torrents/HEX.torrent}, and forget the link.
        """
        writeAtomically(
            os.path.join(self.torrentsDir, hexHash + ".torrent"), torrentBytes
        )
        try:
            os.unlink(os.path.join(self.torrentsDir, hexHash + ".magnet"))
        except OSError:
            pass

    def _register(self, record: TorrentRecord) -> None:
        self.records[record.id] = record
        self._byHash[record.infoHash] = record

    def stateDocument(self) -> dict:
        """
        The state file's content now.
        """
        torrents = [record.torrent for record in self.records.values()]
        cumulative = self.totals.cumulative(self.totals.current(torrents))
        return {
            "nextId": self._nextId,
            "torrents": [record.toJSON() for record in self.records.values()],
            "stats": cumulative,
            "sessionControls": self.session.controls.toJSON(),
        }

    def save(self) -> defer.Deferred:
        """
        Write the state file in a thread; a save asked for while one runs
        happens once more after it.

        @return: a L{Deferred} firing when the state asked for is on disk
            (never failing: a failure is logged).
        """
        return self.state.save()

    def changed(self, record: Optional[TorrentRecord] = None) -> None:
        """
        Something worth keeping changed (an add, a stop, a setting): save
        within L{SAVE_DELAY} seconds; changes in that time share one save.
        """
        if self.running:
            self.state.saveSoon()

    # Service

    def startService(self) -> None:
        """
        Start the torrents that were not stopped by the user, and save the
        list now and then.
        """
        super().startService()
        self.totals.sessionStarted()
        for record in self.records.values():
            if not record.paused:
                record.torrent.start()
        self._nextSave = self.clock.seconds() + SAVE_INTERVAL
        self.session.heartbeat.subscribe(self, self._tick)
        # The run is counted: saved once the torrents are up (L{_tick}),
        # not while ten thousand of them come up.
        self._starting = True

    def _tick(self, now: float) -> None:
        if self._starting:
            pause = self.collectorPause
            expired = pause is not None and pause.expired(now)
            if expired or not self._comingUp():
                self._starting = False
                self._endPause()
                self.save()
        if now < self._nextSave:
            return
        self._nextSave = now + SAVE_INTERVAL
        active = [record for record in self.records.values() if record.noteActivity()]
        if active:
            self.save()

    def _endPause(self) -> None:
        if self.collectorPause is not None:
            self.collectorPause.end()

    def _comingUp(self) -> bool:
        """
        Whether a torrent is still reading what it has on disk at start-up
        (a torrent that found it must recheck waits in the check queue,
        and counts as up).
        """
        for record in self.records.values():
            torrent = record.torrent
            if torrent.state in (CHECK_WAIT, CHECKING) and not torrent.disk.rechecked:
                return True
        return False

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop every torrent (their resume data is saved), then save the list
        with the final totals.
        """
        super().stopService()
        self._endPause()
        self.session.heartbeat.unsubscribe(self)
        self.state.cancelSoon()
        yield defer.DeferredList(
            [record.torrent.stop() for record in self.records.values()],
            consumeErrors=True,
        )
        if self.state.saving is not None:
            yield self.state.saving
        yield self.save()

    # ISessionControl

    def torrents(self) -> List[TorrentRecord]:
        """
        Every torrent, by id.
        """
        return list(self.records.values())

    def torrent(self, key) -> Optional[TorrentRecord]:
        """
        A torrent by integer id or 40-hex info-hash.
        """
        if isinstance(key, int) and not isinstance(key, bool):
            return self.records.get(key)
        if isinstance(key, str) and len(key) == 40:
            try:
                return self._byHash.get(bytes.fromhex(key))
            except ValueError:
                return None
        return None

    def addTorrent(self, source, options: AddOptions = AddOptions()) -> defer.Deferred:
        """
        Add a torrent from C{.torrent} bytes or a magnet link.
        """
        return defer.maybeDeferred(self._add, source, options)

    def _parse(self, source, options: AddOptions):
        return parseSource(
            source, options.downloadDir or self.settings.downloadDir, self.torrentsDir
        )

    def _enter(self, parsed, options: AddOptions) -> AddResult:
        """
        Put a checked torrent (its copy already in the state dir) in the
        list and the session.
        """
        infoHash, info, link, _, _, downloadDir = parsed
        existing = self._byHash.get(infoHash)
        if existing is not None:
            return AddResult(existing, True)
        if info is None:
            torrent = self._addMagnet(link, downloadDir)
        else:
            torrent = self.session.addTorrent(
                info, downloadDir, start=False, **self.addDefaults
            )
        try:
            torrent.controls.setOptions(options)
        except ControlError:
            # A bad option (a file index out of range): nothing is added.
            self.session.removeTorrent(torrent.infoHash)
            torrent.controls.close()
            raise
        record = TorrentRecord(
            self, self._nextId, torrent, downloadDir, labels=options.labels
        )
        self._nextId += 1
        torrent.queuePosition = self._nextPosition
        self._nextPosition += 1
        record.paused = bool(options.paused)
        self._register(record)
        self.totals.fileAdded()
        self.log.info(
            "added {name} ({infoHash}) as torrent {id}",
            name=torrent.name,
            infoHash=record.infoHash.hex()[:8],
            id=record.id,
        )
        if self.running and not record.paused:
            torrent.start()
        self.changed(record)
        return AddResult(record, False)

    def addAtStart(self, source, options: AddOptions = AddOptions()) -> AddResult:
        """
        Add a torrent before the daemon runs (C{--torrent}), blocking on
        the disk.
        """
        parsed = self._parse(source, options)
        existing = self._byHash.get(parsed[0])
        if existing is not None:
            return AddResult(existing, True)
        self._keep(parsed)
        return self._enter(parsed, options)

    @defer.inlineCallbacks
    def _add(self, source, options: AddOptions):
        # Parsing is pure Python over up to 10 MB that anyone may craft (a
        # torrent of 150,000 files took 3.4 s): a thread, as the copy.
        parsed = yield self.session.runInThread(self._parse, source, options)
        existing = self._byHash.get(parsed[0])
        if existing is not None:
            return AddResult(existing, True)
        yield self.session.runInThread(self._keep, parsed)
        # _enter finds a copy added meanwhile.
        return self._enter(parsed, options)

    def _keep(self, parsed) -> None:
        """
        Keep the torrent's copy in the state dir (blocking: a thread).
        """
        os.makedirs(self.torrentsDir, exist_ok=True)
        writeAtomically(parsed[4], parsed[3])

    @defer.inlineCallbacks
    def removeTorrent(self, record: TorrentRecord, deleteData: bool = False):
        """
        Remove a torrent; with C{deleteData} its own files and the
        directories it created go too, never anything else.
        """
        if self.records.get(record.id) is not record:
            return
        del self.records[record.id]
        self._byHash.pop(record.infoHash, None)
        self._removed.append((self.clock.seconds(), record.id))
        del self._removed[:-MAX_REMOVED]
        if self.collectorPause is not None:
            # Its parts may have been frozen at start-up.
            self.collectorPause.thaw()
        # Its counts stay in the session's, also while it stops.
        counted = self.totals.removing(record.torrent)
        yield self.session.removeTorrent(record.infoHash)
        self.totals.removed(record.torrent, counted)
        partsPath = record.torrent.controls.partsPath
        record.torrent.controls.close()
        if partsPath is not None:
            try:
                os.unlink(partsPath)
            except OSError:
                pass
        hexHash = record.infoHash.hex()
        for name in (hexHash + ".torrent", hexHash + ".magnet", hexHash + ".resume"):
            for directory in (self.torrentsDir, self.stateDir):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    pass
        if deleteData and record.torrent.metainfo is not None:
            yield self.session.runInThread(
                deleteTorrentData, record.torrent.metainfo, record.downloadDir
            )
        self.log.info(
            "removed {name} ({infoHash}){withData}",
            name=record.torrent.name,
            infoHash=hexHash[:8],
            withData=" and its data" if deleteData else "",
        )
        yield self.save()

    def recentlyRemoved(self, since: float) -> List[int]:
        """
        Ids of the torrents removed at or after C{since}.
        """
        return [torrentId for when, torrentId in self._removed if when >= since]

    def recentlyActive(self, since: float) -> List[TorrentRecord]:
        """
        The torrents whose state or transfer changed at or after C{since}
        (every running one counts as active).
        """
        result = []
        for record in self.records.values():
            record.noteActivity()
            if record.activityDate >= since or record.torrent.state in (
                DOWNLOADING,
                SEEDING,
            ):
                result.append(record)
        return result

    def setSettings(self, changes: Dict[str, Any]) -> None:
        """
        Change session settings (all or nothing).
        """
        fields = SessionSettings.__dataclass_fields__
        for name, value in changes.items():
            if name not in fields or name == "extra":
                raise ControlError(f"unknown setting {name}")
            expected = type(getattr(self.settings, name))
            if (
                expected is float
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                value = float(value)
            if type(value) is not expected:
                raise ControlError(f"{name} must be {expected.__name__}")
            if expected is int and value < 0:
                raise ControlError(f"{name} must not be negative")
        if "downloadDir" in changes and not os.path.isabs(changes["downloadDir"]):
            raise ControlError("download-dir must be an absolute path")
        for name, value in changes.items():
            fixed = _FIXED_SETTINGS.get(name)
            if fixed is not None and value != getattr(self.settings, name):
                # Said to have changed, they would not: refused, not stored.
                raise ControlError(fixed)
        controls = self.session.controls
        # Rate, seeding and peer limits are the transfer controls': they
        # check their values (a bad one changes nothing) and apply at once.
        controls.setSettings(
            {
                name: value
                for name, value in changes.items()
                if name in controls.SETTINGS
            }
        )
        for name, value in changes.items():
            setattr(self.settings, name, value)
        self.applySettings()
        self.changed()

    def applySettings(self) -> None:
        """
        Put the settings in force in the session (queues, peer limits,
        encryption).
        """
        settings = self.settings
        self.session.downloadQueue.resize(
            settings.downloadQueueSize, settings.downloadQueueEnabled
        )
        self.session.seedQueue.resize(settings.seedQueueSize, settings.seedQueueEnabled)
        self.addDefaults["maxPeers"] = settings.peerLimitPerTorrent
        self.addDefaults["umask"] = settings.umask
        self.session.setEncryption(settings.encryption)

    def stats(self) -> SessionStats:
        """
        Rates, counts and totals.
        """
        return self.totals.stats(record.torrent for record in self.records.values())

    @property
    def dht(self):
        """
        The session's DHT service (with C{stats}), or C{None} when it runs
        none.
        """
        return getattr(self.session, "dht", None)

    def freeSpace(self, path: str) -> defer.Deferred:
        """
        Bytes free at C{path}, looked up in a thread (C{statvfs} waits for a
        slow or hung network mount, and C{session-get} asks for it): one
        lookup per path at a time, shared by whoever asks meanwhile, so
        that a hung mount holds one thread, not one per request.

        @return: a L{defer.Deferred} of the bytes free, failing with
            L{ControlError} if C{path} cannot be looked at, or gave no
            answer within L{FREE_SPACE_TIMEOUT} seconds.
        """
        result: defer.Deferred = defer.Deferred()
        result.addTimeout(FREE_SPACE_TIMEOUT, self.clock)

        def late(failure):
            failure.trap(defer.TimeoutError)
            raise ControlError(
                f"{path}: no answer in {FREE_SPACE_TIMEOUT:.0f} s (a hung mount?)"
            )

        result.addErrback(late)
        waiting = self._freeSpaceWaiting.get(path)
        if waiting is not None:
            waiting.append(result)
            return result
        self._freeSpaceWaiting[path] = [result]
        self.session.runInThread(shutil.disk_usage, path).addBoth(
            self._freeSpaceFound, path
        )
        return result

    def _freeSpaceFound(self, outcome: Any, path: str) -> None:
        """
        A free-space lookup ended: answer whoever still waits for it.
        """
        for result in self._freeSpaceWaiting.pop(path, ()):
            if result.called:
                continue
            if isinstance(outcome, Failure):
                error = outcome.value
                text = getattr(error, "strerror", None) or error
                result.errback(ControlError(f"{path}: {text}"))
            else:
                result.callback(outcome.free)

    def queueMove(self, records: Iterable[TorrentRecord], where: str) -> None:
        """
        Move torrents in the queue (C{top}, C{up}, C{down}, C{bottom}).
        """
        order = sorted(self.records.values(), key=lambda r: r.torrent.queuePosition)
        order = moved(order, records, where)
        for position, record in enumerate(order):
            record.torrent.queuePosition = position
        self._nextPosition = len(order)
        self._reorderQueues()
        self.changed()

    def _reorderQueues(self) -> None:
        for queue in (
            self.session.checkQueue,
            self.session.downloadQueue,
            self.session.seedQueue,
        ):
            queue.reorder()

    def queueSet(self, record: TorrentRecord, position: int) -> None:
        """
        Put one torrent at C{position} in the queue.
        """
        order = sorted(self.records.values(), key=lambda r: r.torrent.queuePosition)
        order = placed(order, record, position)
        for index, each in enumerate(order):
            each.torrent.queuePosition = index
        self._nextPosition = len(order)
        self._reorderQueues()

    def moveTorrent(self, record: TorrentRecord, path: str, move: bool):
        """
        Moving data is not supported yet; pointing a stopped torrent at
        another directory is.
        """
        if not os.path.isabs(path):
            raise ControlError("location must be an absolute path")
        if move:
            raise ControlError("moving data is not supported yet")
        if record.torrent.state != STOPPED:
            raise ControlError("stop the torrent before changing its location")
        raise ControlError("changing the location is not supported yet")

    def close(self) -> None:
        """
        Stop the daemon.
        """
        self.log.info("stopping, as a client asked (session-close)")
        self.clock.callLater(0, self.shutdown)


def parseSource(source, downloadDir: str, torrentsDir: str):
    """
    Check what is being added.

    @param source: C{.torrent} bytes or a magnet link.
    @param downloadDir: where its data will go.
    @param torrentsDir: where the library keeps its copy.
    @return: C{(infoHash, metainfo or None, magnet link or None, the
        bytes to keep, their path in the state dir, the download dir)}.
    @raise ControlError: for something that is not a torrent.
    """
    if not os.path.isabs(downloadDir):
        raise ControlError("download-dir must be an absolute path")
    if isinstance(source, str):
        from btorrent.codec.magnet import MagnetError, parseMagnet

        try:
            magnet = parseMagnet(source)
        except MagnetError as e:
            raise ControlError(str(e)) from None
        path = os.path.join(torrentsDir, magnet.infoHash.hex() + ".magnet")
        return (
            magnet.infoHash,
            None,
            source,
            source.encode("utf-8"),
            path,
            downloadDir,
        )
    try:
        info = metainfoCodec.load(bytes(source))
    except metainfoCodec.MetainfoError:
        raise ControlError(INVALID_TORRENT) from None
    path = os.path.join(torrentsDir, info.infoHash.hex() + ".torrent")
    return info.infoHash, info, None, bytes(source), path, downloadDir


def deleteTorrentData(metainfo, downloadDir: str) -> None:
    """
    Delete a torrent's own files under C{downloadDir}, and the directories
    of its tree left empty; nothing else (a file of the same name that is
    not the torrent's is still the torrent's path: the torrent owns its
    paths).  Symbolic links on the way are never followed.
    """
    root = os.path.realpath(downloadDir)
    directories = set()
    for entry in metainfo.files:
        if entry.padding:
            continue
        if metainfo.multiFile:
            parts = (metainfo.name,) + tuple(entry.path)
        else:
            parts = tuple(entry.path)
        path = os.path.join(root, *parts)
        if os.path.commonpath([root, os.path.realpath(os.path.dirname(path))]) != root:
            continue
        try:
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
        except OSError:
            pass
        for depth in range(1, len(parts)):
            directories.add(os.path.join(root, *parts[:depth]))
    for directory in sorted(directories, key=lambda d: d.count(os.sep), reverse=True):
        try:
            os.rmdir(directory)
        except OSError:
            pass
