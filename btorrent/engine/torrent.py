"""
One torrent, wired: its storage, what is already on disk, the L{Downloader},
the announcer and the choker.

L{Torrent} holds no protocol logic; it starts its parts in the right order
and stops them so that what is on disk and the resume data agree.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable, Optional, Tuple

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btorrent.engine import resume
from btorrent.engine.downloader import Downloader, Progress
from btorrent.engine.picker import PiecePicker
from btorrent.interfaces import IAnnounceTarget

__all__ = ["PROGRESS_INTERVAL", "Torrent", "formatRate", "formatSize"]

#: Seconds between two progress lines in the log.
PROGRESS_INTERVAL = 5.0

#: Seconds between two saves of the resume data while pieces arrive (so
#: that a crash loses little, and the final sync at stop has little to do).
RESUME_INTERVAL = 60.0

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
class Torrent(MultiService):
    """
    A torrent being downloaded or seeded.

    @ivar metainfo: its L{btorrent.codec.metainfo.Metainfo}.
    @ivar storage: its L{IPieceStorage}.
    @ivar picker: its L{PiecePicker}.
    @ivar downloader: its L{Downloader}, once the data on disk was checked.
    @ivar announcer: its announcer service, once started (or C{None}).
    @ivar ready: a L{Deferred} firing when the torrent has started (its
        data checked, peers being sought), or failing if it cannot start.
    @ivar completed: a L{Deferred} firing once every piece is verified.
    """

    log = Logger()

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
    ) -> None:
        """
        @param metainfo: the torrent.
        @param storage: its L{IPieceStorage} (a C{MultiFileWriter}), not yet
            opened.
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
            service; C{None} for L{btorrent.engine.choker}'s.
        @param rng: the source of randomness for the picker.
        @param peers: addresses to connect to at start, besides the
            trackers' peers.
        @param interface: the local address to dial peers from (any by
            default).
        @param uploadSlots: regular unchoke slots of the default choker.
        @param resumeInterval: seconds between two saves of fast-resume
            data while pieces arrive (also saved at stop).
        """
        super().__init__()
        self.metainfo = metainfo
        self.storage = storage
        self.stateDir = stateDir
        self.peerId = peerId
        self.runInThread = runInThread
        self.reactor = reactor
        self._port = port
        self.maxPeers = maxPeers
        self.debug = debug
        self.announcerFactory = announcerFactory or _defaultAnnouncer
        self.chokerFactory = chokerFactory or _defaultChoker
        self.initialPeers = list(peers)
        self.interface = interface
        self.uploadSlots = uploadSlots
        self.resumeInterval = resumeInterval
        self.picker = PiecePicker(
            metainfo.pieceCount,
            metainfo.pieceLength,
            metainfo.totalLength,
            rng or random.Random(),
            order=pieceOrder,
        )
        self.downloader: Optional[Downloader] = None
        self.announcer = None
        self.choker = None
        self.ready = defer.Deferred()
        self.completed = defer.Deferred()
        self._starting: Optional[defer.Deferred] = None
        self._stopping = False
        self._storageOpen = False
        self._progressCall: Optional[LoopingCall] = None
        self._resumeCall: Optional[LoopingCall] = None
        self._savedCount = -1
        self._saving: Optional[defer.Deferred] = None
        self._checked = (0, metainfo.pieceCount)

    # IAnnounceTarget

    @property
    def infoHash(self) -> bytes:
        """
        The torrent's info-hash.
        """
        return self.metainfo.infoHash

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
        return self.metainfo.totalLength

    def addPeers(self, peers) -> None:
        """
        Peers from a tracker: the downloader connects to them.
        """
        peers = list(peers)
        if self.downloader is not None and self.downloader.running:
            self.downloader.addPeers(peers)
        else:
            self.initialPeers.extend(peers)

    # State

    def progress(self) -> Progress:
        """
        A snapshot of the download (zero rates while checking the disk).
        """
        if self.downloader is not None:
            return self.downloader.progress()
        return Progress(0, self.metainfo.totalLength, 0.0, 0.0, 0, None)

    @property
    def checking(self) -> Optional[Tuple[int, int]]:
        """
        C{(done, total)} pieces while the data on disk is being checked,
        else C{None}.
        """
        if self.downloader is None and self.running:
            return self._checked
        return None

    # Service

    def startService(self) -> None:
        """
        Open the storage, find what is already on disk, then start the
        downloader, announcer and choker.
        """
        super().startService()
        self._starting = self._start()
        self._starting.addCallbacks(self._started, self._startFailed)

    @defer.inlineCallbacks
    def _start(self):
        name = self.metainfo.name
        yield self.runInThread(self.storage.open)
        self._storageOpen = True
        have = None
        if self.stateDir is not None:
            have = yield self.runInThread(
                lambda: resume.readResume(
                    self.stateDir,
                    self.metainfo.infoHash,
                    self.metainfo.pieceCount,
                    self.storage.fileStats(),
                )
            )
        if have is not None:
            pieces = resume.piecesFromBitfield(have, self.metainfo.pieceCount)
            self.log.info(
                "{name}: fast resume, {count} of {total} pieces on disk",
                name=name,
                count=sum(pieces),
                total=len(pieces),
            )
        else:
            pieces = yield self._recheck()
        if self._stopping:
            return
        for index, had in enumerate(pieces):
            if had:
                self.picker.have(index)
        self.log.info(
            "{name}: {have} of {total} pieces on disk are good",
            name=self.metainfo.name,
            have=sum(1 for had in pieces if had),
            total=len(pieces),
        )
        self._makeParts()

    def _recheck(self) -> defer.Deferred:
        name = self.metainfo.name
        clock = self.reactor
        lastLogged = [clock.seconds()]

        def progress(done: int, total: int) -> None:
            # In the recheck's thread: hop to the reactor.
            self.reactor.callFromThread(report, done, total)

        def report(done: int, total: int) -> None:
            self._checked = (done, total)
            now = clock.seconds()
            if now - lastLogged[0] >= PROGRESS_INTERVAL or done == total:
                lastLogged[0] = now
                self.log.info(
                    "{name}: checking the data on disk, {done} of {total} pieces",
                    name=name,
                    done=done,
                    total=total,
                )

        def stop() -> bool:
            return self._stopping

        return self.runInThread(
            resume.recheck, self.storage, self.metainfo, progress, stop
        )

    def _makeParts(self) -> None:
        downloader = Downloader(
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
        )
        downloader.events.listen("complete", self._complete)
        self.downloader = downloader
        downloader.setServiceParent(self)
        self.choker = self.chokerFactory(self)
        if self.choker is not None:
            self.choker.setServiceParent(self)
        self.announcer = self.announcerFactory(self)
        if self.announcer is not None:
            self.announcer.setServiceParent(self)
        if self.initialPeers:
            peers, self.initialPeers = self.initialPeers, []
            downloader.addPeers(peers)

    def _started(self, _) -> None:
        self._starting = None
        if self._stopping:
            return
        self._progressCall = LoopingCall(self.logProgress)
        self._progressCall.clock = self.reactor
        self._progressCall.start(PROGRESS_INTERVAL, now=False)
        if self.stateDir is not None:
            self._savedCount = self.picker.haveBitfield.count
            self._resumeCall = LoopingCall(self.saveResume)
            self._resumeCall.clock = self.reactor
            self._resumeCall.start(self.resumeInterval, now=False)
        self.ready.callback(None)

    def _startFailed(self, failure) -> None:
        self._starting = None
        if failure.check(resume.RecheckStopped) and self._stopping:
            return
        self.log.failure(
            "{name}: cannot start", failure=failure, name=self.metainfo.name
        )
        self.ready.errback(failure)

    def _complete(self) -> None:
        name = self.metainfo.name
        if self.downloader is not None and self.downloader.downloaded:
            self.log.info("{name}: download complete", name=name)
        else:
            self.log.info("{name}: complete, seeding", name=name)
        if self.announcer is not None and self.downloader.downloaded:
            self.announcer.completed()
        if not self.completed.called:
            self.completed.callback(None)

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
        self.log.info(
            "{name}: {percent:.1f}% down {down} up {up} peers {peers} eta {eta}; "
            "totals down {downloadedText} ({downloaded} B) "
            "up {uploadedText} ({uploaded} B)",
            name=self.metainfo.name,
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
        if self.stateDir is None or self._saving is not None:
            return self._saving or defer.succeed(None)
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
            self.log.failure(
                "{name}: cannot save the resume data",
                failure=failure,
                name=self.metainfo.name,
            )

        def done(_):
            self._saving = None

        d.addCallbacks(saved, failed)
        d.addBoth(done)
        return d

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop announcing (bounded wait for C{stopped}), disconnect the peers,
        wait for pending writes, save the resume data and close the files.
        """
        self._stopping = True
        for call in (self._progressCall, self._resumeCall):
            if call is not None and call.running:
                call.stop()
        if self._saving is not None:
            yield self._saving
        if self._starting is not None:
            yield self._starting
        stopping = []
        for service in reversed(list(self)):
            d = defer.maybeDeferred(service.stopService)
            if service is self.announcer:
                d = _withTimeout(d, STOP_ANNOUNCE_TIMEOUT, self.reactor)
            stopping.append(d)
        self.running = 0
        yield defer.DeferredList(stopping, consumeErrors=True)
        if self.downloader is not None:
            # The final totals, every peer gone.
            self.logProgress()
        if self._storageOpen:
            if self.stateDir is not None and self.downloader is not None:
                yield self.saveResume(force=True)
            yield self.runInThread(self.storage.close)
            self._storageOpen = False


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
    from btorrent.engine.choker import ChokerService

    return ChokerService(torrent, slots=torrent.uploadSlots)
