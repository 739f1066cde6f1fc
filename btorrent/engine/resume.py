"""
Fast-resume data and the full recheck.

A torrent that stops keeps, in its state directory, a small JSON file
named after its info-hash (C{<hex>.resume}, with a version field) saying
which pieces it has and what each of its files looked like (size and
C{mtime_ns}) when that was written.  On the next start, if every file
still looks the same, the pieces are trusted without hashing them again;
otherwise every piece is hashed (L{recheck}).

Version 1 of these files was bencoded; they are still read (a daemon
upgraded does not recheck everything), and the next save writes version
2.  JSON is our rule for state on disk, and C's JSON decoder reads ten
thousand of these files at start-up in a twentieth of the time bencode
took.

The rule that makes this safe: B{a piece is recorded as had only after its
hash check passed and its write reached the disk}.  The torrent therefore
calls C{storage.sync()} before taking the file statistics and writing the
resume data; L{saveResume} does these three steps in that order.  Writing a
piece after the resume data was saved changes the file's mtime, so a crash
at any later point makes the next start recheck rather than trust stale
data.  (A filesystem whose timestamps are coarser than the time between two
writes could leave the mtime unchanged; the bitfield then only under-claims,
since pieces are added, never lost, by our writes.)

Nothing here imports C{twisted.internet}: L{recheck} and L{saveResume}
block on the disk and run in a thread; they never touch the reactor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, List, Optional, Sequence, Tuple

from twisted.logger import Logger

from btorrent.codec import bencode
from btorrent.engine.storage import writeFileAtomically
from btorrent.util import logs
from btorrent.util.readfile import readAtMost

__all__ = [
    "MAX_RESUME_SIZE",
    "RESUME_VERSION",
    "RecheckStopped",
    "ResumeError",
    "bitfieldFromPieces",
    "loadResume",
    "piecesFromBitfield",
    "readResume",
    "recheck",
    "resumePath",
    "saveResume",
    "writeResume",
]

log = Logger(observer=logs.observer)

#: The format version written in every resume file (1: bencoded, still
#: read; 2: JSON).
RESUME_VERSION = 2

#: Resume files larger than this are refused unread (a bitfield of 100
#: million pieces and stats for a million files fit well within it).
MAX_RESUME_SIZE = 64 * 1024 * 1024

FileStat = Optional[Tuple[int, int]]


class ResumeError(ValueError):
    """
    Resume data that cannot be used; the message says why.
    """


class RecheckStopped(Exception):
    """
    L{recheck} was asked to stop before it was done.

    @ivar pieces: the results so far (C{False} for pieces not yet checked).
    """

    def __init__(self, pieces: List[bool]) -> None:
        Exception.__init__(self, "recheck stopped")
        self.pieces = pieces


def resumePath(stateDir: str, infoHash: bytes) -> str:
    """
    @return: the path of the resume file for C{infoHash} in C{stateDir}.
    """
    return os.path.join(stateDir, infoHash.hex() + ".resume")


def _bitfieldSize(pieceCount: int) -> int:
    return (pieceCount + 7) // 8


def bitfieldFromPieces(pieces: Sequence[bool]) -> bytes:
    """
    Pack a list of booleans into a BEP 3 bitfield (piece 0 is the high bit
    of the first byte; spare bits zero).
    """
    out = bytearray(_bitfieldSize(len(pieces)))
    for i, had in enumerate(pieces):
        if had:
            out[i >> 3] |= 0x80 >> (i & 7)
    return bytes(out)


def piecesFromBitfield(bitfield: bytes, pieceCount: int) -> List[bool]:
    """
    Unpack a BEP 3 bitfield into a list of C{pieceCount} booleans.

    @raise ValueError: for the wrong length or spare bits set.
    """
    _checkBitfield(bitfield, pieceCount)
    return [bool(bitfield[i >> 3] & (0x80 >> (i & 7))) for i in range(pieceCount)]


def _checkBitfield(bitfield: Any, pieceCount: int) -> None:
    """
    @raise ValueError: unless C{bitfield} is C{bytes} of the right length
        with its spare bits clear.
    """
    if not isinstance(bitfield, bytes):
        raise ValueError("the bitfield is not bytes")
    if len(bitfield) != _bitfieldSize(pieceCount):
        raise ValueError(f"a bitfield of {len(bitfield)} bytes for {pieceCount} pieces")
    spare = _bitfieldSize(pieceCount) * 8 - pieceCount
    if spare and bitfield[-1] & ((1 << spare) - 1):
        raise ValueError("spare bits set in the bitfield")


def _encodeStats(fileStats: Sequence[FileStat]) -> list:
    out = []
    for entry in fileStats:
        if entry is None:
            out.append([])
        else:
            size, mtime = entry
            if type(size) is not int or type(mtime) is not int or size < 0:
                raise ValueError(f"bad file statistics {entry!r}")
            out.append([size, mtime])
    return out


def _decodeStats(value: Any) -> List[FileStat]:
    if not isinstance(value, list):
        raise ResumeError("'files' is not a list")
    out: List[FileStat] = []
    for entry in value:
        if entry == []:
            out.append(None)
        elif (
            isinstance(entry, list)
            and len(entry) == 2
            and all(type(x) is int for x in entry)
            and entry[0] >= 0
        ):
            out.append((entry[0], entry[1]))
        else:
            raise ResumeError("malformed file statistics")
    return out


def writeResume(
    stateDir: str,
    infoHash: bytes,
    havePieces: bytes,
    pieceCount: int,
    fileStats: Sequence[FileStat],
) -> None:
    """
    Save fast-resume data atomically: write a temporary file in
    C{stateDir}, flush and C{fsync} it, rename it over C{<hex>.resume} and
    C{fsync} the directory.  On any failure the previous resume file is
    left as it was and the temporary file is removed.

    Call only with pieces whose data has reached the disk (see the module
    docstring, and L{saveResume}).

    @param stateDir: the state directory (created if missing).
    @param infoHash: the torrent's 20-byte info-hash.
    @param havePieces: the BEP 3 bitfield of verified, synced pieces.
    @param pieceCount: the number of pieces.
    @param fileStats: C{(size, mtime_ns)} or C{None} per file, as
        C{MultiFileWriter.fileStats} gives them, taken B{after}
        C{storage.sync()}.
    @raise ValueError: for inconsistent arguments.
    @raise OSError: for an I/O failure.
    """
    if not isinstance(infoHash, bytes) or len(infoHash) != 20:
        raise ValueError("the info-hash must be 20 bytes")
    if pieceCount < 0:
        raise ValueError("negative piece count")
    _checkBitfield(havePieces, pieceCount)
    data = json.dumps(
        {
            "version": RESUME_VERSION,
            "infoHash": infoHash.hex(),
            "pieces": pieceCount,
            "have": base64.b64encode(havePieces).decode("ascii"),
            "files": _encodeStats(fileStats),
        },
        separators=(",", ":"),
    ).encode("ascii")
    os.makedirs(stateDir, exist_ok=True)
    writeFileAtomically(resumePath(stateDir, infoHash), data)


def loadResume(
    stateDir: str,
    infoHash: bytes,
    pieceCount: int,
    currentFileStats: Sequence[FileStat],
) -> bytes:
    """
    Read and check fast-resume data.

    @param currentFileStats: the files as they are now
        (C{MultiFileWriter.fileStats()}).
    @return: the have-bitfield, valid for the files as they are.
    @raise ResumeError: saying why the data cannot be used: missing,
        unreadable, corrupt, for another torrent or piece count, another
        version, or any file whose size or mtime changed since.
    """
    path = resumePath(stateDir, infoHash)
    try:
        with open(path, "rb") as f:
            data = readAtMost(f, MAX_RESUME_SIZE)
    except FileNotFoundError:
        raise ResumeError("no resume data") from None
    except OSError as e:
        raise ResumeError(f"cannot read the resume data: {e}") from None
    if len(data) > MAX_RESUME_SIZE:
        raise ResumeError("resume data too large")
    value = _decodeResume(data)
    if value.get("infoHash") != infoHash:
        raise ResumeError("resume data for another info-hash")
    recordedCount = value.get("pieces")
    if type(recordedCount) is not int or recordedCount != pieceCount:
        raise ResumeError(
            f"resume data for {recordedCount!r} pieces, the torrent has "
            f"{pieceCount}"
        )
    have = value.get("have")
    try:
        _checkBitfield(have, pieceCount)
    except ValueError as e:
        raise ResumeError(f"bad bitfield: {e}") from None
    recorded = _decodeStats(value.get("files"))
    current = list(currentFileStats)
    if len(recorded) != len(current):
        raise ResumeError(
            f"resume data for {len(recorded)} files, the torrent has " f"{len(current)}"
        )
    for i, (before, now) in enumerate(zip(recorded, current)):
        if before != (None if now is None else tuple(now)):
            raise ResumeError(f"file {i} changed since the resume data was saved")
    return have


def _decodeResume(data: bytes) -> dict:
    """
    Decode a resume file of either version into one shape: C{version},
    C{infoHash} and C{have} as bytes, C{pieces}, C{files}.

    @raise ResumeError: for anything else.
    """
    if data[:1] == b"{":
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise ResumeError(f"corrupt resume data: {e}") from None
        if not isinstance(value, dict):
            raise ResumeError("resume data is not a dictionary")
        version = value.get("version")
        if version != RESUME_VERSION or type(version) is not int:
            raise ResumeError(f"unknown resume data version {version!r}")
        infoHash, have = value.get("infoHash"), value.get("have")
        try:
            infoHash = bytes.fromhex(infoHash) if type(infoHash) is str else None
        except ValueError:
            infoHash = None
        if type(have) is str:
            try:
                have = base64.b64decode(have, validate=True)
            except (binascii.Error, ValueError):
                raise ResumeError("bad bitfield: not base64") from None
        return dict(value, infoHash=infoHash, have=have)
    try:
        value = bencode.decode(data)
    except bencode.BencodeError as e:
        raise ResumeError(f"corrupt resume data: {e}") from None
    if not isinstance(value, dict):
        raise ResumeError("resume data is not a dictionary")
    version = value.get(b"version")
    if version != 1 or type(version) is not int:
        raise ResumeError(f"unknown resume data version {version!r}")
    return {
        "version": 1,
        "infoHash": value.get(b"info-hash"),
        "pieces": value.get(b"pieces"),
        "have": value.get(b"have"),
        "files": value.get(b"files"),
    }


def readResume(
    stateDir: str,
    infoHash: bytes,
    pieceCount: int,
    currentFileStats: Sequence[FileStat],
) -> Optional[bytes]:
    """
    Read fast-resume data, or give C{None} (after logging the reason) when
    it cannot be trusted and a full L{recheck} is needed.

    @return: the have-bitfield, or C{None}; see L{loadResume} (which raises
        L{ResumeError} with the reason instead).
    """
    try:
        return loadResume(stateDir, infoHash, pieceCount, currentFileStats)
    except ResumeError as e:
        log.info(
            "No fast resume for {infoHash}: {reason}",
            infoHash=infoHash.hex(),
            reason=str(e),
        )
        return None


def saveResume(
    storage: Any, stateDir: str, infoHash: bytes, havePieces: bytes, pieceCount: int
) -> None:
    """
    Save fast-resume data in the order that keeps it truthful: sync the
    storage (so every piece written so far is on the disk), take the file
    statistics, then write the resume file atomically.

    Blocks on the disk: run it in a thread.

    @param storage: a C{MultiFileWriter} (C{sync}, C{fileStats}).
    @param havePieces: the bitfield of pieces verified B{and} written
        (C{writePiece} returned) before this call.
    """
    storage.sync()
    writeResume(stateDir, infoHash, havePieces, pieceCount, storage.fileStats())


def _partsOf(storage: Any) -> Tuple[frozenset, frozenset]:
    """
    @return: the files whose bytes the storage keeps in its parts file,
        and the pieces that have bytes there (both empty for a storage
        without file selection).
    """
    redirected = getattr(storage, "redirected", frozenset())
    if not redirected:
        return frozenset(), frozenset()
    return redirected, storage.partsPieces()


def _unreadablePieces(storage: Any) -> List[bool]:
    """
    @return: per piece, whether some file it needs is missing or shorter
        than its entry (so that the piece cannot be had).
    """
    layout = storage.layout
    bad = [False] * layout.pieceCount
    redirected, inParts = _partsOf(storage)
    for fileIndex, current in enumerate(storage.fileStats()):
        entry = layout.files[fileIndex]
        if entry.padding or not entry.length:
            continue
        if fileIndex in redirected:
            # Its bytes are in the parts file, for the pieces kept there.
            for piece in layout.pieceRange(fileIndex):
                if piece not in inParts:
                    bad[piece] = True
            continue
        if current is None or current[0] < entry.length:
            for piece in layout.pieceRange(fileIndex):
                bad[piece] = True
    return bad


def _piecesWithData(storage: Any, bad: List[bool]) -> List[bool]:
    """
    @param bad: per piece, whether it is already known to be missing;
        files whose pieces all are need not be looked at.
    @return: per piece, whether some file byte in it may hold data (is not
        in a hole of a sparse file).
    """
    layout = storage.layout
    pieceLength = layout.pieceLength
    hasData = [False] * layout.pieceCount
    redirected, inParts = _partsOf(storage)
    for fileIndex, entry in enumerate(layout.files):
        if entry.padding or not entry.length:
            continue
        if fileIndex in redirected:
            for piece in layout.pieceRange(fileIndex):
                if piece in inParts:
                    hasData[piece] = True
            continue
        if all(bad[i] for i in layout.pieceRange(fileIndex)):
            continue
        try:
            extents = storage.dataExtents(fileIndex)
        except Exception:
            extents = None
        if extents is None:
            extents = [(0, entry.length)]
        for start, end in extents:
            end = min(end, entry.length)
            if start >= end:
                continue
            first = (entry.offset + start) // pieceLength
            last = (entry.offset + end - 1) // pieceLength
            hasData[first : last + 1] = [True] * (last + 1 - first)
    return hasData


def recheck(
    storage: Any,
    metainfo: Any,
    progress: Optional[Callable[[int, int], None]] = None,
    stop: Optional[Callable[[], bool]] = None,
    chunkSize: int = 2 * 1024 * 1024,
    threads: Optional[int] = None,
) -> List[bool]:
    """
    Hash every piece on disk against the metainfo.

    Pieces needing a file that is missing or too short are C{False} without
    being read.  Pieces lying entirely in holes of sparse files (never
    written: a freshly opened torrent) are not read either: they are had
    only if their hash is that of zeros.  The rest is read in large sequential chunks (whole pieces,
    about C{chunkSize} bytes) straight into reused buffers and hashed, by a
    few threads at once (reading and SHA-1 both release the GIL).

    Blocks for a long time: run it in a thread (C{deferToThread}); it never
    touches the reactor, and C{progress} is called in that thread (use
    C{reactor.callFromThread} in it to reach the reactor).

    @param storage: a C{MultiFileWriter} (C{layout}, C{fileStats},
        C{dataExtents}, C{readInto}); it need not be open.
    @param metainfo: the C{Metainfo} (C{pieceHashes}).
    @param progress: called as C{progress(done, total)} in pieces, now and
        then and once at the end.
    @param stop: called between chunks; when it returns true the recheck
        ends by raising L{RecheckStopped}.
    @param chunkSize: about how many bytes each read covers.
    @param threads: how many reading and hashing threads (default: one
        more than the number of CPUs, so that reads overlap hashing, at most
        8).
    @return: per piece, whether it is on disk and matches its hash.
    @raise RecheckStopped: when C{stop()} asked to stop.
    """
    layout = storage.layout
    total = layout.pieceCount
    hashes = metainfo.pieceHashes
    if len(hashes) != total:
        raise ValueError(f"{len(hashes)} piece hashes for {total} pieces")
    pieceLength = layout.pieceLength
    results = [False] * total
    # Pieces not to read: those in missing or short files (False) ...
    skip = _unreadablePieces(storage)
    hasData = _piecesWithData(storage, skip)
    zeroHashes: dict = {}
    for index in range(total):
        if not skip[index] and not hasData[index]:
            # ... and those entirely in holes, which read as zeros.
            size = layout.pieceSize(index)
            if size not in zeroHashes:
                zeroHashes[size] = hashlib.sha1(bytes(size)).digest()
            results[index] = hashes[index] == zeroHashes[size]
            skip[index] = True
    perChunk = max(1, chunkSize // pieceLength)
    chunks: List[Tuple[int, int]] = []  # (first piece, piece count)
    index = 0
    while index < total:
        if skip[index]:
            index += 1
            continue
        first = index
        while index < total and not skip[index] and index - first < perChunk:
            index += 1
        chunks.append((first, index - first))
    if threads is None:
        threads = min(8, (os.cpu_count() or 1) + 1)
    local = threading.local()

    def check(first: int, count: int) -> List[bool]:
        start = first * pieceLength
        end = min(layout.totalLength, (first + count) * pieceLength)
        buffer = getattr(local, "buffer", None)
        if buffer is None or len(buffer) < end - start:
            buffer = local.buffer = bytearray(max(end - start, perChunk * pieceLength))
        view = memoryview(buffer)[: end - start]
        try:
            storage.readInto(start, view)
        except Exception as e:
            log.info(
                "Recheck could not read pieces {first}..{last}: {error}",
                first=first,
                last=first + count - 1,
                error=str(e),
            )
            return [False] * count
        out = []
        for i in range(count):
            piece = view[i * pieceLength : (i + 1) * pieceLength]
            out.append(hashlib.sha1(piece).digest() == hashes[first + i])
        return out

    reported = 0
    step = max(1, total // 200)
    if len(chunks) <= 1:
        # A small torrent (one chunk): no pool of threads for it (ten
        # thousand small torrents checked one after the other paid for a
        # pool each).
        for first, count in chunks:
            if stop is not None and stop():
                raise RecheckStopped(results)
            results[first : first + count] = check(first, count)
        if progress is not None:
            progress(total, total)
        return results
    pending: deque[Tuple[int, int, Future]] = deque()
    chunkIter = iter(chunks)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recheck") as pool:
        try:
            while True:
                if stop is not None and stop():
                    raise RecheckStopped(results)
                while len(pending) < threads * 2:
                    nextChunk = next(chunkIter, None)
                    if nextChunk is None:
                        break
                    pending.append((*nextChunk, pool.submit(check, *nextChunk)))
                if not pending:
                    break
                first, count, future = pending.popleft()
                results[first : first + count] = future.result()
                # Chunks complete in order: every piece before this point
                # is now either hashed or known to be unreadable.
                if progress is not None and first + count - reported >= step:
                    reported = first + count
                    progress(reported, total)
        except BaseException:
            for _first, _count, future in pending:
                future.cancel()
            raise
    if progress is not None:
        progress(total, total)
    return results
