"""
The session API: what the control plane (the Transmission RPC, the web
page, the watch dir, C{btorrent}'s remote commands and tests) calls to
steer a running daemon.  No network code lives here or behind it.

Units are the engine's: bytes, bytes per second, seconds since the epoch as
integers.  The RPC converts (kB/s with K = 1000, Transmission's field
names); L{TorrentStatus} and L{SessionSettings} name things the way
Transmission does where it has a name, in camelCase.

Errors meant for a client are L{ControlError}: its text is what the RPC
puts in C{result} and what the command line prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from zope.interface import Attribute, Interface

__all__ = [
    "CHECK_WAIT",
    "CHECKING",
    "DOWNLOADING",
    "DOWNLOAD_WAIT",
    "ERROR_LOCAL",
    "ERROR_NONE",
    "ERROR_TRACKER",
    "ERROR_TRACKER_WARNING",
    "PRIORITY_HIGH",
    "PRIORITY_LOW",
    "PRIORITY_NORMAL",
    "SEEDING",
    "SEED_WAIT",
    "STATE_NAMES",
    "STOPPED",
    "AddOptions",
    "AddResult",
    "ControlError",
    "FileStatus",
    "ISessionControl",
    "ITorrentControl",
    "PeerStatus",
    "SessionSettings",
    "SessionStats",
    "TorrentOptions",
    "TorrentStatus",
    "TrackerStatus",
]

#: Torrent states, numbered as Transmission's C{status} field.
STOPPED = 0
CHECK_WAIT = 1
CHECKING = 2
DOWNLOAD_WAIT = 3
DOWNLOADING = 4
SEED_WAIT = 5
SEEDING = 6

#: Names of the states, for logs and the command line.
STATE_NAMES = {
    STOPPED: "stopped",
    CHECK_WAIT: "check-wait",
    CHECKING: "checking",
    DOWNLOAD_WAIT: "download-wait",
    DOWNLOADING: "downloading",
    SEED_WAIT: "seed-wait",
    SEEDING: "seeding",
}

#: Torrent error kinds, numbered as Transmission's C{error} field.
ERROR_NONE = 0
ERROR_TRACKER_WARNING = 1
ERROR_TRACKER = 2
ERROR_LOCAL = 3

#: File and bandwidth priorities, as Transmission numbers them.
PRIORITY_LOW = -1
PRIORITY_NORMAL = 0
PRIORITY_HIGH = 1


class ControlError(Exception):
    """
    A request the session refuses; the text is for the client, one line
    ("file index out of range", "invalid or corrupt torrent file", ...).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "error"


@dataclass(frozen=True)
class AddOptions:
    """
    Options of a torrent being added (Transmission's C{torrent-add}).

    @ivar downloadDir: absolute; C{None} for the session's.
    @ivar paused: add it stopped.
    @ivar labels: free-form labels, kept and shown.
    @ivar filesWanted: file indexes to download (C{None}: unchanged).
    @ivar filesUnwanted: file indexes not to download.
    @ivar priorityHigh, priorityNormal, priorityLow: file indexes.
    @ivar peerLimit: connected peers at most (C{None}: the session's).
    @ivar bandwidthPriority: L{PRIORITY_LOW}..L{PRIORITY_HIGH}.
    @ivar sequential: download pieces in order.
    """

    downloadDir: Optional[str] = None
    paused: bool = False
    labels: Tuple[str, ...] = ()
    filesWanted: Optional[Tuple[int, ...]] = None
    filesUnwanted: Optional[Tuple[int, ...]] = None
    priorityHigh: Tuple[int, ...] = ()
    priorityNormal: Tuple[int, ...] = ()
    priorityLow: Tuple[int, ...] = ()
    peerLimit: Optional[int] = None
    bandwidthPriority: int = PRIORITY_NORMAL
    sequential: bool = False


@dataclass(frozen=True)
class AddResult:
    """
    What adding a torrent gave: the torrent, and whether it was already
    there (then nothing was changed).
    """

    torrent: object
    duplicate: bool


@dataclass(frozen=True)
class TorrentOptions:
    """
    Per-torrent settings a client may change (Transmission's
    C{torrent-set}); C{None} leaves a setting as it is.

    Rates are bytes per second; a limit of C{None} in a L{TorrentStatus}
    means unlimited.
    """

    downloadLimit: Optional[int] = None
    downloadLimited: Optional[bool] = None
    uploadLimit: Optional[int] = None
    uploadLimited: Optional[bool] = None
    honorsSessionLimits: Optional[bool] = None
    seedRatioLimit: Optional[float] = None
    #: 0 = the session's, 1 = this torrent's, 2 = unlimited.
    seedRatioMode: Optional[int] = None
    #: Minutes.
    seedIdleLimit: Optional[int] = None
    #: 0 = the session's, 1 = this torrent's, 2 = unlimited.
    seedIdleMode: Optional[int] = None
    peerLimit: Optional[int] = None
    bandwidthPriority: Optional[int] = None
    labels: Optional[Tuple[str, ...]] = None
    filesWanted: Optional[Tuple[int, ...]] = None
    filesUnwanted: Optional[Tuple[int, ...]] = None
    priorityHigh: Optional[Tuple[int, ...]] = None
    priorityNormal: Optional[Tuple[int, ...]] = None
    priorityLow: Optional[Tuple[int, ...]] = None
    queuePosition: Optional[int] = None
    sequential: Optional[bool] = None


