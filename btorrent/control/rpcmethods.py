"""
The methods of Transmission's RPC (C{libtransmission/rpcimpl.c}, RPC
version 16 as in Transmission 3.00), carried out on the session API.

L{RPCMethods.handle} takes a decoded request C{{"method", "arguments",
"tag"}} and gives (through a L{Deferred}) the response C{{"result",
"arguments", "tag"}}: C{"success"} or one line saying what went wrong.
Every argument is checked before anything is changed (L{rpcargs}); a
session's L{ControlError} becomes the result text; anything else is logged
and answered with a short "internal error" line, never a traceback.

No HTTP here: L{btorrent.control.rpc} does that.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import stat
from typing import Any, Callable, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from btorrent.codec.metainfo import MAX_TORRENT_SIZE
from btorrent.control.access import SessionIdSource
from btorrent.control.api import (
    AddOptions,
    ControlError,
    ISessionControl,
    ITorrentControl,
    TorrentOptions,
)
from btorrent.control.rpcargs import (
    MAX_RATE_KBPS,
    RECENTLY_ACTIVE,
    getAbsolutePath,
    getBool,
    getIndexes,
    getInt,
    getLabels,
    getReal,
    getString,
    parseIds,
    shown,
)
from btorrent.control.rpcfields import (
    NEUTRAL_SESSION_FIELDS,
    READ_ONLY_SESSION_FIELDS,
    SETTINGS_FIELDS,
    TORRENT_FIELDS,
    SessionContext,
    sessionFields,
    torrentFields,
)
from btorrent.util import logs

__all__ = ["RECENTLY_ACTIVE_SECONDS", "RPCError", "RPCMethods", "readTorrentFile"]

#: "recently-active" looks this far back (Transmission's).
RECENTLY_ACTIVE_SECONDS = 60

#: Ranges of integer arguments.
_PEER_LIMIT = (0, 65535)
_QUEUE_SIZE = (0, 1_000_000)
_IDLE_MINUTES = (0, 65535)
_RATIO = (0.0, 1_000_000.0)

_NOTHING = frozenset()


class RPCError(ControlError):
    """
    A failed method that still answers with arguments (C{free-space} gives
    its C{path} and C{size-bytes} -1).
    """

    def __init__(self, text: str, arguments: Dict[str, Any]) -> None:
        super().__init__(text)
        self.arguments = arguments


def readTorrentFile(path: str, maxSize: int = MAX_TORRENT_SIZE) -> bytes:
    """
    Read a local C{.torrent} named by C{torrent-add}'s C{filename}.

    Only a regular file is read (a FIFO or a device would block or never
    end: refused before reading), and no more than C{maxSize} bytes.

    @raise ControlError: one line saying why it cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ControlError(f"cannot read {path}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ControlError(f"cannot read {path}: not a regular file")
        os.set_blocking(fd, True)
        chunks = []
        size = 0
        while size <= maxSize:
            chunk = os.read(fd, min(1 << 20, maxSize + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise ControlError(f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    if size > maxSize:
        raise ControlError(
            f"{path} is larger than a torrent file may be ({maxSize} bytes)"
        )
    return b"".join(chunks)


#: C{torrent-set}/C{torrent-add} file list arguments -> L{TorrentOptions}
#: and L{AddOptions} attributes.
_FILE_LISTS = {
    "files-wanted": "filesWanted",
    "files-unwanted": "filesUnwanted",
    "priority-high": "priorityHigh",
    "priority-normal": "priorityNormal",
    "priority-low": "priorityLow",
}


class RPCMethods:
    """
    Transmission's RPC methods on an L{ISessionControl}.

    @ivar session: the session.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        session: ISessionControl,
        reactor: IReactorTime,
        sessionIds: SessionIdSource,
        version: str,
        fetchURL: Callable[[str, Optional[str]], Deferred],
        configDir: str = "",
        maxTorrentSize: int = MAX_TORRENT_SIZE,
        readFile: Optional[Callable[[str, int], Deferred]] = None,
    ) -> None:
        """
        @param reactor: gives the time and runs C{session-close} after the
            answer is written.
        @param sessionIds: for C{session-get}'s C{session-id}.
        @param version: C{session-get}'s C{version}.
        @param fetchURL: C{fetchURL(url, cookies)} gives a L{Deferred}
            firing with the bytes of a C{.torrent} at an http(s) URL, or
            failing with L{ControlError}.
        @param configDir: C{session-get}'s C{config-dir}.
        @param maxTorrentSize: the largest C{.torrent} taken.
        @param readFile: C{readFile(path, maxSize)} gives a L{Deferred} of
            L{readTorrentFile}'s result, read off the reactor's thread (a
            file on a slow mount); by default it is read at once.
        """
        self.session = session
        self._reactor = reactor
        self._sessionIds = sessionIds
        self._version = version
        self._fetchURL = fetchURL
        self._configDir = configDir
        self._maxTorrentSize = maxTorrentSize
        self._readFile = readFile or (
            lambda path, maxSize: maybeDeferred(readTorrentFile, path, maxSize)
        )
        self._methods: Dict[str, Callable[[dict], Any]] = {
            "blocklist-update": self.blocklistUpdate,
            "free-space": self.freeSpace,
            "port-test": self.portTest,
            "queue-move-bottom": lambda args: self.queueMove(args, "bottom"),
            "queue-move-down": lambda args: self.queueMove(args, "down"),
            "queue-move-top": lambda args: self.queueMove(args, "top"),
            "queue-move-up": lambda args: self.queueMove(args, "up"),
            "session-close": self.sessionClose,
            "session-get": self.sessionGet,
            "session-set": self.sessionSet,
            "session-stats": self.sessionStats,
            "torrent-add": self.torrentAdd,
            "torrent-get": self.torrentGet,
            "torrent-reannounce": self.torrentReannounce,
            "torrent-remove": self.torrentRemove,
            "torrent-rename-path": self.torrentRenamePath,
            "torrent-set": self.torrentSet,
            "torrent-set-location": self.torrentSetLocation,
            "torrent-start": lambda args: self.torrentStart(args, False),
            "torrent-start-now": lambda args: self.torrentStart(args, True),
            "torrent-stop": self.torrentStop,
            "torrent-verify": self.torrentVerify,
        }

    @property
    def methodNames(self) -> Sequence[str]:
        """
        The methods served, sorted.
        """
        return sorted(self._methods)

    def handle(self, request: Any) -> Deferred:
        """
        Answer one decoded request.

        @return: a L{Deferred} firing with the response object (never
            failing).
        """
        return ensureDeferred(self._handle(request))

    async def _handle(self, request: Any) -> Dict[str, Any]:
        response: Dict[str, Any] = {"arguments": {}, "result": "success"}
        if not isinstance(request, dict):
            response["result"] = "invalid request: not a JSON object"
            return response
        tag = request.get("tag")
        if isinstance(tag, (int, str)) and not isinstance(tag, bool):
            response["tag"] = tag
        elif isinstance(tag, float) and math.isfinite(tag):
            response["tag"] = tag
        method = request.get("method")
        if not isinstance(method, str):
            response["result"] = "no method name"
            return response
        implementation = self._methods.get(method)
        if implementation is None:
            response["result"] = "method name not recognized"
            return response
        arguments = request.get("arguments", {})
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            response["result"] = (
                f'"arguments" must be an object, not {shown(arguments)}'
            )
            return response
        try:
            result = await maybeDeferred(implementation, arguments)
        except RPCError as e:
            response["result"] = str(e)
            response["arguments"] = e.arguments
        except ControlError as e:
            response["result"] = str(e)
        except Exception:
            self.log.failure("RPC method {method} failed", method=method)
            response["result"] = f"internal error in {method}"
        else:
            response["arguments"] = result or {}
        return response

    # Selecting torrents

    def _now(self) -> float:
        return self._reactor.seconds()

    def _all(self) -> List[ITorrentControl]:
        torrents = self.session.torrents()
        if isinstance(torrents, dict):
            torrents = torrents.values()
        return sorted(torrents, key=lambda t: t.id)

    def _select(self, args: dict) -> List[ITorrentControl]:
        """
        The torrents C{ids} names, that exist (unknown ids are skipped, as
        Transmission does).
        """
        ids = parseIds(args)
        if ids is None:
            return self._all()
        if ids == RECENTLY_ACTIVE:
            since = self._now() - RECENTLY_ACTIVE_SECONDS
            return sorted(self.session.recentlyActive(since), key=lambda t: t.id)
        found: List[ITorrentControl] = []
        seen = set()
        for key in ids:
            torrent = self.session.torrent(key)
            if torrent is not None and torrent.id not in seen:
                seen.add(torrent.id)
                found.append(torrent)
        return found

    # Torrent actions

    async def torrentStart(self, args: dict, now: bool) -> None:
        torrents = self._select(args)
        positions = {t.id: t.status(fields=_NOTHING).queuePosition for t in torrents}
        for torrent in sorted(torrents, key=lambda t: positions[t.id]):
            await maybeDeferred(torrent.start, now)

    async def torrentStop(self, args: dict) -> None:
        for torrent in self._select(args):
            await maybeDeferred(torrent.stop)

    async def torrentVerify(self, args: dict) -> None:
        for torrent in self._select(args):
            await maybeDeferred(torrent.verify)

    async def torrentReannounce(self, args: dict) -> None:
        for torrent in self._select(args):
            await maybeDeferred(torrent.reannounce)

    async def queueMove(self, args: dict, where: str) -> None:
        torrents = self._select(args)
        if torrents:
            await maybeDeferred(self.session.queueMove, torrents, where)

    async def torrentRemove(self, args: dict) -> None:
        deleteData = getBool(args, "delete-local-data") or False
        for torrent in self._select(args):
            await maybeDeferred(self.session.removeTorrent, torrent, deleteData)

    # torrent-get

    def torrentGet(self, args: dict) -> Dict[str, Any]:
        torrents = self._select(args)
        fields = args.get("fields")
        if not isinstance(fields, list):
            raise ControlError("no fields specified")
        names: List[str] = []
        for name in fields:
            if isinstance(name, str) and name in TORRENT_FIELDS and name not in names:
                names.append(name)
        form = args.get("format", "objects")
        if form not in ("objects", "table"):
            raise ControlError(
                f'"format" must be "objects" or "table", not {shown(form)}'
            )
        rows = [torrentFields(t.view(), names) for t in torrents]
        out: Dict[str, Any] = {}
        if form == "table":
            out["torrents"] = [names] + [[row[n] for n in names] for row in rows]
        else:
            out["torrents"] = rows
        if args.get("ids") == RECENTLY_ACTIVE:
            since = self._now() - RECENTLY_ACTIVE_SECONDS
            out["removed"] = [int(i) for i in self.session.recentlyRemoved(since)]
        return out

    # torrent-set

    def _torrentOptions(self, args: dict) -> Dict[str, Any]:
        """
        The L{TorrentOptions} fields C{torrent-set} asks for (file lists
        apart), checked.
        """
        options: Dict[str, Any] = {}
        for key, attribute in [
            ("downloadLimit", "downloadLimit"),
            ("uploadLimit", "uploadLimit"),
        ]:
            value = getInt(args, key, 0, MAX_RATE_KBPS)
            if value is not None:
                options[attribute] = value * 1000
        for key in ("downloadLimited", "uploadLimited", "honorsSessionLimits"):
            value = getBool(args, key)
            if value is not None:
                options[key] = value
        checks = [
            ("seedRatioMode", "seedRatioMode", 0, 2),
            ("seedIdleMode", "seedIdleMode", 0, 2),
            ("seedIdleLimit", "seedIdleLimit", *_IDLE_MINUTES),
            ("peer-limit", "peerLimit", *_PEER_LIMIT),
            ("bandwidthPriority", "bandwidthPriority", -1, 1),
            ("queuePosition", "queuePosition", *_QUEUE_SIZE),
        ]
        for key, attribute, low, high in checks:
            value = getInt(args, key, low, high)
            if value is not None:
                options[attribute] = value
        ratio = getReal(args, "seedRatioLimit", *_RATIO)
        if ratio is not None:
            options["seedRatioLimit"] = ratio
        labels = getLabels(args, "labels")
        if labels is not None:
            options["labels"] = labels
        # Transmission 4.1's name (snake case in every protocol version).
        sequential = getBool(args, "sequential_download")
        if sequential is not None:
            options["sequential"] = sequential
        for key in ("trackerAdd", "trackerRemove", "trackerReplace"):
            if key in args:
                raise ControlError(f'"{key}": changing trackers is not supported yet')
        return options

    async def torrentSet(self, args: dict) -> None:
        torrents = self._select(args)
        common = self._torrentOptions(args)
        fileLists = {}
        for key, attribute in _FILE_LISTS.items():
            indexes = getIndexes(args, key)
            if indexes is not None:
                fileLists[attribute] = indexes
        plans = []
        for torrent in torrents:
            options = dict(common)
            if fileLists:
                count = len(torrent.status(fields=frozenset({"files"})).files)
                for attribute, indexes in fileLists.items():
                    if any(i >= count for i in indexes):
                        raise ControlError("file index out of range")
                    # An empty list means every file (Transmission's rule).
                    options[attribute] = indexes if indexes else tuple(range(count))
            plans.append((torrent, TorrentOptions(**options)))
        for torrent, options in plans:
            await maybeDeferred(torrent.setOptions, options)

    async def torrentSetLocation(self, args: dict) -> None:
        location = getAbsolutePath(
            args, "location", "new location path is not absolute"
        )
        if location is None:
            raise ControlError("no location")
        move = getBool(args, "move") or False
        for torrent in self._select(args):
            await maybeDeferred(torrent.setLocation, location, move)

    async def torrentRenamePath(self, args: dict) -> Dict[str, Any]:
        path = getString(args, "path")
        name = getString(args, "name")
        if path is None or name is None:
            raise ControlError('torrent-rename-path needs "path" and "name"')
        if not name or "/" in name or name in (".", ".."):
            raise ControlError(f"invalid new name {shown(name)}")
        torrents = self._select(args)
        if len(torrents) != 1:
            raise ControlError("torrent-rename-path requires 1 torrent")
        torrent = torrents[0]
        result = await maybeDeferred(torrent.renamePath, path, name)
        if isinstance(result, tuple) and len(result) == 2:
            path, name = result
        return {"id": int(torrent.id), "path": str(path), "name": str(name)}

    # torrent-add

    async def torrentAdd(self, args: dict) -> Dict[str, Any]:
        filename = getString(args, "filename")
        metainfo = getString(args, "metainfo", maxLength=2 * self._maxTorrentSize)
        if filename is not None:
            filename = filename.strip()
        if not filename and metainfo is None:
            raise ControlError("no filename or metainfo specified")
        options = self._addOptions(args)
        cookies = getString(args, "cookies")
        if filename:
            lowered = filename.lower()
            if lowered.startswith("magnet:?"):
                source: Any = filename
            elif lowered.startswith(("http://", "https://")):
                source = await self._fetchURL(filename, cookies)
            elif "://" in filename:
                raise ControlError(f"unsupported URL {shown(filename)}: use http(s)")
            elif not filename.startswith("/"):
                raise ControlError("torrent file path is not absolute")
            else:
                source = await self._readFile(filename, self._maxTorrentSize)
        else:
            try:
                source = base64.b64decode(metainfo or "", validate=False)
            except (binascii.Error, ValueError):
                raise ControlError("invalid or corrupt torrent file") from None
            if len(source) > self._maxTorrentSize:
                raise ControlError(
                    f"torrent file larger than {self._maxTorrentSize} bytes"
                )
        result = await maybeDeferred(self.session.addTorrent, source, options)
        torrent = result.torrent
        status = torrent.status(fields=_NOTHING)
        key = "torrent-duplicate" if result.duplicate else "torrent-added"
        return {
            key: {
                "hashString": bytes(torrent.infoHash).hex(),
                "id": int(torrent.id),
                "name": str(status.name),
            }
        }

    def _addOptions(self, args: dict) -> AddOptions:
        options: Dict[str, Any] = {}
        downloadDir = getAbsolutePath(
            args, "download-dir", "download directory path is not absolute"
        )
        if downloadDir is not None:
            options["downloadDir"] = downloadDir
        paused = getBool(args, "paused")
        if paused is None:
            paused = not self.session.settings.startAddedTorrents
        options["paused"] = paused
        labels = getLabels(args, "labels")
        if labels is not None:
            options["labels"] = labels
        for key, attribute in _FILE_LISTS.items():
            indexes = getIndexes(args, key)
            if indexes:
                options[attribute] = indexes
        peerLimit = getInt(args, "peer-limit", *_PEER_LIMIT)
        if peerLimit is not None:
            options["peerLimit"] = peerLimit
        priority = getInt(args, "bandwidthPriority", -1, 1)
        if priority is not None:
            options["bandwidthPriority"] = priority
        sequential = getBool(args, "sequential_download")
        if sequential is not None:
            options["sequential"] = sequential
        return AddOptions(**options)

    # Session

    def _context(self, free: int) -> SessionContext:
        return SessionContext(
            version=self._version,
            sessionId=self._sessionIds.current(),
            configDir=self._configDir,
            downloadDirFree=free,
        )

    def _freeBytes(self, path: str) -> Deferred:
        """
        The bytes free at C{path}, or -1 if they cannot be known.
        """

        def unknown(failure) -> int:
            failure.trap(ControlError)
            return -1

        return maybeDeferred(self.session.freeSpace, path).addCallbacks(int, unknown)

    def sessionGet(self, args: dict) -> Deferred:
        fields = args.get("fields")
        if fields is not None and not (
            isinstance(fields, list) and all(isinstance(f, str) for f in fields)
        ):
            raise ControlError(f'"fields" must be a list of names, not {shown(fields)}')
        if fields is not None and "download-dir-free-space" not in fields:
            free: Deferred = succeed(-1)
        else:
            free = self._freeBytes(self.session.settings.downloadDir)
        return free.addCallback(
            lambda bytesFree: sessionFields(
                self.session.settings, self._context(bytesFree), fields
            )
        )

    def sessionSet(self, args: dict) -> None:
        changes: Dict[str, Any] = {}
        intRanges = {
            "peer-port": (1, 65535),
            "peer-limit-global": _PEER_LIMIT,
            "peer-limit-per-torrent": _PEER_LIMIT,
            "download-queue-size": _QUEUE_SIZE,
            "seed-queue-size": _QUEUE_SIZE,
            "idle-seeding-limit": _IDLE_MINUTES,
        }
        for key in sorted(args):
            if key in SETTINGS_FIELDS:
                attribute, kind = SETTINGS_FIELDS[key]
                if kind == "int":
                    value: Any = getInt(args, key, *intRanges[key])
                elif kind == "kbps":
                    value = getInt(args, key, 0, MAX_RATE_KBPS) * 1000
                elif kind == "bool":
                    value = getBool(args, key)
                elif kind == "real":
                    value = getReal(args, key, *_RATIO)
                elif kind == "encryption":
                    value = getString(args, key)
                    if value not in ("required", "preferred", "tolerated"):
                        raise ControlError(
                            '"encryption" must be "required", "preferred" or '
                            f'"tolerated", not {shown(value)}'
                        )
                else:
                    value = getAbsolutePath(
                        args, key, "download directory path is not absolute"
                    )
                changes[attribute] = value
            elif key in NEUTRAL_SESSION_FIELDS:
                neutral = NEUTRAL_SESSION_FIELDS[key]
                value = args[key]
                if type(value) is not type(neutral) or value != neutral:
                    raise ControlError(
                        f'"{key}" is not supported by btorrent: it stays {shown(neutral)}'
                    )
            elif key in READ_ONLY_SESSION_FIELDS:
                continue
        if changes:
            self.session.setSettings(changes)

    def sessionStats(self, args: dict) -> Dict[str, Any]:
        stats = self.session.stats()

        def totals(d: dict) -> Dict[str, int]:
            keys = (
                "uploadedBytes",
                "downloadedBytes",
                "filesAdded",
                "sessionCount",
                "secondsActive",
            )
            return {k: int(d.get(k, 0)) for k in keys}

        return {
            "activeTorrentCount": int(stats.activeTorrentCount),
            "downloadSpeed": int(stats.downloadSpeed),
            "pausedTorrentCount": int(stats.pausedTorrentCount),
            "torrentCount": int(stats.torrentCount),
            "uploadSpeed": int(stats.uploadSpeed),
            "cumulative-stats": totals(stats.cumulative),
            "current-stats": totals(stats.current),
        }

    def sessionClose(self, args: dict) -> None:
        # After this answer is on its way.
        self._reactor.callLater(0, self.session.close)

    def freeSpace(self, args: dict) -> Deferred:
        path = getAbsolutePath(args, "path", "directory path is not absolute")
        if path is None:
            raise ControlError("directory path argument is missing")

        def failed(failure):
            failure.trap(ControlError)
            raise RPCError(str(failure.value), {"path": path, "size-bytes": -1})

        return maybeDeferred(self.session.freeSpace, path).addCallbacks(
            lambda size: {"path": path, "size-bytes": int(size)}, failed
        )

    def portTest(self, args: dict) -> Dict[str, Any]:
        # No probing from outside: btorrent contacts nothing to find out.
        return {"port-is-open": False}

    def blocklistUpdate(self, args: dict) -> None:
        raise ControlError("blocklist-update: btorrent has no blocklist support")
