"""
The announcer's counts of announces by result (L{Announcer.succeeded},
L{Announcer.failed}), which the daemon's metrics sum: one per tracker
asked, the C{stopped} announce included, never an announce cancelled
because we stopped.  Fake tracker clients and a L{task.Clock}, as in
L{tests.test_announcer}.
"""

from __future__ import annotations

from tests import test_announcer


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
