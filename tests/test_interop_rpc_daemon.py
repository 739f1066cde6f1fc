"""
Real clients of the Transmission RPC against a real C{twistd btorrent}: the
stock C{transmission-remote} 3.00 adds a torrent that then downloads from a
real libtorrent seeder, lists, shows, stops, starts, limits and removes it;
Sonarr's conversation replayed byte for byte with a password; and
btorrent's own command line.

Fails (never skips) when transmission-remote or libtorrent is missing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import metainfo
from tests.daemonproc import DaemonProcess
from tests.realclients import writeFiles
from tests.realseeders import libtorrentSeeder, makeTorrent
from tests.rpcserver import exchange
from tests.test_interop_rpc_remote import remoteBinary
from tests.test_interop_seed import MULTI, MULTI_PIECE, assertSameFiles
from tests.test_rpc_clients import SONARR_FIELDS, sonarrGet, sonarrPost
from tests.twistdproc import repositoryEnvironment


class Swarm:
    """
    Data, its torrent file and a libtorrent seeder for one test.
    """

    def __init__(self, test, files=MULTI, pieceLength=MULTI_PIECE) -> None:
        self.base = os.path.abspath(test.mktemp())
        self.files = files
        self.seedDir = os.path.join(self.base, "seed")
        writeFiles(self.seedDir, files, seed=11)
        self.torrentBytes = makeTorrent(self.seedDir, files, pieceLength, [])
        self.torrentPath = os.path.join(self.base, "t.torrent")
        with open(self.torrentPath, "wb") as f:
            f.write(self.torrentBytes)
        self.metainfo = metainfo.load(self.torrentBytes)
        self.seeder = libtorrentSeeder(self.seedDir, self.torrentBytes)
        test.addCleanup(self.seeder.close)


class TransmissionRemoteTests(SynchronousTestCase):
    def remote(self, daemon, *args: str, auth=None) -> str:
        command = [remoteBinary(), f"127.0.0.1:{daemon.rpcPort}"]
        if auth:
            command += ["-n", auth]
        result = subprocess.run(
            command + list(args), capture_output=True, text=True, timeout=30
        )
        self.assertEqual(
            (result.returncode, result.stderr), (0, ""), f"{args}: {result.stdout}"
        )
        return result.stdout

    def test_remoteDrivesTheDaemon(self) -> None:
        """
        transmission-remote adds a torrent that downloads from a libtorrent
        seeder; -l shows it at 100%; -i, -S/-s, -si, -st, the speed limits
        of the session and of the torrent, -r and --remove-and-delete all
        act on the daemon.
        """
        swarm = Swarm(self)
        daemon = DaemonProcess(self, swarm.base)
        self.assertIn("success", self.remote(daemon, "-a", swarm.torrentPath))
        swarm.seeder.connect("127.0.0.1", daemon.peerPort)

        def finished() -> bool:
            rows = [
                line
                for line in self.remote(daemon, "-l").splitlines()
                if line.strip().startswith("1")
            ]
            return bool(rows) and "100%" in rows[0]

        daemon.waitFor(finished, 60, "-l to show 100%")
        assertSameFiles(self, swarm.files, swarm.seedDir, daemon.downloadDir)
        info = self.remote(daemon, "-t", "1", "-i")
        self.assertIn("Name: multi", info)
        self.assertIn(f"Hash: {swarm.metainfo.infoHash.hex()}", info)
        self.assertIn("Percent Done: 100%", info)
        self.remote(daemon, "-t", "1", "-S")
        daemon.waitFor(
            lambda: "Stopped" in self.remote(daemon, "-l"), 10, "-l to show Stopped"
        )
        self.remote(daemon, "-t", "1", "-s")
        daemon.waitFor(
            lambda: "Stopped" not in self.remote(daemon, "-l"), 10, "a restart"
        )
        session = self.remote(daemon, "-si")
        self.assertIn(f"Download directory: {daemon.downloadDir}", session)
        stats = self.remote(daemon, "-st")
        self.assertIn("CURRENT SESSION", stats)
        self.assertRegex(stats, r"Downloaded: +\d")
        self.remote(daemon, "-d", "500", "-u", "600")
        settings = daemon.rpc.call(
            "session-get",
            fields=["speed-limit-down", "speed-limit-down-enabled", "speed-limit-up"],
        )
        self.assertEqual(
            (
                settings["speed-limit-down"],
                settings["speed-limit-down-enabled"],
                settings["speed-limit-up"],
            ),
            (500, True, 600),
        )
        self.remote(daemon, "-t", "1", "-d", "300")
        [torrent] = daemon.rpc.call(
            "torrent-get", ids=[1], fields=["downloadLimit", "downloadLimited"]
        )["torrents"]
        self.assertEqual(
            (torrent["downloadLimit"], torrent["downloadLimited"]), (300, True)
        )
        self.remote(daemon, "-t", "1", "-r")
        daemon.waitFor(lambda: daemon.torrents() == [], 10, "the removal")
        assertSameFiles(self, swarm.files, swarm.seedDir, daemon.downloadDir)
        self.remote(daemon, "-a", swarm.torrentPath)
        daemon.waitFor(lambda: len(daemon.torrents()) == 1, 10, "the second add")
        [again] = daemon.torrents()
        self.remote(daemon, "-t", str(again["id"]), "--remove-and-delete")
        daemon.waitFor(lambda: daemon.torrents() == [], 10, "the removal")
        self.assertFalse(os.path.exists(os.path.join(daemon.downloadDir, "multi")))
        self.assertTrue(daemon.stop())
        self.assertNotIn("Traceback", daemon.log())


class SonarrTests(SynchronousTestCase):
    def test_sonarrAgainstTheDaemon(self) -> None:
        """
        Sonarr's requests, byte for byte, with pre-emptive Basic
        credentials: a GET that gets the 409, session-get, torrent-add
        with labels and a download dir, torrent-set seed limits,
        queue-move-top, torrent-get by lowercase hash, torrent-remove.
        """
        swarm = Swarm(self)
        secret = os.path.join(swarm.base, "secret")
        with open(secret, "w") as f:
            f.write("hunter2\n")
        daemon = DaemonProcess(
            self,
            swarm.base,
            "--rpc-username",
            "sonarr",
            "--rpc-password-file",
            secret,
            auth=("sonarr", "hunter2"),
        )
        port = daemon.rpcPort
        auth = base64.b64encode(b"sonarr:hunter2")
        infoHash = swarm.metainfo.infoHash.hex().encode()
        tv = os.path.join(swarm.base, "tv").encode()
        (first,) = exchange(port, sonarrGet(port, auth))
        self.assertEqual(first.code, 409)
        sid = first.header(b"X-Transmission-Session-Id")
        bodies = [
            b'{"method":"session-get"}',
            b'{"method":"torrent-add","arguments":{"metainfo":"%s","paused":false,'
            b'"download-dir":"%s","labels":["tv-sonarr"]}}'
            % (base64.b64encode(swarm.torrentBytes), tv),
            b'{"method":"torrent-set","arguments":{"ids":["%s"],"seedRatioLimit":1.0,'
            b'"seedRatioMode":1,"seedIdleLimit":1440,"seedIdleMode":1}}' % infoHash,
            b'{"method":"queue-move-top","arguments":{"ids":["%s"]}}' % infoHash,
            b'{"method":"torrent-get","arguments":{"fields":%s,"ids":["%s"]}}'
            % (json.dumps(SONARR_FIELDS).replace(" ", "").encode(), infoHash),
            b'{"method":"torrent-remove","arguments":{"ids":["%s"],'
            b'"delete-local-data":true}}' % infoHash,
        ]
        responses = exchange(port, *[sonarrPost(port, auth, sid, b) for b in bodies])
        answers = [json.loads(r.body) for r in responses]
        for answer in answers:
            self.assertEqual(answer["result"], "success", answer)
        version = answers[0]["arguments"]["version"]
        major, minor = map(int, re.match(r"(\d+)\.(\d+)", version).groups())
        self.assertGreaterEqual((major, minor), (2, 40))
        self.assertEqual(
            answers[1]["arguments"]["torrent-added"]["hashString"], infoHash.decode()
        )
        (torrent,) = answers[4]["arguments"]["torrents"]
        self.assertEqual(sorted(torrent), sorted(SONARR_FIELDS))
        self.assertEqual(torrent["downloadDir"], tv.decode())
        self.assertEqual(torrent["labels"], ["tv-sonarr"])
        self.assertEqual(
            (torrent["seedRatioLimit"], torrent["seedRatioMode"]), (1.0, 1)
        )
        self.assertEqual((torrent["seedIdleLimit"], torrent["seedIdleMode"]), (1440, 1))
        for name in ("eta", "totalSize", "leftUntilDone", "status", "secondsSeeding"):
            self.assertIs(type(torrent[name]), int, name)
        daemon.waitFor(lambda: daemon.torrents() == [], 10, "the removal")
        # Without credentials: 401 with Transmission's realm.
        (refused,) = exchange(
            port,
            b"POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 2\r\n\r\n{}",
        )
        self.assertEqual(refused.code, 401)
        self.assertEqual(
            refused.header(b"WWW-Authenticate"), b'Basic realm="Transmission"'
        )
        self.assertTrue(daemon.stop())


class CommandLineTests(SynchronousTestCase):
    def btorrent(self, daemon, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "btorrent.cli", "--rpc", daemon.rpc.url, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=repositoryEnvironment(),
        )

    def test_addAndList(self) -> None:
        """
        C{btorrent add} and C{btorrent list} drive the daemon; the torrent
        downloads from a libtorrent seeder and lists at 100%.
        """
        swarm = Swarm(self)
        daemon = DaemonProcess(self, swarm.base)
        added = self.btorrent(daemon, "add", swarm.torrentPath)
        self.assertEqual(added.returncode, 0, added.stderr)
        swarm.seeder.connect("127.0.0.1", daemon.peerPort)

        def listed() -> bool:
            result = self.btorrent(daemon, "list")
            self.assertEqual(result.returncode, 0, result.stderr)
            return "multi" in result.stdout and "100%" in result.stdout

        daemon.waitFor(listed, 60, "btorrent list to show 100%")
        info = self.btorrent(daemon, "info", "1")
        self.assertEqual(info.returncode, 0, info.stderr)
        self.assertIn(swarm.metainfo.infoHash.hex(), info.stdout)
        tuned = self.btorrent(daemon, "set", "1", "--sequential", "--high", "0")
        self.assertEqual(tuned.returncode, 0, tuned.stderr)
        [torrent] = daemon.torrents("sequential_download", "priorities")
        self.assertTrue(torrent["sequential_download"])
        self.assertEqual(torrent["priorities"][0], 1)
        self.assertTrue(daemon.stop())
        down = self.btorrent(daemon, "list")
        self.assertEqual(down.returncode, 1)
        self.assertEqual(down.stderr.count("\n"), 1, down.stderr)
        self.assertIn("connection refused", down.stderr)


#: What L{HostileRPCTests} reads back to see that nothing changed.
WATCHED_FIELDS = [
    "id",
    "name",
    "downloadDir",
    "downloadLimit",
    "downloadLimited",
    "uploadLimit",
    "peer-limit",
    "seedRatioMode",
    "seedRatioLimit",
    "wanted",
    "priorities",
    "files",
    "status",
    "error",
]


class HostileRPCTests(SynchronousTestCase):
    def test_badRequestsChangeNothing(self) -> None:
        """
        The real daemon (its library, its torrents, one with metadata and a
        magnet link without) answers absurd requests with an error result:
        negative or huge limits, a file index of 10^9, file priorities on
        a magnet link without metadata, relative or escaping paths, bad
        torrents and magnet links, unknown ids.  Nothing changes on any
        torrent or in the session, no file appears outside the download
        dir, and the daemon stops cleanly with no traceback in its log.
        """
        swarm = Swarm(self)
        daemon = DaemonProcess(self, swarm.base)
        daemon.rpc.call("torrent-add", filename=swarm.torrentPath)
        magnet = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=nothing-yet"
        daemon.rpc.call("torrent-add", filename=magnet)
        daemon.waitFor(lambda: len(daemon.torrents()) == 2, 10, "both torrents")
        torrentId, magnetId = sorted(t["id"] for t in daemon.torrents())
        # Past its check (status 1 or 2), so that the snapshot is not taken
        # while the torrent still moves on by itself.
        daemon.waitFor(
            lambda: all(t["status"] not in (1, 2) for t in daemon.torrents("status")),
            20,
            "the torrents past their check",
        )
        before = daemon.torrents(*WATCHED_FIELDS)
        sessionBefore = daemon.rpc.call("session-get")
        outside = os.path.join(swarm.base, "escaped")
        cases = [
            ("torrent-set", {"ids": [torrentId], "downloadLimit": -1}, "from 0 to"),
            ("torrent-set", {"ids": [torrentId], "uploadLimit": 10**20}, "from 0 to"),
            ("torrent-set", {"ids": [torrentId], "peer-limit": 10**9}, "peer-limit"),
            (
                "torrent-set",
                {"ids": [torrentId], "seedRatioLimit": -3},
                "seedRatioLimit",
            ),
            (
                "torrent-set",
                {"ids": [torrentId], "files-wanted": [10**9]},
                "file index out of range",
            ),
            (
                "torrent-set",
                {"ids": [torrentId, magnetId], "files-unwanted": [0]},
                "file index out of range",
            ),
            (
                "torrent-set",
                {"ids": [magnetId], "priority-high": [0]},
                "file index out of range",
            ),
            (
                "torrent-set-location",
                {"ids": [torrentId], "location": "../escaped", "move": True},
                "not absolute",
            ),
            (
                "torrent-rename-path",
                {"ids": [torrentId], "path": "multi", "name": "../../escaped"},
                "",
            ),
            (
                "torrent-add",
                {"filename": swarm.torrentPath, "download-dir": "relative/dir"},
                "",
            ),
            ("torrent-add", {"metainfo": "not base64 at all!"}, ""),
            (
                "torrent-add",
                {"metainfo": base64.b64encode(b"d4:infod6:lengthi-5eee").decode()},
                "",
            ),
            ("torrent-add", {"filename": "magnet:?xt=urn:btih:zzz"}, ""),
            ("torrent-add", {"filename": "/etc/passwd"}, ""),
            ("session-set", {"speed-limit-down": -5}, "speed-limit-down"),
            ("session-set", {"download-dir": "relative"}, ""),
            ("session-set", {"peer-limit-global": "many"}, "peer-limit-global"),
            ("torrent-get", {"fields": "name"}, ""),
            ("torrent-remove", {"ids": {"all": True}}, '"ids" must be'),
            ("queue-move-top", {"ids": ["not-a-hash"]}, ""),
        ]
        for method, arguments, text in cases:
            with self.assertRaises(RuntimeError, msg=(method, arguments)) as caught:
                daemon.rpc.call(method, **arguments)
            self.assertIn(text, str(caught.exception), (method, arguments))
        self.assertEqual(daemon.torrents(*WATCHED_FIELDS), before)
        sessionAfter = daemon.rpc.call("session-get")
        self.assertEqual(
            {k: v for k, v in sessionAfter.items() if k != "session-id"},
            {k: v for k, v in sessionBefore.items() if k != "session-id"},
        )
        self.assertFalse(os.path.exists(outside))
        self.assertFalse(os.path.exists(os.path.join(swarm.base, "relative")))
        self.assertTrue(daemon.stop())
        self.assertNotIn("Traceback", daemon.log())
