"""
Tests for L{btorrent.engine.resume}: fast-resume data and the full recheck.
"""

from __future__ import annotations

import base64
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode
from btorrent.engine import resume as resumeModule
from btorrent.engine.resume import (
    RESUME_VERSION,
    RecheckStopped,
    ResumeError,
    bitfieldFromPieces,
    loadResume,
    piecesFromBitfield,
    readResume,
    recheck,
    resumePath,
    saveResume,
    writeResume,
)
from btorrent.engine.storage import MultiFileWriter
from tests.builders import buildTorrent, fakeMetainfo

HASH = bytes(range(20))
OTHER = bytes(range(1, 21))
STATS = [(100, 1_700_000_000_123_456_789), None, (0, 5)]


class BitfieldTests(SynchronousTestCase):
    """
    Packing and unpacking BEP 3 bitfields.
    """

    def test_packing(self) -> None:
        """
        Piece 0 is the high bit of the first byte; spare bits stay clear.
        """
        self.assertEqual(bitfieldFromPieces([True] + [False] * 8), b"\x80\x00")
        self.assertEqual(bitfieldFromPieces([False] * 7 + [True, True]), b"\x01\x80")
        self.assertEqual(bitfieldFromPieces([]), b"")
        self.assertEqual(piecesFromBitfield(b"\x01\x80", 9), [False] * 7 + [True, True])

    def test_badBitfields(self) -> None:
        """
        The wrong length or spare bits set raise L{ValueError}.
        """
        self.assertRaises(ValueError, piecesFromBitfield, b"\x00", 9)
        self.assertRaises(ValueError, piecesFromBitfield, b"\x00\x40", 9)
        self.assertRaises(ValueError, piecesFromBitfield, b"\x00\x00\x00", 9)

    @given(st.lists(st.booleans(), max_size=100))
    def test_roundTripProperty(self, pieces) -> None:
        """
        Unpacking a packed list gives it back.
        """
        self.assertEqual(
            piecesFromBitfield(bitfieldFromPieces(pieces), len(pieces)), pieces
        )


