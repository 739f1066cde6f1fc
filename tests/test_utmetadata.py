"""
Tests for L{btorrent.peer.utmetadata}.
"""

from __future__ import annotations

import hashlib
import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode
from btorrent.peer.utmetadata import (
    DUPLICATE_AFTER,
    MAX_MESSAGE_SIZE,
    METADATA_BLOCK,
    MetadataData,
    MetadataFetcher,
    MetadataMessageError,
    MetadataReject,
    MetadataRequest,
    MetadataServer,
    decodeMetadataMessage,
    encodeMetadataMessage,
    pieceCount,
)


def metadata(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def blockOf(data: bytes, piece: int) -> bytes:
    return data[piece * METADATA_BLOCK : (piece + 1) * METADATA_BLOCK]


class CodecTests(SynchronousTestCase):
    def test_bep9Examples(self) -> None:
        """
        The encodings of BEP 9's examples.
        """
        self.assertEqual(
            encodeMetadataMessage(MetadataRequest(0)), b"d8:msg_typei0e5:piecei0ee"
        )
        self.assertEqual(
            encodeMetadataMessage(MetadataReject(0)), b"d8:msg_typei2e5:piecei0ee"
        )
        self.assertEqual(
            encodeMetadataMessage(MetadataData(0, 34256, b"xxxx")),
            b"d8:msg_typei1e5:piecei0e10:total_sizei34256eexxxx",
        )

    def test_decode(self) -> None:
        self.assertEqual(
            decodeMetadataMessage(b"d8:msg_typei0e5:piecei3ee"), MetadataRequest(3)
        )
        self.assertEqual(
            decodeMetadataMessage(b"d8:msg_typei2e5:piecei3ee"), MetadataReject(3)
        )
        self.assertEqual(
            decodeMetadataMessage(b"d8:msg_typei1e5:piecei1e10:total_sizei20000eeABC"),
            MetadataData(1, 20000, b"ABC"),
        )

    def test_tolerated(self) -> None:
        """
        Unknown msg_type: C{None} (BEP 9: ignore).  Extra keys (libtorrent
        puts C{total_size} in rejects) and bytes after a request are
        ignored.
        """
        self.assertIsNone(decodeMetadataMessage(b"d8:msg_typei7e5:piecei0ee"))
        self.assertIsNone(decodeMetadataMessage(b"d8:msg_typei-1e5:piecei0ee"))
        self.assertEqual(
            decodeMetadataMessage(b"d8:msg_typei2e5:piecei0e10:total_sizei5ee"),
            MetadataReject(0),
        )
        self.assertEqual(
            decodeMetadataMessage(b"d8:msg_typei0e5:piecei0eexx"), MetadataRequest(0)
        )

    def test_largest(self) -> None:
        """
        A full block with its dictionary fits L{MAX_MESSAGE_SIZE} with room
        to spare; one byte more than the limit is refused.
        """
        payload = encodeMetadataMessage(
            MetadataData(2**31 - 1, 10**12, bytes(METADATA_BLOCK))
        )
        self.assertLess(len(payload), MAX_MESSAGE_SIZE - 900)
        self.assertEqual(decodeMetadataMessage(payload).block, bytes(METADATA_BLOCK))
        big = b"d8:msg_typei0e5:piecei0ee" + bytes(MAX_MESSAGE_SIZE)
        self.assertRaises(MetadataMessageError, decodeMetadataMessage, big)

    def test_errors(self) -> None:
        for payload in [
            b"",
            b"x",
            b"i1e",
            b"le",
            b"d8:msg_typei0ee",
            b"d5:piecei0ee",
            b"d8:msg_type1:05:piecei0ee",
            b"d8:msg_typei0e5:piece1:0e",
            b"d8:msg_typei0e5:piecei-1ee",
            b"d8:msg_typei0e5:piecei2147483648ee",
            b"d8:msg_typei1e5:piecei0eeabc",
            b"d8:msg_typei1e5:piecei0e10:total_sizei0eeabc",
            b"d8:msg_typei1e5:piecei0e10:total_size1:5eabc",
            b"d8:msg_typei1e5:piecei0e10:total_sizei5ee",
            b"d8:msg_typei1e5:piecei0e10:total_sizei5ee" + bytes(METADATA_BLOCK + 1),
            b"d8:msg_typei0e5:piecei0e",
            b"d8:msg_typei01e5:piecei0ee",
            b"d8:msg_typei0e5:piecei0e5:piecei1ee",
            b"d999999999999999999999:",
            None,
            "d8:msg_typei0e5:piecei0ee",
        ]:
            self.assertRaises(MetadataMessageError, decodeMetadataMessage, payload)

    def test_encodeErrors(self) -> None:
        for message in [
            MetadataRequest(-1),
            MetadataRequest(2**31),
            MetadataData(0, 0, b"x"),
            MetadataData(0, 5, bytes(METADATA_BLOCK + 1)),
            "request",
        ]:
            self.assertRaises(ValueError, encodeMetadataMessage, message)

    messages = st.one_of(
        st.builds(MetadataRequest, st.integers(0, 2**31 - 1)),
        st.builds(MetadataReject, st.integers(0, 2**31 - 1)),
        st.builds(
            MetadataData,
            st.integers(0, 2**31 - 1),
            st.integers(1, 2**62),
            st.binary(min_size=1, max_size=METADATA_BLOCK),
        ),
    )

    @given(messages)
    @settings(max_examples=300, deadline=None)
    def test_roundTrip(self, message) -> None:
        self.assertEqual(decodeMetadataMessage(encodeMetadataMessage(message)), message)

    @given(st.binary(max_size=300))
    @settings(max_examples=1000, deadline=None)
    def test_anyBytes(self, payload) -> None:
        try:
            decodeMetadataMessage(payload)
        except MetadataMessageError:
            pass

    @given(messages, st.data())
    @settings(max_examples=300, deadline=None)
    def test_mutated(self, message, data) -> None:
        """
        A message cut short or with a byte changed: a message, C{None} or
        L{MetadataMessageError}.
        """
        payload = bytearray(encodeMetadataMessage(message)[:300])
        cut = data.draw(st.integers(0, len(payload)))
        if payload:
            i = data.draw(st.integers(0, len(payload) - 1))
            payload[i] = data.draw(st.integers(0, 255))
        try:
            decodeMetadataMessage(bytes(payload[:cut]))
        except MetadataMessageError:
            pass


def fetcherWith(data: bytes, **kwargs) -> MetadataFetcher:
    return MetadataFetcher(hashlib.sha1(data).digest(), **kwargs)


def answer(fetcher, peer, data, piece, now=0.0, size=None):
    size = len(data) if size is None else size
    return fetcher.gotData(peer, MetadataData(piece, size, blockOf(data, piece)), now)


class FetcherTests(SynchronousTestCase):
    def test_onePeer(self) -> None:
        """
        One peer, three pieces: two requests at a time, the last piece
        short; the whole is verified and given.
        """
        data = metadata(2 * METADATA_BLOCK + 100)
        f = fetcherWith(data)
        self.assertTrue(f.addPeer("A", len(data)))
        self.assertEqual(f.pieceCount, 3)
        self.assertEqual(f.requests("A", 0), [0, 1])
        self.assertEqual(f.requests("A", 0), [])
        self.assertEqual(f.outstanding("A"), (0, 1))
        self.assertEqual(answer(f, "A", data, 1), frozenset())
        self.assertEqual(f.requests("A", 1), [2])
        self.assertEqual(answer(f, "A", data, 2), frozenset())
        self.assertFalse(f.done)
        self.assertEqual(f.piecesReceived, 2)
        self.assertEqual(answer(f, "A", data, 0), frozenset())
        self.assertTrue(f.done)
        self.assertEqual(f.infoBytes, data)
        self.assertEqual(f.requests("A", 2), [])
        self.assertIsNone(f.nextDeadline(2))
        self.assertFalse(f.addPeer("B", len(data)))
        self.assertEqual(answer(f, "A", data, 0), frozenset())

    def test_spread(self) -> None:
        """
        Peers asked in turn get different pieces while there are
        unrequested ones.
        """
        data = metadata(5 * METADATA_BLOCK)
        f = fetcherWith(data)
        for peer in "ABC":
            f.addPeer(peer, len(data))
        self.assertEqual(
            f.schedule(0), [("A", 0), ("A", 1), ("B", 2), ("B", 3), ("C", 4)]
        )
        # Every piece requested, none for 3 s: no duplicate yet.
        self.assertEqual(f.requests("C", DUPLICATE_AFTER - 0.1), [])
        # Then a duplicate of a piece requested of one other peer.
        self.assertEqual(f.requests("C", DUPLICATE_AFTER), [0])
        f.addPeer("D", len(data))
        self.assertEqual(f.requests("D", DUPLICATE_AFTER), [1, 2])
        self.assertEqual(f.requests("D", 100), [])  # two outstanding

    def test_duplicateAnswers(self) -> None:
        """
        The second answer for a piece requested twice is ignored.
        """
        data = metadata(METADATA_BLOCK)
        f = fetcherWith(data)
        f.addPeer("A", len(data))
        f.addPeer("B", len(data))
        self.assertEqual(f.requests("A", 0), [0])
        self.assertEqual(f.requests("B", 5), [0])
        self.assertEqual(answer(f, "B", data, 0), frozenset())
        self.assertTrue(f.done)
        self.assertEqual(answer(f, "A", data, 0), frozenset())

    def test_sizeRules(self) -> None:
        """
        Sizes of 0, above the cap or absent are refused; the first
        acceptable size wins; peers disagreeing are not asked.
        """
        data = metadata(1000)
        f = fetcherWith(data, maxSize=5000)
        self.assertFalse(f.addPeer("none", None))
        self.assertFalse(f.addPeer("zero", 0))
        self.assertFalse(f.addPeer("huge", 5001))
        self.assertFalse(f.addPeer("bool", True))
        self.assertIsNone(f.size)
        self.assertTrue(f.addPeer("A", 1000))
        self.assertFalse(f.addPeer("B", 999))
        self.assertEqual(f.size, 1000)
        self.assertEqual(f.requests("B", 0), [])
        self.assertEqual(f.requests("none", 0), [])
        self.assertEqual(f.requests("A", 0), [0])
        # B's later handshake agrees: it can be asked.
        self.assertTrue(f.addPeer("B", 1000))
        self.assertEqual(f.requests("B", 0), [])  # the only piece is taken

    def test_unsolicited(self) -> None:
        """
        Data we did not ask for is ignored, from a known or unknown peer.
        """
        data = metadata(2 * METADATA_BLOCK)
        f = fetcherWith(data)
        self.assertEqual(answer(f, "X", data, 0), frozenset())
        f.addPeer("A", len(data))
        self.assertEqual(answer(f, "A", data, 0), frozenset())
        self.assertEqual(f.piecesReceived, 0)

    def test_wrongSizeDropped(self) -> None:
        """
        A data message with another total size, or a block of the wrong
        length, gets the peer dropped; the others carry on.
        """
        data = metadata(2 * METADATA_BLOCK + 10)
        for bad in [
            MetadataData(0, len(data) + 1, blockOf(data, 0)),
            MetadataData(0, len(data), blockOf(data, 0)[:-1]),
            MetadataData(2, len(data), blockOf(data, 2) + b"x"),
        ]:
            f = fetcherWith(data)
            f.addPeer("A", len(data))
            f.addPeer("B", len(data))
            pieces = f.requests("A", 0) + f.requests("B", 0)
            self.assertEqual(pieces, [0, 1, 2])
            if bad.piece == 2:
                answer(f, "A", data, 0)
                answer(f, "A", data, 1)
                self.assertEqual(f.gotData("B", bad, 0), frozenset({"B"}))
            else:
                self.assertEqual(f.gotData("A", bad, 0), frozenset({"A"}))
            self.assertIn(bad.piece == 2 and "B" or "A", f.banned)
            good = "A" if bad.piece == 2 else "B"
            for piece in range(3):
                f.requests(good, 10 + piece)
                answer(f, good, data, piece)
            self.assertEqual(f.infoBytes, data)

    def test_hashMismatch(self) -> None:
        """
        Metadata whose SHA-1 is not the info-hash: every contributor is
        returned and banned, and the fetch starts over with the others.
        """
        data = metadata(2 * METADATA_BLOCK)
        bad = bytearray(data)
        bad[5] ^= 1
        f = fetcherWith(data)
        f.addPeer("A", len(data))
        f.addPeer("B", len(data))
        f.addPeer("C", len(data))
        self.assertEqual(f.requests("A", 0), [0, 1])
        self.assertEqual(answer(f, "A", bytes(bad), 0), frozenset())
        self.assertEqual(answer(f, "A", bytes(bad), 1), frozenset({"A"}))
        self.assertFalse(f.done)
        self.assertEqual(f.banned, {"A"})
        self.assertEqual(f.piecesReceived, 0)
        self.assertFalse(f.addPeer("A", len(data)))
        self.assertEqual(f.requests("A", 1), [])
        self.assertEqual(f.requests("B", 1), [0, 1])
        answer(f, "B", data, 0)
        answer(f, "B", data, 1)
        self.assertEqual(f.infoBytes, data)

    def test_mixedContributors(self) -> None:
        """
        With pieces from two peers, both are returned and banned; a peer
        that sent nothing stays.
        """
        data = metadata(3 * METADATA_BLOCK)
        f = MetadataFetcher(bytes(20))
        for peer in "ABC":
            f.addPeer(peer, len(data))
        self.assertEqual(f.requests("A", 0), [0, 1])
        self.assertEqual(f.requests("B", 0), [2])
        for peer, piece in [("A", 0), ("B", 2)]:
            self.assertEqual(answer(f, peer, data, piece), frozenset())
        self.assertEqual(answer(f, "A", data, 1), frozenset({"A", "B"}))
        self.assertEqual(f.banned, {"A", "B"})
        self.assertEqual(f.peers(), ["C"])
        self.assertEqual(f.requests("C", 1), [0, 1])

    def test_liarSizeReplaced(self) -> None:
        """
        When the peer whose size was taken turns out bad, the size most
        other peers announce is assembled instead.
        """
        data = metadata(METADATA_BLOCK + 5)
        f = fetcherWith(data)
        f.addPeer("liar", 20)
        self.assertFalse(f.addPeer("B", len(data)))
        self.assertFalse(f.addPeer("C", len(data)))
        self.assertEqual(f.requests("liar", 0), [0])
        self.assertEqual(
            f.gotData("liar", MetadataData(0, 20, bytes(20)), 0), frozenset({"liar"})
        )
        self.assertEqual(f.size, len(data))
        self.assertEqual(f.requests("B", 1), [0, 1])
        answer(f, "B", data, 0)
        answer(f, "B", data, 1)
        self.assertEqual(f.infoBytes, data)

    def test_reject(self) -> None:
        """
        A reject frees the piece for others and leaves the peer alone for
        a minute; a reject for a piece not asked is ignored.
        """
        data = metadata(METADATA_BLOCK)
        f = fetcherWith(data, rejectBackoff=60)
        f.addPeer("A", len(data))
        f.addPeer("B", len(data))
        self.assertEqual(f.requests("A", 0), [0])
        f.gotReject("B", 0, 1)  # not asked of B
        self.assertEqual(f.outstanding("A"), (0,))
        f.gotReject("A", 0, 1)
        self.assertEqual(f.outstanding("A"), ())
        self.assertEqual(f.requests("A", 2), [])
        self.assertEqual(f.nextDeadline(2), 61)
        self.assertEqual(f.requests("B", 2), [0])
        f.removePeer("B")
        self.assertEqual(f.requests("A", 60.9), [])
        self.assertEqual(f.requests("A", 61), [0])

    def test_timeout(self) -> None:
        """
        A request unanswered for C{timeout} seconds is freed and given to
        another peer; the slow peer is left alone for as long; its late
        answer is still taken.
        """
        data = metadata(METADATA_BLOCK)
        f = fetcherWith(data, timeout=10)
        f.addPeer("slow", len(data))
        self.assertEqual(f.requests("slow", 0), [0])
        self.assertEqual(f.nextDeadline(0), 10)
        self.assertEqual(f.expire(9.9), [])
        self.assertEqual(f.expire(10), ["slow"])
        self.assertEqual(f.outstanding("slow"), ())
        self.assertEqual(f.requests("slow", 10), [])
        self.assertEqual(f.nextDeadline(10), 20)
        f.addPeer("fast", len(data))
        self.assertEqual(f.requests("fast", 10), [0])
        self.assertEqual(answer(f, "slow", data, 0, now=11), frozenset())
        self.assertEqual(f.infoBytes, data)

    def test_removePeer(self) -> None:
        """
        A peer that leaves frees its requests.
        """
        data = metadata(2 * METADATA_BLOCK)
        f = fetcherWith(data)
        f.addPeer("A", len(data))
        f.addPeer("B", len(data))
        self.assertEqual(f.requests("A", 0), [0, 1])
        f.removePeer("A")
        f.removePeer("unknown")
        self.assertEqual(f.peers(), ["B"])
        self.assertEqual(f.requests("B", 0), [0, 1])

    def test_sizeChangeFreesRequests(self) -> None:
        """
        A peer whose later handshake announces another size loses its
        requests.
        """
        data = metadata(METADATA_BLOCK)
        f = fetcherWith(data)
        f.addPeer("A", len(data))
        f.addPeer("B", len(data))
        f.requests("A", 0)
        self.assertFalse(f.addPeer("A", 5))
        self.assertEqual(f.outstanding("A"), ())
        self.assertEqual(f.requests("B", 0), [0])
        self.assertEqual(answer(f, "A", data, 0), frozenset())
        self.assertEqual(f.piecesReceived, 0)

    def test_maxSizeMetadata(self) -> None:
        """
        The largest allowed metadata, from several peers, in random order
        of answers.
        """
        data = os.urandom(1_000_000)
        f = fetcherWith(data, maxSize=1_000_000)
        rng = random.Random(1)
        peers = [f"P{i}" for i in range(5)]
        for peer in peers:
            f.addPeer(peer, len(data))
        now = 0.0
        pending = list(f.schedule(now))
        while not f.done:
            self.assertTrue(pending)
            for peer in peers:
                self.assertLessEqual(len(f.outstanding(peer)), 2)
            peer, piece = pending.pop(rng.randrange(len(pending)))
            self.assertEqual(answer(f, peer, data, piece, now), frozenset())
            now += 0.01
            pending.extend(f.schedule(now))
        self.assertEqual(f.infoBytes, data)
        self.assertEqual(f.pieceCount, pieceCount(len(data)))

    @given(
        st.integers(1, 5 * METADATA_BLOCK),
        st.lists(
            st.tuples(
                st.sampled_from(
                    ["add", "remove", "request", "data", "bad", "reject", "expire"]
                ),
                st.integers(0, 3),
                st.integers(0, 6),
            ),
            max_size=80,
        ),
    )
    @settings(max_examples=300, deadline=None)
    def test_anyEvents(self, size, events) -> None:
        """
        Any order of events: never more than 2 outstanding per peer, never
        a piece out of range, and completion only with the right bytes.
        """
        data = metadata(size, seed=size)
        f = fetcherWith(data, timeout=5)
        now = 0.0
        for kind, peer, piece in events:
            now += 1
            if kind == "add":
                f.addPeer(peer, size if piece else piece)
            elif kind == "remove":
                f.removePeer(peer)
            elif kind == "request":
                for p in f.requests(peer, now):
                    self.assertLess(p, pieceCount(size))
            elif kind == "data":
                f.gotData(
                    peer, MetadataData(piece, size, blockOf(data, piece) or b"x"), now
                )
            elif kind == "bad":
                f.gotData(
                    peer,
                    MetadataData(
                        piece, size, b"\x00" * len(blockOf(data, piece)) or b"x"
                    ),
                    now,
                )
            elif kind == "reject":
                f.gotReject(peer, piece, now)
            else:
                f.expire(now)
            for p in range(4):
                self.assertLessEqual(len(f.outstanding(p)), 2)
            if f.done:
                self.assertEqual(f.infoBytes, data)
            deadline = f.nextDeadline(now)
            if deadline is not None and deadline <= now:
                # Overdue: expiring clears it.
                f.expire(now)
                deadline = f.nextDeadline(now)
                if deadline is not None:
                    self.assertGreater(deadline, now)


class ServerTests(SynchronousTestCase):
    def test_serve(self) -> None:
        data = metadata(2 * METADATA_BLOCK + 7)
        server = MetadataServer(data)
        self.assertEqual(server.metadataSize, len(data))
        self.assertEqual(
            server.respond(MetadataRequest(0)),
            MetadataData(0, len(data), blockOf(data, 0)),
        )
        self.assertEqual(
            server.respond(MetadataRequest(2)), MetadataData(2, len(data), data[-7:])
        )
        self.assertEqual(server.respond(MetadataRequest(3)), MetadataReject(3))
        self.assertEqual(server.respond(MetadataRequest(-1)), MetadataReject(-1))

    def test_withoutMetadata(self) -> None:
        """
        Without the metadata every request is rejected (BEP 9); once set,
        served.
        """
        server = MetadataServer()
        self.assertIsNone(server.metadataSize)
        self.assertEqual(server.respond(MetadataRequest(0)), MetadataReject(0))
        server.setMetadata(b"d1:xi1ee")
        self.assertEqual(server.metadataSize, 8)
        self.assertEqual(
            server.respond(MetadataRequest(0)), MetadataData(0, 8, b"d1:xi1ee")
        )

    def test_floodLimit(self) -> None:
        """
        A peer gets C{servesPerPeer} copies of the whole metadata, then
        rejects; others are not affected; a peer removed starts afresh.
        """
        data = metadata(METADATA_BLOCK + 1)
        server = MetadataServer(data, servesPerPeer=2)
        for _ in range(2):
            for piece in range(2):
                self.assertIsInstance(
                    server.respond(MetadataRequest(piece), "A"), MetadataData
                )
        self.assertEqual(server.respond(MetadataRequest(0), "A"), MetadataReject(0))
        self.assertIsInstance(server.respond(MetadataRequest(0), "B"), MetadataData)
        self.assertIsInstance(server.respond(MetadataRequest(0)), MetadataData)
        server.removePeer("A")
        self.assertIsInstance(server.respond(MetadataRequest(0), "A"), MetadataData)

    def test_serverToFetcher(self) -> None:
        """
        A fetcher fed by servers through the codec gets the metadata.
        """
        data = bencode.encode({b"name": b"x" * 70000, b"piece length": 16384})
        servers = {"A": MetadataServer(data), "B": MetadataServer(data)}
        f = fetcherWith(data)
        for peer, server in servers.items():
            f.addPeer(peer, server.metadataSize)
        now = 0.0
        while not f.done:
            work = f.schedule(now)
            self.assertTrue(work)
            for peer, piece in work:
                request = decodeMetadataMessage(
                    encodeMetadataMessage(MetadataRequest(piece))
                )
                reply = servers[peer].respond(request, peer)
                reply = decodeMetadataMessage(encodeMetadataMessage(reply))
                self.assertEqual(f.gotData(peer, reply, now), frozenset())
            now += 1
        self.assertEqual(f.infoBytes, data)
