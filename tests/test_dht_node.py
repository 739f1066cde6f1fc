"""
Tests for L{btorrent.dht.node}: answers to each query, tokens, the peer
store, transactions, hostile input and floods, lookups on a small
in-memory network, maintenance and persistence.
"""

from __future__ import annotations

import json
import random

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from btorrent.dht import krpc
from btorrent.dht.krpc import (
    AnnouncePeer,
    Error,
    FindNode,
    GetPeers,
    NodeInfo,
    Ping,
    Response,
)
from btorrent.dht.node import (
    MAX_PINGS,
    QUERY_TIMEOUT,
    SLOW_QUERY,
    DHTNode,
    PeerStore,
    RateLimiter,
)
from btorrent.dht.routing import K
from btorrent.dht.transactions import Transactions
from tests.dhtnet import MemoryNetwork

OWN = b"\x00" * 19 + b"\x01"
ME = ("127.0.0.1", 6881)
P = ("127.0.0.2", 7000)
Q = ("127.0.0.3", 7001)
X = b"X" * 20
Y = b"Y" * 20
IH = b"I" * 20


def nid(n: int) -> bytes:
    return n.to_bytes(20, "big")


class Harness:
    """
    One node whose datagrams out are collected (decoded).
    """

    def __init__(self, **options) -> None:
        self.clock = Clock()
        self.raw = []
        self.node = DHTNode(
            options.pop("nodeId", OWN),
            self.clock,
            random.Random(0),
            send=lambda data, address: self.raw.append((data, address)),
            ownAddress=ME,
            **options,
        )
        self.node.start()

    def feed(self, message, address=P) -> None:
        self.node.datagramReceived(krpc.encode(message), address)

    def take(self) -> list:
        out = [(krpc.decode(data), address) for data, address in self.raw]
        self.raw = []
        return out

    def replies(self) -> list:
        """
        What was sent, answers only.
        """
        return [(m, a) for m, a in self.take() if isinstance(m, (Response, Error))]

    def fill(self, count: int, now: float = 0.0, seed: int = 1) -> list:
        """
        Put C{count} random nodes in the table.
        """
        rng = random.Random(seed)
        added = []
        for i in range(count):
            nodeId = nid(rng.getrandbits(160))
            address = (f"10.1.{i // 200}.{i % 200 + 1}", 6881)
            self.node.table.responded(nodeId, address, now)
            added.append(NodeInfo(nodeId, address))
        return added


