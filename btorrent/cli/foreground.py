"""
C{btorrent download}: the daemon's engine in the foreground, for one
torrent, with a live progress bar on stderr.

Exit codes: 0 once every piece is verified and written (and the trackers
heard C{stopped}), or after an interrupt with C{--seed}; 1 for an error
(a bad torrent, a port or directory we cannot use); 130 when interrupted
before the download completed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, List, Optional, Sequence, Tuple

from twisted.internet import defer, task
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from btorrent.cli.remoteargs import parseFileList, parseRate, parseRatio
from btorrent.codec import metainfo

__all__ = ["addDownloadParser", "download", "main", "parsePeer", "runDownload"]

#: Exit code after an interrupt before completion (128 + SIGINT).
INTERRUPTED = 130

#: Seconds between two refreshes of the progress bar.
REFRESH = 0.25


def parsePeer(text: str) -> Tuple[str, int]:
    """
    Parse C{HOST:PORT} (C{[v6]:PORT} for IPv6).

    @raise argparse.ArgumentTypeError: for anything else.
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"invalid peer {text!r} (HOST:PORT)")
    return host, int(port)


def addDownloadParser(subparsers) -> argparse.ArgumentParser:
    """
    Declare C{btorrent download} on an C{argparse} subparsers object.

    @return: the subparser.
    """
    parser = subparsers.add_parser(
        "download", help="download a torrent in the foreground, with progress"
    )
    parser.add_argument("torrent", metavar="X.torrent")
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=".",
        help="directory the files go into (default: the current one)",
    )
    parser.add_argument(
        "-p",
        "--port",
        type=int,
        default=6881,
        help="port for incoming peers (default 6881; the next ones if taken; "
        "0 for any)",
    )
    parser.add_argument(
        "--interface",
        metavar="ADDRESS",
        default="",
        help="address to listen on (default: all)",
    )
    parser.add_argument(
        "--piece-order",
        choices=("random", "rarest"),
        default="random",
        help="which pieces first (default random)",
    )
    parser.add_argument(
        "--seed", action="store_true", help="keep seeding once complete, until ^C"
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=None,
        help="directory for fast-resume data (default: none kept)",
    )
    parser.add_argument(
        "--max-peers", type=int, default=50, help="peers at most (default 50)"
    )
    parser.add_argument(
        "--upload-slots",
        type=int,
        default=4,
        help="peers we upload to at once, besides one optimistic (default 4)",
    )
    parser.add_argument(
        "--peer",
        metavar="HOST:PORT",
        type=parsePeer,
        action="append",
        default=[],
        help="a peer to connect to, besides the trackers' (repeatable)",
    )
    parser.add_argument(
        "--no-dht", action="store_true", help="no DHT (trackerless peers)"
    )
    parser.add_argument(
        "--dht-bootstrap",
        metavar="HOST:PORT",
        type=parsePeer,
        action="append",
        default=[],
        help="a DHT node to join through (repeatable; default: the public " "routers)",
    )
    parser.add_argument(
        "--down-limit",
        metavar="RATE",
        type=parseRate,
        default=None,
        help="download limit in bytes/s: 500k, 2M (k = 1000) (default: none)",
    )
    parser.add_argument(
        "--up-limit",
        metavar="RATE",
        type=parseRate,
        default=None,
        help="upload limit in bytes/s: 500k, 2M (k = 1000) (default: none)",
    )
    parser.add_argument(
        "--skip",
        metavar="N,...",
        type=parseFileList,
        default=None,
        help="do not download these files (numbers as btorrent info shows "
        "them: 0,2,5-7)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="download the pieces in order (to watch while downloading)",
    )
    parser.add_argument(
        "--ratio",
        metavar="R",
        type=parseRatio,
        default=None,
        help="once complete, seed until this upload ratio, then exit",
    )
    parser.add_argument(
        "--encryption",
        choices=("tolerated", "preferred", "required"),
        default="preferred",
        help="message stream encryption (MSE/PE) with peers: tolerated "
        "(dial in plaintext, accept both), preferred (dial encrypted, "
        "plaintext if the peer cannot), required (encrypted only); "
        "default preferred",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar, errors only"
    )
    parser.add_argument("--debug", action="store_true", help="log every peer message")
    parser.set_defaults(func=runDownload)
    return parser


