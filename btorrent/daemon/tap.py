"""
The composition root of C{twistd btorrent}: command-line options and
L{makeService}.  This is the only module (with L{btorrent.cli.main}) that uses the
global reactor.
"""

from __future__ import annotations

import os
import signal

from twisted.application.service import Service
from twisted.python import usage

from btorrent.codec import metainfo
from btorrent.codec.magnet import Magnet, MagnetError, isMagnet, parseMagnet


def defaultStateDir() -> str:
    """
    The default directory for fast-resume data: C{$XDG_DATA_HOME/btorrent},
    usually C{~/.local/share/btorrent}.
    """
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "btorrent")


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


class Options(usage.Options):
    """
    Options of C{twistd btorrent}.
    """

    synopsis = "--torrent FILE [--torrent FILE ...] [options]"
    longdesc = (
        "Download and seed BitTorrent torrents.  Every --torrent is served "
        "from one listening port."
    )

    optParameters = [
        ["download-dir", "d", ".", "Directory the downloaded files go into."],
        [
            "interface",
            "i",
            "",
            "Address to listen on and send from (default: all addresses).",
        ],
        [
            "port",
            "p",
            6881,
            "TCP port for incoming peer connections.",
            _integer("--port"),
        ],
        ["state-dir", "s", None, "Directory for fast-resume data."],
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
    ]
    optFlags = [
        ["debug", None, "Log every peer message."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["torrents"] = []

    def opt_torrent(self, path: str) -> None:
        """
        A .torrent file or a magnet link to download and seed (may be given
        several times).
        """
        self["torrents"].append(path)

    opt_t = opt_torrent

    def postOptions(self) -> None:
        """
        Check the options and load every torrent.

        @raise usage.UsageError: naming the problem.
        """
        if not self["torrents"]:
            raise usage.UsageError("--torrent is required")
        loaded = []
        for path in self["torrents"]:
            if isMagnet(path):
                try:
                    loaded.append(parseMagnet(path))
                except MagnetError as e:
                    raise usage.UsageError(f"invalid magnet link: {e}") from None
                continue
            try:
                loaded.append(metainfo.loadFile(path))
            except OSError as e:
                raise usage.UsageError(
                    f"cannot read torrent {path}: {e.strerror or e}"
                ) from None
            except metainfo.MetainfoError as e:
                raise usage.UsageError(f"invalid torrent {path}: {e}") from None
        self["metainfos"] = loaded
        if not (0 <= self["port"] <= 65535):
            raise usage.UsageError(f"--port must be 0..65535, not {self['port']}")
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
        if self["state-dir"] is None:
            self["state-dir"] = defaultStateDir()
        self["download-dir"] = os.path.abspath(self["download-dir"])


class ReannounceOnSignal(Service):
    """
    While running, C{SIGUSR1} makes every torrent of the session announce
    now (L{btorrent.daemon.session.Session.reannounce}): C{kill -USR1 PID} is the
    daemon's "ask the trackers for more peers".
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


def makeService(options: Options):
    """
    Build the daemon: one L{btorrent.daemon.session.Session} listening on
    C{--port} (or the next free port), with one torrent per C{--torrent},
    on the global reactor; C{SIGUSR1} makes every torrent announce now.

    @param options: the parsed L{Options}.
    @return: the L{btorrent.daemon.session.Session}.
    """
    from twisted.internet import reactor

    from btorrent.daemon.session import Session

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
        heartbeatInterval=min(1.0, options["resume-interval"]),
    )
    for info in options["metainfos"]:
        add = session.addMagnet if isinstance(info, Magnet) else session.addTorrent
        add(
            info,
            options["download-dir"],
            maxPeers=options["max-peers"],
            pieceOrder=options["piece-order"],
            uploadSlots=options["upload-slots"],
            resumeInterval=options["resume-interval"],
        )
    ReannounceOnSignal(session, reactor).setServiceParent(session)
    return session
