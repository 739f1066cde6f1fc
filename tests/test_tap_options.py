"""
Tests for L{btorrent.daemon.tap.Options}, the options of C{twistd btorrent}.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from btorrent.daemon import tap
from tests.builders import buildTorrent


class OptionsTests(SynchronousTestCase):
    """
    L{tap.Options} parses and validates the command line.
    """

    def makeTorrent(self) -> str:
        """
        Create a small file and a torrent for it; return the torrent path.
        """
        base = self.mktemp()
        built = buildTorrent(
            base,
            [("data.bin", 50000)],
            None,
            single=True,
            trackers=[["http://127.0.0.1:6969/announce"]],
        )
        return built.writeTorrent(os.path.join(base, "data.torrent"))

    def setUp(self) -> None:
        home = os.path.abspath(self.mktemp())
        self.patch(os, "environ", {**os.environ, "HOME": home, "XDG_DATA_HOME": ""})

    def test_valid(self) -> None:
        """
        Valid options load every torrent and fill in the defaults.
        """
        path = self.makeTorrent()
        options = tap.Options()
        options.parseStrictly(
            ["--torrent", path, "-t", path, "--port", "0", "-d", "dl", "--debug"]
        )
        self.assertEqual(len(options["metainfos"]), 2)
        self.assertEqual(options["metainfos"][0][1].name, "data.bin")
        self.assertEqual(options["port"], 0)
        self.assertEqual(options["download-dir"], os.path.abspath("dl"))
        self.assertEqual(options["state-dir"], tap.defaultStateDir())
        self.assertTrue(options["debug"])
        self.assertEqual(options["encryption"], "preferred")

    def test_encryption(self) -> None:
        """
        C{--encryption} takes Transmission's three settings and reaches the
        session, which applies it to its torrents.
        """
        from twisted.internet.testing import MemoryReactorClock

        path = self.makeTorrent()
        for mode in ("tolerated", "preferred", "required"):
            options = tap.Options()
            options.parseOptions(
                [
                    "--torrent",
                    path,
                    "--port",
                    "0",
                    "--rpc-port",
                    "0",
                    "--state-dir",
                    os.path.abspath(self.mktemp()),
                    "--encryption",
                    mode,
                ]
            )
            self.assertEqual(options["encryption"], mode)
            daemon = tap.buildDaemon(options, MemoryReactorClock())
            self.assertEqual(daemon.session.encryption, mode)
            self.assertEqual(daemon.library.settings.encryption, mode)
            [torrent] = daemon.session.torrents.values()
            self.assertEqual(torrent.encryption, mode)

    def test_empty(self) -> None:
        """
        Without arguments: an empty daemon with Transmission's ports, the
        state under the user's XDG data dir and downloads in ~/Downloads,
        both created.
        """
        options = tap.Options()
        options.parseStrictly([])
        self.assertEqual(options["metainfos"], [])
        self.assertEqual(options["port"], 51413)
        self.assertEqual(options["rpc-port"], 9091)
        self.assertEqual(options["rpc-bind"], "127.0.0.1")
        home = os.environ["HOME"]
        self.assertEqual(
            options["state-dir"], os.path.join(home, ".local", "share", "btorrent")
        )
        self.assertEqual(options["download-dir"], os.path.join(home, "Downloads"))
        self.assertTrue(os.path.isdir(options["state-dir"]))
        self.assertTrue(os.path.isdir(options["download-dir"]))
        self.assertEqual(options["umask"], 0o022)
        self.assertEqual(options["download-queue-size"], 5)

    def test_unusableDirectories(self) -> None:
        """
        A state dir or download dir that cannot be created is one clear
        error naming it.
        """
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w") as f:
            f.write("x")
        for option, what in (("--state-dir", "state dir"), ("-d", "download dir")):
            path = os.path.join(blocker, "sub")
            e = self.assertRaises(
                usage.UsageError, tap.Options().parseStrictly, [option, path]
            )
            self.assertEqual(
                str(e), f"cannot create the {what} {path}: Not a directory"
            )

    def test_rpcOptions(self) -> None:
        """
        The RPC must not listen beyond loopback without a password; a user
        needs a password file and the other way round.
        """
        e = self.assertRaises(
            usage.UsageError, tap.Options().parseStrictly, ["--rpc-bind", "0.0.0.0"]
        )
        self.assertIn("password", str(e))
        e = self.assertRaises(
            usage.UsageError, tap.Options().parseStrictly, ["--rpc-username", "u"]
        )
        self.assertEqual(str(e), "--rpc-username and --rpc-password-file go together")
        secret = os.path.abspath(self.mktemp())
        with open(secret, "w") as f:
            f.write("hunter2\n")
        options = tap.Options()
        options.parseStrictly(
            [
                "--rpc-bind",
                "0.0.0.0",
                "--rpc-username",
                "u",
                "--rpc-password-file",
                secret,
            ]
        )
        self.assertTrue(options["rpc-password-hash"].startswith("pbkdf2-sha256$"))
        self.assertNotIn("hunter2", options["rpc-password-hash"])

    def test_missingTorrent(self) -> None:
        """
        A torrent that does not exist is named in the error.
        """
        path = self.mktemp()
        e = self.assertRaises(
            usage.UsageError, tap.Options().parseStrictly, ["--torrent", path]
        )
        self.assertIn(f"cannot read torrent {path}", str(e))

    def test_unreadableTorrent(self) -> None:
        """
        A torrent path that cannot be read (a directory) is named.
        """
        path = self.mktemp()
        os.makedirs(path)
        e = self.assertRaises(
            usage.UsageError, tap.Options().parseStrictly, ["--torrent", path]
        )
        self.assertIn(f"cannot read torrent {path}", str(e))

    def test_invalidTorrent(self) -> None:
        """
        An invalid torrent is named, with the problem.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"d4:infod4:name2:..ee")
        e = self.assertRaises(
            usage.UsageError, tap.Options().parseStrictly, ["--torrent", path]
        )
        self.assertIn(f"invalid torrent {path}", str(e))
        self.assertIn("info", str(e))

    def test_badValues(self) -> None:
        """
        Out-of-range ports, peer counts and piece orders are refused.
        """
        path = self.makeTorrent()
        for args, words in [
            (["--port", "70000"], "--port"),
            (["--port", "x"], "port"),
            (["--max-peers", "0"], "--max-peers"),
            (["--piece-order", "sequential"], "--piece-order"),
            (["--udp-tracker-retries", "9"], "--udp-tracker-retries"),
            (["--upload-slots", "0"], "--upload-slots"),
            (["--resume-interval", "0"], "--resume-interval"),
            (["--udp-tracker-timeout", "0"], "--udp-tracker-timeout"),
            (["--udp-tracker-timeout", "soon"], "--udp-tracker-timeout"),
            (["--encryption", "always"], "--encryption"),
            (["--rpc-port", "65536"], "--rpc-port"),
            (["--download-queue-size", "-1"], "--download-queue-size"),
            (["--umask", "9"], "--umask"),
            (["--watch-dir", "/no/such/dir"], "watch dir"),
        ]:
            e = self.assertRaises(
                usage.UsageError,
                tap.Options().parseStrictly,
                ["--torrent", path, *args],
            )
            self.assertIn(words, str(e))

    def test_defaultStateDir(self) -> None:
        """
        The state directory follows C{XDG_DATA_HOME}; without it (or with
        it empty), C{~/.local/share/btorrent}; C{--state-dir} wins.
        """
        self.patch(os, "environ", {"XDG_DATA_HOME": "/xdg", "HOME": "/home/u"})
        self.assertEqual(tap.defaultStateDir(), "/xdg/btorrent")
        for environ in ({"HOME": "/home/u"}, {"HOME": "/home/u", "XDG_DATA_HOME": ""}):
            self.patch(os, "environ", environ)
            self.assertEqual(tap.defaultStateDir(), "/home/u/.local/share/btorrent")
        path = self.makeTorrent()
        options = tap.Options()
        options.parseStrictly(["--torrent", path])
        self.assertEqual(options["state-dir"], "/home/u/.local/share/btorrent")
        options = tap.Options()
        options.parseStrictly(["--torrent", path, "--state-dir", "/s"])
        self.assertEqual(options["state-dir"], "/s")


