"""
OpenMetrics at C{/metrics}: what the session API reports, read on each
scrape and written by C{prometheus_client} (the Prometheus text format, or
OpenMetrics when the scraper asks for it in C{Accept}).

Nothing is kept between scrapes and nothing goes in
C{prometheus_client}'s global registry: L{SessionCollector} reads the
session when asked, and each site gets its own C{CollectorRegistry}
(L{makeMetricsResource}).  The page is hung on the control site's root,
so it passes the RPC's address whitelist and password checks.

The metrics, all prefixed C{btorrent_}:

  - C{downloaded_bytes_total}, C{uploaded_bytes_total}: the session's
    bytes over every run of the daemon (C{session-stats}' cumulative
    totals); downloaded bytes are those of verified pieces;
  - C{download_rate_bytes_per_second}, C{upload_rate_bytes_per_second};
  - C{torrents{state}}: torrents in each of Transmission's states;
  - C{peers}: connected peers over every torrent;
  - C{pieces_verified_total}, C{pieces_failed_total}: pieces downloaded
    that passed, or failed, their hash check since the daemon started;
  - C{tracker_announces_total{result="success"|"failure"}}: announces,
    one per tracker asked, since the daemon started;
  - C{dht_nodes}: nodes in the DHT's routing table, when the session has a
    DHT (a C{dht} attribute with C{stats}); absent otherwise;
  - per torrent, labelled C{info_hash} (40 hex digits) and C{name}:
    C{torrent_progress_ratio} (0 to 1, of the wanted data),
    C{torrent_size_bytes}, C{torrent_downloaded_bytes_total} and
    C{torrent_uploaded_bytes_total} (over every run), C{torrent_peers}.
"""

from __future__ import annotations

import gzip
from typing import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder, gzip_accepted
from twisted.web.resource import Resource
from twisted.web.server import Request

from btorrent.control.api import STATE_NAMES, ISessionControl

__all__ = ["METRICS_PREFIX", "SessionCollector", "MetricsPage", "makeMetricsResource"]

#: The prefix of every metric's name.
METRICS_PREFIX = "btorrent_"

#: The per-torrent labels.
_TORRENT_LABELS = ["info_hash", "name"]


