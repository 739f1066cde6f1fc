"""
The fields of Transmission's C{torrent-get} and C{session-get}, made from
the session API's snapshots (L{TorrentStatus}, L{SessionSettings}).

Each field has a JSON type and is converted to it here, whatever the
session hands over: an integer field is always a JSON integer (a float
C{eta} of C{12.0} makes C{transmission-remote -l} silently drop the row),
a real is always finite.  Fields btorrent has no value for yet get
Transmission's neutral value of the right type (0, C{""}, C{false}, an
empty list).

Rates: C{rateDownload}, C{rateUpload} and peers' rates are bytes/s; limits
(C{downloadLimit}, C{speed-limit-down}, ...) are kB/s with K = 1000, as in
Transmission 3.00 (its C{units} say so).
"""

from __future__ import annotations

import base64
import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

from btorrent.control.api import (
    FileStatus,
    PeerStatus,
    SessionSettings,
    TorrentStatus,
    TrackerStatus,
)

__all__ = [
    "RPC_VERSION",
    "RPC_VERSION_MINIMUM",
    "SESSION_FIELDS",
    "TORRENT_FIELDS",
    "UNITS",
    "kbps",
    "scrapeURL",
    "sessionFields",
    "torrentFields",
    "transmissionVersion",
]

RPC_VERSION = 16
RPC_VERSION_MINIMUM = 1

#: Rate units: speeds and sizes with K = 1000, memory with K = 1024.
UNITS = {
    "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
    "speed-bytes": 1000,
    "size-units": ["kB", "MB", "GB", "TB"],
    "size-bytes": 1000,
    "memory-units": ["KiB", "MiB", "GiB", "TiB"],
    "memory-bytes": 1024,
}


def transmissionVersion(ourVersion: str) -> str:
    """
    The C{version} string: Transmission's release whose RPC we speak first
    (Sonarr and Radarr read the first dotted number and need 2.40 or
    later), then ours.
    """
    return f"3.00 (btorrent {ourVersion})"


def kbps(bytesPerSecond: Optional[int]) -> int:
    """
    Bytes/s to Transmission's kB/s (K = 1000, rounded down); C{None}
    (unlimited) is 0.
    """
    if bytesPerSecond is None:
        return 0
    return int(bytesPerSecond) // 1000


def _int(value: Any) -> int:
    """
    An integer field: whatever the session gave, as a JSON integer.
    """
    if value is None:
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            return -1
        return int(value)
    return int(value)


def _real(value: Any) -> float:
    """
    A real field: finite, as a JSON number with a fraction.
    """
    if value is None:
        return 0.0
    value = float(value)
    if math.isnan(value):
        return -1.0
    if math.isinf(value):
        return -2.0
    return value


def _ratio(value: Any) -> float:
    """
    C{uploadRatio}: -1 when nothing was downloaded, -2 for infinite.
    """
    return _real(value)


def scrapeURL(announce: str) -> str:
    """
    The scrape URL Transmission derives from an announce URL: an HTTP
    tracker's last path segment C{announce...} becomes C{scrape...}; a UDP
    tracker scrapes at its announce address; otherwise there is none.
    """
    try:
        scheme = urlsplit(announce).scheme.lower()
    except ValueError:
        return ""
    if scheme == "udp":
        return announce
    slash = announce.rfind("/")
    if slash >= 0 and announce.startswith("announce", slash + 1):
        return announce[: slash + 1] + "scrape" + announce[slash + 1 + 8 :]
    return ""


def _file(f: FileStatus) -> dict:
    return {
        "bytesCompleted": _int(f.bytesCompleted),
        "length": _int(f.length),
        "name": str(f.name),
    }


def _fileStat(f: FileStatus) -> dict:
    return {
        "bytesCompleted": _int(f.bytesCompleted),
        "wanted": bool(f.wanted),
        "priority": _int(f.priority),
    }


def _peer(p: PeerStatus) -> dict:
    return {
        "address": str(p.address),
        "clientName": str(p.clientName),
        "clientIsChoked": bool(p.clientIsChoked),
        "clientIsInterested": bool(p.clientIsInterested),
        "flagStr": str(p.flagStr),
        "isDownloadingFrom": bool(p.isDownloadingFrom),
        "isEncrypted": bool(p.isEncrypted),
        "isIncoming": bool(p.isIncoming),
        "isUploadingTo": bool(p.isUploadingTo),
        "isUTP": False,
        "peerIsChoked": bool(p.peerIsChoked),
        "peerIsInterested": bool(p.peerIsInterested),
        "port": _int(p.port),
        "progress": _real(p.progress),
        "rateToClient": _int(p.rateToClient),
        "rateToPeer": _int(p.rateToPeer),
    }


