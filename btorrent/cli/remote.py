"""
The remote commands of C{btorrent}: C{add}, C{list}, C{info ID}, C{start},
C{stop}, C{verify}, C{remove}, C{stats}, C{set} and C{watch}, driving a
running daemon (btorrent's or a transmission-daemon) over the Transmission
RPC with an L{RPCClient}.

Torrent IDs on the command line are Transmission's numbers or info-hash
prefixes (hex, any length; a string of digits shorter than 40 is a number):
L{resolve} turns them into numbers with one C{torrent-get}, and refuses an
unknown number, a prefix matching nothing and an ambiguous prefix with one
line.  The numbers are then sent as a list: never an empty one, which
Transmission reads as "every torrent" (C{all} must be asked for).

Every function here takes the reactor and the client as parameters; only
L{btorrent.cli.main} runs the reactor.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

from btorrent.cli.fields import (
    LIST_FIELDS,
    STATUS,
    MalformedReply,
    etaText,
    numberField,
    percentDone,
    ratioText,
    stateText,
    textField,
    torrentList,
)
from btorrent.cli.remoteargs import (
    ALL,
    DEFAULT_URL,
    TorrentId,
    normalizeURL,
    parseAuth,
)
from btorrent.cli.rpcclient import RPCClient, RPCError
from btorrent.cli.text import humanDuration, humanRate, humanSize

__all__ = [
    "COMMANDS",
    "CommandError",
    "STATUS",
    "connection",
    "etaText",
    "numberField",
    "percentDone",
    "ratioText",
    "resolve",
    "run",
    "stateText",
    "textField",
    "torrentList",
]

#: Exit code after an interrupt (128 + SIGINT).
INTERRUPTED = 130

#: The biggest local .torrent C{add} sends (base64 makes it a third
#: bigger; btorrent's RPC server refuses bodies over 32 MiB).
MAX_TORRENT_FILE = 16 * 1024 * 1024


class CommandError(Exception):
    """
    A user-facing error of a remote command: printed as one line, exit 1.
    """


# Resolving IDs.

#: The fields L{resolve} fetches.
_ID_FIELDS = ["id", "name", "hashString"]


async def resolve(
    client: RPCClient, specs: Sequence[TorrentId], fields: Sequence[str] = ()
) -> Tuple[Optional[List[int]], List[Dict[str, Any]]]:
    """
    The torrents C{specs} name, with one C{torrent-get} of every torrent.

    @param specs: numbers, hash prefixes or L{ALL}.
    @param fields: more fields to fetch (besides id, name, hashString).
    @return: C{(ids, torrents)}: the numbers to send (C{None} for L{ALL},
        meaning the C{ids} argument is left out) and the torrents' records,
        in the order given, each once.
    @raise CommandError: for a number no torrent has, a prefix that matches
        none or several.
    """
    wanted = list(dict.fromkeys(_ID_FIELDS + list(fields)))
    reply = await client.call("torrent-get", {"fields": wanted})
    torrents = torrentList(reply)
    if any(spec is ALL for spec in specs):
        return None, torrents
    byId = {t["id"]: t for t in torrents}
    chosen: Dict[int, Dict[str, Any]] = {}
    for spec in specs:
        if isinstance(spec, int):
            if spec not in byId:
                raise CommandError(f"no torrent has ID {spec}")
            chosen.setdefault(spec, byId[spec])
            continue
        matches = [
            t
            for t in torrents
            if isinstance(t.get("hashString"), str)
            and t["hashString"].lower().startswith(spec)
        ]
        if not matches:
            raise CommandError(f"no torrent's info-hash starts with {spec}")
        if len(matches) > 1:
            shown = ", ".join(
                f"{t['id']} ({textField(t, 'hashString')[:12]}...)" for t in matches[:5]
            )
            more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
            raise CommandError(
                f"info-hash prefix {spec} is ambiguous: it matches torrents "
                f"{shown}{more}; give more digits"
            )
        chosen.setdefault(matches[0]["id"], matches[0])
    return list(chosen), list(chosen.values())


def _idsArgument(ids: Optional[List[int]]) -> Dict[str, Any]:
    """
    The C{ids} argument for C{ids} (nothing for every torrent).
    """
    if ids is None:
        return {}
    if not ids:
        # An empty list means every torrent to Transmission: never send one.
        raise AssertionError("no torrent IDs")
    return {"ids": ids}


def _label(torrent: Dict[str, Any]) -> str:
    return f"{torrent['id']} {textField(torrent, 'name', '?')}"


# The commands.  Each is C{async (reactor, client, args, out, err) -> int}.


async def add(reactor, client: RPCClient, args, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent add FILE|URL|MAGNET... [--download-dir DIR] [--paused]}.
    """
    for source in args.sources:
        arguments: Dict[str, Any] = _addSource(source)
        if args.download_dir is not None:
            arguments["download-dir"] = os.path.abspath(
                os.path.expanduser(args.download_dir)
            )
        if args.paused:
            arguments["paused"] = True
        reply = await client.call("torrent-add", arguments)
        added = reply.get("torrent-added")
        duplicate = reply.get("torrent-duplicate")
        record = added if isinstance(added, dict) else duplicate
        if not isinstance(record, dict) or not isinstance(record.get("id"), int):
            raise CommandError("the daemon's torrent-add reply is malformed")
        verb = "added" if record is added else "already there"
        out.write(
            f"{verb}: {_label(record)} ({textField(record, 'hashString', '?')})\n"
        )
    return 0


