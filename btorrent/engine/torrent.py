"""
One torrent and its lifecycle: stopped, check-wait, checking,
download-wait, downloading, seed-wait, seeding (Transmission's states), or
stopped with an error.

L{Torrent} holds no protocol logic.  It builds its storage and picker once
it knows its metadata, checks what is on disk (trusting fast-resume data
that vouches for it), then runs its parts: the L{Downloader} (the
coordinator of its peers), the choker and the announcer.  It stops them so
that what is on disk and the resume data agree, and can be started again.
"""

from __future__ import annotations

import errno
import random
from dataclasses import replace
from typing import Any, Callable, Iterable, List, Optional, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btorrent.control.api import (
    CHECK_WAIT,
    CHECKING,
    DOWNLOAD_WAIT,
    DOWNLOADING,
    ERROR_LOCAL,
    ERROR_NONE,
    SEED_WAIT,
    SEEDING,
    STATE_NAMES,
    STOPPED,
)
from btorrent.engine import resume
from btorrent.engine.controls import TorrentControls
from btorrent.engine.downloader import Downloader, Progress
from btorrent.engine.picker import PiecePicker
from btorrent.engine.queue import SlotQueue
from btorrent.engine.storage import StorageError
from btorrent.interfaces import IAnnounceTarget
from btorrent.peer.connection import Features
from btorrent.peer.encryption import DEFAULT as DEFAULT_ENCRYPTION
from btorrent.util.events import EventSource
from btorrent.util.heartbeat import Heartbeat

__all__ = [
    "PROGRESS_INTERVAL",
    "RESUME_INTERVAL",
    "STOP_ANNOUNCE_TIMEOUT",
    "Torrent",
    "TorrentError",
    "formatRate",
    "formatSize",
    "shortHash",
]

#: Seconds between two progress lines in the log while a torrent transfers
#: (a line is written only if something changed).
PROGRESS_INTERVAL = 60.0

#: Seconds between two saves of the resume data while pieces arrive (so
#: that a crash loses little, and the final sync at stop has little to do).
RESUME_INTERVAL = 60.0

#: Seconds between two looks at a running torrent's files (deleted or cut
#: short from outside: its error).
FILE_CHECK_INTERVAL = 300.0

#: Seconds we wait for the trackers to hear our C{stopped}.
STOP_ANNOUNCE_TIMEOUT = 3.0


def formatSize(n: float) -> str:
    """
    A byte count for people: C{"1.5 MiB"}.
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def formatRate(n: float) -> str:
    """
    A rate for people: C{"1.5 MiB/s"}.
    """
    return formatSize(n) + "/s"


def shortHash(infoHash: bytes) -> str:
    """
    The first 8 hex digits of an info-hash: how log lines name a torrent.
    """
    return infoHash.hex()[:8]


class TorrentError(Exception):
    """
    A torrent cannot go on: a local problem (its directory, its disk), in
    one line for people.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "error"


def describeFailure(failure: Failure) -> str:
    """
    One line for a local failure, for the torrent's error and the log.
    """
    value = failure.value
    cause = value
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        value = cause
    if isinstance(value, OSError) and value.errno == errno.ENOSPC:
        return "no space left on the disk" + (
            f" ({value.filename})" if value.filename else ""
        )
    if isinstance(value, OSError) and value.strerror:
        where = f": {value.filename}" if value.filename else ""
        return f"{value.strerror}{where}"
    return str(value) or type(value).__name__


def _withTimeout(d: defer.Deferred, seconds: float, clock) -> defer.Deferred:
    """
    A L{Deferred} that fires with C{None} when C{d} does, or after
    C{seconds}, whichever is first (C{d} is left to finish on its own).
    """
    result = defer.Deferred()

    def fire(_=None) -> None:
        if not result.called:
            result.callback(None)

    call = clock.callLater(seconds, fire)

    def done(outcome):
        if call.active():
            call.cancel()
        fire()
        if isinstance(outcome, Failure):
            Torrent.log.failure("stopping", failure=outcome)
        return None

    d.addBoth(done)
    return result


