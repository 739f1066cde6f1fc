"""
The command-line arguments of C{btorrent}'s remote commands (C{add},
C{list}, C{info ID}, C{start}, C{stop}, C{verify}, C{remove}, C{set},
C{stats}, C{watch}): their parsers and the parsing of IDs, rates, ratios,
file lists, the RPC URL and credentials.

Pure and quick to import (no Twisted, no treq): C{btorrent --help} and
C{btorrent info X.torrent} import it; L{btorrent.cli.remote} runs the
commands.
"""

from __future__ import annotations

import argparse
import re
from typing import List, Optional, Tuple, Union
from urllib.parse import urlsplit

from btorrent.util.units import UNLIMITED, parseBytesPerSecond

__all__ = [
    "ALL",
    "DEFAULT_URL",
    "REMOTE_COMMANDS",
    "addConnectionOptions",
    "addRemoteCommands",
    "looksLikeTorrentId",
    "normalizeURL",
    "parseAuth",
    "parseFileList",
    "parseRate",
    "parseRatio",
    "parseTorrentId",
]

#: Where Transmission (and btorrent) serve the RPC by default.
DEFAULT_URL = "http://127.0.0.1:9091/transmission/rpc"


class _All:
    """
    The C{all} torrent ID: every torrent.
    """

    def __repr__(self) -> str:
        return "ALL"


#: The value of L{parseTorrentId} for C{all}.
ALL = _All()

TorrentId = Union[int, str, _All]

_HEX = re.compile(r"^[0-9a-fA-F]{1,40}$")


def parseTorrentId(text: str) -> TorrentId:
    """
    A torrent ID from the command line: C{all}, a number (digits, fewer
    than 40), or an info-hash prefix (hex digits; returned lowercase).

    @raise argparse.ArgumentTypeError: for anything else.
    """
    if text.lower() == "all":
        return ALL
    if text.isascii() and text.isdigit() and len(text) < 40:
        return int(text)
    if _HEX.match(text):
        return text.lower()
    raise argparse.ArgumentTypeError(
        f"invalid torrent ID {text!r} (a number, an info-hash prefix or all)"
    )


def looksLikeTorrentId(text: str) -> bool:
    """
    Whether C{text} reads as a torrent ID (see L{parseTorrentId}).
    """
    try:
        parseTorrentId(text)
    except argparse.ArgumentTypeError:
        return False
    return True


