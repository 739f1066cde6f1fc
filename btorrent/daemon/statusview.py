"""
L{StatusView}: what a client shows of one torrent of the daemon, each
field worked out when it is read.

A C{torrent-get} of ten thousand torrents asking for their C{status} alone
used to build a whole L{TorrentStatus} for each (sixty fields, a magnet
link, the piece bitfield): 17 microseconds a torrent, a fifth of a second
per poll.  The view computes the fields read and no others.  It is not a
snapshot: read what you need at once, on the reactor.
L{TorrentRecord.status} makes the snapshot from it, so that the two cannot
disagree.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Optional, Tuple
from urllib.parse import urlsplit

from btorrent.codec.magnet import formatMagnet
from btorrent.control.api import (
    CHECKING,
    DOWNLOADING,
    ERROR_NONE,
    ERROR_TRACKER,
    PRIORITY_NORMAL,
    SEEDING,
    STOPPED,
    PeerStatus,
    TorrentStatus,
    TrackerStatus,
)

__all__ = ["COSTLY", "STATUS_FIELDS", "StatusView", "clientName"]

#: The names of L{TorrentStatus}'s fields, in order.
STATUS_FIELDS = tuple(field.name for field in dataclasses.fields(TorrentStatus))

#: The fields that cost more than a few attribute reads; a snapshot has
#: them only when asked for (see L{ITorrentControl.status}).
COSTLY = frozenset({"files", "peers", "trackers", "pieces", "magnetLink"})

#: Their value in a snapshot that did not ask for them.
_EMPTY = {"files": (), "peers": (), "trackers": (), "pieces": b"", "magnetLink": ""}

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
    version = ".".join(
        chr(c) if chr(c).isascii() and chr(c).isalnum() else "?" for c in peerId[3:7]
    )
    name = _CLIENTS.get(code, code)
    return f"{name} {version}"


def _seconds(value: Optional[float]) -> int:
    return int(value) if value else 0


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


class StatusView:
    """
    The fields of L{TorrentStatus} for one L{TorrentRecord}, each computed
    when read (the costly ones too).
    """

    def __init__(self, record) -> None:
        """
        @param record: a L{btorrent.daemon.records.TorrentRecord}.
        """
        self._record = record
        self._torrent = record.torrent
        self._info = record.torrent.metainfo
        self._controls = record.torrent.controls

    def snapshot(self, fields=None) -> TorrentStatus:
        """
        A L{TorrentStatus} of every field, the costly ones only if named
        in C{fields} (C{None}: all of them).
        """
        values = {}
        for name in STATUS_FIELDS:
            if name in COSTLY and fields is not None and name not in fields:
                values[name] = _EMPTY[name]
            else:
                values[name] = getattr(self, name)
        return TorrentStatus(**values)

    # What the parts share

    @cached_property
    def _running(self) -> bool:
        downloader = self._torrent.downloader
        return downloader is not None and downloader.running

    @cached_property
    def _peerList(self) -> list:
        return list(self._torrent.downloader.peers) if self._running else []

    @cached_property
    def _left(self) -> int:
        return self._controls.leftUntilDone

    # The fields

    @property
    def id(self) -> int:
        return self._record.id

    @property
    def infoHash(self) -> bytes:
        return self._torrent.infoHash

    @property
    def name(self) -> str:
        return self._torrent.name

    @property
    def state(self) -> int:
        return self._torrent.state

    @cached_property
    def _error(self) -> Tuple[int, str]:
        torrent = self._torrent
        error, errorString = torrent.error, torrent.errorString
        announcer = torrent.announcer
        if error == ERROR_NONE and announcer is not None and announcer.lastError:
            error, errorString = ERROR_TRACKER, f"Tracker: {announcer.lastError}"
        return error, errorString

    @property
    def error(self) -> int:
        return self._error[0]

    @property
    def errorString(self) -> str:
        return self._error[1]

    @property
    def totalSize(self) -> int:
        return self._info.totalLength if self._info is not None else 0

    @property
    def sizeWhenDone(self) -> int:
        return self._controls.sizeWhenDone

    @property
    def leftUntilDone(self) -> int:
        return self._left

    @property
    def haveValid(self) -> int:
        return self._controls.haveValid

    @property
    def percentDone(self) -> float:
        sizeWhenDone = self._controls.sizeWhenDone
        if not sizeWhenDone:
            return 1.0 if self._info is not None else 0.0
        return (sizeWhenDone - self._left) / sizeWhenDone

    @property
    def recheckProgress(self) -> float:
        torrent = self._torrent
        checking = torrent.checking
        if checking and torrent.state == CHECKING and checking[1]:
            return checking[0] / checking[1]
        return 0.0

    @property
    def metadataPercentComplete(self) -> float:
        return float(self._torrent.metadataPercentComplete)

    @cached_property
    def rateDownload(self) -> int:
        return int(self._torrent.downloader.downloadRate.rate) if self._running else 0

    @property
    def rateUpload(self) -> int:
        return int(self._torrent.downloader.uploadRate.rate) if self._running else 0

    @property
    def uploadedEver(self) -> int:
        return self._record.uploadedEver

    @property
    def downloadedEver(self) -> int:
        return self._record.downloadedEver

    @property
    def corruptEver(self) -> int:
        return self._record.corruptEver

    @property
    def addedDate(self) -> int:
        return self._record.addedDate

    @property
    def doneDate(self) -> int:
        return self._record.doneDate

    @property
    def activityDate(self) -> int:
        return self._record.activityDate

    @property
    def startDate(self) -> int:
        return self._record.startDate

    @property
    def secondsDownloading(self) -> int:
        return self._record.secondsIn(DOWNLOADING)

    @property
    def secondsSeeding(self) -> int:
        return self._record.secondsIn(SEEDING)

    @property
    def eta(self) -> int:
        if self._info is None:
            return -2
        left = self._left
        if left == 0 or self._torrent.state == STOPPED:
            return -1
        rate = self.rateDownload
        return int(left / rate) if rate > 0 else -2

    @property
    def uploadRatio(self) -> float:
        downloaded = self._record.downloadedEver
        uploaded = self._record.uploadedEver
        if downloaded:
            return uploaded / downloaded
        totalSize = self.totalSize
        if uploaded and totalSize:
            return uploaded / totalSize
        return -1.0

    @property
    def isFinished(self) -> bool:
        return self._controls.isFinished

    @property
    def isStalled(self) -> bool:
        return self._running and not self._peerList and self._left > 0

    @property
    def isPrivate(self) -> bool:
        return bool(self._info.private) if self._info is not None else False

    @property
    def downloadDir(self) -> str:
        return self._record.downloadDir

    @property
    def labels(self) -> Tuple[str, ...]:
        return self._record.labels

    @property
    def comment(self) -> str:
        return (self._info.comment or "") if self._info is not None else ""

    @property
    def creator(self) -> str:
        return (self._info.createdBy or "") if self._info is not None else ""

    @property
    def dateCreated(self) -> int:
        return _seconds(self._info.creationDate) if self._info is not None else 0

    @property
    def pieceCount(self) -> int:
        return self._info.pieceCount if self._info is not None else 0

    @property
    def pieceSize(self) -> int:
        return self._info.pieceLength if self._info is not None else 0

    @property
    def pieces(self) -> bytes:
        picker = self._torrent.picker
        return picker.haveBitfield.toBytes() if picker is not None else b""

    @property
    def magnetLink(self) -> str:
        info = self._info
        trackers = info.trackers if info is not None else ()
        return formatMagnet(self._torrent.infoHash, self._torrent.name, trackers)

    @property
    def queuePosition(self) -> int:
        return self._torrent.queuePosition

    @property
    def peersConnected(self) -> int:
        return len(self._peerList)

    @property
    def peersGettingFromUs(self) -> int:
        return sum(1 for p in self._peerList if not p.amChoking and p.peerInterested)

    @property
    def peersSendingToUs(self) -> int:
        return sum(1 for p in self._peerList if not p.peerChoking and p.amInterested)

    @property
    def maxConnectedPeers(self) -> int:
        return self._torrent.maxPeers

    @property
    def bandwidthPriority(self) -> int:
        return int(self._record.options.get("bandwidthPriority", PRIORITY_NORMAL))

    @property
    def downloadLimit(self) -> int:
        return self._controls.bandwidth.limits.downloadLimit

    @property
    def downloadLimited(self) -> bool:
        return self._controls.bandwidth.limits.downloadLimited

    @property
    def uploadLimit(self) -> int:
        return self._controls.bandwidth.limits.uploadLimit

    @property
    def uploadLimited(self) -> bool:
        return self._controls.bandwidth.limits.uploadLimited

    @property
    def honorsSessionLimits(self) -> bool:
        return self._controls.bandwidth.limits.honorsSessionLimits

    @property
    def seedRatioLimit(self) -> float:
        return float(self._controls.seed.seedRatioLimit)

    @property
    def seedRatioMode(self) -> int:
        return int(self._controls.seed.seedRatioMode)

    @property
    def seedIdleLimit(self) -> int:
        return int(self._controls.seed.seedIdleLimit)

    @property
    def seedIdleMode(self) -> int:
        return int(self._controls.seed.seedIdleMode)

    @property
    def sequential(self) -> bool:
        return self._controls.sequential

    @property
    def files(self):
        return tuple(self._controls.files())

    @property
    def peers(self) -> Tuple[PeerStatus, ...]:
        hasInfo = self._info is not None
        return tuple(_peerStatus(peer, hasInfo) for peer in self._peerList)

    @property
    def trackers(self) -> Tuple[TrackerStatus, ...]:
        torrent = self._torrent
        info = self._info
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
                counts = response if isWorking and response else None
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
                        seederCount=_count(counts.complete) if counts else -1,
                        leecherCount=_count(counts.incomplete) if counts else -1,
                        downloadCount=-1,
                        announceState=1 if announcer is not None else 0,
                    )
                )
                number += 1
        return tuple(result)


def _peerStatus(peer, hasInfo: bool) -> PeerStatus:
    """
    What a client shows of one connected peer.
    """
    host, port = peer.address
    pieces = peer.peerPieces
    progress = pieces.count / len(pieces) if pieces is not None and len(pieces) else 0.0
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
    return PeerStatus(
        address=host,
        port=port,
        clientName=clientName(peer.peerId),
        isEncrypted=encrypted,
        isIncoming=not peer.outgoing,
        progress=progress if hasInfo else 0.0,
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
