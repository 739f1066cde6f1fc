"""
C{btorrent}'s remote commands against a real transmission-daemon 3.00 on
127.0.0.1 (L{tests.realtransmission}): the command line speaks the
Transmission RPC as Transmission itself serves it, 409 dance and Basic
authentication included.

Every command runs as a subprocess (C{python -m btorrent.cli}, this
checkout); errors must be one exact line on stderr with a non-zero exit and
never a traceback.  Fails (never skips) when transmission-daemon is
missing.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import metainfo
from tests.builders import buildTorrent
from tests.realtransmission import Transmission
from tests.twistdproc import repositoryEnvironment

#: The command, as this interpreter runs this checkout.
COMMAND = [sys.executable, "-m", "btorrent.cli"]


def waitFor(predicate, seconds: float, what: str):
    """
    Poll C{predicate()} until it returns something true; return it.
    """
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class TransmissionCLITestCase(SynchronousTestCase):
    """
    A fresh transmission-daemon per test, and data to share with it.
    """

    #: Credentials the daemon requires, if any.
    auth = None

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.transmission = Transmission(self.dir, auth=self.auth)
        self.addCleanup(self.transmission.stop)
        self.url = self.transmission.rpcURL

    def btorrent(self, *argv: str, env=None, url: bool = True):
        """
        Run C{btorrent ARGV --rpc URL}; return the completed process, after
        checking that nothing it printed is a traceback.
        """
        environment = repositoryEnvironment()
        environment.pop("BTORRENT_RPC", None)
        environment.pop("BTORRENT_AUTH", None)
        environment.update(env or {})
        result = subprocess.run(
            COMMAND + list(argv) + (["--rpc", self.url] if url else []),
            capture_output=True,
            text=True,
            timeout=60,
            env=environment,
        )
        self.assertNotIn("Traceback", result.stdout + result.stderr)
        return result

    def ok(self, *argv: str, **kwargs) -> str:
        """
        Run C{btorrent ARGV}, which must succeed quietly on stderr; its
        stdout.
        """
        result = self.btorrent(*argv, **kwargs)
        self.assertEqual((result.returncode, result.stderr), (0, ""), argv)
        return result.stdout

    def makeData(self, name: str, files) -> str:
        """
        Write C{seed/name} (a directory of C{files}, name → size, or a file
        when C{files} is an int) and a .torrent of it; its path.
        """
        seed = os.path.join(self.dir, "seed")
        if isinstance(files, int):
            built = buildTorrent(seed, [(name, files)], None, single=True)
        else:
            built = buildTorrent(os.path.join(seed, name), list(files.items()), None)
        return built.writeTorrent(os.path.join(self.dir, name + ".torrent"))

    def status(self, torrentId: int, *fields: str) -> dict:
        """
        Fields of one torrent, asked of Transmission directly.
        """
        reply = self.transmission.rpc(
            "torrent-get", ids=[torrentId], fields=list(fields)
        )
        [torrent] = reply["torrents"]
        return torrent


class AddListInfoTests(TransmissionCLITestCase):
    """
    C{add}, C{list}, C{info}, C{stats}.
    """

    def test_addAndList(self) -> None:
        """
        C{btorrent add X.torrent -d DIR} (where the data is) adds it;
        Transmission checks and seeds it; C{btorrent list} shows the row at
        100%, C{info} by number and by hash prefix describes it, C{stats}
        counts it.
        """
        path = self.makeData("shared.bin", 300000)
        infoHash = metainfo.loadFile(path).infoHash.hex()
        out = self.ok("add", path, "-d", os.path.join(self.dir, "seed"))
        self.assertEqual(out, f"added: 1 shared.bin ({infoHash})\n")
        self.transmission.waitFor(
            1, lambda s: s["percentDone"] == 1 and s["status"] == 6, 30
        )
        lines = self.ok("list").splitlines()
        self.assertEqual(lines[0].split()[:3], ["ID", "Done", "Have"])
        row = re.split(r"\s{2,}", lines[1])
        self.assertEqual(row[0], "1")
        self.assertEqual(row[1], "100%")
        self.assertEqual(row[2], "293.0 KiB")
        self.assertEqual(row[3], "done")
        self.assertEqual(row[-2:], ["seeding", "shared.bin"])
        self.assertTrue(lines[2].startswith("Sum:"))
        [record] = json.loads(self.ok("list", "--json"))
        self.assertEqual(record["hashString"], infoHash)
        self.assertEqual(record["percentDone"], 1)

        info = self.ok("info", "1")
        self.assertEqual(self.ok("info", infoHash[:8].upper()), info)
        self.assertIn("name:         shared.bin\n", info)
        self.assertIn(f"info-hash:    {infoHash}\n", info)
        self.assertIn("state:        seeding\n", info)
        self.assertIn(f"location:     {os.path.join(self.dir, 'seed')}\n", info)
        self.assertIn("progress:     100.0% of 293.0 KiB wanted", info)
        self.assertIn("  tier 0: http://127.0.0.1:1/announce\n", info)
        self.assertIn("files:\n    0 get  100.0%  shared.bin (293.0 KiB)\n", info)

        stats = self.ok("stats")
        self.assertTrue(stats.startswith("torrents:      1 (1 active, 0 paused)\n"))

    def test_duplicateAndInvalid(self) -> None:
        """
        Adding a torrent twice says it is already there; a file that is not
        a torrent gets Transmission's refusal, one line, exit 1.
        """
        path = self.makeData("twice.bin", 1000)
        self.ok("add", path, "--paused")
        self.assertTrue(self.ok("add", path).startswith("already there: 1 twice.bin ("))
        bad = os.path.join(self.dir, "bad.torrent")
        with open(bad, "wb") as f:
            f.write(b"this is not a torrent")
        result = self.btorrent("add", bad)
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(
            result.stderr,
            "btorrent add: error: torrent-add: invalid or corrupt torrent file\n",
        )

    def test_unknownIds(self) -> None:
        """
        A number Transmission does not have, and a prefix of no torrent's
        hash: one line each (Transmission itself would ignore them).
        """
        self.ok("add", self.makeData("one.bin", 1000), "--paused")
        result = self.btorrent("stop", "5")
        self.assertEqual(
            (result.returncode, result.stderr),
            (1, "btorrent stop: error: no torrent has ID 5\n"),
        )
        infoHash = self.status(1, "hashString")["hashString"]
        other = "0" if infoHash[0] != "0" else "1"
        result = self.btorrent("info", other + "abc")
        self.assertEqual(
            result.stderr,
            f"btorrent info: error: no torrent's info-hash starts with {other}abc\n",
        )


class ControlTests(TransmissionCLITestCase):
    """
    C{stop}, C{start}, C{verify}, C{set}, C{remove --delete}.
    """

    def test_control(self) -> None:
        """
        Each command changes what Transmission reports.
        """
        path = self.makeData("tree", {"a.bin": 40000, "b.bin": 50000, "c.bin": 10})
        downloads = os.path.join(self.dir, "elsewhere")
        self.ok("add", path, "--download-dir", downloads)
        self.assertEqual(self.ok("stop", "1"), "stopped: 1 tree\n")
        waitFor(lambda: self.status(1, "status")["status"] == 0, 15, "stopped")
        self.assertEqual(self.ok("start", "all"), "started: 1 tree\n")
        waitFor(lambda: self.status(1, "status")["status"] != 0, 15, "started")
        self.assertEqual(self.ok("verify", "1"), "verifying: 1 tree\n")

        self.ok(
            "set",
            "1",
            "--down",
            "500k",
            "--up",
            "2M",
            "--ratio",
            "1.5",
            "--skip",
            "0,2",
        )
        torrent = self.status(
            1,
            "downloadLimit",
            "downloadLimited",
            "uploadLimit",
            "uploadLimited",
            "seedRatioMode",
            "seedRatioLimit",
            "wanted",
        )
        self.assertEqual(
            torrent,
            {
                "downloadLimit": 500,
                "downloadLimited": True,
                "uploadLimit": 2000,
                "uploadLimited": True,
                "seedRatioMode": 1,
                "seedRatioLimit": 1.5,
                "wanted": [0, 1, 0],
            },
        )
        info = self.ok("info", "1")
        self.assertIn("limits:       500.0 kB/s down, 2.0 MB/s up, ratio 1.50\n", info)
        self.assertIn("    0 skip ", info)
        self.assertIn("    1 get  ", info)
        self.ok("set", "1", "--down", "unlimited", "--get", "all", "--ratio", "global")
        torrent = self.status(1, "downloadLimited", "wanted", "seedRatioMode")
        self.assertEqual(
            torrent, {"downloadLimited": False, "wanted": [1, 1, 1], "seedRatioMode": 0}
        )

    def test_removeDelete(self) -> None:
        """
        C{remove} leaves the data; C{remove --delete} deletes it.
        """
        first = self.makeData("keep.bin", 20000)
        self.ok("add", first, "-d", os.path.join(self.dir, "seed"))
        self.transmission.waitFor(1, lambda s: s["percentDone"] == 1, 30)
        self.assertEqual(self.ok("remove", "1"), "removed: 1 keep.bin\n")
        waitFor(
            lambda: not self.transmission.rpc("torrent-get", fields=["id"])["torrents"],
            15,
            "the removal",
        )
        self.assertTrue(os.path.exists(os.path.join(self.dir, "seed", "keep.bin")))

        second = self.makeData("drop.bin", 20000)
        self.ok("add", second, "-d", os.path.join(self.dir, "seed"))
        self.transmission.waitFor(2, lambda s: s["percentDone"] == 1, 30)
        self.assertEqual(
            self.ok("remove", "--delete", "2"), "removed with its data: 2 drop.bin\n"
        )
        dropped = os.path.join(self.dir, "seed", "drop.bin")
        waitFor(lambda: not os.path.exists(dropped), 15, "the data deleted")
        [total] = self.ok("list").splitlines()[1:]
        self.assertEqual(total.split(), ["Sum:", "0", "B", "0", "B/s", "0", "B/s"])

    def test_watch(self) -> None:
        """
        C{btorrent watch} in a terminal draws the table and redraws it in
        place; ^C leaves cleanly with exit code 0.
        """
        self.ok("add", self.makeData("live.bin", 1000), "--paused")
        environment = repositoryEnvironment()
        environment.update(COLUMNS="100", LINES="30", TERM="xterm")
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            COMMAND + ["watch", "--interval", "0.2", "--rpc", self.url],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=environment,
        )
        os.close(terminal)
        shown = b""
        deadline = time.monotonic() + 30
        while shown.count(b"live.bin") < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                shown += os.read(controller, 65536)
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
        while True:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                break
            try:
                data = os.read(controller, 65536)
            except OSError:
                break
            if not data:
                break
            shown += data
        os.close(controller)
        text = shown.decode("utf-8", "replace")
        self.assertEqual(code, 0, text[-2000:])
        self.assertGreaterEqual(text.count("live.bin"), 3)
        self.assertIn("stopped", text)
        self.assertIn("\x1b[1A", text)  # redrawn in place
        self.assertNotIn("Traceback", text)
        self.assertNotIn("interrupted", text)


class AuthenticationTests(TransmissionCLITestCase):
    """
    A transmission-daemon that requires a user name and password.
    """

    auth = ("alice", "pass:word")

    def test_auth(self) -> None:
        """
        Right credentials (C{--auth} or C{BTORRENT_AUTH}) work; wrong or
        missing ones are one line and exit 1.
        """
        self.ok("add", self.makeData("private.bin", 1000), "--auth", "alice:pass:word")
        out = self.ok("list", env={"BTORRENT_AUTH": "alice:pass:word"})
        self.assertIn("private.bin", out)
        result = self.btorrent("list", "--auth", "alice:wrong")
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(
            result.stderr,
            f"btorrent list: error: authentication failed: the daemon at "
            f"{self.url} refused the user name or password\n",
        )
        result = self.btorrent("list")
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(
            result.stderr,
            f"btorrent list: error: authentication failed: the daemon at "
            f"{self.url} requires a user name and password (--auth "
            f"USER:PASSWORD or BTORRENT_AUTH)\n",
        )


class NotRunningTests(TransmissionCLITestCase):
    """
    A daemon that has stopped.
    """

    def test_notRunning(self) -> None:
        """
        Once transmission-daemon is stopped, C{btorrent list} is one line:
        connection refused.
        """
        self.assertIn("Sum:", self.ok("list"))
        self.transmission.stop()
        for command in ("list", "stats"):
            result = self.btorrent(command)
            self.assertEqual((result.returncode, result.stdout), (1, ""))
            self.assertEqual(
                result.stderr,
                f"btorrent {command}: error: cannot reach the daemon at {self.url}:"
                f" connection refused\n",
            )