class _ProgressBar:
    """
    A rich progress bar on C{err}: percent, rate, peers, time left.
    """

    def __init__(self, err: IO[str], name: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TextColumn("{task.fields[peers]} peers"),
            TimeRemainingColumn(),
            console=Console(file=err),
            transient=False,
        )
        self.task = self.progress.add_task(name, total=total or 1, peers=0)
        self.progress.start()

    def update(self, torrent) -> None:
        checking = torrent.checking
        if checking is not None:
            done, total = checking
            self.progress.update(
                self.task,
                description=f"checking {done}/{total}",
                completed=0,
                peers=0,
            )
            return
        p = torrent.progress()
        self.progress.update(
            self.task,
            description=torrent.metainfo.name,
            total=p.totalBytes or 1,
            completed=p.verifiedBytes if p.totalBytes else 1,
            peers=p.peers,
        )

    def stop(self) -> None:
        self.progress.stop()


def _startLogging(err: IO[str], debug: bool) -> None:
    level = LogLevel.debug if debug else LogLevel.warn
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(err), [predicate])],
        redirectStandardIO=False,
    )


def download(reactor, args: argparse.Namespace, info, err: IO[str]) -> defer.Deferred:
    """
    Download C{info} as C{args} say, on C{reactor}.

    @return: a L{Deferred} firing with the exit code.
    """
    from twisted.internet.error import CannotListenError

    from btorrent.daemon.session import Session
    from btorrent.dht.protocol import bootstrapNodes

    result = defer.Deferred()
    session = Session(
        reactor,
        port=args.port,
        interface=args.interface,
        stateDir=args.state_dir,
        debug=args.debug,
        dhtBootstrap=bootstrapNodes(args.no_dht, args.dht_bootstrap),
        encryption=args.encryption,
    )
    try:
        torrent = session.addTorrent(
            info,
            os.path.abspath(args.output),
            maxPeers=args.max_peers,
            pieceOrder=args.piece_order,
            peers=args.peer,
            uploadSlots=args.upload_slots,
        )
        _applyControls(torrent, args)
        session.startService()
    except CannotListenError as e:
        err.write(f"btorrent download: error: cannot listen on port {args.port}: {e}\n")
        return defer.succeed(1)
    except Exception as e:
        err.write(f"btorrent download: error: {e}\n")
        return defer.succeed(1)

    bar: Optional[_ProgressBar] = None
    refresh: Optional[task.LoopingCall] = None
    if not args.quiet:
        bar = _ProgressBar(err, info.name, info.totalLength)
        refresh = task.LoopingCall(bar.update, torrent)
        refresh.clock = reactor
        refresh.start(REFRESH)
    state = {"stopping": None}

    def finish(code: int, message: Optional[str] = None) -> defer.Deferred:
        """
        Stop everything (once), then fire the result with C{code}.
        """
        if state["stopping"] is not None:
            return state["stopping"]
        d = state["stopping"] = defer.maybeDeferred(session.stopService)

        def done(outcome):
            if refresh is not None and refresh.running:
                refresh.stop()
            if bar is not None:
                bar.update(torrent)
                bar.stop()
            if message:
                err.write(message + "\n")
            if isinstance(outcome, Failure):
                err.write(
                    f"btorrent download: error while stopping: "
                    f"{outcome.getErrorMessage()}\n"
                )
                code2 = code or 1
            else:
                code2 = code
            if not result.called:
                result.callback(code2)

        d.addBoth(done)
        return d

    seedingToRatio = args.ratio is not None and args.ratio[0] == 1

    def completed(_) -> None:
        if args.seed or seedingToRatio:
            return
        finish(0, f"{info.name}: download complete")

    def seedLimitReached() -> None:
        finish(0, f"{info.name}: seeding done, ratio {args.ratio[1]:g} reached")

    if seedingToRatio:
        torrent.events.listen("seedLimitReached", seedLimitReached)

    def startFailed(failure) -> None:
        finish(1, f"btorrent download: error: {failure.getErrorMessage()}")

    torrent.completed.addCallback(completed)
    torrent.ready.addErrback(startFailed)

    def interrupted() -> defer.Deferred:
        if state["stopping"] is not None:
            return state["stopping"]
        if torrent.completed.called:
            return finish(0, f"{info.name}: stopped seeding")
        return finish(INTERRUPTED, "btorrent download: interrupted")

    reactor.addSystemEventTrigger("before", "shutdown", interrupted)
    return result