@dataclass(frozen=True)
class FileStatus:
    """
    One file of a torrent.

    @ivar name: its path with C{/}, starting with the torrent's name for a
        multi-file torrent (as Transmission shows it).
    @ivar bytesCompleted: bytes of it in verified pieces.
    """

    name: str
    length: int
    bytesCompleted: int
    wanted: bool
    priority: int


@dataclass(frozen=True)
class PeerStatus:
    """
    One connected peer.

    @ivar progress: the share of the torrent it has, 0..1.
    @ivar rateToClient: bytes/s it sends us; C{rateToPeer} the other way.
    @ivar flagStr: Transmission's flag letters (C{"DUEIX"} and friends).
    """

    address: str
    port: int
    clientName: str
    isEncrypted: bool
    isIncoming: bool
    progress: float
    rateToClient: int
    rateToPeer: int
    clientIsChoked: bool
    clientIsInterested: bool
    peerIsChoked: bool
    peerIsInterested: bool
    isDownloadingFrom: bool
    isUploadingTo: bool
    flagStr: str


@dataclass(frozen=True)
class TrackerStatus:
    """
    One tracker of a torrent, and how its announces went (times are epoch
    seconds, 0 for never; counts are -1 when unknown).
    """

    id: int
    tier: int
    announce: str
    host: str
    lastAnnounceTime: int
    lastAnnounceSucceeded: bool
    lastAnnounceResult: str
    lastAnnouncePeerCount: int
    nextAnnounceTime: int
    seederCount: int
    leecherCount: int
    downloadCount: int
    #: 0 inactive, 1 waiting, 2 queued, 3 announcing (Transmission's).
    announceState: int


@dataclass(frozen=True)
class TorrentStatus:
    """
    A snapshot of one torrent, everything a client shows.

    Sizes count wanted files only where Transmission's do
    (C{sizeWhenDone}, C{leftUntilDone}, C{percentDone}); C{totalSize} is
    the whole torrent (0 while its metadata is unknown).  C{eta} is
    seconds, -1 when not applicable (done, stopped) and -2 when unknown;
    C{uploadRatio} is -1 when nothing was downloaded yet.
    """

    id: int
    infoHash: bytes
    name: str
    state: int
    error: int
    errorString: str
    totalSize: int
    sizeWhenDone: int
    leftUntilDone: int
    haveValid: int
    percentDone: float
    recheckProgress: float
    metadataPercentComplete: float
    rateDownload: int
    rateUpload: int
    uploadedEver: int
    downloadedEver: int
    corruptEver: int
    addedDate: int
    doneDate: int
    activityDate: int
    startDate: int
    secondsDownloading: int
    secondsSeeding: int
    eta: int
    uploadRatio: float
    isFinished: bool
    isStalled: bool
    isPrivate: bool
    downloadDir: str
    labels: Tuple[str, ...]
    comment: str
    creator: str
    dateCreated: int
    pieceCount: int
    pieceSize: int
    #: Our pieces, in wire order (a BitTorrent bitfield).
    pieces: bytes
    magnetLink: str
    queuePosition: int
    peersConnected: int
    peersGettingFromUs: int
    peersSendingToUs: int
    maxConnectedPeers: int
    bandwidthPriority: int
    downloadLimit: int
    downloadLimited: bool
    uploadLimit: int
    uploadLimited: bool
    honorsSessionLimits: bool
    seedRatioLimit: float
    seedRatioMode: int
    seedIdleLimit: int
    seedIdleMode: int
    sequential: bool
    files: Tuple[FileStatus, ...] = ()
    peers: Tuple[PeerStatus, ...] = ()
    trackers: Tuple[TrackerStatus, ...] = ()


