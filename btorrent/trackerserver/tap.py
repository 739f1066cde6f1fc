"""
The composition root of C{twistd btorrent-tracker}: command-line options and
L{makeService}.  Like L{btorrent.daemon.tap}, this module uses the global reactor
(as the clock); everything it builds takes the clock as an argument.

One process serves HTTP announce, scrape and C{/stats} on TCP and BEP 15 on
UDP, both on C{--port}::

    twistd -n btorrent-tracker --port 6969 --interface 127.0.0.1
"""

from __future__ import annotations

import ipaddress

from twisted.application import internet, service
from twisted.python import usage

from btorrent.trackerserver.server import (
    SwarmService,
    TrackerResource,
    TrackerSite,
    UDPTrackerProtocol,
    readAllowFile,
)
from btorrent.trackerserver.swarm import ConnectionIds, Swarm


def _atLeast(name: str, low: int):
    """
    A coercer for an integer option of at least C{low}, whose error names
    the option.
    """

    def check(value: str) -> int:
        number = int(value)
        if number < low:
            raise ValueError(f"--{name} must be at least {low}")
        return number

    check.coerceDoc = f"An integer, at least {low}."
    return check


def _positive(name: str):
    return _atLeast(name, 1)


def _nonNegative(name: str):
    return _atLeast(name, 0)


class Options(usage.Options):
    """
    Options of C{twistd btorrent-tracker}.
    """

    synopsis = "[--port 6969] [--interface ADDR] [--allow-file F] [--state-file F]"
    longdesc = (
        "A BitTorrent tracker: HTTP announce and scrape (BEP 3, 7, 23, 48) on "
        "TCP and announce, scrape and connect (BEP 15) on UDP, both on --port. "
        "Statistics as JSON at /stats."
    )

    optParameters = [
        ["port", "p", 6969, "TCP and UDP port (1..65535).", int],
        ["interface", "i", "0.0.0.0", "Address to listen on (:: for IPv6)."],
        [
            "allow-file",
            "a",
            None,
            "Serve only the info-hashes in this file (40 hex digits a line; "
            "# comments and blank lines are ignored).",
        ],
        [
            "state-file",
            "s",
            None,
            "Keep download counts in this file (loaded on start, saved "
            "every --save-interval seconds and on shutdown).",
        ],
        ["interval", None, 1800, "Announce interval sent to clients.", int],
        ["min-interval", None, 900, "Minimum announce interval sent.", int],
        [
            "max-torrents",
            None,
            100_000,
            "Most torrents tracked.",
            _positive("max-torrents"),
        ],
        [
            "max-peers-per-torrent",
            None,
            50_000,
            "Most peers in one torrent.",
            _positive("max-peers-per-torrent"),
        ],
        ["max-peers", None, 1_000_000, "Most peers in all.", _positive("max-peers")],
        [
            "max-archived",
            None,
            100_000,
            "Most download counts kept of torrents with no peers (the least "
            "recently used are dropped first).",
            _nonNegative("max-archived"),
        ],
        ["save-interval", None, 300, "Seconds between state saves.", int],
        [
            "sweep-interval",
            None,
            60,
            "Seconds between sweeps expiring silent peers.",
            _positive("sweep-interval"),
        ],
    ]
    optFlags = [
        ["access-log", None, "Log every HTTP request."],
    ]

    def postOptions(self) -> None:
        """
        Check the options and read the allow-list.

        @raise usage.UsageError: naming the problem.
        """
        if not (1 <= self["port"] <= 65535):
            raise usage.UsageError(f"--port must be 1..65535, not {self['port']}")
        try:
            ipaddress.ip_address(self["interface"])
        except ValueError:
            raise usage.UsageError(
                f"--interface must be an IP address, not {self['interface']!r}"
            ) from None
        if self["interval"] < 1:
            raise usage.UsageError("--interval must be at least 1")
        if not (0 <= self["min-interval"] <= self["interval"]):
            raise usage.UsageError("--min-interval must be 0..--interval")
        if self["save-interval"] < 1:
            raise usage.UsageError("--save-interval must be at least 1")
        self["allowed"] = None
        path = self["allow-file"]
        if path is not None:
            try:
                self["allowed"] = readAllowFile(path)
            except OSError as e:
                raise usage.UsageError(
                    f"cannot read allow file {path}: {e.strerror or e}"
                ) from None
            except ValueError as e:
                raise usage.UsageError(f"allow file {path}: {e}") from None


def makeService(options: Options, reactor=None) -> service.MultiService:
    """
    Build the tracker: the swarm service, the HTTP site on TCP and the BEP 15
    protocol on UDP, on one port.

    @param reactor: the clock; the global reactor by default.
    """
    if reactor is None:
        from twisted.internet import reactor
    swarm = Swarm(
        reactor,
        interval=options["interval"],
        minInterval=options["min-interval"],
        maxTorrents=options["max-torrents"],
        maxPeersPerTorrent=options["max-peers-per-torrent"],
        maxPeers=options["max-peers"],
        allowed=options["allowed"],
        maxArchived=options["max-archived"],
    )
    top = service.MultiService()
    SwarmService(
        swarm,
        reactor,
        stateFile=options["state-file"],
        sweepInterval=options["sweep-interval"],
        saveInterval=options["save-interval"],
    ).setServiceParent(top)
    site = TrackerSite(
        TrackerResource(swarm), accessLog=options["access-log"], reactor=reactor
    )
    tcp = internet.TCPServer(
        options["port"], site, interface=options["interface"], reactor=reactor
    )
    tcp.setServiceParent(top)
    udp = internet.UDPServer(
        options["port"],
        UDPTrackerProtocol(swarm, ConnectionIds(reactor)),
        interface=options["interface"],
        reactor=reactor,
    )
    udp.setServiceParent(top)
    top.swarm = swarm
    return top
