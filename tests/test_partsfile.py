"""
Tests for L{btorrent.engine.partsfile} and the file selection of
L{btorrent.engine.storage.MultiFileWriter}: unwanted files are never
created, the bytes of theirs that straddling pieces hold live in the parts
file, reads give the whole piece back, fast-resume data and the recheck
understand it, and a file made wanted gets its bytes moved in.
"""

from __future__ import annotations

import os
import threading

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.engine import resume
from btorrent.engine.partsfile import MAGIC, PartsFile
from btorrent.engine.storage import MultiFileWriter
from tests.builders import fakeMetainfo

PIECE = 16384

#: Pieces of 16 KiB: a.bin covers pieces 0-2, b.bin 2-4 (its edges in
#: pieces 2 and 4, piece 3 all its own), c.bin the end of piece 4.
FILES = [
    (("a.bin",), 40000),
    (("empty",), 0),
    (("sub", "b.bin"), 30000),
    (("sub", "deeper", "c.bin"), 5000),
    (("z", "only.bin"), 20000),
]
B = 2
ONLY = 4


class PartsFileTests(SynchronousTestCase):
    def setUp(self):
        self.path = os.path.join(os.path.abspath(self.mktemp()), "x.parts")

    def test_roundTrip(self):
        parts = PartsFile(self.path, 64, 10)
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(parts.pieces, frozenset())
        parts.write(7, 10, b"hello")
        parts.write(3, 0, b"x" * 64)
        self.assertEqual(parts.pieces, {3, 7})
        target = bytearray(8)
        self.assertTrue(parts.read(7, 8, target))
        self.assertEqual(bytes(target), b"\0\0hello\0")
        self.assertFalse(parts.read(5, 0, target))
        self.assertEqual(bytes(target), bytes(8))
        parts.sync()
        parts.close()
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(8), MAGIC)
        again = PartsFile(self.path, 64, 10)
        self.assertEqual(again.pieces, {3, 7})
        target = bytearray(64)
        again.read(3, 0, target)
        self.assertEqual(bytes(target), b"x" * 64)

    def test_freeAndReuse(self):
        parts = PartsFile(self.path, 32, 10)
        parts.write(1, 0, b"a" * 32)
        parts.write(2, 0, b"b" * 32)
        size = os.path.getsize(self.path)
        parts.free(1)
        parts.write(5, 0, b"c" * 32)
        self.assertEqual(os.path.getsize(self.path), size)
        target = bytearray(32)
        parts.read(5, 0, target)
        self.assertEqual(bytes(target), b"c" * 32)
        parts.free(2)
        parts.free(5)
        parts.free(9)
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(parts.pieces, frozenset())
        self.assertIsNone(parts.stat())

    def test_badRanges(self):
        parts = PartsFile(self.path, 32, 4)
        self.assertRaises(ValueError, parts.write, 4, 0, b"x")
        self.assertRaises(ValueError, parts.write, -1, 0, b"x")
        self.assertRaises(ValueError, parts.write, 0, 30, b"xxx")
        self.assertRaises(ValueError, PartsFile, self.path, 0, 4)

    def test_foreignFileDiscarded(self):
        """
        A file that is not a parts file of this piece length is dropped.
        """
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, "wb") as f:
            f.write(b"garbage" * 100)
        parts = PartsFile(self.path, 32, 4)
        self.assertEqual(parts.pieces, frozenset())
        self.assertFalse(os.path.exists(self.path))
        other = PartsFile(self.path, 64, 4)
        other.write(1, 0, b"x")
        other.close()
        self.assertEqual(PartsFile(self.path, 32, 4).pieces, frozenset())

    def test_hostileSlots(self):
        """
        Slots naming pieces beyond the torrent, or a piece twice, are
        freed; a torn last slot still counts.
        """
        parts = PartsFile(self.path, 16, 4)
        for index in range(3):
            parts.write(index, 0, bytes([index + 1]) * 16)
        parts.close()
        with open(self.path, "r+b") as f:
            f.seek(16)
            f.write((99).to_bytes(8, "big"))
            f.seek(16 + 24)
            f.write((3).to_bytes(8, "big"))  # piece 2 again
            f.truncate(16 + 2 * 24 + 8 + 4)
        parts = PartsFile(self.path, 16, 4)
        self.assertEqual(parts.pieces, {2})
        target = bytearray(16)
        parts.read(2, 0, target)
        # Piece 2 now in slot 1, which holds piece 1's bytes.
        self.assertEqual(bytes(target), b"\x02" * 16)


