"""
Interoperability of L{btorrent.codec.metainfo} with libtorrent and mktorrent, both
ways: torrents we create load in libtorrent with the same info-hash, files
and piece hashes; torrents libtorrent and mktorrent create load in btorrent
with libtorrent's info-hash and file list.

These tests need the libtorrent Python bindings and the C{mktorrent}
program, and fail (never skip) without them.  Nothing touches the network.
"""

from __future__ import annotations

import os
import subprocess
import warnings

import libtorrent as lt
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode, metainfo

#: Shapes of data trees: relative path → size.
SHAPES = {
    "single": {"one.bin": 100003},
    "multi": {"m/a.bin": 40000, "m/b.bin": 3, "m/c.bin": 70001},
    "nested": {
        "top/x": 17,
        "top/sub/deeper/y": 65536,
        "top/sub/z": 1,
        "top/sub/zero": 0,
        "top/zero": 0,
        "top/w/v": 20000,
    },
    "unicode": {
        "d\u00e9j\u00e0/\u65e5\u672c\u8a9e.txt": 3000,
        "d\u00e9j\u00e0/\u00fc \u00f1/\u0444\u0430\u0439\u043b": 50000,
        "d\u00e9j\u00e0/emoji \U0001f600": 7,
    },
}


def writeTree(base: str, shape: dict) -> str:
    """
    Write the files of C{shape} under C{base} (pseudo-random contents);
    return the path to share: the single file, or the top directory.
    """
    for i, (rel, size) in enumerate(sorted(shape.items())):
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        block = os.urandom(4096) + bytes([i])
        with open(path, "wb") as f:
            f.write((block * (size // len(block) + 1))[:size])
    (top,) = {rel.split("/")[0] for rel in shape}
    return os.path.join(base, top)


def ltInfo(path: str) -> lt.torrent_info:
    """
    Load a torrent file in libtorrent (from the file, so that its raw bytes
    are what libtorrent hashes).
    """
    return lt.torrent_info(path)


def ltFiles(ti: lt.torrent_info) -> list:
    """
    libtorrent's file list: C{(path, size, isPadding)} with C{/} separators.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = ti.files()
    return [
        (
            fs.file_path(i).replace(os.sep, "/"),
            fs.file_size(i),
            bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
        )
        for i in range(fs.num_files())
    ]


def ourFiles(m: metainfo.Metainfo) -> list:
    """
    Our file list in libtorrent's form (name prefixed for multi-file).
    """
    return [
        (
            "/".join((m.name,) + f.path) if m.multiFile else f.path[0],
            f.length,
            f.padding,
        )
        for f in m.files
    ]


def ltHash(ti: lt.torrent_info) -> str:
    """
    libtorrent's v1 info-hash as hex.
    """
    return str(ti.info_hashes().v1)


class BtorrentToLibtorrentTests(SynchronousTestCase):
    """
    Torrents made by L{metainfo.create} load in libtorrent identically.
    """

    def check(self, shape: str, pieceLength=None, **kwargs) -> None:
        """
        Create a torrent for C{shape}; libtorrent must agree on the
        info-hash, files, piece length, trackers and private flag, and
        libtorrent hashing the same files must give the same pieces.
        """
        base = os.path.abspath(self.mktemp())
        target = writeTree(base, SHAPES[shape])
        trackers = [["http://127.0.0.1:6969/announce"], ["udp://127.0.0.1:6969"]]
        data = metainfo.create(target, trackers, pieceLength=pieceLength, **kwargs)
        path = os.path.join(base, "ours.torrent")
        with open(path, "wb") as f:
            f.write(data)
        ours = metainfo.load(data)
        ti = ltInfo(path)
        self.assertEqual(ltHash(ti), ours.infoHash.hex())
        self.assertEqual(ltFiles(ti), ourFiles(ours))
        # Our encoding is canonical: libtorrent re-encoding it agrees.
        self.assertEqual(ltHash(lt.torrent_info(lt.bdecode(data))), ltHash(ti))
        self.assertEqual(ti.piece_length(), ours.pieceLength)
        self.assertEqual(ti.num_pieces(), ours.pieceCount)
        self.assertEqual(ti.priv(), ours.private)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ltTrackers = [(t.url, t.tier) for t in ti.trackers()]
        self.assertEqual(
            ltTrackers,
            [("http://127.0.0.1:6969/announce", 0), ("udp://127.0.0.1:6969", 1)],
        )
        for i in range(ours.pieceCount):
            self.assertEqual(ti.hash_for_piece(i), ours.pieceHashes[i])

        # libtorrent hashing the same files, in the same order, gives the
        # same pieces.
        entries = [
            lt.create_file_entry(
                os.path.join(*((ours.name,) + f.path)) if ours.multiFile else ours.name,
                f.length,
            )
            for f in ours.files
        ]
        ct = lt.create_torrent(entries, ours.pieceLength, lt.create_torrent.v1_only)
        lt.set_piece_hashes(ct, os.path.dirname(target))
        theirs = lt.bdecode(lt.bencode(ct.generate()))
        self.assertEqual(theirs[b"info"][b"pieces"], b"".join(ours.pieceHashes))

    def test_single(self) -> None:
        """
        A single file, piece length chosen automatically.
        """
        self.check("single")

    def test_multi(self) -> None:
        """
        Several files with pieces straddling them, private.
        """
        self.check("multi", pieceLength=16384, private=True, comment="c")

    def test_nested(self) -> None:
        """
        Nested directories and zero-byte files.
        """
        self.check("nested", pieceLength=32768)

    def test_unicode(self) -> None:
        """
        Non-ASCII names.
        """
        self.check("unicode")


class LibtorrentToBtorrentTests(SynchronousTestCase):
    """
    Torrents made by libtorrent load in btorrent with libtorrent's
    info-hash.
    """

    def check(self, shape: str, flags: int, pieceLength: int = 16384) -> None:
        """
        Let libtorrent create a torrent for C{shape}; we must agree with it.
        """
        base = os.path.abspath(self.mktemp())
        target = writeTree(base, SHAPES[shape])
        top = os.path.basename(target)
        entries = [
            lt.create_file_entry(rel, size)
            for rel, size in sorted(SHAPES[shape].items())
        ]
        ct = lt.create_torrent(entries, pieceLength, flags)
        ct.add_tracker("http://127.0.0.1:6969/announce", 0)
        ct.add_tracker("http://127.0.0.1:6970/announce", 1)
        ct.set_priv(True)
        lt.set_piece_hashes(ct, base)
        data = lt.bencode(ct.generate())
        path = os.path.join(base, "theirs.torrent")
        with open(path, "wb") as f:
            f.write(data)
        ti = ltInfo(path)
        ours = metainfo.load(data)
        self.assertEqual(ours.infoHash.hex(), ltHash(ti))
        self.assertEqual(ours.name, top)
        self.assertEqual(ourFiles(ours), ltFiles(ti))
        self.assertEqual(ours.pieceCount, ti.num_pieces())
        self.assertTrue(ours.private)
        self.assertEqual(
            ours.trackers,
            (("http://127.0.0.1:6969/announce",), ("http://127.0.0.1:6970/announce",)),
        )
        # Every real file of the shape is there, with its size.
        self.assertEqual(
            sorted(
                (
                    "/".join((ours.name,) + f.path) if ours.multiFile else ours.name,
                    f.length,
                )
                for f in ours.files
                if not f.padding
            ),
            sorted(SHAPES[shape].items()),
        )

    def test_v1Single(self) -> None:
        """
        A v1-only single-file torrent.
        """
        self.check("single", lt.create_torrent.v1_only)

    def test_v1Multi(self) -> None:
        """
        A v1-only multi-file torrent.
        """
        self.check("multi", lt.create_torrent.v1_only)

    def test_v1Nested(self) -> None:
        """
        Nested directories and zero-byte files.
        """
        self.check("nested", lt.create_torrent.v1_only, pieceLength=32768)

    def test_v1Unicode(self) -> None:
        """
        Non-ASCII names.
        """
        self.check("unicode", lt.create_torrent.v1_only)

    def test_paddingFiles(self) -> None:
        """
        C{canonical_files} adds BEP 47 padding files, which we mark.
        """
        self.check(
            "nested", lt.create_torrent.v1_only | lt.create_torrent.canonical_files
        )
        base = os.path.abspath(self.mktemp())
        writeTree(base, SHAPES["multi"])
        ct = lt.create_torrent(
            [lt.create_file_entry(r, s) for r, s in sorted(SHAPES["multi"].items())],
            16384,
            lt.create_torrent.v1_only | lt.create_torrent.canonical_files,
        )
        lt.set_piece_hashes(ct, base)
        ours = metainfo.load(lt.bencode(ct.generate()))
        self.assertTrue(any(f.padding for f in ours.files))

    def test_hybrid(self) -> None:
        """
        A hybrid v1+v2 torrent loads with its v1 info-hash.
        """
        self.check("nested", 0)


class MktorrentTests(SynchronousTestCase):
    """
    Torrents made by mktorrent load in btorrent with libtorrent's info-hash.
    """

    def check(self, shape: str, *options: str) -> None:
        """
        Run mktorrent on C{shape}; btorrent and libtorrent must agree.
        """
        base = os.path.abspath(self.mktemp())
        target = writeTree(base, SHAPES[shape])
        path = os.path.join(base, "mk.torrent")
        subprocess.run(
            [
                "mktorrent",
                "-a",
                "http://127.0.0.1:6969/announce",
                "-l",
                "15",
                "-o",
                path,
                *options,
                target,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        ti = ltInfo(path)
        ours = metainfo.loadFile(path)
        self.assertEqual(ours.infoHash.hex(), ltHash(ti))
        self.assertEqual(ourFiles(ours), ltFiles(ti))
        self.assertEqual(ours.pieceLength, 32768)
        self.assertEqual(ours.createdBy, "mktorrent 1.1")
        return ours

    def test_single(self) -> None:
        """
        A single file.
        """
        ours = self.check("single")
        self.assertFalse(ours.multiFile)
        self.assertEqual(ours.totalLength, 100003)

    def test_multi(self) -> None:
        """
        Several files, private, with a comment.
        """
        ours = self.check("multi", "-p", "-c", "made by mktorrent")
        self.assertTrue(ours.private)
        self.assertEqual(ours.comment, "made by mktorrent")

    def test_nested(self) -> None:
        """
        Nested directories and zero-byte files.
        """
        ours = self.check("nested")
        self.assertIn(("zero",), [f.path for f in ours.files])

    def test_unicode(self) -> None:
        """
        Non-ASCII names.
        """
        ours = self.check("unicode")
        self.assertIn(
            ("\u00fc \u00f1", "\u0444\u0430\u0439\u043b"), [f.path for f in ours.files]
        )

    def test_sameAsCreate(self) -> None:
        """
        mktorrent and L{metainfo.create} give the same C{info} for the same
        tree when mktorrent's piece length is used.
        """
        base = os.path.abspath(self.mktemp())
        target = writeTree(base, SHAPES["nested"])
        path = os.path.join(base, "mk.torrent")
        subprocess.run(
            ["mktorrent", "-a", "http://x/", "-l", "15", "-o", path, target],
            check=True,
            capture_output=True,
            timeout=60,
        )
        theirs = metainfo.loadFile(path)
        ours = metainfo.load(
            metainfo.create(target, [["http://x/"]], pieceLength=32768)
        )
        self.assertEqual(ours.infoHash, theirs.infoHash)


class RawBytesTests(SynchronousTestCase):
    """
    Torrents whose re-encoding would differ from their bytes get the hash
    libtorrent gives them.
    """

    def compare(self, data: bytes) -> metainfo.Metainfo:
        """
        Load C{data} in both; the info-hashes must match.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        ours = metainfo.load(data)
        self.assertEqual(ours.infoHash.hex(), ltHash(ltInfo(path)))
        return ours

    def test_unsortedKeys(self) -> None:
        """
        C{info} with its keys out of order.
        """
        pieces = os.urandom(40)
        info = (
            b"d6:pieces40:" + pieces + b"4:name5:x.bin12:piece lengthi16384e"
            b"6:lengthi20000ee"
        )
        data = b"d8:announce22:http://127.0.0.1:1/ann4:info" + info + b"e"
        ours = self.compare(data)
        self.assertNotEqual(
            bencode.encode(bencode.decode(info)), info, "keys should be unsorted"
        )
        self.assertEqual(ours.infoBytes, info)

    def test_utf8Pieces(self) -> None:
        """
        C{pieces} that are valid UTF-8 (here: ASCII and multi-byte text).
        """
        pieces = ("abcdefghijklmnopqrst" + "\u00e9" * 10).encode()
        self.assertEqual(len(pieces), 40)
        info = {
            b"name": b"x.bin",
            b"piece length": 16384,
            b"pieces": pieces,
            b"length": 20000,
        }
        ours = self.compare(bencode.encode({b"info": info}))
        self.assertEqual(b"".join(ours.pieceHashes), pieces)
