"""
Tests for the pure parts of the transfer controls:
L{btorrent.engine.fileselect} (files to pieces, priorities, progress) and
L{btorrent.engine.seedlimits} (Transmission's ratio and idle rules).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.control.api import ControlError
from btorrent.engine import seedlimits
from btorrent.engine.fileselect import FileSelection, checkFileIndexes
from btorrent.engine.seedlimits import SeedLimits, SessionSeedLimits
from tests.builders import fakeEntries


def selection(lengths, pieceLength, padding=()):
    files = fakeEntries(lengths, padding)
    return FileSelection(files, pieceLength, sum(lengths))


class FileSelectionTests(SynchronousTestCase):
    def test_wantedPieces(self):
        # Files: [0,10) [10,10) [10,25) [25,40); pieces of 8.
        s = selection([10, 0, 15, 15], 8)
        self.assertEqual(s.wantedPieces(), [0, 1, 2, 3, 4])
        s.setWanted([2], False)
        # Pieces 1 (bytes 8-15) and 3 (24-31) straddle into wanted files.
        self.assertEqual(s.wantedPieces(), [0, 1, 3, 4])
        s.setWanted([0, 3], False)
        self.assertEqual(s.wantedPieces(), [])
        self.assertEqual(s.unwantedFiles(), [0, 2, 3])

    def test_paddingHoldsNothing(self):
        s = selection([8, 8, 8], 8, padding=[1])
        s.setWanted([0, 2], False)
        self.assertEqual(s.wantedPieces(), [])

    def test_priorities(self):
        s = selection([10, 15, 15], 8)
        s.setPriority([1], 1)
        s.setPriority([2], -1)
        self.assertFalse(s.allNormal)
        # Piece 1 holds bytes of files 0 (normal) and 1 (high): high.
        self.assertEqual(s.piecePriorities(), [0, 1, 1, 1, -1])
        s.setWanted([1], False)
        self.assertEqual(s.piecePriorities(), [0, 0, 0, -1, -1])

    def test_checks(self):
        s = selection([10, 15], 8)
        for bad in ([2], [-1], [10**9], [True], ["0"], [1.0]):
            self.assertRaises(ControlError, s.setWanted, bad, False)
            self.assertRaises(ControlError, s.setPriority, bad, 1)
        for bad in (2, -2, "high", None, 1.0, True):
            self.assertRaises(ControlError, s.setPriority, [0], bad)
        self.assertEqual(s.wanted, [True, True])
        self.assertEqual(s.priorities, [0, 0])
        self.assertRaises(ControlError, checkFileIndexes, 5, 3)

    def test_json(self):
        s = selection([10, 15, 3], 8)
        s.setWanted([1], False)
        s.setPriority([0], 1)
        s.setPriority([2], -1)
        t = selection([10, 15, 3], 8)
        t.load(s.toJSON())
        self.assertEqual((t.wanted, t.priorities), (s.wanted, s.priorities))
        for bad in ([], {"unwanted": [3]}, {"high": {}}, {"low": [None]}):
            self.assertRaises(ControlError, t.load, bad)
        self.assertEqual((t.wanted, t.priorities), (s.wanted, s.priorities))

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(st.integers(0, 50), min_size=1, max_size=8),
        st.integers(1, 20),
        st.data(),
    )
    def test_progressProperty(self, lengths, pieceLength, data):
        """
        Per-file progress is the count of the file's bytes in had pieces.
        """
        total = sum(lengths)
        s = selection(lengths, pieceLength)
        pieceCount = -(-total // pieceLength)
        have = set(
            data.draw(st.lists(st.integers(0, max(0, pieceCount - 1)), max_size=10))
            if pieceCount
            else []
        )
        got = s.fileProgress(have)
        offset = 0
        for index, length in enumerate(lengths):
            expected = sum(
                1 for b in range(offset, offset + length) if b // pieceLength in have
            )
            self.assertEqual(got[index], expected)
            offset += length
        wanted = data.draw(
            st.lists(st.booleans(), min_size=len(lengths), max_size=len(lengths))
        )
        s.setWanted([i for i, w in enumerate(wanted) if not w], False)
        offset = 0
        expectedPieces = set()
        for index, length in enumerate(lengths):
            if wanted[index]:
                expectedPieces.update(
                    b // pieceLength for b in range(offset, offset + length)
                )
            offset += length
        self.assertEqual(s.wantedPieces(), sorted(expectedPieces))


class SeedLimitTests(SynchronousTestCase):
    def test_effective(self):
        session = SessionSeedLimits()
        torrent = SeedLimits()
        self.assertIsNone(seedlimits.effectiveRatio(torrent, session))
        session = session.changed({"seedRatioLimited": True, "seedRatioLimit": 1.5})
        self.assertEqual(seedlimits.effectiveRatio(torrent, session), 1.5)
        own = torrent.changed({"seedRatioMode": 1, "seedRatioLimit": 0.5})
        self.assertEqual(seedlimits.effectiveRatio(own, session), 0.5)
        off = torrent.changed({"seedRatioMode": 2})
        self.assertIsNone(seedlimits.effectiveRatio(off, session))
        self.assertIsNone(seedlimits.effectiveIdleMinutes(torrent, session))
        session = session.changed({"idleSeedingLimitEnabled": True})
        self.assertEqual(seedlimits.effectiveIdleMinutes(torrent, session), 30)
        own = torrent.changed({"seedIdleMode": 1, "seedIdleLimit": 5})
        self.assertEqual(seedlimits.effectiveIdleMinutes(own, session), 5)

    def test_goalAndRatio(self):
        # Added complete: the size when done is the baseline.
        self.assertEqual(seedlimits.ratioGoal(0.5, 0, 1000), 500)
        self.assertEqual(seedlimits.ratioGoal(2.0, 300, 1000), 600)
        self.assertEqual(seedlimits.uploadRatio(50, 100, 999), 0.5)
        self.assertEqual(seedlimits.uploadRatio(50, 0, 200), 0.25)
        self.assertEqual(seedlimits.uploadRatio(0, 0, 0), seedlimits.RATIO_NONE)
        self.assertEqual(seedlimits.uploadRatio(5, 0, 0), seedlimits.RATIO_INFINITE)

    def test_checks(self):
        for bad in [
            {"seedRatioLimit": -1},
            {"seedRatioLimit": float("nan")},
            {"seedRatioLimit": 1e7},
            {"seedRatioLimit": "2"},
            {"seedRatioMode": 3},
            {"seedRatioMode": True},
            {"seedIdleLimit": 70000},
            {"seedIdleLimit": 1.5},
            {"nothing": 1},
        ]:
            self.assertRaises(ControlError, SeedLimits().changed, bad)
        self.assertRaises(
            ControlError, SessionSeedLimits().changed, {"seedRatioLimited": 1}
        )
        self.assertRaises(ControlError, SeedLimits.fromJSON, "x")
        self.assertEqual(
            SeedLimits.fromJSON({"seedRatioLimit": 3, "other": 1}).seedRatioLimit, 3.0
        )
        limits = SessionSeedLimits(idleSeedingLimit=3)
        self.assertEqual(SessionSeedLimits.fromJSON(limits.toJSON()), limits)