class AnswerTests(SynchronousTestCase):
    """
    What the node answers to each query.
    """

    def test_pingBytes(self) -> None:
        """
        A ping is answered with our id and the address we saw, byte for
        byte; the stranger is pinged back (to enter the table on answer).
        """
        h = Harness()
        h.node.datagramReceived(b"d1:ad2:id20:" + X + b"e1:q4:ping1:t2:t11:y1:qe", P)
        (reply, to), (query, to2) = h.raw
        self.assertEqual(
            reply,
            b"d2:ip6:\x7f\x00\x00\x02\x1b\x581:rd2:id20:" + OWN + b"e1:t2:t11:y1:re",
        )
        self.assertEqual((to, to2), (P, P))
        query = krpc.decode(query)
        self.assertEqual(type(query), Ping)
        self.assertEqual(query.nodeId, OWN)
        self.assertEqual(h.node.stats.queriesIn, 1)

    def test_pingBackOnce(self) -> None:
        """
        A node being pinged is not pinged again; a read-only node is never
        pinged; a node in the table is not pinged.
        """
        h = Harness()
        h.feed(Ping(b"a", X))
        h.feed(Ping(b"b", X))
        self.assertEqual(len([m for m, _ in h.take() if type(m) is Ping]), 1)
        h.feed(Ping(b"c", Y, readOnly=True), Q)
        self.assertEqual([type(m) for m, _ in h.take()], [Response])
        h.node.table.responded(Y, Q, 0.0)
        h.feed(Ping(b"d", Y), Q)
        self.assertEqual([type(m) for m, _ in h.take()], [Response])

    def test_pingBackAnswered(self) -> None:
        """
        The stranger that answers our ping enters the table.
        """
        h = Harness()
        h.feed(Ping(b"a", X))
        (ping,) = [m for m, _ in h.take() if type(m) is Ping]
        h.feed(Response(ping.transactionId, X))
        self.assertIn(P, h.node.table)
        self.assertEqual(h.node.stats.nodes, 1)

    def test_addNode(self) -> None:
        """
        C{addNode} (a PORT message) pings the address; an answer puts the
        node in the table.  Known and unusable addresses are not pinged.
        """
        h = Harness()
        h.node.addNode(P)
        h.node.addNode(P)
        h.node.addNode(("127.0.0.2", 0))
        h.node.addNode(ME)
        ((ping, to),) = h.take()
        self.assertEqual((type(ping), to), (Ping, P))
        h.feed(Response(ping.transactionId, X))
        self.assertIn(P, h.node.table)
        h.node.addNode(P)
        self.assertEqual(h.take(), [])

    def test_findNode(self) -> None:
        """
        The k closest nodes we know, the requester left out.
        """
        h = Harness()
        nodes = h.fill(40)
        key = int.from_bytes(Y, "big")
        nodes.sort(key=lambda n: int.from_bytes(n.nodeId, "big") ^ key)
        requester = nodes[0]
        h.feed(FindNode(b"f", requester.nodeId, Y), requester.address)
        ((reply, to),) = h.replies()
        self.assertEqual(to, requester.address)
        self.assertEqual(reply.nodes, tuple(nodes[1 : K + 1]))
        self.assertIsNone(reply.values)
        self.assertIsNone(reply.token)

    def test_getPeersThenAnnounce(self) -> None:
        """
        get_peers gives nodes and a token; announce_peer with it stores the
        peer, which the next get_peers returns.
        """
        h = Harness()
        h.fill(10)
        h.feed(GetPeers(b"g", X, IH))
        ((reply, _),) = h.replies()
        self.assertEqual(len(reply.nodes), K)
        self.assertIsNone(reply.values)
        self.assertIsNotNone(reply.token)
        h.feed(AnnouncePeer(b"a", X, IH, 5000, reply.token))
        ((ok, _),) = h.replies()
        self.assertEqual(ok, Response(b"a", OWN, ip=P))
        h.feed(GetPeers(b"h", Y, IH), Q)
        ((reply, _),) = h.replies()
        self.assertEqual(reply.values, (("127.0.0.2", 5000),))
        self.assertEqual(h.node.stats.announcesIn, 1)
        self.assertEqual(h.node.stats.storedPeers, 1)

    def test_impliedPort(self) -> None:
        """
        With C{implied_port}, the peer's port is the datagram's source port.
        """
        h = Harness()
        token = h.node.makeToken(P[0], IH)
        h.feed(AnnouncePeer(b"a", X, IH, 1, token, impliedPort=True))
        self.assertEqual(h.node.peerStore.get(IH, 0, 50, random), [P])

    def test_badToken(self) -> None:
        h = Harness()
        h.feed(AnnouncePeer(b"a", X, IH, 5000, b"forged!!"))
        ((reply, _),) = h.replies()
        self.assertEqual(reply, Error(b"a", 203, "invalid token"))
        self.assertEqual(len(h.node.peerStore), 0)
        self.assertEqual(h.node.stats.badTokens, 1)

    def test_tokenBinding(self) -> None:
        """
        A token is good for the IP it was given to (any port) and the
        info-hash it was asked for, nothing else.
        """
        h = Harness()
        token = h.node.makeToken(P[0], IH)
        self.assertTrue(h.node.checkToken(token, P[0], IH))
        self.assertFalse(h.node.checkToken(token, Q[0], IH))
        self.assertFalse(h.node.checkToken(token, P[0], X))
        self.assertFalse(h.node.checkToken(token[:-1], P[0], IH))
        self.assertFalse(h.node.checkToken(b"", P[0], IH))
        h.feed(AnnouncePeer(b"a", X, IH, 5000, token), (P[0], 9999))
        self.assertEqual(type(h.replies()[0][0]), Response)

    def test_tokenRotation(self) -> None:
        """
        Secrets rotate every 5 minutes and the previous one is accepted: a
        token lives at least 5 and at most 10 minutes.
        """
        h = Harness()
        token = h.node.makeToken(P[0], IH)
        h.clock.advance(299)
        self.assertTrue(h.node.checkToken(token, P[0], IH))
        h.clock.advance(300)
        self.assertTrue(h.node.checkToken(token, P[0], IH))
        self.assertNotEqual(h.node.makeToken(P[0], IH), token)
        h.clock.advance(1)
        self.assertFalse(h.node.checkToken(token, P[0], IH))
        # After a long silence both secrets are new.
        token = h.node.makeToken(P[0], IH)
        h.clock.advance(3600)
        self.assertFalse(h.node.checkToken(token, P[0], IH))

    def test_fullStoreWithholdsToken(self) -> None:
        """
        When the store cannot take an info-hash, get_peers for it comes
        without a token (announces go to other nodes).
        """
        h = Harness(peerStore=PeerStore(maxInfoHashes=1))
        h.feed(AnnouncePeer(b"a", X, IH, 5000, h.node.makeToken(P[0], IH)))
        h.feed(GetPeers(b"g", X, Y))
        h.feed(GetPeers(b"h", X, IH))
        replies = [m for m, _ in h.replies()]
        self.assertIsNone(replies[1].token)
        self.assertIsNotNone(replies[2].token)

    def test_peerExpiry(self) -> None:
        """
        Peers not announced again for 30 minutes are forgotten.
        """
        h = Harness()
        h.feed(AnnouncePeer(b"a", X, IH, 5000, h.node.makeToken(P[0], IH)))
        h.clock.advance(29 * 60)
        self.assertEqual(h.node.stats.storedPeers, 1)
        h.clock.advance(2 * 60)
        self.assertEqual(h.node.stats.storedPeers, 0)
        self.assertEqual(h.node.stats.storedInfoHashes, 0)

    def test_announceBadPort(self) -> None:
        """
        A peer at an unusable address (port 0, 0.0.0.0/8) is not stored,
        and nothing is sent there.
        """
        h = Harness()
        for source in [(P[0], 0), ("0.0.0.1", 5)]:
            token = h.node.makeToken(source[0], IH)
            h.feed(AnnouncePeer(b"a", X, IH, 0, token, impliedPort=True), source)
        self.assertEqual(h.raw, [])
        self.assertEqual(len(h.node.peerStore), 0)

    def test_unknownMethod(self) -> None:
        h = Harness()
        h.node.datagramReceived(b"d1:ad2:id20:" + X + b"e1:q4:vote1:t2:zz1:y1:qe", P)
        ((reply, to),) = h.replies()
        self.assertEqual(reply.code, 204)
        self.assertEqual(reply.transactionId, b"zz")

    def test_malformedQuery(self) -> None:
        h = Harness()
        h.node.datagramReceived(b"d1:ad2:id3:abce1:q4:ping1:t2:zz1:y1:qe", P)
        ((reply, _),) = h.replies()
        self.assertEqual((reply.code, reply.transactionId), (203, b"zz"))
        self.assertEqual(h.node.stats.malformed, 1)

    def test_garbageUnanswered(self) -> None:
        """
        Garbage, answers nobody asked for and errors out of the blue get no
        reply.
        """
        h = Harness()
        for data in [
            b"",
            b"hello",
            b"d1:t2:aa1:y1:re",
            krpc.encode(Response(b"nope", X)),
            krpc.encode(Error(b"nope", 201, "x")),
            b"d" * 5000,
        ]:
            h.node.datagramReceived(data, P)
        self.assertEqual(h.raw, [])
        self.assertEqual(h.node.stats.unexpected, 2)

    def test_stopped(self) -> None:
        """
        A stopped node ignores datagrams and leaves no timer behind.
        """
        h = Harness()
        h.fill(20)
        h.node.findNode(Y)
        self.assertTrue(h.clock.getDelayedCalls())
        h.node.stop()
        self.assertEqual(h.clock.getDelayedCalls(), [])
        h.raw = []
        h.feed(Ping(b"a", X))
        self.assertEqual(h.raw, [])


