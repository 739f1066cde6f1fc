"""
An in-memory swarm for magnet link tests: our real L{PeerProtocol}s (made
by the factories btorrent hands a L{MemoryReactorClock}) talk bytes to
remote peers that are sans-IO L{PeerConnection}s driven by a script
(L{RemotePeer}): seeders of the metadata and the data, liars, floods.

Nothing here touches a socket: L{Link.pump} moves bytes both ways until
both sides are quiet, and reports a close on either side to the other.
"""

from __future__ import annotations

import os
from typing import List, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from btorrent.codec import wire
from btorrent.codec.bitfield import Bitfield
from btorrent.engine.extensions import EXTENSIONS
from btorrent.peer.connection import (
    ExtensionHandshake,
    ExtensionMessage,
    Features,
    HandshakeReceived,
    PeerConnection,
    Violation,
)
from btorrent.peer.utmetadata import (
    METADATA_BLOCK,
    MetadataData,
    MetadataRequest,
    decodeMetadataMessage,
    encodeMetadataMessage,
)

__all__ = [
    "Link",
    "RemotePeer",
]


class RemotePeer:
    """
    A remote peer as a script over a sans-IO L{PeerConnection}: by default
    an honest seeder of the metadata and of the data.

    @ivar received: every event the remote saw from us, in order.
    @ivar extended: our extended handshakes, as dictionaries.
    @ivar metadataRequests: the ut_metadata pieces we asked for.
    """

    def __init__(
        self,
        clock,
        info,
        data: Optional[bytes] = None,
        offerMetadata: bool = True,
        metadataSize: Optional[int] = None,
        port: int = 0,
        peerId: Optional[bytes] = None,
    ) -> None:
        """
        @param info: the torrent's L{Metainfo} (its info-hash and, if
            C{offerMetadata}, its metadata).
        @param data: the torrent's bytes (a seeder), or C{None}.
        @param metadataSize: the C{metadata_size} to announce (default the
            real one).
        @param port: the C{p} of its extended handshake (0: none).
        """
        self.clock = clock
        self.info = info
        self.data = data
        self.offerMetadata = offerMetadata
        self.metadataSize = (
            len(info.infoBytes) if metadataSize is None else metadataSize
        )
        self.port = port
        self.peerId = peerId or b"-RP0001-" + os.urandom(6).hex().encode()
        self.connection: Optional[PeerConnection] = None
        self.received: List = []
        self.extended: List[dict] = []
        self.metadataRequests: List[int] = []
        self.answerMetadata = True
        self.corruptMetadata = False

    def features(self) -> Features:
        return Features(extensions=EXTENSIONS)

    # The two ways to start.

    def dialled(self) -> PeerConnection:
        """
        The connection of a remote that we dialled (it answers our
        handshake).
        """
        self.connection = PeerConnection(self.clock, self.peerId, self.features())
        self.connection.start()
        return self.connection

    def dialling(self) -> PeerConnection:
        """
        The connection of a remote that dials us.
        """
        self.connection = PeerConnection(
            self.clock, self.peerId, self.features(), infoHash=self.info.infoHash
        )
        self.connection.start()
        return self.connection

    # What the remote does with our bytes.

    def receive(self, data: bytes) -> None:
        events = self.connection.receiveData(data)
        self.handle(events)

    def handle(self, events) -> None:
        for event in events:
            self.received.append(event)
            kind = type(event)
            if kind is HandshakeReceived:
                if not self.connection.outgoing:
                    self.connection.accept(self.info.infoHash, self.info.pieceCount)
                else:
                    self.connection.accept()
                self.opened()
                self.handle(self.connection.resume())
            elif kind is ExtensionHandshake:
                self.extended.append(event.fields)
            elif kind is ExtensionMessage and event.name == "ut_metadata":
                self.metadataMessage(event.payload)
            elif kind is wire.Request:
                self.requested(event)
            elif kind is Violation:
                return

    def opened(self) -> None:
        """
        The handshake is done: our extended handshake, then our pieces.
        """
        fields = {"v": "remote 1.0"}
        if self.port:
            fields["p"] = self.port
        if self.offerMetadata and self.metadataSize is not None:
            fields["metadata_size"] = self.metadataSize
        self.connection.sendExtensionHandshake(fields)
        if self.data is not None:
            # After the extended handshake, as libtorrent sends them (our
            # own connection would refuse a bitfield after a message).
            bits = Bitfield.full(self.info.pieceCount).toBytes()
            self.sendRaw(wire.encodeMessage(wire.BitfieldMessage(bits)))
            self.connection.sendMessage(wire.Unchoke())

    def metadataMessage(self, payload: bytes) -> None:
        message = decodeMetadataMessage(payload)
        if type(message) is not MetadataRequest:
            return
        self.metadataRequests.append(message.piece)
        if not self.answerMetadata:
            return
        infoBytes = self.info.infoBytes
        if self.corruptMetadata:
            infoBytes = bytes(b ^ 0xFF for b in infoBytes)
        start = message.piece * METADATA_BLOCK
        self.sendMetadata(
            MetadataData(
                message.piece, len(infoBytes), infoBytes[start : start + METADATA_BLOCK]
            )
        )

    def sendMetadata(self, message) -> None:
        self.connection.sendExtended("ut_metadata", encodeMetadataMessage(message))

    def requested(self, request: wire.Request) -> None:
        if self.data is None:
            return
        start = request.index * self.info.pieceLength + request.begin
        self.connection.sendPiece(
            request.index, request.begin, self.data[start : start + request.length]
        )

    def sendRaw(self, data: bytes) -> None:
        """
        Queue raw bytes (a hostile message) to send.
        """
        self.connection._out.append(data)


