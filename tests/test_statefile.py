"""
Tests for L{btorrent.util.statefile}: versioned JSON written atomically,
with a backup, that a kill -9 at any moment leaves loadable.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from btorrent.util.statefile import (
    StateFileError,
    readState,
    removeTemporaries,
    writeState,
)
from tests.twistdproc import repositoryEnvironment

# A child that saves a growing document again and again, forever.
_WRITER = """
import sys
from btorrent.util.statefile import writeState
path = sys.argv[1]
n = 0
while True:
    n += 1
    writeState(path, {"n": n, "torrents": [{"i": i, "pad": "x" * 200} for i in range(n % 300)]}, 1)
"""


class StateFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "state.json")

    def test_roundTrip(self) -> None:
        """
        What is written is read back, with its version; the previous
        copy is the backup.
        """
        self.assertEqual(readState(self.path, 1), (None, None))
        writeState(self.path, {"a": 1}, 1)
        writeState(self.path, {"a": 2}, 1)
        document, problem = readState(self.path, 1)
        self.assertEqual(document, {"version": 1, "a": 2})
        self.assertIsNone(problem)
        with open(self.path + ".bak") as f:
            self.assertEqual(json.load(f), {"version": 1, "a": 1})
        self.assertEqual(
            sorted(os.listdir(self.directory)), ["state.json", "state.json.bak"]
        )

    def test_fallBackToBackup(self) -> None:
        """
        A main file that is garbage, of another version, or that the
        caller's check refuses gives way to the backup, with the reason.
        """
        writeState(self.path, {"a": 1}, 1)
        writeState(self.path, {"a": 2}, 1)
        for garbage in (b"{not json", b"[1, 2]", b'{"version": 7}', b"\xff\xfe"):
            with open(self.path, "wb") as f:
                f.write(garbage)
            document, problem = readState(self.path, 1)
            self.assertEqual(document["a"], 1)
            self.assertIn("state.json", problem)

        def check(document):
            if document["a"] == 1:
                raise ValueError("no")

        writeState(self.path, {"a": 3}, 1)
        document, problem = readState(self.path, 1, check)
        self.assertEqual(document["a"], 3)

    def test_neitherUsable(self) -> None:
        """
        Neither file usable: a clear error naming both problems.
        """
        for name in ("state.json", "state.json.bak"):
            with open(os.path.join(self.directory, name), "w") as f:
                f.write("garbage")
        with self.assertRaises(StateFileError) as e:
            readState(self.path, 1)
        self.assertIn("state.json:", str(e.exception))
        self.assertIn("state.json.bak:", str(e.exception))

    def test_killedWhileSaving(self) -> None:
        """
        A process killed with SIGKILL at random moments while it saves, 40
        times, always leaves a state that loads, and no more than its
        temporary files behind.
        """
        rng = random.Random(7)
        last = 0
        for _ in range(40):
            child = subprocess.Popen(
                [sys.executable, "-c", _WRITER, self.path],
                env=repositoryEnvironment(),
            )
            time.sleep(0.02 + rng.random() * 0.08)
            child.send_signal(signal.SIGKILL)
            child.wait()
            document, problem = readState(self.path, 1)
            if document is None:
                # Killed before its first save completed.
                continue
            self.assertEqual(document["version"], 1)
            self.assertEqual(len(document["torrents"]), document["n"] % 300)
            last = document["n"]
        self.assertGreater(last, 0)
        leftovers = [
            name
            for name in os.listdir(self.directory)
            if name not in ("state.json", "state.json.bak")
        ]
        self.assertTrue(all(name.endswith(".tmp") for name in leftovers), leftovers)
        removeTemporaries(self.path)
        self.assertEqual(
            sorted(os.listdir(self.directory)), ["state.json", "state.json.bak"]
        )