def _tracker(t: TrackerStatus) -> dict:
    return {
        "announce": str(t.announce),
        "id": _int(t.id),
        "scrape": scrapeURL(str(t.announce)),
        "tier": _int(t.tier),
    }


def _trackerStat(t: TrackerStatus) -> dict:
    lastAnnounce = _int(t.lastAnnounceTime)
    return {
        "announce": str(t.announce),
        "announceState": _int(t.announceState),
        "downloadCount": _int(t.downloadCount),
        "hasAnnounced": lastAnnounce > 0,
        "hasScraped": False,
        "host": str(t.host),
        "id": _int(t.id),
        "isBackup": False,
        "lastAnnouncePeerCount": _int(t.lastAnnouncePeerCount),
        "lastAnnounceResult": str(t.lastAnnounceResult),
        "lastAnnounceStartTime": lastAnnounce,
        "lastAnnounceSucceeded": bool(t.lastAnnounceSucceeded),
        "lastAnnounceTime": lastAnnounce,
        "lastAnnounceTimedOut": False,
        "lastScrapeResult": "",
        "lastScrapeStartTime": 0,
        "lastScrapeSucceeded": False,
        "lastScrapeTime": 0,
        "lastScrapeTimedOut": False,
        "leecherCount": _int(t.leecherCount),
        "nextAnnounceTime": _int(t.nextAnnounceTime),
        "nextScrapeTime": 0,
        "scrape": scrapeURL(str(t.announce)),
        "scrapeState": 0,
        "seederCount": _int(t.seederCount),
        "tier": _int(t.tier),
    }


def _pieces(st: TorrentStatus) -> str:
    if not st.pieceCount:
        return ""
    return base64.b64encode(bytes(st.pieces)).decode("ascii")


_PEERS_FROM = (
    "fromCache",
    "fromDht",
    "fromIncoming",
    "fromLpd",
    "fromLtep",
    "fromPex",
    "fromTracker",
)

_Getter = Callable[[TorrentStatus], Any]

