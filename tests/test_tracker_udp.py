"""
Tests for L{btorrent.tracker.udp}: the BEP 15 client, driven with
L{task.Clock} and a fake datagram transport that records what is sent.
"""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.interfaces import ITrackerClient
from btorrent.tracker import announce as a
from btorrent.tracker.announce import (
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    TrackerError,
    TrackerFailure,
)
from btorrent.tracker.udp import (
    UDPTrackerClient,
    UDPTrackerProtocol,
    sharedProtocol,
    stopSharedProtocols,
)

HASH = bytes(range(20))
PEER_ID = b"-BT0100-" + b"x" * 12
TRACKER = ("127.0.0.1", 6969)
URL = "udp://127.0.0.1:6969/announce"
CID = 0x0102030405060708


class FakeDatagramTransport:
    """
    Records datagrams written, like C{twisted.names}' test transport.
    """

    def __init__(self) -> None:
        self.written: list = []
        self.stopped = False

    def write(self, data: bytes, addr) -> None:
        self.written.append((data, addr))

    def stopListening(self) -> None:
        self.stopped = True


class FakeResolvingClock(task.Clock):
    """
    A clock that also resolves host names (C{IReactorCore.resolve}).
    """

    def __init__(self, names: dict) -> None:
        super().__init__()
        self.names = names
        self.asked: list = []

    def resolve(self, name: str, timeout=None) -> defer.Deferred:
        self.asked.append(name)
        if name in self.names:
            return defer.succeed(self.names[name])
        return defer.fail(OSError(f"no such host {name}"))


def request(**kw) -> AnnounceRequest:
    fields = dict(
        infoHash=HASH,
        peerId=PEER_ID,
        port=6881,
        uploaded=1,
        downloaded=2,
        left=3,
        event="started",
        key=77,
    )
    fields.update(kw)
    return AnnounceRequest(**fields)


