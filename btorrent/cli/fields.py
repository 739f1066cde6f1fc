"""
Reading a daemon's C{torrent-get} answers for people: every field is checked
for its type (the daemon is not trusted: a wrong type shows as unknown
rather than raising), and the fields C{list} and C{watch} show.
"""

from __future__ import annotations

from typing import Any, Dict, List

from btorrent.cli.text import humanDuration, printable

__all__ = [
    "LIST_FIELDS",
    "MalformedReply",
    "STATUS",
    "etaText",
    "numberField",
    "percentDone",
    "ratioText",
    "stateText",
    "textField",
    "torrentList",
]


class MalformedReply(Exception):
    """
    A daemon's answer that is not shaped as the RPC says.
    """


#: Transmission's C{status} numbers (rpc-spec, tr_torrent_activity).
STATUS = {
    0: "stopped",
    1: "verify queued",
    2: "verifying",
    3: "download queued",
    4: "downloading",
    5: "seed queued",
    6: "seeding",
}


def numberField(torrent: Dict[str, Any], key: str, default: float = 0) -> float:
    """
    C{torrent[key]} if it is a finite number (not a boolean), else
    C{default}.
    """
    value = torrent.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    if value != value or value in (float("inf"), float("-inf")):
        return default
    return value


def textField(torrent: Dict[str, Any], key: str, default: str = "") -> str:
    """
    C{torrent[key]} made L{printable} if it is a string, else C{default}.
    """
    value = torrent.get(key, default)
    return printable(value) if isinstance(value, str) else default


def etaText(torrent: Dict[str, Any]) -> str:
    """
    A torrent's ETA: C{done}, C{unknown} (Transmission's -1 and -2) or a
    duration.
    """
    if (
        torrent.get("isFinished") is True
        or numberField(torrent, "leftUntilDone", 1) == 0
    ):
        return "done"
    eta = numberField(torrent, "eta", -1)
    return "unknown" if eta < 0 else humanDuration(eta)


def ratioText(torrent: Dict[str, Any]) -> str:
    """
    A torrent's upload ratio (Transmission's -1 is none, -2 infinite).
    """
    ratio = numberField(torrent, "uploadRatio", -1)
    if ratio == -2:
        return "inf"
    return "none" if ratio < 0 else f"{ratio:.2f}"


def stateText(torrent: Dict[str, Any]) -> str:
    """
    A torrent's state: its C{status} in words, with the verify progress,
    or its error.
    """
    if numberField(torrent, "error", 0) and torrent.get("errorString"):
        return "error: " + textField(torrent, "errorString")
    status = numberField(torrent, "status", -1)
    state = STATUS.get(int(status), "unknown") if status == int(status) else "unknown"
    if status == 2 and "recheckProgress" in torrent:
        state += f" {numberField(torrent, 'recheckProgress') * 100:.0f}%"
    return state


def percentDone(torrent: Dict[str, Any]) -> float:
    """
    How much of what is wanted is there, 0 to 100.
    """
    return max(0.0, min(100.0, numberField(torrent, "percentDone") * 100))


#: The fields C{list} and C{watch} show.
LIST_FIELDS = [
    "id",
    "name",
    "hashString",
    "status",
    "error",
    "errorString",
    "percentDone",
    "sizeWhenDone",
    "leftUntilDone",
    "isFinished",
    "eta",
    "rateDownload",
    "rateUpload",
    "uploadRatio",
    "peersConnected",
    "peersSendingToUs",
    "peersGettingFromUs",
    "recheckProgress",
]


def torrentList(reply: Dict[str, Any]) -> List[Dict[str, Any]]:
    """
    The C{torrents} of a C{torrent-get} reply: objects with an integer C{id}.

    @raise MalformedReply: if the reply is not shaped so.
    """
    torrents = reply.get("torrents")
    if not isinstance(torrents, list) or not all(
        isinstance(t, dict)
        and isinstance(t.get("id"), int)
        and not isinstance(t.get("id"), bool)
        for t in torrents
    ):
        raise MalformedReply("the daemon's torrent-get reply is malformed")
    return torrents