class TransactionTests(SynchronousTestCase):
    """
    Our queries: matched by transaction id and address, timed out.
    """

    def setUp(self) -> None:
        self.h = Harness()
        self.done = []
        self.lookup = self.h.node.bootstrap([P], done=self.done.append)
        ((self.query, to),) = self.h.take()
        self.assertEqual(to, P)
        self.assertEqual(type(self.query), FindNode)
        self.assertEqual(self.query.target, OWN)

    def test_answered(self) -> None:
        self.h.feed(Response(self.query.transactionId, X))
        self.assertIn(P, self.h.node.table)
        self.assertEqual(self.h.node.pendingTransactions, 0)
        self.assertEqual(len(self.done), 1)
        self.assertEqual(self.done[0].closest, [NodeInfo(X, P)])

    def test_unknownTransaction(self) -> None:
        self.h.feed(Response(b"\xff" + self.query.transactionId, X))
        self.assertNotIn(P, self.h.node.table)
        self.assertEqual(self.h.node.pendingTransactions, 1)
        self.assertEqual(self.h.node.stats.unexpected, 1)

    def test_otherAddress(self) -> None:
        """
        The right transaction id from another address is dropped; the
        query still waits for the real answer.
        """
        self.h.feed(Response(self.query.transactionId, X), Q)
        self.h.feed(Response(self.query.transactionId, X), (P[0], P[1] + 1))
        self.assertEqual(self.h.node.pendingTransactions, 1)
        self.assertEqual(len(self.h.node.table), 0)
        self.assertEqual(self.h.node.stats.unexpected, 2)
        self.h.feed(Response(self.query.transactionId, X))
        self.assertIn(P, self.h.node.table)

    def test_answeredTwice(self) -> None:
        """
        A second answer to one transaction is unexpected.
        """
        self.h.feed(Response(self.query.transactionId, X))
        self.h.feed(Response(self.query.transactionId, X))
        self.assertEqual(self.h.node.stats.unexpected, 1)

    def test_timeout(self) -> None:
        """
        No answer in L{QUERY_TIMEOUT} seconds: a failure; the lookup ends.
        """
        self.h.clock.advance(SLOW_QUERY)
        self.assertEqual(self.done, [])
        self.h.clock.advance(QUERY_TIMEOUT - SLOW_QUERY - 0.5)
        self.assertEqual(self.done, [])
        self.h.clock.advance(0.5)
        self.assertEqual(self.h.node.pendingTransactions, 0)
        self.assertEqual(self.h.node.stats.timeouts, 1)
        self.assertEqual(self.done[0].closest, [])
        self.h.feed(Response(self.query.transactionId, X))
        self.assertNotIn(P, self.h.node.table)

    def test_errorAnswer(self) -> None:
        self.h.feed(Error(self.query.transactionId, 202, "busy"))
        self.assertEqual(self.h.node.stats.errorsIn, 1)
        self.assertEqual(self.done[0].closest, [])
        self.assertNotIn(P, self.h.node.table)

    def test_ourOwnId(self) -> None:
        """
        An answer carrying our own id (our query came back to us) is not a
        node.
        """
        self.h.feed(Response(self.query.transactionId, OWN))
        self.assertEqual(len(self.h.node.table), 0)
        self.assertEqual(self.done[0].closest, [])


