"""
Transfer controls: what a user sets on a torrent or on the session besides
starting and stopping it.

  - rate limits (L{btorrent.engine.bandwidth}): per torrent, per session,
    the turtle switch;
  - file selection and priorities (L{btorrent.engine.fileselect}), applied
    to the picker and the storage (unwanted files are not created; the
    parts file keeps the bytes of theirs in straddling pieces);
  - sequential download;
  - seeding limits (L{btorrent.engine.seedlimits}): ratio and idle time,
    after which the torrent stops and shows as finished;
  - peer limits: per torrent and across the session.

L{SessionControls} belongs to the session, one L{TorrentControls} to each
L{btorrent.engine.torrent.Torrent} (C{torrent.controls}).  Every setter
checks all it is given before it changes anything (a L{ControlError} says
what is wrong, in one line for a client) and applies at once; everything
is kept as plain dicts (C{toJSON}/C{load}) for the state file.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from twisted.logger import Logger

from btorrent.control.api import (
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NORMAL,
    SEEDING,
    ControlError,
    FileStatus,
)
from btorrent.engine.bandwidth import (
    SessionBandwidth,
    SessionLimits,
    TorrentBandwidth,
    TorrentLimits,
)
from btorrent.engine.fileselect import FileSelection
from btorrent.engine.seedlimits import (
    MODE_UNLIMITED,
    SeedLimits,
    SessionSeedLimits,
    effectiveIdleMinutes,
    effectiveRatio,
    ratioGoal,
    uploadRatio,
)
from btorrent.engine.seedwatch import SeedingWatch
from btorrent.engine.torrentfiles import TorrentFiles
from btorrent.util import logs

__all__ = [
    "MAX_PEER_LIMIT",
    "PeerLimit",
    "SessionControls",
    "TorrentControls",
]

#: The most peers a limit may allow (the RPC's bound).
MAX_PEER_LIMIT = 65535

#: Seconds between two looks at the seeding limits of a torrent without
#: peers (the idle limit counts in minutes).
QUIET_TICK = 10.0


def _checkPeerLimit(value: Any, name: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_PEER_LIMIT:
        raise ControlError(f"{name} must be a whole number from 1 to {MAX_PEER_LIMIT}")
    return value


def _known(cls, data: dict, key: str) -> Dict[str, Any]:
    """
    The fields of dataclass C{cls} in C{data[key]} (others ignored).
    """
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ControlError(f"{key!r} must be an object")
    names = cls.__dataclass_fields__
    return {k: v for k, v in value.items() if k in names}


class PeerLimit:
    """
    The session's limit of connected peers across its torrents (a dial
    under way counts).

    @ivar maximum: the limit.
    """

    def __init__(self, maximum: int = 200) -> None:
        self.maximum = _checkPeerLimit(maximum, "peerLimitGlobal")
        # A dict as an ordered set: ten thousand torrents register.
        self._downloaders: Dict[Any, None] = {}

    def register(self, downloader) -> None:
        """
        Count this coordinator's peers, and make its dialer ask first.
        """
        self._downloaders[downloader] = None
        downloader.dialer.globalRoom = self.room

    def unregister(self, downloader) -> None:
        """
        Stop counting this coordinator's peers.
        """
        self._downloaders.pop(downloader, None)
        downloader.dialer.globalRoom = None

    @property
    def connected(self) -> int:
        """
        Peers connected or being dialled, across the session.
        """
        return sum(len(d.peers) + d.dialer.pending() for d in self._downloaders)

    def room(self) -> int:
        """
        How many more connections the limit allows.
        """
        return self.maximum - self.connected


class SessionControls:
    """
    The session's rate limits, seeding limits and global peer limit.

    @ivar bandwidth: the L{SessionBandwidth}.
    @ivar seed: the L{SessionSeedLimits}.
    @ivar peers: the L{PeerLimit}.
    """

    #: The L{btorrent.control.api.SessionSettings} names owned here.
    SETTINGS = (
        frozenset(SessionLimits.__dataclass_fields__)
        | frozenset(SessionSeedLimits.__dataclass_fields__)
        | {"peerLimitGlobal"}
    )

    def __init__(self, clock) -> None:
        """
        @param clock: provides C{seconds()} and C{callLater()}.
        """
        self.clock = clock
        self.bandwidth = SessionBandwidth(clock)
        self.seed = SessionSeedLimits()
        self.peers = PeerLimit()
        self.torrents: List[TorrentControls] = []

    def settings(self) -> Dict[str, Any]:
        """
        @return: every setting owned here, by its C{SessionSettings} name.
        """
        out = dict(self.bandwidth.limits.toJSON())
        out.update(self.seed.toJSON())
        out["peerLimitGlobal"] = self.peers.maximum
        return out

    def setSettings(self, changes: Dict[str, Any]) -> None:
        """
        Change settings (names of L{SETTINGS}); everything is checked
        before anything changes; the change applies at once.

        @raise ControlError: for an unknown name or a bad value.
        """
        rates = {
            k: v for k, v in changes.items() if k in SessionLimits.__dataclass_fields__
        }
        seeds = {
            k: v
            for k, v in changes.items()
            if k in SessionSeedLimits.__dataclass_fields__
        }
        for name in changes:
            if name not in self.SETTINGS:
                raise ControlError(f"unknown setting {name}")
        limits = self.bandwidth.limits.changed(rates)
        seed = self.seed.changed(seeds)
        peerLimit = self.peers.maximum
        if "peerLimitGlobal" in changes:
            peerLimit = _checkPeerLimit(changes["peerLimitGlobal"], "peerLimitGlobal")
        changedSeed = seed != self.seed
        self.seed = seed
        self.peers.maximum = peerLimit
        if changedSeed:
            for torrent in list(self.torrents):
                torrent.seedLimitsChanged()
        if limits != self.bandwidth.limits:
            self.bandwidth.limits = limits
            self.bandwidth._rebuild()

    def toJSON(self) -> dict:
        """
        @return: a plain dict for the state file.
        """
        return self.settings()

    def load(self, data: Any) -> None:
        """
        Apply L{toJSON}'s dict (unknown keys ignored, for other versions).

        @raise ControlError: for a bad value (nothing changed).
        """
        if not isinstance(data, dict):
            raise ControlError("session controls must be an object")
        self.setSettings({k: v for k, v in data.items() if k in self.SETTINGS})

    def stop(self) -> None:
        """
        The session stops: no more refills.
        """
        self.bandwidth.stop()


class TorrentControls:
    """
    One torrent's controls (C{torrent.controls}).

    @ivar bandwidth: its L{TorrentBandwidth}.
    @ivar seed: its L{SeedLimits}.
    @ivar sequential: whether pieces come in order.
    @ivar selection: its L{FileSelection}, once the metadata is known.
    @ivar uploadedBefore: bytes uploaded in earlier runs of the daemon.
    @ivar downloadedBefore: bytes downloaded in earlier runs.
    @ivar finishedByIdle: it stopped after its idle limit.
    @ivar lastActivity: when it last moved a byte (clock seconds).
    @ivar torrentFiles: its L{TorrentFiles}: the file selection, applied to
        the picker and the storage.
    @ivar seeding: its L{SeedingWatch}: stops it at its seeding limits.
    """

    log = Logger(observer=logs.observer)

    def __init__(self, torrent, session: Optional[SessionControls] = None) -> None:
        """
        @param torrent: the L{btorrent.engine.torrent.Torrent}.
        @param session: the session's controls (a private set by default).
        """
        self.torrent = torrent
        self.session = session or SessionControls(torrent.reactor)
        self.bandwidth = TorrentBandwidth(self.session.bandwidth)
        self.seed = SeedLimits()
        self.sequential = False
        self.uploadedBefore = 0
        self.downloadedBefore = 0
        self.finishedByIdle = False
        self._downloader = None
        self.torrentFiles = TorrentFiles(self)
        self.seeding = SeedingWatch(self)
        torrent.events.listen("stateChanged", self._stateChanged)
        self.session.torrents.append(self)

    def _stateChanged(self, old: int, new: int) -> None:
        if new == SEEDING and self._downloader is not None:
            # Done: the seeding limits apply from now, not the next beat.
            self.seeding.check(self.torrent.reactor.seconds())

    def logLine(self, level: str, text: str, **fields) -> None:
        """
        Log one line of this torrent (with its C{logFields}).
        """
        getattr(self.log, level)(text, **self.torrent.logFields, **fields)

    @property
    def selection(self) -> Optional[FileSelection]:
        """
        Its L{FileSelection}, once the metadata is known.
        """
        return self.torrentFiles.selection

    @property
    def lastActivity(self) -> float:
        """
        When it last moved a byte (clock seconds).
        """
        return self.seeding.lastActivity

    # What the torrent calls

    def metadataKnown(self) -> None:
        """
        The torrent's metadata is known (picker and storage built): apply
        the file selection and the order.
        """
        self.torrentFiles.metadataKnown()
        if self.sequential:
            self.torrent.picker.setOrder("sequential")

    def attach(self, downloader) -> None:
        """
        The torrent runs with this coordinator: shape it, limit its peers,
        watch its seeding limits.
        """
        self._downloader = downloader
        self.bandwidth.attach(downloader)
        self.session.peers.register(downloader)
        now = self.torrent.reactor.seconds()
        self.seeding.attach(now)
        self.torrent.heartbeat.subscribe(self, self.tick)
        self.tick(now)

    def detach(self) -> None:
        """
        The torrent stopped.
        """
        self.torrent.heartbeat.unsubscribe(self)
        downloader, self._downloader = self._downloader, None
        self.bandwidth.setUploadBudget(None, None)
        self.bandwidth.detach()
        if downloader is not None:
            self.session.peers.unregister(downloader)

    def close(self) -> None:
        """
        The torrent is removed.
        """
        self.detach()
        self.bandwidth.close()
        if self in self.session.torrents:
            self.session.torrents.remove(self)

    def startedByUser(self) -> None:
        """
        Started again by hand: a torrent over its seed ratio seeds on
        without one (Transmission's rule), and an idle stop is forgotten.
        """
        if self.seedRatioDone:
            self.logLine(
                "info", "{name}: started by hand: its seed ratio no longer applies"
            )
            self.seed = self.seed.changed({"seedRatioMode": MODE_UNLIMITED})
        self.finishedByIdle = False

    def tick(self, now: float) -> Optional[float]:
        """
        A heartbeat: note activity, check the seeding limits.

        @return: with no peer (no byte can move, only the idle limit's clock
            runs), when to look again: L{QUIET_TICK} seconds from now.
        """
        self.seeding.tick(now)
        downloader = self._downloader
        if downloader is not None and not downloader.peers:
            return now + QUIET_TICK
        return None

    # Counts

    @property
    def uploadedEver(self) -> int:
        """
        Bytes uploaded, every run of the daemon.
        """
        return self.uploadedBefore + self.torrent.uploaded

    @property
    def downloadedEver(self) -> int:
        """
        Bytes of verified pieces downloaded, every run.
        """
        return self.downloadedBefore + self.torrent.downloaded

    @property
    def sizeWhenDone(self) -> int:
        """
        Bytes we will have once the wanted files are done.
        """
        picker = self.torrent.picker
        return picker.sizeWhenDone if picker is not None else 0

    @property
    def leftUntilDone(self) -> int:
        """
        Bytes of wanted pieces still missing.
        """
        picker = self.torrent.picker
        return picker.missingBytes if picker is not None else 0

    @property
    def haveValid(self) -> int:
        """
        Bytes of the pieces we have.
        """
        picker = self.torrent.picker
        return picker.haveBytes if picker is not None else 0

    @property
    def uploadRatio(self) -> float:
        """
        Transmission's C{uploadRatio}.
        """
        return uploadRatio(self.uploadedEver, self.downloadedEver, self.haveValid)

    def fileProgress(self) -> List[int]:
        """
        Per file, the bytes of it in pieces we have (C{bytesCompleted}).
        """
        return self.torrentFiles.fileProgress()

    def files(self) -> List[FileStatus]:
        """
        Every file, as the control plane shows it (see
        L{TorrentFiles.files}).
        """
        return self.torrentFiles.files()

    # Seeding limits

    @property
    def seedRatio(self) -> Optional[float]:
        """
        The ratio limit in force, or C{None}.
        """
        return effectiveRatio(self.seed, self.session.seed)

    @property
    def seedIdleMinutes(self) -> Optional[int]:
        """
        The idle limit in force (minutes), or C{None}.
        """
        return effectiveIdleMinutes(self.seed, self.session.seed)

    @property
    def seedRatioGoal(self) -> Optional[int]:
        """
        Bytes to upload ever to reach the ratio limit, or C{None}.
        """
        ratio = self.seedRatio
        if ratio is None:
            return None
        return ratioGoal(ratio, self.downloadedEver, self.sizeWhenDone)

    @property
    def seedRatioDone(self) -> bool:
        """
        Whether the torrent is done and has uploaded its ratio's goal.
        """
        goal = self.seedRatioGoal
        return goal is not None and self.torrent.complete and self.uploadedEver >= goal

    @property
    def isFinished(self) -> bool:
        """
        Transmission's C{isFinished}: seeding is over, by its ratio or its
        idle limit.
        """
        return self.finishedByIdle or self.seedRatioDone

    # Setters

    def setLimits(self, **changes: Any) -> None:
        """
        Change rate limits (names of L{TorrentLimits}: C{downloadLimit},
        C{downloadLimited}, C{uploadLimit}, C{uploadLimited} in bytes/s,
        C{honorsSessionLimits}); at once.

        @raise ControlError: for a bad value (nothing changed).
        """
        self.bandwidth.setLimits(**changes)

    def setSeedLimits(self, **changes: Any) -> None:
        """
        Change seeding limits (names of L{SeedLimits}); at once.

        @raise ControlError: for a bad value (nothing changed).
        """
        self.seed = self.seed.changed(changes)
        self.seedLimitsChanged()

    def seedLimitsChanged(self) -> None:
        """
        The seeding limits in force changed: they apply at once.
        """
        if self._downloader is not None:
            self.seeding.check(self.torrent.reactor.seconds())

    def setSequential(self, sequential: bool) -> None:
        """
        Download pieces in order, or in the torrent's usual order.

        @raise ControlError: unless a bool.
        """
        if type(sequential) is not bool:
            raise ControlError("sequential must be true or false")
        self.sequential = sequential
        picker = self.torrent.picker
        if picker is not None:
            picker.setOrder("sequential" if sequential else self.torrent.pieceOrder)

    def setPeerLimit(self, limit: int) -> None:
        """
        Connected peers at most, for this torrent; the newest peers beyond
        it that send us nothing go first.

        @raise ControlError: unless 1..L{MAX_PEER_LIMIT}.
        """
        limit = _checkPeerLimit(limit, "peerLimit")
        torrent = self.torrent
        torrent.maxPeers = limit
        downloader = torrent.downloader
        if downloader is None:
            return
        downloader.maxPeers = limit
        excess = len(downloader.peers) - limit
        if excess > 0:
            peers = list(downloader.peers)
            peers.reverse()
            peers.sort(key=lambda p: not getattr(p, "peerChoking", True))
            for peer in peers[:excess]:
                peer.drop("over the peer limit")

    def setFileWanted(self, indexes: Iterable[int], wanted: bool) -> None:
        """
        Mark files wanted or not (at once: the picker, the storage, the
        torrent's state follow).

        @raise ControlError: for an index out of range or a torrent without
            its metadata (nothing changed).
        """
        self._changeFiles(wanted={bool(wanted): self._indexes(indexes)})

    def setFilePriority(self, indexes: Iterable[int], priority: int) -> None:
        """
        Give files a priority (L{PRIORITY_LOW}, L{PRIORITY_NORMAL},
        L{PRIORITY_HIGH}).

        @raise ControlError: for an index out of range, a bad priority or
            a torrent without its metadata (nothing changed).
        """
        self._changeFiles(priorities={priority: self._indexes(indexes)})

    def _indexes(self, indexes: Iterable[int]) -> tuple:
        return self.torrentFiles.indexes(indexes)

    def _changeFiles(self, wanted=None, priorities=None) -> None:
        self.torrentFiles.change(wanted, priorities)

    @property
    def partsPath(self) -> Optional[str]:
        """
        Where the parts file lives (see L{TorrentFiles.partsPath}).
        """
        return self.torrentFiles.partsPath

    def setOptions(self, options: Any) -> None:
        """
        Apply the transfer-control fields of a
        L{btorrent.control.api.TorrentOptions} or
        L{btorrent.control.api.AddOptions} (others are the caller's):
        C{downloadLimit}, C{downloadLimited}, C{uploadLimit},
        C{uploadLimited}, C{honorsSessionLimits}, C{seedRatioLimit},
        C{seedRatioMode}, C{seedIdleLimit}, C{seedIdleMode}, C{peerLimit},
        C{filesWanted}, C{filesUnwanted}, C{priorityHigh},
        C{priorityNormal}, C{priorityLow}, C{sequential}.  C{None} leaves a
        setting as it is.  Everything is checked before anything changes.

        @raise ControlError: for a bad value.
        """

        def given(name):
            return getattr(options, name, None)

        rates = {
            name: given(name)
            for name in TorrentLimits.__dataclass_fields__
            if given(name) is not None
        }
        seeds = {
            name: given(name)
            for name in SeedLimits.__dataclass_fields__
            if given(name) is not None
        }
        limits = self.bandwidth.limits.changed(rates)
        seed = self.seed.changed(seeds)
        peerLimit = given("peerLimit")
        if peerLimit is not None:
            _checkPeerLimit(peerLimit, "peerLimit")
        sequential = given("sequential")
        if sequential is not None and type(sequential) is not bool:
            raise ControlError("sequential must be true or false")
        wanted = {}
        if given("filesWanted") is not None:
            wanted[True] = self._indexes(given("filesWanted"))
        if given("filesUnwanted") is not None:
            wanted[False] = self._indexes(given("filesUnwanted"))
        priorities = {}
        for name, priority in (
            ("priorityHigh", PRIORITY_HIGH),
            ("priorityNormal", PRIORITY_NORMAL),
            ("priorityLow", PRIORITY_LOW),
        ):
            if given(name) is not None:
                priorities[priority] = self._indexes(given(name))
        # Everything is checked: apply.
        if limits != self.bandwidth.limits:
            self.bandwidth.setLimits(**limits.toJSON())
        if seed != self.seed:
            self.seed = seed
            self.seedLimitsChanged()
        if peerLimit is not None:
            self.setPeerLimit(peerLimit)
        if sequential is not None:
            self.setSequential(sequential)
        if wanted or priorities:
            self._changeFiles(wanted, priorities)

    # Persistence

    def toJSON(self) -> dict:
        """
        @return: a plain dict of every control and the totals, for the
            state file.
        """
        files = self.torrentFiles.toJSON()
        return {
            "limits": self.bandwidth.limits.toJSON(),
            "seed": self.seed.toJSON(),
            "sequential": self.sequential,
            "peerLimit": self.torrent.maxPeers,
            "files": files,
            "uploadedEver": self.uploadedEver,
            "downloadedEver": self.downloadedEver,
            "finishedByIdle": self.finishedByIdle,
        }

    def load(self, data: Any) -> None:
        """
        Apply L{toJSON}'s dict (a torrent just added from the state file,
        before it starts).  Missing keys leave a setting as it is, unknown
        keys are ignored; a file selection waits for the metadata if it is
        not known yet.

        @raise ControlError: for a bad value (nothing changed).
        """
        if not isinstance(data, dict):
            raise ControlError("torrent controls must be an object")
        limits = self.bandwidth.limits.changed(_known(TorrentLimits, data, "limits"))
        seed = self.seed.changed(_known(SeedLimits, data, "seed"))
        sequential = data.get("sequential", self.sequential)
        if type(sequential) is not bool:
            raise ControlError("sequential must be true or false")
        peerLimit = data.get("peerLimit", self.torrent.maxPeers)
        _checkPeerLimit(peerLimit, "peerLimit")
        counts = {}
        for key, now in (
            ("uploadedEver", self.uploadedEver),
            ("downloadedEver", self.downloadedEver),
        ):
            value = data.get(key, now)
            if type(value) is not int or not 0 <= value < 2**63:
                raise ControlError(f"{key} must be a byte count")
            counts[key] = value
        finished = data.get("finishedByIdle", self.finishedByIdle)
        if type(finished) is not bool:
            raise ControlError("finishedByIdle must be true or false")
        files = data.get("files")
        trial = None
        if files is not None:
            trial = self.torrentFiles.checkSaved(files)
        # Checked: apply.
        self.bandwidth.setLimits(**limits.toJSON())
        self.seed = seed
        self.finishedByIdle = finished
        self.uploadedBefore = counts["uploadedEver"] - self.torrent.uploaded
        self.downloadedBefore = counts["downloadedEver"] - self.torrent.downloaded
        self.setPeerLimit(peerLimit)
        self.setSequential(sequential)
        if files is not None:
            self.torrentFiles.adopt(trial, files)
