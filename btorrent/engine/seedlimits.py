"""
Seeding limits, as Transmission has them: a ratio limit and an idle limit,
each set per torrent (mode 1), left to the session's (mode 0) or off
(mode 2).  Once a done torrent has uploaded its goal, or has been idle for
its limit, it stops and shows as finished.

Transmission 3.00's definitions (C{libtransmission/torrent.c}), which
btorrent's RPC speaks: the upload goal is C{ratio * baseline}, the baseline
being the bytes downloaded ever or, for a torrent that was added complete
(nothing downloaded), its C{sizeWhenDone}; the ratio shown is C{uploaded
ever / downloaded ever} (or C{/ haveValid} when nothing was downloaded),
-1 when both are 0, -2 (infinite) for uploads with nothing to divide by.
A torrent is idle while it moves no byte either way, counted from when it
started at the latest.

Pure: values in, values out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Optional

from btorrent.control.api import ControlError

__all__ = [
    "MAX_IDLE_MINUTES",
    "MAX_RATIO",
    "MODE_GLOBAL",
    "MODE_SINGLE",
    "MODE_UNLIMITED",
    "RATIO_INFINITE",
    "RATIO_NONE",
    "SeedLimits",
    "SessionSeedLimits",
    "effectiveIdleMinutes",
    "effectiveRatio",
    "ratioGoal",
    "uploadRatio",
]

#: Seed limit modes (Transmission's C{TR_RATIOLIMIT_*}, C{TR_IDLELIMIT_*}).
MODE_GLOBAL = 0
MODE_SINGLE = 1
MODE_UNLIMITED = 2

#: The highest ratio limit and idle limit a client may set (the RPC's).
MAX_RATIO = 1_000_000.0
MAX_IDLE_MINUTES = 65535

#: Transmission's special ratios.
RATIO_NONE = -1.0
RATIO_INFINITE = -2.0


def _checkRatio(value: Any, name: str) -> float:
    if type(value) not in (int, float) or not (
        math.isfinite(value) and 0 <= value <= MAX_RATIO
    ):
        raise ControlError(f"{name} must be a number from 0 to {MAX_RATIO:g}")
    return float(value)


def _checkMinutes(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_IDLE_MINUTES:
        raise ControlError(f"{name} must be whole minutes from 0 to {MAX_IDLE_MINUTES}")
    return value


def _checkMode(value: Any, name: str) -> int:
    if type(value) is not int or value not in (
        MODE_GLOBAL,
        MODE_SINGLE,
        MODE_UNLIMITED,
    ):
        raise ControlError(
            f"{name} must be 0 (the session's), 1 (its own) or 2 (unlimited)"
        )
    return value


def _checkBool(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise ControlError(f"{name} must be true or false")
    return value


@dataclass(frozen=True)
class SeedLimits:
    """
    One torrent's seeding limits (L{btorrent.control.api.TorrentOptions}'
    names; minutes for the idle limit).
    """

    seedRatioLimit: float = 2.0
    seedRatioMode: int = MODE_GLOBAL
    seedIdleLimit: int = 30
    seedIdleMode: int = MODE_GLOBAL

    _checks = {
        "seedRatioLimit": _checkRatio,
        "seedRatioMode": _checkMode,
        "seedIdleLimit": _checkMinutes,
        "seedIdleMode": _checkMode,
    }

    def changed(self, changes: Dict[str, Any]) -> SeedLimits:
        """
        @return: a copy with C{changes} applied.
        @raise ControlError: for an unknown name or a bad value.
        """
        return replace(self, **_checked(self._checks, changes))

    def toJSON(self) -> dict:
        """
        @return: a plain dict for the state file.
        """
        # Its fields are plain values: a copy of them (asdict's deep walk
        # cost 30 % of saving 10,000 torrents' state).
        return dict(vars(self))

    @classmethod
    def fromJSON(cls, data: Any) -> SeedLimits:
        """
        Read back L{toJSON}'s dict (unknown keys ignored).

        @raise ControlError: for a bad value.
        """
        return cls().changed(_known(cls, data))


@dataclass(frozen=True)
class SessionSeedLimits:
    """
    The session's seeding limits (L{btorrent.control.api.SessionSettings}'
    names).
    """

    seedRatioLimit: float = 2.0
    seedRatioLimited: bool = False
    idleSeedingLimit: int = 30
    idleSeedingLimitEnabled: bool = False

    _checks = {
        "seedRatioLimit": _checkRatio,
        "seedRatioLimited": _checkBool,
        "idleSeedingLimit": _checkMinutes,
        "idleSeedingLimitEnabled": _checkBool,
    }

    def changed(self, changes: Dict[str, Any]) -> SessionSeedLimits:
        """
        @return: a copy with C{changes} applied.
        @raise ControlError: for an unknown name or a bad value.
        """
        return replace(self, **_checked(self._checks, changes))

    def toJSON(self) -> dict:
        """
        @return: a plain dict for the state file.
        """
        # Its fields are plain values: a copy of them (asdict's deep walk
        # cost 30 % of saving 10,000 torrents' state).
        return dict(vars(self))

    @classmethod
    def fromJSON(cls, data: Any) -> SessionSeedLimits:
        """
        Read back L{toJSON}'s dict (unknown keys ignored).

        @raise ControlError: for a bad value.
        """
        return cls().changed(_known(cls, data))


def _checked(checks, changes: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for name, value in changes.items():
        check = checks.get(name)
        if check is None:
            raise ControlError(f"unknown setting {name}")
        out[name] = check(value, name)
    return out


def _known(cls, data: Any) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise ControlError("seed limits must be an object")
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def effectiveRatio(torrent: SeedLimits, session: SessionSeedLimits) -> Optional[float]:
    """
    @return: the ratio limit in force for a torrent, or C{None}.
    """
    if torrent.seedRatioMode == MODE_SINGLE:
        return torrent.seedRatioLimit
    if torrent.seedRatioMode == MODE_GLOBAL and session.seedRatioLimited:
        return session.seedRatioLimit
    return None


def effectiveIdleMinutes(
    torrent: SeedLimits, session: SessionSeedLimits
) -> Optional[int]:
    """
    @return: the idle limit in force for a torrent (minutes), or C{None}.
    """
    if torrent.seedIdleMode == MODE_SINGLE:
        return torrent.seedIdleLimit
    if torrent.seedIdleMode == MODE_GLOBAL and session.idleSeedingLimitEnabled:
        return session.idleSeedingLimit
    return None


def ratioGoal(ratio: float, downloadedEver: int, sizeWhenDone: int) -> int:
    """
    @return: the bytes to upload, ever, to reach C{ratio}: of the bytes
        downloaded ever, or of the size when done for a torrent that
        downloaded nothing (added complete).
    """
    baseline = downloadedEver if downloadedEver else sizeWhenDone
    return int(baseline * ratio)


def uploadRatio(uploadedEver: int, downloadedEver: int, haveValid: int) -> float:
    """
    @return: the ratio Transmission shows (L{RATIO_NONE}, L{RATIO_INFINITE}
        when it cannot be computed).
    """
    denominator = downloadedEver if downloadedEver else haveValid
    if denominator:
        return uploadedEver / denominator
    return RATIO_INFINITE if uploadedEver else RATIO_NONE
