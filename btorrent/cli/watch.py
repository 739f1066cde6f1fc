"""
C{btorrent watch}: a live table of a daemon's torrents, redrawn in place
with C{rich} (name, progress bar, state, rates, peers, ETA) until ^C.

L{table} renders one poll; L{watch} polls with an L{RPCClient} on the
reactor it is given and stops cleanly (the table left on screen, exit 0)
when the reactor shuts down, which is what ^C does under C{task.react}.
"""

from __future__ import annotations

from typing import IO, Any, Dict, List, Optional

from twisted.internet import defer
from twisted.python.failure import Failure

from btorrent.cli.fields import (
    LIST_FIELDS,
    etaText,
    numberField,
    percentDone,
    stateText,
    textField,
    torrentList,
)
from btorrent.cli.rpcclient import RPCClient
from btorrent.cli.text import humanRate

__all__ = ["table", "watch"]

#: The width of a progress bar, in characters.
BAR = 10

#: The most rows shown (a daemon with more torrents gets a "... more" line).
MAX_ROWS = 200


def table(torrents: List[Dict[str, Any]], title: Optional[str] = None):
    """
    A C{rich} table of C{torrents} (C{torrent-get} records with
    L{LIST_FIELDS}).
    """
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    grid = Table(
        title=title, box=None, pad_edge=False, collapse_padding=True, padding=(0, 1)
    )
    # On a narrow terminal the name gives way (cut with an ellipsis); the
    # figures keep their room ("999.9 kB/s", "unknown").
    grid.add_column("ID", justify="right", no_wrap=True)
    grid.add_column("Name", min_width=8)
    grid.add_column("Progress", no_wrap=True, width=BAR)
    grid.add_column("Done", justify="right", no_wrap=True, min_width=6)
    grid.add_column("State", max_width=20)
    for name in ("Down", "Up"):
        grid.add_column(name, justify="right", no_wrap=True, min_width=10)
    grid.add_column("Peers", justify="right", no_wrap=True, min_width=5)
    grid.add_column("ETA", justify="right", no_wrap=True, min_width=7)
    down = up = 0.0
    for torrent in sorted(torrents, key=lambda t: t["id"])[:MAX_ROWS]:
        done = percentDone(torrent)
        down += numberField(torrent, "rateDownload")
        up += numberField(torrent, "rateUpload")
        grid.add_row(
            str(torrent["id"]),
            Text(textField(torrent, "name", "?"), no_wrap=True, overflow="ellipsis"),
            ProgressBar(total=100, completed=done, width=BAR),
            f"{done:.1f}%",
            Text(stateText(torrent), no_wrap=True, overflow="ellipsis"),
            humanRate(numberField(torrent, "rateDownload")),
            humanRate(numberField(torrent, "rateUpload")),
            str(int(numberField(torrent, "peersConnected"))),
            etaText(torrent),
        )
    caption = f"{len(torrents)} torrents, {humanRate(down)} down, {humanRate(up)} up"
    if len(torrents) > MAX_ROWS:
        caption += f" ({len(torrents) - MAX_ROWS} more not shown)"
    grid.caption = caption + "; ^C leaves"
    return grid


def watch(reactor, client: RPCClient, out: IO[str], interval: float) -> defer.Deferred:
    """
    Poll C{torrent-get} every C{interval} seconds and redraw the table on
    C{out} in place, until the reactor shuts down.

    @return: a L{Deferred} firing with the exit code: 0 after a shutdown
        (^C), or failing with the L{RPCError} or L{CommandError} that ended
        the watch.
    """
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out)
    live = Live(console=console, auto_refresh=False, transient=False)
    state: Dict[str, Any] = {"call": None, "pending": None}

    def stopWatching(outcome, shuttingDown: bool = False) -> None:
        """
        Stop polling, leave the last table on screen, fire C{result}.
        """
        if result.called:
            return
        if state["call"] is not None and state["call"].active():
            state["call"].cancel()
        live.stop()
        if not shuttingDown:
            reactor.removeSystemEventTrigger(trigger)
        if isinstance(outcome, Failure):
            result.errback(outcome)
        else:
            result.callback(outcome)
        if state["pending"] is not None:
            state["pending"].cancel()

    # Cancelling the result (what a caller does to stop watching) is a
    # clean stop, exit code 0.
    result: defer.Deferred = defer.Deferred(lambda d: stopWatching(0))

    def poll() -> None:
        state["call"] = None
        d = state["pending"] = client.call("torrent-get", {"fields": LIST_FIELDS})
        d.addCallback(show)
        d.addErrback(failed)

    def show(reply: Dict[str, Any]) -> None:
        state["pending"] = None
        if result.called:
            return
        live.update(table(torrentList(reply)), refresh=True)
        state["call"] = reactor.callLater(interval, poll)

    def failed(failure: Failure) -> None:
        state["pending"] = None
        stopWatching(failure)

    trigger = reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: stopWatching(0, shuttingDown=True)
    )
    live.start()
    poll()
    return result
