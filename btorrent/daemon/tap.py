"""
The composition root of C{twistd btorrent}: command-line options and
L{makeService}.  This is the only module (with L{btorrent.cli.main} and
L{btorrent.trackerserver.tap}) that uses the global reactor.

C{twistd -n btorrent} with no argument starts an empty daemon: torrents are
then added through the RPC, the web page, C{btorrent add} or the watch dir,
and kept in the state dir across restarts.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import List, Optional

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.python import usage

from btorrent import __version__
from btorrent.codec import metainfo
from btorrent.codec.magnet import Magnet, MagnetError, isMagnet, parseMagnet
from btorrent.twistdfiles import useOwnFileNames
from btorrent.util.listening import ListeningPort, listenOrExit
from btorrent.util.units import UNLIMITED, parseBytesPerSecond

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_RPC_PORT",
    "Options",
    "ReannounceOnSignal",
    "defaultDownloadDir",
    "defaultStateDir",
    "makeService",
]

#: Transmission's peer port, ours by default.
DEFAULT_PORT = 51413

#: Transmission's RPC port, ours by default.
DEFAULT_RPC_PORT = 9091


def defaultStateDir() -> str:
    """
    The default state directory: C{$XDG_DATA_HOME/btorrent}, usually
    C{~/.local/share/btorrent}.
    """
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "btorrent")


def defaultDownloadDir() -> str:
    """
    The default download directory: C{~/Downloads}.
    """
    return os.path.join(os.path.expanduser("~"), "Downloads")


def _coercer(option: str, kind, noun: str):
    """
    A coercer to C{kind} for an option, whose error names the option.
    """

    def coerce(value: str):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{option} must be {noun}, not {value!r}") from None

    coerce.coerceDoc = ""  # type: ignore[attr-defined]
    return coerce


def _number(option: str):
    """
    A coercer for a number option whose error names the option.
    """
    return _coercer(option, float, "a number")


def _integer(option: str):
    """
    A coercer for an integer option whose error names the option.
    """
    return _coercer(option, int, "an integer")


def _octal(option: str):
    """
    A coercer for an octal option (a umask) whose error names the option.
    """
    return _coercer(option, lambda text: int(text, 8), "octal digits")


def _rate(option: str):
    """
    A coercer for a rate option (bytes/s; C{unlimited}: -1).
    """

    def parse(text: str) -> int:
        rate = parseBytesPerSecond(text)
        return -1 if rate is None else round(rate)

    return _coercer(option, parse, "a rate (500k, 2M, 250000 or unlimited)")


def _ratio(option: str):
    """
    A coercer for a ratio option (C{unlimited}: -1).
    """

    def parse(text: str) -> float:
        if text.strip().lower() in UNLIMITED:
            return -1.0
        value = float(text)
        if not 0 <= value < 10_000:
            raise ValueError(text)
        return value

    return _coercer(option, parse, "a ratio (0..9999) or unlimited")


def _minutes(option: str):
    """
    A coercer for a number of minutes (C{unlimited}: -1).
    """

    def parse(text: str) -> int:
        if text.strip().lower() in UNLIMITED:
            return -1
        value = int(text)
        if not 1 <= value <= 10**6:
            raise ValueError(text)
        return value

    return _coercer(option, parse, "minutes (1..1000000) or unlimited")


def commandLineSettings(options) -> dict:
    """
    The session settings the command line names (they win over what the
    state dir kept): the limits given.
    """
    changes = {}
    for option, rate, enabled in (
        ("down-limit", "speedLimitDown", "speedLimitDownEnabled"),
        ("up-limit", "speedLimitUp", "speedLimitUpEnabled"),
    ):
        value = options[option]
        if value is not None:
            changes[enabled] = value >= 0
            if value >= 0:
                changes[rate] = value
    if options["seed-ratio"] is not None:
        changes["seedRatioLimited"] = options["seed-ratio"] >= 0
        if options["seed-ratio"] >= 0:
            changes["seedRatioLimit"] = float(options["seed-ratio"])
    if options["seed-idle"] is not None:
        changes["idleSeedingLimitEnabled"] = options["seed-idle"] >= 0
        if options["seed-idle"] >= 0:
            changes["idleSeedingLimit"] = options["seed-idle"]
    if options["peer-limit-global"] is not None:
        changes["peerLimitGlobal"] = options["peer-limit-global"]
    return changes


def checkWritableDirectory(path: str, what: str) -> Optional[str]:
    """
    Create C{path} if it is missing and check that files can be created
    in it.

    @return: C{None}, or the problem in one line.
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        return f"cannot create the {what} {path}: {e.strerror or e}"
    if not os.path.isdir(path):
        return f"the {what} {path} is not a directory"
    probe = os.path.join(path, f".btorrent-write-test-{os.getpid()}")
    try:
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as e:
        return f"cannot write in the {what} {path}: {e.strerror or e}"
    return None


