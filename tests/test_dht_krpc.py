"""
Tests for L{btorrent.dht.krpc}: BEP 5's own examples byte for byte, what
libtorrent adds, strictness, and garbage.
"""

from __future__ import annotations

import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode
from btorrent.dht import krpc
from btorrent.dht.krpc import (
    AnnouncePeer,
    Error,
    FindNode,
    GetPeers,
    KRPCError,
    NodeInfo,
    Ping,
    Response,
)

A = b"abcdefghij0123456789"
M = b"mnopqrstuvwxyz123456"


class Bep5ExamplesTests(SynchronousTestCase):
    """
    The example messages of BEP 5, encoded and decoded exactly.
    """

    def check(self, message, data: bytes) -> None:
        self.assertEqual(krpc.encode(message), data)
        self.assertEqual(krpc.decode(data), message)

    def test_ping(self) -> None:
        self.check(Ping(b"aa", A), b"d1:ad2:id20:" + A + b"e1:q4:ping1:t2:aa1:y1:qe")
        self.check(Response(b"aa", M), b"d1:rd2:id20:" + M + b"e1:t2:aa1:y1:re")

    def test_findNode(self) -> None:
        self.check(
            FindNode(b"aa", A, M),
            b"d1:ad2:id20:" + A + b"6:target20:" + M + b"e1:q9:find_node1:t2:aa1:y1:qe",
        )
        node = NodeInfo(M, ("1.2.3.4", 6881))
        self.check(
            Response(b"aa", A, (node,)),
            b"d1:rd2:id20:" + A + b"5:nodes26:" + M + b"\x01\x02\x03\x04\x1a\xe1"
            b"e1:t2:aa1:y1:re",
        )

    def test_getPeers(self) -> None:
        self.check(
            GetPeers(b"aa", A, M),
            b"d1:ad2:id20:"
            + A
            + b"9:info_hash20:"
            + M
            + b"e1:q9:get_peers1:t2:aa1:y1:qe",
        )
        values = (("97.120.106.101", 11893), ("105.100.104.116", 28269))
        self.check(
            Response(b"aa", A, values=values, token=b"aoeusnth"),
            b"d1:rd2:id20:" + A + b"5:token8:aoeusnth6:valuesl6:axje.u6:idhtnm"
            b"ee1:t2:aa1:y1:re",
        )

    def test_announcePeer(self) -> None:
        self.check(
            AnnouncePeer(b"aa", A, M, 6881, b"aoeusnth", impliedPort=True),
            b"d1:ad2:id20:"
            + A
            + b"12:implied_porti1e9:info_hash20:"
            + M
            + b"4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        )
        self.check(
            AnnouncePeer(b"aa", A, M, 6881, b"aoeusnth"),
            b"d1:ad2:id20:"
            + A
            + b"9:info_hash20:"
            + M
            + b"4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        )

    def test_error(self) -> None:
        self.check(
            Error(b"aa", 201, "A Generic Error Ocurred"),
            b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
        )

    def test_responseIp(self) -> None:
        """
        BEP 42's C{ip} (the address the answering node saw) is read and
        written at the top level.
        """
        self.check(
            Response(b"aa", A, ip=("127.0.0.1", 6881)),
            b"d2:ip6:\x7f\x00\x00\x01\x1a\xe11:rd2:id20:" + A + b"e1:t2:aa1:y1:re",
        )

    def test_readOnly(self) -> None:
        """
        BEP 43's C{ro=1} marks a read-only node's query.
        """
        self.check(
            Ping(b"aa", A, readOnly=True),
            b"d1:ad2:id20:" + A + b"e1:q4:ping2:roi1e1:t2:aa1:y1:qe",
        )


class LibtorrentExtrasTests(SynchronousTestCase):
    """
    Keys other clients add are ignored.
    """

    def test_queryExtras(self) -> None:
        """
        libtorrent's announce_peer has C{seed}, C{n}; its queries C{want};
        any message C{v}.
        """
        data = bencode.encode(
            {
                b"t": b"\x12\x34",
                b"y": b"q",
                b"q": b"announce_peer",
                b"v": b"LT\x02\x01",
                b"a": {
                    b"id": A,
                    b"info_hash": M,
                    b"port": 6881,
                    b"token": b"abcd",
                    b"seed": 1,
                    b"n": b"name",
                    b"implied_port": 1,
                    b"want": [b"n4"],
                },
            }
        )
        self.assertEqual(
            krpc.decode(data),
            AnnouncePeer(b"\x12\x34", A, M, 6881, b"abcd", impliedPort=True),
        )

    def test_responseExtras(self) -> None:
        """
        libtorrent's answers carry C{p} and C{ip}; C{nodes6} and 18-byte
        (IPv6) values are skipped.
        """
        data = bencode.encode(
            {
                b"t": b"aa",
                b"y": b"r",
                b"ip": b"\x7f\x00\x00\x01\x30\x39",
                b"r": {
                    b"id": A,
                    b"p": 12345,
                    b"nodes6": b"x" * 38,
                    b"values": [b"\x01\x02\x03\x04\x00\x50", b"\x00" * 18],
                },
            }
        )
        self.assertEqual(
            krpc.decode(data),
            Response(b"aa", A, values=(("1.2.3.4", 80),), ip=("127.0.0.1", 12345)),
        )

    def test_errorExtraItems(self) -> None:
        """
        An error list longer than C{[code, text]} is read.
        """
        data = bencode.encode({b"t": b"aa", b"y": b"e", b"e": [203, b"x", b"y"]})
        self.assertEqual(krpc.decode(data), Error(b"aa", 203, "x"))


class StrictnessTests(SynchronousTestCase):
    """
    Wrong types and lengths are errors that say whether an answer is due.
    """

    def query(self, method=b"ping", **args) -> bytes:
        a = {b"id": A}
        a.update({k.encode(): v for k, v in args.items()})
        return bencode.encode({b"t": b"tx", b"y": b"q", b"q": method, b"a": a})

    def assertQueryError(self, data: bytes, code: int = krpc.ERROR_PROTOCOL) -> str:
        e = self.assertRaises(KRPCError, krpc.decode, data)
        self.assertTrue(e.query)
        self.assertEqual(e.transactionId, b"tx")
        self.assertEqual(e.code, code)
        return str(e)

    def test_unknownMethod(self) -> None:
        text = self.assertQueryError(self.query(b"vote"), krpc.ERROR_METHOD_UNKNOWN)
        self.assertIn("vote", text)

    def test_idLength(self) -> None:
        for bad in [b"", A[:19], A + b"x"]:
            data = bencode.encode(
                {b"t": b"tx", b"y": b"q", b"q": b"ping", b"a": {b"id": bad}}
            )
            self.assertIn("node id", self.assertQueryError(data))

    def test_targetAndInfoHashLength(self) -> None:
        self.assertIn(
            "target", self.assertQueryError(self.query(b"find_node", target=M[:19]))
        )
        self.assertIn(
            "info_hash",
            self.assertQueryError(self.query(b"get_peers", info_hash=M + b"!")),
        )
        self.assertIn("info_hash", self.assertQueryError(self.query(b"get_peers")))

    def test_types(self) -> None:
        self.assertIn(
            "target", self.assertQueryError(self.query(b"find_node", target=5))
        )
        self.assertIn(
            "port",
            self.assertQueryError(
                self.query(b"announce_peer", info_hash=M, port=b"6881", token=b"x")
            ),
        )
        self.assertIn(
            "token",
            self.assertQueryError(
                self.query(b"announce_peer", info_hash=M, port=6881, token=7)
            ),
        )
        data = bencode.encode({b"t": b"tx", b"y": b"q", b"q": b"ping", b"a": [A]})
        self.assertIn("arguments", self.assertQueryError(data))

    def test_announcePort(self) -> None:
        """
        A port out of range is refused; port 0 only with C{implied_port}.
        """
        for port in [-1, 0, 65536, 2**70]:
            self.assertQueryError(
                self.query(b"announce_peer", info_hash=M, port=port, token=b"x")
            )
        self.assertEqual(
            krpc.decode(
                self.query(
                    b"announce_peer", info_hash=M, port=0, token=b"x", implied_port=1
                )
            ).impliedPort,
            True,
        )

    def test_hugeToken(self) -> None:
        self.assertQueryError(
            self.query(b"announce_peer", info_hash=M, port=1, token=b"x" * 65)
        )

    def test_responseErrors(self) -> None:
        """
        A bad answer is an error with no answer due.
        """
        for r in [
            {b"id": A[:5]},
            {b"id": A, b"nodes": b"x" * 25},
            {b"id": A, b"values": b"\x01\x02\x03\x04\x00\x50"},
            {b"id": A, b"values": [b"\x01\x02\x03\x04\x00"]},
            {b"id": A, b"values": [5]},
            {b"id": A, b"token": 5},
        ]:
            data = bencode.encode({b"t": b"tx", b"y": b"r", b"r": r})
            e = self.assertRaises(KRPCError, krpc.decode, data)
            self.assertFalse(e.query)
            self.assertEqual(e.transactionId, b"tx")

    def test_envelope(self) -> None:
        """
        No dict, no C{t}, a long C{t}, an unknown C{y}: no transaction id
        to answer to (except for the unknown C{y}, which keeps its C{t}).
        """
        for data, t in [
            (b"le", None),
            (b"i5e", None),
            (b"d1:y1:qe", None),
            (b"d1:ti5e1:y1:qe", None),
            (bencode.encode({b"t": b"x" * 17, b"y": b"q"}), None),
            (bencode.encode({b"t": b"aa", b"y": b"z"}), b"aa"),
            (bencode.encode({b"t": b"aa"}), b"aa"),
        ]:
            e = self.assertRaises(KRPCError, krpc.decode, data)
            self.assertEqual(e.transactionId, t, data)
            self.assertFalse(e.query)

    def test_notBencoded(self) -> None:
        e = self.assertRaises(KRPCError, krpc.decode, b"d1:t2:aa1:y1:q")
        self.assertIn("not bencoded", str(e))
        self.assertIsNone(e.transactionId)

    def test_notBytes(self) -> None:
        self.assertRaises(KRPCError, krpc.decode, "d1:t2:aae")
        self.assertRaises(KRPCError, krpc.decode, None)

    def test_huge(self) -> None:
        """
        A datagram over L{krpc.MAX_DATAGRAM} is refused before parsing; a
        string claiming a giant length and deep nesting are refused too.
        """
        e = self.assertRaises(KRPCError, krpc.decode, b"d" + b"x" * (1 << 20))
        self.assertIn("exceeds", str(e))
        self.assertRaises(KRPCError, krpc.decode, b"d1:t999999999999999999:")
        self.assertRaises(KRPCError, krpc.decode, b"l" * 2000 + b"e" * 2000)
        self.assertRaises(KRPCError, krpc.decode, b"d1:t2:aa1:y1:q1:ad2:idllllleeeeeee")

    def test_encodeRefuses(self) -> None:
        """
        The encoder refuses what the protocol cannot carry.
        """
        self.assertRaises(ValueError, krpc.encode, Ping(b"aa", A[:19]))
        self.assertRaises(ValueError, krpc.encode, Ping(b"a" * 17, A))
        self.assertRaises(ValueError, krpc.encode, FindNode(b"aa", A, b"short"))
        self.assertRaises(
            ValueError, krpc.encode, AnnouncePeer(b"aa", A, M, 65536, b"x")
        )
        self.assertRaises(
            ValueError, krpc.encode, Response(b"aa", A, values=(("::1", 80),))
        )
        self.assertRaises(
            ValueError,
            krpc.encode,
            Response(b"aa", A, (NodeInfo(b"x", ("1.2.3.4", 1)),)),
        )
        self.assertRaises(ValueError, krpc.encode, "ping")


class CompactTests(SynchronousTestCase):
    """
    Compact peers and nodes.
    """

    def test_peer(self) -> None:
        self.assertEqual(
            krpc.encodePeer(("10.0.0.1", 258)), b"\x0a\x00\x00\x01\x01\x02"
        )
        self.assertEqual(
            krpc.decodePeer(b"\x0a\x00\x00\x01\x01\x02"), ("10.0.0.1", 258)
        )
        self.assertRaises(ValueError, krpc.decodePeer, b"12345")
        self.assertRaises(ValueError, krpc.encodePeer, ("example.com", 1))
        self.assertRaises(ValueError, krpc.encodePeer, ("1.2.3.4", -1))

    def test_nodes(self) -> None:
        nodes = (NodeInfo(A, ("1.2.3.4", 1)), NodeInfo(M, ("5.6.7.8", 65535)))
        data = krpc.encodeNodes(nodes)
        self.assertEqual(len(data), 52)
        self.assertEqual(krpc.decodeNodes(data), nodes)
        self.assertEqual(krpc.decodeNodes(b""), ())
        self.assertRaises(ValueError, krpc.decodeNodes, data[:-1])


ids = st.binary(min_size=20, max_size=20)
tids = st.binary(max_size=16)
hosts = st.integers(0, 2**32 - 1).map(lambda n: socket.inet_ntoa(struct.pack("!I", n)))
addresses = st.tuples(hosts, st.integers(0, 65535))
nodeInfos = st.builds(NodeInfo, ids, addresses)
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=50)
messages = st.one_of(
    st.builds(Ping, tids, ids, st.booleans()),
    st.builds(FindNode, tids, ids, ids, st.booleans()),
    st.builds(GetPeers, tids, ids, ids, st.booleans()),
    st.builds(
        AnnouncePeer,
        tids,
        ids,
        ids,
        st.integers(1, 65535),
        st.binary(max_size=64),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        Response,
        tids,
        ids,
        st.lists(nodeInfos, max_size=16).map(tuple),
        st.none() | st.lists(addresses, max_size=50).map(tuple),
        st.none() | st.binary(max_size=20),
        st.none() | addresses,
    ),
    st.builds(Error, tids, st.integers(-(2**63), 2**63), texts),
)


class PropertyTests(SynchronousTestCase):
    """
    Round trips, and only L{KRPCError} out of any input.
    """

    @given(messages)
    def test_roundTrip(self, message) -> None:
        self.assertEqual(krpc.decode(krpc.encode(message)), message)

    @given(st.binary(max_size=600))
    def test_garbage(self, data: bytes) -> None:
        try:
            krpc.decode(data)
        except KRPCError:
            pass

    @settings(max_examples=300)
    @given(messages, st.data())
    def test_mutated(self, message, data) -> None:
        """
        A valid message with bytes changed, cut or inserted decodes to a
        message or raises L{KRPCError}.
        """
        raw = bytearray(krpc.encode(message))
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            op = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
            if op == "flip":
                raw[i] = data.draw(st.integers(0, 255))
            elif op == "cut":
                del raw[i]
            elif op == "insert":
                raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
            else:
                del raw[i:]
            if not raw:
                break
        try:
            result = krpc.decode(bytes(raw))
        except KRPCError:
            return
        self.assertIsInstance(
            result, (Ping, FindNode, GetPeers, AnnouncePeer, Response, Error)
        )

    @given(messages)
    def test_truncated(self, message) -> None:
        """
        Every proper prefix of a message is an error.
        """
        raw = krpc.encode(message)
        for end in range(len(raw)):
            self.assertRaises(KRPCError, krpc.decode, raw[:end])
