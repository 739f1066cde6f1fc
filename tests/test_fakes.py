"""
Tests for the shared test fakes (L{tests.fakes}) and the torrent builder
(L{tests.builders}): the fake peer has the surface of the real one, the
builder's torrents are what they say.
"""

from __future__ import annotations

import hashlib
import os

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from btorrent.codec import wire
from btorrent.interfaces import IPeer, IPeerOwner, IPieceStorage
from btorrent.peer.protocol import PeerClientFactory, PeerContext
from tests.builders import buildTorrent, fakeMetainfo, fakeTorrent
from tests.fakes import (
    FakePeer,
    HeldRunner,
    MemoryStorage,
    SyncReactor,
    syncRunner,
)


@implementer(IPeerOwner)
class Owner:
    """
    An L{IPeerOwner} recording what it hears.
    """

    def __init__(self):
        self.messages = []
        self.lost = []

    def peerConnected(self, peer):
        return True

    def peerMessage(self, peer, message):
        self.messages.append(message)

    def peerBlocks(self, peer, blocks):
        for message in blocks:
            self.peerMessage(peer, message)

    def peerLost(self, peer, reason):
        self.lost.append(reason)


class PeerInterfaceTests(SynchronousTestCase):
    """
    L{IPeer}: what the engine uses of a peer.
    """

    def test_fakePeer(self):
        """
        L{FakePeer} provides L{IPeer}.
        """
        self.assertTrue(verifyObject(IPeer, FakePeer(Owner(), 8, 1)))

    def test_peerProtocol(self):
        """
        The real C{PeerProtocol} has every attribute and method of
        L{IPeer}, so that what the engine's tests run on the fake runs on
        it too.
        """
        verifyObject(IPeerOwner, Owner())
        context = PeerContext(b"i" * 20, b"-BT0100-" + b"o" * 12, 8, Owner())
        factory = PeerClientFactory(context, Clock())
        proto = factory.buildProtocol(("127.0.0.1", 6881))
        proto.makeConnection(StringTransport())
        self.assertTrue(verifyObject(IPeer, proto, tentative=True))

    def test_recordsAndReports(self):
        """
        What is sent is recorded; what the remote side sends reaches the
        owner; a drop is reported once.
        """
        owner = Owner()
        peer = FakePeer(owner, 4, 2)
        self.assertEqual(peer.address, ("127.0.0.1", 10002))
        self.assertFalse(peer.outgoing)
        peer.sendRequest(1, 0, 16384)
        peer.unchoke()
        self.assertEqual(peer.requests(), [wire.Request(1, 0, 16384)])
        self.assertEqual(peer.calls, ["unchoke"])
        self.assertEqual(len(peer.takeSent()), 2)
        self.assertEqual(peer.sent, [])
        peer.haveAll()
        self.assertEqual(peer.peerPieces.count, 4)
        self.assertEqual(len(owner.messages), 1)
        self.assertFalse(peer.sendExtended("ut_pex", b"x"))
        peer.drop("one")
        peer.drop("two")
        self.assertEqual(peer.dropped, "one")
        self.assertEqual(len(owner.lost), 1)

    def test_extensions(self):
        """
        A peer that speaks BEP 10 takes our handshake and the messages of
        the extensions it named, and only those.
        """
        peer = FakePeer(extended=True, peerExtensions={"ut_pex": 1})
        self.assertTrue(peer.sendExtensionHandshake({"p": 1}))
        self.assertTrue(peer.sendExtended("ut_pex", b"x"))
        self.assertFalse(peer.sendExtended("ut_metadata", b"y"))
        self.assertEqual(peer.handshakes, [{"p": 1}])
        self.assertEqual(peer.extendedSent, [("ut_pex", b"x")])