@implementer(IAnnounceTarget)
class Torrent:
    """
    A torrent: its state, its data, its parts while it runs.

    @ivar metainfo: its L{btorrent.codec.metainfo.Metainfo} (C{None} while
        its metadata is unknown).
    @ivar storage: its L{IPieceStorage} (once the metadata is known).
    @ivar picker: its L{PiecePicker} (once the metadata is known).
    @ivar downloader: its L{Downloader} (once the metadata is known).
    @ivar announcer: its announcer while it runs (or C{None}).
    @ivar choker: its choker while it runs (or C{None}).
    @ivar state: one of Transmission's states (L{btorrent.control.api}).
    @ivar error: the kind of error (C{ERROR_NONE}, C{ERROR_LOCAL}...).
    @ivar errorString: the error, one line.
    @ivar ready: a L{Deferred} of the current start: fires when the torrent
        runs (its data checked, peers sought), fails with L{TorrentError}
        if it cannot start.
    @ivar completed: fires once every wanted piece is verified.
    @ivar events: C{stateChanged(old, new)}, C{pieceVerified(index)},
        C{complete()}, C{error(text)}.
    @ivar piecesVerified: pieces downloaded that passed their hash check,
        in this process.
    @ivar piecesFailed: pieces downloaded that failed it.
    @ivar corrupt: bytes of the pieces that failed it.
    @ivar encryption: how its downloader dials peers (MSE or not,
        L{btorrent.peer.encryption.MODES}); read at every start.
    """

    log = Logger()
    encryption = DEFAULT_ENCRYPTION

    #: C{metadataPhaseFactory(torrent)} builds the service that fetches the
    #: info dictionary of a torrent started without it (a magnet link:
    #: L{btorrent.engine.metadata.MetadataPhase}, which calls
    #: L{setMetainfo}); set by whoever adds such a torrent.
    metadataPhaseFactory: Optional[Callable[[Any], Any]] = None
    #: The metadata phase while it runs, else C{None}.
    metadataPhase: Any = None

    def __init__(
        self,
        metainfo,
        storage,
        stateDir: Optional[str],
        peerId: bytes,
        runInThread: Callable[..., defer.Deferred],
        reactor,
        port: int = 0,
        maxPeers: int = 50,
        pieceOrder: str = "random",
        debug: bool = False,
        announcerFactory: Optional[Callable[[Any], Any]] = None,
        chokerFactory: Optional[Callable[[Any], Any]] = None,
        rng: Optional[random.Random] = None,
        peers: Iterable[Tuple[str, int]] = (),
        interface: str = "",
        uploadSlots: int = 4,
        resumeInterval: float = RESUME_INTERVAL,
        heartbeat: Optional[Heartbeat] = None,
        checkQueue: Optional[SlotQueue] = None,
        downloadQueue: Optional[SlotQueue] = None,
        seedQueue: Optional[SlotQueue] = None,
        infoHash: Optional[bytes] = None,
        name: Optional[str] = None,
        storageFactory: Optional[Callable[[Any], Any]] = None,
        sessionControls=None,
    ) -> None:
        """
        @param metainfo: the torrent, or C{None} while its metadata is
            unknown (then C{infoHash} and C{storageFactory} are needed).
        @param storage: its L{IPieceStorage} (a C{MultiFileWriter}), not yet
            opened; or C{None} to build it with C{storageFactory}.
        @param stateDir: where fast-resume data lives, or C{None} for none.
        @param peerId: our peer id.
        @param runInThread: C{runInThread(f, *args) -> Deferred}, running
            C{f} off the reactor thread.
        @param reactor: provides C{IReactorTime} and C{IReactorTCP}.
        @param port: the port we listen on.
        @param maxPeers: peers at most.
        @param pieceOrder: C{"random"} or C{"rarest"}.
        @param debug: log every peer message.
        @param announcerFactory: C{announcerFactory(torrent)} builds the
            announcer service (with C{completed()}); C{None} for the one of
            L{btorrent.tracker.announcer} over the torrent's trackers.
        @param chokerFactory: C{chokerFactory(torrent)} builds the choker
            service; C{None} for L{btorrent.engine.chokerservice}'s.
        @param rng: the source of randomness for the picker.
        @param peers: addresses to connect to at start, besides the
            trackers' peers.
        @param interface: the local address to dial peers from.
        @param uploadSlots: regular unchoke slots of the default choker.
        @param resumeInterval: seconds between two saves of fast-resume
            data while pieces arrive (also saved at stop).
        @param heartbeat: the session's L{Heartbeat} (by default, one of the
            torrent's own).
        @param checkQueue: the session's queue for checking data (one at a
            time); by default one of the torrent's own.
        @param downloadQueue: the session's download queue (default: no
            limit).
        @param seedQueue: the session's seed queue (default: no limit).
        @param infoHash: the info-hash, when C{metainfo} is C{None}.
        @param name: the name to show while the metadata is unknown.
        @param storageFactory: C{storageFactory(metainfo)} builds the
            storage once the metadata is known.
        @param sessionControls: the session's
            L{btorrent.engine.controls.SessionControls} (rate limits,
            seeding limits, peer limit); by default a private set.
        """
        self.stateDir = stateDir
        self.peerId = peerId
        self.runInThread = runInThread
        self.reactor = reactor
        self._port = port
        self.maxPeers = maxPeers
        self.pieceOrder = pieceOrder
        self.debug = debug
        self.announcerFactory = announcerFactory or _defaultAnnouncer
        self.chokerFactory = chokerFactory or _defaultChoker
        self.rng = rng or random.Random()
        self.initialPeers: List[Tuple[str, int]] = list(peers)
        self.interface = interface
        self.uploadSlots = uploadSlots
        self.resumeInterval = resumeInterval
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat(reactor)
        self.checkQueue = checkQueue if checkQueue is not None else SlotQueue(1)
        self.downloadQueue = (
            downloadQueue if downloadQueue is not None else SlotQueue(enabled=False)
        )
        self.seedQueue = (
            seedQueue if seedQueue is not None else SlotQueue(enabled=False)
        )
        self.storageFactory = storageFactory
        self.events = EventSource()
        self.metainfo = None
        self.storage = storage
        self.picker: Optional[PiecePicker] = None
        self.downloader: Optional[Downloader] = None
        self.announcer = None
        self.choker = None
        self._infoHash = infoHash if metainfo is None else metainfo.infoHash
        self._name = name
        self.state = STOPPED
        self.error = ERROR_NONE
        self.errorString = ""
        self.ready = defer.Deferred()
        self.completed = defer.Deferred()
        self.queuePosition = 0
        #: The session's DHT node, or C{None} (set by the session).
        self.dht = None
        self._wanted = False  # start() was called and not stop()
        self._checked = False  # the data on disk was checked this process
        self._forceRecheck = False
        self._checkProgress: Tuple[int, int] = (0, 0)
        self._stopping: Optional[defer.Deferred] = None
        self._starting: Optional[defer.Deferred] = None
        self._checking: Optional[defer.Deferred] = None
        self._storageOpen = False
        self._savedCount = -1
        self._saving: Optional[defer.Deferred] = None
        self._nextProgress = 0.0
        self._nextResume = 0.0
        self._nextFileCheck = 0.0
        self._lastLogged: Optional[tuple] = None
        self._completeLogged = False
        self.piecesVerified = 0
        self.piecesFailed = 0
        self.corrupt = 0
        self._announcesBefore = (0, 0)
        #: Rate limits, file selection, order, seeding and peer limits.
        self.controls = TorrentControls(self, sessionControls)
        if metainfo is not None:
            self._setMetainfo(metainfo)

    # Identity

    @property
    def infoHash(self) -> bytes:
        """
        The torrent's info-hash.
        """
        return self._infoHash

    @property
    def name(self) -> str:
        """
        The torrent's name (the magnet's C{dn}, or the hash, while the
        metadata is unknown).
        """
        if self.metainfo is not None:
            return self.metainfo.name
        return self._name or self._infoHash.hex()

    @property
    def logFields(self) -> dict:
        """
        The fields every log line of this torrent carries.
        """
        return {"infoHash": shortHash(self._infoHash), "name": self.name}

    def _log(self, level: str, text: str, **fields) -> None:
        getattr(self.log, level)(text, **self.logFields, **fields)

    def _setMetainfo(self, metainfo) -> None:
        """
        The metadata is known: build the picker, the storage and the
        downloader.
        """
        self.metainfo = metainfo
        self._infoHash = metainfo.infoHash
        if self.storage is None:
            self.storage = self.storageFactory(metainfo)
        self.picker = PiecePicker(
            metainfo.pieceCount,
            metainfo.pieceLength,
            metainfo.totalLength,
            self.rng,
            order=self.pieceOrder,
        )
        self._checkProgress = (0, metainfo.pieceCount)
        self.controls.metadataKnown()

    def setMetainfo(self, metainfo) -> None:
        """
        The metadata arrived (a magnet link): go on as a torrent with its
        metadata, checking what is on disk first.
        """
        if self.metainfo is not None:
            return
        if metainfo.infoHash != self._infoHash:
            raise ValueError("metadata of another torrent")
        self._setMetainfo(metainfo)
        if self._wanted and self._stopping is None:
            self._begin()

    # IAnnounceTarget

    @property
    def port(self) -> int:
        """
        The port we listen on.
        """
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        self._port = value
        if self.downloader is not None:
            self.downloader.listenPort = value

    @property
    def uploaded(self) -> int:
        """
        Bytes uploaded this session.
        """
        return self.downloader.uploaded if self.downloader else 0

    @property
    def downloaded(self) -> int:
        """
        Bytes of verified pieces downloaded this session.
        """
        return self.downloader.downloaded if self.downloader else 0

    @property
    def left(self) -> int:
        """
        Bytes still missing.
        """
        if self.downloader is not None:
            return self.downloader.left
        if self.metainfo is not None:
            return self.metainfo.totalLength
        return 0

    def addPeers(self, peers) -> None:
        """
        Peers from a tracker (or the DHT, PEX, the user): the downloader
        connects to them once it runs.
        """
        peers = list(peers)
        phase = self.metadataPhase
        if self.metainfo is None and phase is not None and phase.running:
            phase.addPeers(peers)
            return
        downloader = self.downloader
        if downloader is not None and downloader.running:
            downloader.addPeers(peers)
        else:
            self.initialPeers.extend(peers)
            del self.initialPeers[:-1000]

    # State

    @property
    def running(self) -> bool:
        """
        Whether the torrent is started (whatever it waits for).
        """
        return self._wanted

    @property
    def stateName(self) -> str:
        """
        The state, in words.
        """
        return STATE_NAMES[self.state]

    def _setState(self, state: int) -> None:
        old, self.state = self.state, state
        if old != state:
            self._log(
                "debug",
                "{name}: {stateName}",
                stateName=STATE_NAMES[state],
                oldState=STATE_NAMES[old],
            )
            self.events.emit("stateChanged", old, state)

    @property
    def complete(self) -> bool:
        """
        Whether every wanted piece is verified (our one meaning of
        "complete").
        """
        return self.picker is not None and self.picker.complete

    def progress(self) -> Progress:
        """
        A snapshot of the download (zero rates while checking the disk).
        """
        if self.downloader is not None:
            return self.downloader.progress()
        total = self.metainfo.totalLength if self.metainfo is not None else 0
        return Progress(0, total, 0.0, 0.0, 0, None)

    @property
    def checking(self) -> Optional[Tuple[int, int]]:
        """
        C{(done, total)} pieces while the data on disk is being checked or
        waits to be, else C{None}.
        """
        if self.state in (CHECKING, CHECK_WAIT):
            return self._checkProgress
        return None

    # Lifecycle

    def start(self) -> defer.Deferred:
        """
        Start the torrent: check its data (queued behind other checks)
        unless this process did already, then download or seed (queued if
        the session's queues are full).  Clears a local error.

        @return: L{ready}.
        """
        if self._wanted:
            return self.ready
        self.controls.startedByUser()
        if self._stopping is not None:
            # Start again once the stop is over.
            d = defer.Deferred()
            self._stopping.addCallback(lambda _: self.start().chainDeferred(d))
            return d
        self._wanted = True
        self.error = ERROR_NONE
        self.errorString = ""
        if self.ready.called:
            self.ready = defer.Deferred()
        if self.metainfo is None:
            self._setState(DOWNLOADING)
            self._startMetadataPhase()
            return self.ready
        self._begin()
        return self.ready

    # Magnet links: the hook of btorrent.engine.metadata.

    def _startMetadataPhase(self) -> None:
        """
        Fetch the info dictionary from peers, if we know how.
        """
        if self.metadataPhaseFactory is not None and self.metadataPhase is None:
            self.metadataPhase = self.metadataPhaseFactory(self)
            self.metadataPhase.startService()

    @property
    def metadataPercentComplete(self) -> float:
        """
        The share of the info dictionary we have, 0.0 to 1.0.
        """
        if self.metainfo is not None:
            return 1.0
        phase = self.metadataPhase
        return phase.metadataPercentComplete if phase is not None else 0.0

    def _begin(self) -> None:
        if self._checked and not self._forceRecheck:
            self._queueTransfer()
            return
        self._setState(CHECK_WAIT)
        self._checking = self._check()

    @defer.inlineCallbacks
    def _check(self):
        """
        Find what is on disk: the resume data if it vouches for the files
        (cheap: no queue), else a recheck when the check queue lets us.
        """
        try:
            pieces = yield self._readDisk()
        except (resume.RecheckStopped, defer.CancelledError):
            self.checkQueue.release(self)
            self._checking = None
            return
        except Exception:
            self.checkQueue.release(self)
            self._checking = None
            self._failed(Failure())
            return
        self.checkQueue.release(self)
        self._checking = None
        self._checked = True
        self._forceRecheck = False
        picker = self.picker
        for index, had in enumerate(pieces):
            if had:
                picker.have(index)
            elif index in picker.haveBitfield:
                picker.lose(index)
        self._log(
            "info",
            "{name}: {have} of {total} pieces on disk are good",
            have=picker.haveBitfield.count,
            total=len(pieces),
        )
        self._savedCount = -1
        if self._verifyOnly:
            self._verifyOnly = False
            yield self._closeStorage(save=True)
            self._setState(STOPPED)
            return
        if self._wanted:
            self._queueTransfer()

    _verifyOnly = False

    def _openAndReadResume(self):
        """
        In a thread: open the storage and read the resume data (C{None}
        unless it vouches for every file).
        """
        self.storage.open()
        if self.stateDir is None or self._forceRecheck:
            return None
        metainfo = self.metainfo
        return resume.readResume(
            self.stateDir,
            metainfo.infoHash,
            metainfo.pieceCount,
            self.storage.fileStats(),
        )

    @defer.inlineCallbacks
    def _readDisk(self):
        metainfo = self.metainfo
        have = yield self.runInThread(self._openAndReadResume)
        self._storageOpen = True
        for warning in getattr(self.storage, "warnings", ()):
            self._log("warn", "{name}: {storageWarning}", storageWarning=warning)
        if have is not None:
            pieces = resume.piecesFromBitfield(have, metainfo.pieceCount)
            self._log(
                "debug",
                "{name}: fast resume, {count} of {total} pieces on disk",
                count=sum(pieces),
                total=len(pieces),
            )
            return pieces
        # A full recheck: one torrent at a time.
        waiting = self._starting = self.checkQueue.acquire(self)
        yield waiting
        self._starting = None
        if not self._wanted and not self._verifyOnly:
            raise defer.CancelledError()
        self._setState(CHECKING)
        pieces = yield self._recheck()
        return pieces

    def _recheck(self) -> defer.Deferred:
        clock = self.reactor
        lastLogged = [clock.seconds()]

        def progress(done: int, total: int) -> None:
            # In the recheck's thread: hop to the reactor.
            self.reactor.callFromThread(report, done, total)

        def report(done: int, total: int) -> None:
            self._checkProgress = (done, total)
            now = clock.seconds()
            if now - lastLogged[0] >= PROGRESS_INTERVAL or done == total:
                lastLogged[0] = now
                self._log(
                    "info",
                    "{name}: checking the data on disk, {done} of {total} pieces",
                    done=done,
                    total=total,
                )

        def stop() -> bool:
            return not self._wanted and not self._verifyOnly

        return self.runInThread(
            resume.recheck, self.storage, self.metainfo, progress, stop
        )

    def _queueTransfer(self) -> None:
        """
        The data is checked: download, or seed if complete, when the queue
        lets us.
        """
        if self.complete:
            queue, waiting = self.seedQueue, SEED_WAIT
        else:
            queue, waiting = self.downloadQueue, DOWNLOAD_WAIT
        d = queue.acquire(self)
        if not d.called:
            self._setState(waiting)
        self._starting = d
        d.addCallback(lambda _: self._run())

    def _run(self) -> None:
        """
        Run the parts: the downloader, the choker, the announcer.
        """
        self._starting = None
        if not self._wanted:
            return
        if not self._storageOpen:
            d = self.runInThread(self.storage.open)

            def opened(_):
                self._storageOpen = True
                self._run()

            d.addCallbacks(opened, self._failed)
            return
        if self.downloader is None:
            self.downloader = Downloader(
                self.metainfo,
                self.picker,
                self.storage,
                self.runInThread,
                self.reactor,
                self.reactor,
                self.peerId,
                listenPort=self._port,
                maxPeers=self.maxPeers,
                debug=self.debug,
                bindAddress=self.interface,
                heartbeat=self.heartbeat,
                logFields=self.logFields,
            )
            from btorrent.engine.extensionset import installExtensions

            installExtensions(self.downloader, self.metainfo)
            events = self.downloader.events
            events.listen("complete", self._complete)
            events.listen("pieceVerified", self._pieceVerified)
            events.listen("pieceFailed", self._pieceFailed)
            events.listen("writeFailed", self._writeFailed)
            events.listen("readFailed", self._writeFailed)
        downloader = self.downloader
        downloader.listenPort = self._port
        downloader.dht = self.dht
        downloader.features = replace(
            downloader.features or Features(), dht=self.dht is not None
        )
        downloader.encryption = self.encryption
        downloader.verifiedBytes = sum(
            self.metainfo.pieceSize(i) for i in self.picker.haveBitfield
        )
        downloader.startService()
        self.controls.attach(downloader)
        self.choker = self.chokerFactory(self)
        if self.choker is not None:
            self.choker.startService()
        self.announcer = self.announcerFactory(self)
        if self.announcer is not None:
            self.announcer.startService()
        self._setState(SEEDING if self.complete else DOWNLOADING)
        if self.initialPeers:
            peers, self.initialPeers = self.initialPeers, []
            downloader.addPeers(peers)
        now = self.reactor.seconds()
        self._nextProgress = now + PROGRESS_INTERVAL
        self._nextResume = now + self.resumeInterval
        self._nextFileCheck = now + FILE_CHECK_INTERVAL
        self._savedCount = self.picker.haveBitfield.count
        self.heartbeat.subscribe(self, self.tick)
        if not self.ready.called:
            self.ready.callback(None)

    def tick(self, now: float) -> None:
        """
        A heartbeat: a progress line at most every L{PROGRESS_INTERVAL}
        seconds when something changed, resume data every
        L{resumeInterval} when pieces arrived.
        """
        if now >= self._nextProgress:
            self._nextProgress = now + PROGRESS_INTERVAL
            self._logProgressIfChanged()
        if now >= self._nextResume:
            self._nextResume = now + self.resumeInterval
            if self.picker.haveBitfield.count != self._savedCount:
                self.saveResume()
        if now >= self._nextFileCheck:
            self._nextFileCheck = now + FILE_CHECK_INTERVAL
            self.checkFiles()

    def checkFiles(self) -> defer.Deferred:
        """
        In a thread, check that the torrent's files are still there at
        their length; if not, the torrent stops with that error (its
        verified pieces are kept; a start rechecks what changed).
        """
        check = getattr(self.storage, "checkFiles", None)
        if check is None or not self._storageOpen or self._stopping is not None:
            return defer.succeed(None)
        d = self.runInThread(check)
        d.addErrback(self._filesGone)
        return d

    def _filesGone(self, failure: Failure) -> None:
        if self._wanted and self._stopping is None:
            self._failed(failure)

    def _logProgressIfChanged(self) -> None:
        key = (self.picker.haveBitfield.count, self.downloaded, self.uploaded)
        if key != self._lastLogged:
            self.logProgress()

    def _pieceVerified(self, index: int) -> None:
        self.piecesVerified += 1
        self.events.emit("pieceVerified", index)

    def _pieceFailed(self, index: int) -> None:
        self.piecesFailed += 1
        self.corrupt += self.metainfo.pieceSize(index)

    @property
    def announces(self) -> Tuple[int, int]:
        """
        Announces to its trackers that were answered and that failed, in
        this process (one per tracker asked; see
        L{btorrent.tracker.announcer.Announcer.succeeded}).
        """
        succeeded, failed = self._announcesBefore
        announcer = self.announcer
        if announcer is not None:
            succeeded += getattr(announcer, "succeeded", 0)
            failed += getattr(announcer, "failed", 0)
        return succeeded, failed

    def _complete(self) -> None:
        downloader = self.downloader
        if not self._completeLogged:
            self._completeLogged = True
            if downloader.downloaded:
                self._log("info", "{name}: download complete")
            else:
                self._log("info", "{name}: complete, seeding")
        if self.announcer is not None and downloader.downloaded:
            self.announcer.completed()
        if self.state == DOWNLOADING:
            self.downloadQueue.release(self)
            self.seedQueue.acquire(self)
            self._setState(SEEDING)
            self.saveResume(force=True)
            self.logProgress()
        self.events.emit("complete")
        if not self.completed.called:
            self.completed.callback(None)

    def _wantMore(self) -> None:
        """
        Files became wanted on a complete torrent (the transfer controls):
        download again.
        """
        if self.state == SEEDING:
            self.seedQueue.release(self)
            self.downloadQueue.acquire(self)
            self._completeLogged = False
            self._setState(DOWNLOADING)

    def _writeFailed(self, index: int, failure: Failure) -> None:
        """
        A piece could not be written or read: the torrent stops with the
        error.
        """
        self._failed(failure)

    def _failed(self, failure: Failure) -> None:
        """
        A local error: the torrent stops, keeps its verified pieces, and
        shows the error until it is started again.
        """
        text = describeFailure(failure)
        if failure.check(OSError, TorrentError, StorageError):
            self._log("error", "{name}: {error}", error=text)
        else:
            self._log("failure", "{name}: cannot go on", failure=failure)
        self.fail(text)

    def fail(self, text: str) -> defer.Deferred:
        """
        Stop with a local error (one line) shown on the torrent.
        """
        self.error = ERROR_LOCAL
        self.errorString = text
        # What is on disk may not be what we think: the next start reads
        # the resume data again (saved at the stop, it names only pieces
        # written) and rechecks if the files changed.
        self._checked = False
        if not self.ready.called:
            self.ready.errback(TorrentError(text))
        d = self.stop()
        self.events.emit("error", text)
        return d

    def stop(self) -> defer.Deferred:
        """
        Stop: announce C{stopped} (a bounded wait), disconnect the peers,
        wait for pending writes, save the resume data and close the files.
        It stays stopped until L{start}ed.

        @return: a L{Deferred} firing when stopped.
        """
        if self._stopping is not None:
            return self._stopping
        self._wanted = False
        if (
            self.state == STOPPED
            and not self._storageOpen
            and self._starting is None
            and self._checking is None
        ):
            return defer.succeed(None)
        d = self._stopping = self._stop()

        def done(result):
            self._stopping = None
            return result

        d.addBoth(done)
        return d

    @defer.inlineCallbacks
    def _stop(self):
        self.heartbeat.unsubscribe(self)
        self.controls.detach()
        for queue in (self.checkQueue, self.downloadQueue, self.seedQueue):
            queue.release(self)
        if self._starting is not None and not self._starting.called:
            starting, self._starting = self._starting, None
            starting.cancel()
        if self._checking is not None:
            # The recheck sees _wanted false and stops; wait for it.
            yield self._checking
        if self._saving is not None:
            yield self._saving
        stopping = []
        phase, self.metadataPhase = self.metadataPhase, None
        if phase is not None and phase.running:
            stopping.append(defer.maybeDeferred(phase.stopService))
        if self.announcer is not None and self.announcer.running:
            d = defer.maybeDeferred(self.announcer.stopService)
            stopping.append(_withTimeout(d, STOP_ANNOUNCE_TIMEOUT, self.reactor))
        if self.choker is not None and self.choker.running:
            stopping.append(defer.maybeDeferred(self.choker.stopService))
        downloader = self.downloader
        wasRunning = downloader is not None and downloader.running
        if wasRunning:
            stopping.append(defer.maybeDeferred(downloader.stopService))
        yield defer.DeferredList(stopping, consumeErrors=True)
        self._announcesBefore = self.announces
        self.announcer = None
        self.choker = None
        if wasRunning:
            # The final totals, every peer gone.
            self.logProgress()
        yield self._closeStorage(save=self._checked)
        self._setState(STOPPED)

    @defer.inlineCallbacks
    def _closeStorage(self, save: bool):
        if self._storageOpen:
            if save and self.stateDir is not None:
                yield self.saveResume(force=True)
            self._storageOpen = False
            try:
                yield self.runInThread(self.storage.close)
            except Exception:
                self._log("failure", "{name}: cannot close its files")

    def verify(self) -> defer.Deferred:
        """
        Check the data on disk again, ignoring the resume data (queued
        behind other checks); a running torrent starts again after.

        @return: a L{Deferred} firing when the check is queued.
        """
        if self.metainfo is None:
            return defer.succeed(None)
        wasRunning = self._wanted
        d = self.stop()

        def restart(_):
            self._forceRecheck = True
            self._checked = False
            if wasRunning:
                self.start()
            else:
                self._verifyOnly = True
                self._begin()

        d.addCallback(restart)
        return d

    # Logs and resume data

    def logProgress(self) -> None:
        """
        Log one line: percent, rates, peers, time left, and the session's
        totals (L{downloaded}, L{uploaded}), in the text both for people and
        in exact bytes, so that the totals can be read from a process's
        log: C{"...; totals down 43.2 MiB (45298483 B) up 12.3 MiB
        (12897485 B)"}.  Also logged once when the torrent stops.
        """
        p = self.progress()
        eta = "-" if p.eta is None else f"{p.eta:.0f} s"
        downloaded = self.downloaded
        uploaded = self.uploaded
        if self.picker is not None:
            self._lastLogged = (self.picker.haveBitfield.count, downloaded, uploaded)
        self._log(
            "info",
            "{name}: {percent:.1f}% down {down} up {up} peers {peers} eta {eta}; "
            "totals down {downloadedText} ({downloaded} B) "
            "up {uploadedText} ({uploaded} B)",
            percent=p.percent,
            down=formatRate(p.downloadRate),
            up=formatRate(p.uploadRate),
            downloadRate=p.downloadRate,
            uploadRate=p.uploadRate,
            peers=p.peers,
            eta=eta,
            etaSeconds=p.eta,
            downloaded=downloaded,
            uploaded=uploaded,
            downloadedText=formatSize(downloaded),
            uploadedText=formatSize(uploaded),
        )

    def saveResume(self, force: bool = False) -> defer.Deferred:
        """
        Save the fast-resume data in a thread (sync the files, then write),
        if pieces were verified since the last save or C{force}.

        @return: a L{Deferred} firing when saved (never failing: a failure
            is logged).
        """
        if self.stateDir is None or self.picker is None or not self._storageOpen:
            return defer.succeed(None)
        if self._saving is not None:
            return self._saving
        count = self.picker.haveBitfield.count
        if count == self._savedCount and not force:
            return defer.succeed(None)
        d = self._saving = self.runInThread(
            resume.saveResume,
            self.storage,
            self.stateDir,
            self.metainfo.infoHash,
            self.picker.haveBitfield.toBytes(),
            self.metainfo.pieceCount,
        )

        def saved(_):
            self._savedCount = count

        def failed(failure):
            self._log("failure", "{name}: cannot save the resume data", failure=failure)

        def done(_):
            self._saving = None

        d.addCallbacks(saved, failed)
        d.addBoth(done)
        return d

    # Compatibility with the service protocol (btorrent download, tests).

    def startService(self) -> None:
        """
        Same as L{start}.
        """
        self.start()

    def stopService(self) -> defer.Deferred:
        """
        Same as L{stop}.
        """
        return self.stop()


def _defaultAnnouncer(torrent: Torrent):
    """
    The announcer over the torrent's trackers (BEP 12 tiers), or C{None}
    for a torrent without any.
    """
    from btorrent.tracker.announcer import makeAnnouncer

    if not any(torrent.metainfo.trackers):
        return None
    return makeAnnouncer(torrent, torrent.metainfo.trackers, torrent.reactor)


def _defaultChoker(torrent: Torrent):
    """
    The choker over the torrent's connected peers, with its C{uploadSlots}.
    """
    from btorrent.engine.chokerservice import ChokerService

    return ChokerService(
        torrent, slots=torrent.uploadSlots, heartbeat=torrent.heartbeat
    )
