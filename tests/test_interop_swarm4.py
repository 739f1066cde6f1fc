"""
A swarm of btorrent processes through a real opentracker on 127.0.0.1:
one seeder and four leechers, each a plain C{twistd -n btorrent} process.

Each process's totals are read from its log: the progress line carries the
session's downloaded and uploaded bytes, and the torrent logs it once more
when it stops, so the last such line of a stopped process holds its final
totals.  The leechers must be seen uploading to each other.

The leechers start first, one after the other, so that each finds the
earlier ones through the tracker; the seeder starts last, finds all four
and connects to them.  It splits its upload four ways, so the leechers
trade the pieces they got.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time

from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import metainfo
from tests.realpeers import Opentracker
from tests.realseeders import makeTorrent, writeLargeFile
from tests.test_interop_seed import Twistd

#: The torrent: one file of 96 MiB in 256 KiB pieces.
SIZE = 96 << 20
PIECE = 256 << 10

#: The totals at the end of a progress line (see L{Torrent.logProgress}).
TOTALS = re.compile(
    r" (\d+\.\d)% down .*; totals down .* \((\d+) B\) up .* \((\d+) B\)$",
    re.MULTILINE,
)


class Member(Twistd):
    """
    One process of the swarm: C{twistd -n --pidfile= btorrent ...}.
    """

    def __init__(self, base: str, name: str, torrentPath: str, downloadDir: str):
        super().__init__(
            [torrentPath],
            downloadDir,
            os.path.join(base, name + "-state"),
            os.path.join(base, name + ".log"),
        )

    def totals(self, final: bool = False) -> dict:
        """
        Its last logged totals: C{percent}, C{downloaded}, C{uploaded}
        (C{None} before the first progress line).

        @param final: only the line logged after the SIGTERM (the torrent's
            line at its stop); there must be exactly one.
        """
        text = self.log()
        if final:
            stopped = text.index("Received SIGTERM")
            found = TOTALS.findall(text, stopped)
            if len(found) != 1:
                raise AssertionError(f"no final totals line:\n{text[stopped:]}")
        else:
            found = TOTALS.findall(text)
        if not found:
            return {"percent": None, "downloaded": None, "uploaded": None}
        percent, downloaded, uploaded = found[-1]
        return {
            "percent": float(percent),
            "downloaded": int(downloaded),
            "uploaded": int(uploaded),
        }


def sha1File(path: str) -> bytes:
    """
    The SHA-1 of a file's contents.
    """
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


class FourLeechersTests(SynchronousTestCase):
    """
    One btorrent seeder, four btorrent leechers, one opentracker.
    """

    def waitFor(self, predicate, seconds: float, what: str, members) -> None:
        """
        Poll C{predicate()} (every 20 ms) while every member runs.
        """
        deadline = time.monotonic() + seconds
        while not predicate():
            for member in members:
                if member.process.poll() is not None:
                    self.fail(f"{member.logPath} exited:\n{member.log()}")
            if time.monotonic() > deadline:
                logs = "\n".join(member.log()[-3000:] for member in members)
                totals = [member.totals() for member in members]
                self.fail(f"timed out waiting for {what}: totals {totals}\n{logs}")
            time.sleep(0.02)

    def test_leechersTrade(self):
        """
        All four leechers finish byte-identical; together they uploaded
        much of what they downloaded to each other, so the seeder sent far
        less than four copies; nothing was logged with a traceback.
        """
        base = os.path.abspath(self.mktemp())
        seedDir = os.path.join(base, "seed")
        os.makedirs(seedDir)
        source = os.path.join(seedDir, "swarm.bin")
        writeLargeFile(source, SIZE)
        tracker = Opentracker().start()
        self.addCleanup(tracker.stop)
        torrentBytes = makeTorrent(
            seedDir, [("swarm.bin", SIZE)], PIECE, [tracker.announceURL]
        )
        info = metainfo.load(torrentBytes)
        tracker.whitelist([info.infoHash])
        torrentPath = os.path.join(base, "swarm.torrent")
        with open(torrentPath, "wb") as f:
            f.write(torrentBytes)

        leechers = []
        for number in range(4):
            outDir = os.path.join(base, f"leecher{number}")
            os.makedirs(outDir)
            leecher = Member(base, f"leecher{number}", torrentPath, outDir)
            self.addCleanup(leecher.kill)
            leechers.append(leecher)
            # Announced (so the next one finds it) and connected to the
            # earlier ones.
            self.waitFor(
                lambda leecher=leecher: "answered the started announce"
                in leecher.log(),
                15,
                f"leecher {number} to announce",
                leechers,
            )
        self.waitFor(
            lambda: all("peer 127.0.0.1" in leecher.log() for leecher in leechers),
            10,
            "the leechers to connect to each other",
            leechers,
        )
        seeder = Member(base, "seeder", torrentPath, seedDir)
        self.addCleanup(seeder.kill)
        members = leechers + [seeder]
        self.waitFor(
            lambda: all("download complete" in leecher.log() for leecher in leechers),
            30,
            "every leecher to complete",
            members,
        )
        for member in members:
            self.assertEqual(member.stop(), -signal.SIGTERM, member.log()[-3000:])
            self.assertIn("Server Shut Down.", member.log())
            member.assertCleanLog(self)
        expected = sha1File(source)
        for number in range(4):
            self.assertEqual(
                sha1File(os.path.join(base, f"leecher{number}", "swarm.bin")),
                expected,
                f"leecher {number}",
            )
        # The final totals, logged by each torrent as it stopped.
        stats = [leecher.totals(final=True) for leecher in leechers]
        seederStats = seeder.totals(final=True)
        for each in stats:
            self.assertEqual(each["downloaded"], SIZE, stats)
            self.assertEqual(each["percent"], 100.0, stats)
        self.assertEqual(seederStats["downloaded"], 0)
        self.assertEqual(seederStats["percent"], 100.0)
        fromLeechers = sum(each["uploaded"] for each in stats)
        figures = f"seeder {seederStats}, leechers {stats}"
        # Every leecher uploaded to the others...
        for each in stats:
            self.assertGreaterEqual(each["uploaded"], PIECE, figures)
        # ... together at least a whole copy, and the seeder sent well
        # under four copies.
        self.assertGreaterEqual(fromLeechers, SIZE, figures)
        self.assertLess(seederStats["uploaded"], 3 * SIZE, figures)
        # What was uploaded is what was downloaded, give or take blocks
        # sent but not needed (endgame, cancels) or lost at the stop.
        self.assertGreaterEqual(
            fromLeechers + seederStats["uploaded"], 4 * SIZE, figures
        )
