"""
Tests for L{btorrent.control.metrics}: the collector over a fake session,
read back with C{prometheus_client}'s own parsers (Prometheus text and
OpenMetrics); the page's formats and its access checks through the RPC
site; the session's counts behind it (L{Library.stats}).
"""

from __future__ import annotations

import gzip
from types import SimpleNamespace
from typing import Dict, Tuple

import prometheus_client
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parseOpenMetrics,
)
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase

from btorrent.control.api import (
    CHECKING,
    DOWNLOADING,
    SEEDING,
    STATE_NAMES,
)
from btorrent.control.metrics import SessionCollector, makeMetricsResource
from tests.fakesession import FakeFile, FakeSession, exampleSession
from tests.test_library import LibraryTestsMixin
from tests.test_rpc_server import PASSWORD_HASH, Wire, basic, httpRequest

#: What an OpenMetrics scraper (Prometheus) sends.
OPENMETRICS_ACCEPT = (
    b"application/openmetrics-text;version=1.0.0;q=0.5,"
    b"text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
)

Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def samples(text: str, openMetrics: bool = False) -> Samples:
    """
    Every sample of a page, by name and sorted labels.
    """
    parse = parseOpenMetrics if openMetrics else text_string_to_metric_families
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse(text)
        for s in family.samples
    }


def families(text: str) -> Dict[str, str]:
    """
    The families of a page (Prometheus text), by name, with their type.
    """
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def scrape(session) -> str:
    """
    The page of a fresh resource over C{session}, as Prometheus text.
    """
    page = makeMetricsResource(session)
    return prometheus_client.generate_latest(page.registry).decode("utf-8")