def _applyControls(torrent, args: argparse.Namespace) -> None:
    """
    Give the torrent the transfer controls asked for (C{--down-limit},
    C{--up-limit}, C{--skip}, C{--sequential}, C{--ratio}).

    @raise btorrent.control.api.ControlError: for a bad value.
    """
    if (
        args.down_limit is None
        and args.up_limit is None
        and args.skip is None
        and not args.sequential
        and args.ratio is None
    ):
        return
    controls = torrent.controls
    limits = {}
    if args.down_limit is not None:
        limits.update(downloadLimit=args.down_limit * 1000, downloadLimited=True)
    if args.up_limit is not None:
        limits.update(uploadLimit=args.up_limit * 1000, uploadLimited=True)
    if limits:
        controls.setLimits(**limits)
    if args.skip is not None:
        count = len(torrent.metainfo.files)
        controls.setFileWanted(args.skip or range(count), False)
    if args.sequential:
        controls.setSequential(True)
    if args.ratio is not None:
        mode, ratio = args.ratio
        changes = {"seedRatioMode": mode}
        if ratio is not None:
            changes["seedRatioLimit"] = ratio
        controls.setSeedLimits(**changes)


def runDownload(
    args: argparse.Namespace,
    out: Optional[IO[str]] = None,
    err: Optional[IO[str]] = None,
) -> int:
    """
    Run C{btorrent download} with parsed arguments: load the torrent, run
    the reactor until the download is done (or interrupted).

    @return: the exit code.
    """
    err = sys.stderr if err is None else err
    try:
        info = metainfo.loadFile(args.torrent)
    except OSError as e:
        err.write(
            f"btorrent download: error: cannot read {args.torrent}: "
            f"{e.strerror or e}\n"
        )
        return 1
    except metainfo.MetainfoError as e:
        err.write(f"btorrent download: error: invalid torrent {args.torrent}: {e}\n")
        return 1
    if not 0 <= args.port <= 65535:
        err.write("btorrent download: error: --port must be 0..65535\n")
        return 1
    if args.max_peers < 1:
        err.write("btorrent download: error: --max-peers must be at least 1\n")
        return 1
    if not 1 <= args.upload_slots <= 1000:
        err.write("btorrent download: error: --upload-slots must be 1..1000\n")
        return 1
    _startLogging(err, args.debug)
    codes: List[int] = []

    def main(reactor):
        d = download(reactor, args, info, err)
        d.addCallback(codes.append)
        return d

    try:
        task.react(main)
    except SystemExit as e:
        if not codes:
            return e.code if isinstance(e.code, int) and e.code else 1
    return codes[0] if codes else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    C{python -m btorrent.cli.foreground X.torrent ...}: the same as
    C{btorrent download}.
    """
    parser = argparse.ArgumentParser(prog="btorrent")
    subparsers = parser.add_subparsers(dest="command")
    addDownloadParser(subparsers)
    args = parser.parse_args(["download", *(sys.argv[1:] if argv is None else argv)])
    return runDownload(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