def _addSource(source: str) -> Dict[str, Any]:
    """
    The C{torrent-add} arguments for C{source}: a URL or magnet link (as
    C{filename}, fetched by the daemon), a bare 40-digit info-hash (as a
    magnet link), or a local .torrent (as base64 C{metainfo}).
    """
    lowered = source.lower()
    if lowered.startswith(("magnet:", "http://", "https://")):
        return {"filename": source}
    if re.match(r"^[0-9a-fA-F]{40}$", source) and not os.path.exists(source):
        return {"filename": f"magnet:?xt=urn:btih:{source.lower()}"}
    data = _readTorrent(source)
    return {"metainfo": base64.b64encode(data).decode("ascii")}


def _readTorrent(path: str) -> bytes:
    """
    The bytes of a local .torrent, or a one-line L{CommandError}.
    """
    import stat

    try:
        with open(path, "rb", opener=_nonBlockingOpener) as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise CommandError(f"{path}: not a regular file")
            data = f.read(MAX_TORRENT_FILE + 1)
    except OSError as e:
        raise CommandError(f"{path}: {e.strerror or e}") from None
    if len(data) > MAX_TORRENT_FILE:
        raise CommandError(
            f"{path}: bigger than {MAX_TORRENT_FILE // (1024 * 1024)} MiB: "
            f"not a .torrent"
        )
    return data


def _nonBlockingOpener(path: str, flags: int) -> int:
    # O_NONBLOCK so that opening a FIFO does not wait for a writer.
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


async def listTorrents(
    reactor, client: RPCClient, args, out: IO[str], err: IO[str]
) -> int:
    """
    C{btorrent list [--json]}: one row per torrent, then the sums.
    """
    reply = await client.call("torrent-get", {"fields": LIST_FIELDS})
    torrents = sorted(torrentList(reply), key=lambda t: t["id"])
    if args.json:
        out.write(json.dumps(torrents) + "\n")
        return 0
    rows = [("ID", "Done", "Have", "ETA", "Up", "Down", "Ratio", "State", "Name")]
    have = up = down = 0.0
    for t in torrents:
        size = numberField(t, "sizeWhenDone")
        got = max(0.0, size - numberField(t, "leftUntilDone"))
        have += got
        up += numberField(t, "rateUpload")
        down += numberField(t, "rateDownload")
        rows.append(
            (
                str(t["id"]),
                f"{percentDone(t):.0f}%",
                humanSize(got),
                etaText(t),
                humanRate(numberField(t, "rateUpload")),
                humanRate(numberField(t, "rateDownload")),
                ratioText(t),
                stateText(t),
                textField(t, "name", "?"),
            )
        )
    rows.append(("Sum:", "", humanSize(have), "", humanRate(up), humanRate(down)))
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(8)]
    for row in rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row[:8])] + list(row[8:])
        out.write("  ".join(cells).rstrip() + "\n")
    return 0


