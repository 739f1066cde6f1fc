"""
Tests for L{btorrent.util.rate}.
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from btorrent.util.rate import RateMeter


class RateMeterTests(SynchronousTestCase):
    """
    L{RateMeter} with a L{Clock}.
    """

    def test_idle(self) -> None:
        """
        A meter that counted nothing reads zero.
        """
        clock = Clock()
        meter = RateMeter(clock)
        self.assertEqual(meter.rate, 0.0)
        self.assertEqual(meter.total, 0)
        clock.advance(100)
        self.assertEqual(meter.rate, 0.0)

    def test_steady(self) -> None:
        """
        A steady flow reads as its rate, before and after the window fills
        (within one update of 250 bytes over the window).
        """
        clock = Clock()
        meter = RateMeter(clock, window=20.0)
        for _ in range(100):
            clock.advance(0.25)
            meter.update(250)
            if clock.seconds() >= 1:
                self.assertLessEqual(abs(meter.rate - 1000.0), 15.0)
        self.assertEqual(meter.total, 25000)

    def test_windowForgets(self) -> None:
        """
        Bytes older than the window no longer count; the total keeps them.
        """
        clock = Clock()
        meter = RateMeter(clock, window=10.0)
        clock.advance(0.5)
        meter.update(10000)
        clock.advance(5)
        self.assertAlmostEqual(meter.rate, 10000 / 5.5)
        clock.advance(5)
        self.assertEqual(meter.rate, 0.0)
        self.assertEqual(meter.total, 10000)

    def test_burstUnderOneSecond(self) -> None:
        """
        A young meter divides by at least one second.
        """
        clock = Clock()
        meter = RateMeter(clock)
        clock.advance(0.1)
        meter.update(500)
        self.assertEqual(meter.rate, 500.0)

    def test_longGap(self) -> None:
        """
        After a gap longer than the window, old buckets are all forgotten.
        """
        clock = Clock()
        meter = RateMeter(clock, window=5.0)
        for _ in range(10):
            clock.advance(1)
            meter.update(100)
        clock.advance(1000)
        meter.update(50)
        self.assertEqual(meter.rate, 50 / 4)

    def test_shortWindow(self) -> None:
        """
        A window shorter than a second is refused.
        """
        self.assertRaises(ValueError, RateMeter, Clock(), 0.5)

    def test_repr(self) -> None:
        """
        The repr shows the rate and the total.
        """
        clock = Clock()
        meter = RateMeter(clock)
        meter.update(7)
        self.assertEqual(repr(meter), "<RateMeter 7 B/s, 7 B>")

    @given(
        st.lists(
            st.tuples(st.floats(0, 3, allow_nan=False), st.integers(0, 10**6)),
            max_size=60,
        )
    )
    def test_model(self, steps) -> None:
        """
        The windowed sum equals the bytes counted in the buckets of the
        last C{window} whole seconds.
        """
        clock = Clock()
        meter = RateMeter(clock, window=4.0)
        events = []
        for delay, nbytes in steps:
            clock.advance(delay)
            meter.update(nbytes)
            events.append((int(clock.seconds()), nbytes))
        now = clock.seconds()
        expected = sum(n for s, n in events if s > int(now) - 4)
        span = min(now, 3 + (now - int(now)))
        if expected:
            self.assertAlmostEqual(meter.rate, expected / max(span, 1.0), places=6)
        else:
            self.assertEqual(meter.rate, 0.0)
        self.assertEqual(meter.windowTotal, expected)
        self.assertEqual(meter.total, sum(n for _, n in events))

    def test_windowTotal(self) -> None:
        """
        L{RateMeter.windowTotal} is what was counted in the last C{window}
        whole seconds, this one included.
        """
        clock = Clock()
        meter = RateMeter(clock, window=60)
        meter.update(30)
        clock.advance(30)
        meter.update(30)
        self.assertEqual(meter.windowTotal, 60)
        clock.advance(30)
        self.assertEqual(meter.windowTotal, 30)
        clock.advance(30)
        self.assertEqual(meter.windowTotal, 0)
        clock.advance(600)
        meter.update(1)
        self.assertEqual(meter.windowTotal, 1)
        self.assertEqual(meter.total, 61)
