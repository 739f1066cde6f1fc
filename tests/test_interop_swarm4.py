"""
A swarm of btorrent processes through a real opentracker on 127.0.0.1:
one seeder and four leechers, each a separate C{twistd -n} process running
the service of C{twistd btorrent} (L{btorrent.tap.makeService}).

Every process also runs a small reporter service that writes its
torrent's byte counters to a JSON file: nothing in C{twistd btorrent}
exposes a process's uploaded total to the outside (the progress line
gives rates only), and the leechers must be seen uploading to each other.

The leechers start first, one after the other, so that each finds the
earlier ones through the tracker; the seeder starts last, finds all four
and connects to them.  It splits its upload four ways, so the leechers
trade the pieces they got.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from btorrent import metainfo
from tests.realpeers import Opentracker, freePort
from tests.realseeders import makeTorrent, writeLargeFile
from tests.test_interop_seed import Twistd, _twistd

#: The torrent: one file of 96 MiB in 256 KiB pieces.
SIZE = 96 << 20
PIECE = 256 << 10

#: The .tac every process runs: C{twistd btorrent}'s own service built by
#: L{btorrent.tap.makeService} from the options in C{$BTORRENT_ARGS} (bound
#: to 127.0.0.1), and a timer writing every torrent's counters to
#: C{$BTORRENT_STATS} (also once more when stopping).
TAC = """
import json, os

from twisted.application import service
from twisted.application.internet import TimerService

from btorrent import tap

options = tap.Options()
options.parseOptions(json.loads(os.environ["BTORRENT_ARGS"]))
options["interface"] = "127.0.0.1"
application = service.Application("btorrent")
session = tap.makeService(options)
session.setServiceParent(application)
statsPath = os.environ["BTORRENT_STATS"]


def report():
    stats = {
        infoHash.hex(): {
            "uploaded": torrent.uploaded,
            "downloaded": torrent.downloaded,
            "left": torrent.left,
            "complete": torrent.completed.called,
        }
        for infoHash, torrent in session.torrents.items()
    }
    with open(statsPath + ".new", "w") as f:
        json.dump(stats, f)
    os.replace(statsPath + ".new", statsPath)


class Reporter(TimerService):
    def stopService(self):
        report()
        return TimerService.stopService(self)


# A child of the session: it stops before the torrents do, while their
# counters are still there.
Reporter(0.1, report).setServiceParent(session)
"""


class Member(Twistd):
    """
    One process of the swarm: C{twistd -n --pidfile= -y swarm.tac}.

    @ivar statsPath: the JSON file of its counters.
    """

    def __init__(self, base: str, name: str, torrentPath: str, downloadDir: str):
        self.port = freePort()
        self.logPath = os.path.join(base, name + ".log")
        self.statsPath = os.path.join(base, name + ".json")
        tac = os.path.join(base, "swarm.tac")
        if not os.path.exists(tac):
            with open(tac, "w") as f:
                f.write(TAC)
        env = dict(os.environ)
        env["BTORRENT_ARGS"] = json.dumps(
            [
                f"--torrent={torrentPath}",
                f"--download-dir={downloadDir}",
                f"--state-dir={os.path.join(base, name + '-state')}",
                f"--port={self.port}",
            ]
        )
        env["BTORRENT_STATS"] = self.statsPath
        self.args = [
            _twistd(),
            "-n",
            "--pidfile=",
            f"--logfile={self.logPath}",
            "-y",
            tac,
        ]
        with open(self.logPath + ".stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=subprocess.STDOUT,
                cwd=base,
                env=env,
            )

    def stats(self) -> dict:
        """
        Its counters for the torrent (zeros before the first report).
        """
        try:
            with open(self.statsPath) as f:
                stats = json.load(f)
        except (OSError, ValueError):
            return {"uploaded": 0, "downloaded": 0, "left": None, "complete": False}
        [only] = stats.values()
        return only


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
                stats = [member.stats() for member in members]
                self.fail(f"timed out waiting for {what}: counters {stats}\n{logs}")
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
            lambda: all(leecher.stats()["complete"] for leecher in leechers),
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
        stats = [leecher.stats() for leecher in leechers]
        seederStats = seeder.stats()
        for each in stats:
            self.assertEqual(each["downloaded"], SIZE, stats)
            self.assertEqual(each["left"], 0, stats)
        self.assertEqual(seederStats["downloaded"], 0)
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
