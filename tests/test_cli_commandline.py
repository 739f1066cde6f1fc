"""
Tests for the command line of C{btorrent} as a whole: C{--version}, errors
of bad arguments first and on one line, the parsing of the remote
commands' arguments, lazy imports per subcommand, and one-line errors with
no traceback when the daemon is not there, as subprocesses.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import time

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent import __version__
from btorrent.cli import main as cli
from btorrent.cli.remoteargs import (
    ALL,
    DEFAULT_URL,
    normalizeURL,
    parseAuth,
    parseFileList,
    parseRate,
    parseRatio,
    parseTorrentId,
)
from tests.builders import buildTorrent
from tests.realpeers import freePort
from tests.twistdproc import repositoryEnvironment

#: How the tests run the command: this interpreter, this checkout.
COMMAND = [sys.executable, "-m", "btorrent.cli"]


def btorrent(*argv: str, env=None, timeout: float = 60) -> subprocess.CompletedProcess:
    """
    Run C{btorrent ARGV} as a subprocess of this checkout, without
    C{BTORRENT_RPC} or C{BTORRENT_AUTH} unless C{env} sets them.
    """
    environment = repositoryEnvironment()
    environment.pop("BTORRENT_RPC", None)
    environment.pop("BTORRENT_AUTH", None)
    environment.update(env or {})
    return subprocess.run(
        COMMAND + list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )


class ArgumentTypeTests(SynchronousTestCase):
    """
    The parsers of the remote commands' arguments.
    """

    def test_rates(self) -> None:
        """
        Rates are bytes/s with decimal units, sent as whole kB/s.
        """
        for text, kB in [
            ("500k", 500),
            ("500K", 500),
            ("500kB", 500),
            ("500kb/s", 500),
            ("2M", 2000),
            ("1.5M", 1500),
            ("1G", 1000000),
            ("250000", 250),
            ("1500", 2),
            ("100", 1),
            ("0", 0),
            (" 7k ", 7),
        ]:
            self.assertEqual(parseRate(text), kB, text)
        for text in ("unlimited", "none", "OFF"):
            self.assertIsNone(parseRate(text))
        for text in ("", "fast", "-5k", "5x", "1e3", "5 k b", "2KiB", "9" * 20):
            self.assertRaises(argparse.ArgumentTypeError, parseRate, text)

    def test_ratio(self) -> None:
        """
        A ratio is a number (mode 1), unlimited (mode 2) or global (mode 0).
        """
        self.assertEqual(parseRatio("1.5"), (1, 1.5))
        self.assertEqual(parseRatio("0"), (1, 0.0))
        self.assertEqual(parseRatio("unlimited"), (2, None))
        self.assertEqual(parseRatio("global"), (0, None))
        for text in ("-1", "nan", "inf", "x", "1e9"):
            self.assertRaises(argparse.ArgumentTypeError, parseRatio, text)

    def test_fileLists(self) -> None:
        """
        Numbers and ranges, each once; C{all} is the empty list.
        """
        self.assertEqual(parseFileList("0,2,5-7"), [0, 2, 5, 6, 7])
        self.assertEqual(parseFileList("3,3,1-3"), [3, 1, 2])
        self.assertEqual(parseFileList("all"), [])
        for text in ("", "1,", "a", "3-1", "1-", "-1", "0-99999999", "１"):
            self.assertRaises(argparse.ArgumentTypeError, parseFileList, text)

    def test_torrentIds(self) -> None:
        """
        Digits are numbers, hex is a lowercase prefix, C{all} is every
        torrent; 40 digits are an info-hash.
        """
        self.assertEqual(parseTorrentId("12"), 12)
        self.assertEqual(parseTorrentId("AbC"), "abc")
        self.assertEqual(parseTorrentId("1" * 40), "1" * 40)
        self.assertIs(parseTorrentId("ALL"), ALL)
        for text in ("", "x.torrent", "12g", "a" * 41, "-1", "１"):
            self.assertRaises(argparse.ArgumentTypeError, parseTorrentId, text)

    def test_urls(self) -> None:
        """
        Full URLs stay; PORT, HOST and HOST:PORT get Transmission's
        defaults; anything else is refused with a reason.
        """
        self.assertEqual(normalizeURL("https://h:1/x"), "https://h:1/x")
        self.assertEqual(normalizeURL("9092"), "http://127.0.0.1:9092/transmission/rpc")
        self.assertEqual(normalizeURL("box:9092"), "http://box:9092/transmission/rpc")
        self.assertEqual(normalizeURL("box"), "http://box:9091/transmission/rpc")
        self.assertEqual(
            normalizeURL("[::1]:9092"), "http://[::1]:9092/transmission/rpc"
        )
        self.assertEqual(normalizeURL(DEFAULT_URL), DEFAULT_URL)
        for text, reason in [
            ("", "empty RPC URL"),
            ("ftp://h/", "RPC URL 'ftp://h/' is not http:// or https://"),
            ("http:///x", "RPC URL 'http:///x' has no host"),
            ("http://h:0/", "RPC URL 'http://h:0/' has port 0"),
            (
                "http://h /",
                "RPC URL 'http://h /' contains spaces or control characters",
            ),
        ]:
            e = self.assertRaises(ValueError, normalizeURL, text)
            self.assertEqual(str(e), reason)
        self.assertRaises(ValueError, normalizeURL, "h:99999")

    def test_auth(self) -> None:
        """
        C{USER:PASSWORD}; the password may hold colons.
        """
        self.assertEqual(parseAuth("a:b:c"), ("a", "b:c"))
        self.assertEqual(parseAuth("a:"), ("a", ""))
        self.assertRaises(ValueError, parseAuth, "nocolon")


class ArgumentTypePropertyTests(SynchronousTestCase):
    """
    Any text given to the argument parsers is a value of the right type or
    a one-line error, never another exception.
    """

    @given(st.text(max_size=60))
    def test_anyText(self, text: str) -> None:
        """
        Each parser, on any text.
        """
        for parse, kinds in [
            (parseRate, (int, type(None))),
            (parseRatio, (tuple,)),
            (parseFileList, (list,)),
            (parseTorrentId, (int, str, type(ALL))),
        ]:
            try:
                value = parse(text)
            except argparse.ArgumentTypeError as e:
                self.assertNotIn("\n", str(e))
            else:
                self.assertIsInstance(value, kinds)
        for parse in (normalizeURL, parseAuth):
            try:
                parse(text)
            except ValueError as e:
                self.assertNotIn("\n", str(e).replace("\\n", ""))

    @given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "k", "M"]))
    def test_rateRoundTrip(self, number: int, unit: str) -> None:
        """
        A whole rate in k or M is sent exactly; any positive rate as at
        least 1 kB/s.
        """
        kB = parseRate(f"{number}{unit}")
        factor = {"": 1, "k": 1000, "M": 10**6}[unit]
        if unit:
            self.assertEqual(kB, number * factor // 1000)
        else:
            self.assertEqual(kB, max(round(number / 1000), 1) if number else 0)


class ParserTests(SynchronousTestCase):
    """
    The parser of L{cli.main}.
    """

    def call(self, *argv: str):
        """
        Run C{btorrent ARGV} in this process; (exit code, stdout, stderr).
        """
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(list(argv), out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def test_version(self) -> None:
        """
        C{--version} prints the version.
        """
        self.assertEqual(self.call("--version"), (0, f"btorrent {__version__}\n", ""))
        self.assertEqual(__version__, "0.1.0")

    def test_errorFirst(self) -> None:
        """
        A bad argument's one-line error comes first, then the usage, then
        where to find help: a few lines, not the whole help.
        """
        for argv, first in [
            (
                ["create"],
                "btorrent create: error: the following arguments are required: "
                "PATH, -t/--tracker",
            ),
            (
                ["set", "1", "--down", "fast"],
                "btorrent set: error: argument --down: invalid rate 'fast' "
                "(bytes/s: 500k, 2M, 250000, or unlimited)",
            ),
            (
                ["stop", "x.torrent"],
                "btorrent stop: error: argument ID: invalid torrent ID "
                "'x.torrent' (a number, an info-hash prefix or all)",
            ),
            (
                ["list", "--auth", "nocolon"],
                "btorrent list: error: argument --auth: credentials must be "
                "USER:PASSWORD",
            ),
            (
                ["--rpc", "ftp://x", "list"],
                "btorrent: error: argument --rpc: RPC URL 'ftp://x' is not "
                "http:// or https://",
            ),
            (
                ["watch", "--interval", "0"],
                "btorrent watch: error: argument --interval: invalid interval '0' "
                "(seconds, 0.1 to 3600)",
            ),
        ]:
            code, out, err = self.call(*argv)
            self.assertEqual((code, out), (2, ""), argv)
            lines = err.splitlines()
            self.assertEqual(lines[0], first)
            self.assertTrue(lines[1].startswith("usage: btorrent"), lines)
            self.assertTrue(lines[-1].startswith("(see btorrent"), lines)
            self.assertLess(len(lines), 8)
        code, out, err = self.call("frobnicate")
        self.assertTrue(
            err.startswith(
                "btorrent: error: argument COMMAND: invalid choice: 'frobnicate'"
            ),
            err,
        )

    def test_commandWord(self) -> None:
        """
        The subcommand is found past the top-level options and their values.
        """
        word = cli._commandWord
        self.assertEqual(word(["--rpc", "info", "list"]), "list")
        self.assertEqual(word(["--rpc=x", "--auth", "a:b", "add", "f"]), "add")
        self.assertEqual(word(["--version"]), None)
        self.assertEqual(word([]), None)
        self.assertEqual(word(["--", "info"]), "info")

    def test_optionsEitherSide(self) -> None:
        """
        C{--rpc} and C{--auth} work before and after the command; after
        wins.
        """
        parser = cli._buildParser("list")
        args = parser.parse_args(["--rpc", "1", "list"])
        self.assertEqual(args.rpc, "http://127.0.0.1:1/transmission/rpc")
        args = parser.parse_args(["--rpc", "1", "list", "--rpc", "2", "--auth", "u:p"])
        self.assertEqual(args.rpc, "http://127.0.0.1:2/transmission/rpc")
        self.assertEqual(args.auth, ("u", "p"))
        args = parser.parse_args(["list"])
        self.assertEqual((args.rpc, args.auth), (None, None))

    def test_infoLocalOrRemote(self) -> None:
        """
        C{info} describes a local file when its argument exists or cannot
        be an ID; it asks the daemon for IDs, or when C{--rpc}/C{--auth} is
        given.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        existing = os.path.join(directory, "abc")
        open(existing, "w").close()
        parser = cli._buildParser("info")
        for argv, local in [
            (["info", "x.torrent"], True),
            (["info", existing], True),
            (["info", "12"], False),
            (["info", "abc"], False),
            (["info", "1", "2", "all"], False),
            (["info", "x.torrent", "--rpc", "9091"], False),
            (["--auth", "u:p", "info", "x.torrent"], False),
        ]:
            self.assertEqual(cli._isLocalInfo(parser.parse_args(argv)), local, argv)

    def test_infoRemoteBadId(self) -> None:
        """
        C{info} sent to the daemon (C{--rpc}) with something that is not an
        ID: one line.
        """
        code, out, err = self.call("info", "x.torrent", "--rpc", "1")
        self.assertEqual(
            (code, out, err),
            (
                1,
                "",
                "btorrent info: error: invalid torrent ID 'x.torrent' (a number, "
                "an info-hash prefix or all)\n",
            ),
        )
        code, out, err = self.call("info", "a.torrent", "b.torrent")
        self.assertEqual(
            err,
            "btorrent info: error: give one .torrent file, or torrent IDs to "
            "ask the daemon about\n",
        )