class Link:
    """
    One connection between our L{PeerProtocol} and a L{RemotePeer}.

    @ivar protocol: our side.
    @ivar transport: our side's L{StringTransport}.
    @ivar lost: our side saw C{connectionLost}.
    """

    def __init__(
        self, protocol, remote: RemotePeer, address, factory=None, connector=None
    ):
        self.protocol = protocol
        self.remote = remote
        self.factory = factory
        self.connector = connector
        self.transport = StringTransport(
            peerAddress=IPv4Address("TCP", *address),
            hostAddress=IPv4Address("TCP", "127.0.0.1", 6881),
        )
        self.lost = False
        self.remoteClosed = False
        protocol.makeConnection(self.transport)

    @classmethod
    def dialled(cls, reactor: MemoryReactorClock, index: int, remote: RemotePeer):
        """
        Complete the dial number C{index} of C{reactor.tcpClients} to
        C{remote}.
        """
        host, port, factory, _, _ = reactor.tcpClients[index]
        connector = reactor.connectors[index]
        remote.dialled()
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        return cls(protocol, remote, (host, port), factory, connector)

    @classmethod
    def incoming(cls, serverFactory, remote: RemotePeer, address):
        """
        C{remote} dials us: a protocol of C{serverFactory}.
        """
        remote.dialling()
        protocol = serverFactory.buildProtocol(IPv4Address("TCP", *address))
        return cls(protocol, remote, address)

    @property
    def closed(self) -> bool:
        return self.lost or self.remoteClosed

    def pump(self, rounds: int = 1000) -> bool:
        """
        Move bytes both ways until both sides are quiet; a side that closed
        is reported to the other.

        @return: whether anything happened.
        """
        anything = False
        for _ in range(rounds):
            if self.lost:
                return anything
            moved = False
            ours = self.transport.value()
            if ours:
                self.transport.clear()
                self.remote.receive(ours)
                moved = True
            if self.remote.connection.closed and not self.remoteClosed:
                self.remoteClosed = True
                self.loseConnection()
                return True
            if self.transport.disconnecting:
                self.loseConnection()
                return True
            theirs = b"".join(self.remote.connection.dataToSend())
            if theirs:
                self.protocol.dataReceived(theirs)
                moved = True
            if self.transport.disconnecting:
                self.loseConnection()
                return True
            if not moved:
                return anything
            anything = True
        raise AssertionError("the link never went quiet")

    def loseConnection(self) -> None:
        if self.lost:
            return
        self.lost = True
        reason = Failure(ConnectionDone())
        self.protocol.connectionLost(reason)
        if self.factory is not None:
            self.factory.clientConnectionLost(self.connector, reason)


def pumpAll(links, rounds: int = 100) -> None:
    """
    Pump every link until none moves a byte.
    """
    for _ in range(rounds):
        if not any([link.pump() for link in links]):
            return
    raise AssertionError("the links never went quiet")
