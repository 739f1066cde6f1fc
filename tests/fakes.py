"""
The fakes the tests share: a peer, a metainfo, an in-memory storage, the
runners that stand in for the thread pool, and a memory reactor whose
C{callFromThread} runs at once.

L{FakePeer} has the surface the engine uses of a peer
(L{btorrent.interfaces.IPeer}: what the coordinator, the choker, the
requester and the uploader read and call), records what is sent to it,
and plays the remote side with L{FakePeer.receive}.  For the network and
time, use Twisted's own helpers (L{twisted.internet.testing}'s
C{MemoryReactorClock} and C{StringTransport}, L{twisted.internet.task}'s
C{Clock}).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer

from btorrent.codec import wire
from btorrent.codec.bitfield import Bitfield
from btorrent.interfaces import IPeer, IPieceStorage

__all__ = [
    "FakeAnnouncer",
    "FakeFileEntry",
    "FakeMetainfo",
    "FakePeer",
    "FakeRate",
    "HeldRunner",
    "MemoryStorage",
    "SyncReactor",
    "pieceHashes",
    "syncRunner",
]


# The thread pool and the reactor


def syncRunner(f, *args, **kwargs) -> defer.Deferred:
    """
    Run C{f} at once, as a thread pool would (but synchronously): a
    C{runInThread}.
    """
    return defer.maybeDeferred(f, *args, **kwargs)


class HeldRunner:
    """
    A C{runInThread} that runs nothing until the test says so.

    @ivar calls: C{(f, args, deferred)} of the calls waiting.
    """

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, tuple, defer.Deferred]] = []

    def __call__(self, f, *args) -> defer.Deferred:
        d = defer.Deferred()
        self.calls.append((f, args, d))
        return d

    def _run(self, f, args, d) -> None:
        try:
            result = f(*args)
        except Exception:
            d.errback()
        else:
            d.callback(result)

    def runOne(self) -> None:
        """
        Run the oldest call waiting.
        """
        self._run(*self.calls.pop(0))

    def runAll(self) -> None:
        """
        Run every call waiting now (not those they make).
        """
        calls, self.calls = self.calls, []
        for call in calls:
            self._run(*call)


class SyncReactor(MemoryReactorClock):
    """
    A memory reactor that runs C{callFromThread} at once (disk work runs
    synchronously in these tests: L{syncRunner}).
    """

    def callFromThread(self, f, *args, **kwargs) -> None:
        f(*args, **kwargs)


# A torrent's announcer


class FakeAnnouncer(Service):
    """
    A torrent's announcer that records what the torrent asks of it.

    @ivar target: what it announces for (a torrent, a metadata phase).
    @ivar trackers: the trackers it was made for, if given.
    @ivar completedCalls: how many times C{completed} was called.
    @ivar stopped: it was stopped.
    @ivar abandoned: it was abandoned (stopped without a C{stopped}).
    """

    def __init__(self, target, trackers=None, stopResult=None) -> None:
        """
        @param stopResult: what C{stopService} returns.
        """
        self.target = target
        self.trackers = trackers
        self.stopResult = stopResult
        self.completedCalls = 0
        self.stopped = False
        self.abandoned = False

    def completed(self) -> None:
        self.completedCalls += 1

    def stopService(self):
        Service.stopService(self)
        self.stopped = True
        return self.stopResult

    def abandon(self) -> None:
        Service.stopService(self)
        self.abandoned = True


# A torrent's metadata and storage, in memory


@dataclass(frozen=True)
class FakeFileEntry:
    """
    The attributes of C{btorrent.codec.metainfo.FileEntry} storage relies on.
    """

    path: Tuple[str, ...]
    length: int
    offset: int
    padding: bool = False
    symlink: Optional[Tuple[str, ...]] = None
    executable: bool = False
    hidden: bool = False


@dataclass(frozen=True)
class FakeMetainfo:
    """
    The attributes of C{btorrent.codec.metainfo.Metainfo} that the
    downloader, the storage and the resume data rely on (see
    L{tests.builders.fakeTorrent} and L{tests.builders.fakeMetainfo}).
    """

    name: str
    infoHash: bytes
    pieceLength: int
    pieceHashes: Tuple[bytes, ...]
    totalLength: int
    files: Tuple[FakeFileEntry, ...]
    multiFile: bool

    @property
    def pieceCount(self) -> int:
        return len(self.pieceHashes)

    def pieceSize(self, index: int) -> int:
        return min(self.pieceLength, self.totalLength - index * self.pieceLength)


def pieceHashes(data: bytes, pieceLength: int) -> Tuple[bytes, ...]:
    """
    The SHA-1 of every piece of C{data}.
    """
    return tuple(
        hashlib.sha1(data[i : i + pieceLength]).digest()
        for i in range(0, len(data), pieceLength)
    )


@implementer(IPieceStorage)
class MemoryStorage:
    """
    An in-memory L{IPieceStorage}.

    @ivar pieces: C{index -> bytes} of the pieces it holds.
    @ivar writes: the indexes written, in order.
    """

    def __init__(self, metainfo, data: bytes = b"") -> None:
        """
        @param data: the torrent's bytes, to hold every piece from the
            start (none if empty).
        """
        self.metainfo = metainfo
        self.pieces: Dict[int, bytes] = {}
        self.writes: List[int] = []
        for index in range(metainfo.pieceCount if data else 0):
            start = index * metainfo.pieceLength
            self.pieces[index] = data[start : start + metainfo.pieceSize(index)]

    def open(self) -> None:
        pass

    def writePiece(self, index, data) -> None:
        self.writes.append(index)
        self.pieces[index] = bytes(data)

    def readBlock(self, index, begin, length) -> bytes:
        return self.pieces[index][begin : begin + length]

    def readPiece(self, index) -> bytes:
        return self.pieces[index]

    def readPieceIfCached(self, index):
        return None

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


# A peer


class FakeRate:
    """
    A rate meter whose rate the test sets.
    """

    def __init__(self, rate: float = 0.0) -> None:
        self.rate = rate
        self.total = 0

    def update(self, nbytes: int) -> None:
        self.total += nbytes


@implementer(IPeer)
class FakePeer:
    """
    A peer as the engine sees it (L{IPeer}), recording what is sent to it.

    @ivar owner: the L{btorrent.interfaces.IPeerOwner} it reports to (its
        messages, its loss), or C{None}.
    @ivar name: a name for test output.
    @ivar sent: the messages sent to it (L{btorrent.codec.wire} values).
    @ivar allRequests: C{(index, begin)} of every request sent to it.
    @ivar calls: C{"choke"} and C{"unchoke"}, in order.
    @ivar handshakes: the BEP 10 handshakes sent to it (their fields).
    @ivar extendedSent: the BEP 10 messages sent to it, C{(name,
        payload)}.
    @ivar dropped: why it was dropped (the first reason), or C{None}.
    @ivar transport: what the bandwidth limiter pauses (C{None}: nothing).
    """

    def __init__(
        self,
        owner=None,
        pieceCount: int = 0,
        number: int = 1,
        peerId: Optional[bytes] = None,
        factory=None,
        *,
        name: Optional[str] = None,
        host: str = "127.0.0.1",
        port: Optional[int] = None,
        outgoing: Optional[bool] = None,
        interested: bool = False,
        down: float = 0.0,
        up: float = 0.0,
        connectedAt: Optional[float] = None,
        fast: bool = False,
        extended: bool = False,
        peerExtensions: Optional[Dict[str, int]] = None,
        transport=None,
    ) -> None:
        """
        @param owner: see L{owner}.
        @param pieceCount: the torrent's piece count (its bitfield's size).
        @param number: makes its id and port (C{10000 + number}).
        @param factory: the client factory that dialled it (then it is
            outgoing), or C{None}.
        @param interested: C{peerInterested}.
        @param down: its C{downloadRate}'s rate.
        @param up: its C{uploadRate}'s rate.
        @param extended: it speaks BEP 10.
        @param peerExtensions: its BEP 10 ids by name: L{sendExtended}
            sends only those.
        """
        self.owner = owner
        self.name = name or f"peer{number}"
        self.amChoking = True
        self.amInterested = False
        self.peerChoking = True
        self.peerInterested = interested
        self.peerPieces = Bitfield(pieceCount)
        self.peerId = peerId or b"-XX0000-" + b"%012d" % number
        self.address = (host, 10000 + number if port is None else port)
        self.outgoing = factory is not None if outgoing is None else outgoing
        self.factory = factory
        self.downloadRate = FakeRate(down)
        self.uploadRate = FakeRate(up)
        self.bytesDownloaded = 0
        self.bytesUploaded = 0
        self.connectedAt = connectedAt
        self.fast = fast
        self.extended = extended
        self.peerExtensions: Dict[str, int] = dict(peerExtensions or {})
        self.isEncrypted = False
        self.peerDHT = False
        self.transport = transport
        self.sent: List[Any] = []
        self.allRequests: List[Tuple[int, int]] = []
        self.calls: List[str] = []
        self.handshakes: List[dict] = []
        self.extendedSent: List[Tuple[str, bytes]] = []
        self.dropped: Optional[str] = None

    def __repr__(self) -> str:
        return f"<FakePeer {self.name}>"

    # What the engine calls

    def sendMessage(self, msg) -> None:
        self.sent.append(msg)

    def sendHave(self, index: int) -> None:
        self.sent.append(wire.Have(index))

    def sendBitfield(self, bitfield) -> bool:
        self.sent.append(wire.BitfieldMessage(bitfield.toBytes()))
        return True

    def sendRequest(self, index: int, begin: int, length: int) -> None:
        self.sent.append(wire.Request(index, begin, length))
        self.allRequests.append((index, begin))

    def sendCancel(self, index: int, begin: int, length: int) -> None:
        self.sent.append(wire.Cancel(index, begin, length))

    def sendReject(self, index: int, begin: int, length: int) -> None:
        self.sent.append(wire.RejectRequest(index, begin, length))

    def sendPiece(self, index: int, begin: int, data) -> None:
        self.sent.append(wire.Piece(index, begin, bytes(data)))

    def sendExtensionHandshake(self, fields: dict) -> bool:
        self.handshakes.append(fields)
        return self.extended

    def sendExtended(self, name: str, payload: bytes) -> bool:
        if not self.extended or name not in self.peerExtensions:
            return False
        self.extendedSent.append((name, payload))
        return True

    def choke(self) -> None:
        self.calls.append("choke")
        self.amChoking = True
        self.sent.append(wire.Choke())

    def unchoke(self) -> None:
        self.calls.append("unchoke")
        self.amChoking = False
        self.sent.append(wire.Unchoke())

    def setInterested(self, interested: bool) -> None:
        self.amInterested = interested
        self.sent.append(wire.Interested() if interested else wire.NotInterested())

    def drop(self, reason: str) -> None:
        if self.dropped is None:
            self.dropped = reason
            if self.owner is not None:
                self.owner.peerLost(self, Failure(ConnectionError(reason)))

    # What the remote side does

    def receive(self, msg) -> None:
        """
        A message from the peer: its state follows, its owner hears it.
        """
        if isinstance(msg, wire.Choke):
            self.peerChoking = True
        elif isinstance(msg, wire.Unchoke):
            self.peerChoking = False
        elif isinstance(msg, wire.Interested):
            self.peerInterested = True
        elif isinstance(msg, wire.NotInterested):
            self.peerInterested = False
        elif isinstance(msg, wire.Have):
            self.peerPieces.add(msg.index)
        elif isinstance(msg, wire.BitfieldMessage):
            self.peerPieces = Bitfield.fromBytes(msg.bits, len(self.peerPieces))
        elif isinstance(msg, wire.HaveAll):
            self.peerPieces = Bitfield.full(len(self.peerPieces))
        elif type(msg) is wire.Piece:
            # As the protocol hands blocks over: a run of them at a time.
            self.owner.peerBlocks(self, [msg])
            return
        self.owner.peerMessage(self, msg)

    def haveAll(self) -> None:
        """
        The peer sends a full bitfield.
        """
        bits = Bitfield(len(self.peerPieces))
        for index in range(len(bits)):
            bits.add(index)
        self.receive(wire.BitfieldMessage(bits.toBytes()))

    def chokeNow(self) -> None:
        """
        What C{PeerProtocol.choke} does on a Fast connection: send the
        choke, tell the owner.
        """
        self.choke()
        self.owner.peerChoked(self)

    # Reading what was sent

    def of(self, kind) -> List[Any]:
        """
        The messages of type C{kind} sent to it.
        """
        return [m for m in self.sent if isinstance(m, kind)]

    def requests(self) -> List[wire.Request]:
        """
        The requests sent to it.
        """
        return self.of(wire.Request)

    def takeSent(self) -> List[Any]:
        """
        What was sent to it since the last call.
        """
        sent, self.sent = self.sent, []
        return sent
