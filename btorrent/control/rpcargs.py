"""
Checking the arguments of Transmission RPC requests: each getter takes the
request's C{arguments} object and a key, returns the value converted (or
C{None} when the key is absent), and raises L{ControlError} with a sentence
naming the key and what it must be when the value is of the wrong type or
out of range.  Methods read all their arguments before changing anything,
so a bad argument leaves everything as it was.

JSON has one number type: an integer argument may arrive as C{12} or
C{12.0} (accepted) but not as C{"12"}, C{12.5} or C{true} (refused); a
boolean may arrive as C{true}/C{false} or C{1}/C{0}, as Transmission
accepts.
"""

from __future__ import annotations

import math
import re
from typing import Any, List, Optional, Tuple, Union

from btorrent.control.api import ControlError

__all__ = [
    "MAX_FILE_INDEX",
    "MAX_IDS",
    "MAX_LABELS",
    "MAX_RATE_KBPS",
    "RECENTLY_ACTIVE",
    "getAbsolutePath",
    "getBool",
    "getIndexes",
    "getInt",
    "getLabels",
    "getReal",
    "getString",
    "parseIds",
    "shown",
]

#: Speed limits, in kB/s (K = 1000), at most about 2 TB/s.
MAX_RATE_KBPS = 2**31 - 1

#: File indexes beyond this are nonsense whatever the torrent.
MAX_FILE_INDEX = 2**31 - 1

#: Ids in one request, labels on one torrent, characters in one label.
MAX_IDS = 100_000
MAX_LABELS = 256
MAX_LABEL_LENGTH = 256

#: Strings (paths, URLs) longer than this are refused.
MAX_STRING = 65536

#: The C{ids} value meaning "torrents active in the last minute".
RECENTLY_ACTIVE = "recently-active"

_HASH = re.compile(r"^[0-9a-fA-F]{40}$")

_MISSING = object()


def shown(value: Any, limit: int = 40) -> str:
    """
    A short JSON-ish rendering of a client's value for an error message.
    """
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, dict):
        text = "an object"
    elif isinstance(value, list):
        text = "a list"
    elif isinstance(value, str):
        text = '"' + value + '"'
    else:
        text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _integer(value: Any) -> Optional[int]:
    """
    The integer a JSON value stands for (C{12} or C{12.0}), else C{None}.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def getInt(args: dict, key: str, low: int, high: int) -> Optional[int]:
    """
    @return: the integer at C{key}, from C{low} to C{high}; C{None} if
        absent.
    @raise ControlError: for anything else.
    """
    value = args.get(key, _MISSING)
    if value is _MISSING:
        return None
    number = _integer(value)
    if number is None or not low <= number <= high:
        raise ControlError(
            f'"{key}" must be an integer from {low} to {high}, not {shown(value)}'
        )
    return number


def getBool(args: dict, key: str) -> Optional[bool]:
    """
    @return: the boolean at C{key} (C{true}/C{false} or C{1}/C{0});
        C{None} if absent.
    """
    value = args.get(key, _MISSING)
    if value is _MISSING:
        return None
    if isinstance(value, bool):
        return value
    if _integer(value) in (0, 1):
        return bool(_integer(value))
    raise ControlError(f'"{key}" must be true or false, not {shown(value)}')


def getReal(args: dict, key: str, low: float, high: float) -> Optional[float]:
    """
    @return: the finite number at C{key}, from C{low} to C{high}; C{None}
        if absent.
    """
    value = args.get(key, _MISSING)
    if value is _MISSING:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ControlError(
            f'"{key}" must be a number from {low:g} to {high:g}, not {shown(value)}'
        )
    return float(value)


def getString(args: dict, key: str, maxLength: int = MAX_STRING) -> Optional[str]:
    """
    @return: the string at C{key}; C{None} if absent.
    """
    value = args.get(key, _MISSING)
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        raise ControlError(f'"{key}" must be a string, not {shown(value)}')
    if len(value) > maxLength:
        raise ControlError(f'"{key}" is longer than {maxLength} characters')
    if "\x00" in value:
        raise ControlError(f'"{key}" must not contain a NUL character')
    _checkUnicode(key, value)
    return value


def _checkUnicode(key: str, value: str) -> None:
    """
    @raise ControlError: for a string that is not Unicode text: JSON's
        C{"\\ud800"} decodes to a lone surrogate, which no file name,
        log line or answer can be written with (a download directory set
        to one broke every C{session-get} after it).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ControlError(
            f'"{key}" is not valid Unicode (it holds a lone surrogate)'
        ) from None


