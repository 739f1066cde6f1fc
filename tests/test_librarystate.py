"""
Tests for L{btorrent.daemon.librarystate}: the state file's saves.
"""

from __future__ import annotations

import json
import os

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from btorrent.daemon.librarystate import (
    MAX_SAVE_DELAY,
    SAVE_DELAY,
    STATE_VERSION,
    LibraryState,
)


class LibraryStateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.path = os.path.join(os.path.abspath(self.mktemp()), "state.json")
        os.makedirs(os.path.dirname(self.path))
        self.documents = 0
        self.cost = None

    def document(self) -> dict:
        self.documents += 1
        return {"torrents": [], "n": self.documents}

    def runInThread(self, f, *args):
        result = f(*args)
        if self.cost is not None:
            # What the write took, as the thread measured it.
            result = self.cost
        return defer.succeed(result)

    def state(self) -> LibraryState:
        return LibraryState(
            self.path, self.document, self.runInThread, self.clock, Logger()
        )

    def test_changesShareASave(self) -> None:
        """
        Changes within L{SAVE_DELAY} make one save, with the latest state.
        """
        state = self.state()
        for _ in range(100):
            state.saveSoon()
        self.assertEqual(self.documents, 0)
        self.clock.advance(SAVE_DELAY)
        self.assertEqual(self.documents, 1)
        with open(self.path) as f:
            saved = json.load(f)
        self.assertEqual((saved["version"], saved["n"]), (STATE_VERSION, 1))

    def test_costlySavesWaitLonger(self) -> None:
        """
        A save that took 0.2 s makes the next changes wait 4 s (saving
        takes at most 5 % of the time), and never more than
        L{MAX_SAVE_DELAY}.
        """
        state = self.state()
        self.cost = 0.2
        self.successResultOf(state.save())
        self.assertGreaterEqual(state.delay, 4.0)
        self.assertLess(state.delay, 4.5)
        state.saveSoon()
        self.clock.advance(3.9)
        self.assertEqual(self.documents, 1)
        self.clock.advance(0.6)
        self.assertEqual(self.documents, 2)
        self.cost = 60.0
        self.successResultOf(state.save())
        self.assertEqual(state.delay, MAX_SAVE_DELAY)
        self.cost = 0.0
        self.successResultOf(state.save())
        self.assertEqual(state.delay, SAVE_DELAY)
