"""
Tests for L{btorrent.cli.remote} and L{btorrent.cli.watch}: the remote
commands of C{btorrent}, run in-process against the fake Transmission RPC
of L{tests.faketransmission}.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from btorrent.cli import main as cli
from btorrent.cli import remote, watch
from btorrent.cli.remoteargs import parseTorrentId
from btorrent.cli.rpcclient import RPCClient
from btorrent.codec import metainfo
from tests.builders import buildTorrent
from tests.faketransmission import FakeTransmission, listen
from tests.realpeers import freePort


class TTY(io.StringIO):
    """
    A text stream that claims to be a terminal.
    """

    def isatty(self) -> bool:
        return True


def makeTorrent(directory: str, name: str, size: int = 1000) -> str:
    """
    Write C{directory/name} (C{size} bytes) and a .torrent of it; return
    the .torrent's path.
    """
    return buildTorrent(directory, [(name, size)], None, single=True).writeTorrent()


class RemoteTestCase(TestCase):
    """
    A fake Transmission and a way to run C{btorrent COMMAND} against it.
    """

    credentials = None

    def setUp(self) -> None:
        self.fake = FakeTransmission(self.credentials)
        port, self.url = listen(reactor, self.fake)
        self.addCleanup(port.stopListening)
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        for name in ("BTORRENT_RPC", "BTORRENT_AUTH"):
            if name in os.environ:
                self.addCleanup(os.environ.__setitem__, name, os.environ.pop(name))

    async def btorrent(self, *argv: str, rpc: bool = True, out=None):
        """
        Run C{btorrent [--rpc URL] ARGV} in this process; return (exit code,
        stdout, stderr).
        """
        argv = (["--rpc", self.url] if rpc else []) + list(argv)
        parser = cli._buildParser(cli._commandWord(argv))
        args = parser.parse_args(argv)
        if args.command == "info":
            args.ids = [parseTorrentId(t) for t in args.targets]
        out = io.StringIO() if out is None else out
        err = io.StringIO()
        code = await remote.run(reactor, args, out, err)
        return code, out.getvalue(), err.getvalue()

    def addFake(self, torrentId: int, hashString: str, **fields) -> dict:
        """
        Put a torrent straight into the fake.
        """
        record = {
            "id": torrentId,
            "name": f"t{torrentId}",
            "hashString": hashString,
            "status": 6,
            "percentDone": 1.0,
            "sizeWhenDone": 2048,
            "leftUntilDone": 0,
            "isFinished": False,
            "eta": -1,
            "rateDownload": 0,
            "rateUpload": 0,
            "uploadRatio": 0.5,
            "error": 0,
            "errorString": "",
            "peersConnected": 0,
        }
        record.update(fields)
        self.fake.torrents[torrentId] = record
        return record


class AddTests(RemoteTestCase):
    """
    C{btorrent add}.
    """

    async def test_localTorrent(self) -> None:
        """
        A local .torrent goes as base64 C{metainfo}; a relative
        C{--download-dir} is made absolute; C{--paused} is sent.
        """
        path = makeTorrent(self.dir, "data.bin")
        with open(path, "rb") as f:
            raw = f.read()
        infoHash = metainfo.load(raw).infoHash.hex()
        code, out, err = await self.btorrent(
            "add", path, "--download-dir", "rel/dir", "--paused"
        )
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, f"added: 1 data.bin ({infoHash})\n")
        [(method, arguments)] = [c for c in self.fake.calls if c[0] == "torrent-add"]
        self.assertEqual(base64.b64decode(arguments["metainfo"]), raw)
        self.assertEqual(arguments["download-dir"], os.path.abspath("rel/dir"))
        self.assertIs(arguments["paused"], True)
        self.assertNotIn("filename", arguments)

    async def test_defaults(self) -> None:
        """
        Without options, neither C{download-dir} nor C{paused} is sent (the
        daemon's own defaults apply); C{-d} is C{--download-dir}.
        """
        path = makeTorrent(self.dir, "a.bin")
        await self.btorrent("add", path)
        arguments = self.fake.calls[-1][1]
        self.assertEqual(set(arguments), {"metainfo"})
        await self.btorrent("add", makeTorrent(self.dir, "b.bin"), "-d", "/srv/x")
        self.assertEqual(self.fake.calls[-1][1]["download-dir"], "/srv/x")

    async def test_duplicate(self) -> None:
        """
        Adding a torrent the daemon has is not an error: it says so.
        """
        path = makeTorrent(self.dir, "data.bin")
        await self.btorrent("add", path)
        code, out, err = await self.btorrent("add", path)
        self.assertEqual((code, err), (0, ""))
        self.assertTrue(out.startswith("already there: 1 data.bin ("), out)

    async def test_magnetAndURL(self) -> None:
        """
        Magnet links and http(s) URLs go as C{filename}, for the daemon to
        fetch; a bare 40-digit info-hash becomes a magnet link.
        """
        h = "ab" * 20
        code, out, err = await self.btorrent("add", f"magnet:?xt=urn:btih:{h}")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(
            self.fake.calls[-1][1], {"filename": f"magnet:?xt=urn:btih:{h}"}
        )
        code, out, err = await self.btorrent("add", "CD" * 20)
        self.assertEqual(
            self.fake.calls[-1][1], {"filename": f"magnet:?xt=urn:btih:{'cd' * 20}"}
        )
        code, out, err = await self.btorrent("add", "https://example.invalid/x.torrent")
        self.assertEqual(
            self.fake.calls[-1][1], {"filename": "https://example.invalid/x.torrent"}
        )
        self.assertEqual(code, 1)
        self.assertEqual(
            err, "btorrent add: error: torrent-add: invalid or corrupt torrent file\n"
        )

    async def test_invalidTorrent(self) -> None:
        """
        A local file that is not a torrent: the daemon's refusal, one line.
        """
        path = os.path.join(self.dir, "bad.torrent")
        with open(path, "wb") as f:
            f.write(b"not bencode")
        code, out, err = await self.btorrent("add", path)
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(
            err, "btorrent add: error: torrent-add: invalid or corrupt torrent file\n"
        )

    async def test_unreadable(self) -> None:
        """
        A missing file, a directory, a FIFO (no waiting for a writer) and a
        giant file are one line each, and nothing is sent.
        """
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo)
        giant = os.path.join(self.dir, "giant.torrent")
        with open(giant, "wb") as f:
            f.truncate(remote.MAX_TORRENT_FILE + 1)
        missing = os.path.join(self.dir, "nope.torrent")
        for path, problem in [
            (missing, "No such file or directory"),
            (self.dir, "Is a directory"),
            (fifo, "not a regular file"),
            (giant, "bigger than 16 MiB: not a .torrent"),
        ]:
            code, out, err = await self.btorrent("add", path)
            self.assertEqual((code, out), (1, ""))
            self.assertEqual(err, f"btorrent add: error: {path}: {problem}\n")
        self.assertEqual(self.fake.calls, [])


class ListTests(RemoteTestCase):
    """
    C{btorrent list}.
    """

    async def test_table(self) -> None:
        """
        One row per torrent in ID order (done, have, ETA, rates, ratio,
        state, name), then the sums.
        """
        self.addFake(
            2,
            "b" * 40,
            name="second",
            status=4,
            percentDone=0.25,
            sizeWhenDone=4 * 1024 * 1024,
            leftUntilDone=3 * 1024 * 1024,
            eta=3700,
            rateDownload=1500000,
            rateUpload=2500,
            uploadRatio=-1,
        )
        self.addFake(1, "a" * 40, name="first")
        code, out, err = await self.btorrent("list")
        self.assertEqual((code, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(len(lines), 4)
        self.assertEqual(
            lines[0].split(),
            ["ID", "Done", "Have", "ETA", "Up", "Down", "Ratio", "State", "Name"],
        )
        self.assertEqual(
            re.split(r"\s{2,}", lines[1]),
            [
                "1",
                "100%",
                "2.0 KiB",
                "done",
                "0 B/s",
                "0 B/s",
                "0.50",
                "seeding",
                "first",
            ],
        )
        self.assertEqual(
            re.split(r"\s{2,}", lines[2]),
            [
                "2",
                "25%",
                "1.0 MiB",
                "1h 1m",
                "2.5 kB/s",
                "1.5 MB/s",
                "none",
                "downloading",
                "second",
            ],
        )
        self.assertEqual(
            re.split(r"\s{2,}", lines[3]), ["Sum:", "1.0 MiB", "2.5 kB/s", "1.5 MB/s"]
        )

    async def test_json(self) -> None:
        """
        C{--json}: the records as the daemon gave them, in ID order.
        """
        self.addFake(3, "c" * 40)
        self.addFake(1, "a" * 40)
        code, out, err = await self.btorrent("list", "--json")
        self.assertEqual([t["id"] for t in json.loads(out)], [1, 3])
        self.assertEqual(json.loads(out)[0]["hashString"], "a" * 40)

    async def test_empty(self) -> None:
        """
        No torrents: the header and a zero sum.
        """
        code, out, err = await self.btorrent("list")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(len(out.splitlines()), 2)
        self.assertEqual(
            out.splitlines()[1].split(), ["Sum:", "0", "B", "0", "B/s", "0", "B/s"]
        )

    async def test_hostileFields(self) -> None:
        """
        Fields of the wrong type show as unknown, never raise; text that
        would drive the terminal is escaped.
        """
        self.addFake(
            1,
            "a" * 40,
            name="evil\x1b[2J\nname",
            eta="soon",
            percentDone=None,
            rateUpload=[1],
            status=99,
            sizeWhenDone=True,
            uploadRatio=float("nan"),
        )
        code, out, err = await self.btorrent("list")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("evil\\x1b[2J\\nname", out)
        self.assertNotIn("\x1b", out)
        self.assertIn("unknown", out)

    async def test_malformedReply(self) -> None:
        """
        A C{torrent-get} reply that is not a list of torrents with numeric
        IDs is one line.
        """
        for torrents in ({"1": {}}, [{"id": "1"}], [{"id": True}], ["x"]):
            self.fake.override = lambda request, _, t=torrents: json.dumps(
                {"result": "success", "arguments": {"torrents": t}}
            ).encode()
            code, out, err = await self.btorrent("list")
            self.assertEqual((code, out), (1, ""))
            self.assertEqual(
                err,
                "btorrent list: error: the daemon's torrent-get reply is malformed\n",
            )


class InfoTests(RemoteTestCase):
    """
    C{btorrent info ID}.
    """

    async def test_byIdAndPrefix(self) -> None:
        """
        A number and an info-hash prefix (any case) name torrents; the
        details include the files, numbered.
        """
        await self.btorrent("add", makeTorrent(self.dir, "data.bin", 5000))
        [torrent] = self.fake.torrents.values()
        torrent["fileStats"][0]["wanted"] = False
        code, byId, err = await self.btorrent("info", "1")
        self.assertEqual((code, err), (0, ""))
        code, byPrefix, err = await self.btorrent(
            "info", torrent["hashString"][:6].upper()
        )
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(byId, byPrefix)
        self.assertIn("name:         data.bin\n", byId)
        self.assertIn(f"info-hash:    {torrent['hashString']}\n", byId)
        self.assertIn("state:        downloading\n", byId)
        self.assertIn(
            "limits:       unlimited down, unlimited up, ratio global\n", byId
        )
        self.assertIn("files:\n    0 skip   0.0%  data.bin (4.9 KiB)\n", byId)

    async def test_hostileFields(self) -> None:
        """
        Details of the wrong types (trackers a number, files a string,
        file stats not objects, dates text) show as unknown or nothing,
        never raise.
        """
        self.addFake(
            1,
            "a" * 40,
            trackers=5,
            files=[{"name": 7, "length": "x"}, "junk"],
            fileStats=[1],
            addedDate="yesterday",
            doneDate=10**30,
            pieceCount=None,
            comment=["x"],
            error=3,
            errorString="tracker\x07 said no",
        )
        code, out, err = await self.btorrent("info", "1")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("trackers:     none\n", out)
        self.assertIn("files:\n    0 get  100.0%  ? (0 B)\n", out)
        self.assertIn("error:        tracker\\x07 said no\n", out)
        self.assertNotIn("added:", out)
        self.assertNotIn("completed:", out)

    async def test_several(self) -> None:
        """
        Several IDs: one block each, in the order asked; a torrent named
        twice is shown once.
        """
        self.addFake(1, "a" * 40)
        self.addFake(2, "b" * 40)
        code, out, err = await self.btorrent("info", "2", "1", "bbb", "--json")
        self.assertEqual([t["id"] for t in json.loads(out)], [2, 1])

    async def test_unknown(self) -> None:
        """
        A number no torrent has, and a prefix matching none, are one line.
        """
        self.addFake(1, "a" * 40)
        code, out, err = await self.btorrent("info", "7")
        self.assertEqual(
            (code, out, err), (1, "", "btorrent info: error: no torrent has ID 7\n")
        )
        code, out, err = await self.btorrent("info", "ff")
        self.assertEqual(
            err, "btorrent info: error: no torrent's info-hash starts with ff\n"
        )

    async def test_ambiguous(self) -> None:
        """
        A prefix two torrents share is refused, naming them.
        """
        self.addFake(1, "abc1" + "0" * 36)
        self.addFake(2, "abc2" + "0" * 36)
        code, out, err = await self.btorrent("stop", "abc")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(
            err,
            "btorrent stop: error: info-hash prefix abc is ambiguous: it matches "
            "torrents 1 (abc100000000...), 2 (abc200000000...); give more digits\n",
        )
        self.assertEqual([m for m, _ in self.fake.calls], ["torrent-get"])
        code, out, err = await self.btorrent("stop", "abc2")
        self.assertEqual((code, out), (0, "stopped: 2 t2\n"))


class ActionTests(RemoteTestCase):
    """
    C{start}, C{stop}, C{verify}, C{remove}.
    """

    def setUp(self) -> None:
        super().setUp()
        for i, letter in ((1, "a"), (2, "b"), (3, "c")):
            self.addFake(i, letter * 40)

    async def test_actions(self) -> None:
        """
        Each sends its method with the resolved numbers and says what was
        done, one line per torrent.
        """
        for command, method, verb in [
            ("start", "torrent-start", "started"),
            ("stop", "torrent-stop", "stopped"),
            ("verify", "torrent-verify", "verifying"),
        ]:
            code, out, err = await self.btorrent(command, "3", "1", "BBB")
            self.assertEqual((code, err), (0, ""))
            self.assertEqual(out, f"{verb}: 1 t1\n{verb}: 2 t2\n{verb}: 3 t3\n")
            self.assertEqual(self.fake.calls[-1], (method, {"ids": [3, 1, 2]}))

    async def test_all(self) -> None:
        """
        C{all} leaves C{ids} out: every torrent.
        """
        code, out, err = await self.btorrent("stop", "all")
        self.assertEqual(self.fake.calls[-1], ("torrent-stop", {}))
        self.assertEqual(len(out.splitlines()), 3)
        self.assertEqual({t["status"] for t in self.fake.torrents.values()}, {0})

    async def test_remove(self) -> None:
        """
        C{remove} keeps the data unless C{--delete} is given.
        """
        code, out, err = await self.btorrent("remove", "1")
        self.assertEqual(out, "removed: 1 t1\n")
        self.assertEqual(
            self.fake.calls[-1],
            ("torrent-remove", {"ids": [1], "delete-local-data": False}),
        )
        code, out, err = await self.btorrent("remove", "--delete", "2")
        self.assertEqual(out, "removed with its data: 2 t2\n")
        self.assertEqual(
            self.fake.calls[-1],
            ("torrent-remove", {"ids": [2], "delete-local-data": True}),
        )
        self.assertEqual(list(self.fake.torrents), [3])

    async def test_unknownSendsNothing(self) -> None:
        """
        If one ID of several is unknown, nothing is done at all.
        """
        code, out, err = await self.btorrent("remove", "1", "9")
        self.assertEqual(
            (code, err), (1, "btorrent remove: error: no torrent has ID 9\n")
        )
        self.assertEqual([m for m, _ in self.fake.calls], ["torrent-get"])
        self.assertEqual(len(self.fake.torrents), 3)

    async def test_noTorrents(self) -> None:
        """
        C{all} when the daemon has none: nothing sent, said so.
        """
        self.fake.torrents.clear()
        code, out, err = await self.btorrent("start", "all")
        self.assertEqual((code, out, err), (0, "no torrents\n", ""))
        self.assertEqual([m for m, _ in self.fake.calls], ["torrent-get"])


class SetTests(RemoteTestCase):
    """
    C{btorrent set}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.addFake(1, "a" * 40)

    async def test_rates(self) -> None:
        """
        Rates in bytes/s go as whole kB/s (k = 1000) with the C{*Limited}
        flag; C{unlimited} clears the flag.
        """
        code, out, err = await self.btorrent("set", "1", "--down", "500k", "--up", "2M")
        self.assertEqual((code, out, err), (0, "set: 1 t1\n", ""))
        self.assertEqual(
            self.fake.calls[-1],
            (
                "torrent-set",
                {
                    "ids": [1],
                    "downloadLimited": True,
                    "downloadLimit": 500,
                    "uploadLimited": True,
                    "uploadLimit": 2000,
                },
            ),
        )
        await self.btorrent("set", "1", "--up", "unlimited")
        self.assertEqual(
            self.fake.calls[-1], ("torrent-set", {"ids": [1], "uploadLimited": False})
        )

    async def test_ratioAndFiles(self) -> None:
        """
        C{--ratio} sets the mode and limit; C{--skip} and C{--get} the
        file lists.
        """
        await self.btorrent(
            "set", "1", "--ratio", "1.5", "--skip", "0,2-3", "--get", "1"
        )
        self.assertEqual(
            self.fake.calls[-1][1],
            {
                "ids": [1],
                "seedRatioMode": 1,
                "seedRatioLimit": 1.5,
                "files-unwanted": [0, 2, 3],
                "files-wanted": [1],
            },
        )
        await self.btorrent("set", "1", "--ratio", "unlimited")
        self.assertEqual(self.fake.calls[-1][1], {"ids": [1], "seedRatioMode": 2})

    async def test_prioritiesAndOrder(self) -> None:
        """
        C{--high}, C{--normal} and C{--low} set file priorities;
        C{--sequential} and C{--no-sequential} the piece order.
        """
        await self.btorrent(
            "set", "1", "--high", "0-1", "--low", "3", "--normal", "all", "--sequential"
        )
        self.assertEqual(
            self.fake.calls[-1][1],
            {
                "ids": [1],
                "priority-high": [0, 1],
                "priority-normal": [],
                "priority-low": [3],
                "sequential_download": True,
            },
        )
        await self.btorrent("set", "1", "--no-sequential")
        self.assertEqual(
            self.fake.calls[-1][1], {"ids": [1], "sequential_download": False}
        )
        with self.assertRaises(SystemExit) as exited:
            await self.btorrent("set", "1", "--high", "x")
        self.assertEqual(exited.exception.code, 2)

    async def test_nothing(self) -> None:
        """
        C{set} without a setting is one line, and nothing is sent.
        """
        code, out, err = await self.btorrent("set", "1")
        self.assertEqual(
            (code, err),
            (
                1,
                "btorrent set: error: nothing to set (--down, --up, --ratio, "
                "--skip, --get, --high, --normal, --low or --sequential)\n",
            ),
        )
        self.assertEqual(self.fake.calls, [])


class StatsTests(RemoteTestCase):
    """
    C{btorrent stats}.
    """

    async def test_stats(self) -> None:
        """
        Counts, rates, this session's and all-time figures.
        """
        self.addFake(1, "a" * 40, status=0)
        self.addFake(2, "b" * 40)
        code, out, err = await self.btorrent("stats")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(
            out,
            "torrents:      2 (1 active, 1 paused)\n"
            "rates:         1.5 kB/s down, 0 B/s up\n"
            "this session:  3.9 KiB down, 1000 B up, ratio 0.25, 2 files added, "
            "active 1h 2m\n"
            "total:         3.9 KiB down, 1000 B up, ratio 0.25, 2 files added, "
            "7 sessions, active 1h 2m\n",
        )
        code, out, err = await self.btorrent("stats", "--json")
        self.assertEqual(json.loads(out)["torrentCount"], 2)


class ConnectionTests(RemoteTestCase):
    """
    Where the commands connect, with what credentials, and their errors.
    """

    credentials = ("alice", "secret")

    async def test_auth(self) -> None:
        """
        C{--auth} (before or after the command) and C{BTORRENT_AUTH} give
        the credentials.
        """
        code, _, err = await self.btorrent("--auth", "alice:secret", "list")
        self.assertEqual((code, err), (0, ""))
        code, _, err = await self.btorrent("list", "--auth", "alice:secret")
        self.assertEqual((code, err), (0, ""))
        os.environ["BTORRENT_AUTH"] = "alice:secret"
        self.addCleanup(os.environ.pop, "BTORRENT_AUTH")
        code, _, err = await self.btorrent("list")
        self.assertEqual((code, err), (0, ""))

    async def test_wrongAuth(self) -> None:
        """
        Wrong or missing credentials: one line, exit 1.
        """
        code, out, err = await self.btorrent("list", "--auth", "alice:guess")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(
            err,
            f"btorrent list: error: authentication failed: the daemon at "
            f"{self.url} refused the user name or password\n",
        )
        code, out, err = await self.btorrent("list")
        self.assertEqual(code, 1)
        self.assertIn("requires a user name and password", err)

    async def test_environment(self) -> None:
        """
        C{BTORRENT_RPC} is the URL without C{--rpc}; C{--rpc} wins over it.
        """
        os.environ["BTORRENT_RPC"] = self.url
        self.addCleanup(os.environ.pop, "BTORRENT_RPC")
        code, _, err = await self.btorrent("list", "--auth", "alice:secret", rpc=False)
        self.assertEqual((code, err), (0, ""))
        nowhere = f"http://127.0.0.1:{freePort()}/transmission/rpc"
        code, _, err = await self.btorrent("--rpc", nowhere, "list", rpc=False)
        self.assertEqual(
            err,
            f"btorrent list: error: cannot reach the daemon at {nowhere}: "
            f"connection refused\n",
        )
        os.environ["BTORRENT_RPC"] = "ftp://x"
        code, _, err = await self.btorrent("list", rpc=False)
        self.assertEqual(
            (code, err),
            (2, "btorrent list: error: RPC URL 'ftp://x' is not http:// or https://\n"),
        )


class WatchTests(RemoteTestCase):
    """
    C{btorrent watch}.
    """

    async def test_redraws(self) -> None:
        """
        The table is drawn, then redrawn in place (the cursor moved back
        up) at each poll; stopping it (what ^C does) leaves exit code 0.
        """
        torrent = self.addFake(
            1,
            "a" * 40,
            name="movie",
            status=4,
            percentDone=0.5,
            eta=90,
            leftUntilDone=1024,
            peersConnected=7,
        )
        out = TTY()
        client = RPCClient(reactor, self.url)
        d = watch.watch(reactor, client, out, 0.05)
        while len([m for m, _ in self.fake.calls if m == "torrent-get"]) < 3:
            await task.deferLater(reactor, 0.02, lambda: None)
        torrent["percentDone"] = 0.75
        count = len(self.fake.calls)
        while len(self.fake.calls) < count + 2:
            await task.deferLater(reactor, 0.02, lambda: None)
        d.cancel()
        self.assertEqual(await d, 0)
        shown = out.getvalue()
        self.assertIn("movie", shown)
        self.assertIn("50.0%", shown)
        self.assertIn("75.0%", shown)
        self.assertIn("downloading", shown)
        self.assertIn("1m 30s", shown)
        self.assertIn("\x1b[1A", shown)  # the cursor goes back up: in place
        self.assertIn("^C leaves", shown)

    async def test_error(self) -> None:
        """
        A daemon that goes away ends the watch with its error.
        """
        out = TTY()
        client = RPCClient(reactor, self.url)
        d = watch.watch(reactor, client, out, 0.05)
        while not self.fake.calls:
            await task.deferLater(reactor, 0.02, lambda: None)
        self.fake.override = lambda request, _: b"garbage"
        with self.assertRaises(Exception) as caught:
            await d
        self.assertIn("is not JSON", str(caught.exception))

    async def test_command(self) -> None:
        """
        C{btorrent watch} run through L{remote.run} stops with exit code 0
        when the reactor shuts down; here the shutdown trigger is fired by
        hand, as C{task.react} does on ^C.
        """
        fired = []
        realAdd = reactor.addSystemEventTrigger

        def add(phase, event, f, *args, **kwargs):
            triggerId = realAdd(phase, event, f, *args, **kwargs)
            if (phase, event) == ("before", "shutdown"):
                fired.append(f)
                self.addCleanup(_removeTrigger, triggerId)
            return triggerId

        self.patch(reactor, "addSystemEventTrigger", add)
        self.addFake(1, "a" * 40, name="movie")
        d = defer.ensureDeferred(self.btorrent("watch", "--interval", "0.1", out=TTY()))
        while len(self.fake.calls) < 2:
            await task.deferLater(reactor, 0.02, lambda: None)
        for trigger in list(fired):
            trigger()
        code, out, err = await d
        self.assertEqual((code, err), (0, ""))
        self.assertIn("movie", out)

    def test_tableLimits(self) -> None:
        """
        At most L{watch.MAX_ROWS} rows; the caption says how many more.
        """
        from rich.console import Console

        torrents = [
            {"id": i, "name": f"n{i}", "percentDone": 0.5}
            for i in range(watch.MAX_ROWS + 5)
        ]
        out = io.StringIO()
        Console(file=out, width=150).print(watch.table(torrents))
        self.assertIn("(5 more not shown)", out.getvalue())
        self.assertNotIn(f"n{watch.MAX_ROWS}\n", out.getvalue())


def _removeTrigger(triggerId) -> None:
    """
    Remove a system event trigger, if it is still there.
    """
    try:
        reactor.removeSystemEventTrigger(triggerId)
    except (ValueError, KeyError):
        pass
