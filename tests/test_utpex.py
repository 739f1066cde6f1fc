"""
Tests for L{btorrent.peer.utpex}.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode
from btorrent.peer.utpex import (
    MAX_DIFF_ENTRIES,
    MAX_FIRST_ENTRIES,
    MAX_LEARNED,
    MAX_PEX_ENTRIES,
    MAX_PEX_SIZE,
    PEX_ENCRYPTION,
    PEX_OUTGOING,
    PEX_SEED,
    PexError,
    PexFlood,
    PexMessage,
    PexReceiver,
    PexSender,
    decodePex,
    encodePex,
    normaliseAddress,
    pexFlags,
)


def v4(host: str, port: int) -> bytes:
    return ipaddress.IPv4Address(host).packed + struct.pack(">H", port)


def v6(host: str, port: int) -> bytes:
    return ipaddress.IPv6Address(host).packed + struct.pack(">H", port)


def loopbacks(n: int, start: int = 10000):
    return [("127.0.0.1", start + i) for i in range(n)]


class CodecTests(SynchronousTestCase):
    def test_encode(self) -> None:
        """
        IPv4 and IPv6 lists, flags for every added peer; C{added},
        C{added.f} and C{dropped} always present.
        """
        message = PexMessage(
            added=((("1.2.3.4", 80), PEX_SEED), (("::1", 81), PEX_ENCRYPTION)),
            dropped=(("5.6.7.8", 82), ("fe80::2", 83)),
        )
        self.assertEqual(
            bencode.decode(encodePex(message)),
            {
                b"added": v4("1.2.3.4", 80),
                b"added.f": b"\x02",
                b"added6": v6("::1", 81),
                b"added6.f": b"\x01",
                b"dropped": v4("5.6.7.8", 82),
                b"dropped6": v6("fe80::2", 83),
            },
        )
        self.assertEqual(encodePex(PexMessage()), b"d5:added0:7:added.f0:7:dropped0:e")

    def test_decode(self) -> None:
        payload = bencode.encode(
            {
                b"added": v4("1.2.3.4", 80) + v4("9.9.9.9", 1),
                b"added.f": b"\x12\x00",
                b"added6": v6("2001:db8::1", 443) + v6("::ffff:10.1.2.3", 5),
                b"added6.f": b"\x01\x02",
                b"dropped": v4("5.6.7.8", 9),
                b"dropped6": v6("::2", 10),
                b"unknown": [1, 2],
            }
        )
        self.assertEqual(
            decodePex(payload),
            PexMessage(
                added=(
                    (("1.2.3.4", 80), 0x12),
                    (("9.9.9.9", 1), 0),
                    (("2001:db8::1", 443), 1),
                    (("10.1.2.3", 5), 2),
                ),
                dropped=(("5.6.7.8", 9), ("::2", 10)),
            ),
        )

    def test_libtorrentFirstMessage(self) -> None:
        """
        libtorrent's first message has every key, most empty.
        """
        payload = (
            b"d5:added6:" + v4("127.0.0.1", 6881) + b"7:added.f1:\x10"
            b"6:added60:8:added6.f0:7:dropped0:8:dropped60:e"
        )
        self.assertEqual(
            decodePex(payload), PexMessage(added=((("127.0.0.1", 6881), 0x10),))
        )

    def test_tolerated(self) -> None:
        """
        Lists of the wrong type or length are ignored as a whole; flags of
        the wrong length or type give flags 0; bytes after the dictionary
        are ignored.
        """
        good = v4("1.2.3.4", 80)
        cases = [
            ({b"added": good + b"x"}, PexMessage()),
            ({b"added": 5}, PexMessage()),
            ({b"added": [good]}, PexMessage()),
            ({b"added6": bytes(17)}, PexMessage()),
            ({b"dropped": good[:5]}, PexMessage()),
            ({b"dropped6": {b"a": 1}}, PexMessage()),
            ({b"added": good}, PexMessage(added=((("1.2.3.4", 80), 0),))),
            (
                {b"added": good, b"added.f": b"\x01\x02"},
                PexMessage(added=((("1.2.3.4", 80), 0),)),
            ),
            (
                {b"added": good, b"added.f": 1},
                PexMessage(added=((("1.2.3.4", 80), 0),)),
            ),
            ({}, PexMessage()),
        ]
        for value, expected in cases:
            self.assertEqual(decodePex(bencode.encode(value)), expected, value)
        self.assertEqual(
            decodePex(b"d7:dropped6:" + good + b"ejunk").dropped, (("1.2.3.4", 80),)
        )

    def test_cap(self) -> None:
        """
        At most L{MAX_PEX_ENTRIES} added and as many dropped peers are read
        from one message, IPv4 first; flags stay with their peers.
        """
        many4 = b"".join(v4("10.0.0.1", p) for p in range(1, 151))
        many6 = b"".join(v6("2001:db8::1", p) for p in range(1, 151))
        payload = bencode.encode(
            {
                b"added": many4,
                b"added.f": bytes(range(150)),
                b"added6": many6,
                b"added6.f": bytes([7]) * 150,
                b"dropped": many4 + many4,
            }
        )
        message = decodePex(payload)
        self.assertEqual(len(message.added), MAX_PEX_ENTRIES)
        self.assertEqual(message.added[149], (("10.0.0.1", 150), 149))
        self.assertEqual(message.added[150], (("2001:db8::1", 1), 7))
        self.assertEqual(len(message.dropped), MAX_PEX_ENTRIES)

    def test_errors(self) -> None:
        for payload in [
            b"",
            b"x",
            b"le",
            b"i5e",
            b"d5:added",
            b"d5:added6:123456",
            b"d5:added99999999999999999999:e",
            b"d7:dropped0:7:dropped0:e",
            b"d" + b"l" * 200 + b"e" * 201,
            b"d5:added"
            + str(MAX_PEX_SIZE).encode()
            + b":"
            + bytes(MAX_PEX_SIZE)
            + b"e",
            None,
            "d e",
        ]:
            self.assertRaises(PexError, decodePex, payload)

    def test_encodeErrors(self) -> None:
        for message in [
            PexMessage(added=((("host.example", 1), 0),)),
            PexMessage(dropped=(("1.2.3.4", 70000),)),
            PexMessage(dropped=(("1.2.3.4", -1),)),
        ]:
            self.assertRaises(ValueError, encodePex, message)

    def test_flags(self) -> None:
        self.assertEqual(pexFlags(), 0)
        self.assertEqual(pexFlags(seed=True, outgoing=True), PEX_SEED | PEX_OUTGOING)
        self.assertEqual(pexFlags(True, True, True, True, True), 0x1F)

    def test_normalise(self) -> None:
        self.assertEqual(normaliseAddress(("::ffff:127.0.0.1", 5)), ("127.0.0.1", 5))
        self.assertEqual(normaliseAddress(("0:0::1", 5)), ("::1", 5))
        self.assertRaises(ValueError, normaliseAddress, ("localhost", 5))

    addresses = st.tuples(
        st.ip_addresses().map(
            lambda a: str(a.ipv4_mapped or a) if a.version == 6 else str(a)
        ),
        st.integers(0, 65535),
    )

    @given(
        st.lists(st.tuples(addresses, st.integers(0, 255)), max_size=30),
        st.lists(addresses, max_size=30),
    )
    @settings(max_examples=300, deadline=None)
    def test_roundTrip(self, added, dropped) -> None:
        """
        What we encode decodes to the same peers (IPv4 first).
        """
        message = PexMessage(tuple(added), tuple(dropped))
        decoded = decodePex(encodePex(message))

        def order(peers, key):
            return sorted(peers, key=lambda p: ":" in key(p)[0])

        self.assertEqual(list(decoded.added), order(added, lambda p: p[0]))
        self.assertEqual(list(decoded.dropped), order(dropped, lambda p: p))

    @given(st.binary(max_size=400))
    @settings(max_examples=1000, deadline=None)
    def test_anyBytes(self, payload) -> None:
        try:
            decodePex(payload)
        except PexError:
            pass

    @given(
        st.dictionaries(
            st.sampled_from(
                [b"added", b"added.f", b"added6", b"added6.f", b"dropped", b"dropped6"]
            ),
            st.binary(max_size=60) | st.integers() | st.lists(st.binary(max_size=6)),
        )
    )
    @settings(max_examples=1000, deadline=None)
    def test_anyFields(self, value) -> None:
        """
        Any values under the known keys: a message, never an exception.
        """
        message = decodePex(bencode.encode(value))
        for (host, port), flags in message.added:
            ipaddress.ip_address(host)
            self.assertTrue(0 <= port < 65536 and 0 <= flags < 256)


class SenderTests(SynchronousTestCase):
    def test_firstThenDiffs(self) -> None:
        """
        The first message lists the peers; later ones what changed, at most
        one a minute; nothing when nothing changed.
        """
        sender = PexSender()
        self.assertIsNone(sender.nextMessage({}, 0))  # nothing to say
        peers = {("1.2.3.4", 1): PEX_SEED, ("::1", 2): 0}
        self.assertEqual(
            sender.nextMessage(peers, 1),
            PexMessage(added=((("1.2.3.4", 1), PEX_SEED), (("::1", 2), 0))),
        )
        self.assertIsNone(sender.nextMessage({("5.5.5.5", 5): 0}, 60.9))
        self.assertEqual(
            sender.nextMessage({("5.5.5.5", 5): 0, ("::1", 2): 0}, 61),
            PexMessage(added=((("5.5.5.5", 5), 0),), dropped=(("1.2.3.4", 1),)),
        )
        self.assertIsNone(sender.nextMessage({("5.5.5.5", 5): 0, ("::1", 2): 0}, 200))
        self.assertEqual(
            sender.nextMessage({}, 201),
            PexMessage(dropped=(("::1", 2), ("5.5.5.5", 5))),
        )

    def test_neverTheReceiver(self) -> None:
        """
        The receiver is never listed, under its remote address, its listen
        address added later, or an IPv4-mapped form.
        """
        sender = PexSender([("127.0.0.1", 5000)])
        sender.excludeAddress(("::ffff:127.0.0.1", 6881))
        sender.excludeAddress(("not an ip", 1))
        peers = {
            ("127.0.0.1", 5000): 0,
            ("127.0.0.1", 6881): 0,
            ("::ffff:127.0.0.1", 5000): 0,
            ("127.0.0.1", 7000): 0,
        }
        self.assertEqual(
            sender.nextMessage(peers, 0), PexMessage(added=((("127.0.0.1", 7000), 0),))
        )

    def test_skipsUnusable(self) -> None:
        sender = PexSender()
        self.assertIsNone(
            sender.nextMessage({("host.example", 1): 0, ("1.2.3.4", 0): 0}, 0)
        )

    def test_limits(self) -> None:
        """
        At most L{MAX_FIRST_ENTRIES} in the first message, then at most
        L{MAX_DIFF_ENTRIES} added and as many dropped; the rest follows in
        later messages; every message encodes under libtorrent's limits.
        """
        sender = PexSender()
        peers = dict.fromkeys(loopbacks(260), 0)
        first = sender.nextMessage(peers, 0)
        self.assertEqual(len(first.added), MAX_FIRST_ENTRIES)
        told = {a for a, _ in first.added}
        now = 0
        while True:
            now += 60
            message = sender.nextMessage(peers, now)
            if message is None:
                break
            self.assertLessEqual(len(message.added), MAX_DIFF_ENTRIES)
            told |= {a for a, _ in message.added}
            self.assertLess(len(encodePex(message)), 1000)
        self.assertEqual(told, set(peers))
        # All gone: dropped 50 at a time.
        counts = []
        while True:
            now += 60
            message = sender.nextMessage({}, now)
            if message is None:
                break
            counts.append(len(message.dropped))
        self.assertEqual(counts, [50] * 5 + [10])

    def test_reconnect(self) -> None:
        """
        A peer dropped then back between two messages is not mentioned; one
        added and gone between two messages neither.
        """
        sender = PexSender()
        a, b = ("1.1.1.1", 1), ("2.2.2.2", 2)
        sender.nextMessage({a: 0}, 0)
        self.assertIsNone(sender.nextMessage({a: 0}, 60))
        self.assertIsNone(sender.nextMessage({a: 0}, 120))
        sender.nextMessage({a: 0, b: 0}, 180)
        self.assertEqual(sender.nextMessage({b: 0}, 240), PexMessage(dropped=(a,)))

    @given(
        st.lists(
            st.sets(st.sampled_from(loopbacks(80)), max_size=80),
            min_size=1,
            max_size=20,
        )
    )
    @settings(max_examples=200, deadline=None)
    def test_receiverView(self, rounds) -> None:
        """
        Applying every message to a receiver's view gives, after enough
        messages with no change, exactly the peers connected; no message
        adds and drops one peer, or repeats one.
        """
        sender = PexSender(interval=60)
        view = set()
        now = 0.0
        for peers in rounds + [rounds[-1]] * 10:
            message = sender.nextMessage(dict.fromkeys(peers, 0), now)
            now += 60
            if message is None:
                continue
            added = [a for a, _ in message.added]
            self.assertEqual(len(set(added)), len(added))
            self.assertEqual(len(set(message.dropped)), len(message.dropped))
            self.assertFalse(set(added) & set(message.dropped))
            self.assertFalse(set(added) & view)
            self.assertLessEqual(set(message.dropped), view)
            view |= set(added)
            view -= set(message.dropped)
        self.assertEqual(view, set(rounds[-1]))


class ReceiverTests(SynchronousTestCase):
    def test_flood(self) -> None:
        """
        Six messages within 60 s are fine; the seventh is a flood
        (libtorrent's rule); spaced out, any number is fine.
        """
        receiver = PexReceiver(("127.0.0.1", 1))
        payload = encodePex(PexMessage())
        for i in range(6):
            receiver.receive(payload, i)
        self.assertRaises(PexFlood, receiver.receive, payload, 59.9)
        receiver = PexReceiver(("127.0.0.1", 1))
        for i in range(100):
            receiver.receive(payload, i * 10.0)
        self.assertTrue(issubclass(PexFlood, PexError))

    def test_garbage(self) -> None:
        receiver = PexReceiver()
        self.assertRaises(PexError, receiver.receive, b"garbage", 0)

    def test_ownAddress(self) -> None:
        """
        Our own address is never learned, in either form.
        """
        receiver = PexReceiver(("127.0.0.1", 9), ownAddresses=[("127.0.0.1", 6881)])
        receiver.addOwnAddress(("::ffff:10.0.0.5", 6881))
        receiver.addOwnAddress(("not an address", 6881))
        payload = bencode.encode(
            {
                b"added": v4("127.0.0.1", 6881)
                + v4("10.0.0.5", 6881)
                + v4("127.0.0.1", 7),
                b"added.f": b"\x00\x00\x10",
                b"added6": v6("::ffff:127.0.0.1", 6881),
                b"added6.f": b"\x00",
            }
        )
        self.assertEqual(
            receiver.receive(payload, 0), PexMessage(added=((("127.0.0.1", 7), 0x10),))
        )

    def test_loopbackPorts(self) -> None:
        """
        On loopback every port counts (every test peer is 127.0.0.1);
        elsewhere a second port of a known address is ignored (BEP 11).
        """
        receiver = PexReceiver(("127.0.0.1", 1))
        added = [("127.0.0.1", p) for p in (5, 6, 7)] + [("::1", 5), ("::1", 6)]
        added += [("8.8.8.8", 1), ("8.8.8.8", 2), ("10.0.0.1", 1), ("10.0.0.1", 2)]
        message = receiver.receive(
            encodePex(PexMessage(added=tuple((a, 0) for a in added))), 0
        )
        self.assertEqual(
            [a for a, _ in message.added],
            added[:3] + [("8.8.8.8", 1), ("10.0.0.1", 1)] + added[3:5],
        )
        # Later messages too.
        message = receiver.receive(
            encodePex(PexMessage(added=((("8.8.8.8", 3), 0), (("127.0.0.1", 8), 0)))), 1
        )
        self.assertEqual(message.added, ((("127.0.0.1", 8), 0),))

    def test_localFromPublic(self) -> None:
        """
        A peer on the internet cannot send us to loopback or private
        addresses; unusable addresses are never taken.
        """
        receiver = PexReceiver(("8.8.8.8", 6881))
        added = [
            ("127.0.0.1", 1),
            ("10.1.1.1", 1),
            ("192.168.1.1", 1),
            ("169.254.1.1", 1),
            ("::1", 1),
            ("fe80::1", 1),
            ("fd00::1", 1),
            ("0.0.0.0", 1),
            ("224.0.0.1", 1),
            ("255.255.255.255", 1),
            ("ff02::1", 1),
            ("1.1.1.1", 0),
            ("1.1.1.1", 1),
        ]
        message = receiver.receive(
            encodePex(PexMessage(added=tuple((a, 0) for a in added))), 0
        )
        self.assertEqual(message.added, ((("1.1.1.1", 1), 0),))
        # A local peer may tell us about local peers.
        receiver = PexReceiver(("192.168.1.5", 6881))
        message = receiver.receive(
            encodePex(PexMessage(added=tuple((a, 0) for a in added))), 0
        )
        self.assertEqual(
            [a for a, _ in message.added],
            [
                ("127.0.0.1", 1),
                ("10.1.1.1", 1),
                ("192.168.1.1", 1),
                ("169.254.1.1", 1),
                ("1.1.1.1", 1),
                ("::1", 1),
                ("fe80::1", 1),
                ("fd00::1", 1),
            ],
        )

    def test_dropped(self) -> None:
        """
        Dropped peers are reported only if learned from this source; a
        known peer added again is not new.
        """
        receiver = PexReceiver(("127.0.0.1", 1))
        a, b = ("127.0.0.1", 5), ("127.0.0.1", 6)
        receiver.receive(encodePex(PexMessage(added=((a, 0),))), 0)
        self.assertEqual(
            receiver.receive(encodePex(PexMessage(added=((a, 0),))), 0.5), PexMessage()
        )
        self.assertEqual(
            receiver.receive(encodePex(PexMessage(dropped=(a, b))), 1),
            PexMessage(dropped=(a,)),
        )
        self.assertEqual(receiver.learned, {})
        self.assertEqual(
            receiver.receive(encodePex(PexMessage(added=((a, 2),))), 2),
            PexMessage(added=((a, 2),)),
        )

    def test_maxLearned(self) -> None:
        """
        At most L{MAX_LEARNED} peers are kept from one source.
        """
        receiver = PexReceiver(("127.0.0.1", 1))
        total = 0
        for batch in range(3):
            peers = loopbacks(100, 10000 + batch * 100)
            message = receiver.receive(
                encodePex(PexMessage(added=tuple((a, 0) for a in peers))), batch
            )
            total += len(message.added)
        self.assertEqual(total, MAX_LEARNED)
        self.assertEqual(len(receiver.learned), MAX_LEARNED)

    @given(st.lists(st.binary(max_size=100), max_size=10))
    @settings(max_examples=300, deadline=None)
    def test_anyPayloads(self, payloads) -> None:
        receiver = PexReceiver(("127.0.0.1", 1))
        for i, payload in enumerate(payloads):
            try:
                receiver.receive(payload, i * 61.0)
            except PexError:
                pass