class Options(usage.Options):
    """
    Options of C{twistd btorrent}.
    """

    synopsis = "[options]"
    longdesc = (
        "The btorrent daemon: downloads and seeds torrents, steered through "
        "its web page and Transmission RPC (http://127.0.0.1:9091/), "
        "'btorrent add|list|...', the watch dir, or --torrent at start.  "
        "With no option it starts empty, keeping its torrents in the state "
        "dir across restarts.  "
        "Options before 'btorrent' are twistd's (-n foreground, --pidfile, "
        "--logfile), options after it are btorrent's: "
        "twistd -n --pidfile= btorrent -p 51413 -d ~/Downloads.  "
        "Some letters mean something else before 'btorrent': there -p is "
        "twistd's --profile (it runs the profiler and writes its results to a "
        "file named after the argument), -d its --rundir (the directory "
        "twistd changes to), -s its --source (an application file) and "
        "--debug runs the Python debugger."
    )

    optParameters = [
        [
            "download-dir",
            "d",
            None,
            "Directory downloads go into (default ~/Downloads).",
        ],
        [
            "interface",
            "i",
            "",
            "Address to listen on and send from (default: all addresses).",
        ],
        [
            "port",
            "p",
            DEFAULT_PORT,
            "TCP port for incoming peers; the next free one if taken.",
            _integer("--port"),
        ],
        [
            "state-dir",
            "s",
            None,
            "Directory for the torrent list and fast-resume data "
            "(default $XDG_DATA_HOME/btorrent).",
        ],
        ["max-peers", None, 50, "Peers per torrent.", _integer("--max-peers")],
        ["piece-order", None, "random", "Piece selection: random or rarest."],
        [
            "upload-slots",
            None,
            4,
            "Peers we upload to at once (besides one optimistic unchoke).",
            _integer("--upload-slots"),
        ],
        [
            "resume-interval",
            None,
            60.0,
            "Seconds between saves of fast-resume data while downloading "
            "(also saved at stop).",
            _number("--resume-interval"),
        ],
        [
            "udp-tracker-timeout",
            None,
            15.0,
            "Seconds before the first retransmission to a UDP tracker; the "
            "n-th waits this times 2**n (BEP 15).",
            _number("--udp-tracker-timeout"),
        ],
        [
            "udp-tracker-retries",
            None,
            2,
            "Retransmissions to a UDP tracker before trying the next one, "
            "0..8 (BEP 15 allows 8: over two hours for a dead tracker).",
            _integer("--udp-tracker-retries"),
        ],
        [
            "encryption",
            None,
            "preferred",
            "Message stream encryption (MSE/PE) with peers: tolerated (dial "
            "in plaintext, accept both), preferred (dial encrypted, "
            "plaintext if the peer cannot), required (encrypted only).",
        ],
        [
            "download-queue-size",
            None,
            5,
            "Torrents downloading at once; the others wait (0: no limit).",
            _integer("--download-queue-size"),
        ],
        [
            "seed-queue-size",
            None,
            0,
            "Torrents seeding at once (0: no limit, the default).",
            _integer("--seed-queue-size"),
        ],
        ["watch-dir", None, None, "Add every .torrent that appears here."],
        [
            "down-limit",
            None,
            None,
            "Session download limit, bytes/s: 500k, 2M (k = 1000), or unlimited "
            "(default: as last set through the RPC, else unlimited).",
            _rate("--down-limit"),
        ],
        [
            "up-limit",
            None,
            None,
            "Session upload limit, bytes/s, as --down-limit.",
            _rate("--up-limit"),
        ],
        [
            "seed-ratio",
            None,
            None,
            "Stop seeding a torrent at this upload ratio (e.g. 2), or " "unlimited.",
            _ratio("--seed-ratio"),
        ],
        [
            "seed-idle",
            None,
            None,
            "Stop seeding a torrent idle this many minutes, or unlimited.",
            _minutes("--seed-idle"),
        ],
        [
            "peer-limit-global",
            None,
            None,
            "Connected peers at most, every torrent together (default 200).",
            _integer("--peer-limit-global"),
        ],
        [
            "rpc-port",
            None,
            DEFAULT_RPC_PORT,
            "Port of the web page and the Transmission RPC (0: none).",
            _integer("--rpc-port"),
        ],
        ["rpc-bind", None, "127.0.0.1", "Address the RPC listens on."],
        [
            "rpc-whitelist",
            None,
            "127.0.0.1,::1",
            "Client addresses allowed on the RPC (comma-separated, * wildcards).",
        ],
        [
            "rpc-host-whitelist",
            None,
            "",
            "Host names allowed in the RPC's Host header besides IP "
            "addresses and localhost (comma-separated).",
        ],
        ["rpc-username", None, None, "User name the RPC requires."],
        [
            "rpc-password-file",
            None,
            None,
            "File holding the RPC password (plain, or a hash made by btorrent).",
        ],
        [
            "web-home",
            None,
            None,
            "Transmission's web client to serve at /transmission/web/ "
            "(default: $TRANSMISSION_WEB_HOME or Debian's).",
        ],
        [
            "umask",
            None,
            "022",
            "Permissions taken away from the files and directories created.",
            _octal("--umask"),
        ],
    ]
    optFlags = [
        [
            "debug",
            None,
            "Log debug lines too (every peer message, every state change).",
        ],
        ["no-dht", None, "No DHT (BEP 5): trackerless torrents find no peers."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["torrents"] = []
        self["dht-bootstrap"] = []

    def opt_dht_bootstrap(self, address: str) -> None:
        """
        A DHT node to join through, HOST:PORT (may be given several times;
        default: the public routers).
        """
        host, sep, port = address.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise usage.UsageError(
                f"--dht-bootstrap must be HOST:PORT, not {address!r}"
            )
        self["dht-bootstrap"].append((host, int(port)))

    def opt_torrent(self, path: str) -> None:
        """
        A .torrent file or a magnet link to add at start (may be given
        several times; one already known is not added twice).
        """
        self["torrents"].append(path)

    opt_t = opt_torrent

    def opt_version(self) -> None:
        """
        Print btorrent's version and exit.
        """
        print(f"btorrent {__version__}")
        sys.exit(0)

    def parseStrictly(self, options=None) -> None:
        """
        Parse C{options}.

        @raise usage.UsageError: for a mistake.
        """
        super().parseOptions(options)

    def parseOptions(self, options=None) -> None:
        """
        Parse, and on a mistake print one line (the error first, then
        where to read more) and exit with status 2: twistd would print its
        whole usage before the error.
        """
        try:
            self.parseStrictly(options)
        except usage.UsageError as e:
            sys.stderr.write(f"twistd btorrent: {e}\n(see twistd btorrent --help)\n")
            sys.exit(2)

    def postOptions(self) -> None:
        """
        Check the options, load the torrents given, and check that the
        state dir and the download dir can be written.

        @raise usage.UsageError: naming the problem.
        """
        useOwnFileNames(self, "btorrent")
        loaded = []
        for path in self["torrents"]:
            if isMagnet(path):
                try:
                    loaded.append((path, parseMagnet(path)))
                except MagnetError as e:
                    raise usage.UsageError(f"invalid magnet link: {e}") from None
                continue
            try:
                loaded.append((path, metainfo.loadFile(path)))
            except OSError as e:
                raise usage.UsageError(
                    f"cannot read torrent {path}: {e.strerror or e}"
                ) from None
            except metainfo.MetainfoError as e:
                raise usage.UsageError(f"invalid torrent {path}: {e}") from None
        self["metainfos"] = loaded
        for name in ("port", "rpc-port"):
            if not (0 <= self[name] <= 65535):
                raise usage.UsageError(f"--{name} must be 0..65535, not {self[name]}")
        if self["max-peers"] < 1:
            raise usage.UsageError("--max-peers must be at least 1")
        if not (1 <= self["upload-slots"] <= 1000):
            raise usage.UsageError("--upload-slots must be 1..1000")
        if self["piece-order"] not in ("random", "rarest"):
            raise usage.UsageError("--piece-order must be random or rarest")
        if not (0.1 <= self["resume-interval"] <= 86400):
            raise usage.UsageError("--resume-interval must be 0.1..86400 seconds")
        if not (0.1 <= self["udp-tracker-timeout"] <= 600):
            raise usage.UsageError("--udp-tracker-timeout must be 0.1..600 seconds")
        if not (0 <= self["udp-tracker-retries"] <= 8):
            raise usage.UsageError("--udp-tracker-retries must be 0..8")
        if self["encryption"] not in ("tolerated", "preferred", "required"):
            raise usage.UsageError(
                "--encryption must be tolerated, preferred or required"
            )
        for name in ("download-queue-size", "seed-queue-size"):
            if not (0 <= self[name] <= 10000):
                raise usage.UsageError(f"--{name} must be 0..10000")
        if isinstance(self["umask"], str):
            self["umask"] = int(self["umask"], 8)
        if not (0 <= self["umask"] <= 0o777):
            raise usage.UsageError("--umask must be 000..777")
        self._checkRPC()
        if self["state-dir"] is None:
            self["state-dir"] = defaultStateDir()
        if self["download-dir"] is None:
            self["download-dir"] = defaultDownloadDir()
        self["state-dir"] = os.path.abspath(self["state-dir"])
        self["download-dir"] = os.path.abspath(self["download-dir"])
        for name, what in (
            ("state-dir", "state dir"),
            ("download-dir", "download dir"),
        ):
            problem = checkWritableDirectory(self[name], what)
            if problem is not None:
                raise usage.UsageError(problem)
        if self["watch-dir"] is not None:
            self["watch-dir"] = os.path.abspath(self["watch-dir"])
            if not os.path.isdir(self["watch-dir"]):
                raise usage.UsageError(
                    f"the watch dir {self['watch-dir']} is not a directory"
                )

    def _checkRPC(self) -> None:
        from btorrent.control.access import hashPassword, rpcBindProblem

        passwordHash = None
        path = self["rpc-password-file"]
        if path is not None:
            try:
                with open(path, encoding="utf-8") as f:
                    password = f.readline().rstrip("\r\n")
            except OSError as e:
                raise usage.UsageError(
                    f"cannot read --rpc-password-file {path}: {e.strerror or e}"
                ) from None
            if not password:
                raise usage.UsageError(f"--rpc-password-file {path} is empty")
            if password.startswith("{") or password.startswith("pbkdf2-sha256$"):
                passwordHash = password
            else:
                passwordHash = hashPassword(password)
        if (self["rpc-username"] is None) != (passwordHash is None):
            raise usage.UsageError("--rpc-username and --rpc-password-file go together")
        self["rpc-password-hash"] = passwordHash
        if self["rpc-port"]:
            problem = rpcBindProblem(
                self["rpc-bind"], self["rpc-username"], passwordHash
            )
            if problem is not None:
                raise usage.UsageError(problem)


class ReannounceOnSignal(Service):
    """
    While running, C{SIGUSR1} makes every torrent of the session announce
    now (L{btorrent.daemon.session.Session.reannounce}): C{kill -USR1 PID}
    is the daemon's "ask the trackers for more peers".
    """

    def __init__(self, session, reactor, signalNumber: int = signal.SIGUSR1) -> None:
        self.session = session
        self.reactor = reactor
        self.signalNumber = signalNumber
        self._previous = None

    def _received(self, signalNumber, frame) -> None:
        self.reactor.callFromThread(self.session.reannounce)

    def startService(self) -> None:
        """
        Install the signal handler.
        """
        super().startService()
        self._previous = signal.signal(self.signalNumber, self._received)

    def stopService(self) -> None:
        """
        Put the previous handler back.
        """
        super().stopService()
        if self._previous is not None:
            signal.signal(self.signalNumber, self._previous)
            self._previous = None


class Daemon(MultiService):
    """
    The whole daemon: the session (peers, trackers, disk), the torrent list
    (L{btorrent.daemon.library.Library}) and the control plane.  The list
    stops before the session, so that it saves the final totals.

    @ivar session: the L{btorrent.daemon.session.Session}.
    @ivar library: the L{btorrent.daemon.library.Library}.
    @ivar site: the control plane's web site, or C{None}.
    """

    def __init__(self, session, library, site=None) -> None:
        super().__init__()
        self.session = session
        self.library = library
        self.site = site

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop the control plane and the list first (it stops the torrents
        and saves the final totals, on the session's threads), then the
        session.  (A plain L{MultiService} stops every child at once.)
        """
        Service.stopService(self)
        others = [child for child in reversed(list(self)) if child is not self.session]
        yield defer.DeferredList(
            [defer.maybeDeferred(child.stopService) for child in others],
            consumeErrors=True,
        )
        yield defer.maybeDeferred(self.session.stopService)


def _split(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def buildDaemon(options: Options, reactor, collectorPause=None) -> Daemon:
    """
    Build the daemon from parsed options on C{reactor}.

    @param collectorPause: a L{btorrent.util.gcpause.CollectorPause} for
        the start-up, or C{None}.
    """
    from btorrent.control.api import AddOptions, ControlError, SessionSettings
    from btorrent.daemon.library import Library
    from btorrent.daemon.session import Session
    from btorrent.dht.protocol import bootstrapNodes

    downloadQueue = options["download-queue-size"]
    seedQueue = options["seed-queue-size"]
    session = Session(
        reactor,
        port=options["port"],
        interface=options.get("interface") or "",
        stateDir=options["state-dir"],
        debug=bool(options["debug"]),
        trackerOptions={
            "udpRetransmitBase": options["udp-tracker-timeout"],
            "udpMaxRetries": options["udp-tracker-retries"],
        },
        downloadQueueSize=downloadQueue or None,
        seedQueueSize=seedQueue or None,
        heartbeatInterval=min(1.0, options["resume-interval"]),
        dhtBootstrap=bootstrapNodes(options["no-dht"], options["dht-bootstrap"]),
        encryption=options["encryption"],
    )
    settings = SessionSettings(
        downloadDir=options["download-dir"],
        peerPort=options["port"],
        downloadQueueSize=downloadQueue or 5,
        downloadQueueEnabled=bool(downloadQueue),
        seedQueueSize=seedQueue or 10,
        seedQueueEnabled=bool(seedQueue),
        peerLimitPerTorrent=options["max-peers"],
        umask=options["umask"],
        dhtEnabled=not options["no-dht"],
        encryption=options["encryption"],
    )
    library = Library(
        session,
        options["state-dir"],
        settings,
        reactor,
        shutdown=reactor.stop,
        addDefaults={
            "maxPeers": options["max-peers"],
            "pieceOrder": options["piece-order"],
            "uploadSlots": options["upload-slots"],
            "resumeInterval": options["resume-interval"],
        },
        collectorPause=collectorPause,
    )
    library.load()
    # The command line's settings win over what the state dir kept.
    changes = commandLineSettings(options)
    if changes:
        try:
            library.setSettings(changes)
        except ControlError as e:
            raise SystemExit(f"btorrent: {e}") from None
    for source, info in options["metainfos"]:
        if info.infoHash in session.torrents:
            continue
        addOptions = AddOptions(downloadDir=options["download-dir"])
        if isinstance(info, Magnet):
            library.addAtStart(source, addOptions)
            continue
        with open(source, "rb") as f:
            library.addAtStart(f.read(), addOptions)
    site = None
    daemon = Daemon(session, library)
    session.setServiceParent(daemon)
    library.setServiceParent(daemon)
    if options["rpc-port"]:
        from btorrent.control.metrics import makeMetricsResource
        from btorrent.control.rpc import makeRPCSite
        from btorrent.control.rpcmethods import readTorrentFile
        from btorrent.control.web import installPages

        site = makeRPCSite(
            library,
            reactor,
            readFile=lambda path, maxSize: session.runInThread(
                readTorrentFile, path, maxSize
            ),
            whitelist=_split(options["rpc-whitelist"]),
            hostWhitelist=_split(options["rpc-host-whitelist"]),
            username=options["rpc-username"],
            passwordHash=options["rpc-password-hash"],
            configDir=options["state-dir"],
        )
        installPages(site.resource, options["web-home"])
        site.resource.putChild(b"metrics", makeMetricsResource(library))
        daemon.site = site
        port = listenOrExit(
            lambda: reactor.listenTCP(
                options["rpc-port"], site, interface=options["rpc-bind"]
            ),
            f"btorrent: cannot listen on TCP port {options['rpc-port']} of "
            f"{options['rpc-bind']} for the web page and RPC",
        )
        ListeningPort(port).setServiceParent(daemon)
    if options["watch-dir"] is not None:
        from btorrent.daemon.watchdir import WatchDir

        WatchDir(
            options["watch-dir"],
            library.addTorrent,
            session.heartbeat,
            session.runInThread,
            reactor,
            AddOptions(downloadDir=options["download-dir"]),
        ).setServiceParent(daemon)
    ReannounceOnSignal(session, reactor).setServiceParent(daemon)
    return daemon


def makeService(options: Options):
    """
    Build the daemon on the global reactor: the session listening on
    C{--port} (or the next free port), the torrents of the state dir and of
    C{--torrent}, the web page and RPC on C{--rpc-port}; C{SIGUSR1} makes
    every torrent announce now.

    Debug lines are logged only with C{--debug}.

    @param options: the parsed L{Options}.
    @return: the L{Daemon}.
    """
    from twisted.internet import reactor
    from twisted.logger import LogLevel

    from btorrent.util import logs
    from btorrent.util.gcpause import CollectorPause

    logs.setLevel(LogLevel.debug if options["debug"] else LogLevel.info)
    return buildDaemon(options, reactor, collectorPause=CollectorPause())