class TwistdTests(SynchronousTestCase):
    """
    The installed C{twistd btorrent} plugin.
    """

    def twistd(self, *args: str) -> subprocess.CompletedProcess:
        """
        Run C{twistd} with C{args} in a fresh directory.
        """
        cwd = self.mktemp()
        os.makedirs(cwd)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        if not os.path.exists(twistd):
            twistd = shutil.which("twistd") or "twistd"
        return subprocess.run(
            [twistd, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_help(self) -> None:
        """
        C{twistd btorrent --help} lists the options.
        """
        result = self.twistd("btorrent", "--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        for option in [
            "--torrent",
            "--download-dir",
            "--port",
            "--state-dir",
            "--debug",
        ]:
            self.assertIn(option, result.stdout)

    def test_oneLineError(self) -> None:
        """
        A mistake on the command line is one line first (not after the
        whole usage), a hint, and exit status 2; no traceback.
        """
        result = self.twistd("btorrent", "--port", "99999")
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr,
            "twistd btorrent: --port must be 0..65535, not 99999\n"
            "(see twistd btorrent --help)\n",
        )
        self.assertEqual(result.stdout, "")
        result = self.twistd("btorrent", "--no-such-option")
        self.assertEqual(result.returncode, 2)
        self.assertTrue(result.stderr.startswith("twistd btorrent: "), result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_version(self) -> None:
        """
        C{twistd btorrent --version} prints btorrent's version.
        """
        from btorrent import __version__

        result = self.twistd("btorrent", "--version")
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stdout, f"btorrent {__version__}\n")
        self.assertNotIn("Traceback", result.stdout + result.stderr)


class PortInUseTests(SynchronousTestCase):
    """
    A port the daemon cannot have is one line and exit status 1.
    """

    def test_rpcPortInUse(self) -> None:
        """
        The web page and RPC port already taken: one line naming it, no
        traceback, exit 1.
        """
        import socket

        from tests.twistdproc import repositoryEnvironment, twistdCommand

        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        port = blocker.getsockname()[1]
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        command = twistdCommand(
            "btorrent",
            "--rpc-port",
            str(port),
            "--state-dir",
            os.path.join(base, "state"),
            "-d",
            os.path.join(base, "downloads"),
            "--port",
            "0",
            logFile=os.path.join(base, "twistd.log"),
        )
        result = subprocess.run(
            command,
            cwd=base,
            capture_output=True,
            text=True,
            timeout=60,
            env=repositoryEnvironment(),
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr,
            f"btorrent: cannot listen on TCP port {port} of 127.0.0.1 for the web "
            "page and RPC: Address already in use\n",
        )
        self.assertNotIn("Traceback", result.stdout + result.stderr)


class LimitOptionsTests(SynchronousTestCase):
    """
    The session's limits on the command line win over the state dir's.
    """

    def test_limitsReachTheSession(self) -> None:
        from twisted.internet.testing import MemoryReactorClock

        base = os.path.abspath(self.mktemp())
        options = tap.Options()
        options.parseStrictly(
            [
                "--state-dir",
                os.path.join(base, "s"),
                "-d",
                os.path.join(base, "d"),
                "--rpc-port",
                "0",
                "--no-dht",
                "--down-limit",
                "2M",
                "--up-limit",
                "500k",
                "--seed-ratio",
                "1.5",
                "--seed-idle",
                "30",
                "--peer-limit-global",
                "77",
            ]
        )
        daemon = tap.buildDaemon(options, MemoryReactorClock())
        settings = daemon.session.controls.settings()
        self.assertEqual(
            {
                name: settings[name]
                for name in (
                    "speedLimitDown",
                    "speedLimitDownEnabled",
                    "speedLimitUp",
                    "speedLimitUpEnabled",
                    "seedRatioLimit",
                    "seedRatioLimited",
                    "idleSeedingLimit",
                    "idleSeedingLimitEnabled",
                    "peerLimitGlobal",
                )
            },
            {
                "speedLimitDown": 2_000_000,
                "speedLimitDownEnabled": True,
                "speedLimitUp": 500_000,
                "speedLimitUpEnabled": True,
                "seedRatioLimit": 1.5,
                "seedRatioLimited": True,
                "idleSeedingLimit": 30,
                "idleSeedingLimitEnabled": True,
                "peerLimitGlobal": 77,
            },
        )
        self.assertEqual(daemon.library.settings.speedLimitDown, 2_000_000)

    def test_badLimits(self) -> None:
        for args, word in [
            (["--down-limit", "fast"], "--down-limit"),
            (["--seed-ratio", "-1"], "--seed-ratio"),
            (["--seed-idle", "0"], "--seed-idle"),
        ]:
            e = self.assertRaises(
                usage.UsageError,
                tap.Options().parseStrictly,
                args + ["-d", self.mktemp(), "--state-dir", self.mktemp()],
            )
            self.assertIn(word, str(e))
