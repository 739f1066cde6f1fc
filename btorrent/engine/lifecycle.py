"""
How a torrent moves between its states.

L{Lifecycle} is a part of L{btorrent.engine.torrent.Torrent}
(C{torrent.lifecycle}).  A start checks the data on disk (unless this
process did), waits for the session's download or seed queue, then runs
the torrent's parts: the L{Downloader} (the coordinator of its peers),
the choker and the announcer.  A stop announces C{stopped} (a bounded
wait), disconnects the peers, waits for pending writes, saves the resume
data and closes the files, so that what is on disk and the resume data
agree; the torrent can be started again.  A local error stops it and is
shown until the next start.
"""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import Optional

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from btorrent.control.api import (
    DOWNLOAD_WAIT,
    DOWNLOADING,
    ERROR_LOCAL,
    ERROR_NONE,
    SEED_WAIT,
    SEEDING,
    STOPPED,
)
from btorrent.engine.downloader import Downloader
from btorrent.engine.filelayout import StorageError
from btorrent.peer.connection import Features

__all__ = [
    "STOP_ANNOUNCE_TIMEOUT",
    "Lifecycle",
    "TorrentError",
    "describeFailure",
]

#: Seconds we wait for the trackers to hear our C{stopped}.
STOP_ANNOUNCE_TIMEOUT = 3.0


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


def _withTimeout(
    d: defer.Deferred, seconds: float, clock, log: Logger
) -> defer.Deferred:
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
            log.failure("stopping", failure=outcome)
        return None

    d.addBoth(done)
    return result


