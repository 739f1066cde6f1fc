"""
Tests for L{btorrent.dht.routing}: buckets, splitting, BEP 5's node states
and replacement rules, closest nodes, refresh, persistence.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.dht.routing import (
    GOOD_INTERVAL,
    REFRESH_INTERVAL,
    K,
    RoutingTable,
    isUsableAddress,
    parseSavedNodes,
)

TOP = 1 << 159


def nid(n: int) -> bytes:
    """
    The 20-byte id whose integer value is C{n}.
    """
    return n.to_bytes(20, "big")


def addr(i: int) -> tuple:
    return (f"10.0.{i // 250}.{i % 250 + 1}", 6881)


OWN = nid(1)


def farTable(now: float = 0.0, count: int = K) -> RoutingTable:
    """
    A table (own id 1) whose far half (top bit set) holds C{count} nodes.
    """
    table = RoutingTable(OWN, now, ownAddress=("10.9.9.9", 1))
    for i in range(count):
        table.responded(nid(TOP + i), addr(i), now)
    return table


class BucketTests(SynchronousTestCase):
    """
    Splitting and placement.
    """

    def test_oneBucketUntilFull(self) -> None:
        table = RoutingTable(OWN, 0.0)
        self.assertEqual(len(table.buckets), 1)
        for i in range(K):
            self.assertEqual(table.responded(nid(TOP + i), addr(i), 0.0), [])
        self.assertEqual(len(table), K)
        self.assertEqual(len(table.buckets), 1)

    def test_splitOwnBucket(self) -> None:
        """
        The ninth node splits the bucket holding our id: far nodes go to
        the upper half, the newcomer (near) to the lower.
        """
        table = farTable()
        table.responded(nid(2), addr(100), 0.0)
        self.assertEqual(len(table), K + 1)
        self.assertEqual(
            [(b.low, b.high) for b in table.buckets], [(0, TOP), (TOP, 2 * TOP)]
        )
        self.assertEqual(len(table.buckets[1].nodes), K)
        self.assertEqual([e.address for e in table.buckets[0].nodes], [addr(100)])

    def test_farBucketNeverSplits(self) -> None:
        """
        A full bucket that does not hold our id takes no more nodes while
        they are good: the newcomer waits among the replacements.
        """
        table = farTable()
        table.responded(nid(2), addr(100), 0.0)
        self.assertEqual(table.responded(nid(TOP + 50), addr(50), 1.0), [])
        self.assertEqual(len(table), K + 1)
        self.assertNotIn(addr(50), table)
        self.assertEqual([e.address for e in table.buckets[1].replacements], [addr(50)])
        self.assertFalse(table.wants(nid(TOP + 51), addr(51), 1.0))

    def test_deepSplit(self) -> None:
        """
        Nodes ever closer to our id split down to the last bit.
        """
        table = RoutingTable(nid(0), 0.0)
        for bit in range(160):
            table.responded(nid(1 << bit), addr(bit), 0.0)
        self.assertEqual(len(table), 160)
        for entry in table:
            self.assertTrue(table.bucketFor(entry.nodeId).covers(entry.key))
        self.assertLessEqual(max(len(b.nodes) for b in table.buckets), K)

    def test_refused(self) -> None:
        """
        Our own id, our own address, unusable addresses and malformed ids
        never enter.
        """
        table = RoutingTable(OWN, 0.0, ownAddress=("10.9.9.9", 1))
        for nodeId, address in [
            (OWN, addr(1)),
            (nid(5), ("10.9.9.9", 1)),
            (nid(5), ("0.0.0.0", 1)),
            (nid(5), ("224.0.0.1", 1)),
            (nid(5), ("255.255.255.255", 1)),
            (nid(5), ("10.0.0.1", 0)),
            (nid(5), ("::1", 1)),
            (nid(5), ("router.example", 1)),
            (b"short", addr(1)),
        ]:
            self.assertEqual(table.responded(nodeId, address, 0.0), [])
            self.assertFalse(table.wants(nodeId, address, 0.0))
        self.assertEqual(len(table), 0)

    def test_ownIdLength(self) -> None:
        self.assertRaises(ValueError, RoutingTable, b"x" * 19, 0.0)


class StateTests(SynchronousTestCase):
    """
    Good, questionable and bad (BEP 5).
    """

    def test_goodForFifteenMinutes(self) -> None:
        table = farTable()
        entry = table.get(addr(0))
        self.assertTrue(entry.isGood(GOOD_INTERVAL - 1))
        self.assertFalse(entry.isGood(GOOD_INTERVAL))
        self.assertFalse(entry.isBad())

    def test_queryKeepsGood(self) -> None:
        """
        A node that answered once and queries us stays good.
        """
        table = farTable()
        self.assertTrue(table.queried(nid(TOP), addr(0), 1000.0))
        self.assertTrue(table.get(addr(0)).isGood(1000.0 + GOOD_INTERVAL - 1))
        self.assertFalse(table.queried(nid(TOP + 1), addr(0), 1000.0))
        self.assertFalse(table.queried(nid(TOP), addr(77), 1000.0))

    def test_badAfterTwoFailures(self) -> None:
        table = farTable()
        entry = table.failed(addr(0), 1.0)
        self.assertIs(entry, table.get(addr(0)))
        self.assertFalse(entry.isGood(1.0))
        self.assertFalse(entry.isBad())
        self.assertIsNone(table.failed(addr(0), 2.0))
        self.assertTrue(table.get(addr(0)).isBad())
        self.assertNotIn(addr(0), [e.address for e in table.closest(nid(TOP), 20)])

    def test_answerClearsFailures(self) -> None:
        table = farTable()
        table.failed(addr(0), 1.0)
        table.responded(nid(TOP), addr(0), 2.0)
        self.assertEqual(table.get(addr(0)).failures, 0)
        self.assertTrue(table.get(addr(0)).isGood(2.0))

    def test_failedWrongId(self) -> None:
        """
        A failure reported for another id at that address is ignored.
        """
        table = farTable()
        self.assertIsNone(table.failed(addr(0), 1.0, nid(TOP + 99)))
        self.assertEqual(table.get(addr(0)).failures, 0)


class ReplacementTests(SynchronousTestCase):
    """
    Bad nodes are replaced; questionable ones are pinged first.
    """

    def test_badReplacedAtOnce(self) -> None:
        table = farTable()
        table.responded(nid(2), addr(100), 0.0)
        table.failed(addr(3), 1.0)
        table.failed(addr(3), 2.0)
        self.assertEqual(table.responded(nid(TOP + 50), addr(50), 3.0), [])
        self.assertIn(addr(50), table)
        self.assertNotIn(addr(3), table)
        self.assertEqual(table.buckets[1].lastChanged, 3.0)

    def test_questionablePinged(self) -> None:
        """
        With questionable nodes in the full bucket, the newcomer waits and
        the caller is told whom to ping, least recently seen first; a node
        failing twice makes way for the newcomer.
        """
        table = farTable(0.0)
        table.responded(nid(2), addr(100), 0.0)
        # Refresh all far nodes but 5 and 6; 6 was seen later than 5.
        later = GOOD_INTERVAL + 10
        for i in range(K):
            if i not in (5, 6):
                table.responded(nid(TOP + i), addr(i), later)
        table.queried(nid(TOP + 6), addr(6), 5.0)
        toPing = table.responded(nid(TOP + 50), addr(50), later)
        self.assertEqual([e.address for e in toPing], [addr(5), addr(6)])
        self.assertNotIn(addr(50), table)
        self.assertEqual(
            [e.address for e in table.questionable(nid(TOP), later)],
            [addr(5), addr(6)],
        )
        # 5 answers: good again; 6 fails twice: replaced by 50.
        table.responded(nid(TOP + 5), addr(5), later + 1)
        self.assertEqual(
            [e.address for e in table.questionable(nid(TOP), later + 1)], [addr(6)]
        )
        self.assertIsNotNone(table.failed(addr(6), later + 2))
        self.assertIn(addr(6), table)
        self.assertIsNone(table.failed(addr(6), later + 3))
        self.assertNotIn(addr(6), table)
        self.assertIn(addr(50), table)
        self.assertEqual(table.buckets[1].lastChanged, later + 3)
        self.assertEqual(table.questionable(nid(TOP), later + 3), [])

    def test_badWithoutReplacementStays(self) -> None:
        """
        A bad node with no replacement waiting stays (left out of answers)
        until one comes.
        """
        table = farTable()
        table.failed(addr(0), 1.0)
        table.failed(addr(0), 2.0)
        self.assertIn(addr(0), table)
        self.assertTrue(table.wants(nid(TOP + 60), addr(60), 3.0))

    def test_replacementsBounded(self) -> None:
        table = farTable()
        table.responded(nid(2), addr(100), 0.0)
        for i in range(50, 50 + 3 * K):
            table.responded(nid(TOP + i), addr(i), 1.0)
        self.assertEqual(len(table.buckets[1].replacements), K)
        self.assertEqual(
            [e.address for e in table.buckets[1].replacements],
            [addr(i) for i in range(50 + 2 * K, 50 + 3 * K)],
        )

    def test_sameAddressNewId(self) -> None:
        """
        Another id at a known address replaces a node only if that node is
        no longer good.
        """
        table = farTable()
        table.responded(nid(TOP + 99), addr(0), 1.0)
        self.assertEqual(table.get(addr(0)).nodeId, nid(TOP))
        table.responded(nid(TOP + 99), addr(0), GOOD_INTERVAL + 1)
        self.assertEqual(table.get(addr(0)).nodeId, nid(TOP + 99))
        self.assertEqual(len(table), K)

    def test_sameIdNewAddress(self) -> None:
        """
        A known id at another address is ignored unless the known node is
        bad.
        """
        table = farTable()
        table.responded(nid(TOP), addr(77), 1.0)
        self.assertNotIn(addr(77), table)
        table.failed(addr(0), 2.0)
        table.failed(addr(0), 3.0)
        table.responded(nid(TOP), addr(77), 4.0)
        self.assertIn(addr(77), table)
        self.assertNotIn(addr(0), table)


class ClosestTests(SynchronousTestCase):
    """
    The XOR metric.
    """

    def test_closest(self) -> None:
        rng = random.Random(3)
        table = RoutingTable(nid(rng.getrandbits(160)), 0.0)
        for i in range(500):
            table.responded(nid(rng.getrandbits(160)), addr(i), 0.0)
        target = nid(rng.getrandbits(160))
        key = int.from_bytes(target, "big")
        everyone = sorted(table, key=lambda e: e.key ^ key)
        self.assertEqual(table.closest(target, K), everyone[:K])
        self.assertEqual(len(table.closest(target, 10_000)), len(table))

    def test_exactDistances(self) -> None:
        table = RoutingTable(nid(0), 0.0)
        for n in [0b1000, 0b0110, 0b0101, 0b0001]:
            table.responded(nid(n), addr(n), 0.0)
        self.assertEqual(
            [int.from_bytes(e.nodeId, "big") for e in table.closest(nid(0b0100), 3)],
            [0b0101, 0b0110, 0b0001],
        )


class RefreshTests(SynchronousTestCase):
    """
    Buckets unchanged for 15 minutes want a refresh.
    """

    def test_stale(self) -> None:
        table = farTable(0.0)
        table.responded(nid(2), addr(100), 0.0)
        self.assertEqual(table.staleBuckets(REFRESH_INTERVAL - 1), [])
        table.responded(nid(TOP), addr(0), 100.0)
        stale = table.staleBuckets(REFRESH_INTERVAL)
        self.assertEqual(stale, [table.buckets[0]])
        table.touch(stale[0], REFRESH_INTERVAL)
        self.assertEqual(table.staleBuckets(REFRESH_INTERVAL), [])
        self.assertEqual(table.staleBuckets(REFRESH_INTERVAL + 100), [table.buckets[1]])

    def test_randomId(self) -> None:
        table = farTable()
        table.responded(nid(2), addr(100), 0.0)
        rng = random.Random(0)
        for bucket in table.buckets:
            for _ in range(20):
                self.assertTrue(
                    bucket.covers(int.from_bytes(bucket.randomId(rng), "big"))
                )


class PersistenceTests(SynchronousTestCase):
    """
    The nodes worth keeping, as JSON-able data, and reading them back.
    """

    def test_roundTrip(self) -> None:
        table = farTable()
        table.failed(addr(0), 1.0)
        table.failed(addr(0), 2.0)
        table.responded(nid(TOP + 1), addr(1), 10.0)
        saved = table.serialize(11.0)
        self.assertEqual(len(saved), K - 1)
        self.assertEqual(
            saved[0], {"id": nid(TOP + 1).hex(), "host": "10.0.0.2", "port": 6881}
        )
        self.assertEqual(
            parseSavedNodes(saved),
            [(bytes.fromhex(d["id"]), (d["host"], d["port"])) for d in saved],
        )

    def test_goodFirst(self) -> None:
        table = farTable(0.0)
        table.responded(nid(TOP + 7), addr(7), GOOD_INTERVAL + 5)
        saved = table.serialize(GOOD_INTERVAL + 6)
        self.assertEqual(saved[0]["id"], nid(TOP + 7).hex())

    def test_malformedSkipped(self) -> None:
        good = {"id": "11" * 20, "host": "1.2.3.4", "port": 5}
        self.assertEqual(
            parseSavedNodes(
                [
                    good,
                    {"id": "zz", "host": "1.2.3.4", "port": 5},
                    {"id": "11" * 19, "host": "1.2.3.4", "port": 5},
                    {"id": "11" * 20, "host": "::1", "port": 5},
                    {"id": "11" * 20, "host": "1.2.3.4", "port": "5"},
                    {"id": 5, "host": "1.2.3.4", "port": 5},
                    {"host": "1.2.3.4"},
                    ["11" * 20, "1.2.3.4", 5],
                    None,
                ]
            ),
            [(b"\x11" * 20, ("1.2.3.4", 5))],
        )
        self.assertEqual(parseSavedNodes({"id": 1}), [])
        self.assertEqual(
            parseSavedNodes([good] * 500, limit=10),
            [(b"\x11" * 20, ("1.2.3.4", 5))] * 10,
        )


class AddressTests(SynchronousTestCase):
    def test_usable(self) -> None:
        self.assertTrue(isUsableAddress(("127.0.0.1", 1)))
        self.assertTrue(isUsableAddress(("192.168.1.1", 65535)))
        for bad in [
            ("127.0.0.1", 65536),
            ("127.0.0.1", 0),
            ("127.0.0.1", "1"),
            ("0.1.2.3", 1),
            ("239.1.1.1", 1),
            ("1.2.3", 1),
            (None, 1),
            ("1.2.3.4",),
            None,
        ]:
            self.assertFalse(isUsableAddress(bad), bad)


operations = st.lists(
    st.tuples(
        st.sampled_from(["responded", "queried", "failed"]),
        st.integers(0, 2**160 - 1),
        st.integers(0, 60),
        st.floats(0, 3000),
    ),
    max_size=200,
)


class InvariantTests(SynchronousTestCase):
    """
    Whatever happens, the table stays well-formed.
    """

    @settings(max_examples=150, deadline=None)
    @given(st.integers(0, 2**160 - 1), operations)
    def test_invariants(self, own: int, ops) -> None:
        table = RoutingTable(nid(own), 0.0)
        now = 0.0
        for op, n, a, dt in ops:
            now += dt
            if op == "responded":
                table.responded(nid(n), addr(a), now)
            elif op == "queried":
                table.queried(nid(n), addr(a), now)
            else:
                table.failed(addr(a), now)
        # Buckets tile the space.
        self.assertEqual(table.buckets[0].low, 0)
        self.assertEqual(table.buckets[-1].high, 1 << 160)
        for a, b in zip(table.buckets, table.buckets[1:]):
            self.assertEqual(a.high, b.low)
        seen = set()
        for bucket in table.buckets:
            self.assertLessEqual(len(bucket.nodes), K)
            self.assertLessEqual(len(bucket.replacements), K)
            for entry in bucket.nodes:
                self.assertTrue(bucket.covers(entry.key))
                self.assertNotEqual(entry.nodeId, table.ownId)
                self.assertIs(table.get(entry.address), entry)
                seen.add(entry.address)
            for entry in bucket.replacements:
                self.assertTrue(bucket.covers(entry.key))
        self.assertEqual(len(seen), len(table))
        self.assertEqual(len({e.nodeId for e in table}), len(table))
