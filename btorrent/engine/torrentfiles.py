"""
A torrent's files as the user chooses them: which are wanted, their
priorities.

L{TorrentFiles} is a part of L{btorrent.engine.controls.TorrentControls}
(C{controls.torrentFiles}).  It keeps the
L{FileSelection} (or, while the metadata is unknown, the saved one
waiting for it), checks every change before it applies it, and applies
it to the picker (wanted pieces, priorities) and the storage (unwanted
files are not created; the parts file keeps the bytes of theirs in
straddling pieces); a complete torrent whose files become wanted
downloads again.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional

from btorrent.control.api import ControlError, FileStatus
from btorrent.engine.fileselect import FileSelection, checkFileIndexes

__all__ = ["NO_METADATA", "TorrentFiles"]

NO_METADATA = "the torrent's metadata has not arrived yet: no files to select"


class TorrentFiles:
    """
    The file selection of one torrent.

    @ivar selection: the L{FileSelection}, once the metadata is known.
    """

    def __init__(self, controls) -> None:
        """
        @param controls: the torrent's
            L{btorrent.engine.controls.TorrentControls}.
        """
        self.controls = controls
        self.torrent = controls.torrent
        self.selection: Optional[FileSelection] = None
        self._pending: Optional[dict] = None

    def metadataKnown(self) -> None:
        """
        The torrent's metadata is known (picker and storage built): build
        the selection (the saved one if any) and apply it.
        """
        meta = self.torrent.metainfo
        self.selection = FileSelection(meta.files, meta.pieceLength, meta.totalLength)
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                self.selection.load(pending)
            except ControlError as e:
                self.controls.logLine(
                    "warn", "{name}: file selection dropped: {reason}", reason=str(e)
                )
        self.apply()

    # What the control plane shows

    def fileProgress(self) -> List[int]:
        """
        Per file, the bytes of it in pieces we have (C{bytesCompleted}).
        """
        if self.selection is None:
            return []
        return self.selection.fileProgress(self.torrent.picker.haveBitfield)

    def files(self) -> List[FileStatus]:
        """
        Every file, as the control plane shows it: its path with C{/}
        (starting with the torrent's name for a multi-file torrent), its
        length, bytes completed, wanted flag and priority.
        """
        meta = self.torrent.metainfo
        if meta is None:
            return []
        done = self.fileProgress()
        out = []
        for index, entry in enumerate(meta.files):
            path = "/".join(entry.path)
            if meta.multiFile:
                path = meta.name + "/" + path
            out.append(
                FileStatus(
                    name=path,
                    length=entry.length,
                    bytesCompleted=done[index],
                    wanted=self.selection.wanted[index],
                    priority=self.selection.priorities[index],
                )
            )
        return out

    @property
    def partsPath(self) -> Optional[str]:
        """
        Where the parts file lives: C{<info-hash>.parts} in the state
        directory (C{None}: the storage's default, beside the data).
        """
        stateDir = self.torrent.stateDir
        if stateDir is None:
            return None
        return os.path.join(stateDir, self.torrent.infoHash.hex() + ".parts")

    # Changes

    def indexes(self, indexes: Iterable[int]) -> tuple:
        """
        @return: C{indexes}, checked.
        @raise ControlError: for an index out of range, or any index while
            the metadata is unknown.
        """
        if self.selection is None:
            indexes = tuple(indexes)
            if indexes:
                raise ControlError(NO_METADATA)
            return indexes
        return checkFileIndexes(indexes, self.selection.fileCount)

    def change(self, wanted=None, priorities=None) -> None:
        """
        Apply file changes, all checked first.

        @param wanted: C{{True: indexes, False: indexes}}.
        @param priorities: C{{priority: indexes}}.
        @raise ControlError: for a bad priority, or any change while the
            metadata is unknown (nothing changed).
        """
        selection = self.selection
        if selection is None:
            for lists in (wanted or {}, priorities or {}):
                if any(lists.values()):
                    raise ControlError(NO_METADATA)
            return
        trial = self._copy()
        trial.wanted = list(selection.wanted)
        trial.priorities = list(selection.priorities)
        for flag, indexes in (wanted or {}).items():
            trial.setWanted(indexes, flag)
        for priority, indexes in (priorities or {}).items():
            trial.setPriority(indexes, priority)
        if (
            trial.wanted == selection.wanted
            and trial.priorities == selection.priorities
        ):
            return
        self.selection = trial
        self.apply()

    def _copy(self) -> FileSelection:
        selection = self.selection
        return FileSelection(
            selection.files, selection.pieceLength, selection.totalLength
        )

    def apply(self) -> None:
        """
        Tell the picker and the storage what the selection means, and let
        the torrent download again or finish.
        """
        torrent = self.torrent
        selection = self.selection
        picker = torrent.picker
        before = picker.complete
        picker.setWanted(selection.wantedPieces())
        picker.setPriorities(
            None if selection.allNormal else selection.piecePriorities()
        )
        storage = torrent.storage
        if hasattr(storage, "setUnwanted"):
            unwanted = selection.unwantedFiles()
            path = self.partsPath
            # Once the storage was opened (even if closed since: a stopped
            # or seeding torrent), a file made wanted is created and filled
            # from the parts file, and an open may be under way: a thread.
            trySet = getattr(storage, "trySetUnwanted", None)
            if getattr(torrent, "storageOpen", False) or (
                trySet is not None and not trySet(unwanted, path)
            ):
                d = torrent.runInThread(storage.setUnwanted, unwanted, path)
                d.addErrback(torrent.lifecycle.failed)
            elif trySet is None:
                storage.setUnwanted(unwanted, path)
        downloader = torrent.downloader
        if downloader is not None and downloader.running:
            downloader.wantedChanged()
        if before and not picker.complete:
            torrent.lifecycle.wantMore()

    # Persistence

    def toJSON(self) -> Optional[dict]:
        """
        @return: the selection as a plain dict (the saved one while the
            metadata is unknown), or C{None}.
        """
        if self.selection is not None:
            return self.selection.toJSON()
        return self._pending

    def checkSaved(self, files: Any) -> Optional[FileSelection]:
        """
        Check a saved selection (L{toJSON}'s) before anything changes.

        @return: the selection to L{adopt}, or C{None} while the metadata
            is unknown.
        @raise ControlError: for a bad one.
        """
        if self.selection is not None:
            trial = self._copy()
            trial.load(files)
            return trial
        if not isinstance(files, dict):
            raise ControlError("a file selection must be an object")
        return None

    def adopt(self, trial: Optional[FileSelection], files: dict) -> None:
        """
        Apply what L{checkSaved} checked: C{trial}, or, while the metadata
        is unknown, keep C{files} for when it arrives.
        """
        if trial is not None:
            self.selection = trial
            self.apply()
        else:
            self._pending = files