def getAbsolutePath(args: dict, key: str, notAbsolute: str) -> Optional[str]:
    """
    @param notAbsolute: the error text for a relative path (Transmission's
        wording, e.g. "download directory path is not absolute").
    @return: the absolute path at C{key}; C{None} if absent.
    """
    path = getString(args, key)
    if path is not None and not path.startswith("/"):
        raise ControlError(notAbsolute)
    return path


def getIndexes(args: dict, key: str) -> Optional[Tuple[int, ...]]:
    """
    @return: the file indexes listed at C{key} (non-negative integers,
        duplicates dropped, in the order given); C{None} if absent.
    """
    value = args.get(key, _MISSING)
    if value is _MISSING:
        return None
    if not isinstance(value, list):
        raise ControlError(
            f'"{key}" must be a list of file indexes, not {shown(value)}'
        )
    indexes: List[int] = []
    seen = set()
    for item in value:
        number = _integer(item)
        if number is None:
            raise ControlError(
                f'"{key}" must be a list of file indexes, not one holding {shown(item)}'
            )
        if not 0 <= number <= MAX_FILE_INDEX:
            raise ControlError("file index out of range")
        if number not in seen:
            seen.add(number)
            indexes.append(number)
    return tuple(indexes)


def getLabels(args: dict, key: str) -> Optional[Tuple[str, ...]]:
    """
    Labels as Transmission checks them: strings, stripped, not empty, no
    comma, no duplicates.

    @return: the labels at C{key}; C{None} if absent.
    """
    value = args.get(key, _MISSING)
    if value is _MISSING:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ControlError(f'"{key}" must be a list of strings, not {shown(value)}')
    if len(value) > MAX_LABELS:
        raise ControlError(f"at most {MAX_LABELS} labels")
    labels: List[str] = []
    for raw in value:
        label = raw.strip()
        if not label:
            raise ControlError("labels cannot be empty")
        if "," in label:
            raise ControlError("labels cannot contain comma (,) character")
        if len(label) > MAX_LABEL_LENGTH or "\x00" in label:
            raise ControlError(
                f"labels must be at most {MAX_LABEL_LENGTH} characters, without NUL"
            )
        if label in labels:
            raise ControlError("labels cannot contain duplicates")
        _checkUnicode(key, label)
        labels.append(label)
    return tuple(labels)


def _torrentKey(item: Any) -> Union[int, str]:
    """
    One entry of C{ids}: an integer id or a 40-hex-digit info-hash (made
    lower case).
    """
    number = _integer(item)
    if number is not None:
        return number
    if isinstance(item, str) and _HASH.match(item):
        return item.lower()
    raise ControlError(
        f"invalid torrent id {shown(item)}: "
        "give an integer id or a 40-hex-digit info-hash"
    )


def parseIds(args: dict) -> Union[None, str, List[Union[int, str]]]:
    """
    Transmission's C{ids}: absent for every torrent; an integer; an
    info-hash; a list of integers and info-hashes; or C{"recently-active"}.

    Anything else (C{{}}, C{null}, C{true}, a list holding an object) is an
    error, never "every torrent": Transmission itself takes an object for
    "all", which makes C{torrent-remove} with C{"ids": {}} remove
    everything.

    @return: C{None} for all, L{RECENTLY_ACTIVE}, or the list of keys
        (without duplicates, in order).
    """
    value = args.get("ids", _MISSING)
    if value is _MISSING:
        return None
    if value == RECENTLY_ACTIVE:
        return RECENTLY_ACTIVE
    if isinstance(value, list):
        if len(value) > MAX_IDS:
            raise ControlError(f"at most {MAX_IDS} ids in one request")
        keys: List[Union[int, str]] = []
        seen = set()
        for item in value:
            key = _torrentKey(item)
            if key not in seen:
                seen.add(key)
                keys.append(key)
        return keys
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return [_torrentKey(value)]
    raise ControlError(
        f'"ids" must be an integer, an info-hash, a list of them or '
        f'"recently-active", not {shown(value)}'
    )
