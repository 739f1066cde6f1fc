"""
The C{btorrent} command.

Local commands: C{create} (write a .torrent), C{info X.torrent} (describe
one), C{download} (the engine in the foreground, L{btorrent.cli.foreground}).
Remote commands, driving a running daemon (btorrent's or a
transmission-daemon) over the Transmission RPC (L{btorrent.cli.remote}):
C{add}, C{list}, C{info ID}, C{start}, C{stop}, C{verify}, C{remove},
C{set}, C{stats}, C{watch}.  C{info} is local when its argument is an
existing file or cannot be a torrent ID, remote otherwise (or when C{--rpc}
or C{--auth} is given).

Each subcommand is a function C{(args, out, err) -> int} registered in
L{COMMANDS}; its arguments are declared in L{_buildParser} (the remote
ones in L{btorrent.cli.remoteargs}).  Errors the user can fix (a bad path,
a bad torrent, a daemon that is not running) print one line to C{err} and
give a non-zero exit code, never a traceback; a bad argument prints its
one-line error first, then the usage.

Option names follow one scheme: C{-d/--download-dir DIR} wherever the
directory the data goes into is meant (C{download}, C{add}, like the
daemon's), C{-o/--output FILE} only for a file written (C{create}).
C{download -o DIR}, the old spelling, is still accepted (hidden).

Imports are lazy per subcommand: C{btorrent info X.torrent} loads neither
Twisted's reactor nor the download engine, C{create} and C{info} no
C{twisted.internet} at all.  This module is the only one of the command
line that runs the reactor (C{task.react}), and only for C{download} and the
remote commands.

C{btorrent create} refuses a C{-t} that is not an C{http://}, C{https://}
or C{udp://} URL with a host (L{checkTrackerURL}), warns about each special
file (FIFO, socket, device) it leaves out of a tree, refuses to overwrite an
existing output file unless C{--force} is given, and writes through a
temporary file renamed into place (L{btorrent.engine.storage.writeFileAtomically}),
so an interrupted run never leaves a truncated torrent behind.  C{btorrent info} shows text from the
torrent through L{printable}: a hostile name cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import IO, Callable, Dict, List, Optional, Sequence
from urllib.parse import urlsplit

from btorrent import __version__
from btorrent.cli.remoteargs import (
    REMOTE_COMMANDS,
    addConnectionOptions,
    addRemoteCommands,
    looksLikeTorrentId,
    parseTorrentId,
)
from btorrent.cli.text import humanSize, printable
from btorrent.codec import metainfo

__all__ = [
    "COMMANDS",
    "checkTrackerURL",
    "humanSize",
    "main",
    "parseSize",
    "printable",
]

#: Inputs at least this big get a progress bar (when stderr is a terminal).
PROGRESS_THRESHOLD = 64 * 1024 * 1024

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parseSize(text: str) -> int:
    """
    Parse a size such as C{262144}, C{256K}, C{256KiB}, C{1M} or C{1MB}
    (binary units).

    @raise argparse.ArgumentTypeError: for anything else.
    """
    m = _SIZE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r} (examples: 262144, 256K, 1M)"
        )
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


class _Failure(Exception):
    """
    A user-facing error: printed as one line, exit code 1.
    """


def _withProgress(err: IO[str], total: int, run: Callable[[Callable], bytes]) -> bytes:
    """
    Run C{run(progress)}, showing a rich progress bar on C{err} for big
    inputs when C{err} is a terminal.
    """
    isTTY = getattr(err, "isatty", lambda: False)()
    if total < PROGRESS_THRESHOLD or not isTTY:
        return run(None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(file=err)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("hashing", total=total)
        return run(lambda done, _total: bar.update(task, completed=done))


def _inputSize(path: str) -> int:
    """
    The number of bytes below C{path} (approximate; for the progress bar).
    """
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for directory, _, names in os.walk(path):
        for name in names:
            full = os.path.join(directory, name)
            if not os.path.islink(full) and os.path.isfile(full):
                total += os.path.getsize(full)
    return total


#: The tracker URL schemes a torrent can usefully carry (the ones
#: L{btorrent.tracker.announcer} and other clients announce to).
TRACKER_SCHEMES = ("http", "https", "udp")


def checkTrackerURL(url: str) -> Optional[str]:
    """
    What is wrong with C{url} as a tracker URL for C{btorrent create}, or
    C{None} if nothing is: it must be C{http://}, C{https://} or C{udp://}
    with a host, a valid port (required for C{udp://}, which has no default
    one) and no spaces or control characters.
    """
    if not url:
        return "empty tracker URL (an empty -t, or a stray comma)"
    if not url.isprintable() or any(c.isspace() for c in url):
        return f"tracker URL {url!r} contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"invalid tracker URL {url!r}: {e}"
    if parts.scheme.lower() not in TRACKER_SCHEMES:
        return f"tracker URL {url!r} is not http://, https:// or udp://"
    if not parts.hostname:
        return f"tracker URL {url!r} has no host"
    if port == 0:
        return f"tracker URL {url!r} has port 0"
    if parts.scheme.lower() == "udp" and port is None:
        return f"UDP tracker URL {url!r} has no port"
    return None


def _trackerTiers(values: Sequence[str]) -> List[List[str]]:
    """
    The tiers of C{-t} values (one tier per option, URLs comma-separated).

    @raise _Failure: for an empty value or item, or an invalid URL.
    """
    tiers = []
    for value in values:
        tier = [u.strip() for u in value.split(",")]
        for url in tier:
            problem = checkTrackerURL(url)
            if problem is not None:
                raise _Failure(f"-t {value!r}: {problem}")
        tiers.append(tier)
    return tiers


def _create(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent create PATH -t URL ...}: write a .torrent for PATH.
    """
    source = args.path
    tiers = _trackerTiers(args.tracker)
    if not os.path.exists(source):
        raise _Failure(f"{source}: no such file or directory")
    name = os.path.basename(os.path.abspath(source))
    output = args.output or (name + ".torrent")
    if os.path.exists(output) and not args.force:
        raise _Failure(f"{output} already exists (use --force to overwrite)")

    def warn(text: str) -> None:
        err.write(printable(f"btorrent create: warning: {text}") + "\n")

    try:
        data = _withProgress(
            err,
            _inputSize(source),
            lambda progress: metainfo.create(
                source,
                tiers,
                pieceLength=args.piece_length,
                private=args.private,
                comment=args.comment,
                progress=progress,
                warn=warn,
            ),
        )
    except OSError as e:
        raise _Failure(f"{e.filename or source}: {e.strerror or e}") from None
    info = metainfo.load(data)
    from btorrent.engine.storage import writeFileAtomically

    try:
        writeFileAtomically(output, data)
    except OSError as e:
        raise _Failure(f"cannot write {output}: {e.strerror or e}") from None
    out.write(
        f"{output}: {info.infoHash.hex()} ({humanSize(info.totalLength)}, "
        f"{info.pieceCount} pieces of {humanSize(info.pieceLength)})\n"
    )
    return 0


#: The most directory levels C{btorrent info} indents; deeper components
#: are shown on the file's line.  (Indenting every level of a hostile path
#: of a million components would print terabytes.)
TREE_DEPTH = 16


def _fileTree(info: metainfo.Metainfo) -> List[str]:
    """
    The files of a torrent as an indented tree, one line per file or
    directory (padding files left out).
    """
    if not info.multiFile:
        f = info.files[0]
        return [f"{metainfo.displayPath(f.path)} ({humanSize(f.length)})"]
    lines = [metainfo.displayPath([info.name]) + "/"]
    shown: set = set()
    for f in info.files:
        if f.padding:
            continue
        # Directories deeper than TREE_DEPTH go on the file's line.
        dirs = min(len(f.path) - 1, TREE_DEPTH)
        for depth in range(1, dirs + 1):
            prefix = f.path[:depth]
            if prefix not in shown:
                shown.add(prefix)
                lines.append("  " * depth + metainfo.displayPath([prefix[-1]]) + "/")
        lines.append(
            "  " * (dirs + 1)
            + f"{metainfo.displayPath(f.path[dirs:])} ({humanSize(f.length)})"
        )
    return lines


def _infoJSON(info: metainfo.Metainfo) -> dict:
    """
    The C{--json} form of C{btorrent info}.
    """
    return {
        "info_hash": info.infoHash.hex(),
        "name": metainfo.displayPath([info.name]),
        "total_length": info.totalLength,
        "piece_length": info.pieceLength,
        "piece_count": info.pieceCount,
        "multi_file": info.multiFile,
        "private": info.private,
        "files": [
            {
                "path": [metainfo.displayPath([c]) for c in f.path],
                "length": f.length,
                "offset": f.offset,
                "padding": f.padding,
            }
            for f in info.files
        ],
        "trackers": [list(tier) for tier in info.trackers],
        "url_list": list(info.urlList),
        "comment": info.comment,
        "creation_date": info.creationDate,
        "created_by": info.createdBy,
    }


def _info(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent info X.torrent}: describe a torrent; C{btorrent info ID...}:
    ask the daemon about some of its torrents (L{_isLocalInfo} decides).
    """
    if not _isLocalInfo(args):
        try:
            args.ids = [parseTorrentId(target) for target in args.targets]
        except argparse.ArgumentTypeError as e:
            raise _Failure(str(e)) from None
        return _remote(args, out, err)
    if len(args.targets) > 1:
        raise _Failure("give one .torrent file, or torrent IDs to ask the daemon about")
    args.torrent = args.targets[0]
    try:
        info = metainfo.loadFile(args.torrent)
    except OSError as e:
        raise _Failure(f"{args.torrent}: {e.strerror or e}") from None
    except metainfo.MetainfoError as e:
        raise _Failure(f"{args.torrent}: invalid torrent: {e}") from None
    if args.json:
        out.write(json.dumps(_infoJSON(info)) + "\n")
        return 0
    lines = [
        f"name:         {metainfo.displayPath([info.name])}",
        f"info-hash:    {info.infoHash.hex()}",
        f"size:         {humanSize(info.totalLength)} ({info.totalLength} bytes)",
        f"pieces:       {info.pieceCount} x {humanSize(info.pieceLength)}"
        f" ({info.pieceLength} bytes)",
        f"private:      {'yes' if info.private else 'no'}",
    ]
    if info.comment:
        lines.append(f"comment:      {info.comment}")
    if info.createdBy:
        lines.append(f"created by:   {info.createdBy}")
    if info.creationDate is not None:
        lines.append(f"created:      {info.creationDate}")
    lines.append("trackers:" if info.trackers else "trackers:     none")
    for i, tier in enumerate(info.trackers):
        lines.append(f"  tier {i}: {' '.join(tier)}")
    if info.urlList:
        lines.append("web seeds:")
        lines.extend(f"  {u}" for u in info.urlList)
    lines.append("files:")
    lines.extend("  " + line for line in _fileTree(info))
    out.write("\n".join(printable(line) for line in lines) + "\n")
    return 0


def _isLocalInfo(args: argparse.Namespace) -> bool:
    """
    Whether C{btorrent info} describes a local .torrent: without C{--rpc}
    or C{--auth}, when its one argument is an existing file or cannot be a
    torrent ID (a number, a hex info-hash prefix, C{all}).
    """
    if args.rpc is not None or args.auth is not None:
        return False
    return any(
        os.path.lexists(target) or not looksLikeTorrentId(target)
        for target in args.targets
    )


def _download(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent download}: the engine in the foreground (L{btorrent.cli.foreground}).
    """
    from btorrent.cli import foreground

    return foreground.runDownload(args, out, err)


def _remote(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """
    A remote command (L{btorrent.cli.remote}), on the reactor until it is
    done or interrupted.
    """
    from twisted.internet import defer, task

    from btorrent.cli import remote

    outcome: List[int] = []

    def bug(failure) -> None:
        # Not an error the user can fix (those are handled in remote.run):
        # show it whole.
        err.write(f"btorrent {args.command}: internal error\n")
        failure.printTraceback(file=err)
        outcome.append(1)

    def start(reactor):
        d = defer.ensureDeferred(remote.run(reactor, args, out, err))
        return d.addCallbacks(outcome.append, bug)

    try:
        task.react(start)
    except SystemExit:
        pass
    if outcome:
        return outcome[0]
    err.write(f"btorrent {args.command}: interrupted\n")
    return remote.INTERRUPTED


#: Subcommand name → function C{(args, out, err) -> exit code}.
COMMANDS: Dict[str, Callable[[argparse.Namespace, IO[str], IO[str]], int]] = {
    "create": _create,
    "info": _info,
    "download": _download,
    **{name: _remote for name in REMOTE_COMMANDS},
}


class _Parser(argparse.ArgumentParser):
    """
    An argument parser whose errors come first: the one-line error, then
    the usage (argparse prints them the other way round).
    """

    def error(self, message: str):
        """
        Print C{PROG: error: MESSAGE}, then the usage, and exit 2.
        """
        self.exit(
            2,
            f"{self.prog}: error: {message}\n{self.format_usage()}"
            f"(see {self.prog} --help)\n",
        )


#: The help of C{btorrent download} (declared in L{btorrent.cli.foreground}).
_DOWNLOAD_HELP = "download a torrent in the foreground, with progress"


def _buildParser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """
    The argument parser: one subparser per entry of L{COMMANDS}.

    @param command: the subcommand about to run, if known: the arguments of
        C{download}, whose declaration imports the engine, are declared
        only when it is C{download} or C{None}.
    """
    parser = _Parser(
        prog="btorrent",
        description="Create, inspect and download BitTorrent files, and drive "
        "a running daemon (btorrent's or Transmission's) over its RPC.",
        epilog="Remote commands talk to --rpc URL (default $BTORRENT_RPC, else "
        "http://127.0.0.1:9091/transmission/rpc) with --auth USER:PASSWORD "
        "(default $BTORRENT_AUTH). 'btorrent COMMAND --help' shows a "
        "command's options.",
    )
    parser.add_argument(
        "--version", action="version", version=f"btorrent {__version__}"
    )
    addConnectionOptions(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    create = sub.add_parser("create", help="create a .torrent for a file or directory")
    create.add_argument("path", metavar="PATH", help="file or directory to share")
    create.add_argument(
        "-t",
        "--tracker",
        metavar="URL",
        action="append",
        required=True,
        help="tracker URL; repeat for more tiers, comma-separate for one tier",
    )
    create.add_argument(
        "--piece-length",
        metavar="SIZE",
        type=parseSize,
        default=None,
        help="piece length, e.g. 256K, 1M or 262144 (default: automatic)",
    )
    create.add_argument("--private", action="store_true", help="set the private flag")
    create.add_argument("--comment", metavar="TEXT", help="a comment")
    create.add_argument(
        "-o", "--output", metavar="OUT.torrent", help="output file (NAME.torrent)"
    )
    create.add_argument(
        "-f", "--force", action="store_true", help="overwrite the output file"
    )

    info = sub.add_parser(
        "info",
        help="describe a .torrent file, or torrents of the daemon",
        description="Describe a .torrent file (an existing file, or an argument "
        "that cannot be a torrent ID), or ask the daemon about torrents: "
        "numbers, info-hash prefixes or all.",
    )
    info.add_argument("targets", nargs="+", metavar="X.torrent|ID")
    info.add_argument(
        "--json",
        action="store_true",
        help="print JSON: one object for a .torrent, an array of the daemon's "
        "torrents",
    )
    addConnectionOptions(info, argparse.SUPPRESS)

    if command in (None, "download"):
        from btorrent.cli.foreground import addDownloadParser

        _renameDownloadDir(addDownloadParser(sub))
    else:
        sub.add_parser("download", help=_DOWNLOAD_HELP)
    addRemoteCommands(sub)
    return parser


def _renameDownloadDir(download: argparse.ArgumentParser) -> None:
    """
    Give C{btorrent download} the option name every other command uses for
    the data's directory, C{-d/--download-dir}; C{-o/--output DIR}, its old
    name, stays accepted but hidden.
    """
    download.add_argument(
        "-d",
        "--download-dir",
        dest="output",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="directory the files go into (default: the current one)",
    )
    # argparse has no public way to hide an option once declared (the
    # declaration is btorrent.cli.foreground's).
    download._option_string_actions["--output"].help = argparse.SUPPRESS


def _commandWord(argv: Sequence[str]) -> Optional[str]:
    """
    The subcommand in C{argv}: its first word that is neither an option nor
    the value of C{--rpc} or C{--auth}.
    """
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word in ("--rpc", "--auth"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(
    argv: Optional[Sequence[str]] = None,
    out: Optional[IO[str]] = None,
    err: Optional[IO[str]] = None,
) -> int:
    """
    Run the C{btorrent} command.

    @param argv: the arguments (without the program name); C{sys.argv[1:]}
        if C{None}.
    @param out: where results go (C{sys.stdout}).
    @param err: where errors and progress go (C{sys.stderr}).
    @return: the exit code.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _buildParser(_commandWord(argv) or "")
    try:
        # argparse prints usage errors to sys.stderr itself.
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            args = parser.parse_args(argv)
        finally:
            sys.stdout, sys.stderr = saved
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        return COMMANDS[args.command](args, out, err)
    except (_Failure, metainfo.MetainfoError) as e:
        err.write(f"btorrent {args.command}: error: {e}\n")
        return 1
    except KeyboardInterrupt:
        err.write(f"btorrent {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
