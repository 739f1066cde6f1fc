"""
The L{Announcer}: one service per torrent that keeps its trackers informed
and hands the peers they list to the torrent.

Trackers are grouped in tiers (BEP 12).  Each tier is shuffled once; the
tiers are tried in order, and within a tier the trackers in order, until one
answers; a tracker that answers moves to the front of its tier, and the next
tier is tried only when every tracker of a tier failed.  Events: C{started}
when the service starts (repeated until a tracker acknowledges it),
C{completed} once when the torrent says so, C{stopped} when the service
stops, with a bounded wait so that the daemon stops promptly.  Between
events, regular announces follow the tracker's interval; failures back off
exponentially.  A tracker failure is logged with the URL and the reason and
never stops the torrent; an announce cancelled because the announcer stops
is no failure and is not logged.  What a tracker says is logged bounded
(L{trackerText}), and a C{tracker id} longer than L{MAX_TRACKER_ID} bytes is
dropped with a warning rather than sent back with every announce.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from btorrent.interfaces import ITrackerClient
from btorrent.tracker.announce import (
    MAX_ERROR_TEXT,
    MAX_TRACKER_ID,
    AnnounceRequest,
    AnnounceResponse,
    TrackerError,
    trackerText,
)
from btorrent.util import logs

__all__ = [
    "Announcer",
    "TrackerResult",
    "makeAnnouncer",
    "makeClient",
    "MIN_INTERVAL",
    "MAX_INTERVAL",
    "BACKOFF_BASE",
    "BACKOFF_MAX",
]


@dataclass(frozen=True)
class TrackerResult:
    """
    How the last announce to one tracker went.

    @ivar when: when it ended (clock seconds).
    @ivar succeeded: whether the tracker answered.
    @ivar text: C{"Success"}, or why it failed (one line).
    @ivar peers: peers it listed.
    """

    when: float
    succeeded: bool
    text: str
    peers: int = 0


#: The shortest and the longest wait between regular announces, in seconds,
#: whatever a tracker asks for.
MIN_INTERVAL = 60.0
MAX_INTERVAL = 7200.0
#: The wait after the first failed announce, doubled after each further
#: failure up to L{BACKOFF_MAX}.
BACKOFF_BASE = 15.0
BACKOFF_MAX = 1800.0

log = Logger(observer=logs.observer)


def makeClient(
    url: str,
    reactor,
    httpTimeout: float = 30.0,
    udpProtocol=None,
    udpRetransmitBase: float = 15.0,
    udpMaxRetries: int = 2,
) -> Optional[ITrackerClient]:
    """
    A tracker client for C{url}, or C{None} (logged) when its scheme is not
    supported (for example C{wss://}) or the URL is malformed.

    @param udpProtocol: the L{btorrent.tracker.udp.UDPTrackerProtocol} for
        UDP trackers; by default the process-wide one.
    @param udpMaxRetries: retransmissions of a UDP request.  BEP 15 allows 8
        (more than two hours of waiting); a tier of dead UDP trackers would
        then hold back the next tier that long, so fewer are used here.
    """
    from btorrent.tracker.http import HTTPTrackerClient
    from btorrent.tracker.udp import UDPTrackerClient

    scheme = url.split(":", 1)[0].lower()
    try:
        if scheme in ("http", "https"):
            return HTTPTrackerClient(url, reactor, timeout=httpTimeout)
        if scheme == "udp":
            return UDPTrackerClient(
                url,
                reactor,
                retransmitBase=udpRetransmitBase,
                maxRetries=udpMaxRetries,
                protocol=udpProtocol,
            )
    except TrackerError as e:
        log.warn(
            "Skipping tracker {url}: {reason}",
            url=url,
            reason=trackerText(str(e), MAX_ERROR_TEXT),
        )
        return None
    log.warn(
        "Skipping tracker {url}: unsupported scheme {scheme!r}", url=url, scheme=scheme
    )
    return None


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


class Announcer(Service):
    """
    Announces one torrent to its trackers.

    @ivar tiers: lists of L{ITrackerClient}, in the order they are tried.
    @ivar lastResponse: the last L{AnnounceResponse}, or C{None}.
    @ivar lastError: a description of the last failed announce, or C{None}.
    @ivar nextAnnounceAt: when the next announce is due (clock seconds), or
        C{None}.
    @ivar workingClient: the client that answered last, or C{None}.
    @ivar succeeded: announces a tracker answered (one per tracker asked,
        the C{stopped} one included).
    @ivar failed: announces a tracker failed (an error, a refusal, no
        answer in time; not those cancelled because we stopped).
    @ivar results: the last L{TrackerResult} of each tracker asked, by
        URL.
    """

    def __init__(
        self,
        target,
        tiers: Sequence[Sequence[ITrackerClient]],
        clock,
        rng: random.Random,
        stopTimeout: float = 3.0,
        numwant: int = 50,
        ourAddresses: Iterable[str] = (),
    ) -> None:
        """
        @param target: provides L{btorrent.interfaces.IAnnounceTarget}.
        @param tiers: BEP 12 tiers of tracker clients.
        @param clock: provides C{IReactorTime}.
        @param rng: shuffles the tiers and draws the C{key}.
        @param stopTimeout: the longest wait for the C{stopped} announce.
        @param ourAddresses: our own IP addresses besides loopback; a peer
            at one of them on our port is ourselves.
        """
        self.target = target
        self.clock = clock
        self.rng = rng
        self.stopTimeout = stopTimeout
        self.numwant = numwant
        self.ourAddresses = {str(ipaddress.ip_address(a)) for a in ourAddresses}
        self.tiers: List[List[ITrackerClient]] = []
        for tier in tiers:
            clients = list(tier)
            if clients:
                rng.shuffle(clients)
                self.tiers.append(clients)
        self.key = rng.getrandbits(32)
        self.lastResponse: Optional[AnnounceResponse] = None
        self.lastError: Optional[str] = None
        self.nextAnnounceAt: Optional[float] = None
        self.workingClient: Optional[ITrackerClient] = None
        self.succeeded = 0
        self.failed = 0
        self.results: Dict[str, TrackerResult] = {}
        self._started = False
        self._completedPending = False
        self._completedSent = False
        self._call = None
        self._inFlight: Optional[defer.Deferred] = None
        self._failures = 0
        self._lastAnnounce: Optional[float] = None
        self._minInterval = 0.0
        self._trackerIds: dict = {}

    @classmethod
    def fromTrackers(
        cls,
        target,
        trackers: Sequence[Sequence[str]],
        reactor,
        rng: random.Random,
        httpTimeout: float = 30.0,
        udpProtocol=None,
        udpRetransmitBase: float = 15.0,
        udpMaxRetries: int = 2,
        **kwargs,
    ) -> Announcer:
        """
        Build an announcer from tiers of URLs (C{Metainfo.trackers}),
        skipping duplicates and unsupported schemes.

        @param reactor: for the clients (TCP, UDP, time) and as the clock.
        @param kwargs: passed on to L{Announcer.__init__}.
        """
        seen = set()
        tiers = []
        for tier in trackers:
            clients = []
            for url in tier:
                if url in seen:
                    continue
                seen.add(url)
                client = makeClient(
                    url,
                    reactor,
                    httpTimeout=httpTimeout,
                    udpProtocol=udpProtocol,
                    udpRetransmitBase=udpRetransmitBase,
                    udpMaxRetries=udpMaxRetries,
                )
                if client is not None:
                    clients.append(client)
            tiers.append(clients)
        return cls(target, tiers, reactor, rng, **kwargs)

    # --- service ----------------------------------------------------------

    def startService(self) -> None:
        """
        Announce C{started} now.
        """
        super().startService()
        self._failures = 0
        if not self.tiers:
            log.info(
                "No usable tracker for {infoHash}", infoHash=self.target.infoHash.hex()
            )
            return
        self._announce()

    def stopService(self) -> defer.Deferred:
        """
        Stop announcing and tell the tracker that answered last that we
        stopped.

        @return: a L{Deferred} firing once the C{stopped} announce is
            answered or failed, or after C{stopTimeout} seconds, whichever is
            first; it never fails.
        """
        super().stopService()
        self._cancelCall()
        if self._inFlight is not None:
            self._inFlight.cancel()
        client = self.workingClient
        if not self._started or client is None:
            return defer.succeed(None)
        self._started = False
        request = self._request("stopped")
        d = self._announceTo(client, request)
        d.addTimeout(self.stopTimeout, self.clock)

        def answered(_) -> None:
            self.succeeded += 1

        def failed(f: Failure) -> None:
            self.failed += 1
            reason = (
                f"no answer within {self.stopTimeout:g} s"
                if f.check(defer.TimeoutError, defer.CancelledError)
                else trackerText(f.getErrorMessage(), MAX_ERROR_TEXT)
            )
            log.warn(
                "Tracker {url} failed the stopped announce: {reason}",
                url=client.url,
                reason=reason,
            )

        d.addCallbacks(answered, failed)
        return d

    def abandon(self) -> None:
        """
        Stop announcing without a C{stopped} announce: another announcer of
        the same torrent takes over at once (a magnet link's metadata phase
        ends and the torrent's own announcer starts), and a C{stopped} racing
        its C{started} could make the tracker forget us.
        """
        if self.running:
            super().stopService()
        self._cancelCall()
        if self._inFlight is not None:
            self._inFlight.cancel()
        self._started = False

    # --- what the torrent calls ------------------------------------------

    def completed(self) -> None:
        """
        The download just completed: announce C{completed} (once).
        """
        if self._completedSent or self._completedPending:
            return
        self._completedPending = True
        if self.running and self._started and self._inFlight is None:
            self._announce()

    def announceNow(self, force: bool = False) -> None:
        """
        Announce as soon as allowed: now, or, unless C{force}, once the
        tracker's C{min interval} since the last announce has passed.
        """
        if not self.running or self._inFlight is not None or not self.tiers:
            return
        if not force and self._lastAnnounce is not None:
            earliest = self._lastAnnounce + self._minInterval
            now = self.clock.seconds()
            if now < earliest:
                if self.nextAnnounceAt is None or self.nextAnnounceAt > earliest:
                    self._schedule(earliest - now)
                return
        self._announce()

    # --- internals --------------------------------------------------------

    def _request(self, event: str) -> AnnounceRequest:
        t = self.target
        return AnnounceRequest(
            infoHash=t.infoHash,
            peerId=t.peerId,
            port=t.port,
            uploaded=t.uploaded,
            downloaded=t.downloaded,
            left=t.left,
            event=event,
            numwant=0 if event == "stopped" else self.numwant,
            key=self.key,
        )

    def _cancelCall(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.nextAnnounceAt = None

    def _schedule(self, delay: float) -> None:
        self._cancelCall()
        self._call = self.clock.callLater(delay, self._announce)
        self.nextAnnounceAt = self.clock.seconds() + delay

    def _nextEvent(self) -> str:
        if not self._started:
            return "started"
        if self._completedPending:
            return "completed"
        return ""

    def _announceTo(self, client: ITrackerClient, request: AnnounceRequest):
        trackerId = self._trackerIds.get(client)
        if trackerId is not None:
            request = replace(request, trackerId=trackerId)
        return defer.maybeDeferred(client.announce, request)

    def _announce(self) -> None:
        self._cancelCall()
        if self._inFlight is not None or not self.running:
            return
        event = self._nextEvent()
        d = self._inFlight = self._walk(self._request(event))
        d.addCallbacks(
            self._succeeded,
            self._failed,
            callbackArgs=(event,),
            errbackArgs=(event,),
        )
        d.addErrback(
            lambda f: log.failure("Announcer bug for {url}", f, url=self._urls())
        )

    def _urls(self) -> List[str]:
        return [c.url for tier in self.tiers for c in tier]

    @defer.inlineCallbacks
    def _walk(self, request: AnnounceRequest):
        """
        Try the tiers in order until a tracker answers.

        @return: a L{Deferred} firing with C{(client, response)} or failing
            with L{TrackerError} when every tracker failed.
        """
        for tier in self.tiers:
            for client in list(tier):
                try:
                    response = yield self._announceTo(client, request)
                except defer.CancelledError:
                    raise
                except Exception as e:
                    if not self.running:
                        # Stopped while waiting: the announce was cancelled,
                        # whatever the client made of that.  Nothing failed,
                        # and no other tracker is to be asked.
                        raise defer.CancelledError() from None
                    self.failed += 1
                    if isinstance(e, TrackerError):
                        reason = trackerText(str(e), MAX_ERROR_TEXT)
                        log.warn(
                            "Tracker {url} failed: {reason}",
                            url=client.url,
                            reason=reason,
                        )
                    else:
                        reason = "internal error"
                        log.failure(
                            "Tracker {url} failed unexpectedly",
                            Failure(),
                            url=client.url,
                        )
                    self.results[client.url] = TrackerResult(
                        self.clock.seconds(), False, reason
                    )
                    continue
                self.succeeded += 1
                self.results[client.url] = TrackerResult(
                    self.clock.seconds(), True, "Success", len(response.peers)
                )
                tier.remove(client)
                tier.insert(0, client)
                return client, response
        raise TrackerError("no tracker answered")

    def _succeeded(
        self, result: Tuple[ITrackerClient, AnnounceResponse], event: str
    ) -> None:
        client, response = result
        if response.trackerId is not None and len(response.trackerId) > MAX_TRACKER_ID:
            log.warn(
                "Tracker {url} sent a tracker id of {length} bytes; ignoring it "
                "(at most {limit} are sent back)",
                url=client.url,
                length=len(response.trackerId),
                limit=MAX_TRACKER_ID,
            )
            response = replace(response, trackerId=None)
        self._inFlight = None
        self._failures = 0
        self.lastResponse = response
        self.lastError = None
        self.workingClient = client
        self._lastAnnounce = self.clock.seconds()
        if response.trackerId:
            self._trackerIds[client] = response.trackerId
        if event == "started":
            self._started = True
        elif event == "completed":
            self._completedPending = False
            self._completedSent = True
        self._minInterval = _clamp(response.minInterval or 0, 0, MAX_INTERVAL)
        interval = _clamp(
            max(response.interval, self._minInterval), MIN_INTERVAL, MAX_INTERVAL
        )
        log.info(
            "Tracker {url} answered the {event} announce: {peers} peers, "
            "next in {interval:.0f} s",
            url=client.url,
            event=event or "regular",
            peers=len(response.peers),
            interval=interval,
        )
        if self.running:
            if self._completedPending:
                self._announce()
            else:
                self._schedule(interval)
        peers = self._filterPeers(response.peers)
        if peers:
            try:
                self.target.addPeers(peers)
            except Exception:
                log.failure("The torrent refused peers from {url}", url=client.url)

    def _failed(self, failure: Failure, event: str) -> None:
        self._inFlight = None
        if failure.check(defer.CancelledError) or not self.running:
            return
        failure.trap(TrackerError)
        delay = min(BACKOFF_BASE * 2**self._failures, BACKOFF_MAX)
        self._failures += 1
        self.lastError = trackerText(failure.getErrorMessage(), MAX_ERROR_TEXT)
        log.warn(
            "No tracker answered the {event} announce of {infoHash} "
            "({count} trackers); next try in {delay:.0f} s",
            event=event or "regular",
            infoHash=self.target.infoHash.hex(),
            count=len(self._urls()),
            delay=delay,
        )
        self._schedule(delay)

    def _isOurs(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return (
            address.is_loopback
            or address.is_unspecified
            or str(address) in self.ourAddresses
        )

    def _filterPeers(self, peers: Iterable[Tuple[str, int]]) -> List[Tuple[str, int]]:
        """
        Deduplicate and drop ourselves (our port at a loopback or our own
        address).
        """
        out = []
        seen = set()
        ourPort = self.target.port
        for host, port in peers:
            if (host, port) in seen:
                continue
            seen.add((host, port))
            if port == ourPort and self._isOurs(host):
                continue
            out.append((host, port))
        return out


def makeAnnouncer(
    target,
    trackers: Sequence[Sequence[str]],
    reactor,
    rng: Optional[random.Random] = None,
    **kwargs,
) -> Announcer:
    """
    The announcer of C{target} over tiers of tracker URLs: a shortcut for
    L{Announcer.fromTrackers} with a freshly seeded random source.

    @param kwargs: passed on to L{Announcer.fromTrackers} (for example
        C{udpProtocol}, C{httpTimeout}, C{stopTimeout}).
    """
    if rng is None:
        rng = random.Random()
    return Announcer.fromTrackers(target, trackers, reactor, rng, **kwargs)
