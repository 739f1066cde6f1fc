"""
One torrent: stopped, check-wait, checking, download-wait, downloading,
seed-wait, seeding (Transmission's states), or stopped with an error.

L{Torrent} holds no protocol logic.  It is what the session and the
control plane see of a torrent: its identity, data, state, counts and
settings.  It builds its storage and picker once it knows its metadata;
three parts do the work, each in its own module:

  - L{DiskCheck} (L{btorrent.engine.diskcheck}): what is on disk, from
    fast-resume data that vouches for it or from a recheck;
  - L{Lifecycle} (L{btorrent.engine.lifecycle}): start, stop, error and
    verify; it runs the torrent's parts (the L{Downloader}, the coordinator
    of its peers; the choker; the announcer) and stops them so that what
    is on disk and the resume data agree; a torrent can be started again;
  - L{Upkeep} (L{btorrent.engine.upkeep}): progress lines, resume data and
    file checks on the session's heartbeat.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable, List, Optional, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from btorrent.control.api import (
    CHECK_WAIT,
    CHECKING,
    DOWNLOAD_WAIT,
    ERROR_NONE,
    SEED_WAIT,
    STATE_NAMES,
    STOPPED,
)
from btorrent.engine.controls import TorrentControls
from btorrent.engine.diskcheck import DiskCheck
from btorrent.engine.downloader import Downloader, Progress
from btorrent.engine.lifecycle import (
    STOP_ANNOUNCE_TIMEOUT,
    Lifecycle,
    TorrentError,
    describeFailure,
)
from btorrent.engine.picker import PiecePicker
from btorrent.engine.queue import SlotQueue
from btorrent.engine.upkeep import (
    FILE_CHECK_INTERVAL,
    PROGRESS_INTERVAL,
    RESUME_INTERVAL,
    Upkeep,
    formatRate,
    formatSize,
)
from btorrent.interfaces import IAnnounceTarget
from btorrent.peer.encryption import DEFAULT as DEFAULT_ENCRYPTION
from btorrent.util import logs
from btorrent.util.events import EventSource
from btorrent.util.heartbeat import Heartbeat

__all__ = [
    "FILE_CHECK_INTERVAL",
    "PROGRESS_INTERVAL",
    "RESUME_INTERVAL",
    "STOP_ANNOUNCE_TIMEOUT",
    "Torrent",
    "TorrentError",
    "describeFailure",
    "formatRate",
    "formatSize",
    "shortHash",
]

#: The states of a torrent waiting in a queue.
_WAITING = frozenset({CHECK_WAIT, DOWNLOAD_WAIT, SEED_WAIT})


def shortHash(infoHash: bytes) -> str:
    """
    The first 8 hex digits of an info-hash: how log lines name a torrent.
    """
    return infoHash.hex()[:8]


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
    @ivar disk: its L{DiskCheck}: what it has on disk (fast resume or a
        recheck).
    @ivar upkeep: its L{Upkeep}: progress lines, resume data, file checks.
    @ivar lifecycle: its L{Lifecycle}: how it moves between its states.
    """

    log = Logger(observer=logs.observer)
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
        #: Whether the storage is open (its files created).
        self.storageOpen = False
        #: Its parts: the check of the disk, the periodic work, the states.
        self.disk = DiskCheck(self)
        self.upkeep = Upkeep(self)
        self.lifecycle = Lifecycle(self)
        self.piecesVerified = 0
        self.piecesFailed = 0
        self.corrupt = 0
        #: Announces answered and failed by its earlier announcers.
        self.announcesBefore = (0, 0)
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

    def logLine(self, level: str, text: str, **fields) -> None:
        """
        Log one line of this torrent (with L{logFields}).

        @param level: C{"debug"}, C{"info"}, C{"warn"}, C{"error"} or
            C{"failure"}.
        """
        if logs.passes(level):
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
        self.disk.progress = (0, metainfo.pieceCount)
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
        self.lifecycle.metadataArrived()

    @property
    def metadataPercentComplete(self) -> float:
        """
        The share of the info dictionary we have, 0.0 to 1.0.
        """
        if self.metainfo is not None:
            return 1.0
        phase = self.metadataPhase
        return phase.metadataPercentComplete if phase is not None else 0.0

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

    @property
    def announces(self) -> Tuple[int, int]:
        """
        Announces to its trackers that were answered and that failed, in
        this process (one per tracker asked; see
        L{btorrent.tracker.announcer.Announcer.succeeded}).
        """
        succeeded, failed = self.announcesBefore
        announcer = self.announcer
        if announcer is not None:
            succeeded += getattr(announcer, "succeeded", 0)
            failed += getattr(announcer, "failed", 0)
        return succeeded, failed

    # State

    @property
    def running(self) -> bool:
        """
        Whether the torrent is started (whatever it waits for).
        """
        return self.lifecycle.wanted

    @property
    def stateName(self) -> str:
        """
        The state, in words.
        """
        return STATE_NAMES[self.state]

    def setState(self, state: int, quiet: bool = False) -> None:
        """
        Enter C{state} (its parts call this): logged, and
        C{stateChanged(old, new)} emitted if it is a change.

        @param quiet: log the change as a debug line (a line that says more
            follows it).
        """
        old, self.state = self.state, state
        if old != state:
            # Waiting in a queue is a debug line (ten thousand torrents
            # starting wait for their turn to check).
            self.logLine(
                "debug" if quiet or state in _WAITING else "info",
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
            return self.disk.progress
        return None

    # Lifecycle (L{Lifecycle})

    def start(self) -> defer.Deferred:
        """
        Start the torrent: check its data (queued behind other checks)
        unless this process did already, then download or seed (queued if
        the session's queues are full).  Clears a local error.

        @return: L{ready}.
        """
        return self.lifecycle.start()

    def stop(self) -> defer.Deferred:
        """
        Stop: announce C{stopped} (a bounded wait), disconnect the peers,
        wait for pending writes, save the resume data and close the files.
        It stays stopped until L{start}ed.

        @return: a L{Deferred} firing when stopped.
        """
        return self.lifecycle.stop()

    def fail(self, text: str) -> defer.Deferred:
        """
        Stop with a local error (one line) shown on the torrent.
        """
        return self.lifecycle.fail(text)

    def verify(self) -> defer.Deferred:
        """
        Check the data on disk again, ignoring the resume data (queued
        behind other checks); a running torrent starts again after.

        @return: a L{Deferred} firing when the check is queued.
        """
        return self.lifecycle.verify()

    # Logs and resume data (L{Upkeep})

    def logProgress(self) -> None:
        """
        Log one progress line (see L{Upkeep.logProgress}).
        """
        self.upkeep.logProgress()

    def saveResume(self, force: bool = False) -> defer.Deferred:
        """
        Save the fast-resume data in a thread (sync the files, then write),
        if pieces were verified since the last save or C{force}.

        @return: a L{Deferred} firing when saved (never failing: a failure
            is logged).
        """
        return self.upkeep.saveResume(force)

    def checkFiles(self) -> defer.Deferred:
        """
        In a thread, check that the torrent's files are still there at
        their length; if not, the torrent stops with that error.
        """
        return self.upkeep.checkFiles()

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
        torrent,
        slots=torrent.uploadSlots,
        heartbeat=torrent.heartbeat,
        rng=torrent.rng,
    )
