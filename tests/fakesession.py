"""
A session in memory implementing the session API (L{ISessionControl},
L{ITorrentControl}), for testing what speaks it (the RPC, the web page, the
command line) without an engine.

It keeps what a client can see and change, checks what the real session
must check (a corrupt torrent, a file index out of range, an unknown
setting), and records every call in C{calls} so that tests can see what
reached the session.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from base64 import b32decode
from typing import Callable, Dict, List, Tuple
from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from btorrent.codec import metainfo
from btorrent.control.api import (
    DOWNLOADING,
    ERROR_NONE,
    PRIORITY_NORMAL,
    SEEDING,
    STOPPED,
    AddOptions,
    AddResult,
    ControlError,
    FileStatus,
    ISessionControl,
    ITorrentControl,
    PeerStatus,
    SessionSettings,
    SessionStats,
    TorrentOptions,
    TorrentStatus,
    TrackerStatus,
)


@dataclasses.dataclass
class FakeFile:
    """
    One file of a fake torrent.
    """

    name: str
    length: int
    bytesCompleted: int = 0
    wanted: bool = True
    priority: int = PRIORITY_NORMAL


@implementer(ITorrentControl)
class FakeTorrent:
    """
    A torrent in memory: its files, how much of each is done, its state,
    its settings; rates and peers are whatever a test sets.
    """

    def __init__(
        self,
        session: FakeSession,
        id: int,
        infoHash: bytes,
        name: str,
        files: List[FakeFile],
        pieceSize: int = 16384,
        downloadDir: str = "/downloads",
        state: int = STOPPED,
        trackers: Tuple[str, ...] = (),
        comment: str = "",
        creator: str = "",
        dateCreated: int = 0,
        isPrivate: bool = False,
    ) -> None:
        self._session = session
        self.id = id
        self.infoHash = infoHash
        self.name = name
        self.files = files
        self.pieceSize = pieceSize
        self.downloadDir = downloadDir
        self.state = state
        self.trackers = trackers
        self.comment = comment
        self.creator = creator
        self.dateCreated = dateCreated
        self.isPrivate = isPrivate
        self.labels: Tuple[str, ...] = ()
        self.error = ERROR_NONE
        self.errorString = ""
        self.rateDownload = 0
        self.rateUpload = 0
        self.uploadedEver = 0
        self.downloadedEver = sum(f.bytesCompleted for f in files)
        self.addedDate = int(session.clock())
        self.activityDate = self.addedDate
        self.peers: Tuple[PeerStatus, ...] = ()
        self.queuePosition = 0
        self.options = TorrentOptions(
            downloadLimit=100_000,
            downloadLimited=False,
            uploadLimit=100_000,
            uploadLimited=False,
            honorsSessionLimits=True,
            seedRatioLimit=2.0,
            seedRatioMode=0,
            seedIdleLimit=30,
            seedIdleMode=0,
            peerLimit=50,
            bandwidthPriority=PRIORITY_NORMAL,
            sequential=False,
        )
        self.calls: List[tuple] = []

    def _record(self, *call: object) -> None:
        self.calls.append(call)
        self._session.calls.append((self.id,) + call)
        self.activityDate = int(self._session.clock())

    @property
    def totalSize(self) -> int:
        return sum(f.length for f in self.files)

    def view(self) -> TorrentStatus:
        return self.status()

    def status(self, fields=None) -> TorrentStatus:
        wanted = [f for f in self.files if f.wanted]
        sizeWhenDone = sum(f.length for f in wanted)
        have = sum(f.bytesCompleted for f in self.files)
        left = sum(f.length - f.bytesCompleted for f in wanted)
        pieceCount = -(-self.totalSize // self.pieceSize) if self.files else 0
        donePieces = have // self.pieceSize if self.files else 0
        if have == self.totalSize:
            donePieces = pieceCount
        bits = bytearray((pieceCount + 7) // 8)
        for i in range(donePieces):
            bits[i // 8] |= 0x80 >> (i % 8)
        if self.state in (STOPPED,) or left == 0:
            eta = -1
        elif self.rateDownload > 0:
            # A float on purpose: the RPC must send an integer.
            eta = left / self.rateDownload
        else:
            eta = -2
        ratio = (
            -1.0 if not self.downloadedEver else self.uploadedEver / self.downloadedEver
        )
        o = self.options
        magnet = "magnet:?xt=urn:btih:" + self.infoHash.hex() + "&dn=" + self.name
        trackerStats = tuple(
            TrackerStatus(
                id=i,
                tier=i,
                announce=url,
                host=urlsplit(url).netloc,
                lastAnnounceTime=0,
                lastAnnounceSucceeded=False,
                lastAnnounceResult="",
                lastAnnouncePeerCount=0,
                nextAnnounceTime=0,
                seederCount=-1,
                leecherCount=-1,
                downloadCount=-1,
                announceState=1,
            )
            for i, url in enumerate(self.trackers)
        )
        return TorrentStatus(
            id=self.id,
            infoHash=self.infoHash,
            name=self.name,
            state=self.state,
            error=self.error,
            errorString=self.errorString,
            totalSize=self.totalSize,
            sizeWhenDone=sizeWhenDone,
            leftUntilDone=left,
            haveValid=have,
            percentDone=(1.0 - left / sizeWhenDone) if sizeWhenDone else 0.0,
            recheckProgress=0.0,
            metadataPercentComplete=1.0 if self.files else 0.0,
            rateDownload=self.rateDownload,
            rateUpload=self.rateUpload,
            uploadedEver=self.uploadedEver,
            downloadedEver=self.downloadedEver,
            corruptEver=0,
            addedDate=self.addedDate,
            doneDate=self.addedDate if left == 0 and self.files else 0,
            activityDate=self.activityDate,
            startDate=self.addedDate if self.state != STOPPED else 0,
            secondsDownloading=60,
            secondsSeeding=30 if left == 0 else 0,
            eta=eta,
            uploadRatio=ratio,
            isFinished=False,
            isStalled=False,
            isPrivate=self.isPrivate,
            downloadDir=self.downloadDir,
            labels=self.labels,
            comment=self.comment,
            creator=self.creator,
            dateCreated=self.dateCreated,
            pieceCount=pieceCount,
            pieceSize=self.pieceSize,
            pieces=bytes(bits),
            magnetLink=magnet,
            queuePosition=self.queuePosition,
            peersConnected=len(self.peers),
            peersGettingFromUs=sum(1 for p in self.peers if p.isUploadingTo),
            peersSendingToUs=sum(1 for p in self.peers if p.isDownloadingFrom),
            maxConnectedPeers=o.peerLimit,
            bandwidthPriority=o.bandwidthPriority,
            downloadLimit=o.downloadLimit,
            downloadLimited=o.downloadLimited,
            uploadLimit=o.uploadLimit,
            uploadLimited=o.uploadLimited,
            honorsSessionLimits=o.honorsSessionLimits,
            seedRatioLimit=o.seedRatioLimit,
            seedRatioMode=o.seedRatioMode,
            seedIdleLimit=o.seedIdleLimit,
            seedIdleMode=o.seedIdleMode,
            sequential=o.sequential,
            files=tuple(
                FileStatus(f.name, f.length, f.bytesCompleted, f.wanted, f.priority)
                for f in self.files
            ),
            peers=self.peers,
            trackers=trackerStats,
        )

    def start(self, now=False):
        self._record("start", now)
        left = self.status().leftUntilDone
        self.state = SEEDING if left == 0 and self.files else DOWNLOADING

    def stop(self):
        self._record("stop")
        self.state = STOPPED

    def verify(self):
        self._record("verify")

    def reannounce(self):
        self._record("reannounce")

    def setOptions(self, options):
        self._record("setOptions", options)
        count = len(self.files)
        changes = {}
        for field in dataclasses.fields(TorrentOptions):
            value = getattr(options, field.name)
            if value is None:
                continue
            if field.name in (
                "filesWanted",
                "filesUnwanted",
                "priorityHigh",
                "priorityNormal",
                "priorityLow",
            ):
                if any(not 0 <= i < count for i in value):
                    raise ControlError("file index out of range")
            changes[field.name] = value
        for i in changes.pop("filesWanted", ()):
            self.files[i].wanted = True
        for i in changes.pop("filesUnwanted", ()):
            self.files[i].wanted = False
        for key, priority in [
            ("priorityHigh", 1),
            ("priorityNormal", 0),
            ("priorityLow", -1),
        ]:
            for i in changes.pop(key, ()):
                self.files[i].priority = priority
        if "labels" in changes:
            self.labels = changes.pop("labels")
        if "queuePosition" in changes:
            self.queuePosition = changes.pop("queuePosition")
        self.options = dataclasses.replace(self.options, **changes)

    def setLocation(self, path, move):
        self._record("setLocation", path, move)
        self.downloadDir = path
        return succeed(None)

    def renamePath(self, path, name):
        self._record("renamePath", path, name)
        if path != self.name and not any(f.name == path for f in self.files):
            return fail(ControlError(f"{path}: no such file in the torrent"))
        if path == self.name:
            self.name = name
        return succeed((path, name))


_BTIH = re.compile(r"^urn:btih:([0-9a-fA-F]{40}|[A-Za-z2-7]{32})$")


@implementer(ISessionControl)
class FakeSession:
    """
    The session API in memory.

    @ivar calls: every call that reached the session (and its torrents),
        in order, as tuples.
    @ivar added: C{(source, options)} of every C{addTorrent}.
    @ivar closed: whether C{close} was called.
    """

    def __init__(
        self, clock: Callable[[], float], downloadDir: str = "/downloads"
    ) -> None:
        self.clock = clock
        self.settings = SessionSettings(downloadDir=downloadDir)
        self._torrents: Dict[int, FakeTorrent] = {}
        self._nextId = 1
        self._removed: List[Tuple[int, float]] = []
        self.calls: List[tuple] = []
        self.added: List[tuple] = []
        self.closed = False
        self.cumulative = {
            "uploadedBytes": 1_000_000,
            "downloadedBytes": 3_000_000,
            "filesAdded": 7,
            "sessionCount": 3,
            "secondsActive": 86_400,
        }
        #: The monitoring counts of L{SessionStats} (C{piecesVerified},
        #: C{announcesFailed}, ...) that C{stats} gives, set by a test.
        self.counters: Dict[str, int] = {}

    def addFake(self, name: str, files: List[FakeFile], **kw) -> FakeTorrent:
        """
        Put a torrent in the session directly (for a test's set-up).
        """
        infoHash = kw.pop("infoHash", hashlib.sha1(name.encode()).digest())
        torrent = FakeTorrent(
            self,
            self._nextId,
            infoHash,
            name,
            files,
            downloadDir=self.settings.downloadDir,
            **kw,
        )
        torrent.queuePosition = len(self._torrents)
        self._torrents[torrent.id] = torrent
        self._nextId += 1
        return torrent

    def addTorrent(self, source, options):
        self.calls.append(("addTorrent", source, options))
        self.added.append((source, options))
        if not isinstance(options, AddOptions):
            return fail(TypeError("options must be AddOptions"))
        if isinstance(source, str):
            query = parse_qs(urlsplit(source).query)
            match = _BTIH.match((query.get("xt") or [""])[0])
            if not source.startswith("magnet:?") or match is None:
                return fail(ControlError("invalid magnet link"))
            digits = match.group(1)
            infoHash = (
                bytes.fromhex(digits)
                if len(digits) == 40
                else b32decode(digits.upper())
            )
            name = (query.get("dn") or [infoHash.hex()])[0]
            files: List[FakeFile] = []
            trackers: Tuple[str, ...] = tuple(query.get("tr", ()))
            extra: dict = {}
        else:
            try:
                meta = metainfo.load(bytes(source))
            except metainfo.MetainfoError:
                return fail(ControlError("invalid or corrupt torrent file"))
            infoHash, name = meta.infoHash, meta.name
            files = [
                FakeFile(
                    metainfo.displayPath(
                        ((meta.name,) if meta.multiFile else ()) + f.path
                    ),
                    f.length,
                )
                for f in meta.files
            ]
            trackers = tuple(url for tier in meta.trackers for url in tier)
            extra = {
                "pieceSize": meta.pieceLength,
                "comment": meta.comment or "",
                "creator": meta.createdBy or "",
                "dateCreated": meta.creationDate or 0,
                "isPrivate": meta.private,
            }
        for torrent in self._torrents.values():
            if torrent.infoHash == infoHash:
                return succeed(AddResult(torrent, True))
        lists = [
            options.filesWanted or (),
            options.filesUnwanted or (),
            options.priorityHigh,
            options.priorityNormal,
            options.priorityLow,
        ]
        if files and any(not 0 <= i < len(files) for lst in lists for i in lst):
            return fail(ControlError("file index out of range"))
        torrent = self.addFake(
            name, files, infoHash=infoHash, trackers=trackers, **extra
        )
        torrent.downloadDir = options.downloadDir or self.settings.downloadDir
        torrent.labels = tuple(options.labels)
        for i in options.filesUnwanted or ():
            files[i].wanted = False
        torrent.options = dataclasses.replace(
            torrent.options,
            peerLimit=options.peerLimit or torrent.options.peerLimit,
            bandwidthPriority=options.bandwidthPriority,
        )
        torrent.state = STOPPED if options.paused else DOWNLOADING
        self.cumulative["filesAdded"] += 1
        return succeed(AddResult(torrent, False))

    def torrents(self):
        return [self._torrents[i] for i in sorted(self._torrents)]

    def torrent(self, key):
        if isinstance(key, int):
            return self._torrents.get(key)
        for torrent in self._torrents.values():
            if torrent.infoHash.hex() == str(key).lower():
                return torrent
        return None

    def removeTorrent(self, torrent, deleteData) -> Deferred:
        self.calls.append(("removeTorrent", torrent.id, deleteData))
        del self._torrents[torrent.id]
        self._removed.append((torrent.id, self.clock()))
        return succeed(None)

    def recentlyRemoved(self, since):
        return [i for i, when in self._removed if when >= since]

    def recentlyActive(self, since):
        return [t for t in self.torrents() if t.activityDate >= since]

    def setSettings(self, changes):
        self.calls.append(("setSettings", dict(changes)))
        names = {f.name for f in dataclasses.fields(SessionSettings)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ControlError(f"unknown setting {unknown[0]}")
        self.settings = dataclasses.replace(self.settings, **changes)

    def stats(self):
        torrents = self.torrents()
        active = sum(1 for t in torrents if t.state != STOPPED)
        return SessionStats(
            activeTorrentCount=active,
            pausedTorrentCount=len(torrents) - active,
            torrentCount=len(torrents),
            downloadSpeed=sum(t.rateDownload for t in torrents),
            uploadSpeed=sum(t.rateUpload for t in torrents),
            current={
                "uploadedBytes": 1000,
                "downloadedBytes": 2000,
                "filesAdded": 1,
                "sessionCount": 1,
                "secondsActive": 120,
            },
            cumulative=dict(self.cumulative),
            **self.counters,
        )

    def freeSpace(self, path):
        self.calls.append(("freeSpace", path))
        try:
            return succeed(shutil.disk_usage(path).free)
        except OSError as e:
            return fail(ControlError(f"{path}: {e.strerror}"))

    def queueMove(self, torrents, where):
        self.calls.append(("queueMove", [t.id for t in torrents], where))
        order = sorted(self._torrents.values(), key=lambda t: t.queuePosition)
        moving = [t for t in order if t in torrents]
        rest = [t for t in order if t not in torrents]
        if where == "top":
            order = moving + rest
        elif where == "bottom":
            order = rest + moving
        else:
            step = -1 if where == "up" else 1
            for t in moving if step < 0 else reversed(moving):
                i = order.index(t)
                j = min(max(i + step, 0), len(order) - 1)
                order[i], order[j] = order[j], order[i]
        for position, t in enumerate(order):
            t.queuePosition = position

    def close(self):
        self.calls.append(("close",))
        self.closed = True


def exampleSession(
    clock: Callable[[], float], downloadDir: str = "/downloads"
) -> FakeSession:
    """
    A session with two torrents: 1 complete and seeding (two files, with a
    tracker and a peer), 2 downloading at 40 % (one file).
    """
    session = FakeSession(clock, downloadDir)
    done = session.addFake(
        "Complete Album",
        [
            FakeFile("Complete Album/a.flac", 300_000, 300_000),
            FakeFile("Complete Album/b.flac", 200_000, 200_000),
        ],
        state=SEEDING,
        trackers=("http://127.0.0.1:6969/announce",),
        comment="a comment",
        creator="mktorrent 1.1",
        dateCreated=1_600_000_000,
    )
    done.rateUpload = 12_345
    done.uploadedEver = 750_000
    done.peers = (
        PeerStatus(
            address="127.0.0.1",
            port=51413,
            clientName="Transmission 3.00",
            isEncrypted=False,
            isIncoming=True,
            progress=0.25,
            rateToClient=0,
            rateToPeer=12_345,
            clientIsChoked=False,
            clientIsInterested=False,
            peerIsChoked=False,
            peerIsInterested=True,
            isDownloadingFrom=False,
            isUploadingTo=True,
            flagStr="UI",
        ),
    )
    downloading = session.addFake(
        "Big Download.iso",
        [FakeFile("Big Download.iso", 1_000_000, 400_000)],
        state=DOWNLOADING,
    )
    downloading.rateDownload = 48_000
    downloading.peers = (
        dataclasses.replace(
            done.peers[0],
            port=6881,
            clientName="libtorrent 2.0",
            isIncoming=False,
            progress=1.0,
            rateToClient=48_000,
            rateToPeer=0,
            peerIsInterested=False,
            isDownloadingFrom=True,
            isUploadingTo=False,
            flagStr="DE",
        ),
    )
    return session
