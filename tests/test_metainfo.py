"""
Tests for L{btorrent.codec.metainfo}.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode, metainfo
from btorrent.codec.metainfo import (
    MAX_PIECE_COUNT,
    MAX_TORRENT_SIZE,
    V2_ONLY,
    FileEntry,
    MetainfoError,
    autoPieceLength,
    create,
    load,
    loadFile,
)
from btorrent.codec.safepath import MAX_PATH_BYTES, MAX_PATH_DEPTH, componentProblem


def callUnblocked(case, fifo, f, *args, **kwargs):
    """
    Call C{f(*args, **kwargs)} in a thread and return (or raise) what it
    does; if it is still running after 10 seconds, blocked opening or
    reading the FIFO C{fifo}, open the FIFO for writing (which releases a
    reader blocked in C{open}, and then gives it end of file) and fail the
    test instead of hanging.
    """
    outcome = []

    def run():
        try:
            outcome.append((True, f(*args, **kwargs)))
        except BaseException as e:
            outcome.append((False, e))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        thread.join(10)
        case.fail(f"blocked on the FIFO {fifo}")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def singleInfo(length=100, pieceLength=64, name=b"file.bin", **extra):
    """
    A valid single-file C{info} dictionary.
    """
    count = -(-length // pieceLength)
    info = {
        b"name": name,
        b"piece length": pieceLength,
        b"pieces": bytes(range(20)) * count,
        b"length": length,
    }
    info.update(extra)
    return info


def multiInfo(files, pieceLength=64, name=b"dir", **extra):
    """
    A valid multi-file C{info} dictionary for C{[(path list, length)]}.
    """
    total = sum(length for _, length in files)
    info = {
        b"name": name,
        b"piece length": pieceLength,
        b"pieces": b"\x01" * 20 * (-(-total // pieceLength)),
        b"files": [{b"length": length, b"path": path} for path, length in files],
    }
    info.update(extra)
    return info


def torrent(info, **top):
    """
    Bencoded torrent bytes around C{info}.
    """
    d = {b"announce": b"http://127.0.0.1:6969/announce", b"info": info}
    for k, v in top.items():
        hyphen = k in ("announce_list", "url_list")
        d[k.replace("_", "-" if hyphen else " ").encode()] = v
    return bencode.encode(d)


class LoadTests(SynchronousTestCase):
    """
    L{load} of valid torrents.
    """

    def test_singleFile(self) -> None:
        """
        A single-file torrent has one L{FileEntry} named after the torrent,
        the info-hash of the raw C{info} bytes and every documented field.
        """
        info = singleInfo(length=150, pieceLength=64)
        data = bencode.encode(
            {
                b"announce": b"http://127.0.0.1:1/a",
                b"comment": b"hello",
                b"created by": b"me",
                b"creation date": 1234,
                b"url-list": b"http://127.0.0.1:2/seed",
                b"info": info,
            }
        )
        m = load(data)
        self.assertEqual(m.name, "file.bin")
        self.assertEqual(m.infoHash, hashlib.sha1(bencode.encode(info)).digest())
        self.assertEqual(m.infoBytes, bencode.encode(info))
        self.assertEqual(m.pieceLength, 64)
        self.assertEqual(m.pieceCount, 3)
        self.assertEqual(m.pieceHashes, (bytes(range(20)),) * 3)
        self.assertEqual(m.totalLength, 150)
        self.assertEqual(m.files, (FileEntry(("file.bin",), 150, 0, False),))
        self.assertFalse(m.multiFile)
        self.assertEqual(m.announce, "http://127.0.0.1:1/a")
        self.assertEqual(m.trackers, (("http://127.0.0.1:1/a",),))
        self.assertFalse(m.private)
        self.assertEqual(m.urlList, ("http://127.0.0.1:2/seed",))
        self.assertEqual(m.comment, "hello")
        self.assertEqual(m.creationDate, 1234)
        self.assertEqual(m.createdBy, "me")
        self.assertEqual([m.pieceSize(i) for i in range(3)], [64, 64, 22])
        self.assertRaises(IndexError, m.pieceSize, 3)
        self.assertRaises(IndexError, m.pieceSize, -1)

    def test_multiFile(self) -> None:
        """
        A multi-file torrent lists files with their offsets; nested
        directories and zero-length files are kept.
        """
        m = load(
            torrent(
                multiInfo(
                    [
                        ([b"a"], 10),
                        ([b"sub", b"empty"], 0),
                        ([b"sub", b"deeper", b"b"], 100),
                    ]
                )
            )
        )
        self.assertTrue(m.multiFile)
        self.assertEqual(m.name, "dir")
        self.assertEqual(
            m.files,
            (
                FileEntry(("a",), 10, 0, False),
                FileEntry(("sub", "empty"), 0, 10, False),
                FileEntry(("sub", "deeper", "b"), 100, 10, False),
            ),
        )
        self.assertEqual(m.totalLength, 110)
        self.assertEqual(m.pieceCount, 2)

    def test_paddingFiles(self) -> None:
        """
        BEP 47 padding files (C{attr} containing C{p}) are marked as such.
        """
        info = multiInfo([([b"a"], 10), ([b".pad", b"54"], 54), ([b"b"], 5)])
        info[b"files"][1][b"attr"] = b"p"
        info[b"files"][2][b"attr"] = b"x"
        m = load(torrent(info))
        self.assertEqual([f.padding for f in m.files], [False, True, False])
        self.assertEqual(m.files[2].offset, 64)

    def test_unsortedKeys(self) -> None:
        """
        The info-hash is taken over the raw bytes, even when the keys of
        C{info} are not in sorted order (re-encoding would change them).
        """
        infoRaw = (
            b"d6:lengthi5e4:name1:x6:pieces20:" + b"\x00" * 20 + b"12:piece lengthi8ee"
        )
        data = b"d4:info" + infoRaw + b"e"
        m = load(data)
        self.assertEqual(m.infoHash, hashlib.sha1(infoRaw).digest())
        self.assertNotEqual(
            m.infoHash, hashlib.sha1(bencode.encode(bencode.decode(infoRaw))).digest()
        )

    def test_utf8Pieces(self) -> None:
        """
        C{pieces} that happen to be valid UTF-8 keep their bytes.
        """
        info = singleInfo(length=20, pieceLength=10)
        info[b"pieces"] = b"a" * 20 + "\u00e9".encode() * 10
        m = load(torrent(info))
        self.assertEqual(m.pieceHashes, (b"a" * 20, "\u00e9".encode() * 10))
        self.assertEqual(m.infoHash, hashlib.sha1(bencode.encode(info)).digest())

    def test_utf8Variants(self) -> None:
        """
        C{name.utf-8} and C{path.utf-8} are preferred.
        """
        info = multiInfo([([b"\xe9t\xe9"], 3)], name=b"\xe9")
        info[b"name.utf-8"] = "\u00e9".encode()
        info[b"files"][0][b"path.utf-8"] = ["\u00e9t\u00e9".encode()]
        m = load(torrent(info))
        self.assertEqual(m.name, "\u00e9")
        self.assertEqual(m.files[0].path, ("\u00e9t\u00e9",))

    def test_nonUTF8Names(self) -> None:
        """
        Names that are not UTF-8 decode with surrogate escapes, so that
        C{os.fsencode} gives back the original bytes.
        """
        m = load(torrent(multiInfo([([b"caf\xe9"], 3)], name=b"\xff\xfe")))
        self.assertEqual(os.fsencode(m.name), b"\xff\xfe")
        self.assertEqual(os.fsencode(m.files[0].path[0]), b"caf\xe9")
        self.assertEqual(metainfo.displayPath(m.files[0].path), "caf\ufffd")

    def test_manyTrackers(self) -> None:
        """
        Only the first L{metainfo.MAX_TRACKERS} tracker URLs (all tiers) are
        kept, with a warning: every one would be announced to, and a torrent
        listing a host's every port would have us connect to each.
        """
        tiers = [
            [b"http://10.0.0.5:%d/announce" % port for port in range(t, t + 30)]
            for t in range(1, 3000, 30)
        ]
        m = load(torrent(singleInfo(), announce_list=tiers))
        urls = [url for tier in m.trackers for url in tier]
        self.assertEqual(len(urls), metainfo.MAX_TRACKERS)
        self.assertEqual(urls[0], "http://10.0.0.5:1/announce")
        self.assertIn(
            f"announce-list: {3000 - 1 - metainfo.MAX_TRACKERS + 1} trackers beyond "
            f"the first {metainfo.MAX_TRACKERS}; ignored",
            m.warnings,
        )

    def test_announceList(self) -> None:
        """
        C{announce-list} gives the tiers; empty tiers and duplicates are
        dropped; without it, C{announce} alone is the only tier.
        """
        m = load(
            torrent(
                singleInfo(),
                announce_list=[
                    [b"http://127.0.0.1:1/a", b"http://127.0.0.1:2/b"],
                    [],
                    [b"http://127.0.0.1:1/a", b"udp://127.0.0.1:3"],
                ],
            )
        )
        self.assertEqual(m.announce, "http://127.0.0.1:6969/announce")
        self.assertEqual(
            m.trackers,
            (
                ("http://127.0.0.1:1/a", "http://127.0.0.1:2/b"),
                ("udp://127.0.0.1:3",),
            ),
        )
        m = load(bencode.encode({b"info": singleInfo()}))
        self.assertIsNone(m.announce)
        self.assertEqual(m.trackers, ())

    def test_private(self) -> None:
        """
        C{private} is true for any non-zero integer (as libtorrent reads
        it: the safe side), false for 0 or when absent.
        """
        self.assertTrue(load(torrent(singleInfo(private=1))).private)
        self.assertTrue(load(torrent(singleInfo(private=2))).private)
        self.assertTrue(load(torrent(singleInfo(private=-1))).private)
        self.assertFalse(load(torrent(singleInfo(private=0))).private)
        self.assertFalse(load(torrent(singleInfo())).private)

    def test_privateMalformed(self) -> None:
        """
        A C{private} that is not an integer makes the torrent private (the
        safe side), with a warning, rather than refusing it.
        """
        for value in [b"1", b"", [0], {}]:
            m = load(torrent(singleInfo(private=value)))
            self.assertTrue(m.private)
            self.assertEqual(len(m.warnings), 1)
            self.assertIn("info.private: expected an integer", m.warnings[0])
            self.assertIn("taken as private", m.warnings[0])

    def test_trailingData(self) -> None:
        """
        Bytes after the top-level dictionary (a trailing newline, junk) are
        ignored, as libtorrent ignores them: the torrent loads with the same
        info-hash, by L{load} and by L{loadFile}.
        """
        data = torrent(singleInfo())
        expected = load(data)
        for tail in [b"\n", b"\r\n", b"\x00" * 100, b"d4:infodee", b"garbage"]:
            m = load(data + tail)
            self.assertEqual(m.infoHash, expected.infoHash, tail)
            self.assertEqual(m.infoBytes, expected.infoBytes, tail)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data + b"\n")
        self.assertEqual(loadFile(path).infoHash, expected.infoHash)
        # The dictionary itself is still strictly checked.
        self.assertRaises(MetainfoError, load, data[:-1] + b"\n")
        self.assertRaises(MetainfoError, load, b"\n" + data)

    def test_displayOnlyFieldsIgnoredWhenWronglyTyped(self) -> None:
        """
        A wrongly typed C{comment}, C{created by}, C{creation date} or
        C{url-list} is ignored, as other clients do, with a warning naming
        each.
        """
        m = load(
            torrent(
                singleInfo(),
                comment=[1],
                created_by=5,
                creation_date=b"yesterday",
                url_list=7,
            )
        )
        self.assertEqual(
            (m.comment, m.createdBy, m.creationDate, m.urlList), (None, None, None, ())
        )
        self.assertEqual(
            [w.split(":")[0] for w in m.warnings],
            ["url-list", "comment", "created by", "creation date"],
        )

    def test_loadFile(self) -> None:
        """
        L{loadFile} reads a file.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(torrent(singleInfo()))
        self.assertEqual(loadFile(path).name, "file.bin")
        self.assertRaises(OSError, loadFile, path + ".missing")


