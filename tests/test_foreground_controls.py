"""
Tests for the transfer-control options of C{btorrent download}
(L{btorrent.cli.foreground}): C{--down-limit}, C{--up-limit}, C{--skip},
C{--sequential}, C{--ratio} reach the torrent's controls; a bad value is
an error, exit code 1; with C{--ratio} the command seeds until the ratio
is reached.
"""

from __future__ import annotations

import io

from twisted.trial.unittest import SynchronousTestCase

from btorrent.cli import foreground
from btorrent.control.api import ControlError
from btorrent.daemon import session
from btorrent.util.events import EventSource
from tests.test_foreground import FakeSession, FakeTorrent, Info, Reactor, parse


class FakeControls:
    """
    Records what the command sets; refuses file 99 as the engine would.
    """

    def __init__(self):
        self.calls = []

    def setLimits(self, **limits):
        self.calls.append(("limits", limits))

    def setFileWanted(self, indexes, wanted):
        indexes = list(indexes)
        if any(i >= 3 for i in indexes):
            raise ControlError("file index out of range")
        self.calls.append(("wanted", indexes, wanted))

    def setSequential(self, sequential):
        self.calls.append(("sequential", sequential))

    def setSeedLimits(self, **limits):
        self.calls.append(("seed", limits))


class ControlledTorrent(FakeTorrent):
    def __init__(self, info, total):
        super().__init__(info, total)
        self.controls = FakeControls()
        self.events = EventSource()

        class Meta:
            name = info.name
            files = [object()] * 3

        self.metainfo = Meta()


class ControlledSession(FakeSession):
    def addTorrent(self, info, directory, **kwargs):
        self.added = (directory, kwargs)
        self.torrent = ControlledTorrent(info, info.totalLength)
        return self.torrent


class ControlOptionsTests(SynchronousTestCase):
    def setUp(self):
        FakeSession.made = []
        self.patch(session, "Session", ControlledSession)

    def download(self, *argv):
        err = io.StringIO()
        d = foreground.download(Reactor(), parse("--quiet", *argv), Info(), err)
        return d, FakeSession.made[0], err

    def test_options(self):
        d, made, err = self.download(
            "--down-limit",
            "2M",
            "--up-limit",
            "500k",
            "--skip",
            "0,2",
            "--sequential",
        )
        self.assertEqual(
            made.torrent.controls.calls,
            [
                (
                    "limits",
                    {
                        "downloadLimit": 2_000_000,
                        "downloadLimited": True,
                        "uploadLimit": 500_000,
                        "uploadLimited": True,
                    },
                ),
                ("wanted", [0, 2], False),
                ("sequential", True),
            ],
        )
        made.torrent.completed.callback(None)
        self.assertEqual(self.successResultOf(d), 0)

    def test_nothingAsked(self):
        d, made, err = self.download()
        self.assertEqual(made.torrent.controls.calls, [])

    def test_badFileIndex(self):
        d, made, err = self.download("--skip", "99")
        self.assertEqual(self.successResultOf(d), 1)
        self.assertIn("file index out of range", err.getvalue())
        self.assertFalse(made.started)

    def test_badArguments(self):
        for argv in (
            ["--down-limit", "-5"],
            ["--up-limit", "fast"],
            ["--skip", "a-b"],
            ["--ratio", "-1"],
        ):
            self.assertRaises(SystemExit, parse, *argv)

    def test_ratioSeedsUntilReached(self):
        """
        With C{--ratio}, completing keeps the command seeding; the seed
        limit being reached ends it, exit code 0.
        """
        d, made, err = self.download("--ratio", "0.5")
        self.assertIn(
            ("seed", {"seedRatioMode": 1, "seedRatioLimit": 0.5}),
            made.torrent.controls.calls,
        )
        made.torrent.completed.callback(None)
        self.assertNoResult(d)
        made.torrent.events.emit("seedLimitReached")
        self.assertEqual(self.successResultOf(d), 0)
        self.assertIn("ratio 0.5 reached", err.getvalue())