class SelectionMixin:
    def setUp(self):
        self.meta, self.data = fakeMetainfo(FILES, PIECE)
        self.base = os.path.abspath(self.mktemp())
        self.downloadDir = os.path.join(self.base, "download")
        self.stateDir = os.path.join(self.base, "state")
        self.partsPath = os.path.join(self.stateDir, "t.parts")
        self.root = os.path.join(self.downloadDir, "torrent")

    def writer(self, unwanted=(B,)):
        writer = MultiFileWriter(self.meta, self.downloadDir)
        writer.setUnwanted(unwanted, self.partsPath)
        writer.open()
        self.addCleanup(writer.close)
        return writer

    def piece(self, index):
        start = index * PIECE
        return self.data[start : start + self.meta.pieceSize(index)]

    def fileBytes(self, index):
        entry = self.meta.files[index]
        return self.data[entry.offset : entry.offset + entry.length]

    def path(self, index):
        return os.path.join(self.root, *self.meta.files[index].path)

    def wantedPieces(self, unwanted):
        wanted = set()
        for index, entry in enumerate(self.meta.files):
            if index in unwanted or not entry.length:
                continue
            first = entry.offset // PIECE
            last = (entry.offset + entry.length - 1) // PIECE
            wanted.update(range(first, last + 1))
        return sorted(wanted)