class SessionCollector:
    """
    A C{prometheus_client} custom collector that reads the session API on
    each C{collect()}.

    @ivar session: the L{ISessionControl}.
    """

    def __init__(self, session: ISessionControl) -> None:
        """
        @param session: the session to read; its optional C{dht} attribute
            (C{None} or something with C{stats.nodes}) gives the DHT gauge.
        """
        self.session = session

    def collect(self) -> Iterator[Metric]:
        """
        The metrics now.
        """
        p = METRICS_PREFIX
        stats = self.session.stats()
        statuses = [torrent.view() for torrent in self.session.torrents()]

        yield CounterMetricFamily(
            p + "downloaded_bytes",
            "Bytes of verified pieces downloaded, over every run of the daemon.",
            value=int(stats.cumulative.get("downloadedBytes", 0)),
            unit="bytes",
        )
        yield CounterMetricFamily(
            p + "uploaded_bytes",
            "Bytes uploaded to peers, over every run of the daemon.",
            value=int(stats.cumulative.get("uploadedBytes", 0)),
            unit="bytes",
        )
        yield GaugeMetricFamily(
            p + "download_rate_bytes_per_second",
            "Download rate now, every torrent together.",
            value=int(stats.downloadSpeed),
        )
        yield GaugeMetricFamily(
            p + "upload_rate_bytes_per_second",
            "Upload rate now, every torrent together.",
            value=int(stats.uploadSpeed),
        )

        byState = GaugeMetricFamily(
            p + "torrents", "Torrents, by state.", labels=["state"]
        )
        counts = {state: 0 for state in STATE_NAMES}
        for status in statuses:
            counts[status.state] = counts.get(status.state, 0) + 1
        for state, count in sorted(counts.items()):
            byState.add_metric([STATE_NAMES.get(state, str(state))], count)
        yield byState

        yield GaugeMetricFamily(
            p + "peers",
            "Connected peers, every torrent together.",
            value=sum(status.peersConnected for status in statuses),
        )
        yield CounterMetricFamily(
            p + "pieces_verified",
            "Pieces downloaded that passed their hash check, since the "
            "daemon started.",
            value=int(stats.piecesVerified),
        )
        yield CounterMetricFamily(
            p + "pieces_failed",
            "Pieces downloaded that failed their hash check, since the "
            "daemon started.",
            value=int(stats.piecesFailed),
        )
        announces = CounterMetricFamily(
            p + "tracker_announces",
            "Announces to trackers (one per tracker asked), by result, since "
            "the daemon started.",
            labels=["result"],
        )
        announces.add_metric(["success"], int(stats.announcesSucceeded))
        announces.add_metric(["failure"], int(stats.announcesFailed))
        yield announces

        dht = getattr(self.session, "dht", None)
        if dht is not None:
            yield GaugeMetricFamily(
                p + "dht_nodes",
                "Nodes in the DHT's routing table.",
                value=int(dht.stats.nodes),
            )

        progress = GaugeMetricFamily(
            p + "torrent_progress",
            "A torrent's share of its wanted data verified, 0 to 1.",
            labels=_TORRENT_LABELS,
            unit="ratio",
        )
        size = GaugeMetricFamily(
            p + "torrent_size",
            "A torrent's wanted data (0 while its metadata is unknown).",
            labels=_TORRENT_LABELS,
            unit="bytes",
        )
        downloaded = CounterMetricFamily(
            p + "torrent_downloaded_bytes",
            "Bytes of verified pieces a torrent downloaded, over every run.",
            labels=_TORRENT_LABELS,
            unit="bytes",
        )
        uploaded = CounterMetricFamily(
            p + "torrent_uploaded_bytes",
            "Bytes a torrent uploaded, over every run.",
            labels=_TORRENT_LABELS,
            unit="bytes",
        )
        peers = GaugeMetricFamily(
            p + "torrent_peers",
            "A torrent's connected peers.",
            labels=_TORRENT_LABELS,
        )
        for status in statuses:
            labels = [status.infoHash.hex(), status.name]
            progress.add_metric(labels, float(status.percentDone))
            size.add_metric(labels, int(status.sizeWhenDone))
            downloaded.add_metric(labels, int(status.downloadedEver))
            uploaded.add_metric(labels, int(status.uploadedEver))
            peers.add_metric(labels, int(status.peersConnected))
        yield from (progress, size, downloaded, uploaded, peers)


class MetricsPage(Resource):
    """
    The page a scraper reads: a registry's metrics in the format its
    C{Accept} header asks for (gzipped if it accepts that).

    @ivar registry: the C{CollectorRegistry} served.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render(self, request: Request) -> bytes:
        """
        GET and HEAD read the metrics; any other method is a 405.
        """
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET, HEAD")
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"method not allowed: GET the metrics\n"
        return self.render_GET(request)

    def render_GET(self, request: Request) -> bytes:
        """
        The metrics, as C{Accept} asks.
        """
        accept = request.getHeader(b"Accept")
        encoder, contentType = choose_encoder(
            accept.decode("latin-1") if accept else ""
        )
        body = encoder(self.registry)
        request.setHeader(b"Content-Type", contentType.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Vary", b"Accept, Accept-Encoding")
        acceptEncoding = request.getHeader(b"Accept-Encoding")
        if acceptEncoding and gzip_accepted(acceptEncoding.decode("latin-1")):
            body = gzip.compress(body)
            request.setHeader(b"Content-Encoding", b"gzip")
        return body


def makeMetricsResource(session: ISessionControl) -> MetricsPage:
    """
    The C{/metrics} page over C{session}, with a registry of its own.

    Hang it on the control site's root (C{root.putChild(b"metrics",
    makeMetricsResource(session))}), behind the RPC's access checks.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SessionCollector(session))
    return MetricsPage(registry)
