"""
Tests for L{btorrent.util.threads}: disk work in threads, results on the
reactor's thread.
"""

from __future__ import annotations

import threading

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from btorrent.util.threads import ThreadRunner


class ThreadRunnerTests(TestCase):
    def setUp(self) -> None:
        self.runner = ThreadRunner(reactor, maxThreads=2, name="test")
        self.addCleanup(self.runner.stop)

    async def test_resultOnReactorThread(self) -> None:
        """
        The function runs in another thread; its result arrives on the
        reactor's thread.
        """
        self.runner.start()
        seen = []

        def work(a, b=0):
            seen.append(threading.current_thread().name)
            return a + b

        result = await self.runner(work, 2, b=3)
        self.assertEqual(result, 5)
        self.assertTrue(seen[0].startswith("test"))
        self.assertIs(threading.current_thread(), threading.main_thread())

    async def test_failure(self) -> None:
        """
        An exception in the thread is the L{Deferred}'s failure, with its
        traceback.
        """
        self.runner.start()

        def broken():
            raise OSError(28, "No space left on device")

        with self.assertRaises(OSError) as caught:
            await self.runner(broken)
        self.assertEqual(caught.exception.errno, 28)
        self.assertIsNotNone(caught.exception.__traceback__)

    async def test_waitsForStart(self) -> None:
        """
        Jobs given before L{ThreadRunner.start} run once it is started, in
        order.
        """
        order = []
        first = self.runner(order.append, 1)
        second = self.runner(order.append, 2)
        self.assertEqual(order, [])
        self.runner.start()
        await first
        await second
        self.assertEqual(sorted(order), [1, 2])

    def test_stopWaitsThenRefuses(self) -> None:
        """
        L{ThreadRunner.stop} waits for the jobs given; later ones fail.
        """
        self.runner.start()
        done = []
        release = threading.Event()

        def slow():
            release.wait(5)
            done.append(True)

        self.runner(slow)
        release.set()
        self.runner.stop()
        self.assertEqual(done, [True])
        self.assertFalse(self.runner.started)
        self.failureResultOf(self.runner(slow), RuntimeError)