class ResumeFileTests(SynchronousTestCase):
    """
    Writing and reading resume files.
    """

    def setUp(self) -> None:
        self.stateDir = os.path.abspath(self.mktemp())
        self.messages = []
        globalLogPublisher.addObserver(self.messages.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.messages.append)

    def test_roundTrip(self) -> None:
        """
        What L{writeResume} saves, L{readResume} returns while the files are
        unchanged; the state directory is created; the file is named by the
        info-hash and holds a version.
        """
        have = bitfieldFromPieces([True, False, True] * 4 + [True])
        writeResume(self.stateDir, HASH, have, 13, STATS)
        self.assertEqual(readResume(self.stateDir, HASH, 13, STATS), have)
        path = os.path.join(self.stateDir, HASH.hex() + ".resume")
        self.assertEqual(resumePath(self.stateDir, HASH), path)
        self.assertEqual(os.listdir(self.stateDir), [HASH.hex() + ".resume"])
        with open(path, "rb") as f:
            value = json.loads(f.read())
        self.assertEqual(RESUME_VERSION, 2)
        self.assertEqual(
            value,
            {
                "version": 2,
                "infoHash": HASH.hex(),
                "pieces": 13,
                "have": base64.b64encode(have).decode(),
                "files": [[100, 1_700_000_000_123_456_789], [], [0, 5]],
            },
        )

    def test_overwrite(self) -> None:
        """
        A second write replaces the first; torrents do not share files.
        """
        writeResume(self.stateDir, HASH, b"\x00", 3, STATS)
        writeResume(self.stateDir, HASH, b"\xe0", 3, STATS)
        writeResume(self.stateDir, OTHER, b"\x40", 3, STATS)
        self.assertEqual(readResume(self.stateDir, HASH, 3, STATS), b"\xe0")
        self.assertEqual(readResume(self.stateDir, OTHER, 3, STATS), b"\x40")

    def test_badArguments(self) -> None:
        """
        L{writeResume} refuses a bad info-hash, a bitfield that does not fit
        the piece count and bad file statistics, and writes nothing.
        """
        self.assertRaises(ValueError, writeResume, self.stateDir, b"x", b"", 0, [])
        self.assertRaises(ValueError, writeResume, self.stateDir, HASH, b"\x00", 9, [])
        self.assertRaises(ValueError, writeResume, self.stateDir, HASH, b"\x01", 7, [])
        self.assertRaises(
            ValueError, writeResume, self.stateDir, HASH, b"", 0, [(-1, 0)]
        )
        self.assertRaises(
            ValueError, writeResume, self.stateDir, HASH, b"", 0, [(1.5, 0)]
        )
        self.assertFalse(os.path.exists(resumePath(self.stateDir, HASH)))

    def test_changedFiles(self) -> None:
        """
        A file whose size or mtime changed, that appeared or vanished, or a
        different number of files, all make the data unusable.
        """
        writeResume(self.stateDir, HASH, b"\x80", 1, STATS)
        for current in [
            [(101, STATS[0][1]), None, (0, 5)],
            [(100, STATS[0][1] + 1), None, (0, 5)],
            [STATS[0], (0, 0), (0, 5)],
            [STATS[0], None, None],
            STATS[:2],
            STATS + [None],
        ]:
            self.assertIsNone(readResume(self.stateDir, HASH, 1, current))
        self.assertEqual(readResume(self.stateDir, HASH, 1, list(STATS)), b"\x80")

    def assertRefused(self, data: bytes, reason: str, pieceCount: int = 9) -> None:
        """
        Resume data C{data} is refused with a reason containing C{reason},
        and L{readResume} logs it and returns C{None}.
        """
        os.makedirs(self.stateDir, exist_ok=True)
        with open(resumePath(self.stateDir, HASH), "wb") as f:
            f.write(data)
        e = self.assertRaises(
            ResumeError, loadResume, self.stateDir, HASH, pieceCount, STATS
        )
        self.assertIn(reason, str(e))
        del self.messages[:]
        self.assertIsNone(readResume(self.stateDir, HASH, pieceCount, STATS))
        self.assertEqual(len(self.messages), 1)
        self.assertEqual(self.messages[0]["reason"], str(e))

    def goodValue(self) -> dict:
        """
        Version 1 resume data (bencoded), as older daemons wrote it.
        """
        return {
            b"version": 1,
            b"info-hash": HASH,
            b"pieces": 9,
            b"have": b"\xff\x80",
            b"files": [[100, STATS[0][1]], [], [0, 5]],
        }

    def test_corrupt(self) -> None:
        """
        Missing, truncated, garbage, for another hash, another piece count,
        another version, malformed fields: all refused with a reason.
        """
        good = bencode.encode(self.goodValue())
        os.makedirs(self.stateDir)
        with open(resumePath(self.stateDir, HASH), "wb") as f:
            f.write(good)
        self.assertEqual(loadResume(self.stateDir, HASH, 9, STATS), b"\xff\x80")
        os.unlink(resumePath(self.stateDir, HASH))
        self.assertIsNone(readResume(self.stateDir, HASH, 9, STATS))
        self.assertEqual(self.messages[-1]["reason"], "no resume data")
        self.assertRefused(good[:-1], "corrupt")
        self.assertRefused(good[: len(good) // 2], "corrupt")
        self.assertRefused(b"", "corrupt")
        self.assertRefused(b"\x00\xffgarbage", "corrupt")
        self.assertRefused(good + b"x", "corrupt")
        self.assertRefused(b"li1ee", "not a dictionary")
        self.assertRefused(good, "pieces", pieceCount=10)
        self.assertRefused(good, "pieces", pieceCount=8)
        for key, value, reason in [
            (b"info-hash", OTHER, "another info-hash"),
            (b"info-hash", b"", "another info-hash"),
            (b"version", 2, "version"),
            (b"version", b"1", "version"),
            (b"pieces", b"9", "pieces"),
            (b"have", b"\xff\xc0", "spare bits"),
            (b"have", b"\xff", "bitfield"),
            (b"have", 7, "bitfield"),
            (b"files", b"x", "files"),
            (b"files", [[1]], "statistics"),
            (b"files", [[1, b"2"]], "statistics"),
            (b"files", [[-1, 2]], "statistics"),
            (b"files", [b"x"], "statistics"),
            (b"files", [[1, 2]], "for 1 files, the torrent has 3"),
        ]:
            value_ = self.goodValue()
            value_[key] = value
            self.assertRefused(bencode.encode(value_), reason)
        for key in self.goodValue():
            value_ = self.goodValue()
            del value_[key]
            self.assertRefused(bencode.encode(value_), "")

    def goodJSON(self) -> dict:
        return {
            "version": 2,
            "infoHash": HASH.hex(),
            "pieces": 9,
            "have": base64.b64encode(b"\xff\x80").decode(),
            "files": [[100, STATS[0][1]], [], [0, 5]],
        }

    def test_corruptJSON(self) -> None:
        """
        Version 2 (JSON) resume data: read when good; truncated, garbage,
        wrong types, for another hash or piece count, refused with a
        reason.
        """
        good = json.dumps(self.goodJSON()).encode()
        os.makedirs(self.stateDir)
        with open(resumePath(self.stateDir, HASH), "wb") as f:
            f.write(good)
        self.assertEqual(loadResume(self.stateDir, HASH, 9, STATS), b"\xff\x80")
        self.assertRefused(good[:-1], "corrupt")
        self.assertRefused(good + b"x", "corrupt")
        self.assertRefused(b"{" * 100000, "corrupt")
        self.assertRefused(b"[1]", "corrupt")
        self.assertRefused(good, "pieces", pieceCount=10)
        for key, value, reason in [
            ("infoHash", OTHER.hex(), "another info-hash"),
            ("infoHash", "zz", "another info-hash"),
            ("infoHash", 7, "another info-hash"),
            ("version", 1, "version"),
            ("version", True, "version"),
            ("version", "2", "version"),
            ("pieces", 9.0, "pieces"),
            ("pieces", True, "pieces"),
            ("have", "%%%", "base64"),
            ("have", base64.b64encode(b"\xff\xc0").decode(), "spare bits"),
            ("have", [255, 128], "bitfield"),
            ("files", {}, "files"),
            ("files", [[1, 2.5]], "statistics"),
            ("files", [[True, 2]], "statistics"),
            ("files", [[1, 2]], "for 1 files, the torrent has 3"),
        ]:
            value_ = self.goodJSON()
            value_[key] = value
            self.assertRefused(json.dumps(value_).encode(), reason)
        for key in self.goodJSON():
            value_ = self.goodJSON()
            del value_[key]
            self.assertRefused(json.dumps(value_).encode(), "")
        self.assertRefused(b'{"version": 2, "pieces": 1' + b"0" * 5000 + b"}", "")

    def test_tooLarge(self) -> None:
        """
        A resume file larger than L{MAX_RESUME_SIZE} is refused.
        """
        self.patch(resumeModule, "MAX_RESUME_SIZE", 10)
        self.assertRefused(b"0123456789A", "too large")

    def test_directory(self) -> None:
        """
        A directory in place of the resume file is refused.
        """
        os.makedirs(resumePath(self.stateDir, HASH))
        self.assertIsNone(readResume(self.stateDir, HASH, 9, STATS))
        self.assertIn("cannot read", self.messages[-1]["reason"])

    @settings(max_examples=200, deadline=None)
    @given(
        st.binary(max_size=200)
        | st.builds(
            bencode.encode,
            st.dictionaries(
                st.sampled_from(
                    [b"version", b"info-hash", b"pieces", b"have", b"files"]
                ),
                st.integers(-3, 10)
                | st.binary(max_size=22)
                | st.lists(
                    st.lists(st.integers(-2, 200), max_size=3) | st.binary(max_size=2),
                    max_size=4,
                ),
            ),
        )
    )
    def test_garbageProperty(self, data) -> None:
        """
        Whatever the file holds, L{loadResume} either returns a valid
        bitfield or raises L{ResumeError}.
        """
        os.makedirs(self.stateDir, exist_ok=True)
        with open(resumePath(self.stateDir, HASH), "wb") as f:
            f.write(data)
        try:
            have = loadResume(self.stateDir, HASH, 9, STATS)
        except ResumeError:
            return
        self.assertEqual(len(piecesFromBitfield(have, 9)), 9)

    @settings(max_examples=200, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(["version", "infoHash", "pieces", "have", "files"]),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(-3, 10)
                | st.floats(allow_nan=False)
                | st.sampled_from([HASH.hex(), "/4A=", "/4A", "", 2]),
                lambda inner: st.lists(inner, max_size=3),
                max_leaves=8,
            ),
        )
    )
    def test_garbageJSONProperty(self, value) -> None:
        """
        Whatever JSON the file holds, L{loadResume} either returns a valid
        bitfield or raises L{ResumeError}.
        """
        os.makedirs(self.stateDir, exist_ok=True)
        with open(resumePath(self.stateDir, HASH), "wb") as f:
            f.write(json.dumps(value).encode())
        try:
            have = loadResume(self.stateDir, HASH, 9, STATS)
        except ResumeError:
            return
        self.assertEqual(len(piecesFromBitfield(have, 9)), 9)

    def test_atomicFsyncFailure(self) -> None:
        """
        If the new data cannot be flushed, the previous resume file stays as
        it was and no temporary file is left behind.
        """
        writeResume(self.stateDir, HASH, b"\x80", 1, STATS)

        def failingFsync(fd):
            raise OSError(5, "Input/output error")

        self.patch(resumeModule.os, "fsync", failingFsync)
        self.assertRaises(OSError, writeResume, self.stateDir, HASH, b"\x00", 1, STATS)
        self.assertEqual(os.listdir(self.stateDir), [HASH.hex() + ".resume"])
        self.assertEqual(readResume(self.stateDir, HASH, 1, STATS), b"\x80")

    def test_atomicWriteFailure(self) -> None:
        """
        A failure half-way through writing (disk full) leaves the previous
        file intact.
        """
        writeResume(self.stateDir, HASH, b"\x80", 1, STATS)
        realFdopen = os.fdopen

        class HalfFile:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[:5])
                self.f.flush()
                raise OSError(28, "No space left on device")

        self.patch(
            resumeModule.os, "fdopen", lambda fd, mode: HalfFile(realFdopen(fd, mode))
        )
        self.assertRaises(OSError, writeResume, self.stateDir, HASH, b"\x00", 1, STATS)
        self.assertEqual(os.listdir(self.stateDir), [HASH.hex() + ".resume"])
        self.assertEqual(readResume(self.stateDir, HASH, 1, STATS), b"\x80")

    def test_atomicRenameFailure(self) -> None:
        """
        If the rename fails, the temporary file is removed and the old data
        is still read.
        """
        writeResume(self.stateDir, HASH, b"\x80", 1, STATS)

        def failingReplace(src, dst):
            raise OSError(1, "Operation not permitted")

        self.patch(resumeModule.os, "replace", failingReplace)
        self.assertRaises(OSError, writeResume, self.stateDir, HASH, b"\x00", 1, STATS)
        self.assertEqual(os.listdir(self.stateDir), [HASH.hex() + ".resume"])
        self.assertEqual(readResume(self.stateDir, HASH, 1, STATS), b"\x80")


