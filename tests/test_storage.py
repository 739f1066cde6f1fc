"""
Tests for L{btorrent.engine.storage}: the pure L{FileLayout} and the
L{MultiFileWriter} on real files.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import stat
import threading

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.engine import filepool as filepoolModule
from btorrent.engine import storage as storageModule
from btorrent.engine.storage import FileLayout, MultiFileWriter, StorageError
from btorrent.interfaces import IPieceStorage
from tests.builders import fakeEntries, fakeMetainfo
from tests.fakes import FakeFileEntry, FakeMetainfo


class FileLayoutTests(SynchronousTestCase):
    """
    L{FileLayout} maps piece ranges onto file slices.
    """

    def test_straddling(self) -> None:
        """
        A range spanning two or three files gives a slice in each, and
        0-byte files (at the start, middle and end) never appear.
        """
        # offsets:  f0 0B @0, f1 5B @0, f2 0B @5, f3 2B @5, f4 10B @7, f5 0B
        layout = FileLayout(fakeEntries([0, 5, 0, 2, 10, 0]), 4, 17)
        self.assertEqual(layout.pieceCount, 5)
        self.assertEqual(layout.slices(0, 0, 4), [(1, 0, 4)])
        self.assertEqual(layout.slices(1, 0, 4), [(1, 4, 1), (3, 0, 2), (4, 0, 1)])
        self.assertEqual(layout.slices(1, 1, 2), [(3, 0, 2)])
        self.assertEqual(layout.slices(1, 0, 2), [(1, 4, 1), (3, 0, 1)])
        self.assertEqual(layout.slices(4, 0, 1), [(4, 9, 1)])
        self.assertEqual(layout.pieceSize(4), 1)
        self.assertEqual(layout.slices(2, 3, 0), [])

    def test_padding(self) -> None:
        """
        Padding files appear in slices; L{FileLayout.isPadding} flags them.
        """
        layout = FileLayout(fakeEntries([3, 5, 8], padding=[1]), 8, 16)
        self.assertEqual(layout.slices(0, 0, 8), [(0, 0, 3), (1, 0, 5)])
        self.assertFalse(layout.isPadding(0))
        self.assertTrue(layout.isPadding(1))
        self.assertEqual(layout.slices(1, 0, 8), [(2, 0, 8)])

    def test_rangeChecks(self) -> None:
        """
        Out-of-range indexes, begins and lengths raise L{ValueError}.
        """
        layout = FileLayout(fakeEntries([10, 7]), 8, 17)
        for index, begin, length in [
            (-1, 0, 1),
            (3, 0, 1),
            (0, -1, 1),
            (0, 0, -1),
            (0, 0, 9),
            (0, 8, 1),
            (2, 0, 2),
            (2, 1, 1),
            (10**30, 0, 1),
        ]:
            self.assertRaises(ValueError, layout.slices, index, begin, length)
        self.assertRaises(ValueError, layout.rangeSlices, 10, 8)
        self.assertRaises(ValueError, layout.rangeSlices, -1, 1)
        self.assertRaises(ValueError, layout.pieceSize, 3)

    def test_inconsistent(self) -> None:
        """
        Files that leave a gap, overlap, have a negative length or do not add
        up to the total length are refused, as is a non-positive piece length.
        """
        self.assertRaises(ValueError, FileLayout, fakeEntries([1, 2]), 4, 4)
        self.assertRaises(ValueError, FileLayout, fakeEntries([1, 2]), 0, 3)
        self.assertRaises(ValueError, FileLayout, fakeEntries([1, 2]), 4, -3)
        gap = [FakeFileEntry(("a",), 2, 0), FakeFileEntry(("b",), 2, 3)]
        self.assertRaises(ValueError, FileLayout, gap, 4, 5)
        negative = [FakeFileEntry(("a",), -2, 0)]
        self.assertRaises(ValueError, FileLayout, negative, 4, -2)

    def test_pieceRange(self) -> None:
        """
        L{FileLayout.pieceRange} gives the pieces holding a file's bytes.
        """
        layout = FileLayout(fakeEntries([0, 5, 0, 2, 10, 0]), 4, 17)
        self.assertEqual(list(layout.pieceRange(0)), [])
        self.assertEqual(list(layout.pieceRange(1)), [0, 1])
        self.assertEqual(list(layout.pieceRange(3)), [1])
        self.assertEqual(list(layout.pieceRange(4)), [1, 2, 3, 4])
        self.assertEqual(list(layout.pieceRange(5)), [])

    def test_empty(self) -> None:
        """
        A torrent of only 0-byte files has no pieces.
        """
        layout = FileLayout(fakeEntries([0, 0]), 4, 0)
        self.assertEqual(layout.pieceCount, 0)
        self.assertEqual(layout.rangeSlices(0, 0), [])
        self.assertRaises(ValueError, layout.slices, 0, 0, 0)

    @settings(max_examples=300, deadline=None)
    @given(
        lengths=st.lists(st.integers(0, 40), min_size=1, max_size=12),
        pieceLength=st.integers(1, 50),
        data=st.data(),
    )
    def test_coverProperty(self, lengths, pieceLength, data) -> None:
        """
        For any file lengths and any range within a piece, the slices are in
        file order, each within its file and non-empty, contiguous in the
        torrent, and their lengths add up to the range.
        """
        total = sum(lengths)
        files = fakeEntries(lengths)
        layout = FileLayout(files, pieceLength, total)
        if total == 0:
            self.assertEqual(layout.pieceCount, 0)
            return
        index = data.draw(st.integers(0, layout.pieceCount - 1))
        size = layout.pieceSize(index)
        begin = data.draw(st.integers(0, size))
        length = data.draw(st.integers(0, size - begin))
        slices = layout.slices(index, begin, length)
        position = index * pieceLength + begin
        previous = -1
        for fileIndex, fileOffset, n in slices:
            self.assertGreater(fileIndex, previous)
            previous = fileIndex
            self.assertGreater(n, 0)
            self.assertGreaterEqual(fileOffset, 0)
            self.assertLessEqual(fileOffset + n, lengths[fileIndex])
            self.assertEqual(files[fileIndex].offset + fileOffset, position)
            position += n
        self.assertEqual(position, index * pieceLength + begin + length)
        self.assertEqual(sum(n for _, _, n in slices), length)


class WriterTestMixin:
    """
    Helpers for tests on real files.
    """

    def newDir(self) -> str:
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        return path

    def written(self, entries, pieceLength: int):
        """
        A writer, open, on a new directory where every piece of a torrent
        of C{entries} is written.

        @return: C{(metainfo, data, writer)}.
        """
        meta, data = fakeMetainfo(entries, pieceLength)
        writer = MultiFileWriter(meta, self.newDir())
        writer.open()
        self.writeAll(writer, meta, data)
        return meta, data, writer

    def writeAll(self, writer: MultiFileWriter, meta, data: bytes) -> None:
        for i in range(meta.pieceCount):
            writer.writePiece(
                i, data[i * meta.pieceLength : (i + 1) * meta.pieceLength]
            )


# A multi-file layout with pieces of 8 bytes: 0-byte files at the start, the
# middle and the end, pieces straddling two and three files, a short last
# piece, and directories three deep.
MIXED = [
    (("empty-start",), 0),
    (("a", "one"), 5),
    (("a", "b", "two"), 2),
    (("a", "b", "empty-middle"), 0),
    (("a", "b", "c", "three"), 3),
    (("four",), 13),
    (("x", "y", "z", "five"), 6),
    (("empty-end",), 0),
]


class MultiFileWriterTests(WriterTestMixin, SynchronousTestCase):
    """
    L{MultiFileWriter} on real files.
    """

    def test_interface(self) -> None:
        """
        L{MultiFileWriter} provides L{IPieceStorage}.
        """
        meta, _ = fakeMetainfo(MIXED, 8)
        self.assertTrue(verifyObject(IPieceStorage, MultiFileWriter(meta, "x")))

    def test_roundTrip(self) -> None:
        """
        Every piece written comes back: as whole pieces, as every block of
        several sizes, and as the bytes of each file on disk; 0-byte files
        and the directories three deep exist.
        """
        meta, data = fakeMetainfo(MIXED, 8)
        self.assertEqual(meta.totalLength, 29)
        self.assertEqual(meta.pieceSize(3), 5)
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        self.writeAll(writer, meta, data)
        for i in range(meta.pieceCount):
            size = meta.pieceSize(i)
            piece = data[i * 8 : i * 8 + size]
            self.assertEqual(writer.readPiece(i), piece)
            for begin in range(size + 1):
                for length in range(size - begin + 1):
                    self.assertEqual(
                        writer.readBlock(i, begin, length),
                        piece[begin : begin + length],
                    )
        writer.close()
        root = os.path.join(downloadDir, "torrent")
        for entry in meta.files:
            path = os.path.join(root, *entry.path)
            with open(path, "rb") as f:
                self.assertEqual(
                    f.read(), data[entry.offset : entry.offset + entry.length]
                )
        self.assertTrue(os.path.isdir(os.path.join(root, "a", "b", "c")))
        self.assertTrue(os.path.isdir(os.path.join(root, "x", "y", "z")))
        self.assertEqual(os.path.getsize(os.path.join(root, "empty-start")), 0)
        self.assertEqual(os.path.getsize(os.path.join(root, "a/b/empty-middle")), 0)
        self.assertEqual(os.path.getsize(os.path.join(root, "empty-end")), 0)

    def test_writeOrderAndReopen(self) -> None:
        """
        Pieces written in any order, by a writer that is closed and reopened
        in between, read back the same from a new writer.
        """
        meta, data = fakeMetainfo(MIXED, 8)
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir, maxOpenFiles=1)
        writer.open()
        order = list(range(meta.pieceCount))
        random.Random(5).shuffle(order)
        for n, i in enumerate(order):
            writer.writePiece(i, data[i * 8 : (i + 1) * 8])
            if n == 1:
                writer.close()
        writer.close()
        again = MultiFileWriter(meta, downloadDir)
        again.open()
        self.assertEqual(
            b"".join(again.readPiece(i) for i in range(meta.pieceCount)), data
        )
        buffer = bytearray(20)
        again.readInto(3, buffer)
        self.assertEqual(bytes(buffer), data[3:23])
        again.close()

    def test_singleFile(self) -> None:
        """
        A single-file torrent lives at C{downloadDir/name}.
        """
        meta, data = fakeMetainfo(
            [(("movie.bin",), 21)], 8, name="movie.bin", multiFile=False
        )
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        self.writeAll(writer, meta, data)
        writer.close()
        self.assertEqual(os.listdir(downloadDir), ["movie.bin"])
        with open(os.path.join(downloadDir, "movie.bin"), "rb") as f:
            self.assertEqual(f.read(), data)

    def test_sparse(self) -> None:
        """
        L{MultiFileWriter.open} creates files at their full length without
        writing them: they read back as zeros and take (almost) no blocks.
        """
        size = 32 * 1024 * 1024
        meta, _ = fakeMetainfo([(("big",), size)], 1 << 20, data=bytes(size))
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        path = os.path.join(downloadDir, "torrent", "big")
        st = os.stat(path)
        self.assertEqual(st.st_size, size)
        self.assertLess(st.st_blocks * 512, size // 8)
        self.assertEqual(writer.readBlock(7, 100, 16384), bytes(16384))
        writer.close()

    def test_existingFiles(self) -> None:
        """
        A shorter existing file is extended keeping its bytes, a longer one
        truncated to its length, and one of the right length left untouched
        (same mtime).
        """
        meta, _ = fakeMetainfo([(("short",), 10), (("long",), 10), (("right",), 10)], 8)
        downloadDir = self.newDir()
        root = os.path.join(downloadDir, "torrent")
        os.makedirs(root)
        for name, content in [("short", b"abc"), ("long", b"z" * 50)]:
            with open(os.path.join(root, name), "wb") as f:
                f.write(content)
        right = os.path.join(root, "right")
        with open(right, "wb") as f:
            f.write(b"0123456789")
        os.utime(right, ns=(1_000_000_000, 1_234_567_890_123))
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        writer.close()
        with open(os.path.join(root, "short"), "rb") as f:
            self.assertEqual(f.read(), b"abc" + bytes(7))
        with open(os.path.join(root, "long"), "rb") as f:
            self.assertEqual(f.read(), b"z" * 10)
        self.assertEqual(os.stat(right).st_mtime_ns, 1_234_567_890_123)

    def test_padding(self) -> None:
        """
        Padding files are never created; their bytes read back as zeros and
        writes skip them.
        """
        meta, data = fakeMetainfo(
            [(("a",), 5), ((".pad", "11"), 11), (("b",), 16), ((".pad", "3"), 3)],
            16,
            padding=[1, 3],
        )
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        self.writeAll(writer, meta, data)
        root = os.path.join(downloadDir, "torrent")
        self.assertEqual(sorted(os.listdir(root)), ["a", "b"])
        self.assertEqual(writer.readPiece(0), data[:16])
        self.assertEqual(writer.readBlock(0, 5, 11), bytes(11))
        self.assertEqual(writer.readPiece(2), bytes(3))
        buffer = bytearray(b"\xff" * 35)
        writer.readInto(0, buffer)
        self.assertEqual(bytes(buffer), data)
        self.assertEqual(writer.paths[1], None)
        self.assertEqual(writer.fileStats()[1], None)
        writer.close()

    def test_manyFiles(self) -> None:
        """
        A torrent of 10,000 files written and read through a pool of 16
        descriptors never has more than 16 open.
        """
        rng = random.Random(10000)
        files = [
            ((f"d{i % 37}", f"file{i}"), rng.randrange(0, 300)) for i in range(10000)
        ]
        meta, data = fakeMetainfo(files, 4096)
        downloadDir = self.newDir()
        self.addCleanup(shutil.rmtree, downloadDir)
        writer = MultiFileWriter(meta, downloadDir, maxOpenFiles=16)
        before = (
            len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
        )
        writer.open()
        self.assertLessEqual(writer.openFileCount, 16)
        self.writeAll(writer, meta, data)
        if before is not None:
            self.assertLessEqual(len(os.listdir("/proc/self/fd")), before + 16)
        self.assertEqual(
            b"".join(writer.readPiece(i) for i in range(meta.pieceCount)), data
        )
        self.assertEqual(writer.peakOpenFiles, 16)
        self.assertLessEqual(writer.openFileCount, 16)
        stats = writer.fileStats()
        self.assertEqual([s[0] for s in stats], [length for _, length in files])
        writer.close()
        self.assertEqual(writer.openFileCount, 0)

    def test_threads(self) -> None:
        """
        Several threads writing and reading at once through a pool of two
        descriptors get their own bytes back and never exceed the pool.
        """
        files = [((f"f{i}",), 1000 + 37 * i) for i in range(12)]
        meta, data = fakeMetainfo(files, 1024)
        writer = MultiFileWriter(meta, self.newDir(), maxOpenFiles=2)
        writer.open()
        errors = []
        pieces = list(range(meta.pieceCount))

        def work(mine):
            try:
                for i in mine:
                    piece = data[i * 1024 : (i + 1) * 1024]
                    writer.writePiece(i, piece)
                    if writer.readPiece(i) != piece:
                        errors.append(i)
            except Exception as e:
                errors.append(e)

        workers = [
            threading.Thread(target=work, args=(pieces[k::4],)) for k in range(4)
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        self.assertEqual(errors, [])
        self.assertLessEqual(writer.peakOpenFiles, 2)
        self.assertEqual(b"".join(writer.readPiece(i) for i in pieces), data)
        writer.close()

    def test_poolExhausted(self) -> None:
        """
        A thread needing a descriptor while every descriptor of the pool is
        in use waits until one is given back, then closes it and opens its
        own: the pool never grows past its bound.
        """
        meta, data = fakeMetainfo([(("a",), 8), (("b",), 8)], 8)
        writer = MultiFileWriter(meta, self.newDir(), maxOpenFiles=1)
        writer.open()
        writer.writePiece(1, data[8:])
        waiting = threading.Event()
        realCondition = writer.pool._available

        class SignallingCondition:
            def __enter__(self):
                return realCondition.__enter__()

            def __exit__(self, *exc):
                return realCondition.__exit__(*exc)

            def wait(self):
                waiting.set()
                realCondition.wait()

            def notify_all(self):
                realCondition.notify_all()

        writer.pool._available = SignallingCondition()
        lease = writer.pool.lease(0, write=False)
        lease.__enter__()
        results = []
        reader = threading.Thread(target=lambda: results.append(writer.readPiece(1)))
        reader.start()
        self.assertTrue(waiting.wait(30))
        self.assertEqual(results, [])
        self.assertEqual(writer.openFileCount, 1)
        lease.__exit__(None, None, None)
        reader.join(30)
        self.assertEqual(results, [data[8:]])
        self.assertEqual(writer.peakOpenFiles, 1)
        writer.close()

    def test_downloadDirIsAFile(self) -> None:
        """
        A download directory that cannot be created makes L{open} raise
        L{StorageError}.
        """
        meta, _ = fakeMetainfo([(("a",), 8)], 8)
        path = os.path.abspath(self.mktemp())
        with open(path, "wb"):
            pass
        self.assertRaises(StorageError, MultiFileWriter(meta, path).open)

    def test_enormousFiles(self) -> None:
        """
        A file longer than the filesystem allows (2**60: C{EFBIG}), or than
        C{off_t} can say (2**63 and more: C{OverflowError} in C{ftruncate}),
        makes L{open} raise L{StorageError}; the download directory holds
        nothing enormous afterwards.
        """
        for length in (2**60, 2**63, 2**64, 2**80):
            entry = FakeFileEntry(("big",), length, 0)
            meta = FakeMetainfo(
                name="big",
                infoHash=bytes(20),
                pieceLength=2**26,
                pieceHashes=(),  # storage never looks at them
                totalLength=length,
                files=(entry,),
                multiFile=False,
            )
            directory = self.newDir()
            writer = MultiFileWriter(meta, directory)
            self.assertRaises(StorageError, writer.open)
            writer.close()
            for name in os.listdir(directory):
                self.assertLess(os.path.getsize(os.path.join(directory, name)), 2**40)

    def test_namesTooLong(self) -> None:
        """
        A path longer than the filesystem takes (a hostile torrent can give
        one of millions of components) or a component longer than a file
        name may be makes L{open} raise L{StorageError} before it creates
        anything: no tree of thousands of nested directories is left behind
        (too deep for C{shutil.rmtree}).
        """
        for path in [("d",) * 3000 + ("f",), ("ok", "x" * 300)]:
            meta, _ = fakeMetainfo([(("a",), 1), (path, 1)], 8)
            directory = self.newDir()
            writer = MultiFileWriter(meta, directory)
            e = self.assertRaises(StorageError, writer.open)
            self.assertIn("too long", str(e))
            self.assertLess(len(str(e)), 500)
            self.assertEqual(os.listdir(directory), [])

    def test_sync(self) -> None:
        """
        L{MultiFileWriter.sync} fsyncs exactly the files written since the
        last call, even when their descriptors were closed in between.
        """
        meta, data = fakeMetainfo([((f"f{i}",), 8) for i in range(4)], 8)
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir, maxOpenFiles=1)
        writer.open()
        writer.sync()
        synced = []
        realFsync = os.fsync

        def recordingFsync(fd):
            synced.append(os.fstat(fd).st_ino)
            realFsync(fd)

        self.patch(storageModule.os, "fsync", recordingFsync)
        writer.writePiece(1, data[8:16])
        writer.writePiece(3, data[24:32])
        writer.sync()
        inodes = [
            os.stat(os.path.join(downloadDir, "torrent", f"f{i}")).st_ino
            for i in range(4)
        ]
        self.assertEqual(sorted(synced), sorted([inodes[1], inodes[3]]))
        del synced[:]
        writer.sync()
        self.assertEqual(synced, [])
        writer.close()

    def test_syncFailureKeepsDirty(self) -> None:
        """
        When an fsync fails, L{StorageError} is raised and the files not
        yet synced are synced by the next call.
        """
        meta, data = fakeMetainfo([((f"f{i}",), 8) for i in range(2)], 8)
        writer = MultiFileWriter(meta, self.newDir())
        writer.open()
        writer.sync()
        writer.writePiece(0, data[:8])
        writer.writePiece(1, data[8:])
        calls = []
        realFsync = os.fsync

        def failingFsync(fd):
            calls.append(fd)
            raise OSError(5, "Input/output error")

        self.patch(storageModule.os, "fsync", failingFsync)
        self.assertRaises(StorageError, writer.sync)
        self.assertEqual(len(calls), 1)
        synced = []
        self.patch(
            storageModule.os, "fsync", lambda fd: synced.append(fd) or realFsync(fd)
        )
        writer.sync()
        self.assertEqual(len(synced), 2)
        writer.close()

    def test_fileStats(self) -> None:
        """
        L{MultiFileWriter.fileStats} works before L{open} (missing files are
        C{None}, nothing is created) and gives size and mtime afterwards.
        """
        meta, _ = fakeMetainfo([(("a",), 3), (("b",), 0), (("c",), 9)], 8)
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        self.assertEqual(writer.fileStats(), [None, None, None])
        self.assertEqual(os.listdir(downloadDir), [])
        writer.open()
        stats = writer.fileStats()
        self.assertEqual([s[0] for s in stats], [3, 0, 9])
        path = os.path.join(downloadDir, "torrent", "c")
        self.assertEqual(stats[2][1], os.stat(path).st_mtime_ns)
        writer.close()
        os.unlink(path)
        os.mkdir(path)
        self.assertEqual(writer.fileStats()[2], None)

    def test_dataExtents(self) -> None:
        """
        L{MultiFileWriter.dataExtents} reports no data in a fresh sparse
        file, the written region afterwards (at block granularity), gives
        up past its limit, and raises L{StorageError} for a missing file.
        """
        size = 1 << 20
        meta, data = fakeMetainfo([(("a",), size), (("b",), 10)], 1 << 16)
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        self.assertEqual(writer.dataExtents(0), [])
        writer.writePiece(3, data[3 << 16 : 4 << 16])
        writer.writePiece(9, data[9 << 16 : 10 << 16])
        extents = writer.dataExtents(0)
        self.assertEqual(len(extents), 2)
        (s1, e1), (s2, e2) = extents
        self.assertTrue(s1 <= 3 << 16 and e1 >= 4 << 16 and e1 < 9 << 16)
        self.assertTrue(s2 <= 9 << 16 and e2 >= 10 << 16 and e2 <= size)
        self.assertIsNone(writer.dataExtents(0, limit=1))
        writer.writePiece(16, data[16 << 16 :])
        self.assertEqual(writer.dataExtents(1), [(0, 10)])
        writer.close()
        os.unlink(os.path.join(downloadDir, "torrent", "b"))
        self.assertRaises(StorageError, writer.dataExtents, 1)

    def test_badWrites(self) -> None:
        """
        A piece of the wrong length or index raises L{ValueError} and writes
        nothing.
        """
        meta, data = fakeMetainfo(MIXED, 8)
        writer = MultiFileWriter(meta, self.newDir())
        writer.open()
        self.assertRaises(ValueError, writer.writePiece, 0, data[:7])
        self.assertRaises(ValueError, writer.writePiece, 3, data[24:32] + b"x")
        self.assertRaises(ValueError, writer.writePiece, 4, b"")
        self.assertRaises(ValueError, writer.readBlock, 3, 0, 6)
        self.assertEqual(writer.readPiece(0), bytes(8))
        writer.close()

    def test_externalDamage(self) -> None:
        """
        Reading from a file deleted or truncated behind the writer's back
        raises L{StorageError} rather than inventing data.
        """
        meta, data = fakeMetainfo([(("a",), 8), (("b",), 8)], 8)
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        self.writeAll(writer, meta, data)
        writer.close()
        os.truncate(os.path.join(downloadDir, "torrent", "a"), 4)
        os.unlink(os.path.join(downloadDir, "torrent", "b"))
        self.assertRaises(StorageError, writer.readPiece, 0)
        self.assertEqual(writer.readBlock(0, 0, 4), data[:4])
        self.assertRaises(StorageError, writer.readPiece, 1)
        self.assertRaises(StorageError, writer.writePiece, 1, data[8:])
        writer.close()

    def test_readPieceIfCached(self) -> None:
        """
        With its files open and its bytes in the page cache (just written),
        every piece, those across several files and padding included, reads
        at once, read-only, the same as L{MultiFileWriter.readPiece}.
        """
        # Linux (4.14 and later), where this runs, has it.
        self.assertTrue(filepoolModule.RWF_NOWAIT)
        meta, data, writer = self.written(MIXED, 8)
        for i in range(meta.pieceCount):
            piece = writer.readPieceIfCached(i)
            self.assertEqual(bytes(piece), writer.readPiece(i))
            self.assertTrue(piece.readonly)
        writer.close()

    def test_readPieceIfCachedNeverOpens(self) -> None:
        """
        A piece whose file is not open is not read at once (opening a file
        may wait for the disk): C{None}, and no descriptor is opened.
        """
        meta, data, writer = self.written([(("a",), 64)], 32)
        writer.pool.closeAll()
        self.assertIsNone(writer.readPieceIfCached(0))
        self.assertEqual(writer.pool.openFileCount, 0)
        self.assertEqual(writer.readPiece(0), data[:32])
        writer.close()

    def test_readPieceIfCachedNotAll(self) -> None:
        """
        A read that would wait (C{EAGAIN}), returns short, fails, or runs
        where C{RWF_NOWAIT} does not exist gives C{None}: the piece is then
        read in a thread.
        """
        meta, data, writer = self.written([(("a",), 64)], 32)
        realPreadv = os.preadv

        def wouldBlock(fd, buffers, offset, flags=0):
            raise BlockingIOError(errno.EAGAIN, "would block")

        def short(fd, buffers, offset, flags=0):
            return realPreadv(fd, [buffers[0][:-1]], offset, flags)

        def broken(fd, buffers, offset, flags=0):
            raise OSError(errno.EIO, "I/O error")

        for fake in (wouldBlock, short, broken):
            self.patch(filepoolModule.os, "preadv", fake)
            self.assertIsNone(writer.readPieceIfCached(1))
        self.patch(filepoolModule.os, "preadv", realPreadv)
        self.patch(filepoolModule, "RWF_NOWAIT", 0)
        self.assertIsNone(writer.readPieceIfCached(1))
        writer.close()

    def test_readPieceIfCachedNeverWaitsForTheLock(self) -> None:
        """
        While a thread holds the pool's lock (as it does opening or closing
        a file, which may wait for the disk), a cached read does not wait
        for it: C{None} at once, and the piece is read in a thread.
        """
        meta, data, writer = self.written([(("a",), 64)], 32)
        results = []
        reader = threading.Thread(
            target=lambda: results.append(writer.readPieceIfCached(1))
        )
        with writer.pool._lock:
            reader.start()
            reader.join(5)
            waited = reader.is_alive()
        reader.join()
        self.assertFalse(waited, "the cached read waited for the pool's lock")
        self.assertEqual(results, [None])
        self.assertEqual(bytes(writer.readPieceIfCached(1)), data[32:])
        writer.close()

    def test_shortReads(self) -> None:
        """
        A read the system returns short (as it may) is finished rather
        than padded or refused.
        """
        meta, data, writer = self.written([(("a",), 64)], 32)
        realPread = os.pread

        def shortPread(fd, length, offset):
            return realPread(fd, max(1, length // 3), offset)

        self.patch(storageModule.os, "pread", shortPread)
        self.assertEqual(writer.readBlock(1, 4, 20), data[36:56])
        self.assertEqual(writer.readPiece(0), data[:32])
        writer.close()

    def test_readOnlyFile(self) -> None:
        """
        A file that cannot be opened for writing can still be read (seeding
        from read-only files); writing to it raises L{StorageError}.
        """
        meta, data = fakeMetainfo([(("a",), 8)], 8)
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        writer.writePiece(0, data)
        writer.close()
        realOpen = os.open

        def noWriting(path, flags, *args):
            if flags & os.O_RDWR:
                raise PermissionError(13, "Permission denied", path)
            return realOpen(path, flags, *args)

        self.patch(storageModule.os, "open", noWriting)
        self.assertEqual(writer.readPiece(0), data)
        self.assertRaises(StorageError, writer.writePiece, 0, data)
        writer.close()

    def test_directoryInTheWay(self) -> None:
        """
        A directory where a file belongs, or a file where a directory
        belongs, makes L{open} raise L{StorageError}.
        """
        meta, _ = fakeMetainfo([(("a", "b"), 3)], 8)
        downloadDir = self.newDir()
        os.makedirs(os.path.join(downloadDir, "torrent", "a", "b"))
        self.assertRaises(StorageError, MultiFileWriter(meta, downloadDir).open)
        other = self.newDir()
        os.makedirs(os.path.join(other, "torrent"))
        with open(os.path.join(other, "torrent", "a"), "wb"):
            pass
        self.assertRaises(StorageError, MultiFileWriter(meta, other).open)


class PathSafetyTests(WriterTestMixin, SynchronousTestCase):
    """
    Nothing is ever created, read or written outside the download directory.
    """

    def test_unsafeComponents(self) -> None:
        """
        Names and path components that are empty, C{.}, C{..}, absolute or
        contain a separator or NUL are refused.
        """
        for path in [
            ("..", "x"),
            ("a", ".."),
            ("/etc", "passwd"),
            ("a/b",),
            ("",),
            (".",),
            ("a\x00",),
            (),
        ]:
            meta, _ = fakeMetainfo([(path, 3)], 8)
            self.assertRaises(StorageError, MultiFileWriter, meta, "dl")
        for name in ["..", "", "a/b", "/abs"]:
            meta, _ = fakeMetainfo([(("x",), 3)], 8, name=name)
            self.assertRaises(StorageError, MultiFileWriter, meta, "dl")

    def test_symlinkedDirectory(self) -> None:
        """
        A directory inside the download directory that is a symbolic link to
        somewhere outside is refused at open time, and nothing is created
        through it.
        """
        outside = self.newDir()
        downloadDir = self.newDir()
        os.makedirs(os.path.join(downloadDir, "torrent"))
        os.symlink(outside, os.path.join(downloadDir, "torrent", "sub"))
        meta, _ = fakeMetainfo([(("ok",), 3), (("sub", "deeper", "evil"), 3)], 8)
        writer = MultiFileWriter(meta, downloadDir)
        self.assertRaises(StorageError, writer.open)
        self.assertEqual(os.listdir(outside), [])

    def test_symlinkedTorrentDirectory(self) -> None:
        """
        The torrent's own directory being a link to outside is refused.
        """
        outside = self.newDir()
        downloadDir = self.newDir()
        os.symlink(outside, os.path.join(downloadDir, "torrent"))
        meta, _ = fakeMetainfo([(("a",), 3)], 8)
        self.assertRaises(StorageError, MultiFileWriter(meta, downloadDir).open)
        self.assertEqual(os.listdir(outside), [])

    def test_symlinkedFile(self) -> None:
        """
        A file that is a symbolic link to a file outside is refused at open
        time and is never read or written through, even when the link
        appears after L{open}.
        """
        outside = self.newDir()
        secret = os.path.join(outside, "secret")
        with open(secret, "wb") as f:
            f.write(b"secret!!")
        downloadDir = self.newDir()
        meta, data = fakeMetainfo([(("a",), 8)], 8, name="single", multiFile=False)
        os.symlink(secret, os.path.join(downloadDir, "single"))
        writer = MultiFileWriter(meta, downloadDir)
        self.assertRaises(StorageError, writer.open)
        os.unlink(os.path.join(downloadDir, "single"))
        writer.open()
        writer.close()
        os.unlink(os.path.join(downloadDir, "single"))
        os.symlink(secret, os.path.join(downloadDir, "single"))
        self.assertRaises(StorageError, writer.readPiece, 0)
        self.assertRaises(StorageError, writer.writePiece, 0, data)
        with open(secret, "rb") as f:
            self.assertEqual(f.read(), b"secret!!")

    def test_symlinkInside(self) -> None:
        """
        A link that stays inside the download directory is followed.
        """
        downloadDir = self.newDir()
        os.makedirs(os.path.join(downloadDir, "elsewhere"))
        os.makedirs(os.path.join(downloadDir, "torrent"))
        os.symlink(
            os.path.join(downloadDir, "elsewhere"),
            os.path.join(downloadDir, "torrent", "sub"),
        )
        meta, data = fakeMetainfo([(("sub", "f"), 8)], 8)
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        writer.writePiece(0, data)
        writer.close()
        with open(os.path.join(downloadDir, "elsewhere", "f"), "rb") as f:
            self.assertEqual(f.read(), data)


class PaddingBlockTests(SynchronousTestCase):
    """
    L{FileLayout.paddingBlocks}: the blocks a downloader need not request.
    """

    def test_paddingBlocks(self) -> None:
        """
        Only blocks wholly inside padding are listed (across several pad
        files, and a 0-byte file between them, too); a block that touches
        data is not.
        """
        layout = FileLayout(
            fakeEntries([10, 30, 0, 24, 8, 3, 5], padding=[1, 3, 5, 6]), 32, 80
        )
        self.assertEqual(layout.paddingBlocks(0, 8), [2, 3])
        self.assertEqual(layout.paddingBlocks(1, 8), [0, 1, 2, 3])
        self.assertEqual(layout.paddingBlocks(2, 8), [1])
        self.assertEqual(layout.paddingBlocks(0, 32), [])
        self.assertEqual(FileLayout(fakeEntries([5]), 8, 5).paddingBlocks(0, 8), [])
        self.assertRaises(ValueError, layout.paddingBlocks, 3, 8)


class ErrorMessageTests(WriterTestMixin, SynchronousTestCase):
    """
    A download directory with symbolic links leading outside it: refused
    with one clear line (a L{StorageError}, never an L{OSError}), nothing
    outside touched, whether the link is the torrent's directory, a
    sub-directory or a file.
    """

    def assertRefused(self, meta, downloadDir, link, outside, to=None) -> None:
        """
        L{MultiFileWriter.open} raises a one-line L{StorageError} naming
        C{link} and where it leads (C{to}, else C{outside}); C{outside}
        stays empty.
        """
        e = self.assertRaises(StorageError, MultiFileWriter(meta, downloadDir).open)
        text = str(e)
        self.assertEqual(
            text,
            f"{link!r} leads outside the download directory {downloadDir!r} "
            f"(to {os.path.realpath(to or outside)!r}, through a symbolic link): "
            f"refused",
        )
        self.assertEqual(os.listdir(outside), [])

    def test_torrentDirectory(self) -> None:
        """
        The torrent's own directory is a link to outside.
        """
        outside = self.newDir()
        downloadDir = self.newDir()
        link = os.path.join(downloadDir, "torrent")
        os.symlink(outside, link)
        meta, _ = fakeMetainfo([(("a",), 3)], 8)
        self.assertRefused(meta, downloadDir, link, outside)

    def test_subDirectory(self) -> None:
        """
        A sub-directory of the torrent is a link to outside.
        """
        outside = self.newDir()
        downloadDir = self.newDir()
        os.makedirs(os.path.join(downloadDir, "torrent"))
        link = os.path.join(downloadDir, "torrent", "sub")
        os.symlink(outside, link)
        meta, _ = fakeMetainfo([(("sub", "f"), 3)], 8)
        self.assertRefused(meta, downloadDir, link, outside)

    def test_file(self) -> None:
        """
        A file of the torrent is a link to a file outside.
        """
        outside = self.newDir()
        downloadDir = self.newDir()
        os.makedirs(os.path.join(downloadDir, "torrent"))
        link = os.path.join(downloadDir, "torrent", "f")
        os.symlink(os.path.join(outside, "f"), link)
        meta, _ = fakeMetainfo([(("f",), 3)], 8)
        self.assertRefused(meta, downloadDir, link, outside, os.path.join(outside, "f"))

    def test_loop(self) -> None:
        """
        A link loop where a directory belongs is a clear error too.
        """
        downloadDir = self.newDir()
        os.makedirs(os.path.join(downloadDir, "torrent"))
        link = os.path.join(downloadDir, "torrent", "sub")
        os.symlink("sub", link)
        meta, _ = fakeMetainfo([(("sub", "f"), 3)], 8)
        e = self.assertRaises(StorageError, MultiFileWriter(meta, downloadDir).open)
        self.assertEqual(str(e), f"{link!r} is not a directory")

    def test_unwritable(self) -> None:
        """
        A download directory that cannot be written: one line naming it.
        """
        if os.geteuid() == 0:
            # root writes anyway: make the directory's place a file instead.
            downloadDir = os.path.join(self.newDir(), "file")
            with open(downloadDir, "wb"):
                pass
            downloadDir = os.path.join(downloadDir, "dl")
        else:
            downloadDir = self.newDir()
            os.chmod(downloadDir, 0o500)
            self.addCleanup(os.chmod, downloadDir, 0o700)
        meta, _ = fakeMetainfo([(("f",), 3)], 8)
        e = self.assertRaises(StorageError, MultiFileWriter(meta, downloadDir).open)
        self.assertTrue(str(e).startswith("cannot create the torrent's files: "))
        self.assertIn(downloadDir, str(e))
        self.assertNotIn("\n", str(e))


class AttributeTests(WriterTestMixin, SynchronousTestCase):
    """
    BEP 47 on disk: executable bits, symbolic links, pad files.
    """

    def setUp(self) -> None:
        self.addCleanup(os.umask, os.umask(0o022))

    def mode(self, path: str) -> int:
        """
        The permission bits of C{path} itself.
        """
        return stat.S_IMODE(os.lstat(path).st_mode)

    def test_executable(self) -> None:
        """
        An executable entry gets C{x} wherever it has C{r}, when created
        and when it already existed (without touching its data or mtime).
        """
        meta, data = fakeMetainfo(
            [(("run",), 5), (("plain",), 5), (("empty",), 0)],
            8,
            executable=[0, 2],
        )
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        self.writeAll(writer, meta, data)
        writer.close()
        root = os.path.join(downloadDir, "torrent")
        self.assertEqual(self.mode(os.path.join(root, "run")), 0o755)
        self.assertEqual(self.mode(os.path.join(root, "plain")), 0o644)
        self.assertEqual(self.mode(os.path.join(root, "empty")), 0o755)
        os.chmod(os.path.join(root, "run"), 0o640)
        before = os.stat(os.path.join(root, "run")).st_mtime_ns
        MultiFileWriter(meta, downloadDir).open()
        self.assertEqual(self.mode(os.path.join(root, "run")), 0o750)
        self.assertEqual(os.stat(os.path.join(root, "run")).st_mtime_ns, before)

    def test_symlinks(self) -> None:
        """
        Links are created, relative, pointing where the torrent says (to
        files or directories, before or after them in the torrent); they
        hold no data and report no statistics.
        """
        meta, data = fakeMetainfo(
            [
                (("early",), 0),
                (("a", "b", "bar"), 7),
                (("a", "b", "foo"), 0),
                (("top",), 0),
                (("d", "e"), 3),
            ],
            8,
            symlinks={0: ("d", "e"), 2: ("a", "b", "bar"), 3: ("a",)},
        )
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        self.writeAll(writer, meta, data)
        writer.close()
        root = os.path.join(downloadDir, "torrent")
        self.assertEqual(os.readlink(os.path.join(root, "early")), "d/e")
        self.assertEqual(os.readlink(os.path.join(root, "a", "b", "foo")), "bar")
        self.assertEqual(os.readlink(os.path.join(root, "top")), "a")
        with open(os.path.join(root, "a", "b", "foo"), "rb") as f:
            self.assertEqual(f.read(), data[:7])
        with open(os.path.join(root, "top", "b", "foo"), "rb") as f:
            self.assertEqual(f.read(), data[:7])
        stats = writer.fileStats()
        self.assertEqual([s is None for s in stats], [True, False, True, True, False])
        self.assertEqual(writer.warnings, [])
        # Opening again leaves them as they are; a stale link or an empty
        # file in a link's place is replaced.
        os.unlink(os.path.join(root, "top"))
        os.symlink("d", os.path.join(root, "top"))
        os.unlink(os.path.join(root, "early"))
        with open(os.path.join(root, "early"), "wb"):
            pass
        MultiFileWriter(meta, downloadDir).open()
        self.assertEqual(os.readlink(os.path.join(root, "top")), "a")
        self.assertEqual(os.readlink(os.path.join(root, "early")), "d/e")
        self.assertEqual(os.readlink(os.path.join(root, "a", "b", "foo")), "bar")

    def test_symlinkInTheWay(self) -> None:
        """
        A file with data, or a directory, where a link belongs is refused.
        """
        meta, _ = fakeMetainfo([(("f",), 3), (("link",), 0)], 8, symlinks={1: ("f",)})
        downloadDir = self.newDir()
        os.makedirs(os.path.join(downloadDir, "torrent", "link"))
        e = self.assertRaises(StorageError, MultiFileWriter(meta, downloadDir).open)
        self.assertIn("is in the way of a symbolic link", str(e))
        os.rmdir(os.path.join(downloadDir, "torrent", "link"))
        with open(os.path.join(downloadDir, "torrent", "link"), "wb") as f:
            f.write(b"data")
        e = self.assertRaises(StorageError, MultiFileWriter(meta, downloadDir).open)
        self.assertIn("is in the way of a symbolic link", str(e))

    def test_symlinkThroughLinkedDirectory(self) -> None:
        """
        A link made in a directory that is itself a link (to elsewhere in
        the download directory, at another depth) still points at the
        torrent's file.
        """
        downloadDir = self.newDir()
        root = os.path.join(downloadDir, "torrent")
        os.makedirs(os.path.join(downloadDir, "x", "y", "z"))
        os.makedirs(root)
        os.symlink(os.path.join(downloadDir, "x", "y", "z"), os.path.join(root, "sub"))
        meta, data = fakeMetainfo(
            [(("f",), 3), (("sub", "link"), 0)], 8, symlinks={1: ("f",)}
        )
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        self.writeAll(writer, meta, data)
        writer.close()
        with open(os.path.join(root, "sub", "link"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(writer.warnings, [])

    def test_symlinkLeadingOutside(self) -> None:
        """
        A link whose target, once links already on disk are followed,
        lies outside the torrent's directory is not created: an empty
        file instead, with a warning.
        """
        downloadDir = self.newDir()
        root = os.path.join(downloadDir, "torrent")
        os.makedirs(os.path.join(downloadDir, "other"))
        os.makedirs(root)
        os.symlink(os.path.join(downloadDir, "other"), os.path.join(root, "x"))
        meta, _ = fakeMetainfo(
            [(("f",), 3), (("link",), 0)], 8, symlinks={1: ("x", "secret")}
        )
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        link = os.path.join(root, "link")
        self.assertFalse(os.path.islink(link))
        self.assertEqual(os.path.getsize(link), 0)
        self.assertEqual(len(writer.warnings), 1)
        self.assertIn(
            f"{link!r}: a symbolic link to 'x/secret' would lead to "
            f"{os.path.join(os.path.realpath(downloadDir), 'other', 'secret')!r}, "
            f"outside the torrent's directory; an empty file instead",
            writer.warnings[0],
        )

    def test_padFilesFromTorrent(self) -> None:
        """
        Pad files of a real torrent, new style or BitComet's old names,
        are never created; what remains reads back with zeros.
        """
        from btorrent.codec import bencode, metainfo

        content = b"a" * 10 + bytes(6) + b"b" * 10 + bytes(6) + b"c" * 4
        files = [
            {b"length": 10, b"path": [b"a"]},
            {b"length": 6, b"path": [b".pad", b"6"], b"attr": b"p"},
            {b"length": 10, b"path": [b"b"]},
            {b"length": 6, b"path": [b"_____padding_file_1_"]},
            {b"length": 4, b"path": [b"c"]},
        ]
        info = {
            b"name": b"t",
            b"piece length": 16,
            b"pieces": b"".join(
                hashlib.sha1(content[i : i + 16]).digest() for i in range(0, 36, 16)
            ),
            b"files": files,
        }
        meta = metainfo.load(bencode.encode({b"info": info}))
        downloadDir = self.newDir()
        writer = MultiFileWriter(meta, downloadDir)
        writer.open()
        self.writeAll(writer, meta, content)
        self.assertEqual(
            sorted(os.listdir(os.path.join(downloadDir, "t"))), ["a", "b", "c"]
        )
        self.assertEqual(
            b"".join(writer.readPiece(i) for i in range(meta.pieceCount)), content
        )
        writer.close()
