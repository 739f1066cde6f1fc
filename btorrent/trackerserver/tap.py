"""
The composition root of C{twistd btorrent-tracker}: command-line options and
L{makeService}.  Like L{btorrent.daemon.tap}, this module uses the global reactor
(as the clock); everything it builds takes the clock as an argument.

One process serves HTTP announce, scrape and C{/stats} on TCP and BEP 15 on
UDP, both on C{--port}::

    twistd -n btorrent-tracker --port 6969 --interface 127.0.0.1

L{makeService} listens on both ports itself, before twistd daemonises: a
port in use is one line on standard error and exit status 1 at once (not a
traceback, nor, daemonised, a line in a log file).  It also raises the soft
limit of open files to the hard one, and keeps the HTTP connections below
it.  Daemonised, the pid and log files are C{btorrent-tracker.pid} and
C{btorrent-tracker.log} unless C{--pidfile} and C{--logfile} say otherwise
(L{btorrent.twistdfiles}).
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage

from btorrent.trackerserver.server import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_HOST,
    DEFAULT_REQUEST_TIMEOUT,
    SwarmService,
    TrackerResource,
    TrackerSite,
    UDPTrackerProtocol,
    readAllowFile,
)
from btorrent.trackerserver.swarm import ConnectionIds, Swarm
from btorrent.twistdfiles import useOwnFileNames
from btorrent.util import logs
from btorrent.util.listening import ListeningPort, listenOrExit

log = Logger(observer=logs.observer)

#: The name of the plugin, in messages and default file names.
NAME = "btorrent-tracker"
#: Descriptors kept free of HTTP connections: the listening sockets, the
#: log and state files, the reactor's own, standard streams.
RESERVED_DESCRIPTORS = 64


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


def _seconds(name: str, low: float, high: float):
    """
    A coercer for a number of seconds in C{low..high}.
    """

    def check(value: str) -> float:
        number = float(value)
        if not low <= number <= high:
            raise ValueError(f"--{name} must be {low:g}..{high:g} seconds")
        return number

    check.coerceDoc = f"Seconds, {low:g} to {high:g}."
    return check


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
        [
            "request-timeout",
            None,
            DEFAULT_REQUEST_TIMEOUT,
            "Seconds an HTTP client has to send a whole request, after "
            "connecting or after its previous answer; slower ones are dropped.",
            _seconds("request-timeout", 1, 3600),
        ],
        [
            "max-connections",
            None,
            DEFAULT_MAX_CONNECTIONS,
            "Most HTTP connections open at once (lowered to fit the open "
            "files limit); more are closed at once.",
            _positive("max-connections"),
        ],
        [
            "max-connections-per-ip",
            None,
            DEFAULT_MAX_CONNECTIONS_PER_HOST,
            "Most HTTP connections open at once from one IP address.",
            _positive("max-connections-per-ip"),
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
        useOwnFileNames(self, NAME)
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


def raiseOpenFilesLimit() -> Optional[int]:
    """
    Raise the soft limit of open files to the hard limit (on Linux often
    1,024 against 1,048,576 or 4,096), logging the figure.

    @return: the soft limit in force, or C{None} when there is none (no
        L{resource} module, or no limit).
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def finite(limit: int) -> Optional[int]:
        return None if limit == resource.RLIM_INFINITY else limit

    if soft == hard:
        log.info("Open files limit: {limit}", limit=soft)
        return finite(soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as e:
        # macOS gives an infinite hard limit and refuses it as a soft one.
        log.info(
            "Open files limit: {limit} (cannot raise it to {hard}: {reason})",
            limit=soft,
            hard=hard,
            reason=str(e),
        )
        return finite(soft)
    log.info("Open files limit raised from {old} to {limit}", old=soft, limit=hard)
    return finite(hard)


def connectionLimit(wanted: int, openFiles: Optional[int]) -> int:
    """
    The most HTTP connections to keep open: C{wanted}, lowered to leave
    L{RESERVED_DESCRIPTORS} of C{openFiles} free (at least 1), logged when
    lowered.
    """
    if openFiles is None or wanted <= openFiles - RESERVED_DESCRIPTORS:
        return wanted
    limit = max(1, openFiles - RESERVED_DESCRIPTORS)
    log.warn(
        "At most {limit} HTTP connections, not {wanted}: the open files limit "
        "is {openFiles}",
        limit=limit,
        wanted=wanted,
        openFiles=openFiles,
    )
    return limit


def _listen(kind: str, options: Options, listen):
    """
    Call C{listen()}; if the port cannot be had, exit with one line.
    """
    return listenOrExit(
        listen,
        f"{NAME}: cannot listen on {kind} port {options['port']} of "
        f"{options['interface']}",
    )


def makeService(options: Options, reactor=None) -> service.MultiService:
    """
    Build the tracker: the swarm service, the HTTP site on TCP and the BEP 15
    protocol on UDP, on one port, both listening on return.

    @param reactor: listens, and is the clock; the global reactor by
        default.
    @raise SystemExit: with one line saying which port cannot be had.
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
    openFiles = raiseOpenFilesLimit()
    site = TrackerSite(
        TrackerResource(swarm),
        accessLog=options["access-log"],
        requestTimeout=options["request-timeout"],
        maxConnections=connectionLimit(options["max-connections"], openFiles),
        maxConnectionsPerHost=options["max-connections-per-ip"],
        reactor=reactor,
    )
    tcp = _listen(
        "TCP",
        options,
        lambda: reactor.listenTCP(
            options["port"], site, interface=options["interface"]
        ),
    )
    try:
        udp = _listen(
            "UDP",
            options,
            lambda: reactor.listenUDP(
                options["port"],
                UDPTrackerProtocol(swarm, ConnectionIds(reactor)),
                interface=options["interface"],
            ),
        )
    except SystemExit:
        tcp.stopListening()
        raise
    ListeningPort(tcp).setServiceParent(top)
    ListeningPort(udp).setServiceParent(top)
    top.swarm = swarm
    top.site = site
    return top