class WrongIdTests(SynchronousTestCase):
    def test_wrongId(self) -> None:
        """
        A known node answering with another id counts as a failure.
        """
        h = Harness()
        h.node.table.responded(X, P, 0.0)
        h.node.findNode(Y)
        ((query, _),) = h.take()
        h.feed(Response(query.transactionId, Y))
        self.assertEqual(h.node.table.get(P).nodeId, X)
        self.assertEqual(h.node.table.get(P).failures, 1)

    def test_transactionIdsUnpredictable(self) -> None:
        """
        Transaction ids are 4 bytes from the random source, not a counter a
        node we query could read our next ids from; one already in flight
        is drawn again.
        """
        h = Harness()
        h.fill(20)
        h.node.findNode(Y)
        ids = [query.transactionId for query, _ in h.take()]
        self.assertTrue(ids)
        self.assertTrue(all(len(t) == 4 for t in ids))
        self.assertEqual(len(set(ids)), len(ids))
        draws = iter([b"same", b"same", b"next"])
        transactions = Transactions(
            h.clock, 10.0, lambda t: None, lambda n: next(draws)
        )
        for expected in (b"same", b"next"):
            query = transactions.open(
                P, lambda t: Ping(t, X), None, lambda *a: None, lambda *a: None, None
            )
            self.assertEqual(query.transactionId, expected)

    def test_maxTransactions(self) -> None:
        h = Harness(maxTransactions=2)
        h.fill(20)
        h.node.findNode(Y)
        h.node.findNode(X)
        self.assertEqual(h.node.pendingTransactions, 2)
        self.assertEqual(len(h.take()), 2)