#: Every C{torrent-get} field: name -> function of the status giving its
#: JSON value (Transmission 3.00's list, plus C{fileCount}/C{file-count}
#: that Sonarr and Transmission 3.01 ask for).
TORRENT_FIELDS: Dict[str, _Getter] = {
    "activityDate": lambda st: _int(st.activityDate),
    "addedDate": lambda st: _int(st.addedDate),
    "bandwidthPriority": lambda st: _int(st.bandwidthPriority),
    "comment": lambda st: str(st.comment),
    "corruptEver": lambda st: _int(st.corruptEver),
    "creator": lambda st: str(st.creator),
    "dateCreated": lambda st: _int(st.dateCreated),
    "desiredAvailable": lambda st: 0,
    "doneDate": lambda st: _int(st.doneDate),
    "downloadDir": lambda st: str(st.downloadDir),
    "downloadedEver": lambda st: _int(st.downloadedEver),
    "downloadLimit": lambda st: kbps(st.downloadLimit),
    "downloadLimited": lambda st: bool(st.downloadLimited),
    "editDate": lambda st: 0,
    "error": lambda st: _int(st.error),
    "errorString": lambda st: str(st.errorString),
    "eta": lambda st: _int(st.eta),
    "etaIdle": lambda st: -1,
    "files": lambda st: [_file(f) for f in st.files],
    "fileCount": lambda st: len(st.files),
    "file-count": lambda st: len(st.files),
    "fileStats": lambda st: [_fileStat(f) for f in st.files],
    "hashString": lambda st: bytes(st.infoHash).hex(),
    "haveUnchecked": lambda st: 0,
    "haveValid": lambda st: _int(st.haveValid),
    "honorsSessionLimits": lambda st: bool(st.honorsSessionLimits),
    "id": lambda st: _int(st.id),
    "isFinished": lambda st: bool(st.isFinished),
    "isPrivate": lambda st: bool(st.isPrivate),
    "isStalled": lambda st: bool(st.isStalled),
    "labels": lambda st: [str(label) for label in st.labels],
    "sequential_download": lambda st: bool(st.sequential),
    "leftUntilDone": lambda st: _int(st.leftUntilDone),
    "magnetLink": lambda st: str(st.magnetLink),
    "manualAnnounceTime": lambda st: 0,
    "maxConnectedPeers": lambda st: _int(st.maxConnectedPeers),
    "metadataPercentComplete": lambda st: _real(st.metadataPercentComplete),
    "name": lambda st: str(st.name),
    "peer-limit": lambda st: _int(st.maxConnectedPeers),
    "peers": lambda st: [_peer(p) for p in st.peers],
    "peersConnected": lambda st: _int(st.peersConnected),
    "peersFrom": lambda st: {key: 0 for key in _PEERS_FROM},
    "peersGettingFromUs": lambda st: _int(st.peersGettingFromUs),
    "peersSendingToUs": lambda st: _int(st.peersSendingToUs),
    "percentDone": lambda st: _real(st.percentDone),
    "pieces": _pieces,
    "pieceCount": lambda st: _int(st.pieceCount),
    "pieceSize": lambda st: _int(st.pieceSize),
    "priorities": lambda st: [_int(f.priority) for f in st.files],
    "queuePosition": lambda st: _int(st.queuePosition),
    "rateDownload": lambda st: _int(st.rateDownload),
    "rateUpload": lambda st: _int(st.rateUpload),
    "recheckProgress": lambda st: _real(st.recheckProgress),
    "secondsDownloading": lambda st: _int(st.secondsDownloading),
    "secondsSeeding": lambda st: _int(st.secondsSeeding),
    "seedIdleLimit": lambda st: _int(st.seedIdleLimit),
    "seedIdleMode": lambda st: _int(st.seedIdleMode),
    "seedRatioLimit": lambda st: _real(st.seedRatioLimit),
    "seedRatioMode": lambda st: _int(st.seedRatioMode),
    "sizeWhenDone": lambda st: _int(st.sizeWhenDone),
    "startDate": lambda st: _int(st.startDate),
    "status": lambda st: _int(st.state),
    "torrentFile": lambda st: "",
    "totalSize": lambda st: _int(st.totalSize),
    "trackers": lambda st: [_tracker(t) for t in st.trackers],
    "trackerStats": lambda st: [_trackerStat(t) for t in st.trackers],
    "uploadedEver": lambda st: _int(st.uploadedEver),
    "uploadLimit": lambda st: kbps(st.uploadLimit),
    "uploadLimited": lambda st: bool(st.uploadLimited),
    "uploadRatio": lambda st: _ratio(st.uploadRatio),
    "wanted": lambda st: [1 if f.wanted else 0 for f in st.files],
    "webseeds": lambda st: [],
    "webseedsSendingToUs": lambda st: 0,
}


def torrentFields(st: TorrentStatus, names: Iterable[str]) -> Dict[str, Any]:
    """
    @param names: known field names (see L{TORRENT_FIELDS}).
    @return: C{{name: JSON value}}.
    """
    return {name: TORRENT_FIELDS[name](st) for name in names}


#: Session fields kept in L{SessionSettings}: RPC name -> (attribute, JSON
#: type: "int", "kbps", "bool", "real", "str", "encryption").
SETTINGS_FIELDS: Dict[str, Tuple[str, str]] = {
    "alt-speed-down": ("altSpeedDown", "kbps"),
    "alt-speed-enabled": ("altSpeedEnabled", "bool"),
    "alt-speed-up": ("altSpeedUp", "kbps"),
    "dht-enabled": ("dhtEnabled", "bool"),
    "download-dir": ("downloadDir", "str"),
    "download-queue-enabled": ("downloadQueueEnabled", "bool"),
    "download-queue-size": ("downloadQueueSize", "int"),
    "encryption": ("encryption", "encryption"),
    "idle-seeding-limit": ("idleSeedingLimit", "int"),
    "idle-seeding-limit-enabled": ("idleSeedingLimitEnabled", "bool"),
    "peer-limit-global": ("peerLimitGlobal", "int"),
    "peer-limit-per-torrent": ("peerLimitPerTorrent", "int"),
    "peer-port": ("peerPort", "int"),
    "pex-enabled": ("pexEnabled", "bool"),
    "seed-queue-enabled": ("seedQueueEnabled", "bool"),
    "seed-queue-size": ("seedQueueSize", "int"),
    "seedRatioLimit": ("seedRatioLimit", "real"),
    "seedRatioLimited": ("seedRatioLimited", "bool"),
    "speed-limit-down": ("speedLimitDown", "kbps"),
    "speed-limit-down-enabled": ("speedLimitDownEnabled", "bool"),
    "speed-limit-up": ("speedLimitUp", "kbps"),
    "speed-limit-up-enabled": ("speedLimitUpEnabled", "bool"),
    "start-added-torrents": ("startAddedTorrents", "bool"),
}

