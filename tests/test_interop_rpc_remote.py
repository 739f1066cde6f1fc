"""
The stock C{transmission-remote} 3.00 (Debian's C{transmission-cli})
against btorrent's RPC on a loopback port, with the fake session behind
it: listing, details, session info and stats, stop and start, speed
limits, unwanted files, removal, adding a .torrent file, and Basic
authentication (which transmission-remote sends only after a 401).
"""

from __future__ import annotations

import os
import re
import shutil

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from btorrent.codec import metainfo
from btorrent.control.access import hashPassword
from btorrent.control.api import SEEDING, STOPPED
from tests.fakesession import exampleSession
from tests.rpcserver import RPCServer
from tests.test_rpc_methods import makeTorrentFile


def remoteBinary() -> str:
    binary = shutil.which("transmission-remote")
    if binary is None:
        raise RuntimeError(
            "transmission-remote is not installed (apt-get install -y transmission-cli)"
        )
    return binary


class RemoteTests(TestCase):
    """
    transmission-remote drives the RPC.
    """

    timeout = 120

    def setUp(self) -> None:
        self.binary = remoteBinary()
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.session = exampleSession(reactor.seconds, self.directory)
        self.server = RPCServer(self, self.session, reactor)

    async def remote(self, *args: str, server=None, auth=None, ok=True) -> str:
        """
        Run transmission-remote; with C{ok}, it must exit 0 and write
        nothing to stderr.

        @return: its standard output (and error, when not C{ok}).
        """
        server = server or self.server
        command = [server.address] + (["-n", auth] if auth else []) + list(args)
        out, err, code = await getProcessOutputAndValue(
            self.binary, command, env=dict(os.environ), reactor=reactor
        )
        text = out.decode("utf-8", "replace")
        if ok:
            self.assertEqual((code, err), (0, b""), f"{command}: {text}")
            return text
        return text + err.decode("utf-8", "replace")

    def rows(self, listing: str) -> dict:
        """
        The rows of C{-l}, by id.
        """
        rows = {}
        for line in listing.splitlines():
            fields = line.split()
            if fields and fields[0].isdigit():
                rows[int(fields[0])] = line
        return rows

    async def test_list(self) -> None:
        """
        C{-l}: a row for the complete torrent and one for the downloading
        one (a row is dropped silently if an integer field is a float).
        """
        listing = await self.remote("-l")
        rows = self.rows(listing)
        self.assertEqual(sorted(rows), [1, 2], listing)
        self.assertRegex(
            rows[1],
            r"^\s+1\s+100%\s+500\.0 kB\s+Done\s+12\.3\s+0\.0\s+1\.5\s+Seeding\s+Complete Album$",
        )
        self.assertRegex(
            rows[2],
            r"^\s+2\s+40%\s+400\.0 kB\s+12 sec\s+0\.0\s+48\.0\s+0\.0\s+Downloading\s+Big Download\.iso$",
        )
        self.assertRegex(listing, r"Sum:\s+900\.0 kB\s+12\.3\s+48\.0")

    async def test_info(self) -> None:
        """
        C{-t 1 -i}: the details.
        """
        text = await self.remote("-t", "1", "-i")
        infoHash = self.session.torrent(1).infoHash.hex()
        for expected in [
            "Id: 1",
            "Name: Complete Album",
            f"Hash: {infoHash}",
            f"Magnet: magnet:?xt=urn:btih:{infoHash}",
            "State: Seeding",
            f"Location: {self.directory}",
            "Percent Done: 100%",
            "Total size: 500.0 kB (500.0 kB wanted)",
            "Uploaded: 750.0 kB",
            "Ratio: 1.5",
            "Peers: connected to 1, uploading to 1, downloading from 0",
            "Comment: a comment",
            "Creator: mktorrent 1.1",
            "Piece Count: 31",
            "Piece Size: 16.00 KiB",
            "Download Limit: Unlimited",
            "Peer limit: 50",
        ]:
            self.assertIn(expected, text)
        peers = await self.remote("-t", "1", "-pi")
        self.assertIn("127.0.0.1", peers)
        self.assertIn("Transmission 3.00", peers)
        trackers = await self.remote("-t", "1", "-it")
        self.assertIn("Tracker 0: 127.0.0.1:6969", trackers)

    async def test_sessionInfoAndStats(self) -> None:
        """
        C{-si} and C{-st}.
        """
        text = await self.remote("-si")
        for expected in [
            "Daemon version: 3.00 (btorrent 0.1.0)",
            "RPC version: 16",
            "RPC minimum version: 1",
            f"Download directory: {self.directory}",
            "Listenport: 51413",
            "Encryption: preferred",
            "Peer limit: 200",
        ]:
            self.assertIn(expected, text)
        text = await self.remote("-st")
        for expected in [
            "Started 3 times",
            "Uploaded:   1.00 MB",
            "Downloaded: 3.00 MB",
        ]:
            self.assertIn(expected, text)

    async def test_stopStart(self) -> None:
        """
        C{-t 1 -S}, then C{-s}.
        """
        self.assertIn('responded: "success"', await self.remote("-t", "1", "-S"))
        self.assertEqual(self.session.torrent(1).state, STOPPED)
        self.assertIn("Stopped", self.rows(await self.remote("-l"))[1])
        await self.remote("-t", "1", "-s")
        self.assertEqual(self.session.torrent(1).state, SEEDING)
        self.assertIn("Seeding", self.rows(await self.remote("-l"))[1])

    async def test_speedLimits(self) -> None:
        """
        C{-d}/C{-u} on the session and on a torrent: kB/s on the command
        line, bytes/s in the session.
        """
        await self.remote("-d", "300")
        await self.remote("-u", "200")
        s = self.session.settings
        self.assertEqual(
            (
                s.speedLimitDown,
                s.speedLimitDownEnabled,
                s.speedLimitUp,
                s.speedLimitUpEnabled,
            ),
            (300_000, True, 200_000, True),
        )
        text = await self.remote("-si")
        self.assertIn("Download speed limit: 300 kB/s", text)
        self.assertIn("Upload speed limit: 200 kB/s", text)
        await self.remote("-t", "1", "-d", "50", "-u", "60")
        o = self.session.torrent(1).options
        self.assertEqual(
            (o.downloadLimit, o.downloadLimited, o.uploadLimit, o.uploadLimited),
            (50_000, True, 60_000, True),
        )
        text = await self.remote("-t", "1", "-i")
        self.assertIn("Download Limit: 50 kB/s", text)
        self.assertIn("Upload Limit: 60 kB/s", text)

    async def test_unwanted(self) -> None:
        """
        C{-t 1 -G 0}: the first file is no longer wanted.
        """
        await self.remote("-t", "1", "-G", "0")
        files = self.session.torrent(1).files
        self.assertEqual([f.wanted for f in files], [False, True])
        text = await self.remote("-t", "1", "-f")
        self.assertRegex(
            text, r"0: 100% Normal\s+No\s+300\.0 kB\s+Complete Album/a\.flac"
        )

    async def test_remove(self) -> None:
        """
        C{-t 1 -r} keeps the data; C{--remove-and-delete} deletes it.
        """
        await self.remote("-t", "1", "-r")
        await self.remote("-t", "2", "--remove-and-delete")
        self.assertEqual(
            [c for c in self.session.calls if c[0] == "removeTorrent"],
            [("removeTorrent", 1, False), ("removeTorrent", 2, True)],
        )
        self.assertEqual(self.rows(await self.remote("-l")), {})

    async def test_add(self) -> None:
        """
        C{-a FILE}: the session receives the file's bytes; a file that is
        not a torrent gets Transmission's error line.
        """
        path, data = makeTorrentFile(self, "Added.bin")
        text = await self.remote("-a", path)
        self.assertIn('responded: "success"', text)
        self.assertEqual(self.session.added[0][0], data)
        self.assertEqual(self.session.torrent(3).name, "Added.bin")
        self.assertEqual(self.session.torrent(3).infoHash, metainfo.load(data).infoHash)
        rows = self.rows(await self.remote("-l"))
        self.assertIn("Added.bin", rows[3])
        notTorrent = os.path.join(self.directory, "notes.txt")
        with open(notTorrent, "w") as f:
            f.write("not a torrent\n")
        text = await self.remote("-a", notTorrent, ok=False)
        self.assertIn("Error: invalid or corrupt torrent file", text)
        self.assertEqual(len(self.session.torrents()), 3)

    async def test_auth(self) -> None:
        """
        With a password: refused without credentials or with wrong ones;
        C{-n user:pass} works (transmission-remote answers the 401
        challenge, then the 409).
        """
        server = RPCServer(
            self,
            self.session,
            reactor,
            username="user",
            passwordHash=hashPassword("pass", iterations=10_000),
        )
        text = await self.remote("-l", server=server, ok=False)
        self.assertIn("unauthorized user", text)
        text = await self.remote("-l", server=server, auth="user:wrong", ok=False)
        self.assertIn("unauthorized user", text)
        listing = await self.remote("-l", server=server, auth="user:pass")
        self.assertEqual(sorted(self.rows(listing)), [1, 2])
        await self.remote("-t", "1", "-S", server=server, auth="user:pass")
        self.assertEqual(self.session.torrent(1).state, STOPPED)
        self.assertTrue(
            re.search(
                r"Started 3 times",
                await self.remote("-st", server=server, auth="user:pass"),
            )
        )