def importedModules(*argv: str, cwd: str):
    """
    Run C{btorrent ARGV} under C{-X importtime}; the names of the modules
    it imported, and its result.
    """
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "btorrent.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=repositoryEnvironment(),
        cwd=cwd,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return modules, result


class LazyImportTests(SynchronousTestCase):
    """
    Each subcommand imports only what it needs.
    """

    def setUp(self) -> None:
        self.cwd = os.path.abspath(self.mktemp())
        os.makedirs(self.cwd)
        built = buildTorrent(
            self.cwd,
            [("f.bin", 1000)],
            None,
            single=True,
            trackers=[["http://127.0.0.1:1/"]],
        )
        built.writeTorrent(os.path.join(self.cwd, "f.torrent"))

    def test_info(self) -> None:
        """
        C{btorrent info X.torrent} imports neither the reactor nor anything
        of C{twisted.internet}, the engine, the daemon, treq or rich.
        """
        modules, result = importedModules("info", "f.torrent", cwd=self.cwd)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("btorrent.codec.metainfo", modules)
        self.assertNotIn("twisted.internet.reactor", modules)
        unwanted = sorted(
            m
            for m in modules
            if m.split(".")[0] in ("treq", "rich")
            or m.startswith(("twisted.internet", "btorrent.engine", "btorrent.daemon"))
        )
        self.assertEqual(unwanted, [])

    def test_versionAndHelp(self) -> None:
        """
        C{--version} and C{--help} import nothing of C{twisted.internet}.
        """
        for argv in (["--version"], ["--help"], ["create", "--help"]):
            modules, result = importedModules(*argv, cwd=self.cwd)
            self.assertEqual(result.returncode, 0)
            self.assertEqual(
                [m for m in modules if m.startswith("twisted.internet")], [], argv
            )

    def test_probeSeesReactor(self) -> None:
        """
        The probe does see the reactor where it is imported: a remote
        command runs it.
        """
        modules, result = importedModules(
            "list", "--rpc", str(freePort()), cwd=self.cwd
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn("twisted.internet.reactor", modules)


class NoDaemonTests(SynchronousTestCase):
    """
    Remote commands with no daemon to talk to, as subprocesses: one line,
    a non-zero exit, no traceback.
    """

    def test_notRunning(self) -> None:
        """
        Nothing listening at the RPC URL: "connection refused".
        """
        port = freePort()
        url = f"http://127.0.0.1:{port}/transmission/rpc"
        for argv in (
            ["list", "--rpc", url],
            ["--rpc", str(port), "info", "1"],
            ["stop", "all", "--rpc", f"127.0.0.1:{port}"],
            ["watch", "--rpc", url],
        ):
            result = btorrent(*argv)
            self.assertEqual(result.returncode, 1, argv)
            self.assertEqual(result.stdout, "")
            self.assertEqual(
                result.stderr,
                f"btorrent {argv[0] if argv[0] != '--rpc' else argv[2]}: error: "
                f"cannot reach the daemon at {url}: connection refused\n",
            )

    def test_environment(self) -> None:
        """
        C{BTORRENT_RPC} is used, and a bad one is one line.
        """
        port = freePort()
        result = btorrent("list", env={"BTORRENT_RPC": str(port)})
        self.assertEqual(
            result.stderr,
            f"btorrent list: error: cannot reach the daemon at "
            f"http://127.0.0.1:{port}/transmission/rpc: connection refused\n",
        )
        result = btorrent("list", env={"BTORRENT_RPC": "gopher://x"})
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr,
            "btorrent list: error: RPC URL 'gopher://x' is not http:// or https://\n",
        )

    def test_interrupted(self) -> None:
        """
        ^C while waiting for a daemon that does not answer: one line, exit
        130, no traceback.
        """
        server = socket.socket()
        self.addCleanup(server.close)
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        process = subprocess.Popen(
            COMMAND + ["list", "--rpc", str(server.getsockname()[1])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=repositoryEnvironment(),
        )
        connection, _ = server.accept()
        self.addCleanup(connection.close)
        connection.settimeout(30)
        self.assertIn(b"POST /transmission/rpc", connection.recv(65536))
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        self.assertEqual((process.returncode, out), (130, ""))
        self.assertEqual(err, "btorrent list: interrupted\n")