#: The fields C{info ID} shows.
INFO_FIELDS = LIST_FIELDS + [
    "downloadDir",
    "totalSize",
    "pieceCount",
    "pieceSize",
    "haveValid",
    "haveUnchecked",
    "downloadedEver",
    "uploadedEver",
    "corruptEver",
    "addedDate",
    "doneDate",
    "activityDate",
    "dateCreated",
    "comment",
    "creator",
    "isPrivate",
    "downloadLimit",
    "downloadLimited",
    "uploadLimit",
    "uploadLimited",
    "seedRatioLimit",
    "seedRatioMode",
    "trackers",
    "files",
    "fileStats",
]


async def info(reactor, client: RPCClient, args, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent info ID... [--json]}: everything about some torrents,
    their files numbered as C{set --get/--skip} take them.
    """
    ids, _ = await resolve(client, args.ids)
    reply = await client.call(
        "torrent-get", {"fields": INFO_FIELDS, **_idsArgument(ids)}
    )
    torrents = torrentList(reply)
    if ids is not None:
        order = {i: n for n, i in enumerate(ids)}
        torrents.sort(key=lambda t: order.get(t["id"], len(order)))
    if args.json:
        out.write(json.dumps(torrents) + "\n")
        return 0
    out.write("\n\n".join("\n".join(_infoLines(t)) for t in torrents) + "\n")
    return 0


def _date(torrent: Dict[str, Any], key: str) -> Optional[str]:
    stamp = numberField(torrent, key)
    if stamp <= 0 or stamp > 2**40:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _limit(torrent: Dict[str, Any], direction: str) -> str:
    if torrent.get(direction + "Limited") is not True:
        return "unlimited"
    return humanRate(numberField(torrent, direction + "Limit") * 1000)


def _ratioLimit(torrent: Dict[str, Any]) -> str:
    mode = numberField(torrent, "seedRatioMode")
    if mode == 1:
        return f"{numberField(torrent, 'seedRatioLimit'):.2f}"
    return "unlimited" if mode == 2 else "global"


def _infoLines(t: Dict[str, Any]) -> List[str]:
    size = numberField(t, "sizeWhenDone")
    lines = [
        f"name:         {textField(t, 'name', '?')}",
        f"id:           {t['id']}",
        f"info-hash:    {textField(t, 'hashString', '?')}",
        f"state:        {stateText(t)}",
        f"location:     {textField(t, 'downloadDir', '?')}",
        f"progress:     {percentDone(t):.1f}% of {humanSize(size)} wanted"
        f" ({humanSize(max(0.0, size - numberField(t, 'leftUntilDone')))} there)",
        f"size:         {humanSize(numberField(t, 'totalSize'))} "
        f"({int(numberField(t, 'pieceCount'))} pieces of {humanSize(numberField(t, 'pieceSize'))})",
        f"transferred:  {humanSize(numberField(t, 'downloadedEver'))} down, "
        f"{humanSize(numberField(t, 'uploadedEver'))} up, ratio {ratioText(t)}"
        f", {humanSize(numberField(t, 'corruptEver'))} corrupt",
        f"rates:        {humanRate(numberField(t, 'rateDownload'))} down, "
        f"{humanRate(numberField(t, 'rateUpload'))} up",
        f"limits:       {_limit(t, 'download')} down, {_limit(t, 'upload')} up, "
        f"ratio {_ratioLimit(t)}",
        f"peers:        {int(numberField(t, 'peersConnected'))} connected, "
        f"{int(numberField(t, 'peersSendingToUs'))} sending to us, "
        f"{int(numberField(t, 'peersGettingFromUs'))} getting from us",
        f"eta:          {etaText(t)}",
        f"private:      {'yes' if t.get('isPrivate') is True else 'no'}",
    ]
    if numberField(t, "error"):
        lines.append(f"error:        {textField(t, 'errorString', '?')}")
    for key, label in (("addedDate", "added"), ("doneDate", "completed")):
        when = _date(t, key)
        if when:
            lines.append(f"{label + ':':<14}{when}")
    if textField(t, "comment"):
        lines.append(f"comment:      {textField(t, 'comment')}")
    if textField(t, "creator"):
        lines.append(f"created by:   {textField(t, 'creator')}")
    trackers = t.get("trackers") if isinstance(t.get("trackers"), list) else []
    trackers = [x for x in trackers if isinstance(x, dict)]
    lines.append("trackers:" if trackers else "trackers:     none")
    for tracker in trackers:
        lines.append(
            f"  tier {int(numberField(tracker, 'tier'))}: {textField(tracker, 'announce', '?')}"
        )
    files = t.get("files") if isinstance(t.get("files"), list) else []
    stats = t.get("fileStats") if isinstance(t.get("fileStats"), list) else []
    lines.append("files:")
    for index, f in enumerate(files):
        if not isinstance(f, dict):
            continue
        stat = (
            stats[index]
            if index < len(stats) and isinstance(stats[index], dict)
            else {}
        )
        wanted = "get " if stat.get("wanted", True) is not False else "skip"
        length = numberField(f, "length")
        done = numberField(f, "bytesCompleted")
        percent = 100.0 * done / length if length > 0 else 100.0
        lines.append(
            f"  {index:>3} {wanted} {percent:5.1f}%  {textField(f, 'name', '?')} "
            f"({humanSize(length)})"
        )
    return lines


async def _action(
    method: str, verb: str, client: RPCClient, args, out: IO[str], extra=None
) -> int:
    """
    Resolve C{args.ids}, call C{method} on them, say what was done.
    """
    ids, torrents = await resolve(client, args.ids)
    if not torrents:
        out.write("no torrents\n")
        return 0
    await client.call(method, {**_idsArgument(ids), **(extra or {})})
    for torrent in sorted(torrents, key=lambda t: t["id"]):
        out.write(f"{verb}: {_label(torrent)}\n")
    return 0


async def start(reactor, client: RPCClient, args, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent start ID...}.
    """
    return await _action("torrent-start", "started", client, args, out)