class LoadFileSpecialTests(SynchronousTestCase):
    """
    L{loadFile} refuses anything but a regular file, without blocking.
    """

    def fifo(self) -> str:
        """
        A new FIFO (that nothing ever writes to).
        """
        path = os.path.abspath(self.mktemp())
        os.mkfifo(path)
        return path

    def test_fifo(self) -> None:
        """
        A FIFO is refused with an L{OSError} saying what it is, at once
        (reading it would block for ever).
        """
        path = self.fifo()
        e = self.assertRaises(OSError, callUnblocked, self, path, loadFile, path)
        self.assertEqual(e.strerror, "not a regular file (a FIFO)")
        self.assertEqual(e.filename, path)

    def test_symlinkToFIFO(self) -> None:
        """
        A symbolic link is followed, and a link to a FIFO is refused too.
        """
        path = self.fifo()
        link = os.path.abspath(self.mktemp())
        os.symlink(path, link)
        e = self.assertRaises(OSError, callUnblocked, self, path, loadFile, link)
        self.assertIn("a FIFO", e.strerror)

    def test_replacedByFIFO(self) -> None:
        """
        A path that was a regular file when checked but is a FIFO when
        opened (a race) is refused too: the opened file is checked, and it
        is opened without blocking.
        """
        path = self.fifo()
        regular = self.mktemp()
        with open(regular, "wb") as f:
            f.write(torrent(singleInfo()))
        realStat = os.stat

        def fakeStat(p, *args, **kwargs):
            return realStat(regular if p == path else p, *args, **kwargs)

        self.patch(os, "stat", fakeStat)
        e = self.assertRaises(OSError, callUnblocked, self, path, loadFile, path)
        self.assertEqual(e.strerror, "not a regular file (a FIFO)")

    def test_device(self) -> None:
        """
        A device is refused (not read as an empty or endless torrent).
        """
        e = self.assertRaises(OSError, loadFile, os.devnull)
        self.assertEqual(e.strerror, "not a regular file (a character device)")

    def test_directory(self) -> None:
        """
        A directory is an L{IsADirectoryError}.
        """
        path = self.mktemp()
        os.makedirs(path)
        e = self.assertRaises(IsADirectoryError, loadFile, path)
        self.assertEqual(e.errno, errno.EISDIR)