def parseRate(text: str) -> Optional[int]:
    """
    A rate limit given in bytes per second (C{500k}, C{2M}, C{1.5MB/s},
    C{250000}; decimal units, k = 1000) as the whole kB/s the RPC takes:
    rounded, and at least 1 for a rate above zero.  C{0} is a limit of
    zero; C{unlimited} (or C{none}, C{off}) is C{None}: no limit.

    @raise argparse.ArgumentTypeError: for anything else.
    """
    try:
        bytesPerSecond = parseBytesPerSecond(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if bytesPerSecond is None:
        return None
    kB = round(bytesPerSecond / 1000)
    return max(kB, 1) if bytesPerSecond > 0 else 0


def parseRatio(text: str) -> Tuple[int, Optional[float]]:
    """
    A seed ratio limit: a number (Transmission's C{seedRatioMode} 1 with
    that limit), C{unlimited} (mode 2: seed for ever) or C{global} (mode 0:
    the session's limit).

    @return: C{(seedRatioMode, seedRatioLimit or None)}.
    @raise argparse.ArgumentTypeError: for anything else.
    """
    word = text.strip().lower()
    if word in UNLIMITED:
        return 2, None
    if word in ("global", "default", "session"):
        return 0, None
    try:
        ratio = float(word)
    except ValueError:
        ratio = -1.0
    if not 0 <= ratio < 1e6:
        raise argparse.ArgumentTypeError(
            f"invalid ratio {text!r} (a number such as 2.0, unlimited or global)"
        )
    return 1, ratio


#: The most file numbers one C{--get} or C{--skip} may name.
MAX_FILE_NUMBERS = 1_000_000


def parseFileList(text: str) -> List[int]:
    """
    File numbers as C{btorrent info ID} shows them: C{0,2,5-7}, or C{all}
    (the empty list, which the RPC reads as every file).

    @raise argparse.ArgumentTypeError: for anything else.
    """
    if text.strip().lower() == "all":
        return []
    numbers: List[int] = []
    for item in text.split(","):
        first, dash, last = item.strip().partition("-")
        if not (first.isascii() and first.isdigit()) or (
            dash and not (last.isascii() and last.isdigit())
        ):
            raise argparse.ArgumentTypeError(
                f"invalid file list {text!r} (numbers and ranges: 0,2,5-7, or all)"
            )
        low, high = int(first), int(last) if dash else int(first)
        if high < low or len(numbers) + high - low >= MAX_FILE_NUMBERS:
            raise argparse.ArgumentTypeError(f"invalid file range {item.strip()!r}")
        numbers.extend(range(low, high + 1))
    return list(dict.fromkeys(numbers))


def normalizeURL(text: str) -> str:
    """
    The RPC URL meant by C{text}: an C{http://} or C{https://} URL as it
    is; C{HOST:PORT}, C{HOST} or C{PORT} (as C{transmission-remote} takes
    them) completed with Transmission's defaults (127.0.0.1, 9091,
    C{/transmission/rpc}).

    @raise ValueError: with a one-line reason, for anything else.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty RPC URL")
    if not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError(f"RPC URL {text!r} contains spaces or control characters")
    if "://" not in text:
        if text.isdigit():
            host, port = "127.0.0.1", text
        elif text.startswith("["):
            host, _, rest = text.partition("]")
            host, port = host + "]", rest.lstrip(":") or "9091"
        elif text.count(":") == 1:
            host, port = text.split(":")
        else:
            host, port = text, "9091"
        text = f"http://{host or '127.0.0.1'}:{port}/transmission/rpc"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"invalid RPC URL {text!r}: {e}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"RPC URL {text!r} is not http:// or https://")
    if not parts.hostname:
        raise ValueError(f"RPC URL {text!r} has no host")
    if port == 0:
        raise ValueError(f"RPC URL {text!r} has port 0")
    return text


def parseAuth(text: str) -> Tuple[str, str]:
    """
    C{USER:PASSWORD} as a pair (the password may contain colons).

    @raise ValueError: without a colon.
    """
    user, sep, password = text.partition(":")
    if not sep:
        raise ValueError("credentials must be USER:PASSWORD")
    return user, password


def _urlType(text: str) -> str:
    try:
        return normalizeURL(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _authType(text: str) -> Tuple[str, str]:
    try:
        return parseAuth(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def addConnectionOptions(
    parser: argparse.ArgumentParser, default: object = None
) -> None:
    """
    Declare C{--rpc URL} and C{--auth USER:PASSWORD} on C{parser}.

    @param default: their default: C{None} on the top-level parser,
        C{argparse.SUPPRESS} on a subcommand's (so that C{btorrent --rpc U
        list} and C{btorrent list --rpc U} both work).
    """
    parser.add_argument(
        "--rpc",
        metavar="URL",
        type=_urlType,
        default=default,
        help=f"the daemon's RPC address (default: $BTORRENT_RPC or {DEFAULT_URL};"
        " HOST:PORT or PORT also do)",
    )
    parser.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        type=_authType,
        default=default,
        help="credentials for the daemon (default: $BTORRENT_AUTH)",
    )


#: Remote command name → its one-line help (the order of C{btorrent --help}).
REMOTE_COMMANDS = {
    "add": "add torrents to the daemon (a .torrent, a URL or a magnet link)",
    "list": "list the daemon's torrents",
    "start": "start torrents",
    "stop": "stop torrents",
    "verify": "verify torrents' data",
    "remove": "remove torrents (and with --delete their data)",
    "set": "set torrents' rate limits, seed ratio, wanted files, file "
    "priorities and piece order",
    "stats": "show the daemon's transfer statistics",
    "watch": "a live view of the daemon's torrents (^C leaves)",
}

_IDS_HELP = "torrent numbers (see list), info-hash prefixes, or all"


def addRemoteCommands(subparsers) -> None:
    """
    Declare the remote commands (all but C{info}, which
    L{btorrent.cli.main} shares with the local one) on C{subparsers}.
    """
    parsers = {}
    for name, text in REMOTE_COMMANDS.items():
        parsers[name] = sub = subparsers.add_parser(
            name, help=text, description=text[0].upper() + text[1:] + "."
        )
        addConnectionOptions(sub, argparse.SUPPRESS)

    add = parsers["add"]
    add.add_argument(
        "sources",
        nargs="+",
        metavar="FILE|URL|MAGNET",
        help="a local .torrent (sent as its content), an http(s) URL or a "
        "magnet link (fetched by the daemon)",
    )
    add.add_argument(
        "-d",
        "--download-dir",
        metavar="DIR",
        help="where the daemon puts the data (default: its own download dir)",
    )
    add.add_argument("--paused", action="store_true", help="add without starting")

    parsers["list"].add_argument(
        "--json", action="store_true", help="print one JSON array"
    )
    parsers["stats"].add_argument(
        "--json", action="store_true", help="print one JSON object"
    )

    for name in ("start", "stop", "verify", "remove", "set"):
        parsers[name].add_argument(
            "ids", nargs="+", metavar="ID", type=parseTorrentId, help=_IDS_HELP
        )
    parsers["remove"].add_argument(
        "--delete", action="store_true", help="delete the downloaded data as well"
    )

    tune = parsers["set"]
    tune.add_argument(
        "--down",
        metavar="RATE",
        type=parseRate,
        default=argparse.SUPPRESS,
        help="download limit in bytes/s: 500k, 2M (k = 1000), or unlimited",
    )
    tune.add_argument(
        "--up",
        metavar="RATE",
        type=parseRate,
        default=argparse.SUPPRESS,
        help="upload limit in bytes/s: 500k, 2M (k = 1000), or unlimited",
    )
    tune.add_argument(
        "--ratio",
        metavar="R",
        type=parseRatio,
        help="stop seeding at this upload ratio; unlimited; or global "
        "(the daemon's)",
    )
    tune.add_argument(
        "--skip",
        metavar="N,...",
        type=parseFileList,
        help="do not download these files (numbers from info ID: 0,2,5-7)",
    )
    tune.add_argument(
        "--get",
        metavar="N,...",
        type=parseFileList,
        help="download these files (numbers from info ID: 0,2,5-7, or all)",
    )
    for level in ("high", "normal", "low"):
        tune.add_argument(
            f"--{level}",
            metavar="N,...",
            type=parseFileList,
            help=f"give these files {level} priority (0,2,5-7, or all)",
        )
    tune.add_argument(
        "--sequential",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="download pieces in order (to watch while downloading), or not",
    )

    parsers["watch"].add_argument(
        "--interval",
        metavar="SECONDS",
        type=_interval,
        default=1.0,
        help="seconds between refreshes (default 1)",
    )


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(
            f"invalid interval {text!r} (seconds, 0.1 to 3600)"
        )
    return value
