"""
Rates as people write them: C{500k}, C{2M}, C{1.5MB/s}, C{250000} (bytes
per second, decimal units: k = 1000), or C{unlimited}.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["UNLIMITED", "parseBytesPerSecond"]

_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(b?)(?:/s)?\s*$", re.I)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}

#: The words for no limit.
UNLIMITED = ("unlimited", "none", "off", "no")


def parseBytesPerSecond(text: str) -> Optional[float]:
    """
    A rate in bytes per second, or C{None} for C{unlimited}.

    @raise ValueError: naming what is expected, for anything else or a
        rate of 2**40 bytes/s or more.
    """
    if text.strip().lower() in UNLIMITED:
        return None
    m = _RATE.match(text)
    if m is None:
        raise ValueError(
            f"invalid rate {text!r} (bytes/s: 500k, 2M, 250000, or unlimited)"
        )
    rate = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if rate >= 2**40:
        raise ValueError(f"rate {text!r} is too big")
    return rate