@dataclass
class SessionSettings:
    """
    The session's settings that may change at run time (Transmission's
    C{session-get}/C{session-set}).  Rates in bytes per second (C{None}
    for unlimited where a C{...Enabled} flag says so); seed idle limit in
    minutes.
    """

    downloadDir: str = ""
    peerPort: int = 51413
    encryption: str = "preferred"
    dhtEnabled: bool = True
    pexEnabled: bool = True
    speedLimitDown: int = 100_000
    speedLimitDownEnabled: bool = False
    speedLimitUp: int = 100_000
    speedLimitUpEnabled: bool = False
    altSpeedDown: int = 50_000
    altSpeedUp: int = 50_000
    altSpeedEnabled: bool = False
    downloadQueueSize: int = 5
    downloadQueueEnabled: bool = True
    seedQueueSize: int = 10
    seedQueueEnabled: bool = False
    seedRatioLimit: float = 2.0
    seedRatioLimited: bool = False
    idleSeedingLimit: int = 30
    idleSeedingLimitEnabled: bool = False
    peerLimitGlobal: int = 200
    peerLimitPerTorrent: int = 50
    startAddedTorrents: bool = True
    umask: int = 0o022
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SessionStats:
    """
    Transfer totals: C{current} for this run of the daemon, C{cumulative}
    over every run (persisted).  Each is a dict with C{uploadedBytes},
    C{downloadedBytes}, C{filesAdded}, C{sessionCount}, C{secondsActive}.

    The counts after them only grow while the daemon runs (removed
    torrents' included), for monitoring: pieces downloaded that passed
    (C{piecesVerified}) and failed (C{piecesFailed}) their hash check, and
    announces a tracker answered (C{announcesSucceeded}) or failed
    (C{announcesFailed}), one per tracker asked.
    """

    activeTorrentCount: int
    pausedTorrentCount: int
    torrentCount: int
    downloadSpeed: int
    uploadSpeed: int
    current: dict
    cumulative: dict
    piecesVerified: int = 0
    piecesFailed: int = 0
    announcesSucceeded: int = 0
    announcesFailed: int = 0


class ITorrentControl(Interface):
    """
    One torrent of a running session, as the control plane sees it.
    """

    id = Attribute("The session-local integer id (stable while it runs).")
    infoHash = Attribute("The 20-byte info-hash.")

    def status(fields=None):
        """
        @param fields: names of L{TorrentStatus}'s costly parts wanted
            (C{"files"}, C{"peers"}, C{"trackers"}, C{"pieces"},
            C{"magnetLink"}); C{None} for all.
        @return: a L{TorrentStatus}.
        """

    def view():
        """
        The fields of L{TorrentStatus} (the costly ones too), each worked
        out when read: cheaper than L{status} for a client that reads a
        few fields of many torrents.  Not a snapshot: read it at once.
        """

    def start(now=False):
        """
        Start it (queued unless C{now}: then it skips the queue).
        """

    def stop():
        """
        Stop it: peers disconnected, resume data saved; it stays stopped
        across restarts until started.
        """

    def verify():
        """
        Check its data on disk again (queued behind other checks).
        """

    def reannounce():
        """
        Announce to its trackers now.
        """

    def setOptions(options):
        """
        Change its settings.

        @param options: a L{TorrentOptions}.
        @raise ControlError: for a bad value (nothing is changed then).
        """

    def setLocation(path, move):
        """
        Point it at another download dir, moving its files when C{move}.

        @return: a L{Deferred} firing when done.
        """

    def renamePath(path, name):
        """
        Rename a file or directory of it (Transmission's
        C{torrent-rename-path}).

        @return: a L{Deferred} firing with C{(path, name)}.
        """


class ISessionControl(Interface):
    """
    The session, as the control plane sees it.
    """

    settings = Attribute("The L{SessionSettings} now in force (read only).")

    def addTorrent(source, options):
        """
        Add a torrent.

        @param source: the bytes of a C{.torrent} file, or a magnet URI as
            C{str}.
        @param options: an L{AddOptions}.
        @return: a L{Deferred} firing with an L{AddResult}, or failing with
            L{ControlError} ("invalid or corrupt torrent file", ...).
        """

    def torrents():
        """
        @return: every L{ITorrentControl}, by id.
        """

    def torrent(key):
        """
        @param key: an integer id, or an info-hash as 40 hex digits (any
            case).
        @return: the L{ITorrentControl}, or C{None}.
        """

    def removeTorrent(torrent, deleteData):
        """
        Remove a torrent; with C{deleteData}, delete its files and the
        directories it created, never anything else.

        @return: a L{Deferred} firing when done.
        """

    def recentlyRemoved(since):
        """
        @return: ids of torrents removed at or after C{since} (epoch
            seconds), for C{"recently-active"}.
        """

    def recentlyActive(since):
        """
        @return: the torrents active (state or transfer changed) at or
            after C{since}.
        """

    def setSettings(changes):
        """
        Change session settings.

        @param changes: C{{name: value}} with L{SessionSettings}' names.
        @raise ControlError: for an unknown name or a bad value (nothing is
            changed then).
        """

    def stats():
        """
        @return: a L{SessionStats}.
        """

    def freeSpace(path):
        """
        @return: a L{twisted.internet.defer.Deferred} of the bytes free at
            C{path} (looked up off the reactor's thread), failing with
            L{ControlError} if C{path} cannot be looked at.
        """

    def queueMove(torrents, where):
        """
        Move torrents in the queue: C{where} is C{"top"}, C{"up"},
        C{"down"} or C{"bottom"}.
        """

    def close():
        """
        Stop the daemon (Transmission's C{session-close}).
        """