class CollectorTests(SynchronousTestCase):
    """
    L{SessionCollector} over L{FakeSession}.
    """

    def setUp(self) -> None:
        self.now = 1_700_000_000.0
        self.session = exampleSession(lambda: self.now)
        self.done, self.downloading = self.session.torrents()

    def test_sessionMetrics(self) -> None:
        """
        The session's totals over every run, its rates, torrents by state,
        connected peers, and the counts of L{SessionStats}.
        """
        self.session.counters = {
            "piecesVerified": 120,
            "piecesFailed": 3,
            "announcesSucceeded": 7,
            "announcesFailed": 2,
        }
        found = samples(scrape(self.session))
        self.assertEqual(found[("btorrent_downloaded_bytes_total", ())], 3_000_000)
        self.assertEqual(found[("btorrent_uploaded_bytes_total", ())], 1_000_000)
        self.assertEqual(found[("btorrent_download_rate_bytes_per_second", ())], 48_000)
        self.assertEqual(found[("btorrent_upload_rate_bytes_per_second", ())], 12_345)
        byState = {
            labels[0][1]: value
            for (name, labels), value in found.items()
            if name == "btorrent_torrents"
        }
        self.assertEqual(
            byState,
            {
                name: (1 if state in (SEEDING, DOWNLOADING) else 0)
                for state, name in STATE_NAMES.items()
            },
        )
        self.assertEqual(found[("btorrent_peers", ())], 2)
        self.assertEqual(found[("btorrent_pieces_verified_total", ())], 120)
        self.assertEqual(found[("btorrent_pieces_failed_total", ())], 3)
        self.assertEqual(
            found[("btorrent_tracker_announces_total", (("result", "success"),))], 7
        )
        self.assertEqual(
            found[("btorrent_tracker_announces_total", (("result", "failure"),))], 2
        )

    def test_types(self) -> None:
        """
        Totals are counters, the rest gauges.
        """
        self.session.dht = SimpleNamespace(stats=SimpleNamespace(nodes=1))
        self.assertEqual(
            families(scrape(self.session)),
            {
                "btorrent_downloaded_bytes": "counter",
                "btorrent_uploaded_bytes": "counter",
                "btorrent_download_rate_bytes_per_second": "gauge",
                "btorrent_upload_rate_bytes_per_second": "gauge",
                "btorrent_torrents": "gauge",
                "btorrent_peers": "gauge",
                "btorrent_pieces_verified": "counter",
                "btorrent_pieces_failed": "counter",
                "btorrent_tracker_announces": "counter",
                "btorrent_dht_nodes": "gauge",
                "btorrent_torrent_progress_ratio": "gauge",
                "btorrent_torrent_size_bytes": "gauge",
                "btorrent_torrent_downloaded_bytes": "counter",
                "btorrent_torrent_uploaded_bytes": "counter",
                "btorrent_torrent_peers": "gauge",
            },
        )

    def test_perTorrent(self) -> None:
        """
        Each torrent's progress, size, bytes over every run and peers,
        labelled with its info-hash and name.
        """
        found = samples(scrape(self.session))
        for torrent, progress, size, down, up in (
            (self.done, 1.0, 500_000, 500_000, 750_000),
            (self.downloading, 0.4, 1_000_000, 400_000, 0),
        ):
            labels = (("info_hash", torrent.infoHash.hex()), ("name", torrent.name))
            self.assertEqual(
                found[("btorrent_torrent_progress_ratio", labels)], progress
            )
            self.assertEqual(found[("btorrent_torrent_size_bytes", labels)], size)
            self.assertEqual(
                found[("btorrent_torrent_downloaded_bytes_total", labels)], down
            )
            self.assertEqual(
                found[("btorrent_torrent_uploaded_bytes_total", labels)], up
            )
            self.assertEqual(found[("btorrent_torrent_peers", labels)], 1)

    def test_readOnEachScrape(self) -> None:
        """
        Nothing is kept between scrapes: a torrent stopped, one added, a
        rate changed show in the next one from the same resource.
        """
        page = makeMetricsResource(self.session)

        def read() -> Samples:
            return samples(prometheus_client.generate_latest(page.registry).decode())

        before = read()
        self.assertEqual(before[("btorrent_torrents", (("state", "stopped"),))], 0)
        self.downloading.stop()
        self.downloading.rateDownload = 0
        added = self.session.addFake(
            "third", [FakeFile("third", 10, 0)], state=CHECKING
        )
        after = read()
        self.assertEqual(after[("btorrent_torrents", (("state", "stopped"),))], 1)
        self.assertEqual(after[("btorrent_torrents", (("state", "downloading"),))], 0)
        self.assertEqual(after[("btorrent_torrents", (("state", "checking"),))], 1)
        self.assertEqual(after[("btorrent_download_rate_bytes_per_second", ())], 0)
        labels = (("info_hash", added.infoHash.hex()), ("name", "third"))
        self.assertEqual(after[("btorrent_torrent_size_bytes", labels)], 10)

    def test_noTorrents(self) -> None:
        """
        An empty session: every state at 0, per-torrent families without
        samples.
        """
        session = FakeSession(lambda: self.now)
        text = scrape(session)
        found = samples(text)
        self.assertEqual(
            sorted(v for (n, _), v in found.items() if n == "btorrent_torrents"),
            [0] * len(STATE_NAMES),
        )
        self.assertEqual(found[("btorrent_peers", ())], 0)
        self.assertFalse([n for (n, _) in found if n.startswith("btorrent_torrent_")])
        self.assertIn("btorrent_torrent_progress_ratio", families(text))

    def test_dht(self) -> None:
        """
        The DHT's node count when the session has a DHT; nothing when it
        has none (no attribute, or C{None}).
        """
        self.assertNotIn("btorrent_dht_nodes", families(scrape(self.session)))
        self.session.dht = None
        self.assertNotIn("btorrent_dht_nodes", families(scrape(self.session)))
        self.session.dht = SimpleNamespace(stats=SimpleNamespace(nodes=17))
        self.assertEqual(samples(scrape(self.session))[("btorrent_dht_nodes", ())], 17)

    def test_openMetrics(self) -> None:
        """
        The OpenMetrics form has units, C{_total} samples and C{# EOF}, and
        holds the same samples.
        """
        page = makeMetricsResource(self.session)
        from prometheus_client.openmetrics.exposition import generate_latest

        text = generate_latest(page.registry).decode()
        self.assertTrue(text.endswith("# EOF\n"))
        self.assertIn("# UNIT btorrent_downloaded_bytes bytes\n", text)
        self.assertIn("# UNIT btorrent_torrent_progress_ratio ratio\n", text)
        self.assertEqual(samples(text, openMetrics=True), samples(scrape(self.session)))

    def test_noGlobalState(self) -> None:
        """
        Nothing goes into C{prometheus_client}'s global registry, and two
        sites over two sessions each serve their own.
        """
        other = FakeSession(lambda: self.now)
        other.cumulative["downloadedBytes"] = 5
        first = makeMetricsResource(self.session)
        second = makeMetricsResource(other)
        self.assertIsNot(first.registry, second.registry)
        self.assertIsNot(first.registry, prometheus_client.REGISTRY)
        globalText = prometheus_client.generate_latest().decode()
        self.assertNotIn("btorrent_", globalText)
        self.assertEqual(
            samples(prometheus_client.generate_latest(second.registry).decode())[
                ("btorrent_downloaded_bytes_total", ())
            ],
            5,
        )

    def test_collectorAlone(self) -> None:
        """
        The collector is a plain custom collector: C{collect()} gives
        families, reading the session only then.
        """
        reads = []
        stats = self.session.stats
        self.session.stats = lambda: reads.append(1) or stats()
        collector = SessionCollector(self.session)
        registry = prometheus_client.CollectorRegistry(auto_describe=False)
        registry.register(collector)
        self.assertEqual(reads, [])
        names = [family.name for family in collector.collect()]
        self.assertEqual(reads, [1])
        self.assertIn("btorrent_downloaded_bytes", names)

    @settings(max_examples=200, deadline=None)
    @given(name=st.text(max_size=60))
    def test_anyName(self, name: str) -> None:
        """
        Any torrent name (quotes, backslashes, newlines, markup, any
        Unicode) is a label value that both parsers give back as it was.
        """
        session = FakeSession(lambda: self.now)
        torrent = session.addFake("x", [FakeFile("x", 10, 5)])
        torrent.name = name
        page = makeMetricsResource(session)
        from prometheus_client.openmetrics.exposition import generate_latest

        for text, openMetrics in (
            (prometheus_client.generate_latest(page.registry).decode(), False),
            (generate_latest(page.registry).decode(), True),
        ):
            labels = (("info_hash", torrent.infoHash.hex()), ("name", name))
            self.assertEqual(
                samples(text, openMetrics)[("btorrent_torrent_progress_ratio", labels)],
                0.5,
            )

    def test_hostileName(self) -> None:
        """
        A name built to break the format stays one label value: no extra
        sample, no forged metric.
        """
        session = FakeSession(lambda: self.now)
        torrent = session.addFake("x", [FakeFile("x", 10, 10)])
        torrent.name = 'a"} 1\nbtorrent_peers 999\n# EOF\n\\'
        found = samples(scrape(session))
        self.assertEqual(found[("btorrent_peers", ())], 0)
        self.assertEqual(
            [labels for (n, labels) in found if n == "btorrent_torrent_peers"],
            [(("info_hash", torrent.infoHash.hex()), ("name", torrent.name))],
        )