# Pieces of 16 KiB over files that start, end and straddle anywhere; a short
# last piece; 0-byte and padding files.
LAYOUT = [
    (("a", "one"), 40000),
    (("a", "empty"), 0),
    (("a", "b", "two"), 1),
    (("three",), 70000),
    ((".pad", "x"), 7),
    (("c", "d", "e", "four"), 50000),
    (("five",), 16384),
    (("six",), 9),
]
PADDING = [4]


class RecheckTests(SynchronousTestCase):
    """
    L{recheck} hashes what is on disk.
    """

    def setUp(self) -> None:
        self.meta, self.data = fakeMetainfo(LAYOUT, 16384, padding=PADDING)
        self.downloadDir = os.path.abspath(self.mktemp())
        self.storage = MultiFileWriter(self.meta, self.downloadDir, maxOpenFiles=3)
        self.addCleanup(self.storage.close)

    def writeAll(self) -> None:
        self.storage.open()
        for i in range(self.meta.pieceCount):
            self.storage.writePiece(i, self.data[i * 16384 : (i + 1) * 16384])
        self.storage.close()

    def path(self, fileIndex: int) -> str:
        return self.storage.paths[fileIndex]

    def test_allGood(self) -> None:
        """
        Complete data checks out entirely, whatever the chunk size; progress
        is reported in order, ending at the total.
        """
        self.writeAll()
        count = self.meta.pieceCount
        self.assertEqual(count, 11)
        for chunkSize in [1, 16384, 50000, 1 << 20]:
            calls = []
            result = recheck(
                self.storage,
                self.meta,
                progress=lambda done, total, calls=calls: calls.append((done, total)),
                chunkSize=chunkSize,
                threads=3,
            )
            self.assertEqual(result, [True] * count)
            self.assertEqual(calls[-1], (count, count))
            self.assertEqual(calls, sorted(calls))

    def test_nothing(self) -> None:
        """
        Before anything exists, every piece is missing and nothing is
        created.
        """
        self.assertEqual(recheck(self.storage, self.meta), [False] * 11)
        self.assertFalse(os.path.exists(self.downloadDir))

    def recordReads(self, storage) -> list:
        """
        Record the C{(offset, length)} of every C{readInto} on C{storage}.
        """
        reads = []
        realReadInto = storage.readInto

        def readInto(offset, buffer):
            reads.append((offset, len(buffer)))
            realReadInto(offset, buffer)

        storage.readInto = readInto
        return reads

    def test_sparse(self) -> None:
        """
        Freshly opened, sparse files hold no piece, and nothing is read to
        find out.
        """
        self.storage.open()
        reads = self.recordReads(self.storage)
        self.assertEqual(recheck(self.storage, self.meta), [False] * 11)
        self.assertEqual(reads, [])

    def test_holes(self) -> None:
        """
        Only pieces that hold written data are read; a piece of zeros lying
        in holes is had without reading it.  (Files here start on 4 KiB
        boundaries: holes are found per filesystem block, so a piece sharing
        a block with written data would be read too.)
        """
        content = bytearray(os.urandom(11 * 16384 + 100))
        content[2 * 16384 : 3 * 16384] = bytes(16384)
        meta, data = fakeMetainfo(
            [(("a",), 5 * 16384), (("b",), 6 * 16384 + 100)],
            16384,
            data=bytes(content),
        )
        storage = MultiFileWriter(meta, os.path.abspath(self.mktemp()))
        storage.open()
        for i in [0, 7, 11]:
            storage.writePiece(i, data[i * 16384 : (i + 1) * 16384])
        reads = self.recordReads(storage)
        expected = [False] * 12
        expected[0] = expected[2] = expected[7] = expected[11] = True
        self.assertEqual(recheck(storage, meta, chunkSize=16384), expected)
        self.assertEqual(
            reads,
            [(0, 16384), (7 * 16384, 16384), (11 * 16384, 100)],
        )
        storage.close()

    def test_corruption(self) -> None:
        """
        Pieces overwritten with garbage, in a missing file or a truncated
        file are exactly the ones found bad; a file longer than its entry
        does not matter.
        """
        self.writeAll()
        expected = [True] * 11
        # Garbage in "three" at torrent offset 50000 (piece 3).
        with open(self.path(3), "r+b") as f:
            f.seek(50000 - 40001)
            f.write(b"garbage")
        expected[3] = False
        # One byte flipped at the very end of "four" (piece 9, shared with
        # "five"'s start).
        with open(self.path(5), "r+b") as f:
            f.seek(49999)
            old = f.read(1)
            f.seek(49999)
            f.write(bytes([old[0] ^ 1]))
        expected[9] = False
        # "two" (1 byte at offset 40000, piece 2) is missing.
        os.unlink(self.path(2))
        expected[2] = False
        # "six" (the short last piece's end) is truncated.
        os.truncate(self.path(7), 4)
        expected[10] = False
        # "one" is longer than it should be: harmless.
        with open(self.path(0), "ab") as f:
            f.write(b"extra")
        self.assertEqual(recheck(self.storage, self.meta, chunkSize=40000), expected)

    def test_missingDirectory(self) -> None:
        """
        A whole missing directory makes its files' pieces bad, and pieces
        sharing nothing with them good.
        """
        self.writeAll()
        for i in [2, 1, 0]:
            os.unlink(self.path(i))
        os.rmdir(os.path.dirname(self.path(2)))
        os.rmdir(os.path.dirname(self.path(0)))
        result = recheck(self.storage, self.meta)
        # "one" and "two" span bytes 0..40000: pieces 0, 1 and 2.
        self.assertEqual(result, [False] * 3 + [True] * 8)

    def test_readFailure(self) -> None:
        """
        A file vanishing between the look at the files and the read makes
        its pieces bad rather than failing the recheck.
        """
        self.writeAll()
        realStats = self.storage.fileStats

        def statsThenUnlink():
            stats = realStats()
            os.unlink(self.path(6))
            return stats

        self.storage.fileStats = statsThenUnlink
        result = recheck(self.storage, self.meta, chunkSize=16384)
        # "five" is bytes 160007..176391: pieces 9 and 10.
        expected = [True] * 11
        expected[9] = expected[10] = False
        self.assertEqual(result, expected)

    def test_stop(self) -> None:
        """
        When C{stop()} returns true, L{RecheckStopped} is raised with the
        results so far.
        """
        self.writeAll()
        calls = []

        def stop():
            calls.append(None)
            return len(calls) > 2

        e = self.assertRaises(
            RecheckStopped,
            recheck,
            self.storage,
            self.meta,
            stop=stop,
            chunkSize=16384,
            threads=1,
        )
        self.assertEqual(e.pieces, [True] * 2 + [False] * 9)

    def test_wrongHashCount(self) -> None:
        """
        Metainfo whose hashes do not match the layout is refused.
        """
        other, _ = fakeMetainfo(LAYOUT[:3], 16384)
        self.assertRaises(ValueError, recheck, self.storage, other)

    def test_resumeAfterRecheck(self) -> None:
        """
        The whole cycle: recheck, save the result with L{saveResume}, read it
        back while the files are unchanged; any later write invalidates it.
        """
        self.writeAll()
        os.unlink(self.path(7))
        self.storage.open()
        pieces = recheck(self.storage, self.meta)
        self.assertEqual(pieces, [True] * 10 + [False])
        stateDir = os.path.abspath(self.mktemp())
        have = bitfieldFromPieces(pieces)
        saveResume(self.storage, stateDir, self.meta.infoHash, have, 11)
        stats = self.storage.fileStats()
        self.assertEqual(readResume(stateDir, self.meta.infoHash, 11, stats), have)
        self.storage.writePiece(10, self.data[10 * 16384 :])
        os.utime(self.path(7), ns=(0, stats[7][1] + 1))
        self.assertIsNone(
            readResume(stateDir, self.meta.infoHash, 11, self.storage.fileStats())
        )

    def test_saveResumeOrder(self) -> None:
        """
        L{saveResume} syncs the storage before taking the file statistics
        it records.
        """
        calls = []
        storage = self.storage

        class Recording:
            def sync(self):
                calls.append("sync")
                storage.sync()

            def fileStats(self):
                calls.append("fileStats")
                return storage.fileStats()

        storage.open()
        stateDir = os.path.abspath(self.mktemp())
        saveResume(Recording(), stateDir, HASH, bytes(2), 11)
        self.assertEqual(calls, ["sync", "fileStats"])
        self.assertEqual(readResume(stateDir, HASH, 11, storage.fileStats()), bytes(2))


