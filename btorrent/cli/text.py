"""
Text for the terminal: sizes, rates, durations, and L{printable}, which
makes text from a torrent or a daemon safe to show.

Pure: imports nothing of Twisted, so that C{btorrent info X.torrent} stays
quick.
"""

from __future__ import annotations

import unicodedata

__all__ = ["humanDuration", "humanRate", "humanSize", "printable"]


def humanSize(n: int) -> str:
    """
    A size in binary units, e.g. C{1.5 MiB}.
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def humanRate(bytesPerSecond: float) -> str:
    """
    A rate in decimal units (k = 1000, as C{btorrent set} takes them and
    Transmission shows them): C{0 B/s}, C{12.5 kB/s}, C{2.0 MB/s}.
    """
    value = float(bytesPerSecond)
    for unit in ("B/s", "kB/s", "MB/s", "GB/s"):
        if value < 1000 or unit == "GB/s":
            return f"{value:.0f} {unit}" if unit == "B/s" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def humanDuration(seconds: float) -> str:
    """
    A duration to the two biggest units: C{1d 2h}, C{3h 4m}, C{5m 6s}, C{7s}.
    """
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


# Characters that would act on a terminal rather than show: controls (C0,
# DEL, C1), format characters (bidirectional overrides, zero-width ones),
# lone surrogates and line or paragraph separators.
_UNPRINTABLE = frozenset(["Cc", "Cf", "Cs", "Zl", "Zp"])


def printable(text: str) -> str:
    """
    C{text} with every character that would act on a terminal (escape
    sequences, line breaks, bidirectional overrides) shown as a Python
    escape, such as C{\\x1b} or C{\\u202e}, so that text from a torrent
    cannot forge lines or drive the terminal.
    """
    if text.isprintable():
        return text
    return "".join(
        (
            c.encode("unicode_escape").decode("ascii")
            if c == "\\" or unicodedata.category(c) in _UNPRINTABLE
            else c
        )
        for c in text
    )
