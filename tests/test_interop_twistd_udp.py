"""
C{twistd -n btorrent} as a subprocess announcing to a real opentracker over
UDP (BEP 15): C{started} at start, C{completed} at the end of the download,
C{stopped} on SIGTERM within 5 s.  (The same over HTTP is
C{tests.test_interop_download.TwistdTests}.)
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.realpeers import freePort
from tests.test_interop_download import (
    MULTI,
    Fixture,
    assertStopsOnSIGTERM,
    scrape,
    startTracker,
    startTwistd,
    waitForScrape,
)


class TwistdUDPTrackerTests(TestCase):
    """
    The daemon talks to its tracker over UDP only.
    """

    def test_announcesOverUDPThenStops(self):
        """
        A torrent whose only tracker is C{udp://}: the daemon finds the
        libtorrent seeder through it, downloads, is counted as a seed, and on
        SIGTERM tells the tracker C{stopped} and exits within 5 s.
        """
        tracker = startTracker(self)
        fixture = Fixture(self, MULTI, 16384, tracker=tracker, udp=True)
        self.assertEqual(
            [list(tier) for tier in fixture.metainfo.trackers], [[tracker.udpURL]]
        )
        infoHash = fixture.metainfo.infoHash
        process, log = startTwistd(self, fixture, freePort())
        waitForScrape(
            self,
            tracker,
            fixture,
            (2, 0),
            30,
            process,
            log,
            "complete and announce over UDP",
        )
        fixture.assertSame(self)
        self.assertIn("download complete", log())
        assertStopsOnSIGTERM(self, process, log)
        self.assertEqual(scrape(tracker, infoHash), (1, 0), log())
        self.assertNotIn("Traceback", log())
