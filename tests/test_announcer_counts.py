"""
The announcer's counts of announces by result (L{Announcer.succeeded},
L{Announcer.failed}), which the daemon's metrics sum: one per tracker
asked, the C{stopped} announce included, never an announce cancelled
because we stopped; and its last result per tracker
(L{Announcer.results}), which a torrent's C{trackerStats} show.  Fake
tracker clients and a L{task.Clock}, as in L{tests.test_announcer}.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.trial.unittest import SynchronousTestCase

from btorrent.control.api import AddOptions
from btorrent.tracker.announcer import TrackerResult
from tests import test_announcer
from tests.test_library import LibraryTestsMixin


class AnnounceCountTests(test_announcer.AnnouncerTestCase):
    def counts(self, announcer):
        return announcer.succeeded, announcer.failed

    def test_perTrackerAsked(self) -> None:
        """
        Every tracker that fails on the way to one that answers counts as a
        failure; the one that answers as a success.
        """
        announcer = self.make([["a", "b"], ["c"]])
        self.assertEqual(self.counts(announcer), (0, 0))
        announcer.startService()
        for url in [c.url for c in announcer.tiers[0]]:
            self.client(url).fail()
        self.assertEqual(self.counts(announcer), (0, 2))
        self.client("c").answer()
        self.assertEqual(self.counts(announcer), (1, 2))
        # The next round starts at the first tier again.
        self.clock.advance(announcer.nextAnnounceAt - self.clock.seconds())
        self.client(announcer.tiers[0][0].url).answer()
        self.assertEqual(self.counts(announcer), (2, 2))

    def test_allFail(self) -> None:
        """
        A round where no tracker answers counts each of them; so does the
        retry.
        """
        announcer = self.make([["a"], ["b"]])
        announcer.startService()
        self.client("a").fail()
        self.client("b").fail()
        self.assertEqual(self.counts(announcer), (0, 2))
        self.clock.advance(max(c.getTime() for c in self.clock.getDelayedCalls()))
        self.client("a").fail()
        self.client("b").answer()
        self.assertEqual(self.counts(announcer), (1, 3))

    def test_unexpectedError(self) -> None:
        """
        A client that breaks (not a tracker error) counts as a failure.
        """
        announcer = self.make([["a"], ["b"]])
        announcer.startService()
        self.client("a").next().errback(ZeroDivisionError())
        self.client("b").answer()
        self.assertEqual(self.counts(announcer), (1, 1))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_stopped(self) -> None:
        """
        The C{stopped} announce counts: answered, failed, or timed out.
        """
        for outcome, expected in (
            ("answer", (2, 0)),
            ("fail", (1, 1)),
            ("silence", (1, 1)),
        ):
            self.asked.clear()
            announcer = self.make([["a"]], stopTimeout=3)
            announcer.startService()
            self.client("a").answer()
            d = announcer.stopService()
            if outcome == "answer":
                self.client("a").answer()
            elif outcome == "fail":
                self.client("a").fail()
            else:
                self.clock.advance(3)
            self.successResultOf(d)
            self.assertEqual(self.counts(announcer), expected, outcome)

    def test_cancelledNotCounted(self) -> None:
        """
        An announce cancelled by our stop is not a failure.
        """
        announcer = self.make([["a"]])
        announcer.startService()
        self.successResultOf(announcer.stopService())
        self.assertEqual(self.client("a").cancelled and self.counts(announcer), (0, 0))


class ResultTests(test_announcer.AnnouncerTestCase):
    """
    L{Announcer.results}: how the last announce to each tracker went.
    """

    def test_results(self) -> None:
        """
        Each tracker asked has its last result: when, whether it answered,
        its error or C{"Success"}, and the peers it listed.
        """
        announcer = self.make([["a"], ["b"], ["c"]])
        self.clock.advance(1000)
        announcer.startService()
        self.client("a").fail("not registered")
        self.clock.advance(5)
        self.client("b").answer(peers=[("10.0.0.1", 1), ("10.0.0.2", 2)])
        self.assertEqual(
            announcer.results,
            {
                "a": TrackerResult(1000, False, "not registered"),
                "b": TrackerResult(1005, True, "Success", 2),
            },
        )
        self.clock.advance(announcer.nextAnnounceAt - self.clock.seconds())
        self.client("a").answer()
        self.assertEqual(
            announcer.results["a"], TrackerResult(self.clock.seconds(), True, "Success")
        )
        self.assertNotIn("c", announcer.results)


class TrackerStatsTests(LibraryTestsMixin, SynchronousTestCase):
    """
    A torrent's C{trackerStats} come from its announcer's results: a
    failed tracker says so and when (Transmission's web client shows
    "Announce error: ... - time"), one never asked says nothing.
    """

    def test_fromResults(self) -> None:
        library = self.makeLibrary()
        record = self.successResultOf(
            library.addTorrent(self.one, AddOptions(paused=True))
        ).torrent
        [url] = [u for tier in record.torrent.metainfo.trackers for u in tier]
        [before] = record.status(["trackers"]).trackers
        self.assertEqual(
            (before.lastAnnounceTime, before.lastAnnounceResult, before.announceState),
            (0, "", 0),
        )
        record.torrent.announcer = SimpleNamespace(
            results={url: TrackerResult(1_700_000_123.5, False, "connection refused")},
            workingClient=None,
            lastResponse=None,
            nextAnnounceAt=1_700_000_200.0,
            lastError="connection refused",
        )
        [failed] = record.status(["trackers"]).trackers
        self.assertEqual(
            (
                failed.lastAnnounceTime,
                failed.lastAnnounceSucceeded,
                failed.lastAnnounceResult,
                failed.lastAnnouncePeerCount,
                failed.nextAnnounceTime,
            ),
            (1_700_000_123, False, "connection refused", 0, 1_700_000_200),
        )
        record.torrent.announcer.results = {
            url: TrackerResult(1_700_000_300.0, True, "Success", 7)
        }
        [answered] = record.status(["trackers"]).trackers
        self.assertEqual(
            (
                answered.lastAnnounceTime,
                answered.lastAnnounceSucceeded,
                answered.lastAnnounceResult,
                answered.lastAnnouncePeerCount,
            ),
            (1_700_000_300, True, "Success", 7),
        )
