"""
BitTorrent peers written with Twisted and L{btorrent.codec.wire}, for tests that
put btorrent in front of misbehaving peers: a seeder that lies about its
data, and peers that break the protocol in one precise way.

Every peer here is a L{WirePeer}: it sends its handshake as soon as the
connection is made (whichever side connected), parses what btorrent sends,
and records it.  It never closes the connection itself, so when its
L{WirePeer.lost} fires, btorrent closed it.  Subclasses say what to send
through the hooks L{WirePeer.start}, L{WirePeer.afterHandshake} and
L{WirePeer.messageReceived}.

Use L{connectPeer} to make a peer connect to btorrent, L{listenPeers} to
have btorrent connect to peers.
"""

from __future__ import annotations

import os
import struct
from typing import Callable, List, Optional

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import LoopingCall

from btorrent.codec import wire

__all__ = [
    "BrokenMSEPeer",
    "GarbagePeer",
    "IdleHandshakePeer",
    "IdleSwarm",
    "KeepAliveFlood",
    "LyingSeeder",
    "TorrentContent",
    "WirePeer",
    "WrongLengthSeeder",
    "connectPeer",
    "fullBitfield",
    "listenPeers",
    "makePeerId",
]

#: The longest message a test peer accepts from btorrent.
MAX_MESSAGE = 1 << 20


def makePeerId() -> bytes:
    """
    A fresh 20-byte peer id for a test peer.
    """
    return b"-TT0001-" + os.urandom(12)


