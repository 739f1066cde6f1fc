"""
L{TorrentRecord}: one torrent of the daemon as the control plane sees it
(L{ITorrentControl}): the engine's L{Torrent} plus what the daemon keeps
about it across restarts (its id, dates, labels, totals over every run,
its own settings), and the snapshot a client shows (L{TorrentStatus}).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

from twisted.internet import defer
from zope.interface import implementer

from btorrent.codec.magnet import formatMagnet
from btorrent.control.api import (
    CHECKING,
    DOWNLOADING,
    ERROR_NONE,
    ERROR_TRACKER,
    PRIORITY_NORMAL,
    SEEDING,
    STOPPED,
    ControlError,
    ITorrentControl,
    PeerStatus,
    TorrentOptions,
    TorrentStatus,
    TrackerStatus,
)

__all__ = ["TorrentRecord", "clientName"]

#: Peer id prefixes (Azureus style) of common clients, for peer lists.
_CLIENTS = {
    "BT": "btorrent",
    "LT": "libtorrent",
    "lt": "libtorrent (Rasterbar)",
    "TR": "Transmission",
    "qB": "qBittorrent",
    "DE": "Deluge",
    "UT": "µTorrent",
    "A2": "aria2",
    "AZ": "Vuze",
}


def clientName(peerId: Optional[bytes]) -> str:
    """
    A client's name and version from its Azureus-style peer id
    (C{-TR3000-...} is "Transmission 3.0.0.0"), or C{""}.
    """
    if not peerId or len(peerId) < 8 or peerId[:1] != b"-" or peerId[7:8] != b"-":
        return ""
    code = peerId[1:3].decode("ascii", "replace")
    version = ".".join(chr(c) if chr(c).isalnum() else "?" for c in peerId[3:7])
    name = _CLIENTS.get(code, code)
    return f"{name} {version}"


def _seconds(value: Optional[float]) -> int:
    return int(value) if value else 0


@implementer(ITorrentControl)
class TorrentRecord:
    """
    A torrent of the daemon.

    @ivar id: the session-local integer id.
    @ivar torrent: the engine's L{btorrent.engine.torrent.Torrent}.
    @ivar paused: the user stopped it (it stays stopped across restarts).
    @ivar source: the C{.torrent} bytes or the magnet link it was added
        from (what the state dir keeps).
    """

    def __init__(
        self,
        library,
        torrentId: int,
        torrent,
        downloadDir: str,
        addedDate: Optional[int] = None,
        labels: Tuple[str, ...] = (),
        saved: Optional[Dict[str, Any]] = None,
    ) -> None:
        """
        @param library: the L{btorrent.daemon.library.Library} it belongs
            to (told of changes, asked to persist).
        @param saved: what the state file kept of it (totals, dates,
            options), if it was loaded from there.
        """
        saved = saved or {}
        self.library = library
        self.id = torrentId
        self.torrent = torrent
        self.downloadDir = downloadDir
        self.labels = tuple(labels)
        self.addedDate = int(addedDate if addedDate is not None else time.time())
        self.doneDate = int(saved.get("doneDate", 0))
        self.activityDate = int(saved.get("activityDate", 0))
        self.startDate = 0
        self.paused = bool(saved.get("paused", False))
        controls = torrent.controls
        if isinstance(saved.get("controls"), dict):
            try:
                controls.load(saved["controls"])
            except ControlError as e:
                library.log.warn(
                    "{name}: its saved settings are not usable ({error})",
                    name=torrent.name,
                    error=str(e),
                )
        self.corruptBefore = int(saved.get("corruptEver", 0))
        self.secondsDownloadingBefore = int(saved.get("secondsDownloading", 0))
        self.secondsSeedingBefore = int(saved.get("secondsSeeding", 0))
        self.options: Dict[str, Any] = dict(saved.get("options", {}))
        self._runSince: Optional[float] = None
        self._runState = STOPPED
        self._lastTransfer = (0, 0)
        torrent.events.listen("stateChanged", self._stateChanged)
        torrent.events.listen("complete", self._completed)

    @property
    def infoHash(self) -> bytes:
        """
        The torrent's info-hash.
        """
        return self.torrent.infoHash

    # What happens to it

    def _stateChanged(self, old: int, new: int) -> None:
        now = time.time()
        self._accountTime(now)
        if new in (DOWNLOADING, SEEDING):
            self._runSince = now
            self._runState = new
            if old not in (DOWNLOADING, SEEDING):
                self.startDate = int(now)
        self.activityDate = int(now)

    def _accountTime(self, now: float) -> None:
        if self._runSince is not None:
            spent = int(now - self._runSince)
            if self._runState == DOWNLOADING:
                self.secondsDownloadingBefore += spent
            elif self._runState == SEEDING:
                self.secondsSeedingBefore += spent
            self._runSince = None

    def _completed(self) -> None:
        if not self.doneDate:
            self.doneDate = int(time.time())
            self.library.changed(self)

    def noteActivity(self) -> bool:
        """
        Update the activity date if bytes moved since the last call.

        @return: whether they did.
        """
        transfer = (self.torrent.downloaded, self.torrent.uploaded)
        if transfer != self._lastTransfer:
            self._lastTransfer = transfer
            self.activityDate = int(time.time())
            return True
        return False

    # Totals over every run

    @property
    def uploadedEver(self) -> int:
        """
        Bytes uploaded over every run (the transfer controls count them:
        the ratio limit reads them).
        """
        return self.torrent.controls.uploadedEver

    @property
    def downloadedEver(self) -> int:
        """
        Bytes downloaded (verified) over every run.
        """
        return self.torrent.controls.downloadedEver

    @property
    def corruptEver(self) -> int:
        """
        Bytes of pieces that failed their hash check, over every run.
        """
        return self.corruptBefore + getattr(self.torrent, "corrupt", 0)

    def secondsIn(self, state: int) -> int:
        """
        Seconds spent downloading (or seeding) over every run.
        """
        base = (
            self.secondsDownloadingBefore
            if state == DOWNLOADING
            else self.secondsSeedingBefore
        )
        if self._runSince is not None and self._runState == state:
            base += int(time.time() - self._runSince)
        return base

    def toJSON(self) -> Dict[str, Any]:
        """
        What the state file keeps of it.
        """
        return {
            "id": self.id,
            "infoHash": self.infoHash.hex(),
            "downloadDir": self.downloadDir,
            "labels": list(self.labels),
            "paused": self.paused,
            "addedDate": self.addedDate,
            "doneDate": self.doneDate,
            "activityDate": self.activityDate,
            "controls": self.torrent.controls.toJSON(),
            "corruptEver": self.corruptEver,
            "secondsDownloading": self.secondsIn(DOWNLOADING),
            "secondsSeeding": self.secondsIn(SEEDING),
            "queuePosition": self.torrent.queuePosition,
            "options": dict(self.options),
        }

    # ITorrentControl

    def start(self, now: bool = False) -> None:
        """
        Start it (C{now}: ahead of the queue).
        """
        self.paused = False
        if now:
            self.library.queueMove([self], "top")
        self.torrent.start()
        self.library.changed(self)

    def stop(self):
        """
        Stop it; it stays stopped across restarts.
        """
        self.paused = True
        d = self.torrent.stop()
        self.library.changed(self)
        return d

    def verify(self):
        """
        Check its data again.
        """
        return self.torrent.verify()

    def reannounce(self) -> None:
        """
        Announce now.
        """
        announcer = self.torrent.announcer
        if announcer is not None and announcer.running:
            announcer.announceNow(force=True)

    def setOptions(self, options: TorrentOptions) -> None:
        """
        Change its settings (those the engine knows; the rest are kept).

        @raise ControlError: for a bad value.
        """
        # The transfer controls check every value of theirs first: a bad
        # one changes nothing.
        self.torrent.controls.setOptions(options)
        changes = {
            name: getattr(options, name)
            for name in ("labels", "queuePosition", "bandwidthPriority")
            if getattr(options, name) is not None
        }
        if "labels" in changes:
            self.labels = tuple(changes.pop("labels"))
        if "queuePosition" in changes:
            self.library.queueSet(self, changes.pop("queuePosition"))
        for key, value in changes.items():
            self.options[key] = value
        self.library.changed(self)

    def setLocation(self, path: str, move: bool):
        """
        Point it at another download dir (moving its files when C{move}).
        """
        return defer.maybeDeferred(self.library.moveTorrent, self, path, move)

    def renamePath(self, path: str, name: str):
        """
        Renaming files is not supported yet.
        """
        return defer.fail(ControlError("renaming files is not supported"))

    # Status

    def status(self, fields=None) -> TorrentStatus:
        """
        A snapshot for a client (see L{TorrentStatus}).
        """
        torrent = self.torrent
        info = torrent.metainfo
        downloader = torrent.downloader
        controls = torrent.controls
        totalSize = info.totalLength if info is not None else 0
        haveValid = controls.haveValid
        sizeWhenDone = controls.sizeWhenDone
        left = controls.leftUntilDone
        done = sizeWhenDone - left
        percentDone = done / sizeWhenDone if sizeWhenDone else 0.0
        if info is not None and not sizeWhenDone:
            percentDone = 1.0
        running = downloader is not None and downloader.running
        rateDown = int(downloader.downloadRate.rate) if running else 0
        rateUp = int(downloader.uploadRate.rate) if running else 0
        peers = list(downloader.peers) if running else []
        if info is None:
            eta = -2
        elif left == 0 or torrent.state == STOPPED:
            eta = -1
        elif rateDown > 0:
            eta = int(left / rateDown)
        else:
            eta = -2
        downloaded = self.downloadedEver
        uploaded = self.uploadedEver
        if downloaded:
            ratio = uploaded / downloaded
        elif uploaded and totalSize:
            ratio = uploaded / totalSize
        else:
            ratio = -1.0
        error, errorString = torrent.error, torrent.errorString
        announcer = torrent.announcer
        if error == ERROR_NONE and announcer is not None and announcer.lastError:
            error, errorString = ERROR_TRACKER, f"Tracker: {announcer.lastError}"
        checking = torrent.checking
        recheck = 0.0
        if checking and torrent.state == CHECKING and checking[1]:
            recheck = checking[0] / checking[1]
        limits = controls.bandwidth.limits
        seed = controls.seed
        if fields is None:
            wanted = lambda name: True  # noqa: E731
        else:
            wanted = fields.__contains__
        return TorrentStatus(
            id=self.id,
            infoHash=self.infoHash,
            name=torrent.name,
            state=torrent.state,
            error=error,
            errorString=errorString,
            totalSize=totalSize,
            sizeWhenDone=sizeWhenDone,
            leftUntilDone=left,
            haveValid=haveValid,
            percentDone=percentDone,
            recheckProgress=recheck,
            metadataPercentComplete=self._metadataProgress(),
            rateDownload=rateDown,
            rateUpload=rateUp,
            uploadedEver=uploaded,
            downloadedEver=downloaded,
            corruptEver=self.corruptEver,
            addedDate=self.addedDate,
            doneDate=self.doneDate,
            activityDate=self.activityDate,
            startDate=self.startDate,
            secondsDownloading=self.secondsIn(DOWNLOADING),
            secondsSeeding=self.secondsIn(SEEDING),
            eta=eta,
            uploadRatio=ratio,
            isFinished=controls.isFinished,
            isStalled=running and not peers and left > 0,
            isPrivate=bool(info.private) if info is not None else False,
            downloadDir=self.downloadDir,
            labels=self.labels,
            comment=(info.comment or "") if info is not None else "",
            creator=(info.createdBy or "") if info is not None else "",
            dateCreated=_seconds(info.creationDate) if info is not None else 0,
            pieceCount=info.pieceCount if info is not None else 0,
            pieceSize=info.pieceLength if info is not None else 0,
            pieces=(
                torrent.picker.haveBitfield.toBytes()
                if torrent.picker is not None
                else b""
            ),
            magnetLink=self.magnetLink(),
            queuePosition=torrent.queuePosition,
            peersConnected=len(peers),
            peersGettingFromUs=sum(
                1 for p in peers if not p.amChoking and p.peerInterested
            ),
            peersSendingToUs=sum(
                1 for p in peers if not p.peerChoking and p.amInterested
            ),
            maxConnectedPeers=torrent.maxPeers,
            bandwidthPriority=int(
                self.options.get("bandwidthPriority", PRIORITY_NORMAL)
            ),
            downloadLimit=limits.downloadLimit,
            downloadLimited=limits.downloadLimited,
            uploadLimit=limits.uploadLimit,
            uploadLimited=limits.uploadLimited,
            honorsSessionLimits=limits.honorsSessionLimits,
            seedRatioLimit=float(seed.seedRatioLimit),
            seedRatioMode=int(seed.seedRatioMode),
            seedIdleLimit=int(seed.seedIdleLimit),
            seedIdleMode=int(seed.seedIdleMode),
            sequential=controls.sequential,
            files=tuple(controls.files()) if wanted("files") else (),
            peers=self._peers(peers) if wanted("peers") else (),
            trackers=self._trackers() if wanted("trackers") else (),
        )

    def _metadataProgress(self) -> float:
        return float(self.torrent.metadataPercentComplete)

    def magnetLink(self) -> str:
        """
        A magnet link for it.
        """
        info = self.torrent.metainfo
        trackers = info.trackers if info is not None else ()
        return formatMagnet(self.infoHash, self.torrent.name, trackers)

    def _peers(self, peers) -> Tuple[PeerStatus, ...]:
        result = []
        info = self.torrent.metainfo
        for peer in peers:
            host, port = peer.address
            pieces = peer.peerPieces
            progress = (
                pieces.count / len(pieces)
                if pieces is not None and len(pieces)
                else 0.0
            )
            flags = ""
            if not peer.peerChoking and peer.amInterested:
                flags += "D"
            elif peer.amInterested:
                flags += "d"
            if not peer.amChoking and peer.peerInterested:
                flags += "U"
            elif peer.peerInterested:
                flags += "u"
            if not peer.outgoing:
                flags += "I"
            encrypted = bool(getattr(peer, "isEncrypted", False))
            if encrypted:
                flags += "E"
            result.append(
                PeerStatus(
                    address=host,
                    port=port,
                    clientName=clientName(peer.peerId),
                    isEncrypted=encrypted,
                    isIncoming=not peer.outgoing,
                    progress=progress if info is not None else 0.0,
                    rateToClient=int(peer.downloadRate.rate),
                    rateToPeer=int(peer.uploadRate.rate),
                    clientIsChoked=peer.peerChoking,
                    clientIsInterested=peer.amInterested,
                    peerIsChoked=peer.amChoking,
                    peerIsInterested=peer.peerInterested,
                    isDownloadingFrom=not peer.peerChoking and peer.amInterested,
                    isUploadingTo=not peer.amChoking and peer.peerInterested,
                    flagStr=flags,
                )
            )
        return tuple(result)

    def _trackers(self) -> Tuple[TrackerStatus, ...]:
        torrent = self.torrent
        info = torrent.metainfo
        tiers = info.trackers if info is not None else ()
        announcer = torrent.announcer
        working = getattr(getattr(announcer, "workingClient", None), "url", None)
        response = getattr(announcer, "lastResponse", None)
        # How the last announce to each tracker went (the announcer of
        # this run; none before it starts).
        results = getattr(announcer, "results", None) or {}
        nextAt = _seconds(getattr(announcer, "nextAnnounceAt", None))
        result = []
        number = 0
        for tier, urls in enumerate(tiers):
            for url in urls:
                isWorking = url == working
                last = results.get(url)
                result.append(
                    TrackerStatus(
                        id=number,
                        tier=tier,
                        announce=url,
                        host=_host(url),
                        lastAnnounceTime=_seconds(last.when) if last else 0,
                        lastAnnounceSucceeded=bool(last and last.succeeded),
                        lastAnnounceResult=last.text if last else "",
                        lastAnnouncePeerCount=last.peers if last else 0,
                        nextAnnounceTime=nextAt if announcer is not None else 0,
                        seederCount=(
                            _count(response.complete) if isWorking and response else -1
                        ),
                        leecherCount=(
                            _count(response.incomplete)
                            if isWorking and response
                            else -1
                        ),
                        downloadCount=-1,
                        announceState=1 if announcer is not None else 0,
                    )
                )
                number += 1
        return tuple(result)


def _count(value) -> int:
    return int(value) if isinstance(value, int) and value >= 0 else -1


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.hostname is None:
        return ""
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}".rstrip(":")