class PageTests(SynchronousTestCase):
    """
    C{/metrics} on the control site: formats, and the RPC's access checks.
    """

    def wire(self, **kw) -> Wire:
        wire = Wire(self, **kw)
        wire.site.resource.putChild(b"metrics", makeMetricsResource(wire.session))
        return wire

    def test_prometheusText(self) -> None:
        """
        Without C{Accept}: the Prometheus text format, no session id
        needed (a scraper knows no 409 dance).
        """
        response = self.wire().send(httpRequest(b"GET", b"/metrics"))
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.header(b"Content-Type"),
            prometheus_client.CONTENT_TYPE_PLAIN_0_0_4.encode(),
        )
        self.assertEqual(response.header(b"Cache-Control"), b"no-store")
        found = samples(response.body.decode("utf-8"))
        self.assertEqual(found[("btorrent_downloaded_bytes_total", ())], 3_000_000)

    def test_openMetrics(self) -> None:
        """
        A scraper that asks for OpenMetrics gets it.
        """
        response = self.wire().send(
            httpRequest(b"GET", b"/metrics", [(b"Accept", OPENMETRICS_ACCEPT)])
        )
        self.assertEqual(response.code, 200)
        self.assertTrue(
            response.header(b"Content-Type").startswith(
                b"application/openmetrics-text; version=1.0.0"
            )
        )
        text = response.body.decode("utf-8")
        self.assertTrue(text.endswith("# EOF\n"))
        found = samples(text, openMetrics=True)
        self.assertEqual(found[("btorrent_uploaded_bytes_total", ())], 1_000_000)

    def test_gzip(self) -> None:
        """
        Gzipped when the scraper accepts it (Prometheus does).
        """
        response = self.wire().send(
            httpRequest(b"GET", b"/metrics", [(b"Accept-Encoding", b"gzip")])
        )
        self.assertEqual(response.header(b"Content-Encoding"), b"gzip")
        text = gzip.decompress(response.body).decode("utf-8")
        self.assertIn(("btorrent_peers", ()), samples(text))

    def test_whitelist(self) -> None:
        """
        From an address outside the whitelist: 403, no metrics.
        """
        wire = self.wire()
        foreign = IPv4Address("TCP", "10.0.0.1", 1)
        response = wire.send(httpRequest(b"GET", b"/metrics"), foreign)
        self.assertEqual(response.code, 403)
        self.assertNotIn(b"btorrent_", response.body)
        wire = self.wire(whitelist=["10.0.0.*"])
        self.assertEqual(wire.send(httpRequest(b"GET", b"/metrics"), foreign).code, 200)
        self.assertEqual(wire.send(httpRequest(b"GET", b"/metrics")).code, 403)

    def test_password(self) -> None:
        """
        With a password: 401 without credentials or with wrong ones, the
        metrics with the right ones.
        """
        wire = self.wire(username="user", passwordHash=PASSWORD_HASH)
        response = wire.send(httpRequest(b"GET", b"/metrics"))
        self.assertEqual(response.code, 401)
        self.assertEqual(
            response.header(b"WWW-Authenticate"), b'Basic realm="Transmission"'
        )
        self.assertNotIn(b"btorrent_", response.body)
        wrong = wire.send(httpRequest(b"GET", b"/metrics", [basic(b"user", b"nope")]))
        self.assertEqual(wrong.code, 401)
        right = wire.send(httpRequest(b"GET", b"/metrics", [basic(b"user", b"pass")]))
        self.assertEqual(right.code, 200)
        self.assertIn(("btorrent_peers", ()), samples(right.body.decode()))

    def test_post(self) -> None:
        """
        Only GET (and HEAD) read it.
        """
        response = self.wire().send(httpRequest(b"POST", b"/metrics", body=b"x"))
        self.assertEqual(response.code, 405)
        self.assertEqual(response.header(b"Allow"), b"GET, HEAD")
        head = self.wire().send(httpRequest(b"HEAD", b"/metrics"))
        self.assertEqual(head.code, 200)