def fullBitfield(pieceCount: int) -> bytes:
    """
    The wire form of a bitfield with all C{pieceCount} pieces set (and no
    spare bit).
    """
    bits = bytearray(b"\xff" * (pieceCount // 8))
    if pieceCount % 8:
        bits.append((0xFF << (8 - pieceCount % 8)) & 0xFF)
    return bytes(bits)


class TorrentContent:
    """
    The bytes of a whole torrent, in memory, read from where its seeder
    keeps them.
    """

    def __init__(self, metainfo, dataDir: str) -> None:
        """
        @param metainfo: the torrent's L{btorrent.codec.metainfo.Metainfo}.
        @param dataDir: the directory holding the single file, or the
            torrent's top directory (C{dataDir/name/...}).
        """
        self.metainfo = metainfo
        parts = []
        for entry in metainfo.files:
            if entry.padding:
                parts.append(bytes(entry.length))
                continue
            if metainfo.multiFile:
                path = os.path.join(dataDir, metainfo.name, *entry.path)
            else:
                path = os.path.join(dataDir, *entry.path)
            with open(path, "rb") as f:
                parts.append(f.read())
        self.data = b"".join(parts)
        if len(self.data) != metainfo.totalLength:
            raise ValueError("the data on disk does not match the torrent")

    def block(self, index: int, begin: int, length: int) -> bytes:
        """
        C{length} bytes at C{begin} in piece C{index}.
        """
        start = index * self.metainfo.pieceLength + begin
        return self.data[start : start + length]


class WirePeer(Protocol):
    """
    A minimal BitTorrent peer for tests.

    @ivar infoHash: the info-hash it puts in its handshake.
    @ivar peerId: its peer id.
    @ivar pieceCount: pieces of the torrent.
    @ivar handshake: btorrent's L{wire.Handshake}, once received.
    @ivar messages: every message btorrent sent (keep-alives included).
    @ivar bytesReceived: bytes received from btorrent.
    @ivar bytesSent: bytes handed to the transport.
    @ivar handshaken: a L{Deferred} firing with this peer once btorrent's
        handshake arrived.
    @ivar lost: a L{Deferred} firing with the reason (the exception: a
        L{Failure} would make it fail) when the connection closes.
    @ivar localPort: the port of this side of the connection.
    @ivar notBitTorrent: btorrent's first bytes were not a BitTorrent
        handshake (an MSE handshake: btorrent dials encrypted first); the
        connection was closed at once.
    """

    def __init__(
        self,
        infoHash: bytes,
        pieceCount: int,
        peerId: Optional[bytes] = None,
        sendHandshake: bool = True,
        reserved: bytes = bytes(8),
    ) -> None:
        """
        @param infoHash: the info-hash for our handshake.
        @param pieceCount: pieces of the torrent (for bitfields).
        @param peerId: our peer id (a fresh one by default).
        @param sendHandshake: send our handshake as the connection opens.
        @param reserved: the reserved bytes of our handshake
            (C{wire.reservedBytes(fast=True)} to negotiate the Fast
            extension: then btorrent's Fast messages are parsed too).
        """
        self.infoHash = infoHash
        self.pieceCount = pieceCount
        self.peerId = peerId or makePeerId()
        self.sendHandshake = sendHandshake
        self.reserved = reserved
        self.notBitTorrent = False
        self.handshake: Optional[wire.Handshake] = None
        self.messages: List[object] = []
        self.bytesReceived = 0
        self.bytesSent = 0
        self.handshaken: Deferred = Deferred()
        self.lost: Deferred = Deferred()
        self.localPort = 0
        self._buffer = bytearray()

    # Sending.

    def send(self, data: bytes) -> None:
        """
        Write raw bytes.
        """
        self.bytesSent += len(data)
        self.transport.write(data)

    def sendMessage(self, message) -> None:
        """
        Write one L{btorrent.codec.wire} message.
        """
        self.send(wire.encodeMessage(message))

    # Hooks.

    def start(self) -> None:
        """
        The connection is open: send our handshake.
        """
        if self.sendHandshake:
            self.send(
                wire.encodeHandshake(
                    wire.Handshake(self.infoHash, self.peerId, self.reserved)
                )
            )

    def afterHandshake(self) -> None:
        """
        btorrent's handshake arrived.
        """

    def messageReceived(self, message) -> None:
        """
        A message from btorrent.
        """

    # Protocol.

    def connectionMade(self) -> None:
        """
        Note our port and run L{start}.
        """
        self.localPort = self.transport.getHost().port
        self.start()

    def dataReceived(self, data: bytes) -> None:
        """
        Parse btorrent's handshake, then its messages.
        """
        if self.notBitTorrent:
            return
        self.bytesReceived += len(data)
        self._buffer += data
        if self.handshake is None:
            n = min(len(self._buffer), len(wire.HANDSHAKE_PREFIX))
            if self._buffer[:n] != wire.HANDSHAKE_PREFIX[:n]:
                # Not BitTorrent (btorrent's MSE attempt): refuse it, as a
                # client without MSE does; btorrent then dials in plaintext.
                self.notBitTorrent = True
                self.transport.abortConnection()
                return
            if len(self._buffer) < wire.HANDSHAKE_LENGTH:
                return
            self.handshake = wire.decodeHandshake(
                bytes(self._buffer[: wire.HANDSHAKE_LENGTH])
            )
            del self._buffer[: wire.HANDSHAKE_LENGTH]
            factory = getattr(self, "factory", None)
            if isinstance(factory, _PeerServer):
                factory.handshaken(self)
            self.afterHandshake()
            self.handshaken.callback(self)
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= 4:
            (length,) = struct.unpack_from(">I", buffer, offset)
            if length > MAX_MESSAGE:
                raise ValueError(f"btorrent sent a message of {length} bytes")
            if len(buffer) - offset - 4 < length:
                break
            message = wire.decodeMessage(
                bytes(buffer[offset + 4 : offset + 4 + length])
            )
            offset += 4 + length
            self.messages.append(message)
            self.messageReceived(message)
        del buffer[:offset]

    def connectionLost(self, reason) -> None:
        """
        Fire L{lost}.
        """
        self.lost.callback(reason.value)


class LyingSeeder(WirePeer):
    """
    A seeder that has every piece, unchokes at once and answers each
    request, with one byte flipped in every block of a piece C{corrupt}
    says is to be corrupted.

    @ivar corrupted: indexes of the pieces it sent corrupted blocks of.
    @ivar served: blocks it sent.
    """

    def __init__(
        self,
        content: TorrentContent,
        corrupt: Callable[[int], bool] = lambda index: True,
        **kwargs,
    ) -> None:
        """
        @param content: the torrent's true bytes.
        @param corrupt: whether to corrupt the blocks of a piece.
        @param kwargs: for L{WirePeer}.
        """
        super().__init__(
            content.metainfo.infoHash, content.metainfo.pieceCount, **kwargs
        )
        self.content = content
        self.corrupt = corrupt
        self.corrupted: set = set()
        self.served = 0

    def afterHandshake(self) -> None:
        """
        Say we have everything and unchoke.
        """
        self.sendMessage(wire.BitfieldMessage(fullBitfield(self.pieceCount)))
        self.sendMessage(wire.Unchoke())

    def messageReceived(self, message) -> None:
        """
        Answer requests, lying about the pieces C{corrupt} names.
        """
        if type(message) is not wire.Request:
            return
        block = self.content.block(message.index, message.begin, message.length)
        if self.corrupt(message.index):
            block = bytes([block[0] ^ 0xFF]) + block[1:]
            self.corrupted.add(message.index)
        self.served += 1
        self.sendMessage(wire.Piece(message.index, message.begin, block))


class FirstBlockLiar(LyingSeeder):
    """
    A liar that never sends a whole piece, so that no failed piece has it
    as its only sender: it answers only requests for the first block of a
    piece, with a flipped byte, and ignores the others.  After each answer
    it chokes, discards what it is asked while choked (BEP 3), and
    unchokes C{pause} seconds later; the downloader meanwhile takes its
    requests back and asks another peer for the rest of the piece.

    @ivar choked: how many times it choked.
    """

    def __init__(self, content: TorrentContent, pause: float = 0.05, **kwargs):
        super().__init__(content, **kwargs)
        self.pause = pause
        self.choked = 0
        self.choking = False
        self._unchoking = None

    def messageReceived(self, message) -> None:
        """
        Answer only first blocks, corrupted, while not choking; then choke
        for a moment.
        """
        if type(message) is not wire.Request or message.begin != 0:
            return
        if self.choking:
            return
        super().messageReceived(message)
        self.sendMessage(wire.Choke())
        self.choking = True
        self.choked += 1
        from twisted.internet import reactor

        self._unchoking = reactor.callLater(self.pause, self._unchoke)

    def _unchoke(self) -> None:
        self._unchoking = None
        if self.transport is not None and self.transport.connected:
            self.choking = False
            self.sendMessage(wire.Unchoke())

    def connectionLost(self, reason) -> None:
        """
        Forget the pending unchoke (a test may end right after the drop,
        and trial fails one that leaves a call pending).
        """
        if self._unchoking is not None and self._unchoking.active():
            self._unchoking.cancel()
        self._unchoking = None
        super().connectionLost(reason)


class WrongLengthSeeder(LyingSeeder):
    """
    A seeder that answers every request with a block C{delta} bytes longer
    (or shorter) than asked for, of the true data.
    """

    def __init__(self, content: TorrentContent, delta: int, **kwargs) -> None:
        """
        @param delta: bytes to add to (or, negative, take from) each block.
        """
        super().__init__(content, corrupt=lambda index: False, **kwargs)
        self.delta = delta

    def messageReceived(self, message) -> None:
        """
        Answer a request with a block of the wrong length.
        """
        if type(message) is not wire.Request:
            return
        block = self.content.block(
            message.index, message.begin, message.length + max(self.delta, 0)
        )
        if self.delta > 0:
            block += bytes(max(0, message.length + self.delta - len(block)))
        else:
            block = block[: message.length + self.delta]
        self.served += 1
        self.sendMessage(wire.Piece(message.index, message.begin, block))


class GarbagePeer(WirePeer):
    """
    A peer that sends fixed bytes: C{before} as soon as the connection
    opens (after its handshake, if it sends one), C{after} once btorrent's
    handshake arrived.
    """

    def __init__(
        self,
        infoHash: bytes,
        pieceCount: int,
        before: bytes = b"",
        after: bytes = b"",
        **kwargs,
    ) -> None:
        """
        @param before: bytes to send at once.
        @param after: bytes to send after btorrent's handshake.
        @param kwargs: for L{WirePeer}.
        """
        super().__init__(infoHash, pieceCount, **kwargs)
        self.before = before
        self.after = after

    def start(self) -> None:
        """
        Handshake (perhaps), then C{before}.
        """
        super().start()
        if self.before:
            self.send(self.before)

    def afterHandshake(self) -> None:
        """
        Send C{after}.
        """
        if self.after:
            self.send(self.after)


class KeepAliveFlood(WirePeer):
    """
    A peer that, after the handshakes, sends nothing but keep-alives: a
    chunk of C{chunk} bytes of them every C{interval} seconds, up to
    C{total} bytes, or until the connection closes.
    """

    def __init__(
        self,
        infoHash: bytes,
        pieceCount: int,
        clock,
        total: int = 16 << 20,
        chunk: int = 1 << 20,
        interval: float = 0.01,
        **kwargs,
    ) -> None:
        """
        @param clock: the reactor (for the sending loop).
        @param kwargs: for L{WirePeer}.
        """
        super().__init__(infoHash, pieceCount, **kwargs)
        self.total = total
        self.chunk = bytes(chunk - chunk % 4)
        self.loop = LoopingCall(self._flood)
        self.loop.clock = clock
        self.interval = interval
        self.flooded = 0

    def afterHandshake(self) -> None:
        """
        Start flooding.
        """
        self.loop.start(self.interval, now=True)

    def _flood(self) -> None:
        if self.flooded >= self.total:
            self.loop.stop()
            return
        self.send(self.chunk)
        self.flooded += len(self.chunk)

    def connectionLost(self, reason) -> None:
        """
        Stop flooding.
        """
        if self.loop.running:
            self.loop.stop()
        super().connectionLost(reason)


class IdleHandshakePeer(WirePeer):
    """
    A peer that completes the handshake and then says nothing useful:
    at most a keep-alive every C{keepAlive} seconds (to outlast an idle
    timeout), never its pieces, its interest or a request.  Many of them
    try to hold every connection slot of a torrent.
    """

    def __init__(
        self, infoHash: bytes, pieceCount: int, clock, keepAlive: float = 0.0, **kwargs
    ) -> None:
        """
        @param clock: the reactor (for the keep-alives).
        @param keepAlive: seconds between keep-alives (0: none).
        @param kwargs: for L{WirePeer}.
        """
        super().__init__(infoHash, pieceCount, **kwargs)
        self.loop: Optional[LoopingCall] = None
        if keepAlive > 0:
            self.loop = LoopingCall(self.send, bytes(4))
            self.loop.clock = clock
            self.keepAlive = keepAlive

    def afterHandshake(self) -> None:
        """
        Start the keep-alives, if any.
        """
        if self.loop is not None:
            self.loop.start(self.keepAlive, now=False)

    def connectionLost(self, reason) -> None:
        """
        Stop the keep-alives.
        """
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        super().connectionLost(reason)


class IdleSwarm:
    """
    C{count} L{IdleHandshakePeer} connections to one port, each opened
    again C{reconnect} seconds after btorrent closes it (a persistent
    attacker), until L{stop}.

    @ivar open: the peers whose connection is open (handshaken or not).
    @ivar connections: connections opened so far.
    @ivar handshakes: connections on which btorrent's handshake arrived
        (one it drops at once may close before its handshake is sent).
    @ivar closedByBtorrent: connections btorrent closed.
    @ivar failures: connections that could not be opened.
    """

    def __init__(
        self,
        reactor,
        port: int,
        infoHash: bytes,
        pieceCount: int,
        count: int = 500,
        reconnect: Optional[float] = 1.0,
        keepAlive: float = 0.0,
    ) -> None:
        """
        @param reconnect: seconds before a closed connection is opened
            again (C{None}: never).
        @param keepAlive: for each L{IdleHandshakePeer}.
        """
        self.reactor = reactor
        self.port = port
        self.infoHash = infoHash
        self.pieceCount = pieceCount
        self.count = count
        self.reconnect = reconnect
        self.keepAlive = keepAlive
        self.open: List[IdleHandshakePeer] = []
        self.connections = 0
        self.handshakes = 0
        self.closedByBtorrent = 0
        self.failures = 0
        self._stopped = False
        self._pending: List = []
        self._connecting: set = set()

    def start(self) -> None:
        """
        Open every connection.
        """
        for _ in range(self.count):
            self._connect()

    def _connect(self) -> None:
        if self._stopped:
            return
        peer = IdleHandshakePeer(
            self.infoHash, self.pieceCount, self.reactor, keepAlive=self.keepAlive
        )

        def connected(peer):
            self._connecting.discard(attempt)
            self.connections += 1
            self.open.append(peer)
            peer.handshaken.addCallback(self._handshaken)
            peer.lost.addCallback(self._lost, peer)

        def failed(reason):
            self._connecting.discard(attempt)
            if not self._stopped:
                self.failures += 1
                self._later()

        attempt = connectPeer(self.reactor, self.port, peer)
        self._connecting.add(attempt)
        attempt.addCallbacks(connected, failed)

    def _handshaken(self, peer) -> None:
        self.handshakes += 1

    def _lost(self, reason, peer) -> None:
        self.open.remove(peer)
        if not self._stopped:
            self.closedByBtorrent += 1
            self._later()

    def _later(self) -> None:
        if self._stopped or self.reconnect is None:
            return
        self._pending = [c for c in self._pending if c.active()]
        self._pending.append(self.reactor.callLater(self.reconnect, self._connect))

    def stopReconnecting(self) -> None:
        """
        Open no more connections; those open stay open.
        """
        self.reconnect = None
        for call in self._pending:
            if call.active():
                call.cancel()
        self._pending = []

    def stop(self) -> Deferred:
        """
        Stop reconnecting and close every connection.

        @return: a L{Deferred} firing once every connection is closed.
        """
        self.stopReconnecting()
        self._stopped = True
        for attempt in list(self._connecting):
            attempt.cancel()
        waiting = [peer.lost for peer in self.open if not peer.lost.called]
        for peer in list(self.open):
            peer.transport.abortConnection()
        return DeferredList(waiting)


class BrokenMSEPeer(Protocol):
    """
    An MSE initiator (L{btorrent.peer.mse}'s step 1 and 3, written out
    here from the specification's formulas) that breaks the handshake in
    one way, C{how}:

      - C{"noHash"}: after btorrent's key, random bytes where
        C{HASH('req1', S)} should be: btorrent never finds it;
      - C{"padding"}: C{padding} bytes (10 MB by default) of PadA after its
        key, sent as fast as the connection takes them;
      - C{"unknownTorrent"}: a correct step 3 for a torrent btorrent does
        not serve;
      - C{"wrongVC"}: a correct step 3 for the torrent, but a verification
        constant that is not zeros.

    It never closes the connection itself: when L{lost} fires, btorrent
    closed it.

    @ivar sent: bytes handed to the transport.
    @ivar received: what btorrent sent (its key and pad).
    @ivar lost: fires with the reason's exception when the connection
        closes.
    """

    def __init__(
        self, infoHash: bytes, how: str, clock=None, padding: int = 10 << 20
    ) -> None:
        """
        @param infoHash: the torrent to ask for (C{"unknownTorrent"} asks
            for another).
        @param clock: the reactor, for C{"padding"}'s sending loop.
        """
        from btorrent.peer import mse

        self.mse = mse
        self.infoHash = infoHash
        self.how = how
        self.clock = clock
        self.padding = padding
        self.sent = 0
        self.received = bytearray()
        self.lost: Deferred = Deferred()
        self._x = mse.privateKey()
        self._stepped = False
        self._loop: Optional[LoopingCall] = None

    def _send(self, data: bytes) -> None:
        self.sent += len(data)
        self.transport.write(data)

    def connectionMade(self) -> None:
        """
        Step 1: our key (and, C{"padding"}, the flood of PadA).
        """
        self._send(self.mse.publicKey(self._x))
        if self.how == "padding":
            chunk = os.urandom(1 << 16)

            def more() -> None:
                if self.sent >= self.padding or not self.transport.connected:
                    self._loop.stop()
                    return
                self._send(chunk)

            self._loop = LoopingCall(more)
            self._loop.clock = self.clock
            self._loop.start(0.001)

    def dataReceived(self, data: bytes) -> None:
        """
        Step 3, broken, once btorrent's key is here.
        """
        self.received += data
        if self._stepped or self.how == "padding":
            return
        if len(self.received) < self.mse.KEY_LENGTH:
            return
        self._stepped = True
        if self.how == "noHash":
            self._send(os.urandom(4096))
            return
        import hashlib

        def sha1(*parts: bytes) -> bytes:
            return hashlib.sha1(b"".join(parts)).digest()

        secret = self.mse.sharedSecret(
            self._x, bytes(self.received[: self.mse.KEY_LENGTH])
        )
        skey = self.infoHash
        if self.how == "unknownTorrent":
            skey = sha1(b"not the torrent", skey)
        req2 = sha1(b"req2", skey)
        req3 = sha1(b"req3", secret)
        xored = bytes(a ^ b for a, b in zip(req2, req3))
        encrypt, _ = self.mse.streamCiphers(secret, skey, True)
        vc = b"\x01" * 8 if self.how == "wrongVC" else bytes(8)
        fields = vc + self.mse.CRYPTO_RC4.to_bytes(4, "big") + bytes(2) + bytes(2)
        self._send(sha1(b"req1", secret) + xored + encrypt(fields))

    def connectionLost(self, reason) -> None:
        """
        Fire L{lost}.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.lost.callback(reason.value)


def connectPeer(reactor, port: int, peer: WirePeer) -> Deferred:
    """
    Connect C{peer} to 127.0.0.1:C{port}.

    @return: a L{Deferred} firing with C{peer} once connected.
    """
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)
    return connectProtocol(endpoint, peer)


class _PeerServer(ServerFactory):
    """
    @ivar peers: the peers btorrent sent a BitTorrent handshake to, in
        order (a connection that began with MSE is not among them).
    @ivar built: every peer built.
    """

    def __init__(self, makePeer: Callable[[], WirePeer]) -> None:
        self.makePeer = makePeer
        self.peers: List[WirePeer] = []
        self.built: List[WirePeer] = []
        self._waiting: List[Deferred] = []

    def buildProtocol(self, addr) -> WirePeer:
        peer = self.makePeer()
        peer.factory = self
        self.built.append(peer)
        return peer

    def handshaken(self, peer: WirePeer) -> None:
        """
        btorrent's BitTorrent handshake reached C{peer}.
        """
        self.peers.append(peer)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(peer)

    def firstPeer(self) -> Deferred:
        """
        A L{Deferred} firing with the first peer that got btorrent's
        BitTorrent handshake (at once if there is one already).
        """
        if self.peers:
            return succeed(self.peers[0])
        d = Deferred()
        self._waiting.append(d)
        return d


def listenPeers(reactor, makePeer: Callable[[], WirePeer]):
    """
    Listen on 127.0.0.1 for btorrent's connections, one new peer from
    C{makePeer()} per connection.

    @return: C{(listeningPort, factory)}; C{factory.peers} lists the peers
        btorrent spoke BitTorrent to so far (its MSE attempts, refused, are
        only in C{factory.built}), C{factory.firstPeer()} waits for the
        first one, C{listeningPort.getHost().port} is the port.
    """
    factory = _PeerServer(makePeer)
    listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return listening, factory
