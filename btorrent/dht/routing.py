"""
The DHT routing table (BEP 5): k-buckets over the 160-bit id space.

The table starts as one bucket covering the whole space.  A full bucket is
split in two only when it covers our own id, so the table knows many nodes
close to us and few far away.

Only nodes that have answered one of our queries enter the table (a node
that merely queried us is pinged first by L{btorrent.dht.node}; an address
can be spoofed, an answer to our transaction cannot easily).  A node is:
  - B{good} if it answered us within the last 15 minutes, or answered us
    once and queried us within the last 15 minutes;
  - B{bad} once it failed to answer L{MAX_FAILURES} queries in a row;
  - B{questionable} otherwise (one failed query makes a node questionable).

When a node arrives for a full bucket: a bad node is replaced by it; else
the bucket is split if it covers our id; else, if some nodes are
questionable, the newcomer waits in the bucket's replacement cache and the
caller is told which questionable nodes to ping (the least recently seen
first): one that fails twice turns bad and the best replacement takes its
place.  When every node is good, the newcomer only waits in the replacement
cache (bounded to k), ready for when one goes bad.

Nodes are keyed by their C{(host, port)}: one entry per address.  Our own
id and our own address are refused.

Pure: time is a number passed in by the caller.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
from bisect import bisect_right
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = [
    "Bucket",
    "GOOD_INTERVAL",
    "ID_BITS",
    "K",
    "MAX_FAILURES",
    "NodeEntry",
    "REFRESH_INTERVAL",
    "RoutingTable",
    "isUsableAddress",
    "parseSavedNodes",
]

Address = Tuple[str, int]

#: Nodes per bucket.
K = 8
#: Ids are 160 bits.
ID_BITS = 160
#: A node that answered (or queried, having answered once) within this many
#: seconds is good.
GOOD_INTERVAL = 15 * 60.0
#: A bucket unchanged for this many seconds wants a refresh.
REFRESH_INTERVAL = 15 * 60.0
#: Unanswered queries in a row that make a node bad (BEP 5: try once more
#: before discarding a node).
MAX_FAILURES = 2


def isUsableAddress(address: Address) -> bool:
    """
    Whether C{address} may be a DHT node's: an IPv4 dotted quad that is not
    in 0.0.0.0/8, multicast or broadcast, and a port in 1..65535.  Loopback
    and private addresses are allowed (tests, LANs).
    """
    try:
        host, port = address
    except (ValueError, TypeError):
        return False
    if type(port) is not int or not 0 < port <= 0xFFFF or type(host) is not str:
        return False
    return _usableHost(host)


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


@functools.lru_cache(maxsize=4096)
def _usableHost(host: str) -> bool:
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return not (ip.is_multicast or ip == _BROADCAST or ip in _THIS_NETWORK)


class NodeEntry:
    """
    One node the table knows.

    @ivar nodeId: its 20-byte id.
    @ivar address: its C{(host, port)}.
    @ivar lastResponse: when it last answered one of our queries.
    @ivar lastQuery: when it last queried us (C{None}: never).
    @ivar failures: queries it failed to answer since its last answer.
    """

    __slots__ = ("nodeId", "key", "address", "lastResponse", "lastQuery", "failures")

    def __init__(self, nodeId: bytes, address: Address, now: float) -> None:
        self.nodeId = nodeId
        self.key = int.from_bytes(nodeId, "big")
        self.address = address
        self.lastResponse = now
        self.lastQuery: Optional[float] = None
        self.failures = 0

    def isBad(self) -> bool:
        """
        Whether it failed L{MAX_FAILURES} queries in a row.
        """
        return self.failures >= MAX_FAILURES

    def isGood(self, now: float) -> bool:
        """
        Whether it is good at C{now} (BEP 5); a node that failed to answer
        since its last answer is not.
        """
        if self.failures:
            return False
        if now - self.lastResponse < GOOD_INTERVAL:
            return True
        return self.lastQuery is not None and now - self.lastQuery < GOOD_INTERVAL

    def lastSeen(self) -> float:
        """
        The last time we heard from it, answer or query.
        """
        if self.lastQuery is None:
            return self.lastResponse
        return max(self.lastResponse, self.lastQuery)

    def __repr__(self) -> str:
        return (
            f"<NodeEntry {self.nodeId.hex()[:8]} {self.address[0]}:{self.address[1]}"
            f" failures={self.failures}>"
        )


class Bucket:
    """
    The nodes whose ids fall in C{[low, high)}.

    @ivar nodes: up to k entries, least recently seen first.
    @ivar replacements: up to k entries waiting for a place, most recent
        last.
    @ivar lastChanged: when a node was last added, replaced or answered.
    """

    __slots__ = ("low", "high", "nodes", "replacements", "lastChanged")

    def __init__(self, low: int, high: int, now: float) -> None:
        self.low = low
        self.high = high
        self.nodes: List[NodeEntry] = []
        self.replacements: List[NodeEntry] = []
        self.lastChanged = now

    def covers(self, key: int) -> bool:
        """
        Whether id C{key} (an integer) falls in this bucket.
        """
        return self.low <= key < self.high

    def randomId(self, rng) -> bytes:
        """
        A random id in this bucket's range (a refresh target).

        @param rng: a C{random.Random}.
        """
        key = self.low + rng.randrange(self.high - self.low)
        return key.to_bytes(20, "big")

    def __repr__(self) -> str:
        width = (self.high - self.low).bit_length() - 1
        return f"<Bucket 2^{width} at {self.low:040x} nodes={len(self.nodes)}>"


class RoutingTable:
    """
    k-buckets around our own id.

    @ivar ownId: our node id.
    @ivar ownAddress: our own C{(host, port)} if known (refused as a node).
    @ivar buckets: the buckets, in id order, covering the whole space.
    """

    def __init__(
        self,
        ownId: bytes,
        now: float,
        k: int = K,
        ownAddress: Optional[Address] = None,
    ) -> None:
        if type(ownId) is not bytes or len(ownId) != 20:
            raise ValueError("own id must be 20 bytes")
        self.ownId = ownId
        self.ownKey = int.from_bytes(ownId, "big")
        self.ownAddress = ownAddress
        self.k = k
        self.buckets: List[Bucket] = [Bucket(0, 1 << ID_BITS, now)]
        self._lows: List[int] = [0]
        self._byAddress: Dict[Address, NodeEntry] = {}
        self._byId: Dict[bytes, NodeEntry] = {}

    def __len__(self) -> int:
        return len(self._byAddress)

    def __iter__(self) -> Iterator[NodeEntry]:
        for bucket in self.buckets:
            yield from bucket.nodes

    def __contains__(self, address: Address) -> bool:
        return address in self._byAddress

    def get(self, address: Address) -> Optional[NodeEntry]:
        """
        The entry at C{address}, if any.
        """
        return self._byAddress.get(address)

    def bucketFor(self, nodeId: bytes) -> Bucket:
        """
        The bucket whose range holds C{nodeId}.
        """
        key = int.from_bytes(nodeId, "big")
        return self.buckets[bisect_right(self._lows, key) - 1]

    def refuses(self, nodeId: bytes, address: Address) -> bool:
        """
        Whether C{(nodeId, address)} can never enter the table: our own id
        or address, an id that is not 20 bytes, an unusable address.
        """
        return (
            type(nodeId) is not bytes
            or len(nodeId) != 20
            or nodeId == self.ownId
            or address == self.ownAddress
            or not isUsableAddress(address)
        )

    def wants(self, nodeId: bytes, address: Address, now: float) -> bool:
        """
        Whether an answer from C{(nodeId, address)} would put it in the
        table (or refresh it): used to decide whether a node that queried us
        is worth a ping.
        """
        if self.refuses(nodeId, address):
            return False
        known = self._byAddress.get(address)
        if known is not None:
            return known.nodeId == nodeId and not known.isGood(now)
        if nodeId in self._byId:
            return False
        bucket = self.bucketFor(nodeId)
        if len(bucket.nodes) < self.k or self._splittable(bucket):
            return True
        return any(not n.isGood(now) for n in bucket.nodes)

    def queried(self, nodeId: bytes, address: Address, now: float) -> bool:
        """
        A node queried us: refresh its C{lastQuery} if we know it at that
        address with that id.

        @return: whether it is in the table.
        """
        entry = self._byAddress.get(address)
        if entry is None or entry.nodeId != nodeId:
            return False
        entry.lastQuery = now
        return True

    def responded(self, nodeId: bytes, address: Address, now: float) -> List[NodeEntry]:
        """
        A node answered one of our queries: add it or refresh it.

        @return: questionable nodes of its (full) bucket that the caller
            should ping, least recently seen first; usually empty.
        """
        if self.refuses(nodeId, address):
            return []
        entry = self._byAddress.get(address)
        if entry is not None:
            if entry.nodeId == nodeId:
                entry.lastResponse = now
                entry.failures = 0
                bucket = self.bucketFor(nodeId)
                bucket.lastChanged = now
                # Most recently seen last.
                bucket.nodes.remove(entry)
                bucket.nodes.append(entry)
                return []
            # Another id at a known address: a restarted node, or a liar.
            if entry.isGood(now):
                return []
            self._remove(entry)
        other = self._byId.get(nodeId)
        if other is not None:
            # A known id at another address: keep the known one unless bad.
            if not other.isBad():
                return []
            self._remove(other)
        return self._insert(NodeEntry(nodeId, address, now), now)

    def _splittable(self, bucket: Bucket) -> bool:
        return bucket.covers(self.ownKey) and bucket.high - bucket.low > 1

    def _insert(self, entry: NodeEntry, now: float) -> List[NodeEntry]:
        while True:
            index = bisect_right(self._lows, entry.key) - 1
            bucket = self.buckets[index]
            if len(bucket.nodes) < self.k:
                self._place(bucket, entry, now)
                return []
            bad = [n for n in bucket.nodes if n.isBad()]
            if bad:
                self._drop(bucket, bad[0])
                self._place(bucket, entry, now)
                return []
            if self._splittable(bucket):
                self._split(index, now)
                continue
            self._addReplacement(bucket, entry)
            questionable = [n for n in bucket.nodes if not n.isGood(now)]
            questionable.sort(key=NodeEntry.lastSeen)
            return questionable

    def _place(self, bucket: Bucket, entry: NodeEntry, now: float) -> None:
        bucket.replacements = [
            r for r in bucket.replacements if r.address != entry.address
        ]
        bucket.nodes.append(entry)
        bucket.lastChanged = now
        self._byAddress[entry.address] = entry
        self._byId[entry.nodeId] = entry

    def _drop(self, bucket: Bucket, entry: NodeEntry) -> None:
        bucket.nodes.remove(entry)
        del self._byAddress[entry.address]
        del self._byId[entry.nodeId]

    def _remove(self, entry: NodeEntry) -> None:
        self._drop(self.bucketFor(entry.nodeId), entry)

    def _addReplacement(self, bucket: Bucket, entry: NodeEntry) -> None:
        bucket.replacements = [
            r
            for r in bucket.replacements
            if r.address != entry.address and r.nodeId != entry.nodeId
        ]
        bucket.replacements.append(entry)
        del bucket.replacements[: -self.k]

    def _split(self, index: int, now: float) -> None:
        bucket = self.buckets[index]
        middle = (bucket.low + bucket.high) // 2
        lower = Bucket(bucket.low, middle, bucket.lastChanged)
        upper = Bucket(middle, bucket.high, bucket.lastChanged)
        for entry in bucket.nodes:
            (lower if entry.key < middle else upper).nodes.append(entry)
        for entry in bucket.replacements:
            (lower if entry.key < middle else upper).replacements.append(entry)
        self.buckets[index : index + 1] = [lower, upper]
        self._lows[index : index + 1] = [lower.low, upper.low]

    def failed(
        self, address: Address, now: float, nodeId: Optional[bytes] = None
    ) -> Optional[NodeEntry]:
        """
        A query to C{address} went unanswered.  The node there (with id
        C{nodeId}, when given) counts a failure; once bad, the most recent
        replacement of its bucket takes its place.

        @return: the entry if it is still in the table and not yet bad (the
            caller may ping it once more), else C{None}.
        """
        entry = self._byAddress.get(address)
        if entry is None or (nodeId is not None and entry.nodeId != nodeId):
            return None
        entry.failures += 1
        if not entry.isBad():
            return entry
        bucket = self.bucketFor(entry.nodeId)
        while bucket.replacements:
            replacement = bucket.replacements.pop()
            if (
                replacement.address in self._byAddress
                or replacement.nodeId in self._byId
            ):
                continue
            self._drop(bucket, entry)
            self._place(bucket, replacement, now)
            break
        return None

    def closest(self, target: bytes, count: int = K) -> List[NodeEntry]:
        """
        The C{count} nodes closest to C{target} (XOR metric), bad nodes
        left out, closest first.
        """
        key = int.from_bytes(target, "big")
        return heapq.nsmallest(
            count,
            (e for e in self._byAddress.values() if not e.isBad()),
            key=lambda e: e.key ^ key,
        )

    def questionable(self, nodeId: bytes, now: float) -> List[NodeEntry]:
        """
        The questionable nodes of the bucket holding C{nodeId}, least
        recently seen first, when replacements wait for a place there
        (otherwise nothing needs pinging).
        """
        bucket = self.bucketFor(nodeId)
        if not bucket.replacements or len(bucket.nodes) < self.k:
            return []
        found = [n for n in bucket.nodes if not n.isGood(now) and not n.isBad()]
        found.sort(key=NodeEntry.lastSeen)
        return found

    def staleBuckets(self, now: float) -> List[Bucket]:
        """
        The buckets unchanged for L{REFRESH_INTERVAL}: each wants a
        C{find_node} for a random id in its range (the caller then marks it
        with L{touch}).
        """
        return [b for b in self.buckets if now - b.lastChanged >= REFRESH_INTERVAL]

    def touch(self, bucket: Bucket, now: float) -> None:
        """
        Mark C{bucket} as refreshed now.
        """
        bucket.lastChanged = now

    def goodCount(self, now: float) -> int:
        """
        How many nodes are good at C{now}.
        """
        return sum(1 for e in self._byAddress.values() if e.isGood(now))

    def serialize(self, now: float, limit: int = 200) -> List[dict]:
        """
        The nodes worth remembering across a restart, as JSON-able dicts
        C{{"id": hex, "host": str, "port": int}}: those not bad, good ones
        first, at most C{limit}.
        """
        entries = [e for e in self._byAddress.values() if not e.isBad()]
        entries.sort(key=lambda e: (not e.isGood(now), -e.lastSeen()))
        return [
            {"id": e.nodeId.hex(), "host": e.address[0], "port": e.address[1]}
            for e in entries[:limit]
        ]


def parseSavedNodes(saved: Sequence, limit: int = 200) -> List[Tuple[bytes, Address]]:
    """
    Read what L{RoutingTable.serialize} wrote, skipping anything malformed.

    @param saved: a list of C{{"id", "host", "port"}} dicts (from JSON).
    @return: up to C{limit} C{(nodeId, (host, port))} pairs.
    """
    nodes: List[Tuple[bytes, Address]] = []
    if not isinstance(saved, (list, tuple)):
        return nodes
    for item in saved:
        if len(nodes) >= limit:
            break
        if not isinstance(item, dict):
            continue
        try:
            nodeId = bytes.fromhex(item["id"])
            address = (item["host"], item["port"])
        except (KeyError, TypeError, ValueError):
            continue
        if len(nodeId) == 20 and isUsableAddress(address):
            nodes.append((nodeId, address))
    return nodes
