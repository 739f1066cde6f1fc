"""
Rate limits: token buckets, session-wide and per torrent, for downloads and
uploads, shaped by back-pressure rather than by dropping data.

The pieces:

  - L{TokenBucket}: bytes per second, refilled by the scheduler, holding at
    most L{BURST} seconds' worth.
  - L{SessionBandwidth}: the session's limits (Transmission's
    C{speed-limit-down/up} and the alternative "turtle" limits behind one
    switch), its two buckets, and the one timer (every L{TICK} seconds,
    only while some torrent is limited and has peers) that refills every
    bucket and shares it out.
  - L{TorrentBandwidth}: one torrent's limits and whether it honours the
    session's; it installs its L{TorrentLimiter}s in the torrent's
    coordinator (L{btorrent.engine.downloader.Downloader}) only while a
    limit applies, so that the unlimited path never consults a bucket.
  - L{TorrentLimiter}: one direction of one torrent, what the coordinator
    calls: C{charge(peer, nbytes)} after a block came or went,
    C{blocked(peer)} before a block is sent.

Sharing, every tick: what a peer did not use of its last grant goes back
to the buckets; a session bucket is shared max-min fairly between the
torrents under it that are active (a torrent's own, lower limit caps its
share and the rest goes to the others); a torrent's allowance is granted in
equal parts to its active peers (a peer is active if it is held back or
moved bytes in the last tick), taken from the buckets.  A peer moves bytes
against its credit; a block is charged whole, so the credit may go below
zero, and that overdraft is paid from its next grants (deficit round
robin: every peer gets its share over time whatever its block sizes).  A
peer out of credit is held back until a grant puts it in credit again:

  - download: reading from its transport pauses (C{pauseProducing}), so
    the sender's TCP window closes; the requester keeps at most about a
    second of the limit in flight to each peer (L{TorrentLimiter.depthCap});
    and each read is at most a tick of the limit (L{limitedReadSize}): a
    peer let go reads one small gulp, not 256 KiB that it then owes for a
    second while the other torrents' peers wait;
  - upload: the uploader sends no block to it (and its queue waits).

Unused allowance stays in the bucket (up to L{BURST} seconds' worth) for
the next tick.  Over any window the bytes moved are at most the rate times
the window, plus the burst, plus one read (64 KiB) or block per peer.  A
peer that has not moved anything for a tick gets no grant until it does
(one read or block on credit), so idle peers do not hold bandwidth.

Pure: the clock (C{seconds()}, C{callLater()}) is given, nothing here
imports C{twisted.internet}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Dict, Iterable, List, Optional

from btorrent.codec.wire import BLOCK_SIZE
from btorrent.control.api import ControlError
from btorrent.peer.framer import READ_SIZE, setReadSize

__all__ = [
    "BURST",
    "DOWN",
    "MAX_RATE",
    "MIN_LIMITED_DEPTH",
    "MIN_LIMITED_READ",
    "TICK",
    "UP",
    "SessionBandwidth",
    "SessionLimits",
    "TokenBucket",
    "TorrentBandwidth",
    "TorrentLimiter",
    "TorrentLimits",
    "checkRate",
    "limitedReadSize",
]

#: The two directions.
DOWN = "down"
UP = "up"

#: Seconds between two refills while a limit applies: fine enough that a
#: limit holds within a few percent over a few seconds.
TICK = 0.1

#: A bucket holds at most this many seconds of its rate.
BURST = 0.5

#: The highest limit, bytes/s: Transmission's highest (2**31 - 1 kB/s).
MAX_RATE = (2**31 - 1) * 1000

#: Requests in flight to a peer under a download limit, at least.
MIN_LIMITED_DEPTH = 4

#: The smallest read under a download limit, bytes.
MIN_LIMITED_READ = 16 * 1024

_INFINITY = float("inf")


def checkRate(value: Any, name: str) -> int:
    """
    A rate from a client, checked.

    @return: C{value}, bytes per second.
    @raise ControlError: unless an integer in 0..L{MAX_RATE}.
    """
    if type(value) is not int or not 0 <= value <= MAX_RATE:
        raise ControlError(
            f"{name} must be a whole number of bytes/s from 0 to {MAX_RATE}, "
            f"not {value!r}"[:200]
        )
    return value


def limitedReadSize(rate: Optional[int]) -> int:
    """
    Bytes a peer's transport reads at once under a download limit of
    C{rate} bytes/s: one tick's worth, from L{MIN_LIMITED_READ} up to the
    usual L{READ_SIZE} (which is also the size with no limit, C{None}).
    """
    if rate is None:
        return READ_SIZE
    return int(min(READ_SIZE, max(MIN_LIMITED_READ, rate * TICK)))


def _checkBool(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise ControlError(f"{name} must be true or false, not {value!r}"[:200])
    return value


class TokenBucket:
    """
    Bytes that may move now.

    @ivar rate: bytes per second added.
    @ivar tokens: bytes that may be granted.
    @ivar capacity: the most it holds.
    """

    __slots__ = ("rate", "tokens", "capacity")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.capacity = max(rate * BURST, 1.0)
        self.tokens = 0.0

    def refill(self, seconds: float) -> None:
        """
        Add C{seconds} worth of tokens (up to the capacity).
        """
        self.tokens = min(self.capacity, self.tokens + self.rate * seconds)

    def __repr__(self) -> str:
        return f"<TokenBucket {self.rate} B/s, {self.tokens:.0f} B>"


@dataclass(frozen=True)
class SessionLimits:
    """
    The session's rate limits, named as L{btorrent.control.api.SessionSettings}
    names them (bytes per second).
    """

    speedLimitDown: int = 100_000
    speedLimitDownEnabled: bool = False
    speedLimitUp: int = 100_000
    speedLimitUpEnabled: bool = False
    altSpeedDown: int = 50_000
    altSpeedUp: int = 50_000
    altSpeedEnabled: bool = False

    def rate(self, direction: str) -> Optional[int]:
        """
        @return: the limit in force in C{direction}: the alternative one
            while the turtle switch is on, else the regular one if enabled,
            else C{None} (unlimited).
        """
        down = direction == DOWN
        if self.altSpeedEnabled:
            return self.altSpeedDown if down else self.altSpeedUp
        if down:
            return self.speedLimitDown if self.speedLimitDownEnabled else None
        return self.speedLimitUp if self.speedLimitUpEnabled else None

    def toJSON(self) -> dict:
        """
        @return: a plain dict for the state file.
        """
        # Its fields are plain values: a copy of them (asdict's deep walk
        # cost 30 % of saving 10,000 torrents' state).
        return dict(vars(self))

    @classmethod
    def fromJSON(cls, data: Any) -> SessionLimits:
        """
        Read back L{toJSON}'s dict; unknown keys are ignored, bad values
        refused.

        @raise ControlError: for a bad value.
        """
        if not isinstance(data, dict):
            raise ControlError("session limits must be an object")
        return cls().changed(
            {k: v for k, v in data.items() if k in _SESSION_LIMIT_NAMES}
        )

    def changed(self, changes: Dict[str, Any]) -> SessionLimits:
        """
        @return: a copy with C{changes} (names of this class) applied.
        @raise ControlError: for an unknown name or a bad value.
        """
        for name, value in changes.items():
            if name not in _SESSION_LIMIT_NAMES:
                raise ControlError(f"unknown setting {name}")
            if name.endswith("Enabled"):
                _checkBool(value, name)
            else:
                checkRate(value, name)
        return replace(self, **changes)


_SESSION_LIMIT_NAMES = frozenset(f.name for f in fields(SessionLimits))


@dataclass(frozen=True)
class TorrentLimits:
    """
    One torrent's rate limits, named as L{btorrent.control.api.TorrentOptions}
    names them (bytes per second); a limit applies only when its
    C{...Limited} flag is set.
    """

    downloadLimit: int = 100_000
    downloadLimited: bool = False
    uploadLimit: int = 100_000
    uploadLimited: bool = False
    honorsSessionLimits: bool = True

    def rate(self, direction: str) -> Optional[int]:
        """
        @return: the torrent's own limit in C{direction}, or C{None}.
        """
        if direction == DOWN:
            return self.downloadLimit if self.downloadLimited else None
        return self.uploadLimit if self.uploadLimited else None

    def toJSON(self) -> dict:
        """
        @return: a plain dict for the state file.
        """
        # Its fields are plain values: a copy of them (asdict's deep walk
        # cost 30 % of saving 10,000 torrents' state).
        return dict(vars(self))

    @classmethod
    def fromJSON(cls, data: Any) -> TorrentLimits:
        """
        Read back L{toJSON}'s dict.

        @raise ControlError: for a bad value.
        """
        if not isinstance(data, dict):
            raise ControlError("torrent limits must be an object")
        return cls().changed(
            {k: v for k, v in data.items() if k in _TORRENT_LIMIT_NAMES}
        )

    def changed(self, changes: Dict[str, Any]) -> TorrentLimits:
        """
        @return: a copy with C{changes} applied.
        @raise ControlError: for an unknown name or a bad value.
        """
        for name, value in changes.items():
            if name not in _TORRENT_LIMIT_NAMES:
                raise ControlError(f"unknown limit {name}")
            if name.endswith("Limit"):
                checkRate(value, name)
            else:
                _checkBool(value, name)
        return replace(self, **changes)


_TORRENT_LIMIT_NAMES = frozenset(f.name for f in fields(TorrentLimits))


class _Consumer:
    """
    One peer in one direction: what it may still move (its quotas so far,
    less what it moved: a debt when negative, since a block is charged
    whole), and what it moved since the last tick.
    """

    __slots__ = ("credit", "spent", "blocked")

    def __init__(self) -> None:
        self.credit = 0.0
        self.spent = 0
        self.blocked = False


class TorrentLimiter:
    """
    One direction of one torrent: the buckets it answers to and its peers'
    quotas.  The coordinator calls L{charge} and L{blocked}; the scheduler
    calls L{distribute}.

    @ivar chain: the buckets every byte is charged to: the torrent's own
        (if limited), the session's (if limited and honoured).
    @ivar budget: bytes that may still move before C{onExhausted} is
        called and every peer is held back (C{None}: no such cap).  Used
        for the seed ratio: seeding stops at once when the goal is met.
    """

    def __init__(
        self,
        direction: str,
        hold: Callable[[Any], None],
        release: Callable[[Any], None],
        isConnected: Callable[[Any], bool],
    ) -> None:
        """
        @param direction: L{DOWN} or L{UP}.
        @param hold: C{hold(peer)} when a peer must wait.
        @param release: C{release(peer)} when it may go on.
        @param isConnected: whether a peer is still connected.
        """
        self.direction = direction
        self.hold = hold
        self.release = release
        self.isConnected = isConnected
        self.chain: List[TokenBucket] = []
        self.own: Optional[TokenBucket] = None
        self.session: Optional[TokenBucket] = None
        self.budget: Optional[float] = None
        self.onExhausted: Optional[Callable[[], None]] = None
        self._consumers: Dict[Any, _Consumer] = {}

    @property
    def needed(self) -> bool:
        """
        Whether this limiter must be consulted at all.
        """
        return bool(self.chain) or self.budget is not None

    @property
    def rate(self) -> Optional[int]:
        """
        The lowest rate of the chain, or C{None}.
        """
        if not self.chain:
            return None
        return min(bucket.rate for bucket in self.chain)

    # What the coordinator calls

    def charge(self, peer: Any, nbytes: int) -> None:
        """
        C{nbytes} of blocks moved to or from C{peer}: hold it back if that
        used up its credit.
        """
        if self.budget is not None:
            self.budget -= nbytes
            if self.budget <= 0:
                self._exhaust()
                return
        chain = self.chain
        if not chain:
            return
        consumer = self._consumers.get(peer)
        if consumer is None:
            consumer = self._consumers[peer] = _Consumer()
        consumer.spent += nbytes
        consumer.credit -= nbytes
        if consumer.credit <= 0 and not consumer.blocked:
            consumer.blocked = True
            self.hold(peer)

    def blocked(self, peer: Any) -> bool:
        """
        Whether C{peer} must wait before more bytes move.
        """
        if self.budget is not None and self.budget <= 0:
            return True
        consumer = self._consumers.get(peer)
        return consumer is not None and consumer.blocked

    def depthCap(self, peer: Any) -> int:
        """
        Requests to keep in flight to C{peer} at most: about one second of
        the limit.
        """
        rate = self.rate
        if rate is None:
            return 1 << 30
        return max(MIN_LIMITED_DEPTH, math.ceil(rate / BLOCK_SIZE))

    # What the scheduler calls

    @property
    def active(self) -> bool:
        """
        Whether some peer wants bandwidth (held back, or moved bytes in the
        last tick).
        """
        return any(c.blocked or c.spent for c in self._consumers.values())

    def prune(self) -> None:
        """
        Forget peers that are gone.
        """
        gone = [p for p in self._consumers if not self.isConnected(p)]
        for peer in gone:
            del self._consumers[peer]

    def reclaim(self) -> None:
        """
        Give the credit the peers did not use back to the buckets.
        """
        unused = 0.0
        for consumer in self._consumers.values():
            if consumer.credit > 0:
                unused += consumer.credit
                consumer.credit = 0.0
        if unused:
            for bucket in self.chain:
                bucket.tokens += unused

    def distribute(self, allowance: float) -> float:
        """
        A new tick: grant C{allowance} bytes, taken from the buckets, in
        equal parts to the active peers, and let go those held back that
        are in credit again.  A peer's overdraft (a block is charged whole)
        is paid from its next grants: deficit round robin.

        @return: the bytes granted.
        """
        consumers = self._consumers
        active = [p for p, c in consumers.items() if c.blocked or c.spent]
        quota = max(allowance, 0.0) / len(active) if active else 0.0
        exhausted = self.budget is not None and self.budget <= 0
        for consumer in consumers.values():
            consumer.spent = 0
        for peer in active:
            consumer = consumers[peer]
            consumer.credit += quota
            if consumer.blocked and consumer.credit > 0 and not exhausted:
                consumer.blocked = False
                self.release(peer)
        granted = quota * len(active)
        for bucket in self.chain:
            bucket.tokens -= granted
        return granted

    def releaseAll(self) -> None:
        """
        Forget every quota and let every peer held back go on (the limit
        was lifted).
        """
        consumers, self._consumers = self._consumers, {}
        if self.budget is not None and self.budget <= 0:
            return
        for peer, consumer in consumers.items():
            if consumer.blocked and self.isConnected(peer):
                self.release(peer)

    def _exhaust(self) -> None:
        callback, self.onExhausted = self.onExhausted, None
        if callback is not None:
            callback()

    def __repr__(self) -> str:
        return (
            f"<TorrentLimiter {self.direction} {self.rate} B/s, "
            f"{len(self._consumers)} peers>"
        )


class TorrentBandwidth:
    """
    One torrent's limits, wired into its coordinator while they apply.

    @ivar limits: the L{TorrentLimits}.
    @ivar limiters: C{{DOWN: TorrentLimiter, UP: TorrentLimiter}}.
    """

    def __init__(
        self, session: SessionBandwidth, limits: Optional[TorrentLimits] = None
    ):
        """
        @param session: the session's L{SessionBandwidth}.
        @param limits: the torrent's limits (default: none).
        """
        self.session = session
        self.limits = limits or TorrentLimits()
        self.downloader = None
        self._own: Dict[str, Optional[TokenBucket]] = {DOWN: None, UP: None}
        self.limiters = {
            DOWN: TorrentLimiter(
                DOWN, _pauseReading, self._resumeReading, self._connected
            ),
            UP: TorrentLimiter(UP, _nothing, self._serve, self._connected),
        }
        session._register(self)
        self._rechain()

    def _connected(self, peer) -> bool:
        downloader = self.downloader
        return downloader is not None and peer in downloader.peers

    def _resumeReading(self, peer) -> None:
        transport = _readingControl(peer)
        setReadSize(transport, limitedReadSize(self.limiters[DOWN].rate))
        resume = getattr(transport, "resumeProducing", None)
        if resume is not None:
            resume()

    def _serve(self, peer) -> None:
        downloader = self.downloader
        if downloader is not None:
            downloader.peerWritable(peer)

    def setLimits(self, **changes: Any) -> None:
        """
        Change the limits (names of L{TorrentLimits}); they apply at once.

        @raise ControlError: for a bad value (nothing is changed).
        """
        self.limits = self.limits.changed(changes)
        self._rechain()

    def setUploadBudget(
        self, budget: Optional[float], onExhausted: Optional[Callable[[], None]]
    ) -> None:
        """
        Cap the bytes uploaded from now on: at C{budget}, every peer is held
        back and C{onExhausted()} is called once (C{None}: no cap).
        """
        limiter = self.limiters[UP]
        limiter.budget = budget
        limiter.onExhausted = onExhausted
        self._install()

    def rate(self, direction: str) -> Optional[int]:
        """
        The limit in force in C{direction}: the lowest of the torrent's own
        and the session's (if honoured), or C{None}.
        """
        return self.limiters[direction].rate

    def attach(self, downloader) -> None:
        """
        Shape this coordinator's peers (its peers held back before are
        forgotten).
        """
        self.detach()
        self.downloader = downloader
        self._sizeReads()
        self._install()

    def detach(self) -> None:
        """
        Stop shaping the coordinator's peers (a stopped torrent).
        """
        downloader = self.downloader
        if downloader is None:
            return
        for limiter in self.limiters.values():
            limiter.releaseAll()
        downloader.downloadLimiter = None
        downloader.uploader.limiter = None
        downloader.requester.depthCap = None
        for peer in list(downloader.peers):
            setReadSize(_readingControl(peer), READ_SIZE)
        self.downloader = None

    def close(self) -> None:
        """
        The torrent is gone: detach, and leave the session.
        """
        self.detach()
        self.session._unregister(self)

    # Internals

    def _rechain(self) -> None:
        """
        Rebuild each direction's chain of buckets from the limits now in
        force, and rewire the coordinator.
        """
        honors = self.limits.honorsSessionLimits
        for direction, limiter in self.limiters.items():
            rate = self.limits.rate(direction)
            own = self._own[direction]
            if rate is None:
                own = None
            elif own is None or own.rate != rate:
                previous = own
                own = TokenBucket(rate)
                if previous is not None:
                    own.tokens = min(previous.tokens, own.capacity)
            self._own[direction] = own
            sessionBucket = self.session._buckets[direction] if honors else None
            chain = [b for b in (own, sessionBucket) if b is not None]
            wasLimited = bool(limiter.chain)
            limiter.own, limiter.session, limiter.chain = own, sessionBucket, chain
            if wasLimited and not chain:
                limiter.releaseAll()
        self._sizeReads()
        self._install()

    def _sizeReads(self) -> None:
        """
        Give every peer's transport the read size the download limit now in
        force calls for (a peer that connects later gets it when first let
        go).
        """
        downloader = self.downloader
        if downloader is None:
            return
        size = limitedReadSize(self.limiters[DOWN].rate)
        for peer in list(downloader.peers):
            setReadSize(_readingControl(peer), size)

    def _install(self) -> None:
        downloader = self.downloader
        if downloader is None:
            return
        down, up = self.limiters[DOWN], self.limiters[UP]
        downloader.downloadLimiter = down if down.needed else None
        downloader.uploader.limiter = up if up.needed else None
        capped = down.depthCap if down.chain else None
        # (A bound method is made anew at every lookup: compare, not "is".)
        if downloader.requester.depthCap != capped:
            downloader.requester.depthCap = capped
            # Size every pipeline again at the next fill.
            for record in list(downloader.peers.values()):
                record.queue.depthAt = 0.0
        if down.chain or up.chain:
            self.session._wake()

    @property
    def shaping(self) -> bool:
        """
        Whether the scheduler has work here: a limit applies and the
        torrent runs.
        """
        if self.downloader is None:
            return False
        return any(limiter.chain for limiter in self.limiters.values())


def _nothing(peer) -> None:
    pass


def _readingControl(peer) -> Any:
    return getattr(peer, "transport", None)


def _pauseReading(peer) -> None:
    pause = getattr(_readingControl(peer), "pauseProducing", None)
    if pause is not None:
        pause()


class SessionBandwidth:
    """
    The session's limits and the scheduler of every torrent's buckets.

    @ivar limits: the L{SessionLimits}.
    """

    def __init__(
        self, clock, limits: Optional[SessionLimits] = None, tick: float = TICK
    ) -> None:
        """
        @param clock: provides C{seconds()} and C{callLater()}.
        @param limits: the session's limits (default: none enabled).
        @param tick: seconds between refills.
        """
        self.clock = clock
        self.tick = tick
        self.limits = limits or SessionLimits()
        self._buckets: Dict[str, Optional[TokenBucket]] = {DOWN: None, UP: None}
        self._torrents: List[TorrentBandwidth] = []
        self._call = None
        self._last = 0.0
        self.ticks = 0
        self._rebuild()

    def setLimits(self, **changes: Any) -> None:
        """
        Change the session's limits (names of L{SessionLimits}); they apply
        at once to every torrent that honours them.

        @raise ControlError: for a bad value (nothing is changed).
        """
        self.limits = self.limits.changed(changes)
        self._rebuild()

    def rate(self, direction: str) -> Optional[int]:
        """
        The session's limit in force in C{direction}, or C{None}.
        """
        return self.limits.rate(direction)

    def _rebuild(self) -> None:
        for direction in (DOWN, UP):
            rate = self.limits.rate(direction)
            bucket = self._buckets[direction]
            if rate is None:
                bucket = None
            elif bucket is None or bucket.rate != rate:
                previous = bucket
                bucket = TokenBucket(rate)
                if previous is not None:
                    bucket.tokens = min(previous.tokens, bucket.capacity)
            self._buckets[direction] = bucket
        for torrent in list(self._torrents):
            torrent._rechain()

    def _register(self, torrent: TorrentBandwidth) -> None:
        self._torrents.append(torrent)

    def _unregister(self, torrent: TorrentBandwidth) -> None:
        if torrent in self._torrents:
            self._torrents.remove(torrent)

    def _wake(self) -> None:
        """
        A limit applies somewhere: make sure the timer runs.
        """
        if self._call is None:
            self._last = self.clock.seconds()
            self._call = self.clock.callLater(self.tick, self._tick)

    def stop(self) -> None:
        """
        Stop the timer (the session stops).
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _tick(self) -> None:
        self._call = None
        self.ticks += 1
        now = self.clock.seconds()
        elapsed = max(0.0, now - self._last)
        self._last = now
        shaping = [t for t in self._torrents if t.shaping]
        for direction in (DOWN, UP):
            self._share(direction, shaping, elapsed)
        if any(t.shaping for t in self._torrents):
            self._call = self.clock.callLater(self.tick, self._tick)

    def _share(
        self, direction: str, torrents: Iterable[TorrentBandwidth], elapsed: float
    ) -> None:
        """
        Refill the buckets of C{direction} and give every limited torrent's
        peers their quotas for the next tick.
        """
        sessionBucket = self._buckets[direction]
        if sessionBucket is not None:
            sessionBucket.refill(elapsed)
        limiters = []
        for torrent in torrents:
            limiter = torrent.limiters[direction]
            if not limiter.chain:
                continue
            if limiter.own is not None:
                limiter.own.refill(elapsed)
            limiter.prune()
            limiter.reclaim()
            limiters.append(limiter)
        # The session bucket, shared max-min fairly between the active
        # torrents under it (a torrent's own bucket caps its demand).
        shares: Dict[int, float] = {}
        if sessionBucket is not None:
            under = [
                lim for lim in limiters if lim.session is sessionBucket and lim.active
            ]
            remaining = max(sessionBucket.tokens, 0.0)
            demands = sorted(
                under,
                key=lambda lim: (
                    max(lim.own.tokens, 0.0) if lim.own is not None else _INFINITY
                ),
            )
            left = len(demands)
            for lim in demands:
                fair = remaining / left
                cap = max(lim.own.tokens, 0.0) if lim.own is not None else _INFINITY
                share = min(fair, cap)
                shares[id(lim)] = share
                remaining -= share
                left -= 1
        for lim in limiters:
            allowance = _INFINITY
            if lim.own is not None:
                allowance = max(lim.own.tokens, 0.0)
            if lim.session is not None:
                allowance = min(allowance, shares.get(id(lim), 0.0))
            lim.distribute(allowance)
