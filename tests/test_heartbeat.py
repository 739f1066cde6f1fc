"""
Tests for L{btorrent.util.heartbeat}: the session's one periodic timer.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from btorrent.util.heartbeat import Heartbeat


class HeartbeatTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.heartbeat = Heartbeat(self.clock)
        self.calls = []

    def subscriber(self, name, sleep=None):
        def beat(now):
            self.calls.append((name, now))
            if sleep is not None:
                return now + sleep
            return None

        return beat

    def test_oneTimerForAll(self) -> None:
        """
        Every subscriber is called each beat, in order, with the clock's
        time, from one timer; none is left once everyone unsubscribed.
        """
        self.heartbeat.subscribe("a", self.subscriber("a"))
        self.heartbeat.subscribe("b", self.subscriber("b"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual(self.calls, [("a", 1), ("b", 1), ("a", 2), ("b", 2)])
        self.heartbeat.unsubscribe("a")
        self.heartbeat.unsubscribe("b")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.heartbeat.beats, 2)

    def test_asleepUntilItsTime(self) -> None:
        """
        A subscriber that returns a time is skipped until then.
        """
        self.heartbeat.subscribe("idle", self.subscriber("idle", sleep=5))
        self.heartbeat.subscribe("busy", self.subscriber("busy"))
        self.clock.pump([1] * 12)
        idle = [now for name, now in self.calls if name == "idle"]
        busy = [now for name, now in self.calls if name == "busy"]
        self.assertEqual(idle, [1, 6, 11])
        self.assertEqual(busy, list(range(1, 13)))

    def test_wake(self) -> None:
        """
        L{Heartbeat.wake} has a sleeping subscriber called at the next beat.
        """
        self.heartbeat.subscribe("idle", self.subscriber("idle", sleep=100))
        self.clock.advance(1)
        self.clock.advance(1)
        self.heartbeat.wake("idle")
        self.heartbeat.wake("nobody")
        self.clock.advance(1)
        self.assertEqual(self.calls, [("idle", 1), ("idle", 3)])

    def test_wokenSleepsAgain(self) -> None:
        """
        A subscriber woken, then asleep again, wakes at its new time, not
        at the old one.
        """
        self.heartbeat.subscribe("idle", self.subscriber("idle", sleep=10))
        self.clock.advance(1)
        self.clock.advance(1)
        self.heartbeat.wake("idle")
        self.clock.pump([1] * 10)
        self.assertEqual(self.calls, [("idle", 1), ("idle", 3)])
        self.clock.advance(1)
        self.assertEqual(self.calls, [("idle", 1), ("idle", 3), ("idle", 13)])

    def test_subscribeAgainWakes(self) -> None:
        """
        Subscribing again (a torrent started again) forgets the sleep.
        """
        self.heartbeat.subscribe("t", self.subscriber("t", sleep=100))
        self.clock.advance(1)
        self.heartbeat.unsubscribe("t")
        self.heartbeat.subscribe("t", self.subscriber("t"))
        self.clock.advance(1)
        self.assertEqual(self.calls, [("t", 1), ("t", 2)])

    def test_errorsReported(self) -> None:
        """
        A subscriber that raises is reported to C{onError} and stays
        subscribed; the others are called.
        """
        errors = []
        heartbeat = Heartbeat(self.clock, onError=lambda k, e: errors.append((k, e)))

        def broken(now):
            raise ValueError("no")

        heartbeat.subscribe("broken", broken)
        heartbeat.subscribe("b", self.subscriber("b"))
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual([k for k, _ in errors], ["broken", "broken"])
        self.assertEqual(self.calls, [("b", 1), ("b", 2)])

    def test_unsubscribeDuringBeat(self) -> None:
        """
        A subscriber may unsubscribe another during a beat: that one is not
        called, now or later, and does not fall asleep.
        """

        def first(now):
            self.calls.append(("first", now))
            self.heartbeat.unsubscribe("second")

        self.heartbeat.subscribe("first", first)
        self.heartbeat.subscribe("second", self.subscriber("second", sleep=5))
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual(self.calls, [("first", 1), ("first", 2)])
        self.assertEqual(self.heartbeat._asleep, {})

    def test_manyIdleCheap(self) -> None:
        """
        Ten thousand sleeping subscribers are not called at all between
        their times.
        """
        for i in range(10_000):
            self.heartbeat.subscribe(i, self.subscriber(i, sleep=60))
        self.clock.advance(1)
        self.assertEqual(len(self.calls), 10_000)
        self.clock.pump([1] * 59)
        self.assertEqual(len(self.calls), 10_000)
        self.clock.advance(1)
        self.assertEqual(len(self.calls), 20_000)
