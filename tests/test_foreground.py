"""
Tests for L{btorrent.cli.foreground}: C{btorrent download}'s options reach the
session and torrent, and the progress bar shows what the torrent reports.
"""

from __future__ import annotations

import argparse
import io
import sys

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from btorrent.cli import foreground
from btorrent.daemon import session
from btorrent.engine.downloader import Progress


class FakeTorrent:
    """
    What C{download} uses of a torrent: two Deferreds and progress.
    """

    def __init__(self, info, total: int) -> None:
        self.metainfo = info
        self.ready = defer.Deferred()
        self.completed = defer.Deferred()
        self.checking = None
        self.snapshot = Progress(
            verifiedBytes=0,
            totalBytes=total,
            downloadRate=0.0,
            uploadRate=0.0,
            peers=0,
            eta=None,
        )

    def progress(self) -> Progress:
        return self.snapshot


class FakeSession:
    """
    Records how C{download} builds the session and adds the torrent.
    """

    made: list = []

    def __init__(self, reactor, **kwargs) -> None:
        self.kwargs = kwargs
        self.added = None
        self.started = self.stopped = False
        FakeSession.made.append(self)

    def addTorrent(self, info, directory, **kwargs):
        self.added = (directory, kwargs)
        self.torrent = FakeTorrent(info, info.totalLength)
        return self.torrent

    def startService(self) -> None:
        self.started = True

    def stopService(self):
        self.stopped = True
        return defer.succeed(None)


class Reactor(MemoryReactorClock):
    """
    A memory reactor that runs its "before shutdown" triggers on demand.
    """

    def shutdown(self):
        for f, args, kwargs in self.triggers.get("before", {}).get("shutdown", []):
            f(*args, **kwargs)

    def removeSystemEventTrigger(self, triggerID):
        pass


class Info:
    name = "data"
    totalLength = 1 << 20


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    foreground.addDownloadParser(parser.add_subparsers())
    return parser.parse_args(["download", "x.torrent", *argv])


class DownloadOptionsTests(SynchronousTestCase):
    def setUp(self) -> None:
        FakeSession.made = []
        self.patch(session, "Session", FakeSession)

    def test_optionsReachTheSession(self) -> None:
        """
        C{--port}, C{--interface}, C{--state-dir}, C{--debug},
        C{--max-peers}, C{--piece-order}, C{--peer}, C{--encryption} and
        C{-o} each reach the session or the torrent.
        """
        args = parse(
            "-o",
            "/tmp/out",
            "--port",
            "7001",
            "--interface",
            "127.0.0.1",
            "--state-dir",
            "/tmp/state",
            "--debug",
            "--max-peers",
            "7",
            "--piece-order",
            "rarest",
            "--peer",
            "127.0.0.1:6000",
            "--peer",
            "[::1]:6001",
            "--upload-slots",
            "9",
            "--dht-bootstrap",
            "127.0.0.1:7100",
            "--encryption",
            "required",
            "--quiet",
        )
        reactor = Reactor()
        d = foreground.download(reactor, args, Info(), io.StringIO())
        [made] = FakeSession.made
        self.assertEqual(
            made.kwargs,
            {
                "port": 7001,
                "interface": "127.0.0.1",
                "stateDir": "/tmp/state",
                "debug": True,
                "dhtBootstrap": [("127.0.0.1", 7100)],
                "encryption": "required",
            },
        )
        self.assertEqual(
            made.added,
            (
                "/tmp/out",
                {
                    "maxPeers": 7,
                    "pieceOrder": "rarest",
                    "peers": [("127.0.0.1", 6000), ("::1", 6001)],
                    "uploadSlots": 9,
                },
            ),
        )
        self.assertTrue(made.started)
        made.torrent.completed.callback(None)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertTrue(made.stopped)

    def test_defaults(self) -> None:
        args = parse()
        self.assertEqual(
            (args.port, args.max_peers, args.piece_order, args.output, args.seed),
            (6881, 50, "random", ".", False),
        )
        self.assertEqual(args.encryption, "preferred")

    def test_encryptionChoices(self) -> None:
        """
        C{--encryption} takes Transmission's three settings, nothing else.
        """
        for mode in ("tolerated", "preferred", "required"):
            self.assertEqual(parse("--encryption", mode).encryption, mode)
        self.patch(sys, "stderr", io.StringIO())
        with self.assertRaises(SystemExit):
            parse("--encryption", "always")

    def test_progressBar(self) -> None:
        """
        The bar shows the torrent's name, percent and peers (rich draws
        only the last state to a file that is not a terminal).
        """
        err = io.StringIO()
        reactor = Reactor()
        d = foreground.download(reactor, parse(), Info(), err)
        torrent = FakeSession.made[0].torrent
        torrent.checking = (3, 16)
        reactor.advance(foreground.REFRESH)
        torrent.checking = None
        torrent.snapshot = Progress(
            verifiedBytes=1 << 19,
            totalBytes=1 << 20,
            downloadRate=2e6,
            uploadRate=0.0,
            peers=3,
            eta=0.25,
        )
        reactor.advance(foreground.REFRESH)
        torrent.completed.callback(None)
        self.assertEqual(self.successResultOf(d), 0)
        text = err.getvalue()
        self.assertIn("50%", text)
        self.assertIn("3 peers", text)
        self.assertIn("data: download complete", text)

    def test_seedKeepsRunning(self) -> None:
        """
        With C{--seed}, completing does not stop the session; shutting
        down does, with exit code 0.
        """
        reactor = Reactor()
        d = foreground.download(
            reactor, parse("--seed", "--quiet"), Info(), io.StringIO()
        )
        made = FakeSession.made[0]
        made.torrent.completed.callback(None)
        self.assertNoResult(d)
        self.assertFalse(made.stopped)
        reactor.shutdown()
        self.assertEqual(self.successResultOf(d), 0)
        self.assertTrue(made.stopped)

    def test_interruptedBeforeComplete(self) -> None:
        reactor = Reactor()
        d = foreground.download(reactor, parse("--quiet"), Info(), io.StringIO())
        reactor.shutdown()
        self.assertEqual(self.successResultOf(d), foreground.INTERRUPTED)

    def test_checkingShown(self) -> None:
        """
        While the data on disk is checked, the bar says how far.
        """
        bar = foreground._ProgressBar(io.StringIO(), "data", 1 << 20)
        self.addCleanup(bar.stop)
        torrent = FakeTorrent(Info(), 1 << 20)
        torrent.checking = (3, 16)
        bar.update(torrent)
        self.assertEqual(bar.progress.tasks[0].description, "checking 3/16")
        torrent.checking = None
        bar.update(torrent)
        self.assertEqual(bar.progress.tasks[0].description, "data")