class QuestionableTests(SynchronousTestCase):
    """
    BEP 5's replacement: questionable nodes of a full bucket are pinged
    (twice) before a newcomer takes the place of one that stays silent.
    """

    def meet(self, h: Harness, nodeId: bytes, address) -> None:
        """
        C{nodeId} at C{address} queries the node and answers its ping back.
        """
        h.feed(Ping(b"hi", nodeId), address)
        ((ping, _),) = [(m, a) for m, a in h.take() if type(m) is Ping]
        h.feed(Response(ping.transactionId, nodeId), address)

    def test_pingThenReplace(self) -> None:
        h = Harness()
        top = 1 << 159
        far = [(nid(top + i), (f"10.2.0.{i + 1}", 6881)) for i in range(K)]
        # Seen 20 minutes ago (before the clock's 0, so that no maintenance
        # round runs during the test).
        for nodeId, address in far:
            h.node.table.responded(nodeId, address, -20 * 60.0)
        h.node.table.responded(nid(2), ("10.3.0.1", 6881), -20 * 60.0)  # split
        for nodeId, address in far[1:]:
            h.node.table.responded(nodeId, address, h.clock.seconds())
        # A newcomer for the far bucket queries us and answers our ping.
        newcomer = (nid(top + 100), ("10.2.1.1", 6881))
        self.meet(h, *newcomer)
        self.assertNotIn(newcomer[1], h.node.table)
        pings = [(m, a) for m, a in h.take() if type(m) is Ping]
        self.assertEqual([a for _, a in pings], [far[0][1]])
        h.clock.advance(QUERY_TIMEOUT)
        pings = [(m, a) for m, a in h.take() if type(m) is Ping]
        self.assertEqual([a for _, a in pings], [far[0][1]], "pinged once more")
        self.assertIn(far[0][1], h.node.table)
        h.clock.advance(QUERY_TIMEOUT)
        self.assertNotIn(far[0][1], h.node.table)
        self.assertIn(newcomer[1], h.node.table)

    def test_answeringNodeStays(self) -> None:
        h = Harness()
        top = 1 << 159
        far = [(nid(top + i), (f"10.2.0.{i + 1}", 6881)) for i in range(K)]
        for nodeId, address in far:
            h.node.table.responded(nodeId, address, -20 * 60.0)
        h.node.table.responded(nid(2), ("10.3.0.1", 6881), -20 * 60.0)
        newcomer = (nid(top + 100), ("10.2.1.1", 6881))
        self.meet(h, *newcomer)
        # Every far node is questionable; each answers in turn.
        for nodeId, address in far:
            pings = [(m, a) for m, a in h.take() if type(m) is Ping]
            self.assertEqual([a for _, a in pings], [address])
            h.feed(Response(pings[0][0].transactionId, nodeId), address)
        self.assertEqual([m for m, _ in h.take() if type(m) is Ping], [])
        self.assertNotIn(newcomer[1], h.node.table)
        now = h.clock.seconds()
        self.assertTrue(all(h.node.table.get(a).isGood(now) for _, a in far))


