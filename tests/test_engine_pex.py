"""
Tests for L{btorrent.engine.pex}: peer exchange for a torrent's peers,
with fake peers (the surface of a C{PeerProtocol}) and L{task.Clock}.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.codec import bencode
from btorrent.codec.bitfield import Bitfield
from btorrent.engine.pex import RECHECK, PeerExchange
from btorrent.interfaces import IPeerExtension
from btorrent.peer.utpex import (
    MAX_DIFF_ENTRIES,
    MAX_LEARNED,
    PEX_ENCRYPTION,
    PEX_INTERVAL,
    PEX_OUTGOING,
    PEX_SEED,
    PexMessage,
    decodePex,
    encodePex,
)
from btorrent.util.heartbeat import Heartbeat
from tests.fakes import FakePeer


def pexPeer(address, outgoing=True, pex=True, pieces=None) -> FakePeer:
    """
    A connected peer as peer exchange sees it: with our C{ut_pex} (unless
    told), its pieces (or C{None}), a connection to our 127.0.0.1:6881.
    """
    host, port = address
    peer = FakePeer(
        host=host,
        port=port,
        outgoing=outgoing,
        extended=True,
        peerExtensions={"ut_pex": 9} if pex else {},
        transport=StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 6881)),
    )
    peer.peerPieces = pieces
    return peer


def pexSent(peer):
    """
    The PEX messages sent to C{peer}, decoded.
    """
    return [decodePex(payload) for _, payload in peer.extendedSent]


class PeerExchangeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.heartbeat = Heartbeat(self.clock)
        self.connected = []
        self.learned = []
        self.pex = PeerExchange(
            self.heartbeat, lambda: self.connected, self.learned.extend, lambda: 6881
        )

    def connect(self, *args, **kwargs):
        peer = pexPeer(*args, **kwargs)
        self.connected.append(peer)
        self.pex.peerConnected(peer)
        return peer

    def lose(self, peer):
        self.connected.remove(peer)
        self.pex.peerLost(peer)

    def beat(self, seconds=1.0):
        self.clock.advance(seconds)

    def test_interface(self):
        verifyObject(IPeerExtension, self.pex)

    def test_firstMessageListsTheOthers(self):
        """
        The first message lists every other connected peer under its
        listen address (the dialled one, or the C{p} of an incoming
        peer's handshake), with flags; never the receiver.
        """
        a = self.connect(("10.0.0.1", 1000))
        b = self.connect(("10.0.0.2", 50000), outgoing=False)
        c = self.connect(("10.0.0.3", 3000), pieces=Bitfield.full(4))
        self.pex.handshakeReceived(b, {"p": 2000, "e": 1})
        self.beat()
        [message] = pexSent(a)
        self.assertEqual(
            dict(message.added),
            {
                ("10.0.0.2", 2000): PEX_ENCRYPTION,
                ("10.0.0.3", 3000): PEX_SEED | PEX_OUTGOING,
            },
        )
        [toB] = pexSent(b)
        self.assertNotIn(("10.0.0.2", 2000), dict(toB.added))
        self.assertNotIn(("10.0.0.2", 50000), dict(toB.added))
        self.assertEqual(len(pexSent(c)), 1)

    def test_incomingWithoutPortLeftOut(self):
        """
        An incoming peer whose listen port we do not know is not listed
        (libtorrent leaves it out too).
        """
        a = self.connect(("10.0.0.1", 1000))
        self.connect(("10.0.0.2", 50000), outgoing=False)
        self.beat()
        self.assertEqual(pexSent(a), [])

    def test_uploadOnlyIsSeed(self):
        a = self.connect(("10.0.0.1", 1000))
        b = self.connect(("10.0.0.2", 2000))
        self.pex.handshakeReceived(b, {"upload_only": 1})
        self.beat()
        self.assertEqual(
            dict(pexSent(a)[0].added)[("10.0.0.2", 2000)], PEX_SEED | PEX_OUTGOING
        )

    def test_onceAMinuteThenDiffs(self):
        """
        Nothing more within a minute; then what was added and dropped since.
        """
        a = self.connect(("10.0.0.1", 1000))
        b = self.connect(("10.0.0.2", 2000))
        self.beat()
        self.assertEqual(len(pexSent(a)), 1)
        c = self.connect(("10.0.0.3", 3000))
        self.lose(b)
        for _ in range(int(PEX_INTERVAL) - 2):
            self.beat()
        self.assertEqual(len(pexSent(a)), 1)
        for _ in range(int(RECHECK) + 2):
            self.beat()
        self.assertEqual(len(pexSent(a)), 2)
        self.assertEqual([p for p, _ in pexSent(a)[1].added], [("10.0.0.3", 3000)])
        self.assertEqual(list(pexSent(a)[1].dropped), [("10.0.0.2", 2000)])
        self.assertEqual(len(pexSent(c)), 1)

    def test_nothingChangedNothingSent(self):
        a = self.connect(("10.0.0.1", 1000))
        self.connect(("10.0.0.2", 2000))
        self.beat()
        self.beat(PEX_INTERVAL * 3)
        self.assertEqual(len(pexSent(a)), 1)

    def test_diffsCappedAtFifty(self):
        a = self.connect(("10.0.0.1", 1000))
        self.connect(("10.0.0.2", 2000))
        self.beat()
        for i in range(120):
            self.connect((f"10.1.0.{i + 1}", 4000))
        self.beat(PEX_INTERVAL)
        self.assertEqual(len(pexSent(a)[1].added), MAX_DIFF_ENTRIES)

    def test_peerWithoutPexGetsNothing(self):
        a = self.connect(("10.0.0.1", 1000), pex=False)
        self.connect(("10.0.0.2", 2000))
        self.beat()
        self.assertEqual(pexSent(a), [])

    def test_learned(self):
        """
        Peers a peer tells us about go to C{addPeers}; our own address
        (from C{yourip}, with our port) is never learned.
        """
        a = self.connect(("10.0.0.1", 1000))
        self.pex.handshakeReceived(a, {"yourip": bytes([10, 9, 9, 9])})
        payload = encodePex(
            PexMessage(
                added=(
                    (("10.0.0.5", 5000), 0),
                    (("10.9.9.9", 6881), 0),
                    (("127.0.0.1", 6881), 0),
                )
            )
        )
        self.pex.messageReceived(a, payload)
        self.assertEqual(self.learned, [("10.0.0.5", 5000)])
        self.assertIsNone(a.dropped)
        self.assertEqual(self.pex.learned, 1)

    def test_flood(self):
        """
        A seventh message within 60 s: the peer is dropped.
        """
        a = self.connect(("10.0.0.1", 1000))
        for _ in range(6):
            self.pex.messageReceived(a, encodePex(PexMessage()))
        self.assertIsNone(a.dropped)
        self.pex.messageReceived(a, encodePex(PexMessage()))
        self.assertIn("more than 6", a.dropped)

    def test_garbage(self):
        a = self.connect(("10.0.0.1", 1000))
        self.pex.messageReceived(a, b"d3:abc")
        self.assertIn("not bencoded", a.dropped)
        b = self.connect(("10.0.0.2", 1000))
        self.pex.messageReceived(b, b"i5e")
        self.assertIn("not a dictionary", b.dropped)

    def test_tenThousandAndOddLengths(self):
        """
        10,000 entries: at most L{MAX_LEARNED} taken; odd lengths: none.
        """
        a = self.connect(("10.0.0.1", 1000))
        added = b"".join(
            bytes([10, 2, i >> 8 & 255, i & 255]) + (7000).to_bytes(2, "big")
            for i in range(10000)
        )
        self.pex.messageReceived(a, bencode.encode({b"added": added}))
        self.assertEqual(len(self.learned), MAX_LEARNED)
        b = self.connect(("10.0.0.2", 1000))
        self.pex.messageReceived(b, bencode.encode({b"added": added[:-1]}))
        self.assertEqual(len(self.learned), MAX_LEARNED)
        self.assertIsNone(a.dropped)
        self.assertIsNone(b.dropped)

    @given(st.binary(max_size=2000))
    @settings(max_examples=200, deadline=None)
    def test_anyPayload(self, payload):
        """
        Whatever a peer sends, we drop it or take at most a bounded number
        of addresses; nothing raises.
        """
        peer = pexPeer(("10.0.0.1", 1000))
        learned = []
        pex = PeerExchange(
            Heartbeat(task.Clock()), lambda: [peer], learned.extend, lambda: 1
        )
        pex.peerConnected(peer)
        pex.messageReceived(peer, payload)
        self.assertLessEqual(len(learned), MAX_LEARNED)

    def test_unknownPeerIgnored(self):
        stranger = pexPeer(("10.0.0.1", 1000))
        self.pex.handshakeReceived(stranger, {"p": 1})
        self.pex.messageReceived(stranger, b"garbage")
        self.assertIsNone(stranger.dropped)

    def test_heartbeatOnlyWhilePeers(self):
        self.assertEqual(len(self.heartbeat), 0)
        a = self.connect(("10.0.0.1", 1000))
        self.assertEqual(len(self.heartbeat), 1)
        self.lose(a)
        self.assertEqual(len(self.heartbeat), 0)

    def test_releaseAndAdopt(self):
        """
        A peer's state moves to another peer exchange, spacing and all.
        """
        a = self.connect(("10.0.0.1", 1000))
        self.connect(("10.0.0.2", 2000))
        self.beat()
        state = self.pex.release(a)
        self.assertNotIn(a, self.pex.states)
        other = PeerExchange(
            self.heartbeat, lambda: self.connected, self.learned.extend, lambda: 6881
        )
        other.adopt(a, state)
        self.assertIs(other.states[a], state)
        self.connect(("10.0.0.3", 3000))
        self.beat()
        self.assertEqual(len(pexSent(a)), 1)
        other.adopt(a, None)
        self.assertIs(other.states[a], state)
        other.stop()
        self.assertEqual(other.states, {})
