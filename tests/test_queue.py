"""
Tests for L{btorrent.engine.queue.SlotQueue}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from btorrent.engine.queue import SlotQueue


class Owner:
    def __init__(self, name: str, position: int = 0) -> None:
        self.name = name
        self.position = position

    def __repr__(self) -> str:
        return self.name


class SlotQueueTests(SynchronousTestCase):
    def test_slots(self) -> None:
        """
        At most C{size} hold a slot; the others wait and get one as slots
        are given back, in order of arrival.
        """
        queue = SlotQueue(2)
        a, b, c, d = (Owner(n) for n in "abcd")
        got = {}
        for owner in (a, b, c, d):
            got[owner] = queue.acquire(owner)
        self.assertTrue(got[a].called and got[b].called)
        self.assertFalse(got[c].called or got[d].called)
        self.assertEqual(queue.waiting, [c, d])
        queue.release(a)
        self.assertTrue(got[c].called)
        self.assertEqual(queue.active, [b, c])
        queue.release(d)  # gives up waiting
        queue.release(b)
        self.assertEqual(queue.active, [c])
        self.assertFalse(got[d].called)

    def test_positions(self) -> None:
        """
        Waiters go by queue position, then arrival; a waiter moved in the
        queue while waiting takes its new place once the queue is told.
        """
        queue = SlotQueue(1, position=lambda o: o.position)
        holder = Owner("holder")
        queue.acquire(holder)
        late, early, middle = Owner("late", 5), Owner("early", 1), Owner("middle", 3)
        waits = {o: queue.acquire(o) for o in (late, early, middle)}
        self.assertEqual(queue.waiting, [early, middle, late])
        late.position = 0
        queue.reorder()
        self.assertEqual(queue.waiting, [late, early, middle])
        queue.release(holder)
        self.assertTrue(waits[late].called)
        self.assertFalse(waits[early].called)
        queue.release(late)
        self.assertTrue(waits[early].called)

    def test_disabledAndResize(self) -> None:
        """
        A disabled queue has no limit; growing it lets waiters in.
        """
        queue = SlotQueue(1, enabled=False)
        owners = [Owner(str(i)) for i in range(5)]
        self.assertTrue(all(queue.acquire(o).called for o in owners))
        queue = SlotQueue(1)
        waits = [queue.acquire(o) for o in owners]
        self.assertEqual(sum(d.called for d in waits), 1)
        queue.resize(size=3)
        self.assertEqual(sum(d.called for d in waits), 3)
        queue.resize(enabled=False)
        self.assertTrue(all(d.called for d in waits))

    def test_manyWaiters(self) -> None:
        """
        Twenty thousand waiters all get their turn, in order.
        """
        queue = SlotQueue(1)
        owners = [Owner(str(i)) for i in range(20000)]
        waits = [queue.acquire(o) for o in owners]
        order = []
        for owner, wait in zip(owners, waits):
            wait.addCallback(lambda _, o=owner: order.append(o))
        for owner in owners:
            queue.release(owner)
        self.assertEqual(order, owners)