class UDPTestCase(SynchronousTestCase):
    """
    A protocol on a fake transport and a client of it.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.transport = FakeDatagramTransport()
        self.protocol = UDPTrackerProtocol(self.clock, random.Random(4))
        self.protocol.makeConnection(self.transport)
        self.client = UDPTrackerClient(URL, self.clock, protocol=self.protocol)

    def sent(self, index: int = -1):
        """
        Decode a datagram sent (the last by default), checking where it went.
        """
        data, addr = self.transport.written[index]
        self.assertEqual(addr, TRACKER)
        return a.decodeUDPRequest(data)

    def reply(self, message, addr=TRACKER, v6: bool = False) -> None:
        self.protocol.datagramReceived(a.encodeUDPResponse(message, v6=v6), addr)

    def connect(self, cid: int = CID) -> None:
        """
        Answer the last datagram, a connect request.
        """
        message = self.sent()
        self.assertIsInstance(message, a.UDPConnectRequest)
        self.reply(a.UDPConnectResponse(message.transactionId, cid))


class AnnounceTests(UDPTestCase):
    """
    Connect, then announce.
    """

    def test_interface(self) -> None:
        """
        L{UDPTrackerClient} provides L{ITrackerClient}.
        """
        verifyObject(ITrackerClient, self.client)

    def test_badURLs(self) -> None:
        """
        A URL without a port, or of another scheme, is refused.
        """
        for url in ("udp://127.0.0.1/announce", "http://127.0.0.1:1/", "udp://:5"):
            self.assertRaises(TrackerError, UDPTrackerClient, url, self.clock)

    def test_announce(self) -> None:
        """
        A connect request with the protocol id, then an announce with the
        connection id; the answer becomes an L{AnnounceResponse}.
        """
        d = self.client.announce(request(trackerId=b"ignored"))
        data, addr = self.transport.written[0]
        self.assertEqual(len(data), 16)
        self.assertEqual(data[:12], struct.pack("!QI", 0x41727101980, 0))
        self.connect()
        self.assertEqual(len(self.transport.written), 2)
        message = self.sent()
        self.assertEqual(
            message, a.UDPAnnounceRequest(CID, message.transactionId, request())
        )
        self.assertNoResult(d)
        response = AnnounceResponse(
            interval=1800,
            peers=(("10.0.0.1", 1), ("10.0.0.2", 2)),
            complete=5,
            incomplete=6,
        )
        self.reply(a.UDPAnnounceResponse(message.transactionId, response))
        self.assertEqual(self.successResultOf(d), response)
        self.assertEqual(self.protocol.transactions, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_randomTransactionIds(self) -> None:
        """
        Each request gets its own transaction id, drawn from the protocol's
        random source (C{SystemRandom} unless one is given).
        """
        self.client.announce(request())
        self.client.announce(request())
        ids = [self.sent(i).transactionId for i in range(2)]
        self.assertNotEqual(ids[0], ids[1])
        self.assertEqual(set(self.protocol.transactions), set(ids))
        expected = random.Random(4)
        self.assertEqual(ids, [expected.getrandbits(32), expected.getrandbits(32)])
        self.assertIsInstance(UDPTrackerProtocol(self.clock).rng, random.SystemRandom)

    def test_connectionIdReused(self) -> None:
        """
        The connection id is reused for 60 s, then a new connect is sent.
        """
        d = self.client.announce(request())
        self.connect()
        self.reply(
            a.UDPAnnounceResponse(self.sent().transactionId, AnnounceResponse(60))
        )
        self.successResultOf(d)
        self.clock.advance(59)
        self.client.announce(request(event=""))
        self.assertIsInstance(self.sent(), a.UDPAnnounceRequest)
        self.assertEqual(self.sent().connectionId, CID)
        self.reply(
            a.UDPAnnounceResponse(self.sent().transactionId, AnnounceResponse(60))
        )
        self.clock.advance(1.5)
        self.client.announce(request(event=""))
        self.assertIsInstance(self.sent(), a.UDPConnectRequest)
        self.connect(cid=99)
        self.assertEqual(self.sent().connectionId, 99)

    def test_connectionIdShared(self) -> None:
        """
        Two clients of the same tracker share the connection id.
        """
        other = UDPTrackerClient(
            "udp://127.0.0.1:6969/other", self.clock, protocol=self.protocol
        )
        self.client.announce(request())
        self.connect()
        other.announce(request())
        self.assertEqual(self.sent().connectionId, CID)

    def test_retransmitSchedule(self) -> None:
        """
        Unanswered, a request is sent again after 15 * 2 ** n seconds for n
        up to 8, then the announce fails.
        """
        d = self.client.announce(request())
        times = [self.clock.seconds()]
        failedAt = None
        for _ in range(8000):
            self.clock.advance(1)
            if len(self.transport.written) > len(times):
                times.append(self.clock.seconds())
                # The same transaction id: a late answer is still welcome.
                self.assertIsInstance(self.sent(), a.UDPConnectRequest)
                self.assertEqual(self.sent().transactionId, self.sent(0).transactionId)
            if failedAt is None and d.called:
                failedAt = self.clock.seconds()
        self.assertEqual(times, [0, 15, 45, 105, 225, 465, 945, 1905, 3825])
        self.assertEqual(failedAt, 15 * (2**9 - 1))
        self.assertEqual(len(self.transport.written), 9)
        e = self.failureResultOf(d, TrackerError)
        self.assertIn("no answer after 9 tries", e.getErrorMessage())
        self.assertEqual(self.protocol.transactions, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_retransmitBaseConfigurable(self) -> None:
        """
        The base and the number of retries are parameters.
        """
        client = UDPTrackerClient(
            URL, self.clock, retransmitBase=0.5, maxRetries=2, protocol=self.protocol
        )
        d = client.announce(request())
        self.clock.pump([0.5, 1.0])
        self.assertEqual(len(self.transport.written), 3)
        self.clock.advance(1.999)
        self.assertNoResult(d)
        self.clock.advance(0.001)
        self.failureResultOf(d, TrackerError)

    def test_lateAnswerAfterRetransmit(self) -> None:
        """
        An answer to the first transmission arriving after a retransmission
        is accepted.
        """
        d = self.client.announce(request())
        first = self.sent()
        self.clock.advance(15)
        self.reply(a.UDPConnectResponse(first.transactionId, CID))
        message = self.sent()
        self.assertIsInstance(message, a.UDPAnnounceRequest)
        self.reply(a.UDPAnnounceResponse(message.transactionId, AnnounceResponse(9)))
        self.assertEqual(self.successResultOf(d).interval, 9)

    def test_staleConnectionIdDuringRetries(self) -> None:
        """
        When the connection id goes stale while an announce is being
        retransmitted, the client connects again first.
        """
        d = self.client.announce(request())
        self.connect()
        self.assertIsInstance(self.sent(), a.UDPAnnounceRequest)
        self.clock.advance(15)  # retransmit at 15 s, still fresh
        self.assertIsInstance(self.sent(), a.UDPAnnounceRequest)
        self.clock.advance(30)  # 45 s
        self.assertIsInstance(self.sent(), a.UDPAnnounceRequest)
        self.clock.advance(60)  # 105 s: stale
        self.assertIsInstance(self.sent(), a.UDPConnectRequest)
        self.connect(cid=5)
        self.assertEqual(self.sent().connectionId, 5)
        self.reply(
            a.UDPAnnounceResponse(self.sent().transactionId, AnnounceResponse(1))
        )
        self.successResultOf(d)

    def test_unknownTransaction(self) -> None:
        """
        An answer with a transaction id not in flight is dropped.
        """
        d = self.client.announce(request())
        tid = self.sent().transactionId
        self.reply(a.UDPConnectResponse(tid ^ 1, CID))
        self.assertEqual(len(self.transport.written), 1)
        self.assertNoResult(d)
        self.assertIn(tid, self.protocol.transactions)

    def test_wrongAddress(self) -> None:
        """
        An answer from another address or port is dropped.
        """
        d = self.client.announce(request())
        tid = self.sent().transactionId
        self.reply(a.UDPConnectResponse(tid, CID), addr=("127.0.0.2", 6969))
        self.reply(a.UDPConnectResponse(tid, CID), addr=("127.0.0.1", 6970))
        self.assertEqual(len(self.transport.written), 1)
        self.assertNoResult(d)
        self.reply(a.UDPConnectResponse(tid, CID))
        self.assertEqual(len(self.transport.written), 2)

    def test_wrongAction(self) -> None:
        """
        An answer with the wrong action is dropped.
        """
        d = self.client.announce(request())
        tid = self.sent().transactionId
        self.reply(a.UDPAnnounceResponse(tid, AnnounceResponse(1)))
        self.reply(a.UDPScrapeResponse(tid, ()))
        self.assertEqual(len(self.transport.written), 1)
        self.assertNoResult(d)

    def test_truncated(self) -> None:
        """
        Answers of a bad length are dropped: short connect, short announce,
        a partial peer, a short header.
        """
        d = self.client.announce(request())
        tid = self.sent().transactionId
        good = a.encodeUDPResponse(a.UDPConnectResponse(tid, CID))
        for data in (good[:15], good + b"x", good[:7], b""):
            self.protocol.datagramReceived(data, TRACKER)
        self.assertEqual(len(self.transport.written), 1)
        self.protocol.datagramReceived(good, TRACKER)
        tid = self.sent().transactionId
        good = a.encodeUDPResponse(
            a.UDPAnnounceResponse(tid, AnnounceResponse(1, peers=(("10.0.0.1", 1),)))
        )
        for data in (good[:19], good[:-1], good + b"\x00"):
            self.protocol.datagramReceived(data, TRACKER)
        self.assertNoResult(d)
        self.protocol.datagramReceived(good, TRACKER)
        self.assertEqual(self.successResultOf(d).peers, (("10.0.0.1", 1),))

    def test_errorAction(self) -> None:
        """
        An error answer fails the request with the tracker's message, and
        the connection id is forgotten.
        """
        d = self.client.announce(request())
        self.connect()
        tid = self.sent().transactionId
        self.reply(a.UDPErrorResponse(tid, "torrent not registered"))
        e = self.failureResultOf(d, TrackerFailure)
        self.assertEqual(e.value.reason, "torrent not registered")
        self.assertEqual(self.protocol.connections, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_errorToKeptConnectionId(self) -> None:
        """
        An error answer to a connection id kept from an earlier exchange
        (the tracker restarted and forgot it) makes the client connect
        again and ask once more; the second answer counts.
        """
        first = self.client.announce(request())
        self.connect()
        self.reply(
            a.UDPAnnounceResponse(self.sent().transactionId, AnnounceResponse(60))
        )
        self.successResultOf(first)
        self.clock.advance(30)
        d = self.client.announce(request(event=""))
        self.assertEqual(self.sent().connectionId, CID)
        self.reply(a.UDPErrorResponse(self.sent().transactionId, "bad connection id"))
        self.assertNoResult(d)
        self.connect(cid=5)
        self.assertEqual(self.sent().connectionId, 5)
        response = AnnounceResponse(
            60, peers=(("10.0.0.1", 1),), complete=0, incomplete=1
        )
        self.reply(a.UDPAnnounceResponse(self.sent().transactionId, response))
        self.assertEqual(self.successResultOf(d), response)
        self.assertEqual(len(self.transport.written), 5)

    def test_errorToKeptConnectionIdTwice(self) -> None:
        """
        If the tracker refuses the fresh connection id too, its error is
        final: one reconnect, no loop.
        """
        self.protocol.connections[TRACKER] = (CID, self.clock.seconds())
        d = self.client.announce(request())
        self.reply(a.UDPErrorResponse(self.sent().transactionId, "go away"))
        self.connect(cid=6)
        self.reply(a.UDPErrorResponse(self.sent().transactionId, "go away"))
        self.assertEqual(
            self.failureResultOf(d, TrackerFailure).value.reason, "go away"
        )
        self.assertEqual(len(self.transport.written), 3)
        self.assertEqual(self.protocol.connections, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unreachableFamily(self) -> None:
        """
        A write the socket refuses (Twisted raises C{InvalidAddressError},
        a C{ValueError}, for an IPv6 address on an IPv4 socket) fails the
        announce at once instead of leaving it waiting for ever.
        """

        class IPv4Only(FakeDatagramTransport):
            def write(self, data: bytes, addr) -> None:
                if ":" in addr[0]:
                    raise ValueError(f"{addr[0]} is not an IPv4 address")
                super().write(data, addr)

        protocol = UDPTrackerProtocol(self.clock)
        protocol.makeConnection(IPv4Only())
        client = UDPTrackerClient("udp://[::1]:6969", self.clock, protocol=protocol)
        e = self.failureResultOf(client.announce(request()), TrackerError)
        self.assertIn("cannot send to", e.getErrorMessage())
        self.assertEqual(protocol.transactions, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_protocolPerFamily(self) -> None:
        """
        Given a function of the address family, the client asks it for the
        socket of the tracker's family; a L{TrackerError} it raises fails
        the announce.
        """
        asked = []

        def protocolFor(v6: bool):
            asked.append(v6)
            if v6:
                raise TrackerError("no IPv6 socket: bound to 127.0.0.1")
            return self.protocol

        client = UDPTrackerClient(URL, self.clock, protocol=protocolFor)
        client.announce(request())
        self.assertIsInstance(self.sent(), a.UDPConnectRequest)
        v6 = UDPTrackerClient("udp://[::1]:6969", self.clock, protocol=protocolFor)
        e = self.failureResultOf(v6.announce(request()), TrackerError)
        self.assertIn("no IPv6 socket", e.getErrorMessage())
        self.assertEqual(asked, [False, True])

    def test_errorOnConnect(self) -> None:
        """
        An error answer to a connect request fails too.
        """
        d = self.client.announce(request())
        self.reply(a.UDPErrorResponse(self.sent().transactionId, "busy"))
        self.assertEqual(self.failureResultOf(d, TrackerFailure).value.reason, "busy")

    def test_cancel(self) -> None:
        """
        Cancelling an announce forgets its transaction and its timer.
        """
        d = self.client.announce(request())
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.protocol.transactions, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop(self) -> None:
        """
        Stopping the protocol fails requests in flight and stops listening.
        """
        d = self.client.announce(request())
        self.protocol.stop()
        self.failureResultOf(d, TrackerError)
        self.assertTrue(self.transport.stopped)

    def test_notListening(self) -> None:
        """
        A protocol without a transport fails at once.
        """
        protocol = UDPTrackerProtocol(self.clock)
        client = UDPTrackerClient(URL, self.clock, protocol=protocol)
        self.failureResultOf(client.announce(request()), TrackerError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_hostName(self) -> None:
        """
        Host names are resolved through the reactor.
        """
        clock = FakeResolvingClock({"tracker.test": "127.0.0.1"})
        protocol = UDPTrackerProtocol(clock)
        protocol.makeConnection(self.transport)
        client = UDPTrackerClient("udp://tracker.test:6969", clock, protocol=protocol)
        client.announce(request())
        self.assertEqual(clock.asked, ["tracker.test"])
        self.assertEqual(self.transport.written[0][1], TRACKER)
        bad = UDPTrackerClient("udp://nowhere.test:6969", clock, protocol=protocol)
        e = self.failureResultOf(bad.announce(request()), TrackerError)
        self.assertIn("cannot resolve nowhere.test", e.getErrorMessage())

    def test_ipv6(self) -> None:
        """
        An IPv6 tracker answers with 18-byte peers; its datagrams carry
        flow info and scope id in the address.
        """
        client = UDPTrackerClient(
            "udp://[::1]:6969", self.clock, protocol=self.protocol
        )
        d = client.announce(request())
        data, addr = self.transport.written[0]
        self.assertEqual(addr, ("::1", 6969))
        tid = a.decodeUDPRequest(data).transactionId
        self.reply(a.UDPConnectResponse(tid, CID), addr=("::1", 6969, 0, 0))
        data, addr = self.transport.written[1]
        tid = a.decodeUDPRequest(data).transactionId
        response = AnnounceResponse(
            60, peers=(("2001:db8::1", 7),), complete=0, incomplete=1
        )
        raw = a.encodeUDPResponse(a.UDPAnnounceResponse(tid, response), v6=True)
        self.protocol.datagramReceived(raw[:-6], ("::1", 6969, 0, 0))
        self.assertNoResult(d)
        self.protocol.datagramReceived(raw, ("::1", 6969, 0, 0))
        self.assertEqual(self.successResultOf(d), response)

    @settings(max_examples=200)
    @given(st.lists(st.binary(max_size=60), max_size=5))
    def test_garbageDatagrams(self, datagrams) -> None:
        """
        Garbage from the tracker's address, even with a live transaction id,
        never raises; the request keeps waiting or completes with a valid
        answer.
        """
        clock = task.Clock()
        transport = FakeDatagramTransport()
        protocol = UDPTrackerProtocol(clock, random.Random(1))
        protocol.makeConnection(transport)
        client = UDPTrackerClient(URL, clock, protocol=protocol)
        d = client.announce(request())
        tid = a.decodeUDPRequest(transport.written[0][0]).transactionId
        for data in datagrams:
            protocol.datagramReceived(struct.pack("!II", 0, tid) + data, TRACKER)
            protocol.datagramReceived(data, TRACKER)
        if d.called:
            self.failureResultOf(d, TrackerFailure)
        else:
            self.assertEqual(len(protocol.transactions), 1)
            d.cancel()
            self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(protocol.transactions, {})


class ScrapeTests(UDPTestCase):
    """
    UDP scrape.
    """

    def test_scrape(self) -> None:
        """
        Figures come back in the order of the request.
        """
        other = b"\xee" * 20
        d = self.client.scrape([HASH, other])
        self.connect()
        message = self.sent()
        self.assertEqual(
            message, a.UDPScrapeRequest(CID, message.transactionId, (HASH, other))
        )
        stats = (ScrapeStats(1, 2, 3), ScrapeStats(4, 5, 6))
        self.reply(a.UDPScrapeResponse(message.transactionId, stats[:1]))
        self.assertNoResult(d)
        self.reply(a.UDPScrapeResponse(message.transactionId, stats))
        self.assertEqual(self.successResultOf(d), {HASH: stats[0], other: stats[1]})

    def test_batches(self) -> None:
        """
        More than 74 info-hashes go in several requests.
        """
        hashes = [bytes([i]) * 20 for i in range(80)]
        d = self.client.scrape(hashes)
        # Each batch connects on its own.
        connects = [a.decodeUDPRequest(w[0]) for w in self.transport.written]
        self.assertEqual(len(connects), 2)
        for c in connects:
            self.reply(a.UDPConnectResponse(c.transactionId, CID))
        requests = [a.decodeUDPRequest(w[0]) for w in self.transport.written[2:]]
        self.assertEqual([len(r.infoHashes) for r in requests], [74, 6])
        for r in requests:
            self.reply(
                a.UDPScrapeResponse(
                    r.transactionId,
                    tuple(ScrapeStats(h[0], 0, 0) for h in r.infoHashes),
                )
            )
        result = self.successResultOf(d)
        self.assertEqual(len(result), 80)
        self.assertEqual(result[hashes[79]], ScrapeStats(79, 0, 0))

    def test_scrapeError(self) -> None:
        """
        An error answer fails the scrape with the tracker's words.
        """
        d = self.client.scrape([HASH])
        self.connect()
        self.reply(a.UDPErrorResponse(self.sent().transactionId, "no"))
        self.assertEqual(self.failureResultOf(d, TrackerFailure).value.reason, "no")


class FakeUDPReactor(task.Clock):
    """
    A clock that pretends to listen on UDP ports.
    """

    def __init__(self) -> None:
        super().__init__()
        self.listening: list = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        transport = FakeDatagramTransport()
        self.listening.append((port, protocol, interface, transport))
        protocol.makeConnection(transport)
        return transport


class SharedProtocolTests(SynchronousTestCase):
    """
    One UDP port per reactor and address family.
    """

    def test_shared(self) -> None:
        """
        Clients without a protocol share one listening protocol per family;
        it can be stopped and is then made afresh.
        """
        reactor = FakeUDPReactor()
        self.addCleanup(stopSharedProtocols, reactor)
        one = UDPTrackerClient("udp://127.0.0.1:1", reactor)
        two = UDPTrackerClient("udp://127.0.0.1:2", reactor)
        ds = [one.announce(request()), two.announce(request())]
        self.assertEqual(len(reactor.listening), 1)
        port, protocol, interface, transport = reactor.listening[0]
        self.assertEqual((port, interface), (0, ""))
        self.assertIs(sharedProtocol(reactor), protocol)
        self.assertEqual(
            [addr for data, addr in transport.written],
            [("127.0.0.1", 1), ("127.0.0.1", 2)],
        )
        ds.append(UDPTrackerClient("udp://[::1]:3", reactor).announce(request()))
        self.assertEqual(reactor.listening[1][2], "::")
        stopSharedProtocols(reactor)
        for d in ds:
            self.failureResultOf(d, TrackerError)
        self.assertTrue(transport.stopped)
        self.assertEqual(protocol.transactions, {})
        self.assertIsNot(sharedProtocol(reactor, interface="127.0.0.1"), protocol)
        self.assertEqual(reactor.listening[2][2], "127.0.0.1")