class FloodTests(SynchronousTestCase):
    """
    Hostile volumes: bounded memory, bounded answers.
    """

    def test_queryFlood(self) -> None:
        """
        10,000 queries from one address at once: the first C{burst} are
        answered, the rest dropped; others are still served; the limit
        refills at C{rate} per second.
        """
        h = Harness()
        data = krpc.encode(Ping(b"p", X))
        for _ in range(10_000):
            h.node.datagramReceived(data, P)
        self.assertEqual(len(h.replies()), 40)
        self.assertEqual(h.node.stats.rateLimited, 10_000 - 40)
        h.feed(Ping(b"q", Y), Q)
        self.assertEqual(len(h.replies()), 1)
        h.clock.advance(1)
        for _ in range(100):
            h.node.datagramReceived(data, P)
        self.assertEqual(len(h.replies()), 10)

    def test_getPeersForManyInfoHashes(self) -> None:
        """
        get_peers for 100,000 random info-hashes, half from one address,
        half from 100 others: beyond each address's burst they are refused
        before being decoded; nothing is stored, the rate limiter and our
        pings stay bounded.
        """
        h = Harness()
        rng = random.Random(5)
        prefix = b"d1:ad2:id20:" + X + b"9:info_hash20:"
        suffix = b"e1:q9:get_peers1:t2:gp1:y1:qe"
        for i in range(100_000):
            data = prefix + rng.randbytes(20) + suffix
            address = P if i % 2 else (f"10.0.{i // 2 % 100}.1", 6881)
            h.node.datagramReceived(data, address)
            if i % 1000 == 0:
                h.raw = []
        stats = h.node.stats
        self.assertEqual(stats.queriesIn, 40 * 101)
        self.assertEqual(stats.rateLimited, 100_000 - 40 * 101)
        self.assertEqual(stats.storedPeers, 0)
        self.assertEqual(stats.storedInfoHashes, 0)
        self.assertEqual(len(h.node.rateLimiter), 101)
        self.assertLessEqual(h.node.pendingTransactions, MAX_PINGS)

    def test_rateLimiterBounded(self) -> None:
        """
        The limiter forgets the least recently seen address beyond
        C{maxTracked}.
        """
        limiter = RateLimiter(rate=1, burst=2, maxTracked=1000)
        for i in range(100_000):
            self.assertTrue(limiter.allow(i, 0.0))
        self.assertEqual(len(limiter), 1000)
        self.assertTrue(limiter.allow(99_999, 0.0))
        self.assertFalse(limiter.allow(99_999, 0.0))
        self.assertTrue(limiter.allow(99_999, 1.0))

    def test_announceFlood(self) -> None:
        """
        Valid announces for many info-hashes from many addresses fill the
        store only up to its caps.
        """
        store = PeerStore(maxPerInfoHash=10, maxInfoHashes=50, maxPeers=200)
        h = Harness(peerStore=store, rateLimiter=RateLimiter(rate=1e9, burst=1e9))
        rng = random.Random(6)
        hashes = [nid(rng.getrandbits(160)) for _ in range(1000)]
        for i in range(10_000):
            host = f"10.{i % 200}.0.1"
            infoHash = hashes[i % 1000] if i % 3 else hashes[0]
            token = h.node.makeToken(host, infoHash)
            h.feed(AnnouncePeer(b"a", X, infoHash, 1 + i % 60000, token), (host, 7))
            if i % 1000 == 0:
                h.raw = []
        self.assertLessEqual(len(store), 200)
        self.assertLessEqual(store.infoHashCount, 50)
        self.assertEqual(len(store.get(hashes[0], h.clock.seconds(), 1000, rng)), 10)
        for infoHash in hashes:
            self.assertLessEqual(len(store.get(infoHash, 0.0, 1000, rng)), 10)

    def test_garbageFlood(self) -> None:
        """
        Random bytes, truncated and oversize datagrams: no exception, only
        KRPC errors answered, and the node still works.
        """
        h = Harness(rateLimiter=RateLimiter(rate=1e9, burst=1e9))
        rng = random.Random(7)
        valid = krpc.encode(AnnouncePeer(b"tt", X, IH, 80, b"tok", True))
        for i in range(5000):
            kind = i % 4
            if kind == 0:
                data = rng.randbytes(rng.randrange(0, 200))
            elif kind == 1:
                data = valid[: rng.randrange(len(valid))]
            elif kind == 2:
                data = bytearray(valid)
                data[rng.randrange(len(data))] = rng.randrange(256)
                data = bytes(data)
            else:
                data = b"d1:t2:tt1:y1:q1:q4:ping1:a" + b"l" * 3000
            h.node.datagramReceived(data, (f"10.0.{i % 250}.1", 1 + i))
        for message, _ in h.take():
            self.assertIn(type(message), (Error, Response, Ping))
        h.feed(Ping(b"ok", Y), Q)
        self.assertEqual(h.replies(), [(Response(b"ok", OWN, ip=Q), Q)])