class RunnerTests(SynchronousTestCase):
    """
    The stand-ins for the thread pool and the reactor.
    """

    def test_syncRunner(self):
        """
        L{syncRunner} runs at once; an exception becomes a failure.
        """
        self.assertEqual(
            self.successResultOf(syncRunner(lambda a, b=0: a + b, 1, b=2)), 3
        )
        self.failureResultOf(syncRunner(lambda: 1 / 0), ZeroDivisionError)

    def test_heldRunner(self):
        """
        L{HeldRunner} runs its calls when told, one or all.
        """
        runner = HeldRunner()
        first = runner(lambda: 1)
        second = runner(lambda: 1 / 0)
        third = runner(lambda: 3)
        self.assertNoResult(first)
        runner.runOne()
        self.assertEqual(self.successResultOf(first), 1)
        runner.runAll()
        self.failureResultOf(second, ZeroDivisionError)
        self.assertEqual(self.successResultOf(third), 3)
        self.assertEqual(runner.calls, [])

    def test_syncReactor(self):
        """
        L{SyncReactor} runs C{callFromThread} at once, and is a
        C{MemoryReactorClock}.
        """
        reactor = SyncReactor()
        calls = []
        reactor.callFromThread(calls.append, 1)
        self.assertEqual(calls, [1])
        reactor.callLater(1, calls.append, 2)
        reactor.advance(1)
        self.assertEqual(calls, [1, 2])


class BuilderTests(SynchronousTestCase):
    """
    L{buildTorrent}, L{fakeMetainfo}, L{fakeTorrent}.
    """

    def test_multiFile(self):
        """
        A multi-file torrent of the files written, named after its
        directory, with the piece length asked for.
        """
        base = os.path.abspath(self.mktemp())
        files = [("a.bin", 40000), ("empty", 0), ("sub/b.bin", 30000)]
        built = buildTorrent(os.path.join(base, "content"), files, 32768)
        info = built.metainfo
        self.assertTrue(info.multiFile)
        self.assertEqual(info.name, "content")
        self.assertEqual(info.pieceLength, 32768)
        self.assertEqual(info.totalLength, 70000)
        self.assertEqual(len(built.read("sub/b.bin")), 30000)
        content = built.content()
        self.assertEqual(len(content), 70000)
        for index, digest in enumerate(info.pieceHashes):
            piece = content[index * 32768 : (index + 1) * 32768]
            self.assertEqual(hashlib.sha1(piece).digest(), digest)
        self.assertEqual(built.parent, base)
        path = built.writeTorrent()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), built.torrentBytes)

    def test_singleFile(self):
        """
        With C{single}, the torrent of one file; the same seed gives the
        same bytes, another seed others.
        """
        base = os.path.abspath(self.mktemp())
        one = buildTorrent(os.path.join(base, "1"), [("f.bin", 5000)], single=True)
        two = buildTorrent(os.path.join(base, "2"), [("f.bin", 5000)], single=True)
        three = buildTorrent(
            os.path.join(base, "3"), [("f.bin", 5000)], single=True, seed=1
        )
        self.assertFalse(one.metainfo.multiFile)
        self.assertEqual(one.metainfo.name, "f.bin")
        self.assertEqual(one.path, os.path.join(base, "1", "f.bin"))
        self.assertEqual(one.content(), two.content())
        self.assertNotEqual(one.content(), three.content())
        self.assertEqual(one.read("f.bin"), one.content())

    def test_fakeMetainfo(self):
        """
        L{fakeMetainfo} cuts any shape into pieces of any length, padding
        files reading as zeros; L{fakeTorrent} makes the downloader's
        shape, a short last piece.
        """
        meta, data = fakeMetainfo(
            [(("a",), 5), (("pad",), 3), (("b",), 9)], 8, padding=[1]
        )
        self.assertEqual(meta.pieceCount, 3)
        self.assertEqual(data[5:8], bytes(3))
        self.assertEqual(meta.pieceSize(2), 1)
        self.assertEqual(meta.pieceHashes[0], hashlib.sha1(data[:8]).digest())
        meta, data = fakeTorrent(16384, 3, 100)
        self.assertEqual(meta.totalLength, 2 * 16384 + 100)
        self.assertEqual(meta.infoHash, b"h" * 20)
        storage = MemoryStorage(meta, data)
        verifyObject(IPieceStorage, storage)
        self.assertEqual(storage.readPiece(2), data[-100:])