class RealMetainfoTests(SynchronousTestCase):
    """
    Storage and recheck with L{btorrent.codec.metainfo} values, on data that
    C{metainfo.create} hashed.
    """

    def test_multiFile(self) -> None:
        """
        A directory tree turned into a torrent by C{metainfo.create} rechecks
        as complete in place; after a byte changes, that piece only fails;
        data written by the writer into a new directory is the same tree.
        """
        downloadDir = os.path.abspath(self.mktemp())
        root = os.path.join(downloadDir, "tree")
        tree = [("a/b/c/deep", 40000), ("a/empty", 0), ("one", 1), ("z", 70001)]
        built = buildTorrent(root, tree)
        meta = built.metainfo
        storage = MultiFileWriter(meta, downloadDir)
        self.assertEqual(recheck(storage, meta), [True] * meta.pieceCount)
        with open(os.path.join(root, "z"), "r+b") as f:
            f.seek(70000)
            f.write(bytes([built.read("z")[70000] ^ 0xFF]))
        expected = [True] * meta.pieceCount
        expected[-1] = False
        self.assertEqual(recheck(storage, meta), expected)

        # Copy piece by piece into a fresh directory.
        other = os.path.abspath(self.mktemp())
        copy = MultiFileWriter(meta, other)
        copy.open()
        for i in range(meta.pieceCount - 1):
            copy.writePiece(i, storage.readPiece(i))
        copy.close()
        storage.close()
        self.assertEqual(recheck(copy, meta), [True] * (meta.pieceCount - 1) + [False])
        for relative in built.files:
            if relative != "z":
                with open(os.path.join(other, "tree", relative), "rb") as f:
                    self.assertEqual(f.read(), built.read(relative))

    def test_singleFile(self) -> None:
        """
        A single-file torrent made by C{metainfo.create} rechecks in place.
        """
        downloadDir = os.path.abspath(self.mktemp())
        meta = buildTorrent(
            downloadDir, [("file.bin", 100000)], 32768, single=True
        ).metainfo
        storage = MultiFileWriter(meta, downloadDir)
        self.assertEqual(recheck(storage, meta), [True] * 4)