_CONVERT = {
    "int": _int,
    "kbps": kbps,
    "bool": bool,
    "real": _real,
    "str": str,
    "encryption": str,
}

#: Session fields btorrent does not have (yet): RPC name -> the neutral
#: value it reports; C{session-set} accepts only that same value for them.
NEUTRAL_SESSION_FIELDS: Dict[str, Any] = {
    "alt-speed-time-begin": 540,
    "alt-speed-time-day": 127,
    "alt-speed-time-enabled": False,
    "alt-speed-time-end": 1020,
    "blocklist-enabled": False,
    "blocklist-url": "",
    "cache-size-mb": 4,
    "incomplete-dir": "",
    "incomplete-dir-enabled": False,
    "lpd-enabled": False,
    "peer-port-random-on-start": False,
    "port-forwarding-enabled": False,
    "queue-stalled-enabled": False,
    "queue-stalled-minutes": 30,
    "rename-partial-files": False,
    "script-torrent-done-enabled": False,
    "script-torrent-done-filename": "",
    "trash-original-torrent-files": False,
    "utp-enabled": False,
}

#: Session fields a client can read but not set (C{session-set} ignores
#: them, as Transmission does).
READ_ONLY_SESSION_FIELDS = (
    "blocklist-size",
    "config-dir",
    "download-dir-free-space",
    "rpc-version",
    "rpc-version-minimum",
    "session-id",
    "units",
    "version",
)

#: Every C{session-get} field.
SESSION_FIELDS: Tuple[str, ...] = tuple(
    sorted(
        set(SETTINGS_FIELDS)
        | set(NEUTRAL_SESSION_FIELDS)
        | set(READ_ONLY_SESSION_FIELDS)
    )
)


class SessionContext:
    """
    What C{session-get} reports beyond the settings.

    @ivar version: the C{version} string.
    @ivar sessionId: the anti-CSRF id in force.
    @ivar configDir: the daemon's state directory ("" if unknown).
    @ivar downloadDirFree: bytes free in the download directory, or -1
        (looked up off the reactor's thread before the fields are built).
    """

    def __init__(
        self,
        version: str,
        sessionId: str,
        configDir: str,
        downloadDirFree: int,
    ) -> None:
        self.version = version
        self.sessionId = sessionId
        self.configDir = configDir
        self.downloadDirFree = downloadDirFree


def _readOnly(name: str, settings: SessionSettings, context: SessionContext) -> Any:
    if name == "blocklist-size":
        return 0
    if name == "config-dir":
        return context.configDir
    if name == "download-dir-free-space":
        return _int(context.downloadDirFree)
    if name == "rpc-version":
        return RPC_VERSION
    if name == "rpc-version-minimum":
        return RPC_VERSION_MINIMUM
    if name == "session-id":
        return context.sessionId
    if name == "units":
        return {k: (list(v) if isinstance(v, list) else v) for k, v in UNITS.items()}
    return context.version


def sessionFields(
    settings: SessionSettings, context: SessionContext, names: Optional[List[str]]
) -> Dict[str, Any]:
    """
    @param names: the fields asked for (unknown ones are skipped, as
        Transmission does); C{None} for all.
    @return: C{{name: JSON value}}.
    """
    if names is None:
        names = list(SESSION_FIELDS)
    out: Dict[str, Any] = {}
    for name in names:
        if name in SETTINGS_FIELDS:
            attribute, kind = SETTINGS_FIELDS[name]
            out[name] = _CONVERT[kind](getattr(settings, attribute))
        elif name in NEUTRAL_SESSION_FIELDS:
            out[name] = NEUTRAL_SESSION_FIELDS[name]
        elif name in READ_ONLY_SESSION_FIELDS:
            out[name] = _readOnly(name, settings, context)
    return out