class StorageSelectionTests(SelectionMixin, SynchronousTestCase):
    def test_unwantedNotCreated(self):
        self.writer(unwanted=(B, 1))
        self.assertFalse(os.path.exists(self.path(B)))
        self.assertFalse(os.path.exists(self.path(1)))
        self.assertTrue(os.path.isfile(self.path(0)))
        # Its directory exists: another wanted file lives below it.
        self.assertTrue(os.path.isdir(os.path.join(self.root, "sub", "deeper")))
        self.downloadDir = os.path.join(self.base, "other")
        self.root = os.path.join(self.downloadDir, "torrent")
        writer = self.writer(unwanted=(ONLY,))
        self.assertFalse(os.path.exists(os.path.join(self.root, "z")))
        self.assertEqual(writer.redirected, {ONLY})

    def test_straddlingPieces(self):
        """
        The edge pieces of an unwanted file are written whole: the wanted
        bytes in their files, the rest in the parts file; reading them
        gives the whole piece; the parts file holds only those pieces.
        """
        writer = self.writer()
        for index in self.wantedPieces({B}):
            writer.writePiece(index, self.piece(index))
        self.assertEqual(writer.partsPieces(), {2, 4})
        for index in self.wantedPieces({B}):
            self.assertEqual(writer.readPiece(index), self.piece(index))
            self.assertEqual(
                writer.readBlock(index, 100, 20000 % PIECE),
                self.piece(index)[100 : 100 + 20000 % PIECE],
            )
        with open(self.path(0), "rb") as f:
            self.assertEqual(f.read(), self.fileBytes(0))
        with open(self.path(3), "rb") as f:
            self.assertEqual(f.read(), self.fileBytes(3))
        self.assertFalse(os.path.exists(self.path(B)))
        self.assertTrue(os.path.exists(self.partsPath))
        # Only slots for two pieces.
        self.assertLessEqual(os.path.getsize(self.partsPath), 16 + 2 * (8 + PIECE))
        buffer = bytearray(2 * PIECE)
        writer.readInto(2 * PIECE, buffer)
        self.assertEqual(buffer[:PIECE], self.piece(2))

    def test_fileStatsAndResume(self):
        """
        The redirected file's statistics are the parts file's: fast-resume
        data saved now is trusted, and no longer once the parts file
        changed.
        """
        writer = self.writer()
        for index in (0, 1, 2):
            writer.writePiece(index, self.piece(index))
        stats = writer.fileStats()
        self.assertEqual(stats[B], writer.parts.stat())
        self.assertEqual(stats[1][0], 0)
        count = self.meta.pieceCount
        have = resume.bitfieldFromPieces([i in (0, 1, 2) for i in range(count)])
        resume.saveResume(writer, self.stateDir, self.meta.infoHash, have, count)
        self.assertEqual(
            resume.readResume(
                self.stateDir, self.meta.infoHash, count, writer.fileStats()
            ),
            have,
        )
        writer.writePiece(4, self.piece(4))
        self.assertIsNone(
            resume.readResume(
                self.stateDir, self.meta.infoHash, count, writer.fileStats()
            )
        )

    def test_recheck(self):
        """
        A recheck finds the straddling pieces good through the parts file,
        and the pieces wholly in the unwanted file missing, without error.
        """
        writer = self.writer()
        for index in self.wantedPieces({B}):
            writer.writePiece(index, self.piece(index))
        writer.sync()
        writer.close()
        again = self.writer()
        self.assertEqual(again.redirected, {B})
        self.assertEqual(again.partsPieces(), {2, 4})
        results = resume.recheck(again, self.meta, threads=2)
        wanted = self.wantedPieces({B})
        self.assertEqual([i for i, good in enumerate(results) if good], wanted)
        self.assertNotIn(3, wanted)

    def test_wantedAgainWhileOpen(self):
        """
        A redirected file made wanted is created with the bytes the parts
        file kept, the slots go (and the parts file with the last), and
        every piece reads back the same.
        """
        writer = self.writer()
        for index in self.wantedPieces({B}):
            writer.writePiece(index, self.piece(index))
        writer.setUnwanted((), self.partsPath)
        self.assertEqual(writer.redirected, frozenset())
        self.assertTrue(os.path.isfile(self.path(B)))
        self.assertFalse(os.path.exists(self.partsPath))
        writer.writePiece(3, self.piece(3))
        with open(self.path(B), "rb") as f:
            self.assertEqual(f.read(), self.fileBytes(B))
        for index in range(self.meta.pieceCount):
            self.assertEqual(writer.readPiece(index), self.piece(index))
        self.assertEqual(
            resume.recheck(writer, self.meta), [True] * self.meta.pieceCount
        )

    def test_wantedAgainKeepsOtherSlots(self):
        writer = self.writer(unwanted=(B, ONLY))
        for index in self.wantedPieces({B, ONLY}):
            writer.writePiece(index, self.piece(index))
        self.assertEqual(writer.partsPieces(), {2, 4})
        writer.setUnwanted((ONLY,))
        # Piece 4 also holds bytes of z/only.bin, still redirected.
        self.assertEqual(writer.partsPieces(), {4})
        self.assertEqual(writer.readPiece(4), self.piece(4))

    def test_wantedWhileStopped(self):
        """
        Made wanted between two runs: the next open creates the file and
        moves its bytes in.
        """
        writer = self.writer()
        for index in self.wantedPieces({B}):
            writer.writePiece(index, self.piece(index))
        writer.sync()
        writer.close()
        again = MultiFileWriter(self.meta, self.downloadDir)
        again.setUnwanted((), self.partsPath)
        again.open()
        self.addCleanup(again.close)
        self.assertEqual(again.redirected, frozenset())
        self.assertFalse(os.path.exists(self.partsPath))
        for index in self.wantedPieces({B}):
            self.assertEqual(again.readPiece(index), self.piece(index))

    def test_unwantedOnDiskStaysInUse(self):
        """
        A file already on disk is used whether wanted or not.
        """
        writer = self.writer(unwanted=())
        writer.setUnwanted((B,))
        self.assertEqual(writer.redirected, frozenset())
        writer.writePiece(2, self.piece(2))
        self.assertEqual(writer.partsPieces(), frozenset())
        writer.close()
        again = self.writer()
        self.assertEqual(again.redirected, frozenset())

    def test_trySetUnwanted(self):
        """
        Before the first open, and while nothing holds the selection (an
        open under way in a thread does), the selection is taken at once;
        otherwise, and once opened (even closed since), it is left to
        L{MultiFileWriter.setUnwanted} in a thread.
        """
        writer = MultiFileWriter(self.meta, self.downloadDir)
        self.assertTrue(writer.trySetUnwanted((B,)))
        self.assertEqual(writer.unwanted, {B})
        with writer._selecting:
            self.assertFalse(writer.trySetUnwanted(()))
        self.assertEqual(writer.unwanted, {B})
        self.assertRaises(ValueError, writer.trySetUnwanted, (-1,))
        writer.open()
        writer.close()
        self.assertFalse(writer.trySetUnwanted(()))
        self.assertEqual(writer.unwanted, {B})

    def test_badIndex(self):
        writer = MultiFileWriter(self.meta, self.downloadDir)
        writer.setUnwanted((B,))
        self.assertRaises(ValueError, writer.setUnwanted, (10**9,))
        self.assertRaises(ValueError, writer.setUnwanted, (-1,))
        self.assertEqual(writer.unwanted, {B})

    def test_defaultPartsPath(self):
        writer = MultiFileWriter(self.meta, self.downloadDir)
        writer.setUnwanted((B,))
        writer.open()
        self.addCleanup(writer.close)
        writer.writePiece(2, self.piece(2))
        self.assertTrue(
            os.path.exists(
                os.path.join(
                    self.downloadDir, "." + self.meta.infoHash.hex() + ".parts"
                )
            )
        )

    def test_concurrentWritesWhileMoving(self):
        """
        Pieces written by other threads while a file's bytes move out of
        the parts file all end up where they belong.
        """
        meta, data = fakeMetainfo(
            [
                (
                    (("a", f"g{i}"), 5000 + i * 700)
                    if i % 2
                    else (("d", f"f{i}"), 3000 + i * 500)
                )
                for i in range(40)
            ],
            4096,
        )
        self.meta, self.data = meta, data
        unwanted = set(range(0, 40, 2))
        writer = MultiFileWriter(meta, self.downloadDir)
        writer.setUnwanted(unwanted, self.partsPath)
        writer.open()
        self.addCleanup(writer.close)
        wanted = self.wantedPieces(unwanted)
        half = len(wanted) // 2
        for index in wanted[:half]:
            writer.writePiece(index, self.piece(index))
        errors = []

        def writeRest():
            try:
                for index in wanted[half:]:
                    writer.writePiece(index, self.piece(index))
            except Exception as e:  # pragma: no cover (reported below)
                errors.append(e)

        thread = threading.Thread(target=writeRest)
        thread.start()
        writer.setUnwanted(set(range(0, 20, 2)))
        thread.join()
        self.assertEqual(errors, [])
        for index in wanted:
            self.assertEqual(writer.readPiece(index), self.piece(index))


