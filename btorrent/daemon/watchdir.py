"""
The watch dir: a C{.torrent} file that appears there is added once its size
has stopped changing, then renamed C{NAME.torrent.added}; a file that does
not parse is renamed C{NAME.torrent.invalid} with one log line.  Nothing
else in the directory is touched.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Tuple

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from btorrent.control.api import AddOptions, ControlError
from btorrent.util import logs

__all__ = ["MAX_TORRENT_FILE", "WATCH_INTERVAL", "WatchDir"]

#: Seconds between two looks at the directory.
WATCH_INTERVAL = 2.0

#: A watched file larger than this is not a torrent (as C{metainfo.loadFile}).
MAX_TORRENT_FILE = 10 * 1024 * 1024


class WatchDir(Service):
    """
    Adds the C{.torrent} files that appear in a directory.

    @ivar directory: the directory watched.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        directory: str,
        add: Callable[[bytes, AddOptions], defer.Deferred],
        heartbeat,
        runInThread: Callable[..., defer.Deferred],
        clock,
        options: AddOptions = AddOptions(),
        interval: float = WATCH_INTERVAL,
    ) -> None:
        """
        @param add: C{add(torrentBytes, options)}: the session API's
            C{addTorrent}.
        @param heartbeat: the session's heartbeat, on which it looks.
        @param runInThread: for the directory listing and file reads.
        @param clock: provides C{seconds()}.
        """
        self.directory = directory
        self.add = add
        self.heartbeat = heartbeat
        self.runInThread = runInThread
        self.clock = clock
        self.options = options
        self.interval = interval
        self._seen: Dict[str, Tuple[int, int]] = {}
        self._next = 0.0
        self._busy = False

    def startService(self) -> None:
        """
        Look at the directory now and then.
        """
        super().startService()
        self._next = 0.0
        self.heartbeat.subscribe(self, self._beat)

    def stopService(self) -> None:
        """
        Stop looking.
        """
        super().stopService()
        self.heartbeat.unsubscribe(self)

    def _beat(self, now: float) -> None:
        if self._busy or now < self._next:
            return
        self._next = now + self.interval
        self._busy = True
        d = self.runInThread(self._scan)
        d.addCallback(self._scanned)
        d.addErrback(
            lambda f: self.log.failure(
                "cannot look at the watch dir {directory}",
                failure=f,
                directory=self.directory,
            )
        )
        d.addBoth(self._idle)

    def _idle(self, _) -> None:
        self._busy = False

    def _scan(self) -> Dict[str, Tuple[int, int]]:
        """
        In a thread: the C{.torrent} files there, with size and mtime.
        """
        found = {}
        try:
            names = os.listdir(self.directory)
        except OSError as e:
            raise ControlError(f"{self.directory}: {e.strerror or e}") from None
        for name in names:
            if not name.endswith(".torrent"):
                continue
            path = os.path.join(self.directory, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if os.path.isfile(path):
                found[name] = (st.st_size, st.st_mtime_ns)
        return found

    @defer.inlineCallbacks
    def _scanned(self, found: Dict[str, Tuple[int, int]]):
        """
        Add the files whose size and mtime did not change since the last
        look (a file being copied in waits).
        """
        stable = [name for name, stat in found.items() if self._seen.get(name) == stat]
        self._seen = {name: stat for name, stat in found.items() if name not in stable}
        for name in sorted(stable):
            yield self._take(name)

    @defer.inlineCallbacks
    def _take(self, name: str):
        path = os.path.join(self.directory, name)
        try:
            data = yield self.runInThread(_readSmall, path)
        except OSError as e:
            self.log.warn(
                "watch dir: cannot read {path}: {error}", path=path, error=str(e)
            )
            return
        try:
            result = yield self.add(data, self.options)
        except ControlError as e:
            self.log.warn(
                "watch dir: {path} is not a torrent ({error}); renamed .invalid",
                path=path,
                error=str(e),
            )
            yield self.runInThread(_rename, path, path + ".invalid")
            return
        torrent = result.torrent
        self.log.info(
            "watch dir: {path} added{duplicate}",
            path=path,
            duplicate=" (already there)" if result.duplicate else "",
            infoHash=torrent.infoHash.hex()[:8],
        )
        yield self.runInThread(_rename, path, path + ".added")


def _readSmall(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(MAX_TORRENT_FILE + 1)
    if len(data) > MAX_TORRENT_FILE:
        return b""
    return data


def _rename(path: str, target: str) -> None:
    try:
        os.replace(path, target)
    except OSError:
        pass
