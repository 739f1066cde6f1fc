"""
MSE against libtorrent on 127.0.0.1: our initiator to a libtorrent seeder
that forces RC4, and a libtorrent leecher that forces encryption to our
responder.  The BitTorrent side is the test peer of L{tests.hostilepeers}
(a handshake and message parser); the wire integration is not tested here.

libtorrent settings (C{shared/peers.md}): C{in_enc_policy=0} and
C{out_enc_policy=0} (forced), C{allowed_enc_level} 2 (RC4 only) or 1
(plaintext within MSE).
"""

from __future__ import annotations

import os

import libtorrent as lt
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ServerFactory
from twisted.trial.unittest import TestCase

from btorrent.codec import metainfo, wire
from btorrent.peer.mse import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    MSEError,
    obfuscatedHash,
)
from btorrent.peer.msetransport import MSEIncomingProtocol, MSEOutgoingProtocol
from tests.hostilepeers import WirePeer, connectPeer, fullBitfield
from tests.realseeders import LibtorrentPeer, makeTorrent, writeFiles

PIECE_LENGTH = 1 << 16
SIZE = 20 * PIECE_LENGTH + 1234
BOTH = CRYPTO_PLAINTEXT | CRYPTO_RC4


def forceEncryption(peer: LibtorrentPeer, level: int = CRYPTO_RC4) -> None:
    """
    Make a libtorrent session refuse anything but MSE, with C{level} as
    its allowed_enc_level (1 plaintext, 2 RC4, 3 both).
    """
    peer.session.apply_settings(
        {"in_enc_policy": 0, "out_enc_policy": 0, "allowed_enc_level": level}
    )


@defer.inlineCallbacks
def waitFor(predicate, timeout: float, what: str):
    """
    Poll C{predicate()} on the reactor until true.
    """
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        yield task.deferLater(reactor, 0.05, lambda: None)


def libtorrentFlags(peer: LibtorrentPeer) -> list:
    """
    The flags libtorrent shows for each of its connected peers.
    """
    return [info.flags for info in peer.handle.get_peer_info()]


class _Torrent:
    """
    A small torrent on disk, made by libtorrent.
    """

    def __init__(self, base: str) -> None:
        self.seedDir = os.path.join(base, "seed")
        self.leechDir = os.path.join(base, "leech")
        os.makedirs(self.leechDir)
        writeFiles(self.seedDir, [("blob", SIZE)])
        self.torrent = makeTorrent(self.seedDir, [("blob", SIZE)], PIECE_LENGTH)
        info = metainfo.load(self.torrent)
        self.infoHash = info.infoHash
        self.pieceCount = info.pieceCount


class InitiatorTests(TestCase):
    """
    Our initiator dials a libtorrent seeder that forces RC4.
    """

    timeout = 60

    def setUp(self) -> None:
        self.data = _Torrent(self.mktemp())
        self.seeder = LibtorrentPeer(self.data.seedDir, self.data.torrent, seed=True)
        self.addCleanup(self.seeder.close)
        forceEncryption(self.seeder)

    @defer.inlineCallbacks
    def test_rc4Handshake(self):
        """
        Our BitTorrent handshake goes as the initial payload; libtorrent
        selects RC4 and its handshake and bitfield arrive decrypted.
        """
        peer = WirePeer(self.data.infoHash, self.data.pieceCount)
        wrapper = MSEOutgoingProtocol(peer, reactor, self.data.infoHash, BOTH)
        yield connectPeer(reactor, self.seeder.port, wrapper)
        yield waitFor(
            lambda: peer.handshake is not None or peer.lost.called,
            15,
            "libtorrent's handshake",
        )
        self.assertIsNone(wrapper.handshakeError)
        self.assertEqual(peer.handshake.infoHash, self.data.infoHash)
        self.assertTrue(wrapper.isEncrypted)
        self.assertEqual(wrapper.selected, CRYPTO_RC4)
        expected = wire.BitfieldMessage(fullBitfield(self.data.pieceCount))
        yield waitFor(lambda: expected in peer.messages, 15, "the bitfield")
        # libtorrent sees an RC4 peer too.
        yield waitFor(
            lambda: any(
                f & lt.peer_info.rc4_encrypted for f in libtorrentFlags(self.seeder)
            ),
            10,
            "libtorrent to list an RC4 peer",
        )
        # Messages go both ways through RC4: ask, get unchoked.
        peer.sendMessage(wire.Interested())
        yield waitFor(lambda: wire.Unchoke() in peer.messages, 15, "an unchoke")
        wrapper.loseConnection()
        yield peer.lost

    @defer.inlineCallbacks
    def test_plaintextHandshakeClosed(self):
        """
        A plain BitTorrent handshake to the same libtorrent is closed
        without an answer.
        """
        peer = WirePeer(self.data.infoHash, self.data.pieceCount)
        yield connectPeer(reactor, self.seeder.port, peer)
        yield peer.lost.addTimeout(15, reactor)
        self.assertIsNone(peer.handshake)
        self.assertEqual(peer.bytesReceived, 0)

    @defer.inlineCallbacks
    def test_plaintextOnlyRefused(self):
        """
        An initiator providing plaintext only is refused by a libtorrent
        that allows RC4 only: the wrapped protocol learns it from an
        L{MSEError}.
        """
        peer = WirePeer(self.data.infoHash, self.data.pieceCount)
        wrapper = MSEOutgoingProtocol(
            peer, reactor, self.data.infoHash, CRYPTO_PLAINTEXT
        )
        yield connectPeer(reactor, self.seeder.port, wrapper)
        reason = yield peer.lost.addTimeout(15, reactor)
        self.assertIsInstance(reason, MSEError)
        self.assertIsNone(peer.handshake)


