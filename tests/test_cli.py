"""
Tests for L{btorrent.cli.main}, the C{btorrent} command.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from btorrent.cli import main as cli
from btorrent.codec import bencode, metainfo, safepath
from btorrent.daemon import tap
from tests.test_metainfo import callUnblocked


class TTY(io.StringIO):
    """
    A text stream that claims to be a terminal.
    """

    def isatty(self) -> bool:
        """
        Claim to be a terminal.
        """
        return True


class CLITestCase(SynchronousTestCase):
    """
    Helpers to run L{cli.main} in a temporary working directory.
    """

    def setUp(self) -> None:
        self.cwd = os.path.abspath(self.mktemp())
        os.makedirs(self.cwd)
        old = os.getcwd()
        os.chdir(self.cwd)
        self.addCleanup(os.chdir, old)

    def btorrent(self, *argv: str, err=None):
        """
        Run C{btorrent argv}; return (exit code, stdout, stderr).
        """
        out = io.StringIO()
        err = io.StringIO() if err is None else err
        code = cli.main(list(argv), out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def write(self, path: str, data: bytes) -> str:
        """
        Write C{data} to C{path} (making directories); return C{path}.
        """
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path


class ParseSizeTests(SynchronousTestCase):
    """
    L{cli.parseSize}.
    """

    def test_sizes(self) -> None:
        """
        Plain numbers and K/M/G suffixes (binary) are accepted.
        """
        for text, value in [
            ("262144", 262144),
            ("256K", 262144),
            ("256k", 262144),
            ("256KiB", 262144),
            ("1M", 1 << 20),
            ("1MB", 1 << 20),
            ("2G", 2 << 30),
        ]:
            self.assertEqual(cli.parseSize(text), value, text)

    def test_invalid(self) -> None:
        """
        Anything else is an L{argparse.ArgumentTypeError}.
        """
        for text in ["", "1.5M", "-1", "M", "12T", "1 2"]:
            self.assertRaises(argparse.ArgumentTypeError, cli.parseSize, text)


class CreateTests(CLITestCase):
    """
    C{btorrent create}.
    """

    def test_createDirectory(self) -> None:
        """
        C{create} writes NAME.torrent in the working directory, with the
        trackers as tiers (commas join one tier), and reports the info-hash.
        """
        self.write("d/a", os.urandom(70000))
        self.write("d/s/b", b"hello")
        code, out, err = self.btorrent(
            "create",
            "d",
            "-t",
            "http://127.0.0.1:1/a",
            "-t",
            "http://127.0.0.1:2/b,http://127.0.0.1:3/c",
            "--piece-length",
            "32K",
            "--private",
            "--comment",
            "a comment",
        )
        self.assertEqual((code, err), (0, ""))
        m = metainfo.loadFile("d.torrent")
        self.assertIn(m.infoHash.hex(), out)
        self.assertEqual(m.pieceLength, 32768)
        self.assertTrue(m.private)
        self.assertEqual(m.comment, "a comment")
        self.assertEqual([f.path for f in m.files], [("a",), ("s", "b")])
        self.assertEqual(
            m.trackers,
            (
                ("http://127.0.0.1:1/a",),
                ("http://127.0.0.1:2/b", "http://127.0.0.1:3/c"),
            ),
        )

    def test_output(self) -> None:
        """
        C{-o} chooses the output; an existing file is kept unless
        C{--force}.
        """
        self.write("f.bin", b"x" * 100)
        self.write("out.torrent", b"precious")
        code, out, err = self.btorrent(
            "create", "f.bin", "-t", "http://x/", "-o", "out.torrent"
        )
        self.assertEqual(code, 1)
        self.assertEqual(out, "")
        self.assertIn("already exists", err)
        self.assertEqual(err.count("\n"), 1)
        with open("out.torrent", "rb") as f:
            self.assertEqual(f.read(), b"precious")
        code, out, err = self.btorrent(
            "create", "f.bin", "-t", "http://x/", "-o", "out.torrent", "--force"
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(metainfo.loadFile("out.torrent").name, "f.bin")
        self.assertFalse(os.path.exists("out.torrent.part"))

    def test_writeFailure(self) -> None:
        """
        When the torrent cannot be put in place, the error is one line,
        the previous file is untouched and no temporary file is left.
        """
        self.write("f.bin", b"x" * 10)
        self.write("out.torrent", b"precious")

        def failingReplace(source, target):
            raise OSError(28, "No space left on device")

        self.patch(os, "replace", failingReplace)
        code, out, err = self.btorrent(
            "create", "f.bin", "-t", "http://x/", "-o", "out.torrent", "--force"
        )
        self.assertEqual((code, out), (1, ""))
        self.assertIn("cannot write out.torrent: No space left on device", err)
        self.assertEqual(sorted(os.listdir(".")), ["f.bin", "out.torrent"])
        with open("out.torrent", "rb") as f:
            self.assertEqual(f.read(), b"precious")

    def test_missingPath(self) -> None:
        """
        A missing input is one line on stderr and exit code 1.
        """
        code, out, err = self.btorrent("create", "nothing", "-t", "http://x/")
        self.assertEqual(code, 1)
        self.assertEqual(
            err, "btorrent create: error: nothing: no such file or directory\n"
        )

    def test_emptyDirectory(self) -> None:
        """
        An empty directory is refused in one line.
        """
        os.makedirs("empty")
        code, out, err = self.btorrent("create", "empty", "-t", "http://x/")
        self.assertEqual(code, 1)
        self.assertIn("no files", err)
        self.assertEqual(err.count("\n"), 1)
        self.assertFalse(os.path.exists("empty.torrent"))

    def test_badPieceLength(self) -> None:
        """
        An unparseable piece length is a usage error (exit 2); one that is
        not a power of two is refused (exit 1).
        """
        self.write("f.bin", b"x")
        code, _, err = self.btorrent(
            "create", "f.bin", "-t", "http://x/", "--piece-length", "x"
        )
        self.assertEqual(code, 2)
        self.assertIn("invalid size", err)
        code, _, err = self.btorrent(
            "create", "f.bin", "-t", "http://x/", "--piece-length", "100K"
        )
        self.assertEqual(code, 1)
        self.assertIn("power of two", err)

    def test_pieceLengthTooSmall(self) -> None:
        """
        A piece length that would make the torrent too large for clients to
        load is refused in one line before any hashing, saying which
        C{--piece-length} would do.
        """
        calls = []

        def hashFiles(*args, **kwargs):
            calls.append(args)
            raise AssertionError("hashed")

        self.patch(metainfo, "_hashFiles", hashFiles)
        with open("big", "wb") as f:
            f.truncate(9 << 30)
        code, out, err = self.btorrent(
            "create", "big", "-t", "http://x/", "--piece-length", "16K"
        )
        self.assertEqual((code, out, calls), (1, "", []))
        self.assertTrue(err.startswith("btorrent create: error: piece length 16384"))
        self.assertIn("choose a larger --piece-length (at least 32K)", err)
        self.assertEqual(err.count("\n"), 1)
        self.assertFalse(os.path.exists("big.torrent"))

    def test_badTrackers(self) -> None:
        """
        A C{-t} that is empty, or has an item that is not an http://,
        https:// or udp:// URL with a host (and a port, for UDP), is refused
        in one line, exit code 1, and no torrent is written.
        """
        self.write("f.bin", b"x")
        for value, words in [
            ("", "empty tracker URL"),
            (" ", "empty tracker URL"),
            ("http://x/,", "empty tracker URL"),
            ("u", "is not http://, https:// or udp://"),
            ("ftp://x/a", "is not http://, https:// or udp://"),
            ("x.org/announce", "is not http://, https:// or udp://"),
            ("http:///announce", "has no host"),
            ("udp://x.org", "has no port"),
            ("http://x:99999/", "invalid tracker URL"),
            ("http://x:0/", "port 0"),
            ("http://x y/", "spaces or control characters"),
            ("http://x/\x1b[2J", "spaces or control characters"),
        ]:
            code, out, err = self.btorrent(
                "create", "f.bin", "-t", "http://ok/", "-t", value
            )
            self.assertEqual((code, out), (1, ""), value)
            self.assertTrue(
                err.startswith(f"btorrent create: error: -t {value!r}: "), err
            )
            self.assertIn(words, err)
            self.assertEqual(err.count("\n"), 1, err)
            self.assertNotIn("\x1b", err)
            self.assertFalse(os.path.exists("f.bin.torrent"), value)

    def test_goodTrackers(self) -> None:
        """
        http, https and udp URLs (any case of scheme, IPv6 hosts) are taken.
        """
        self.write("f.bin", b"x")
        urls = [
            "http://127.0.0.1:6969/announce",
            "HTTPS://tracker.example/announce?passkey=1",
            "udp://[::1]:6969",
        ]
        code, _, err = self.btorrent("create", "f.bin", "-t", ",".join(urls))
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(metainfo.loadFile("f.bin.torrent").trackers, (tuple(urls),))

    def test_specialFilesSkipped(self) -> None:
        """
        A FIFO in the tree is left out with a one-line warning naming it,
        and never opened (it would block); the torrent is written.
        """
        self.write("d/a", b"data")
        fifo = os.path.join(self.cwd, "d", "fifo")
        os.mkfifo(fifo)
        code, out, err = callUnblocked(
            self, fifo, self.btorrent, "create", "d", "-t", "http://x/"
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(
            err,
            f"btorrent create: warning: skipping {fifo}: a FIFO, not a regular file\n",
        )
        self.assertEqual(
            [f.path for f in metainfo.loadFile("d.torrent").files], [("a",)]
        )

    def test_fifoPath(self) -> None:
        """
        A FIFO as the path to share is refused in one line.
        """
        os.mkfifo("fifo")
        code, out, err = callUnblocked(
            self, "fifo", self.btorrent, "create", "fifo", "-t", "http://x/"
        )
        self.assertEqual((code, out), (1, ""))
        self.assertIn("fifo: a FIFO, not a regular file or directory", err)
        self.assertEqual(err.count("\n"), 1)

    def test_trackerRequired(self) -> None:
        """
        C{-t} is required.
        """
        self.write("f.bin", b"x")
        code, _, err = self.btorrent("create", "f.bin")
        self.assertEqual(code, 2)
        self.assertIn("-t", err)

    def test_progressOnTerminal(self) -> None:
        """
        A big input with a terminal on stderr shows a progress bar; the
        result is the same torrent.
        """
        self.patch(cli, "PROGRESS_THRESHOLD", 1)
        self.write("f.bin", os.urandom(100000))
        err = TTY()
        code, out, _ = self.btorrent("create", "f.bin", "-t", "http://x/", err=err)
        self.assertEqual(code, 0)
        self.assertIn("hashing", err.getvalue())
        self.assertEqual(metainfo.loadFile("f.bin.torrent").totalLength, 100000)

    def test_noProgressWithoutTerminal(self) -> None:
        """
        Without a terminal nothing goes to stderr.
        """
        self.patch(cli, "PROGRESS_THRESHOLD", 1)
        self.write("f.bin", os.urandom(1000))
        code, _, err = self.btorrent("create", "f.bin", "-t", "http://x/")
        self.assertEqual((code, err), (0, ""))


class InfoTests(CLITestCase):
    """
    C{btorrent info}.
    """

    def makeTorrent(self) -> metainfo.Metainfo:
        """
        Create C{t.torrent} for a small tree.
        """
        self.write("d/a", b"x" * 40000)
        self.write("d/s/b", b"y" * 10)
        self.write("d/s/\xe9t\xe9", b"z")
        with open("t.torrent", "wb") as f:
            f.write(
                metainfo.create(
                    "d",
                    [
                        ["http://127.0.0.1:1/a"],
                        ["udp://127.0.0.1:2", "udp://127.0.0.1:3"],
                    ],
                    comment="hi",
                )
            )
        return metainfo.loadFile("t.torrent")

    def test_text(self) -> None:
        """
        The text form shows name, info-hash, size, pieces, trackers by tier
        and the files as a tree.
        """
        m = self.makeTorrent()
        code, out, err = self.btorrent("info", "t.torrent")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("name:         d\n", out)
        self.assertIn(f"info-hash:    {m.infoHash.hex()}\n", out)
        self.assertIn("(40011 bytes)", out)
        self.assertIn(f"pieces:       {m.pieceCount} x 16.0 KiB", out)
        self.assertIn("tier 0: http://127.0.0.1:1/a\n", out)
        self.assertIn("tier 1: udp://127.0.0.1:2 udp://127.0.0.1:3\n", out)
        self.assertIn("comment:      hi\n", out)
        self.assertIn(
            "  d/\n    a (39.1 KiB)\n    s/\n      b (10 B)\n      \xe9t\xe9 (1 B)\n",
            out,
        )

    def test_json(self) -> None:
        """
        C{--json} prints one object with the documented keys.
        """
        m = self.makeTorrent()
        code, out, err = self.btorrent("info", "t.torrent", "--json")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out.count("\n"), 1)
        obj = json.loads(out)
        self.assertEqual(obj["info_hash"], m.infoHash.hex())
        self.assertEqual(obj["name"], "d")
        self.assertEqual(obj["total_length"], 40011)
        self.assertEqual(obj["piece_length"], 16384)
        self.assertEqual(obj["piece_count"], 3)
        self.assertEqual(
            [(f["path"], f["length"]) for f in obj["files"]],
            [(["a"], 40000), (["s", "b"], 10), (["s", "\xe9t\xe9"], 1)],
        )
        self.assertEqual(
            obj["trackers"],
            [["http://127.0.0.1:1/a"], ["udp://127.0.0.1:2", "udp://127.0.0.1:3"]],
        )

    def test_singleFileAndPadding(self) -> None:
        """
        A single-file torrent shows its file; padding files are hidden from
        the tree but kept in the JSON.
        """
        self.write("one.bin", b"q" * 5)
        self.btorrent("create", "one.bin", "-t", "http://x/")
        code, out, _ = self.btorrent("info", "one.bin.torrent")
        self.assertIn("files:\n  one.bin (5 B)\n", out)
        info = {
            b"name": b"p",
            b"piece length": 16384,
            b"pieces": b"\x00" * 40,
            b"files": [
                {b"length": 10, b"path": [b"a"]},
                {b"length": 16374, b"path": [b".pad", b"16374"], b"attr": b"p"},
                {b"length": 10, b"path": [b"b"]},
            ],
        }
        self.write("pad.torrent", bencode.encode({b"info": info}))
        code, out, _ = self.btorrent("info", "pad.torrent")
        self.assertEqual(code, 0)
        self.assertNotIn(".pad", out)
        self.assertIn("trackers:     none", out)
        code, out, _ = self.btorrent("info", "pad.torrent", "--json")
        self.assertEqual(
            [f["padding"] for f in json.loads(out)["files"]], [False, True, False]
        )

    def test_controlCharacters(self) -> None:
        """
        Text from the torrent (names, comment, trackers) cannot drive the
        terminal: control characters, line breaks and bidirectional
        overrides are gone from names, shown escaped elsewhere; one torrent
        line stays one line.
        """
        info = {
            b"name": b"evil\x1b[2J",
            b"piece length": 16384,
            b"pieces": b"\x00" * 20,
            b"files": [
                {b"length": 1, b"path": [b"a\nname: forged"]},
                {b"length": 1, b"path": [b"cod.\xe2\x80\xaeexe"]},
            ],
        }
        self.write(
            "evil.torrent",
            bencode.encode(
                {
                    b"info": info,
                    b"comment": b"\x1b]0;title\x07hi",
                    b"announce": b"http://x/\r\x1b[1A",
                }
            ),
        )
        code, out, err = self.btorrent("info", "evil.torrent")
        self.assertEqual((code, err), (0, ""))
        for bad in ("\x1b", "\x07", "\r", "\u202e"):
            self.assertNotIn(bad, out)
        # Names lose their control characters when the torrent is read (as
        # libtorrent reads them: "_"), and direction overrides.
        self.assertEqual(
            [line for line in out.splitlines() if line.startswith("name:")],
            ["name:         evil_[2J"],
        )
        self.assertIn("a_name: forged (1 B)", out)
        self.assertIn("cod.exe (1 B)", out)
        self.assertIn("comment:      \\x1b]0;title\\x07hi\n", out)
        # JSON escapes them by itself.
        code, out, err = self.btorrent("info", "evil.torrent", "--json")
        self.assertEqual(json.loads(out)["comment"], "\x1b]0;title\x07hi")

    def test_deepPaths(self) -> None:
        """
        The tree indents at most L{cli.TREE_DEPTH} directories; the rest of
        a deeper path is shown on the file's line, so that a path of
        hundreds of components (loading refuses more than
        L{safepath.MAX_PATH_DEPTH}) costs output in proportion to its
        length, not to its square.
        """
        deep = [b"d%d" % i for i in range(safepath.MAX_PATH_DEPTH - 1)]
        info = {
            b"name": b"n",
            b"piece length": 16384,
            b"pieces": b"\x00" * 20,
            b"files": [
                {b"length": 1, b"path": deep + [b"f"]},
                {b"length": 1, b"path": deep[:2] + [b"g"]},
            ],
        }
        self.write("deep.torrent", bencode.encode({b"info": info}))
        code, out, err = self.btorrent("info", "deep.torrent")
        self.assertEqual((code, err), (0, ""))
        self.assertLess(len(out), 40000)
        # The tree is indented by one level under "files:".
        indent = "  " * (cli.TREE_DEPTH + 2)
        rest = "/".join(c.decode() for c in deep[cli.TREE_DEPTH :]) + "/f (1 B)"
        self.assertIn("\n" + indent + rest + "\n", out)
        self.assertIn("\n    d0/\n      d1/\n        d2/\n", out)
        self.assertIn("\n        g (1 B)\n", out)
        self.assertEqual(out.count("d1/"), 1)

    def test_missing(self) -> None:
        """
        A missing torrent is one line on stderr and exit code 1.
        """
        code, out, err = self.btorrent("info", "nope.torrent")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(
            err, "btorrent info: error: nope.torrent: No such file or directory\n"
        )

    def test_fifo(self) -> None:
        """
        A FIFO (which nothing writes to) is refused at once in one line,
        instead of waiting for ever.
        """
        os.mkfifo("x.torrent")
        code, out, err = callUnblocked(
            self, "x.torrent", self.btorrent, "info", "x.torrent"
        )
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(
            err, "btorrent info: error: x.torrent: not a regular file (a FIFO)\n"
        )

    def test_invalid(self) -> None:
        """
        An invalid torrent is one line naming the problem.
        """
        self.write("bad.torrent", b"d4:infod4:name2:..ee")
        code, out, err = self.btorrent("info", "bad.torrent", "--json")
        self.assertEqual((code, out), (1, ""))
        self.assertTrue(err.startswith("btorrent info: error: bad.torrent: invalid"))
        self.assertEqual(err.count("\n"), 1)
        self.write("garbage.torrent", os.urandom(100))
        code, _, err = self.btorrent("info", "garbage.torrent")
        self.assertEqual(code, 1)
        self.assertEqual(err.count("\n"), 1)

    def test_noCommand(self) -> None:
        """
        Without a subcommand, argparse reports a usage error.
        """
        code, _, err = self.btorrent()
        self.assertEqual(code, 2)
        self.assertIn("usage: btorrent", err)

    def test_commandsMatchParser(self) -> None:
        """
        Every subcommand of the parser has a function in L{cli.COMMANDS}.
        """
        parser = cli._buildParser()
        samples = {
            "create": ["create", "x", "-t", "u"],
            "info": ["info", "x"],
            "download": ["download", "x.torrent"],
            "add": ["add", "x.torrent"],
            "list": ["list"],
            "start": ["start", "1"],
            "stop": ["stop", "1"],
            "verify": ["verify", "1"],
            "remove": ["remove", "1"],
            "set": ["set", "1", "--down", "1M"],
            "stats": ["stats"],
            "watch": ["watch"],
        }
        self.assertEqual(set(cli.COMMANDS), set(samples))
        for name, argv in samples.items():
            self.assertEqual(parser.parse_args(argv).command, name)


class TapSpecialFileTests(CLITestCase):
    """
    C{twistd btorrent --torrent} with a path that is not a regular file.
    """

    def test_fifo(self) -> None:
        """
        A FIFO is a L{usage.UsageError} naming it, at once (the daemon would
        otherwise wait for ever before starting).
        """
        os.mkfifo("x.torrent")
        e = self.assertRaises(
            usage.UsageError,
            callUnblocked,
            self,
            "x.torrent",
            tap.Options().parseStrictly,
            ["--torrent", "x.torrent"],
        )
        self.assertEqual(
            str(e), "cannot read torrent x.torrent: not a regular file (a FIFO)"
        )

    def test_device(self) -> None:
        """
        A device is refused the same way.
        """
        e = self.assertRaises(
            usage.UsageError, tap.Options().parseStrictly, ["--torrent", os.devnull]
        )
        self.assertIn("not a regular file (a character device)", str(e))


class DownloadCommandTests(CLITestCase):
    """
    C{btorrent download} is reachable from the C{btorrent} command; its
    engine is tested in C{tests/test_interop_download.py}.
    """

    def test_help(self) -> None:
        """
        C{btorrent download --help} lists the foreground engine's options,
        the data's directory under the name every command uses,
        C{-d/--download-dir}; the old C{-o/--output} is not shown.
        """
        code, out, err = self.btorrent("download", "--help")
        self.assertEqual(code, 0)
        for option in (
            "-d DIR, --download-dir DIR",
            "--port",
            "--piece-order",
            "--seed",
            "--state-dir",
        ):
            self.assertIn(option, out)
        self.assertNotIn("--output", out)
        self.assertNotIn("-o ", out)

    def test_downloadDir(self) -> None:
        """
        C{-d DIR}, C{--download-dir DIR} and the old C{-o DIR} and
        C{--output DIR} all set the directory; the default is the current
        one.
        """
        parser = cli._buildParser("download")
        for option in ("-d", "--download-dir", "-o", "--output"):
            args = parser.parse_args(["download", "x.torrent", option, "/data"])
            self.assertEqual(args.output, "/data")
        self.assertEqual(parser.parse_args(["download", "x.torrent"]).output, ".")

    def test_missingTorrent(self) -> None:
        """
        A torrent that cannot be read is a one-line error and exit 1.
        """
        code, out, err = self.btorrent("download", "missing.torrent")
        self.assertEqual(code, 1)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn("missing.torrent", err)
        self.assertNotIn("Traceback", err)

    def test_invalidTorrent(self) -> None:
        """
        A file that is not a torrent is a one-line error naming it.
        """
        self.write("bad.torrent", b"d4:infoi1ee")
        code, out, err = self.btorrent("download", "bad.torrent")
        self.assertEqual(code, 1)
        self.assertIn("invalid torrent bad.torrent", err)
        self.assertEqual(err.count("\n"), 1, err)


class ConsoleScriptTests(CLITestCase):
    """
    The installed C{btorrent} console script.
    """

    def test_script(self) -> None:
        """
        C{btorrent create} then C{btorrent info --json} work as a
        subprocess; a bad torrent exits 1 with one line and no traceback.
        """
        script = os.path.join(os.path.dirname(sys.executable), "btorrent")
        if not os.path.exists(script):
            script = shutil.which("btorrent") or "btorrent"
        self.write("f.bin", b"z" * 30000)
        result = subprocess.run(
            [script, "create", "f.bin", "-t", "http://127.0.0.1:1/"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        result = subprocess.run(
            [script, "info", "f.bin.torrent", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout)["total_length"], 30000)
        result = subprocess.run(
            [script, "info", "f.bin"], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.count("\n"), 1)
        self.assertNotIn("Traceback", result.stderr)