class RejectTests(SynchronousTestCase):
    """
    Each validation rule, with an error that names the field.
    """

    def assertRejected(self, data: bytes, *words: str) -> None:
        """
        L{load} raises L{MetainfoError} whose message contains C{words}.
        """
        e = self.assertRaises(MetainfoError, load, data)
        for w in words:
            self.assertIn(w, str(e))

    def test_notBencode(self) -> None:
        """
        Bencoding errors are L{MetainfoError}s too.
        """
        self.assertRejected(b"d4:info", "bencoded")
        self.assertRejected(b"", "bencoded")

    def test_notBytes(self) -> None:
        """
        Only bytes are accepted.
        """
        self.assertRaises(MetainfoError, load, "d4:infodee")

    def test_topNotDict(self) -> None:
        """
        The top level must be a dictionary.
        """
        self.assertRejected(b"li1ee", "dictionary")

    def test_missingInfo(self) -> None:
        """
        C{info} is required and must be a dictionary.
        """
        self.assertRejected(bencode.encode({b"announce": b"x"}), "info")
        self.assertRejected(bencode.encode({b"info": b"x"}), "info", "dictionary")

    def test_missingKeys(self) -> None:
        """
        C{name}, C{piece length} and C{pieces} are required.
        """
        for key in (b"name", b"piece length", b"pieces"):
            info = singleInfo()
            del info[key]
            self.assertRejected(torrent(info), key.decode(), "missing")

    def test_wrongTypes(self) -> None:
        """
        Wrongly typed keys are named.
        """
        for key, value in [
            (b"name", 5),
            (b"piece length", b"64"),
            (b"pieces", [b"x"]),
            (b"length", b"100"),
        ]:
            info = singleInfo()
            info[key] = value
            self.assertRejected(torrent(info), key.decode())
        info = multiInfo([([b"a"], 1)])
        info[b"files"] = {b"a": 1}
        self.assertRejected(torrent(info), "files", "list")
        info = multiInfo([([b"a"], 1)])
        info[b"files"] = [b"a"]
        self.assertRejected(torrent(info), "files[0]", "dictionary")
        info = multiInfo([([b"a"], 1)])
        info[b"files"][0][b"path"] = b"a"
        self.assertRejected(torrent(info), "files[0].path")
        info = multiInfo([([b"a", 5], 1)])
        self.assertRejected(torrent(info), "files[0].path[1]")
        info = multiInfo([([b"a"], 1)])
        info[b"files"][0][b"path.utf-8"] = [3]
        self.assertRejected(torrent(info), "files[0].path.utf-8[0]", "an integer")
        info = multiInfo([([b"a"], 1)])
        info[b"files"][0][b"length"] = b"1"
        self.assertRejected(torrent(info), "files[0].length", "a string")

    def test_pieceLengthNotPositive(self) -> None:
        """
        The piece length must be positive.
        """
        info = singleInfo()
        info[b"piece length"] = 0
        self.assertRejected(torrent(info), "piece length", "not positive")
        info = singleInfo()
        info[b"piece length"] = -64
        self.assertRejected(torrent(info), "piece length", "not positive")

    def test_pieceLengthTooLarge(self) -> None:
        """
        The piece length is at most 64 MiB.
        """
        self.assertEqual(
            len(load(torrent(singleInfo(pieceLength=2**26))).pieceHashes), 1
        )
        self.assertRejected(
            torrent(singleInfo(pieceLength=2**26 + 1)), "piece length", "above"
        )

    def test_piecesNotMultipleOf20(self) -> None:
        """
        C{pieces} must be a whole number of SHA-1 hashes.
        """
        info = singleInfo()
        info[b"pieces"] += b"x"
        self.assertRejected(torrent(info), "pieces", "multiple of 20")

    def test_pieceCountMismatch(self) -> None:
        """
        The number of hashes must match the total length.
        """
        info = singleInfo(length=100, pieceLength=64)
        info[b"pieces"] = b"x" * 20
        self.assertRejected(torrent(info), "pieces", "1 hashes for 2 pieces")
        info[b"pieces"] = b"x" * 60
        self.assertRejected(torrent(info), "pieces", "3 hashes for 2 pieces")

    def test_tooManyPieces(self) -> None:
        """
        More than 2**21 pieces are refused.
        """
        info = singleInfo(length=(MAX_PIECE_COUNT + 1) * 16, pieceLength=16)
        info[b"pieces"] = b""
        self.assertRejected(torrent(info), "pieces", str(MAX_PIECE_COUNT))

    def test_negativeLength(self) -> None:
        """
        Negative lengths are refused, single- or multi-file.
        """
        info = singleInfo()
        info[b"length"] = -1
        self.assertRejected(torrent(info), "length", "negative")
        self.assertRejected(
            torrent(multiInfo([([b"a"], 100), ([b"b"], -1)])),
            "files[1].length",
            "negative",
        )

    def test_zeroTotal(self) -> None:
        """
        A torrent with no data at all is refused.
        """
        info = singleInfo(length=0)
        self.assertRejected(torrent(info), "total length is 0")

    def test_tooLarge(self) -> None:
        """
        A torrent file over 10 MB is refused, by L{load} and L{loadFile}.
        """
        pad = b"x" * (MAX_TORRENT_SIZE)
        data = bencode.encode({b"info": singleInfo(), b"junk": pad})
        self.assertRejected(data, "too large")
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        e = self.assertRaises(MetainfoError, loadFile, path)
        self.assertIn("too large", str(e))

    def test_lengthAndFiles(self) -> None:
        """
        Neither C{length} nor C{files} is an error; with both, C{files}
        gives the files (as libtorrent reads it), with a warning.
        """
        info = multiInfo([([b"a"], 100)])
        info[b"length"] = 5
        m = load(torrent(info))
        self.assertEqual((m.multiFile, m.totalLength), (True, 100))
        self.assertIn("'length' ignored", m.warnings[0])
        info = singleInfo()
        del info[b"length"]
        self.assertRejected(torrent(info), "neither")

    def test_emptyFiles(self) -> None:
        """
        An empty C{files} list, or an empty path, is refused.
        """
        self.assertRejected(torrent(multiInfo([])), "files", "empty")
        self.assertRejected(
            torrent(multiInfo([([], 100)])), "files[0].path", "names no file"
        )

    def test_unsafeNames(self) -> None:
        """
        An unsafe C{name} is refused, naming it.
        """
        for name in [b"", b".", b"..", b"a/b", b"a\\b", b"a\x00b", b"C:", b"c:x"]:
            self.assertRejected(torrent(singleInfo(name=name)), "info.name")
        info = singleInfo(name=b"ok")
        info[b"name.utf-8"] = b".."
        self.assertRejected(torrent(info), "info.name", "'..'")

    def test_unsafePaths(self) -> None:
        """
        An unsafe path component is refused, naming the path.
        """
        for bad, why in [
            (b"..", "'..' leads out of its directory"),
            (b"x/y", "'x/y' contains '/'"),
            (b"x\\y", "'x\\\\y' contains '\\'"),
            (b"x\x00", "'x\\x00' contains NUL"),
            (b"D:", "'D:' is a drive"),
            (b"/abs", "'/abs' contains '/'"),
        ]:
            e = self.assertRaises(
                MetainfoError, load, torrent(multiInfo([([b"ok", bad], 100)]))
            )
            self.assertIn("files[0].path 'ok/", str(e))
            self.assertIn("unsafe path component: " + why, str(e))
        info = multiInfo([([b"ok"], 100)])
        info[b"files"][0][b"path.utf-8"] = [b"..", b"etc"]
        self.assertRejected(torrent(info), "'../etc'", "'..' leads out")

    def test_emptyComponents(self) -> None:
        """
        Empty and C{.} components are dropped when others name the file
        (Transmission bug 5517); a path of nothing else is refused.
        """
        m = load(
            torrent(
                multiInfo(
                    [
                        ([b"", b"a", b"", b"b"], 10),
                        ([b".", b"c", b""], 5),
                        ([b"a", b".", b"d"], 1),
                    ]
                )
            )
        )
        self.assertEqual([f.path for f in m.files], [("a", "b"), ("c",), ("a", "d")])
        for path in [[b""], [b"", b""], [b".", b""], [b"."]]:
            self.assertRejected(
                torrent(multiInfo([([b"a"], 10), (path, 5)])),
                "info.files[1].path",
                "the path names no file",
            )
        # Dropping them cannot make a duplicate pass unseen.
        self.assertRejected(
            torrent(multiInfo([([b"a", b"b"], 10), ([b"a", b"", b"b"], 5)])),
            "duplicate",
        )

    def test_duplicatePaths(self) -> None:
        """
        A path that is given twice, or is both a file and a directory, is
        refused.
        """
        self.assertRejected(
            torrent(multiInfo([([b"a"], 50), ([b"a"], 50)])), "duplicate"
        )
        self.assertRejected(
            torrent(multiInfo([([b"a"], 50), ([b"a", b"b"], 50)])), "also a file"
        )
        self.assertRejected(
            torrent(multiInfo([([b"a", b"b"], 50), ([b"a"], 50)])), "also a directory"
        )

        # Not only neighbours: the conflict is found wherever it stands.
        self.assertRejected(
            torrent(
                multiInfo([([b"a", b"b", b"c"], 1), ([b"z"], 1), ([b"a", b"b"], 1)])
            ),
            "also a directory",
        )
        self.assertRejected(
            torrent(
                multiInfo([([b"a", b"b"], 1), ([b"a", b"a"], 1), ([b"a", b"b"], 1)])
            ),
            "files[2].path 'a/b': duplicate",
        )

    def test_deepPathsCostLinearTime(self) -> None:
        """
        Checking files against directories costs time in proportion to the
        number of path components, not to their square: a thousand paths
        as deep as allowed load quickly, and a conflict among them is
        found and named briefly.
        """
        import time

        deep = [b"d"] * (MAX_PATH_DEPTH - 1)
        files = [(deep + [b"%d" % i], 1) for i in range(1000)]
        data = torrent(multiInfo(files))
        start = time.process_time()
        m = load(data)
        elapsed = time.process_time() - start
        self.assertEqual(len(m.files[999].path), MAX_PATH_DEPTH)
        self.assertLess(elapsed, 2.0)
        files.append((deep[:100], 1))
        e = self.assertRaises(MetainfoError, load, torrent(multiInfo(files)))
        self.assertIn("files[1000].path 'd/d/", str(e))
        self.assertIn("also a directory", str(e))
        # The message names the path, not all of it.
        self.assertLess(len(str(e)), 500)

    def test_pathBounds(self) -> None:
        """
        A path deeper than L{MAX_PATH_DEPTH} components (a hostile torrent's
        10,000) or longer than L{MAX_PATH_BYTES} bytes with the name is
        refused at once with one short line saying the numbers.
        """
        for depth in [MAX_PATH_DEPTH + 1, 10000, 100000]:
            e = self.assertRaises(
                MetainfoError,
                load,
                torrent(multiInfo([([b"a"], 1), ([b"d"] * depth, 1)])),
            )
            self.assertIn("info.files[1].path 'd/d/d/", str(e))
            self.assertIn(f": {depth} components, more than {MAX_PATH_DEPTH}", str(e))
            self.assertNotIn("\n", str(e))
            self.assertLess(len(str(e)), 400)
        # Empty components do not count.
        m = load(torrent(multiInfo([([b""] * 10000 + [b"a"], 1)])))
        self.assertEqual(m.files[0].path, ("a",))
        # Bytes: the name (3 bytes, "dir") and a slash count.
        name = MAX_PATH_BYTES - 4
        ok = [b"x" * 200] * (name // 201) + [b"y" * (name % 201)]
        self.assertEqual(len(b"dir/" + b"/".join(ok)), MAX_PATH_BYTES)
        load(torrent(multiInfo([(ok, 1)])))
        e = self.assertRaises(
            MetainfoError, load, torrent(multiInfo([(ok[:-1] + [ok[-1] + b"z"], 1)]))
        )
        self.assertIn(f"{MAX_PATH_BYTES + 1} bytes with the name", str(e))
        self.assertIn(f"more than {MAX_PATH_BYTES}", str(e))


class CreateTests(SynchronousTestCase):
    """
    L{create}.
    """

    def write(self, path: str, data: bytes) -> None:
        """
        Write C{data} to C{path}, making directories.
        """
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def test_singleFile(self) -> None:
        """
        A file becomes a single-file torrent with correct piece hashes and
        the given metadata.
        """
        root = self.mktemp()
        data = os.urandom(100000)
        self.write(os.path.join(root, "f.bin"), data)
        seen = []
        raw = create(
            os.path.join(root, "f.bin"),
            [["http://127.0.0.1:1/a"]],
            pieceLength=32768,
            private=True,
            comment="c",
            progress=lambda done, total: seen.append((done, total)),
        )
        m = load(raw)
        self.assertEqual(m.name, "f.bin")
        self.assertFalse(m.multiFile)
        self.assertEqual(m.totalLength, 100000)
        self.assertEqual(m.pieceLength, 32768)
        self.assertEqual(
            m.pieceHashes,
            tuple(
                hashlib.sha1(data[i : i + 32768]).digest()
                for i in range(0, 100000, 32768)
            ),
        )
        self.assertTrue(m.private)
        self.assertEqual(m.comment, "c")
        self.assertEqual(m.createdBy, "btorrent/0.1.0")
        self.assertIsInstance(m.creationDate, int)
        self.assertEqual(m.announce, "http://127.0.0.1:1/a")
        self.assertNotIn(b"announce-list", bencode.decode(raw))
        self.assertEqual(seen[-1], (100000, 100000))

    def test_directory(self) -> None:
        """
        A directory becomes a multi-file torrent of its regular files in
        sorted path order; pieces span file boundaries; symlinks and empty
        directories are left out; zero-length files kept.
        """
        root = self.mktemp()
        blobs = {
            ("b",): os.urandom(20000),
            ("a", "z"): os.urandom(30000),
            ("a", "y", "x"): os.urandom(17),
            ("e",): b"",
        }
        for parts, blob in blobs.items():
            self.write(os.path.join(root, *parts), blob)
        os.makedirs(os.path.join(root, "emptydir"))
        os.symlink(os.path.abspath(os.path.join(root, "b")), os.path.join(root, "l"))
        os.symlink("/", os.path.join(root, "rootlink"))
        os.mkfifo(os.path.join(root, "fifo"))
        m = load(
            create(
                root,
                [["http://127.0.0.1:1/a"], ["http://127.0.0.1:2/b", "udp://x:1"]],
                pieceLength=16384,
            )
        )
        self.assertTrue(m.multiFile)
        self.assertEqual(
            [f.path for f in m.files], [("a", "y", "x"), ("a", "z"), ("b",), ("e",)]
        )
        stream = b"".join(blobs[f.path] for f in m.files)
        self.assertEqual(m.totalLength, len(stream))
        self.assertEqual(
            m.pieceHashes,
            tuple(
                hashlib.sha1(stream[i : i + 16384]).digest()
                for i in range(0, len(stream), 16384)
            ),
        )
        self.assertEqual(
            m.trackers,
            (("http://127.0.0.1:1/a",), ("http://127.0.0.1:2/b", "udp://x:1")),
        )

    def test_manyChunks(self) -> None:
        """
        Inputs larger than one read chunk (8 MiB) hash correctly.
        """
        root = self.mktemp()
        blob = os.urandom(1 << 20) * 9 + b"tail"
        self.write(os.path.join(root, "big"), blob)
        m = load(create(os.path.join(root, "big"), [], pieceLength=1 << 20))
        self.assertEqual(m.pieceCount, 10)
        self.assertEqual(m.pieceHashes[-1], hashlib.sha1(b"tail").digest())
        self.assertEqual(m.pieceHashes[3], hashlib.sha1(blob[: 1 << 20]).digest())
        self.assertEqual(m.trackers, ())

    def test_nonUTF8Name(self) -> None:
        """
        A file name that is not UTF-8 is written with its raw bytes, and
        loads back to the same file name.
        """
        root = self.mktemp()
        os.makedirs(root)
        name = os.fsdecode(b"caf\xe9")
        self.write(os.path.join(root, name), b"x")
        m = load(create(root, []))
        self.assertEqual(m.files[0].path, (name,))
        self.assertIn(b"4:caf\xe9", m.infoBytes)

    def test_autoPieceLength(self) -> None:
        """
        The automatic piece length is a power of two from 16 KiB to 16 MiB
        giving 1000 to 2000 pieces where possible.
        """
        self.assertEqual(autoPieceLength(1), 16384)
        self.assertEqual(autoPieceLength(1 << 30), 1 << 20)
        self.assertEqual(autoPieceLength(1 << 50), 16 << 20)
        for size in [10**8, 3 * 10**9, 2**33 + 5]:
            p = autoPieceLength(size)
            self.assertEqual(p & (p - 1), 0)
            self.assertTrue(1000 <= -(-size // p) <= 2000, (size, p))

    def test_badPieceLength(self) -> None:
        """
        A given piece length must be a power of two from 16 KiB to 64 MiB.
        """
        path = self.mktemp()
        self.write(path, b"x")
        for bad in [0, -16384, 1000, 8192, 2**27, 3 * 16384]:
            e = self.assertRaises(MetainfoError, create, path, [], pieceLength=bad)
            self.assertIn("piece length", str(e))

    def test_refusals(self) -> None:
        """
        A missing path, an empty directory and zero bytes are refused.
        """
        root = self.mktemp()
        self.assertRaises(MetainfoError, create, root, [])
        os.makedirs(os.path.join(root, "d"))
        self.assertRaises(MetainfoError, create, root, [])
        self.write(os.path.join(root, "d", "empty"), b"")
        e = self.assertRaises(MetainfoError, create, root, [])
        self.assertIn("total size is 0", str(e))
        self.assertRaises(MetainfoError, create, "/dev/null", [])

    def test_specialFilesSkippedWithWarning(self) -> None:
        """
        FIFOs and sockets in a tree are left out, each reported once through
        C{warn}, and never opened; symbolic links (to a FIFO too) are left
        out silently, as before.
        """
        root = os.path.abspath(self.mktemp())
        self.write(os.path.join(root, "a"), b"data")
        fifo = os.path.join(root, "sub", "fifo")
        os.makedirs(os.path.dirname(fifo))
        os.mkfifo(fifo)
        os.symlink(fifo, os.path.join(root, "link"))
        warnings = []
        m = load(
            callUnblocked(
                self, fifo, create, root, [], pieceLength=16384, warn=warnings.append
            )
        )
        self.assertEqual([f.path for f in m.files], [("a",)])
        self.assertEqual(warnings, [f"skipping {fifo}: a FIFO, not a regular file"])

    def test_specialTopLevel(self) -> None:
        """
        A FIFO given as the path, or a symbolic link to one, is refused,
        naming the path and what it is.
        """
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        fifo = os.path.join(root, "fifo")
        os.mkfifo(fifo)
        link = os.path.join(root, "link")
        os.symlink(fifo, link)
        for path in [fifo, link]:
            e = self.assertRaises(
                MetainfoError, callUnblocked, self, fifo, create, path, []
            )
            self.assertEqual(str(e), f"{path}: a FIFO, not a regular file or directory")

    def test_replacedByFIFO(self) -> None:
        """
        A file that is a FIFO by the time it is hashed (listed as a regular
        file, then replaced) is refused with an L{OSError} rather than
        blocking the hashing for ever.
        """
        root = os.path.abspath(self.mktemp())
        regular = os.path.join(root, "regular")
        self.write(regular, b"x" * 100)
        fifo = os.path.join(root, "fifo")
        os.mkfifo(fifo)
        realStat = os.stat

        def fakeStat(p, *args, **kwargs):
            return realStat(regular if p == fifo else p, *args, **kwargs)

        self.patch(os, "stat", fakeStat)
        e = self.assertRaises(OSError, callUnblocked, self, fifo, create, fifo, [])
        self.assertEqual(e.strerror, "not a regular file (a FIFO)")

    def test_replacedBySymlink(self) -> None:
        """
        A file in a tree that is a symbolic link by the time it is hashed is
        refused: links in a tree are never followed.
        """
        root = os.path.abspath(self.mktemp())
        self.write(os.path.join(root, "a"), b"x" * 100)
        outside = os.path.abspath(self.mktemp())
        self.write(outside, b"secret")
        realWalk = metainfo._walk

        def walkThenReplace(top, warn=None):
            listing = realWalk(top, warn)
            os.remove(os.path.join(root, "a"))
            os.symlink(outside, os.path.join(root, "a"))
            return listing

        self.patch(metainfo, "_walk", walkThenReplace)
        e = self.assertRaises(OSError, create, root, [])
        self.assertEqual(e.strerror, "not a regular file (a symbolic link)")

    def sparse(self, size: int) -> str:
        """
        A sparse file of C{size} bytes (nothing written to disk).
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    def noHashing(self) -> list:
        """
        Make hashing record its calls (and give zero hashes) instead of
        reading anything; return the list of calls.
        """
        calls = []

        def hashFiles(files, totalLength, pieceLength, progress, noFollow=False):
            calls.append(files)
            return bytes(20 * -(-totalLength // pieceLength))

        self.patch(metainfo, "_hashFiles", hashFiles)
        return calls

    def test_tooLargeBeforeHashing(self) -> None:
        """
        A piece length that would make the torrent bigger than
        L{MAX_TORRENT_SIZE} (9 GiB in pieces of 16 KiB: 11.8 MB of hashes)
        is refused before anything is hashed, naming the smallest piece
        length that fits.
        """
        calls = self.noHashing()
        path = self.sparse(9 << 30)
        e = self.assertRaises(MetainfoError, create, path, [], pieceLength=16384)
        self.assertIn("more than the 10485760 a client loads", str(e))
        self.assertIn("choose a larger --piece-length (at least 32K)", str(e))
        self.assertEqual(calls, [])
        load(create(path, [], pieceLength=32768))
        self.assertEqual(len(calls), 1)

    def test_tooManyPiecesBeforeHashing(self) -> None:
        """
        More than L{MAX_PIECE_COUNT} pieces is refused before hashing too.
        """
        calls = self.noHashing()
        path = self.sparse(MAX_PIECE_COUNT * (1 << 20) + 1)
        e = self.assertRaises(MetainfoError, create, path, [], pieceLength=1 << 20)
        self.assertIn(f"more than {MAX_PIECE_COUNT}", str(e))
        self.assertIn("--piece-length (at least 8M)", str(e))
        self.assertEqual(calls, [])

    def test_sizeLimitExact(self) -> None:
        """
        The size checked before hashing is the size of the torrent written:
        a limit of exactly that size passes, one byte less does not.  An
        automatic piece length grows to fit instead of failing.
        """
        path = os.path.abspath(self.mktemp())
        self.write(path, os.urandom(100000))
        comment = "x" * 1000
        raw = create(path, [["http://127.0.0.1:1/a"]], 16384, comment=comment)
        self.patch(metainfo, "MAX_TORRENT_SIZE", len(raw))
        again = create(path, [["http://127.0.0.1:1/a"]], 16384, comment=comment)
        self.assertEqual(len(again), len(raw))
        self.patch(metainfo, "MAX_TORRENT_SIZE", len(raw) - 1)
        e = self.assertRaises(
            MetainfoError,
            create,
            path,
            [["http://127.0.0.1:1/a"]],
            16384,
            comment=comment,
        )
        self.assertIn("at least 32K", str(e))
        m = load(create(path, [["http://127.0.0.1:1/a"]], comment=comment))
        self.assertEqual(m.pieceLength, 32768)
        self.patch(metainfo, "MAX_TORRENT_SIZE", 1000)
        e = self.assertRaises(MetainfoError, create, path, [], comment=comment)
        self.assertIn("too many files or too much data", str(e))

    def test_unsafeFileName(self) -> None:
        """
        A file whose name other clients would refuse (a backslash) makes
        L{create} fail, naming it.
        """
        root = self.mktemp()
        self.write(os.path.join(root, "a\\b"), b"x")
        e = self.assertRaises(MetainfoError, create, root, [])
        self.assertIn("a\\\\b", str(e))


class LenientTests(SynchronousTestCase):
    """
    A malformed optional field costs that field (or its bad part), with a
    warning, never the torrent; the fields a download needs stay strict.
    """

    def assertWarned(self, data: bytes, *words: str) -> metainfo.Metainfo:
        """
        L{load} succeeds with one warning containing C{words}.
        """
        m = load(data)
        self.assertEqual(len(m.warnings), 1, m.warnings)
        for w in words:
            self.assertIn(w, m.warnings[0])
        return m

    def test_wellFormedNoWarnings(self) -> None:
        """
        A well-formed torrent has no warnings.
        """
        m = load(
            torrent(
                singleInfo(),
                announce_list=[[b"http://127.0.0.1:1/a"]],
                url_list=[b"http://127.0.0.1:2/"],
                comment=b"c",
                created_by=b"me",
                creation_date=5,
            )
        )
        self.assertEqual(m.warnings, ())

    def test_announceListEmptyString(self) -> None:
        """
        C{announce-list} as an empty string (webtorrent's
        C{leaves-empty-announce-list.torrent}) is ignored: C{announce}
        is the tracker.
        """
        m = self.assertWarned(
            torrent(singleInfo(), announce_list=b""),
            "announce-list: expected a list of lists, got a string; ignored",
        )
        self.assertEqual(m.trackers, (("http://127.0.0.1:6969/announce",),))

    def test_announceListFlat(self) -> None:
        """
        A flat C{announce-list} (URLs where tiers belong) is skipped tier by
        tier, as libtorrent skips it.
        """
        m = self.assertWarned(
            torrent(
                singleInfo(),
                announce_list=[b"http://127.0.0.1:1/a", [b"http://127.0.0.1:2/b"]],
            ),
            "announce-list: 1 of 2 tiers are not lists; ignored",
        )
        self.assertEqual(m.trackers, (("http://127.0.0.1:2/b",),))
        m = self.assertWarned(
            torrent(singleInfo(), announce_list=[b"http://127.0.0.1:1/a"]),
            "1 of 1 tiers",
        )
        self.assertEqual(m.trackers, (("http://127.0.0.1:6969/announce",),))

    def test_announceListBadURL(self) -> None:
        """
        An integer inside a tier is skipped; the rest of the tier stays.
        """
        m = self.assertWarned(
            torrent(
                singleInfo(),
                announce_list=[[1, b"http://127.0.0.1:1/a", [b"x"]], [2]],
            ),
            "announce-list: 3 URLs are not strings; ignored",
        )
        self.assertEqual(m.trackers, (("http://127.0.0.1:1/a",),))

    def test_announceNotString(self) -> None:
        """
        An integer C{announce} is ignored; C{announce-list} still counts.
        """
        data = bencode.encode({b"announce": 5, b"info": singleInfo()})
        m = self.assertWarned(data, "announce: expected a string, got an integer")
        self.assertEqual((m.announce, m.trackers), (None, ()))
        data = bencode.encode(
            {
                b"announce": [b"http://127.0.0.1:1/a"],
                b"announce-list": [[b"http://127.0.0.1:2/b"]],
                b"info": singleInfo(),
            }
        )
        m = self.assertWarned(data, "announce: expected a string, got a list")
        self.assertEqual(m.trackers, (("http://127.0.0.1:2/b",),))

    def test_urlList(self) -> None:
        """
        C{url-list}: a string or a list of strings; an empty string is no
        web seed (no warning); anything else is ignored with a warning.
        """
        m = load(torrent(singleInfo(), url_list=b""))
        self.assertEqual((m.urlList, m.warnings), ((), ()))
        m = self.assertWarned(
            torrent(singleInfo(), url_list=[b"http://127.0.0.1:1/", 7, b""]),
            "url-list: 1 URLs are not strings",
        )
        self.assertEqual(m.urlList, ("http://127.0.0.1:1/",))
        m = self.assertWarned(
            torrent(singleInfo(), url_list={b"a": b"b"}), "url-list", "dictionary"
        )
        self.assertEqual(m.urlList, ())

    def test_utf8Variants(self) -> None:
        """
        A C{name.utf-8} or C{path.utf-8} of the wrong type is ignored in
        favour of C{name} or C{path}.
        """
        info = singleInfo()
        info[b"name.utf-8"] = 1
        m = self.assertWarned(
            torrent(info),
            "info.name.utf-8: expected a string, got an integer; 'name' used",
        )
        self.assertEqual(m.name, "file.bin")
        info = multiInfo([([b"a"], 3)])
        info[b"files"][0][b"path.utf-8"] = b"b"
        m = self.assertWarned(torrent(info), "info.files[0].path.utf-8")
        self.assertEqual(m.files[0].path, ("a",))
        # path.utf-8 alone is enough.
        info = multiInfo([([b"a"], 3)])
        info[b"files"][0][b"path.utf-8"] = info[b"files"][0].pop(b"path")
        self.assertEqual(load(torrent(info)).files[0].path, ("a",))

    def test_attrNotString(self) -> None:
        """
        An C{attr} that is not a string is ignored.
        """
        info = multiInfo([([b"a"], 3)])
        info[b"files"][0][b"attr"] = 1
        m = self.assertWarned(torrent(info), "info.files[0].attr")
        self.assertFalse(m.files[0].padding)

    def test_warningsBounded(self) -> None:
        """
        A torrent with a million bad URLs has L{MAX_WARNINGS} warnings and a
        count, not a million lines.
        """
        m = load(
            torrent(
                singleInfo(),
                announce_list=[[1] * 1000] * 30,
                url_list=[1] * 10,
                comment=1,
                **{
                    "created_by": 1,
                    "creation_date": b"x",
                },
            )
        )
        self.assertEqual(len(m.warnings), 5)
        self.assertIn("30000 URLs", m.warnings[0])
        info = multiInfo([([b"f%d" % i], 1) for i in range(100)])
        for entry in info[b"files"]:
            entry[b"attr"] = 5
        m = load(torrent(info))
        self.assertEqual(len(m.warnings), metainfo.MAX_WARNINGS + 1)
        self.assertEqual(m.warnings[-1], "... and 80 more warnings")

    def test_requiredStayStrict(self) -> None:
        """
        The fields a download needs are never guessed at.
        """
        for key in (b"name", b"piece length", b"pieces"):
            info = singleInfo()
            info[key] = [1]
            self.assertRaises(MetainfoError, load, torrent(info))
        info = multiInfo([([b"a"], 3)])
        del info[b"files"][0][b"length"]
        e = self.assertRaises(MetainfoError, load, torrent(info))
        self.assertIn("info.files[0].: missing 'length'", str(e))
        info = multiInfo([([b"a"], 3)])
        del info[b"files"][0][b"path"]
        e = self.assertRaises(MetainfoError, load, torrent(info))
        self.assertIn("info.files[0].: missing 'path'", str(e))


def attrInfo(*entries):
    """
    A multi-file C{info} of C{(path, length, attr, extra)} entries (attr
    and extra may be C{None}).
    """
    info = multiInfo([(path, length or 0) for path, length, _, _ in entries])
    for raw, (_, length, attr, extra) in zip(info[b"files"], entries):
        if attr is not None:
            raw[b"attr"] = attr
        if length is None:
            del raw[b"length"]
        raw.update(extra or {})
    return info


class AttributeTests(SynchronousTestCase):
    """
    BEP 47 file attributes, as libtorrent reads them.
    """

    def test_padFiles(self) -> None:
        """
        C{p} marks a pad file; so does BitComet's old C{_____padding_file_}
        name without C{attr}.  A pad file needs no path, and any path it has
        is never checked (it is never on disk).
        """
        m = load(
            torrent(
                attrInfo(
                    ([b"a"], 10, None, None),
                    ([b".pad", b"54"], 54, b"p", None),
                    ([b"b"], 10, None, None),
                    ([b"_____padding_file_0_BitComet"], 54, None, None),
                    ([b"c"], 10, None, None),
                    ([b"x"], 44, b"p", {b"path": [b"..", b"/etc"]}),
                    ([b"d"], 1, None, None),
                )
            )
        )
        self.assertEqual(
            [f.padding for f in m.files], [False, True, False, True, False, True, False]
        )
        self.assertEqual(m.files[5].path, (".pad", "44"))
        info = attrInfo(([b"a"], 10, None, None), ([b"x"], 54, b"p", None))
        del info[b"files"][1][b"path"]
        m = load(torrent(info))
        self.assertEqual(m.files[1], FileEntry((".pad", "54"), 54, 10, True))

    def test_padFilesNotConflicts(self) -> None:
        """
        Pad files may share a path (libtorrent's C{.pad/N}); they never
        conflict with real files.
        """
        m = load(
            torrent(
                attrInfo(
                    ([b"a"], 10, None, None),
                    ([b".pad", b"6"], 6, b"p", None),
                    ([b"b"], 10, None, None),
                    ([b".pad", b"6"], 6, b"p", None),
                    ([b"a", b"x"], 1, b"p", None),
                )
            )
        )
        self.assertEqual(m.totalLength, 33)

    def test_symlinkTakesNoRoom(self) -> None:
        """
        A symlink's C{length} is ignored: it takes no room in the torrent
        (libtorrent's C{symlink1.torrent} lays out 425 bytes, not 850), and
        may be missing altogether.
        """
        link = {b"symlink path": [b"a", b"b", b"bar"]}
        for length in (425, 0, None):
            info = attrInfo(
                ([b"a", b"b", b"bar"], 425, None, None),
                ([b"a", b"b", b"foo"], length, b"l", link),
            )
            info[b"piece length"] = 16384
            info[b"pieces"] = b"\x01" * 20
            m = load(torrent(info))
            self.assertEqual(m.totalLength, 425)
            self.assertEqual(
                m.files[1],
                FileEntry(("a", "b", "foo"), 0, 425, symlink=("a", "b", "bar")),
            )
            self.assertEqual(m.warnings, ())

    def test_symlinkOutside(self) -> None:
        """
        A symlink whose target would leave the torrent's directory, or has
        no usable target, becomes an empty file, with a warning.
        """
        for target, words in [
            ([b"..", b"..", b"etc", b"passwd"], "'..' leads out"),
            ([b"/etc/passwd"], "contains '/'"),
            ([b"", b"."], "names no file"),
            ([b"a", 5], "not a list of strings"),
            (b"a", "not a list of strings"),
            (None, "missing"),
            ([b"link"], "points to itself"),
        ]:
            extra = {} if target is None else {b"symlink path": target}
            m = load(
                torrent(attrInfo(([b"a"], 10, None, None), ([b"link"], 0, b"l", extra)))
            )
            self.assertEqual(m.files[1], FileEntry(("link",), 0, 10))
            self.assertEqual(len(m.warnings), 1, m.warnings)
            self.assertIn("info.files[1].symlink path", m.warnings[0])
            self.assertIn(words, m.warnings[0])
            self.assertIn("empty file", m.warnings[0])

    def test_symlinkRelativeToLink(self) -> None:
        """
        A target is read from the torrent's root when it names a file or a
        directory there, else from the link's directory when that does
        (macOS frameworks: C{Versions/Current} -> C{A}), else from the root.
        """
        m = load(
            torrent(
                attrInfo(
                    ([b"Versions", b"A", b"lib"], 10, None, None),
                    ([b"Versions", b"Current"], 0, b"l", {b"symlink path": [b"A"]}),
                    ([b"lib"], 0, b"l", {b"symlink path": [b"Versions", b"A", b"lib"]}),
                    ([b"Z"], 3, None, None),
                    ([b"Versions", b"Z"], 3, None, None),
                    ([b"Versions", b"B"], 0, b"l", {b"symlink path": [b"Z"]}),
                    ([b"Versions", b"C"], 0, b"l", {b"symlink path": [b"nothing"]}),
                    ([b"Versions", b"D"], 0, b"l", {b"symlink path": [b"D"]}),
                )
            )
        )
        self.assertEqual(
            [f.symlink for f in m.files],
            [
                None,
                ("Versions", "A"),
                ("Versions", "A", "lib"),
                None,
                None,
                ("Z",),
                ("nothing",),
                ("D",),
            ],
        )

    def test_symlinkConflicts(self) -> None:
        """
        A symlink is a file like any other for conflicts: nothing may lie
        beneath it.
        """
        e = self.assertRaises(
            MetainfoError,
            load,
            torrent(
                attrInfo(
                    ([b"a"], 0, b"l", {b"symlink path": [b"b"]}),
                    ([b"a", b"x"], 10, None, None),
                )
            ),
        )
        self.assertIn("is also a file", str(e))

    def test_executableHidden(self) -> None:
        """
        C{x} and C{h} set L{FileEntry.executable} and L{FileEntry.hidden};
        unknown letters are ignored.
        """
        m = load(
            torrent(
                attrInfo(
                    ([b"a"], 10, b"x", None),
                    ([b"b"], 10, b"h", None),
                    ([b"c"], 10, b"xhz", None),
                    ([b"d"], 10, b"", None),
                )
            )
        )
        self.assertEqual(
            [(f.executable, f.hidden) for f in m.files],
            [(True, False), (False, True), (True, True), (False, False)],
        )
        m = load(torrent(singleInfo(attr=b"x")))
        self.assertTrue(m.files[0].executable)

    def test_singleFileSymlink(self) -> None:
        """
        A single-file torrent that is a symlink holds no data: refused.
        """
        e = self.assertRaises(MetainfoError, load, torrent(singleInfo(attr=b"l")))
        self.assertIn("symbolic link", str(e))


class VersionTests(SynchronousTestCase):
    """
    BEP 52: hybrids load in v1 mode, v2-only torrents are refused.
    """

    def test_v2Only(self) -> None:
        """
        C{meta version} or a C{file tree} without C{pieces}: the one clear
        error.
        """
        for extra in [
            {b"meta version": 2, b"file tree": {}},
            {b"meta version": 2},
            {b"file tree": {b"a": {b"": {b"length": 3}}}},
        ]:
            info = {b"name": b"x", b"piece length": 16384, **extra}
            e = self.assertRaises(MetainfoError, load, torrent(info))
            self.assertEqual(str(e), V2_ONLY)
        self.assertEqual(V2_ONLY, "BitTorrent v2-only torrents are not supported yet")

    def test_hybrid(self) -> None:
        """
        A hybrid loads from its v1 part, flagged L{Metainfo.hybrid}.
        """
        info = multiInfo([([b"a"], 10), ([b".pad", b"54"], 54), ([b"b"], 5)])
        info[b"files"][1][b"attr"] = b"p"
        info[b"meta version"] = 2
        info[b"file tree"] = {b"a": {b"": {b"length": 10}}}
        m = load(torrent(info))
        self.assertTrue(m.hybrid)
        self.assertEqual(m.totalLength, 69)
        self.assertEqual(m.infoHash, hashlib.sha1(bencode.encode(info)).digest())
        self.assertFalse(load(torrent(multiInfo([([b"a"], 10)]))).hybrid)


class LongNameTests(SynchronousTestCase):
    """
    Names longer than 240 bytes are cut as libtorrent cuts them.
    """

    def test_cut(self) -> None:
        """
        The torrent's name and path components are cut, keeping a short
        extension.
        """
        long = b"abcdefghij0123456789" * 13
        m = load(torrent(multiInfo([([long + b".txt"], 3)], name=long + b".d")))
        self.assertEqual(m.name, long[:240].decode() + ".d")
        self.assertEqual(m.files[0].path, (long[:240].decode() + ".txt",))
        m = load(torrent(singleInfo(name=long)))
        self.assertEqual(m.name, long[:240].decode())


def _torrentBytes():
    """
    Valid torrents of various shapes, some with BEP 47 attributes and odd
    path components.
    """
    names = st.one_of(
        st.binary(min_size=1, max_size=8),
        st.sampled_from([b"", b".", b"..", b"/", b"a/b", b"C:", b"x" * 300]),
    )
    attrs = st.one_of(st.none(), st.sampled_from([b"p", b"l", b"l", b"x", b"h", b"lx"]))
    files = st.lists(
        st.tuples(
            st.lists(names, min_size=1, max_size=3),
            st.integers(0, 300),
            attrs,
            st.one_of(
                st.lists(
                    st.sampled_from([b"a", b"b", b"last"]), min_size=1, max_size=2
                ),
                st.lists(names, max_size=3),
            ),
        ),
        min_size=1,
        max_size=5,
    )

    def build(args):
        fileList, pieceLength, single = args
        if single:
            return torrent(
                singleInfo(length=fileList[0][1] + 1, pieceLength=pieceLength)
            )
        entries = [(p, n) for p, n, _, _ in fileList]
        entries.append(([b"last"], 1))
        info = multiInfo(entries, pieceLength=pieceLength)
        total = 0
        for raw, (_, _, attr, target) in zip(info[b"files"], fileList):
            if attr is not None:
                raw[b"attr"] = attr
                raw[b"symlink path"] = target
            if attr is None or b"l" not in attr:
                total += raw[b"length"]
        total += 1
        info[b"pieces"] = b"\x01" * 20 * (-(-total // pieceLength))
        return torrent(info)

    return st.tuples(files, st.integers(1, 100), st.booleans()).map(build)


class PropertyTests(SynchronousTestCase):
    """
    Hostile and random input raise only L{MetainfoError}.
    """

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_randomBytes(self, data: bytes) -> None:
        """
        Random bytes load or raise L{MetainfoError}.
        """
        try:
            load(data)
        except MetainfoError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(_torrentBytes(), st.data())
    def test_mutated(self, data: bytes, draw) -> None:
        """
        Valid torrents with bytes flipped, inserted or cut load or raise
        L{MetainfoError}; when they load, the file offsets add up.
        """
        data = bytearray(data)
        for _ in range(draw.draw(st.integers(1, 4))):
            kind = draw.draw(st.sampled_from(["flip", "insert", "cut"]))
            pos = draw.draw(st.integers(0, max(0, len(data) - 1)))
            if kind == "flip" and data:
                data[pos] = draw.draw(st.integers(0, 255))
            elif kind == "insert":
                data[pos:pos] = draw.draw(st.binary(min_size=1, max_size=4))
            else:
                del data[pos : pos + draw.draw(st.integers(1, 10))]
        try:
            m = load(bytes(data))
        except MetainfoError:
            return
        offset = 0
        for f in m.files:
            self.assertEqual(f.offset, offset)
            offset += f.length
        self.assertEqual(offset, m.totalLength)
        self.assertEqual(len(m.infoHash), 20)

    @settings(max_examples=100, deadline=None)
    @given(_torrentBytes())
    def test_validLoads(self, data: bytes) -> None:
        """
        Generated torrents load (or are refused for an unsafe or duplicate
        path), and the info-hash is the SHA-1 of the C{info} value.
        """
        try:
            m = load(data)
        except MetainfoError as e:
            self.assertRegex(str(e), "path|name")
            return
        self.assertEqual(
            m.infoHash,
            hashlib.sha1(bencode.encode(bencode.decode(data)[b"info"])).digest(),
        )
        for f in m.files:
            if f.symlink is not None:
                self.assertEqual(f.length, 0)
                self.assertTrue(f.symlink)
                self.assertTrue(all(componentProblem(c) is None for c in f.symlink))
            if not f.padding:
                self.assertTrue(all(componentProblem(c) is None for c in f.path))
