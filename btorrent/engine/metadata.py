"""
The metadata phase of a magnet link: a torrent that starts with its
info-hash alone fetches its info dictionary from peers (BEP 9), then goes
on like any torrent.

L{MetadataPhase} is the torrent's peer owner (an L{IPeerOwner}) until the
info dictionary is there:

  - Peers come from the magnet's C{x.pe} (the torrent's initial peers), its
    trackers (an announcer of its own, announcing C{left} = 16384 as
    libtorrent does while the size is unknown), peer exchange, and whoever
    calls C{Torrent.addPeers} (the DHT, the user).  It dials them with a
    L{Dialer} and takes incoming peers the session routes to it
    (L{peerContext}).
  - To every peer that sets the BEP 10 bit it sends our extended handshake
    (C{p}, C{v}, C{reqq}, C{yourip}, no C{metadata_size} yet); with the
    Fast extension, C{have none} first (BEP 6 wants one of bitfield, have
    all, have none right after the handshake).
  - A L{MetadataFetcher} asks the peers whose handshake offers
    C{ut_metadata} with a C{metadata_size} of at most L{MAX_METADATA_SIZE}
    for 16 KiB pieces, at most 2 outstanding per peer; requests time out on
    the torrent's heartbeat; a peer that sent metadata that fails the
    SHA-1 check (or a piece of the wrong size) is dropped and never dialled
    again, and the fetch goes on with the others.  Requests from peers are
    rejected until the metadata is complete, then answered.
  - Once the SHA-1 matches: the L{Metainfo} is built with the magnet's
    trackers (L{metainfoFromMetadata}); C{onMetadata(torrentBytes)} is
    called to save the C{.torrent} (the session keeps it in its state
    directory, so that a restart does not fetch it again); the announcer
    stops without a C{stopped} (the torrent's own takes over); every
    address known goes to the torrent's initial peers; and
    C{torrent.setMetainfo} builds the storage and the picker and checks the
    disk.
  - When the torrent's L{Downloader} runs (its state turns to downloading
    or seeding), the live connections are I{handed over} to it rather than
    closed: each learns the piece count (what it announced meanwhile is
    checked then), the downloader takes it as a connected peer (our pieces
    go out as C{have}s: a bitfield may only be the first message), and its
    peer exchange state moves along.  Closing and redialling would be
    simpler, but would lose every peer that can only connect to us (behind
    a NAT) until it comes back on its own, and costs each peer a new
    handshake; libtorrent keeps its connections too.  If the torrent is
    queued instead (download or seed queue full) or stops, the connections
    are closed: the downloader dials them again when it runs.

Private torrents: a magnet link does not say whether its torrent is
private, so the fetch is the same for any link.  When the info dictionary
turns out to be private (BEP 27), the peers learned only from peer exchange
are closed and not passed on, so that the torrent's data is exchanged only
with peers of its trackers (and those the user gave); the downloader then
runs without PEX and ut_metadata (L{btorrent.engine.extensions}).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from btorrent.codec import metainfo as metainfoCodec
from btorrent.codec.magnet import MagnetError, metainfoFromMetadata
from btorrent.codec.wire import HaveNone
from btorrent.control.api import DOWNLOAD_WAIT, DOWNLOADING, SEED_WAIT, SEEDING, STOPPED
from btorrent.engine.dialer import Dialer
from btorrent.engine.extensions import extensionFeatures, handshakeFields, handshakeInt
from btorrent.engine.metadataserver import handleMetadataRequest
from btorrent.engine.pex import PeerExchange
from btorrent.engine.storage import writeFileAtomically
from btorrent.interfaces import IAnnounceTarget, IPeerOwner
from btorrent.peer import encryption
from btorrent.peer.connection import ExtensionHandshake, ExtensionMessage, Violation
from btorrent.peer.extended import UT_METADATA, UT_PEX
from btorrent.peer.protocol import CONNECT_TIMEOUT, PeerClientFactory, PeerContext
from btorrent.peer.utmetadata import (
    DEFAULT_MAX_SIZE,
    MetadataData,
    MetadataFetcher,
    MetadataMessageError,
    MetadataReject,
    MetadataRequest,
    MetadataServer,
    encodeMetadataMessage,
)
from btorrent.util import logs

__all__ = [
    "MAX_METADATA_SIZE",
    "TICK",
    "UNKNOWN_LEFT",
    "MetadataPhase",
    "loadSavedMetadata",
    "metadataPath",
    "saveMetadata",
]

#: The largest info dictionary we fetch (libtorrent's limit for a
#: C{.torrent} file is 10 MB, as is ours in L{btorrent.codec.metainfo}).
MAX_METADATA_SIZE = DEFAULT_MAX_SIZE
#: The C{left} we announce while the torrent's size is unknown
#: (libtorrent's C{value_or(bytes_left(), 16 * 1024)}): not 0, which would
#: make us a seed in the tracker's eyes (some answer seeds with leechers
#: only).
UNKNOWN_LEFT = 16 * 1024
#: Seconds between two passes of dialling.
TICK = 5.0

Address = Tuple[str, int]


def metadataPath(stateDir: str, infoHash: bytes) -> str:
    """
    Where the C{.torrent} of a magnet link is kept once its metadata was
    fetched: C{<stateDir>/<hex info-hash>.torrent}.
    """
    return os.path.join(stateDir, infoHash.hex() + ".torrent")


def saveMetadata(stateDir: str, infoHash: bytes, torrentBytes: bytes) -> None:
    """
    Keep a fetched torrent in C{stateDir} (atomically: a crash leaves the
    old file or the new one).  Blocking: run it in a thread.
    """
    os.makedirs(stateDir, exist_ok=True)
    writeFileAtomically(metadataPath(stateDir, infoHash), torrentBytes)


def loadSavedMetadata(stateDir: str, infoHash: bytes):
    """
    The torrent saved by L{saveMetadata} for C{infoHash}, or C{None} if
    there is none or it is unreadable, invalid or of another torrent (the
    metadata is then fetched again).
    """
    path = metadataPath(stateDir, infoHash)
    try:
        info = metainfoCodec.loadFile(path)
    except FileNotFoundError:
        return None
    except (OSError, metainfoCodec.MetainfoError) as e:
        MetadataPhase.log.warn(
            "ignoring the saved torrent {path}: {reason}", path=path, reason=str(e)
        )
        return None
    if info.infoHash != infoHash:
        MetadataPhase.log.warn(
            "ignoring the saved torrent {path}: it is another torrent", path=path
        )
        return None
    return info


class _PhaseDial(PeerClientFactory):
    """
    The factory of one connection the metadata phase dials: it tells
    C{ended(factory, connected)} when the attempt ends.

    @ivar outgoingAddress: the address dialled.
    @ivar handshaken: non-empty once the peer's handshake was accepted.
    @ivar connector: what C{connectTCP} returned.
    @ivar adoptedBy: the downloader that took the connection over, if any.
    """

    def __init__(self, context, clock, address, debug, heartbeat, ended) -> None:
        super().__init__(
            context, clock, debug=debug, address=address, heartbeat=heartbeat
        )
        self.outgoingAddress = address
        self.handshaken: List[bool] = []
        self.connector = None
        self.adoptedBy = None
        self._ended = ended

    def clientConnectionFailed(self, connector, reason) -> None:
        self._ended(self, False)

    def clientConnectionLost(self, connector, reason) -> None:
        self._ended(self, True)


class _PhasePeer:
    """
    What the metadata phase keeps about one connected peer.
    """

    __slots__ = ("metadataSize",)

    def __init__(self) -> None:
        self.metadataSize: Optional[int] = None


@implementer(IPeerOwner, IAnnounceTarget)
class MetadataPhase(Service):
    """
    Fetches the info dictionary of a torrent started from a magnet link,
    then hands its peers to the torrent's downloader.

    @ivar torrent: the L{btorrent.engine.torrent.Torrent}.
    @ivar fetcher: the L{MetadataFetcher}.
    @ivar server: a L{MetadataServer} (rejects until the metadata is here).
    @ivar pex: our L{PeerExchange} during the phase.
    @ivar dialer: the L{Dialer} of the phase.
    @ivar peers: the connected peers.
    @ivar metainfo: the L{Metainfo} built, once the metadata is complete.
    @ivar handedOver: the connections went to the downloader.
    @ivar announcer: the announcer of the phase, or C{None}.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        torrent,
        trackers: Iterable[Iterable[str]] = (),
        announcerFactory: Optional[Callable[[Any, Any], Any]] = None,
        onMetadata: Optional[Callable[[bytes], Any]] = None,
        features=None,
        maxMetadataSize: int = MAX_METADATA_SIZE,
    ) -> None:
        """
        @param torrent: the torrent, without metainfo (its C{infoHash},
            C{peerId}, C{reactor}, C{heartbeat}, C{port}, C{maxPeers},
            C{interface}, C{debug} and C{initialPeers} are read).
        @param trackers: the magnet's tracker tiers.
        @param announcerFactory: C{announcerFactory(target, trackers)}
            builds the announcer of the phase (C{None}: one of
            L{btorrent.tracker.announcer.makeAnnouncer}, or none without
            trackers).
        @param onMetadata: C{onMetadata(torrentBytes)} keeps the C{.torrent}
            built (it may return a L{Deferred}); C{None}: not kept.
        @param features: what our connections offer besides BEP 10 (the
            Fast extension...); our extensions are added.
        @param maxMetadataSize: the largest info dictionary we fetch.
        """
        super().__init__()
        self.torrent = torrent
        self.infoHash: bytes = torrent.infoHash
        self.peerId: bytes = torrent.peerId
        self.clock = torrent.reactor
        self.connector = torrent.reactor
        self.heartbeat = torrent.heartbeat
        self.trackers = tuple(tuple(tier) for tier in trackers)
        self.announcerFactory = announcerFactory or _defaultAnnouncer
        self.onMetadata = onMetadata
        self.features = extensionFeatures(features)
        self.logFields = torrent.logFields
        self.fetcher = MetadataFetcher(self.infoHash, maxSize=maxMetadataSize)
        self.server = MetadataServer()
        self.banned: Set[Any] = set()
        self.dialer = Dialer(
            self.clock,
            self._dial,
            maxPeers=torrent.maxPeers,
            listenPort=torrent.port,
            banned=self.banned,
        )
        self.pex = PeerExchange(
            self.heartbeat,
            lambda: self.peers,
            self._pexPeers,
            lambda: self.port,
            logFields=self.logFields,
        )
        self.peers: Dict[Any, _PhasePeer] = {}
        self.metainfo = None
        self.handedOver = False
        self.announcer = None
        self._fromPex: Set[Address] = set()
        self._nextDial = 0.0

    def _log(self, level: str, text: str, **fields) -> None:
        getattr(self.log, level)(text, **self.logFields, **fields)

    # IAnnounceTarget: what the announcer of the phase reports.

    @property
    def port(self) -> int:
        """
        Our listen port (the torrent's).
        """
        return self.torrent.port

    uploaded = 0
    downloaded = 0
    left = UNKNOWN_LEFT

    def addPeers(self, peers: Iterable[Address]) -> None:
        """
        Peers from a tracker, C{x.pe}, the DHT or the user: dial them.
        """
        peers = list(peers)
        self._fromPex.difference_update(peers)
        self.dialer.add(peers)
        self._connectMore()

    def _pexPeers(self, peers: List[Address]) -> None:
        """
        Peers learned from peer exchange.
        """
        known = set(self.dialer.candidates)
        self._fromPex.update(address for address in peers if address not in known)
        self.dialer.add(peers)
        self._connectMore()

    # Progress, for the RPC.

    @property
    def metadataPercentComplete(self) -> float:
        """
        The share of the metadata received, 0.0 to 1.0 (Transmission's
        C{metadataPercentComplete}).
        """
        if self.fetcher.done:
            return 1.0
        total = self.fetcher.pieceCount
        return self.fetcher.piecesReceived / total if total else 0.0

    # Service

    def startService(self) -> None:
        """
        Announce, dial the known peers, and look at the requests on every
        heartbeat.
        """
        super().startService()
        self.dialer.listenPort = self.port
        self.torrent.events.listen("stateChanged", self._stateChanged)
        self.heartbeat.subscribe(self, self.tick)
        self._nextDial = self.clock.seconds() + TICK
        self._log(
            "info",
            "{name}: fetching the metadata ({trackers} trackers, {peers} peers "
            "given)",
            trackers=sum(len(tier) for tier in self.trackers),
            peers=len(self.torrent.initialPeers),
        )
        self.announcer = self.announcerFactory(self, self.trackers)
        if self.announcer is not None:
            self.announcer.startService()
        self.addPeers(self.torrent.initialPeers)

    def stopService(self) -> defer.Deferred:
        """
        Stop announcing and dialling; close every connection not handed
        over.

        @return: a L{Deferred} firing once the trackers heard C{stopped}
            (bounded by the announcer's own timeout).
        """
        super().stopService()
        self._finish()
        self._closeAll("shutting down")
        announcer, self.announcer = self.announcer, None
        if announcer is not None and announcer.running:
            return defer.maybeDeferred(announcer.stopService)
        return defer.succeed(None)

    def _finish(self) -> None:
        """
        No more fetching, dialling or announcing.
        """
        self.torrent.events.unlisten("stateChanged", self._stateChanged)
        self.heartbeat.unsubscribe(self)
        self.pex.stop()

    def _closeAll(self, reason: str) -> None:
        """
        Abandon the dials under way and close every connection.
        """
        self._abandonDials()
        for peer in list(self.peers):
            peer.drop(reason)

    def _abandonDials(self) -> None:
        """
        Abandon the dials not yet past their handshake.
        """
        connected = self._connectedDials()
        for address, connector in list(self.dialer.connecting.items()):
            if address not in connected:
                del self.dialer.connecting[address]
                connector.disconnect()

    def _connectedDials(self) -> Set[Address]:
        """
        The addresses we dialled of the connected peers.
        """
        return {
            peer.factory.outgoingAddress
            for peer in self.peers
            if getattr(getattr(peer, "factory", None), "outgoingAddress", None)
        }

    def tick(self, now: float) -> None:
        """
        A heartbeat: free timed-out requests and send new ones; every
        L{TICK} seconds, dial more peers.
        """
        if self.metainfo is None:
            self.fetcher.expire(now)
            self._requestAll(now)
        if now >= self._nextDial:
            self._nextDial = now + TICK
            self._connectMore()

    # Dialling

    def _connectMore(self) -> None:
        if self.running and self.metainfo is None:
            connected = {peer.address for peer in self.peers}
            self.dialer.connectMore(connected, False)

    def _dial(self, address: Address, onEnd: Callable[[bool], None]):
        host, port = address
        context = PeerContext(self.infoHash, self.peerId, None, self, self.features)
        factory = _PhaseDial(
            context,
            self.clock,
            address,
            bool(self.torrent.debug),
            self.heartbeat,
            self._dialEnded,
        )
        mode = getattr(self.torrent, "encryption", encryption.DEFAULT)
        if mode == "required":
            # Encrypted only.  Otherwise the phase dials in plaintext (which
            # "preferred" allows): a failed MSE attempt would cost a whole
            # redial of a peer we only ask for the metadata.
            factory.mseProvide = encryption.outgoingProvide(mode)
            factory.mseRunInThread = self.torrent.runInThread
        kwargs = {}
        if self.torrent.interface:
            kwargs["bindAddress"] = (self.torrent.interface, 0)
        factory.connector = self.connector.connectTCP(
            host, port, factory, timeout=CONNECT_TIMEOUT, **kwargs
        )
        return factory.connector

    def _dialEnded(self, factory: _PhaseDial, connected: bool) -> None:
        handshaken = connected and bool(factory.handshaken)
        downloader = factory.adoptedBy
        if downloader is not None:
            downloader.dialer.ended(factory.outgoingAddress, handshaken)
            return
        if self.dialer.connecting.get(factory.outgoingAddress) is factory.connector:
            self.dialer.ended(factory.outgoingAddress, handshaken)
        self._connectMore()

    # The session routes incoming peers here.

    def peerContext(self) -> Optional[PeerContext]:
        """
        The context for an incoming connection of this torrent, or C{None}
        when the phase takes no more peers (stopped, or over).
        """
        if not self.running or self.handedOver:
            return None
        return PeerContext(self.infoHash, self.peerId, None, self, self.features)

    # IPeerOwner

    def peerConnected(self, peer) -> bool:
        """
        Take a peer unless the phase is over, we are full, it is us, a
        duplicate or banned; send it our extended handshake.
        """
        if not self.running or self.handedOver:
            return False
        if peer.peerId == self.peerId:
            return False
        if peer.peerId in self.banned or peer.address in self.banned:
            return False
        if len(self.peers) >= self.dialer.maxPeers:
            return False
        for other in self.peers:
            if other.peerId == peer.peerId or other.address == peer.address:
                return False
        factory = getattr(peer, "factory", None)
        outgoingAddress = getattr(factory, "outgoingAddress", None)
        if outgoingAddress is not None:
            factory.handshaken.append(True)
            self.dialer.handshaken(outgoingAddress)
        self.peers[peer] = _PhasePeer()
        if getattr(peer, "fast", False):
            peer.sendMessage(HaveNone())
        if peer.extended:
            peer.sendExtensionHandshake(
                handshakeFields(peer, self.port, self.server.metadataSize)
            )
        self.pex.peerConnected(peer)
        self._log(
            "debug",
            "peer {host}:{port} connected ({peers} peers, metadata)",
            host=peer.address[0],
            port=peer.address[1],
            peers=len(self.peers),
        )
        return True

    def peerLost(self, peer, reason) -> None:
        """
        Forget a peer: its metadata requests go to others.
        """
        if self.peers.pop(peer, None) is None:
            return
        self.fetcher.removePeer(peer)
        self.server.removePeer(peer)
        self.pex.peerLost(peer)
        self.dialer.peerLeft(peer.address, False)
        self._log(
            "debug",
            "peer {host}:{port} gone ({peers} peers, metadata): {reason}",
            host=peer.address[0],
            port=peer.address[1],
            peers=len(self.peers),
            reason=reason.getErrorMessage() if reason is not None else "",
        )
        if self.running and self.metainfo is None:
            self._requestAll(self.clock.seconds())
            self._connectMore()

    def _handedTo(self, peer):
        """
        The owner a peer not ours was handed over to while the protocol was
        delivering a read (what is left of it goes there), or C{None}.
        """
        owner = getattr(getattr(peer, "context", None), "owner", None)
        if self.handedOver and owner is not None and owner is not self:
            return owner
        return None

    def peerBlocks(self, peer, blocks) -> None:
        """
        Blocks before the metadata are none we asked for: ignored, but for
        a peer handed over to the downloader in the middle of a read.
        """
        if peer not in self.peers:
            owner = self._handedTo(peer)
            if owner is not None:
                owner.peerBlocks(peer, blocks)

    def peerMessage(self, peer, message) -> None:
        """
        Act on the extension messages; everything else waits for the
        downloader (the connection keeps the peer's pieces and flags).
        """
        if peer not in self.peers:
            owner = self._handedTo(peer)
            if owner is not None:
                owner.peerMessage(peer, message)
            return
        kind = type(message)
        if kind is ExtensionMessage:
            if message.name == UT_METADATA:
                self._metadataMessage(peer, message.payload)
            elif message.name == UT_PEX:
                self.pex.messageReceived(peer, message.payload)
        elif kind is ExtensionHandshake:
            self._handshakeReceived(peer, message.fields)

    def _handshakeReceived(self, peer, fields) -> None:
        self.pex.handshakeReceived(peer, fields)
        if self.metainfo is not None:
            return
        if UT_METADATA not in peer.peerExtensions:
            self.fetcher.removePeer(peer)
            return
        size = handshakeInt(fields, "metadata_size")
        self.peers[peer].metadataSize = size
        if self.fetcher.addPeer(peer, size):
            self._request(peer, self.clock.seconds())
        elif size is not None and size > self.fetcher.maxSize:
            self._log(
                "info",
                "{host}:{port} offers metadata of {size} bytes, above our "
                "limit of {limit}: not asked",
                host=peer.address[0],
                port=peer.address[1],
                size=size,
                limit=self.fetcher.maxSize,
            )

    def _metadataMessage(self, peer, payload: bytes) -> None:
        try:
            message = handleMetadataRequest(self.server, peer, payload)
        except MetadataMessageError as e:
            self._drop(peer, str(e))
            return
        if self.metainfo is not None:
            return
        now = self.clock.seconds()
        kind = type(message)
        if kind is MetadataData:
            bad = self.fetcher.gotData(peer, message, now)
            for liar in bad:
                self._ban(liar)
            if self.fetcher.done:
                self._metadataComplete()
                return
            self._requestAll(now)
        elif kind is MetadataReject:
            self.fetcher.gotReject(peer, message.piece, now)
            self._requestAll(now)

    def _drop(self, peer, reason: str) -> None:
        self._log(
            "info",
            "dropping {host}:{port}: {reason}",
            host=peer.address[0],
            port=peer.address[1],
            reason=reason,
        )
        peer.drop(reason)

    def _ban(self, peer) -> None:
        """
        C{peer} sent metadata that failed the check: drop it, never again.
        """
        self.banned.add(peer.peerId)
        self.banned.add(peer.address)
        factory = getattr(peer, "factory", None)
        outgoingAddress = getattr(factory, "outgoingAddress", None)
        if outgoingAddress is not None:
            self.banned.add(outgoingAddress)
            self.dialer.forget(outgoingAddress)
        self._drop(peer, "sent metadata that does not match the info-hash")

    # Requests

    def _request(self, peer, now: float) -> None:
        for piece in self.fetcher.requests(peer, now):
            peer.sendExtended(
                UT_METADATA, encodeMetadataMessage(MetadataRequest(piece))
            )

    def _requestAll(self, now: float) -> None:
        for peer, piece in self.fetcher.schedule(now):
            peer.sendExtended(
                UT_METADATA, encodeMetadataMessage(MetadataRequest(piece))
            )

    # The end of the phase

    def _metadataComplete(self) -> None:
        """
        The info dictionary passed its check: build the torrent, keep it,
        and let the torrent go on.
        """
        infoBytes = self.fetcher.infoBytes
        try:
            info, torrentBytes = metainfoFromMetadata(
                infoBytes, self.trackers, self.infoHash
            )
        except (metainfoCodec.MetainfoError, MagnetError) as e:
            self._log("error", "{name}: the metadata is not a usable torrent: {e}", e=e)
            self._finish()
            self.torrent.fail(f"invalid metadata: {e}")
            return
        self.metainfo = info
        self.server.setMetadata(infoBytes)
        self._log(
            "info",
            "{name}: metadata received ({size} bytes): {files} files, " "{total} bytes",
            size=len(infoBytes),
            files=len(info.files),
            total=info.totalLength,
        )
        self._keep(torrentBytes)
        announcer, self.announcer = self.announcer, None
        if announcer is not None:
            abandon = getattr(announcer, "abandon", None)
            if abandon is not None:
                abandon()
            else:
                announcer.stopService()
        self._abandonDials()
        if info.private:
            self.pex.stop()
            for peer in list(self.peers):
                if peer.address in self._fromPex:
                    peer.drop("private torrent: a peer learned from peer exchange")
        candidates = [
            address
            for address in self.dialer.candidates
            if not (info.private and address in self._fromPex)
        ]
        initial = self.torrent.initialPeers
        initial[:] = [a for a in initial if a not in self.banned] + candidates
        self.torrent.setMetainfo(info)

    def _keep(self, torrentBytes: bytes) -> None:
        if self.onMetadata is None:
            return
        try:
            d = defer.maybeDeferred(self.onMetadata, torrentBytes)
        except Exception:  # pragma: no cover: maybeDeferred catches
            d = defer.fail()
        d.addErrback(
            lambda f: self._log("failure", "{name}: cannot keep the torrent", failure=f)
        )

    def _stateChanged(self, old: int, new: int) -> None:
        if self.metainfo is None or self.handedOver:
            return
        downloader = self.torrent.downloader
        if new in (DOWNLOADING, SEEDING) and downloader is not None:
            if downloader.running:
                self._handOver(downloader)
        elif new in (DOWNLOAD_WAIT, SEED_WAIT, STOPPED):
            self._finish()
            self.handedOver = True
            self._closeAll("the torrent is queued")

    def _handOver(self, downloader) -> None:
        """
        Give every live connection to the downloader.
        """
        pexStates = {peer: self.pex.release(peer) for peer in self.peers}
        self._finish()
        self.handedOver = True
        # Who sent bad metadata is not welcome to send data either.
        downloader.smartBan.banned.update(self.banned)
        downloaderPex = downloader.extensions.get(UT_PEX)
        count = 0
        for peer in list(self.peers):
            del self.peers[peer]
            state = pexStates[peer]
            if peer.connection.closed:
                continue  # dropped, its connectionLost on its way
            if self._adopt(peer, downloader):
                count += 1
                if isinstance(downloaderPex, PeerExchange):
                    downloaderPex.adopt(peer, state)
        self.dialer.connecting.clear()
        self._log("info", "{name}: {count} peers handed to the download", count=count)

    def _adopt(self, peer, downloader) -> bool:
        """
        Make C{peer} one of C{downloader}'s.

        @return: whether the downloader took it (else it is closed).
        """
        pieceCount = self.metainfo.pieceCount
        for event in peer.connection.setPieceCount(pieceCount):
            if type(event) is Violation:
                self._drop(peer, event.reason)
                return False
        peer.context = replace(peer.context, pieceCount=pieceCount, owner=downloader)
        factory = getattr(peer, "factory", None)
        address = getattr(factory, "outgoingAddress", None)
        if address is not None and isinstance(factory, _PhaseDial):
            factory.adoptedBy = downloader
            downloader.dialer.connecting[address] = factory.connector
        if downloader.peerConnected(peer, adopted=True):
            return True
        if address is not None:
            downloader.dialer.connecting.pop(address, None)
            factory.adoptedBy = None
        peer.drop("refused by the torrent")
        return False


def _defaultAnnouncer(target: MetadataPhase, trackers):
    """
    The announcer over the magnet's trackers, or C{None} without any.
    """
    if not any(trackers):
        return None
    from btorrent.tracker.announcer import makeAnnouncer

    return makeAnnouncer(target, trackers, target.clock)