async def stop(reactor, client: RPCClient, args, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent stop ID...}.
    """
    return await _action("torrent-stop", "stopped", client, args, out)


async def verify(reactor, client: RPCClient, args, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent verify ID...}.
    """
    return await _action("torrent-verify", "verifying", client, args, out)


async def remove(reactor, client: RPCClient, args, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent remove [--delete] ID...}.
    """
    return await _action(
        "torrent-remove",
        "removed with its data" if args.delete else "removed",
        client,
        args,
        out,
        {"delete-local-data": bool(args.delete)},
    )


async def setTorrent(
    reactor, client: RPCClient, args, out: IO[str], err: IO[str]
) -> int:
    """
    C{btorrent set ID... [--down RATE] [--up RATE] [--ratio R] [--skip N,...]
    [--get N,...] [--high|--normal|--low N,...] [--[no-]sequential]}.
    """
    settings: Dict[str, Any] = {}
    for option, key in (("down", "download"), ("up", "upload")):
        if hasattr(args, option):
            rate = getattr(args, option)
            settings[key + "Limited"] = rate is not None
            if rate is not None:
                settings[key + "Limit"] = rate
    if args.ratio is not None:
        mode, limit = args.ratio
        settings["seedRatioMode"] = mode
        if limit is not None:
            settings["seedRatioLimit"] = limit
    if args.skip is not None:
        settings["files-unwanted"] = args.skip
    if args.get is not None:
        settings["files-wanted"] = args.get
    for level in ("high", "normal", "low"):
        if getattr(args, level) is not None:
            settings["priority-" + level] = getattr(args, level)
    if args.sequential is not None:
        settings["sequential_download"] = args.sequential
    if not settings:
        raise CommandError(
            "nothing to set (--down, --up, --ratio, --skip, --get, --high, "
            "--normal, --low or --sequential)"
        )
    ids, torrents = await resolve(client, args.ids)
    if not torrents:
        out.write("no torrents\n")
        return 0
    await client.call("torrent-set", {**_idsArgument(ids), **settings})
    for torrent in sorted(torrents, key=lambda t: t["id"]):
        out.write(f"set: {_label(torrent)}\n")
    return 0


async def stats(reactor, client: RPCClient, args, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent stats [--json]}: the session's counters.
    """
    reply = await client.call("session-stats")
    if args.json:
        out.write(json.dumps(reply) + "\n")
        return 0
    lines = [
        f"torrents:      {int(numberField(reply, 'torrentCount'))} "
        f"({int(numberField(reply, 'activeTorrentCount'))} active, "
        f"{int(numberField(reply, 'pausedTorrentCount'))} paused)",
        f"rates:         {humanRate(numberField(reply, 'downloadSpeed'))} down, "
        f"{humanRate(numberField(reply, 'uploadSpeed'))} up",
    ]
    for key, label in (
        ("current-stats", "this session"),
        ("cumulative-stats", "total"),
    ):
        s = reply.get(key)
        if not isinstance(s, dict):
            continue
        downloaded = numberField(s, "downloadedBytes")
        uploaded = numberField(s, "uploadedBytes")
        ratio = f"{uploaded / downloaded:.2f}" if downloaded > 0 else "none"
        sessions = (
            f", {int(numberField(s, 'sessionCount'))} sessions"
            if key == "cumulative-stats"
            else ""
        )
        lines.append(
            f"{label + ':':<15}{humanSize(downloaded)} down, {humanSize(uploaded)} up, "
            f"ratio {ratio}, {int(numberField(s, 'filesAdded'))} files added"
            f"{sessions}, active {humanDuration(numberField(s, 'secondsActive'))}"
        )
    out.write("\n".join(lines) + "\n")
    return 0


