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

from btorrent.codec import metainfo
from btorrent.daemon import tap


class OptionsTests(SynchronousTestCase):
    """
    L{tap.Options} parses and validates the command line.
    """

    def makeTorrent(self) -> str:
        """
        Create a small file and a torrent for it; return the torrent path.
        """
        base = self.mktemp()
        os.makedirs(base)
        data = os.path.join(base, "data.bin")
        with open(data, "wb") as f:
            f.write(b"x" * 50000)
        path = os.path.join(base, "data.torrent")
        with open(path, "wb") as f:
            f.write(metainfo.create(data, [["http://127.0.0.1:6969/announce"]]))
        return path

    def test_valid(self) -> None:
        """
        Valid options load every torrent and fill in the defaults.
        """
        path = self.makeTorrent()
        options = tap.Options()
        options.parseOptions(
            ["--torrent", path, "-t", path, "--port", "0", "-d", "dl", "--debug"]
        )
        self.assertEqual(len(options["metainfos"]), 2)
        self.assertEqual(options["metainfos"][0].name, "data.bin")
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
        path = self.makeTorrent()
        for mode in ("tolerated", "preferred", "required"):
            options = tap.Options()
            options.parseOptions(
                ["--torrent", path, "--port", "0", "--encryption", mode]
            )
            self.assertEqual(options["encryption"], mode)
            service = tap.makeService(options)
            self.assertEqual(service.encryption, mode)
            [torrent] = service.torrents.values()
            self.assertEqual(torrent.encryption, mode)

    def test_torrentRequired(self) -> None:
        """
        Without --torrent, L{usage.UsageError} says it is required.
        """
        e = self.assertRaises(usage.UsageError, tap.Options().parseOptions, [])
        self.assertIn("--torrent is required", str(e))

    def test_missingTorrent(self) -> None:
        """
        A torrent that does not exist is named in the error.
        """
        path = self.mktemp()
        e = self.assertRaises(
            usage.UsageError, tap.Options().parseOptions, ["--torrent", path]
        )
        self.assertIn(f"cannot read torrent {path}", str(e))

    def test_unreadableTorrent(self) -> None:
        """
        A torrent path that cannot be read (a directory) is named.
        """
        path = self.mktemp()
        os.makedirs(path)
        e = self.assertRaises(
            usage.UsageError, tap.Options().parseOptions, ["--torrent", path]
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
            usage.UsageError, tap.Options().parseOptions, ["--torrent", path]
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
        ]:
            e = self.assertRaises(
                usage.UsageError,
                tap.Options().parseOptions,
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
        options.parseOptions(["--torrent", path])
        self.assertEqual(options["state-dir"], "/home/u/.local/share/btorrent")
        options = tap.Options()
        options.parseOptions(["--torrent", path, "--state-dir", "/s"])
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

    def test_noTorrent(self) -> None:
        """
        C{twistd btorrent} without --torrent fails, saying so.
        """
        result = self.twistd("btorrent")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--torrent is required", result.stdout + result.stderr)
        self.assertNotIn("Traceback", result.stdout + result.stderr)