class HostilePartsFileTests(SynchronousTestCase):
    """
    Whatever bytes sit where the parts file lives, loading it is no error:
    garbage is dropped, slots name only real pieces, reads stay within
    the file.
    """

    @settings(max_examples=150, deadline=None)
    @given(
        st.binary(max_size=600),
        st.booleans(),
        st.integers(0, 12),
    )
    def test_anyBytes(self, tail, validHeader, pieceCount):
        path = os.path.join(os.path.abspath(self.mktemp()), "x.parts")
        os.makedirs(os.path.dirname(path))
        head = MAGIC + (16).to_bytes(8, "big") if validHeader else b""
        with open(path, "wb") as f:
            f.write(head + tail)
        parts = PartsFile(path, 16, pieceCount)
        pieces = parts.pieces
        self.assertTrue(all(0 <= p < pieceCount for p in pieces))
        for index in pieces:
            target = bytearray(16)
            self.assertTrue(parts.read(index, 0, target))
        if pieceCount:
            parts.write(pieceCount - 1, 0, b"y" * 16)
            target = bytearray(16)
            parts.read(pieceCount - 1, 0, target)
            self.assertEqual(bytes(target), b"y" * 16)
        parts.close()

    def test_giantPieceLength(self):
        """
        A header naming another piece length (however large) is not ours.
        """
        path = os.path.join(os.path.abspath(self.mktemp()), "x.parts")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(MAGIC + (2**63).to_bytes(8, "big") + b"\0" * 100)
        self.assertEqual(PartsFile(path, 16, 4).pieces, frozenset())