class Lifecycle:
    """
    The state machine of one torrent.

    @ivar torrent: the L{btorrent.engine.torrent.Torrent}.
    @ivar wanted: L{start} was called and not L{stop}.
    @ivar stopping: the L{Deferred} of the stop under way, or C{None}.
    @ivar starting: the L{Deferred} of the queue slot waited for, or
        C{None}.
    """

    def __init__(self, torrent) -> None:
        self.torrent = torrent
        self.wanted = False
        self.stopping: Optional[defer.Deferred] = None
        self.starting: Optional[defer.Deferred] = None
        self._completeLogged = False

    # Starting

    def start(self) -> defer.Deferred:
        """
        See L{btorrent.engine.torrent.Torrent.start}.
        """
        torrent = self.torrent
        if self.wanted:
            return torrent.ready
        torrent.controls.startedByUser()
        if self.stopping is not None:
            # Start again once the stop is over.
            d = defer.Deferred()
            self.stopping.addCallback(lambda _: self.start().chainDeferred(d))
            return d
        self.wanted = True
        torrent.error = ERROR_NONE
        torrent.errorString = ""
        if torrent.ready.called:
            torrent.ready = defer.Deferred()
        if torrent.metainfo is None:
            torrent.setState(DOWNLOADING)
            self._startMetadataPhase()
            return torrent.ready
        self.begin()
        return torrent.ready

    def _startMetadataPhase(self) -> None:
        """
        Fetch the info dictionary from peers, if we know how (the hook of
        L{btorrent.engine.metadata}).
        """
        torrent = self.torrent
        if torrent.metadataPhaseFactory is not None and torrent.metadataPhase is None:
            torrent.metadataPhase = torrent.metadataPhaseFactory(torrent)
            torrent.metadataPhase.startService()

    def metadataArrived(self) -> None:
        """
        The metadata arrived while started: go on, checking the disk.
        """
        if self.wanted and self.stopping is None:
            self.begin()

    def begin(self) -> None:
        """
        Check the data on disk unless this process did, then queue.
        """
        disk = self.torrent.disk
        if disk.current:
            self.queueTransfer()
            return
        disk.start()

    def queueTransfer(self) -> None:
        """
        The data is checked: download, or seed if complete, when the queue
        lets us.
        """
        torrent = self.torrent
        if torrent.complete:
            queue, waiting = torrent.seedQueue, SEED_WAIT
        else:
            queue, waiting = torrent.downloadQueue, DOWNLOAD_WAIT
        d = queue.acquire(torrent)
        if not d.called:
            torrent.setState(waiting)
        self.starting = d
        d.addCallback(lambda _: self._run())

    def _run(self) -> None:
        """
        Run the parts: the downloader, the choker, the announcer.
        """
        torrent = self.torrent
        self.starting = None
        if not self.wanted:
            return
        if not torrent.storageOpen:
            d = torrent.runInThread(torrent.storage.open)

            def opened(_):
                torrent.storageOpen = True
                self._run()

            d.addCallbacks(opened, self.failed)
            return
        if torrent.downloader is None:
            torrent.downloader = self._buildDownloader()
        downloader = torrent.downloader
        downloader.listenPort = torrent.port
        downloader.dht = torrent.dht
        downloader.features = replace(
            downloader.features or Features(), dht=torrent.dht is not None
        )
        downloader.encryption = torrent.encryption
        downloader.verifiedBytes = torrent.picker.haveBytes
        # Complete at its first start, the downloader's start says
        # "complete, seeding" (L{_complete}): ten thousand torrents starting
        # need not say "seeding" too.
        saidComplete = torrent.complete and not self._completeLogged
        downloader.startService()
        saidComplete = saidComplete and self._completeLogged
        torrent.controls.attach(downloader)
        torrent.choker = torrent.chokerFactory(torrent)
        if torrent.choker is not None:
            torrent.choker.startService()
        torrent.announcer = torrent.announcerFactory(torrent)
        if torrent.announcer is not None:
            torrent.announcer.startService()
        torrent.setState(
            SEEDING if torrent.complete else DOWNLOADING, quiet=saidComplete
        )
        if torrent.initialPeers:
            peers, torrent.initialPeers = torrent.initialPeers, []
            downloader.addPeers(peers)
        torrent.upkeep.begin()
        if not torrent.ready.called:
            torrent.ready.callback(None)

    def _buildDownloader(self) -> Downloader:
        """
        The coordinator of the torrent's peers, with its extensions, its
        events heard.
        """
        torrent = self.torrent
        downloader = Downloader(
            torrent.metainfo,
            torrent.picker,
            torrent.storage,
            torrent.runInThread,
            torrent.reactor,
            torrent.reactor,
            torrent.peerId,
            listenPort=torrent.port,
            maxPeers=torrent.maxPeers,
            debug=torrent.debug,
            bindAddress=torrent.interface,
            heartbeat=torrent.heartbeat,
            logFields=torrent.logFields,
        )
        from btorrent.engine.extensionset import installExtensions

        installExtensions(downloader, torrent.metainfo)
        events = downloader.events
        events.listen("complete", self._complete)
        events.listen("pieceVerified", self._pieceVerified)
        events.listen("pieceFailed", self._pieceFailed)
        events.listen("writeFailed", self._writeFailed)
        events.listen("readFailed", self._writeFailed)
        return downloader

    # What the downloader says

    def _pieceVerified(self, index: int) -> None:
        torrent = self.torrent
        torrent.piecesVerified += 1
        torrent.events.emit("pieceVerified", index)

    def _pieceFailed(self, index: int) -> None:
        torrent = self.torrent
        torrent.piecesFailed += 1
        torrent.corrupt += torrent.metainfo.pieceSize(index)

    def _complete(self) -> None:
        torrent = self.torrent
        downloader = torrent.downloader
        if not self._completeLogged:
            self._completeLogged = True
            if downloader.downloaded:
                torrent.logLine("info", "{name}: download complete")
            else:
                torrent.logLine("info", "{name}: complete, seeding")
        if torrent.announcer is not None and downloader.downloaded:
            torrent.announcer.completed()
        if torrent.state == DOWNLOADING:
            torrent.downloadQueue.release(torrent)
            torrent.seedQueue.acquire(torrent)
            torrent.setState(SEEDING)
            torrent.upkeep.saveResume(force=True)
            torrent.upkeep.logProgress()
        torrent.events.emit("complete")
        if not torrent.completed.called:
            torrent.completed.callback(None)

    def wantMore(self) -> None:
        """
        Files became wanted on a complete torrent (the transfer controls):
        download again.
        """
        torrent = self.torrent
        if torrent.state == SEEDING:
            torrent.seedQueue.release(torrent)
            torrent.downloadQueue.acquire(torrent)
            self._completeLogged = False
            torrent.setState(DOWNLOADING)

    def _writeFailed(self, index: int, failure: Failure) -> None:
        """
        A piece could not be written or read: the torrent stops with the
        error.
        """
        self.failed(failure)

    # Errors

    def failed(self, failure: Failure) -> None:
        """
        A local error: the torrent stops, keeps its verified pieces, and
        shows the error until it is started again.
        """
        torrent = self.torrent
        text = describeFailure(failure)
        if failure.check(OSError, TorrentError, StorageError):
            torrent.logLine("error", "{name}: {error}", error=text)
        else:
            torrent.logLine("failure", "{name}: cannot go on", failure=failure)
        self.fail(text)

    def fail(self, text: str) -> defer.Deferred:
        """
        See L{btorrent.engine.torrent.Torrent.fail}.
        """
        torrent = self.torrent
        torrent.error = ERROR_LOCAL
        torrent.errorString = text
        # What is on disk may not be what we think: the next start reads
        # the resume data again (saved at the stop, it names only pieces
        # written) and rechecks if the files changed.
        torrent.disk.checked = False
        if not torrent.ready.called:
            torrent.ready.errback(TorrentError(text))
        d = self.stop()
        torrent.events.emit("error", text)
        return d

    # Stopping

    def stop(self) -> defer.Deferred:
        """
        See L{btorrent.engine.torrent.Torrent.stop}.
        """
        if self.stopping is not None:
            return self.stopping
        torrent = self.torrent
        self.wanted = False
        if (
            torrent.state == STOPPED
            and not torrent.storageOpen
            and self.starting is None
            and torrent.disk.running is None
        ):
            return defer.succeed(None)
        d = self.stopping = self._stop()

        def done(result):
            self.stopping = None
            return result

        d.addBoth(done)
        return d

    @defer.inlineCallbacks
    def _stop(self):
        torrent = self.torrent
        torrent.upkeep.end()
        torrent.controls.detach()
        for queue in (torrent.checkQueue, torrent.downloadQueue, torrent.seedQueue):
            queue.release(torrent)
        if self.starting is not None and not self.starting.called:
            starting, self.starting = self.starting, None
            starting.cancel()
        if torrent.disk.running is not None:
            # The recheck sees wanted false and stops; wait for it.
            yield torrent.disk.running
        if torrent.upkeep.saving is not None:
            yield torrent.upkeep.saving
        stopping = []
        phase, torrent.metadataPhase = torrent.metadataPhase, None
        if phase is not None and phase.running:
            stopping.append(defer.maybeDeferred(phase.stopService))
        announcer = torrent.announcer
        if announcer is not None and announcer.running:
            d = defer.maybeDeferred(announcer.stopService)
            stopping.append(
                _withTimeout(
                    d, STOP_ANNOUNCE_TIMEOUT, torrent.reactor, type(torrent).log
                )
            )
        if torrent.choker is not None and torrent.choker.running:
            stopping.append(defer.maybeDeferred(torrent.choker.stopService))
        downloader = torrent.downloader
        wasRunning = downloader is not None and downloader.running
        if wasRunning:
            stopping.append(defer.maybeDeferred(downloader.stopService))
        yield defer.DeferredList(stopping, consumeErrors=True)
        torrent.announcesBefore = torrent.announces
        torrent.announcer = None
        torrent.choker = None
        if wasRunning:
            # The final totals, every peer gone.
            torrent.upkeep.logProgress()
        yield torrent.upkeep.closeStorage(save=torrent.disk.checked)
        torrent.setState(STOPPED)

    def verify(self) -> defer.Deferred:
        """
        See L{btorrent.engine.torrent.Torrent.verify}.
        """
        torrent = self.torrent
        if torrent.metainfo is None:
            return defer.succeed(None)
        wasRunning = self.wanted
        d = self.stop()

        def restart(_):
            disk = torrent.disk
            disk.forceRecheck = True
            disk.checked = False
            if wasRunning:
                torrent.start()
            else:
                disk.verifyOnly = True
                self.begin()

        d.addCallback(restart)
        return d
