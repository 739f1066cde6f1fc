"""
The tracker server's state, with no I/O: which peers are in which swarm,
download counts, the UDP connection-id scheme and an announce-rate window.

Time comes from an injected clock (anything with C{seconds()}, such as the
reactor or L{twisted.internet.task.Clock}); randomness from an injected
L{random.Random}.  Nothing here imports C{twisted.internet}.

Policy, in one place:
  - peers are keyed by peer id within a swarm; a re-announce updates the
    address, port, C{left} and the time last seen.  From the IP address a
    peer id is recorded with, any announce may change or stop it; from
    another address only one carrying the non-zero C{key} of the first
    announce may (a peer that announced without a key, key 0, stays bound
    to its address until it stops or expires);
  - C{stopped} removes the peer;
  - a download is counted once per peer: when a peer known as a leecher
    announces C{left=0} (with C{completed}, no event, or C{stopped}: aria2
    with C{--seed-time=0} never sends C{completed}), or when an unknown peer
    announces C{completed} with C{left=0} (as opentracker does: a client
    that finished after a tracker restart still counts); a peer already
    known as a seed never counts again;
  - a peer not heard from within two announce intervals is dropped by
    L{Swarm.expire}; a swarm whose last peer goes is dropped at once, and
    its download count, if any, moves to a bounded archive
    (L{Swarm.archive}, least recently used evicted beyond C{maxArchived})
    which scrapes, the state file and a later announce of that info-hash
    read.  So a swarm held in L{Swarm.torrents} always has a peer: empty
    swarms never count against C{maxTorrents}, and a flood of C{completed}
    announces with random info-hashes costs at most C{maxArchived} small
    entries once its peers expire;
  - a peer list is a uniform random sample of up to C{numwant} peers (50
    by default, at most 200), never including the asking peer;
  - caps on swarms, peers per swarm, peers in total and archived counts
    bound the memory; a new swarm or peer beyond a cap gets a L{SwarmError}
    (the tracker sends it as a failure reason), peers already known may
    keep announcing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import os
import random
import struct
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

from btorrent.tracker.announce import encodeCompactPeers
from btorrent.util.rate import RateMeter

__all__ = [
    "AnnounceResult",
    "ConnectionIds",
    "DEFAULT_NUMWANT",
    "EVENTS",
    "MAX_NUMWANT",
    "PeerEntry",
    "RateWindow",
    "Swarm",
    "SwarmError",
    "SwarmStats",
    "Torrent",
    "normaliseHost",
]

#: Peers returned when the client does not say how many it wants.
DEFAULT_NUMWANT = 50
#: The most peers returned in one response, whatever the client asks.
MAX_NUMWANT = 200
#: Announce events, as the HTTP C{event} parameter spells them.
EVENTS = frozenset(["", "started", "completed", "stopped"])


class SwarmError(Exception):
    """
    An announce the tracker refuses; C{str(error)} is the failure reason
    sent to the client.
    """


@functools.lru_cache(maxsize=65536)
def normaliseHost(host: str) -> str:
    """
    The canonical text of an IP address: IPv4-mapped IPv6 addresses
    (C{::ffff:1.2.3.4}, from a dual-stack socket) become plain IPv4, IPv6
    addresses are compressed.  Cached: a tracker sees the same few
    addresses over and over, and parsing one costs microseconds.

    @raise ValueError: when C{host} is not an IP address literal.
    """
    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
    return str(address)


def isIPv6(host: str) -> bool:
    """
    Whether C{host} (as returned by L{normaliseHost}) is an IPv6 address.
    """
    return ":" in host


class PeerEntry:
    """
    One peer in one swarm.

    @ivar peerId: its 20-byte peer id.
    @ivar host: its IP address (normalised text).
    @ivar port: its listening port.
    @ivar left: bytes it still needs (0 for a seed).
    @ivar lastSeen: the clock's time of its last announce.
    @ivar key: the C{key} it first announced with (0: none).
    @ivar compact: its compact form (BEP 23 / BEP 7: 6 or 18 bytes), encoded
        once by L{btorrent.tracker.announce.encodeCompactPeers} when the
        address changes, so that a response joins bytes instead of parsing
        50 addresses again.
    """

    __slots__ = (
        "peerId",
        "host",
        "port",
        "left",
        "lastSeen",
        "index",
        "compact",
        "key",
    )

    def __init__(
        self, peerId: bytes, host: str, port: int, left: int, lastSeen: float
    ) -> None:
        self.peerId = peerId
        self.host = host
        self.port = port
        self.left = left
        self.lastSeen = lastSeen
        self.index = -1
        self.key = 0
        self.compact = encodeCompactPeers([(host, port)], v6=isIPv6(host))

    def move(self, host: str, port: int) -> None:
        """
        Set a new address (re-encoding the compact form only if it changed).
        """
        if host != self.host or port != self.port:
            self.host = host
            self.port = port
            self.compact = encodeCompactPeers([(host, port)], v6=isIPv6(host))

    @property
    def seed(self) -> bool:
        """
        Whether the peer has the whole torrent.
        """
        return self.left == 0

    def __repr__(self) -> str:
        return (
            f"PeerEntry({self.peerId!r}, {self.host!r}, {self.port}, "
            f"left={self.left}, lastSeen={self.lastSeen})"
        )


class Torrent:
    """
    The swarm of one info-hash.

    Peers are held both in a dict by peer id and in a list (each entry knows
    its index), so that a random sample costs O(numwant), not O(peers).

    @ivar downloaded: completed downloads counted so far.
    @ivar seeders: peers with C{left == 0}.
    """

    __slots__ = ("peers", "_list", "seeders", "downloaded")

    def __init__(self) -> None:
        self.peers: Dict[bytes, PeerEntry] = {}
        self._list: List[PeerEntry] = []
        self.seeders = 0
        self.downloaded = 0

    @property
    def leechers(self) -> int:
        """
        Peers that still need data.
        """
        return len(self.peers) - self.seeders

    def add(self, entry: PeerEntry) -> None:
        """
        Add a peer not yet in the swarm.
        """
        entry.index = len(self._list)
        self._list.append(entry)
        self.peers[entry.peerId] = entry
        if entry.seed:
            self.seeders += 1

    def remove(self, entry: PeerEntry) -> None:
        """
        Remove a peer of the swarm.
        """
        del self.peers[entry.peerId]
        last = self._list.pop()
        if last is not entry:
            last.index = entry.index
            self._list[entry.index] = last
        entry.index = -1
        if entry.seed:
            self.seeders -= 1

    def setLeft(self, entry: PeerEntry, left: int) -> None:
        """
        Update how much a peer still needs, keeping L{seeders} right.
        """
        if entry.seed:
            self.seeders -= 1
        entry.left = left
        if entry.seed:
            self.seeders += 1

    def sample(
        self, count: int, exclude: Optional[PeerEntry], rng: random.Random
    ) -> List[PeerEntry]:
        """
        Up to C{count} distinct peers chosen uniformly at random, never
        C{exclude}.
        """
        pool = self._list
        n = len(pool)
        if exclude is not None and exclude.index >= 0:
            # Sample from the list with the excluded peer's slot skipped.
            available = n - 1
            skip = exclude.index
        else:
            available = n
            skip = n
        if count <= 0 or available <= 0:
            return []
        if count >= available:
            return [p for i, p in enumerate(pool) if i != skip]
        # random.sample() costs ~0.4 us per pick in _randbelow; random() is
        # C and the float bias (2**-53) does not matter here.
        rand = rng.random
        if count * 2 <= available:
            # Few of many: draw until enough distinct indexes (< 2 draws
            # per pick on average).
            chosen: dict = {}
            while len(chosen) < count:
                chosen[int(rand() * available)] = None
            picks = list(chosen)
        else:
            # Most of a small pool (available < 2 * count <= 400): partial
            # Fisher-Yates shuffle.
            picks = list(range(available))
            for i in range(count):
                j = i + int(rand() * (available - i))
                picks[i], picks[j] = picks[j], picks[i]
            del picks[count:]
        return [pool[i if i < skip else i + 1] for i in picks]

    def __iter__(self):
        return iter(list(self._list))

    def __len__(self) -> int:
        return len(self._list)


class AnnounceResult:
    """
    What the tracker tells an announcing peer.

    @ivar peers: the sample of other peers (L{PeerEntry}).
    @ivar complete: seeders in the swarm.
    @ivar incomplete: leechers in the swarm.
    @ivar downloaded: completed downloads counted.
    @ivar interval: seconds until the next regular announce.
    @ivar minInterval: the least seconds between announces.
    """

    __slots__ = (
        "peers",
        "complete",
        "incomplete",
        "downloaded",
        "interval",
        "minInterval",
    )

    def __init__(
        self,
        peers: List[PeerEntry],
        complete: int,
        incomplete: int,
        downloaded: int,
        interval: int,
        minInterval: int,
    ) -> None:
        self.peers = peers
        self.complete = complete
        self.incomplete = incomplete
        self.downloaded = downloaded
        self.interval = interval
        self.minInterval = minInterval


class SwarmStats:
    """
    Totals over every swarm, for C{/stats}.

    @ivar torrents: swarms with at least one peer.
    @ivar archived: swarms with no peer whose download count is kept.
    @ivar downloaded: downloads counted, over both.
    """

    __slots__ = (
        "torrents",
        "peers",
        "seeders",
        "leechers",
        "downloaded",
        "archived",
    )

    def __init__(
        self,
        torrents: int,
        peers: int,
        seeders: int,
        leechers: int,
        downloaded: int,
        archived: int = 0,
    ) -> None:
        self.torrents = torrents
        self.peers = peers
        self.seeders = seeders
        self.leechers = leechers
        self.downloaded = downloaded
        self.archived = archived


class RateWindow:
    """
    Events per second over a sliding window of whole seconds: a
    L{btorrent.util.rate.RateMeter} counting events, averaged over the whole
    window (not the meter's age), as C{/stats} reports it.

    @param clock: provides C{seconds()}.
    @param window: the window in seconds.
    """

    def __init__(self, clock, window: int = 60) -> None:
        self._meter = RateMeter(clock, window)
        self._window = window

    def add(self, count: int = 1) -> None:
        """
        Record C{count} events now.
        """
        self._meter.update(count)

    def total(self) -> int:
        """
        Events within the last C{window} seconds (this second included).
        """
        return self._meter.windowTotal

    def perSecond(self) -> float:
        """
        The mean rate over the window.
        """
        return self.total() / self._window


class Swarm:
    """
    Every swarm the tracker knows.

    @param clock: provides C{seconds()}.
    @param rng: a L{random.Random} for peer samples.
    @param interval: seconds between regular announces (sent to clients).
    @param minInterval: the least seconds between announces (sent to
        clients).
    @param maxTorrents: the most swarms with peers held at once.
    @param maxPeersPerTorrent: the most peers in one swarm.
    @param maxPeers: the most peers over all swarms.
    @param allowed: if not C{None}, the only info-hashes served.
    @param maxArchived: the most download counts of swarms with no peers
        kept (the least recently announced or scraped go first).

    @ivar torrents: the swarms with at least one peer, by info-hash.
    @ivar archive: the download counts (above zero) of swarms with no peer,
        by info-hash, least recently used first.
    """

    def __init__(
        self,
        clock,
        rng: Optional[random.Random] = None,
        interval: int = 1800,
        minInterval: int = 900,
        maxTorrents: int = 100_000,
        maxPeersPerTorrent: int = 50_000,
        maxPeers: int = 1_000_000,
        allowed: Optional[Iterable[bytes]] = None,
        maxArchived: int = 100_000,
    ) -> None:
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self.interval = interval
        self.minInterval = minInterval
        self.maxTorrents = maxTorrents
        self.maxPeersPerTorrent = maxPeersPerTorrent
        self.maxPeers = maxPeers
        self.maxArchived = maxArchived
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.torrents: Dict[bytes, Torrent] = {}
        self.archive: OrderedDict[bytes, int] = OrderedDict()
        self._archivedDownloads = 0
        # Totals over the swarms with peers, kept as they change so that
        # stats() costs O(1), not a walk over 100,000 swarms per request.
        self._seeders = 0
        self._liveDownloads = 0
        self.peerCount = 0
        self.announces = RateWindow(clock)

    def isAllowed(self, infoHash: bytes) -> bool:
        """
        Whether the tracker serves C{infoHash}.
        """
        return self.allowed is None or infoHash in self.allowed

    def announce(
        self,
        infoHash: bytes,
        peerId: bytes,
        host: str,
        port: int,
        left: int,
        event: str = "",
        numwant: Optional[int] = None,
        key: int = 0,
    ) -> AnnounceResult:
        """
        Record an announce and choose the peers to send back.

        @param host: the peer's IP address (text; normalised here).
        @param numwant: peers wanted; C{None} or negative means the default
            (50); more than 200 means 200.
        @param key: the client's C{key} (0: none).  A peer id already in
            the swarm may be changed or stopped from another address only
            with the non-zero key it first gave: peer ids are public (the
            dictionary model sends them), so without this anyone could stop
            or take over another's entry.  An entry recorded without a key
            can be changed from its own address only.
        @raise SwarmError: for invalid values, a refused info-hash or a
            full tracker; the message is the failure reason.
        """
        self.announces.add()
        if type(infoHash) is not bytes or len(infoHash) != 20:
            raise SwarmError("info_hash must be 20 bytes")
        if type(peerId) is not bytes or len(peerId) != 20:
            raise SwarmError("peer_id must be 20 bytes")
        if not (1 <= port <= 65535):
            raise SwarmError("port must be 1..65535")
        if left < 0:
            raise SwarmError("left must not be negative")
        if event not in EVENTS:
            raise SwarmError("unknown event")
        try:
            host = normaliseHost(host)
        except ValueError:
            raise SwarmError("invalid ip address") from None
        if not self.isAllowed(infoHash):
            raise SwarmError("torrent not registered with this tracker")
        if numwant is None or numwant < 0:
            numwant = DEFAULT_NUMWANT
        numwant = min(numwant, MAX_NUMWANT)
        now = self._clock.seconds()

        torrent = self.torrents.get(infoHash)
        entry = torrent.peers.get(peerId) if torrent is not None else None
        if (
            entry is not None
            and entry.host != host
            and (entry.key == 0 or entry.key != key)
        ):
            raise SwarmError("peer_id in use from another address")

        if event == "stopped":
            if entry is not None:
                if left == 0 and not entry.seed:
                    # Finished, then stopped without a "completed" event
                    # (aria2 with --seed-time=0 does this).
                    self._countDownload(torrent)
                self._removePeer(infoHash, torrent, entry)
            if torrent is None:
                downloaded = self.archive.get(infoHash, 0)
                return AnnounceResult(
                    [], 0, 0, downloaded, self.interval, self.minInterval
                )
            return AnnounceResult(
                [],
                torrent.seeders,
                torrent.leechers,
                torrent.downloaded,
                self.interval,
                self.minInterval,
            )

        if torrent is None:
            if len(self.torrents) >= self.maxTorrents:
                raise SwarmError("tracker full: too many torrents")
            if self.peerCount >= self.maxPeers:
                raise SwarmError("tracker full: too many peers")
            torrent = self.torrents[infoHash] = Torrent()
            torrent.downloaded = self._unarchive(infoHash)
            self._liveDownloads += torrent.downloaded

        if entry is None:
            if len(torrent) >= self.maxPeersPerTorrent:
                raise SwarmError("torrent full: too many peers")
            # (A new swarm has no peer yet and passed the maxPeers check
            # above, so it always gets this one.)
            if self.peerCount >= self.maxPeers:
                raise SwarmError("tracker full: too many peers")
            if event == "completed" and left == 0:
                self._countDownload(torrent)
            entry = PeerEntry(peerId, host, port, left, now)
            entry.key = key
            seeders = torrent.seeders
            torrent.add(entry)
            self._seeders += torrent.seeders - seeders
            self.peerCount += 1
        else:
            if left == 0 and not entry.seed:
                # A known leecher now has everything: one download, whether
                # or not it says "completed".
                self._countDownload(torrent)
            entry.move(host, port)
            entry.lastSeen = now
            seeders = torrent.seeders
            torrent.setLeft(entry, left)
            self._seeders += torrent.seeders - seeders

        peers = torrent.sample(numwant, entry, self._rng)
        return AnnounceResult(
            peers,
            torrent.seeders,
            torrent.leechers,
            torrent.downloaded,
            self.interval,
            self.minInterval,
        )

    def _removePeer(self, infoHash: bytes, torrent: Torrent, entry: PeerEntry) -> None:
        """
        Remove one peer, and its swarm with the last one (its download
        count, if any, goes to the archive).
        """
        seeders = torrent.seeders
        torrent.remove(entry)
        self._seeders += torrent.seeders - seeders
        self.peerCount -= 1
        if not torrent.peers:
            del self.torrents[infoHash]
            self._liveDownloads -= torrent.downloaded
            self._archive(infoHash, torrent.downloaded)

    def _countDownload(self, torrent: Torrent) -> None:
        """
        One more download of a swarm with peers.
        """
        torrent.downloaded += 1
        self._liveDownloads += 1

    def _archive(self, infoHash: bytes, count: int) -> None:
        """
        Keep the download count of a swarm with no peer, as the most
        recently used; evict the least recently used beyond
        C{maxArchived}.
        """
        if count <= 0:
            return
        self._unarchive(infoHash)
        self.archive[infoHash] = count
        self._archivedDownloads += count
        while len(self.archive) > self.maxArchived:
            _, evicted = self.archive.popitem(last=False)
            self._archivedDownloads -= evicted

    def _unarchive(self, infoHash: bytes) -> int:
        """
        Take a download count out of the archive (0 if it holds none).
        """
        count = self.archive.pop(infoHash, 0)
        self._archivedDownloads -= count
        return count

    def scrape(self, infoHash: bytes) -> Tuple[int, int, int]:
        """
        The counts of one swarm: C{(complete, downloaded, incomplete)};
        C{(0, downloaded, 0)} for a swarm with no peer whose count is
        archived (which marks it as recently used); zeros for an unknown
        or refused info-hash.
        """
        torrent = self.torrents.get(infoHash)
        if torrent is None:
            count = self.archive.get(infoHash)
            if count is None:
                return (0, 0, 0)
            self.archive.move_to_end(infoHash)
            return (0, count, 0)
        return (torrent.seeders, torrent.downloaded, torrent.leechers)

    def expire(self) -> int:
        """
        Drop the peers not heard from within two announce intervals.

        @return: how many peers were dropped.
        """
        deadline = self._clock.seconds() - 2 * self.interval
        dropped = 0
        for infoHash, torrent in list(self.torrents.items()):
            for entry in torrent:
                if entry.lastSeen < deadline:
                    self._removePeer(infoHash, torrent, entry)
                    dropped += 1
        return dropped

    def stats(self) -> SwarmStats:
        """
        Totals over every swarm, kept up to date as announces come (a
        C{/stats} request costs no walk over the swarms).
        """
        return SwarmStats(
            len(self.torrents),
            self.peerCount,
            self._seeders,
            self.peerCount - self._seeders,
            self._liveDownloads + self._archivedDownloads,
            len(self.archive),
        )

    def downloadCounts(self) -> Dict[bytes, int]:
        """
        The downloads counted per info-hash (only those above zero): what
        the state file keeps.  At most C{maxArchived + maxTorrents}
        entries, in the order L{restoreDownloadCounts} takes them: archived
        counts least recently used first, then the swarms with peers.
        """
        counts = dict(self.archive)
        counts.update(
            (h, t.downloaded) for h, t in self.torrents.items() if t.downloaded
        )
        return counts

    def restoreDownloadCounts(self, counts: Dict[bytes, int]) -> int:
        """
        Set download counts, as read from a state file (in
        L{downloadCounts}' order), within the allow-list.  They go to the
        archive (a swarm with peers takes its count at once): when there
        are more than C{maxArchived}, the last ones are kept.

        @return: how many counts were taken.
        """
        valid = [
            (infoHash, count)
            for infoHash, count in counts.items()
            if len(infoHash) == 20 and count > 0 and self.isAllowed(infoHash)
        ]
        taken = 0
        for infoHash, count in valid[max(0, len(valid) - self.maxArchived) :]:
            torrent = self.torrents.get(infoHash)
            if torrent is not None:
                self._liveDownloads += count - torrent.downloaded
                torrent.downloaded = count
            else:
                self._archive(infoHash, count)
            taken += 1
        return taken


class ConnectionIds:
    """
    Stateless, unforgeable BEP 15 connection ids.

    An id is the first 8 bytes of HMAC-SHA256(secret, epoch, IP address),
    where the epoch is the clock's time divided by C{period}.  An id is
    accepted in its own epoch and the next two, so it is valid for between
    2 x C{period} and 3 x C{period} seconds after it was issued (120 to
    180 s by default): the two minutes BEP 15 asks of a tracker (clients
    reuse an id for one minute), whatever the phase of the epoch it was
    issued in.  Nothing is stored per client, and
    only a client that receives the connect reply at its address can know
    the id, so the tracker cannot be made to send announce replies to a
    forged source address.

    The id is bound to the IP address, not the UDP port (as opentracker
    does): a NAT may move a client to another source port between connect
    and announce, and libtorrent caches connection ids per tracker for the
    whole process, so two sessions in one process (two source ports) share
    one id.  Binding the port too would refuse both, and gains nothing
    against spoofing: the attacker would still have to receive at the IP.

    @param clock: provides C{seconds()}.
    @param secret: the HMAC key; random by default (ids do not survive a
        restart, clients just connect again).
    @param period: seconds per epoch.
    """

    #: Epochs in which an id is accepted: its own and the two after it.
    ACCEPTED_EPOCHS = 3

    def __init__(self, clock, secret: Optional[bytes] = None, period: int = 60):
        self._clock = clock
        self._secret = secret if secret is not None else os.urandom(32)
        self._period = period

    def _mac(self, epoch: int, host: str) -> bytes:
        message = struct.pack("!q", epoch) + host.encode("ascii", "replace")
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:8]

    def _epoch(self) -> int:
        return int(self._clock.seconds() // self._period)

    def make(self, host: str) -> int:
        """
        The connection id for a client at IP address C{host}, now.
        """
        return struct.unpack("!Q", self._mac(self._epoch(), host))[0]

    def check(self, connectionId: int, host: str) -> bool:
        """
        Whether C{connectionId} was issued to C{host} in this epoch or one
        of the C{ACCEPTED_EPOCHS - 1} before it.
        """
        if not (0 <= connectionId <= 0xFFFFFFFFFFFFFFFF):
            return False
        given = struct.pack("!Q", connectionId)
        epoch = self._epoch()
        return any(
            hmac.compare_digest(self._mac(epoch - age, host), given)
            for age in range(self.ACCEPTED_EPOCHS)
        )