class _ResponderFactory(ServerFactory):
    """
    Builds our responder, wrapping a test peer, for each connection.
    """

    def __init__(self, infoHash: bytes, pieceCount: int) -> None:
        self.infoHash = infoHash
        self.pieceCount = pieceCount
        self.connections = []

    def buildProtocol(self, addr):
        peer = WirePeer(self.infoHash, self.pieceCount)
        wrapper = MSEIncomingProtocol(
            peer,
            reactor,
            {obfuscatedHash(self.infoHash): self.infoHash}.get,
            allowLegacy=False,
        )
        self.connections.append((wrapper, peer))
        return wrapper

    def handshaken(self):
        return [(w, p) for w, p in self.connections if p.handshake is not None]

    def failed(self):
        return [str(w.handshakeError) for w, p in self.connections if w.handshakeError]


class ResponderTests(TestCase):
    """
    A libtorrent leecher that forces encryption dials our responder.
    """

    timeout = 60

    def setUp(self) -> None:
        self.data = _Torrent(self.mktemp())
        self.factory = _ResponderFactory(self.data.infoHash, self.data.pieceCount)
        listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.port = listening.getHost().port
        self.leecher = LibtorrentPeer(self.data.leechDir, self.data.torrent, seed=False)
        self.addCleanup(self.leecher.close)

    @defer.inlineCallbacks
    def handshake(self, level: int):
        forceEncryption(self.leecher, level)
        self.leecher.connect("127.0.0.1", self.port)
        yield waitFor(
            lambda: self.factory.handshaken() or self.factory.failed(),
            15,
            "libtorrent's handshake",
        )
        self.assertEqual(self.factory.failed(), [])
        wrapper, peer = self.factory.handshaken()[0]
        self.assertEqual(peer.handshake.infoHash, self.data.infoHash)
        self.assertEqual(wrapper.infoHash, self.data.infoHash)
        return wrapper, peer

    @defer.inlineCallbacks
    def test_rc4(self):
        """
        libtorrent (RC4 only) completes MSE with our responder; its
        decrypted BitTorrent handshake names the torrent, and it takes our
        handshake back through RC4.
        """
        wrapper, peer = yield self.handshake(CRYPTO_RC4)
        self.assertTrue(wrapper.isEncrypted)
        self.assertEqual(wrapper.selected, CRYPTO_RC4)
        yield waitFor(
            lambda: any(
                f & lt.peer_info.rc4_encrypted for f in libtorrentFlags(self.leecher)
            ),
            10,
            "libtorrent to list an RC4 peer",
        )
        wrapper.loseConnection()
        yield peer.lost

    @defer.inlineCallbacks
    def test_plaintextWithinMSE(self):
        """
        A libtorrent that allows only plaintext within MSE gets it selected.
        """
        wrapper, peer = yield self.handshake(CRYPTO_PLAINTEXT)
        self.assertFalse(wrapper.isEncrypted)
        self.assertEqual(wrapper.selected, CRYPTO_PLAINTEXT)
        yield waitFor(
            lambda: any(
                f & lt.peer_info.plaintext_encrypted
                for f in libtorrentFlags(self.leecher)
            ),
            10,
            "libtorrent to list a plaintext-MSE peer",
        )
        wrapper.loseConnection()
        yield peer.lost