class LookupTests(SynchronousTestCase):
    """
    Lookups on a small in-memory network.
    """

    def setUp(self) -> None:
        self.net = MemoryNetwork(seed=11)
        self.nodes = [self.net.addNode() for _ in range(40)]
        boot = self.nodes[0].ownAddress
        for node in self.nodes[1:]:
            node.bootstrap([boot])
            self.net.pump()

    def truth(self, target: bytes, exclude=None) -> list:
        key = int.from_bytes(target, "big")
        nodes = [n for n in self.nodes if n is not exclude]
        nodes.sort(key=lambda n: int.from_bytes(n.nodeId, "big") ^ key)
        return [NodeInfo(n.nodeId, n.ownAddress) for n in nodes[:K]]

    def test_findNode(self) -> None:
        """
        find_node ends with exactly the k closest nodes of the network.
        """
        rng = random.Random(1)
        for _ in range(10):
            target = nid(rng.getrandbits(160))
            node = rng.choice(self.nodes)
            done = []
            node.findNode(target, done.append)
            self.net.pump()
            self.assertEqual(done[0].closest, self.truth(target, node))
            self.assertTrue(done[0].done)
            self.assertGreater(done[0].queries, 0)

    def test_announceAndGetPeers(self) -> None:
        """
        announce stores us at the k closest nodes; any node's get_peers
        finds us, the peer reported once through the callback.
        """
        announcer, seeker = self.nodes[5], self.nodes[30]
        done = []
        announcer.announce(IH, 6000, done=done.append)
        self.net.pump()
        self.assertEqual(done[0].announced, K)
        holders = [n for n in self.nodes if len(n.peerStore)]
        self.assertEqual(
            sorted(n.ownAddress for n in holders),
            sorted(n.address for n in done[0].closest),
        )
        found, done = [], []
        seeker.getPeers(IH, found.append, done.append)
        self.net.pump()
        self.assertEqual(found, [("127.0.0.1", 6000)])
        self.assertEqual(done[0].peers, found)
        self.assertIsNotNone(done[0].hops)
        self.assertEqual(seeker.stats.peersFound, 1)

    def test_impliedPortAnnounce(self) -> None:
        announcer = self.nodes[7]
        announcer.announce(IH, 1, impliedPort=True)
        self.net.pump()
        found = []
        self.nodes[8].getPeers(IH, found.append)
        self.net.pump()
        self.assertEqual(found, [announcer.ownAddress])

    def test_deadNodes(self) -> None:
        """
        With a third of the nodes gone silent, lookups still finish (slow
        queries make way after L{SLOW_QUERY}, failures after
        L{QUERY_TIMEOUT}) and find the announcer.
        """
        announcer, seeker = self.nodes[3], self.nodes[4]
        for node in self.nodes[10:24]:
            self.net.down.add(node.ownAddress)
        announcer.announce(IH, 6000)
        self.net.settle(30)
        found, done = [], []
        seeker.getPeers(IH, found.append, done.append)
        self.net.settle(30)
        self.assertEqual(found, [("127.0.0.1", 6000)])
        self.assertTrue(done)
        self.assertGreater(seeker.stats.timeouts + announcer.stats.timeouts, 0)

    def test_refresh(self) -> None:
        """
        Buckets unchanged for 15 minutes are refreshed by the maintenance.
        """
        node = self.nodes[9]
        before = node.stats.lookups
        self.net.settle(14 * 60, step=60)
        self.assertEqual(node.stats.lookups, before)
        self.net.settle(3 * 60, step=60)
        self.assertGreater(node.stats.lookups, before)

    def test_saveAndRestore(self) -> None:
        """
        The saved nodes (through JSON) bootstrap a new node with no
        bootstrap address.
        """
        saved = json.loads(json.dumps(self.nodes[12].serialize()))
        self.assertGreater(len(saved), K)
        node = self.net.addNode(savedNodes=saved)
        node.bootstrap()
        self.net.pump()
        self.assertGreater(len(node.table), K)
        self.assertEqual(self.nodes[12].stats.queriesIn > 0, True)

    def test_rebootstrap(self) -> None:
        """
        A node whose bootstrap address is silent tries again every minute
        until its table has nodes.
        """
        boot = self.nodes[0]
        self.net.down.add(boot.ownAddress)
        node = self.net.addNode()
        node.bootstrap([boot.ownAddress])
        self.net.settle(2 * 60)
        self.assertEqual(len(node.table), 0)
        self.net.down.clear()
        self.net.settle(61)
        self.assertGreater(len(node.table), 0)