class LibraryCountsTests(LibraryTestsMixin, SynchronousTestCase):
    """
    The counts the metrics read, as the daemon's session API sums them.
    """

    def test_sums(self) -> None:
        """
        L{Library.stats} sums the torrents' pieces, announces and bytes;
        a removed torrent's stay in the sums (counters never go down).
        """
        library = self.makeLibrary()
        one = self.add(library, self.one, paused=True).torrent
        two = self.add(library, self.two, paused=True).torrent
        for record, (verified, failed, ok, bad, down, up) in (
            (one, (3, 1, 2, 1, 49152, 100)),
            (two, (1, 0, 5, 0, 99, 7)),
        ):
            torrent = record.torrent
            torrent.piecesVerified = verified
            torrent.piecesFailed = failed
            torrent.announcer = SimpleNamespace(succeeded=ok, failed=bad)
            torrent.downloader = SimpleNamespace(
                downloaded=down, uploaded=up, running=False
            )
        expected = {
            "piecesVerified": 4,
            "piecesFailed": 1,
            "announcesSucceeded": 7,
            "announcesFailed": 1,
        }
        stats = library.stats()
        self.assertEqual(
            {key: getattr(stats, key) for key in expected}, expected, stats
        )
        self.assertEqual(stats.current["downloadedBytes"], 49152 + 99)
        self.assertEqual(stats.cumulative["uploadedBytes"], 107)
        self.successResultOf(library.removeTorrent(one))
        after = library.stats()
        self.assertEqual({key: getattr(after, key) for key in expected}, expected)
        self.assertEqual(after.current["downloadedBytes"], 49152 + 99)
        self.assertEqual(after.cumulative["uploadedBytes"], 107)
        self.assertEqual(after.torrentCount, 1)

    def test_dht(self) -> None:
        """
        The library shows the session's DHT, if it has one.
        """
        library = self.makeLibrary()
        self.assertIsNone(library.dht)
        library.session.dht = dht = SimpleNamespace(stats=None)
        self.assertIs(library.dht, dht)

    def test_scrapeLibrary(self) -> None:
        """
        The collector reads a real library: a stopped torrent, its size,
        no progress.
        """
        library = self.makeLibrary()
        record = self.add(library, self.one, paused=True).torrent
        found = samples(scrape(library))
        self.assertEqual(found[("btorrent_torrents", (("state", "stopped"),))], 1)
        labels = (("info_hash", record.infoHash.hex()), ("name", "one"))
        self.assertEqual(found[("btorrent_torrent_size_bytes", labels)], 40005)
        self.assertEqual(found[("btorrent_torrent_progress_ratio", labels)], 0)
        self.assertEqual(found[("btorrent_pieces_verified_total", ())], 0)
        self.assertNotIn("btorrent_dht_nodes", families(scrape(library)))