async def watch(reactor, client: RPCClient, args, out: IO[str], err: IO[str]) -> int:
    """
    C{btorrent watch [--interval S]}: a live table until ^C.
    """
    from btorrent.cli.watch import watch as live

    return await live(reactor, client, out, args.interval)


#: Remote command name → C{async (reactor, client, args, out, err) -> int}.
COMMANDS = {
    "add": add,
    "list": listTorrents,
    "info": info,
    "start": start,
    "stop": stop,
    "verify": verify,
    "remove": remove,
    "set": setTorrent,
    "stats": stats,
    "watch": watch,
}


def connection(args) -> Tuple[str, Optional[Tuple[str, str]]]:
    """
    The RPC URL and credentials from C{--rpc}/C{--auth} (parsed by
    L{btorrent.cli.remoteargs}), else C{BTORRENT_RPC}/C{BTORRENT_AUTH},
    else the default URL and none.

    @raise CommandError: for a bad URL or credentials in the environment.
    """
    url = getattr(args, "rpc", None)
    auth = getattr(args, "auth", None)
    try:
        if url is None:
            url = normalizeURL(os.environ.get("BTORRENT_RPC") or DEFAULT_URL)
        if auth is None and os.environ.get("BTORRENT_AUTH"):
            auth = parseAuth(os.environ["BTORRENT_AUTH"])
    except ValueError as e:
        raise CommandError(str(e)) from None
    return url, auth


async def run(reactor, args, out: IO[str], err: IO[str]) -> int:
    """
    Run the remote command C{args.command} on C{reactor}; errors are one
    line on C{err}.

    @return: the exit code: 0, 1 for an error, 130 when interrupted.
    """
    name = args.command
    try:
        url, auth = connection(args)
    except CommandError as e:
        err.write(f"btorrent {name}: error: {e}\n")
        return 2
    client = RPCClient(reactor, url, auth)
    interrupted: List[bool] = []
    trigger = reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: interrupted.append(True)
    )
    try:
        return await COMMANDS[name](reactor, client, args, out, err)
    except (RPCError, CommandError, MalformedReply) as e:
        if interrupted:
            err.write(f"btorrent {name}: interrupted\n")
            return INTERRUPTED
        err.write(f"btorrent {name}: error: {e}\n")
        return 1
    finally:
        if not interrupted:
            reactor.removeSystemEventTrigger(trigger)
        client.close()
