"""
Tests for L{btorrent.util.gcpause}: the garbage collector held off while
the daemon's torrents come up.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from btorrent.util.gcpause import CollectorPause
from tests.test_library import LibraryTestsMixin


class FakeCollector:
    """
    The parts of the C{gc} module a pause uses.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.calls = []

    def isenabled(self) -> bool:
        return self.enabled

    def disable(self) -> None:
        self.calls.append("disable")
        self.enabled = False

    def enable(self) -> None:
        self.calls.append("enable")
        self.enabled = True

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


class CollectorPauseTests(SynchronousTestCase):
    def test_pauseAndEnd(self) -> None:
        """
        A pause disables the collector; its end freezes what was made and
        enables it; a thaw unfreezes, once.
        """
        gc = FakeCollector()
        pause = CollectorPause(gc, limit=60)
        pause.begin(100.0)
        self.assertTrue(pause.paused)
        self.assertFalse(gc.enabled)
        self.assertFalse(pause.expired(159.9))
        self.assertTrue(pause.expired(160.0))
        pause.end()
        pause.end()
        self.assertTrue(gc.enabled)
        self.assertFalse(pause.paused)
        pause.thaw()
        pause.thaw()
        self.assertEqual(gc.calls, ["disable", "freeze", "enable", "unfreeze"])

    def test_notOurs(self) -> None:
        """
        A collector someone else disabled stays as it is.
        """
        gc = FakeCollector(enabled=False)
        pause = CollectorPause(gc)
        pause.begin(0.0)
        pause.end()
        pause.thaw()
        self.assertFalse(pause.paused)
        self.assertEqual(gc.calls, [])
        self.assertFalse(gc.enabled)


class LibraryPauseTests(LibraryTestsMixin, SynchronousTestCase):
    """
    The library pauses the collector while it brings back its torrents,
    until none is still reading its disk, or the limit passes.
    """

    def setUp(self) -> None:
        LibraryTestsMixin.setUp(self)
        first = self.makeLibrary()
        self.add(first, self.one)
        self.successResultOf(first.save())

    def test_endsWhenUp(self) -> None:
        """
        The pause lasts from loading the state until the torrents are up.
        """
        gc = FakeCollector()
        library = self.makeLibrary(CollectorPause(gc))
        self.assertEqual(gc.calls, ["disable"])
        library.startService()
        self.addCleanup(library.stopService)
        self.reactor.advance(1.5)
        self.assertEqual(gc.calls, ["disable", "freeze", "enable"])
        # Removing a torrent lets the collector look at it again.
        record = library.torrents()[0]
        self.successResultOf(library.removeTorrent(record))
        self.assertEqual(gc.calls[-1], "unfreeze")

    def test_endsAtTheLimit(self) -> None:
        """
        A torrent still reading its disk when the limit passes does not
        hold the collector off any longer.
        """
        gc = FakeCollector()
        pending = []

        def never(f, *args, **kwargs):
            from twisted.internet import defer

            d = defer.Deferred()
            pending.append(d)
            return d

        library = self.makeLibrary(CollectorPause(gc, limit=30), runInThread=never)
        library.startService()
        self.reactor.advance(10)
        self.assertTrue(pending)
        self.assertEqual(gc.calls, ["disable"])
        self.reactor.advance(21)
        self.assertEqual(gc.calls, ["disable", "freeze", "enable"])

    def test_stopEnds(self) -> None:
        """
        Stopping the daemon ends the pause.
        """
        gc = FakeCollector()
        library = self.makeLibrary(CollectorPause(gc))
        library.startService()
        library.stopService()
        self.assertTrue(gc.enabled)
