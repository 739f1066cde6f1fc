"""
Peer exchange (BEP 11, C{ut_pex}) for one torrent's peers.

L{PeerExchange} is the C{ut_pex} handler of a torrent's peer owner (its
L{btorrent.engine.downloader.Downloader}, or a magnet link's
L{btorrent.engine.metadata.MetadataPhase}).  Per peer that offers
C{ut_pex} it keeps a L{PexSender} and a L{PexReceiver}
(L{btorrent.peer.utpex}):

  - Sending, on the torrent's heartbeat: the peers we are connected to,
    under the address others can reach (the one we dialled, or the C{p}
    of an incoming peer's extended handshake; an incoming peer whose port
    we do not know is left out, as libtorrent leaves it out), never the
    receiver itself; everything in the first message, then what changed,
    at most 50 added and 50 dropped, at most once a minute, nothing when
    nothing changed.  Flags: seed (its pieces are complete, or its
    handshake says C{upload_only}), reachable (we dialled it), prefers
    encryption (its C{e}).
  - Receiving: the peers learned go to C{addPeers} (the dialer's
    candidates; itself it filters ourselves, banned peers and repeats);
    a peer that floods (a 7th message within 60 s), or sends a message we
    cannot read, is dropped, as libtorrent drops it.  At most
    L{btorrent.peer.utpex.MAX_LEARNED} peers are taken from one source.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from twisted.logger import Logger
from zope.interface import implementer

from btorrent.engine.extensions import handshakeInt, listenAddress
from btorrent.interfaces import IPeerExtension
from btorrent.peer.extended import UT_PEX
from btorrent.peer.utpex import (
    PEX_INTERVAL,
    PexError,
    PexReceiver,
    PexSender,
    encodePex,
    pexFlags,
)
from btorrent.util import logs

__all__ = ["PexPeer", "PeerExchange", "RECHECK"]

#: Seconds before we look again at a peer we had nothing to tell.
RECHECK = 5.0

Address = Tuple[str, int]


class PexPeer:
    """
    What peer exchange keeps about one connected peer.

    @ivar sender: what we told it (a L{PexSender}).
    @ivar receiver: what it told us (a L{PexReceiver}).
    @ivar fields: its extended handshake, or C{None}.
    @ivar due: when we next look at whether to send it a message.
    """

    __slots__ = ("sender", "receiver", "fields", "due")

    def __init__(self, peer, now: float, interval: float, ownAddress) -> None:
        address = getattr(peer, "address", None)
        self.sender = PexSender([address] if address else (), interval=interval)
        self.receiver = PexReceiver(
            source=address, ownAddresses=[ownAddress] if ownAddress else ()
        )
        self.fields: Optional[Mapping[str, Any]] = None
        self.due = now


@implementer(IPeerExtension)
class PeerExchange:
    """
    Peer exchange for the peers of one torrent.

    @ivar states: C{peer -> PexPeer} for every connected peer.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        heartbeat,
        peers: Callable[[], Iterable[Any]],
        addPeers: Callable[[List[Address]], None],
        listenPort: Callable[[], int],
        interval: float = PEX_INTERVAL,
        logFields: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """
        @param heartbeat: the session's L{btorrent.util.heartbeat.Heartbeat}
            (subscribed while peers are connected).
        @param peers: gives the connected peers (C{PeerProtocol}s).
        @param addPeers: takes a list of C{(host, port)} learned.
        @param listenPort: gives our listen port.
        @param interval: seconds between two messages to one peer.
        @param logFields: fields every log line carries (the torrent's).
        """
        self.heartbeat = heartbeat
        self.clock = heartbeat.clock
        self.peers = peers
        self.addPeers = addPeers
        self.listenPort = listenPort
        self.interval = interval
        self.logFields: Dict[str, Any] = dict(logFields or {})
        self.states: Dict[Any, PexPeer] = {}
        self.learned = 0
        self.sent = 0

    def _ownAddress(self, host: str) -> Optional[Address]:
        port = self.listenPort()
        return (host, port) if 0 < port < 65536 else None

    def _localAddress(self, peer) -> Optional[Address]:
        """
        Our listen address on the interface C{peer} reached us through.
        """
        try:
            host = peer.transport.getHost().host
        except AttributeError:
            return None
        return self._ownAddress(host) if isinstance(host, str) else None

    # IPeerExtension

    def peerConnected(self, peer) -> None:
        """
        Start keeping C{peer}'s PEX state; it gets its first message once
        its extended handshake gave us its C{ut_pex} id and we know another
        peer.
        """
        if peer in self.states:
            return
        self.states[peer] = PexPeer(
            peer, self.clock.seconds(), self.interval, self._localAddress(peer)
        )
        if len(self.states) == 1:
            self.heartbeat.subscribe(self, self.tick)

    def handshakeReceived(self, peer, fields: Mapping[str, Any]) -> None:
        """
        Learn the peer's listen port (never listed to it), its flags, and
        our address as it sees us (never learned from anyone).
        """
        state = self.states.get(peer)
        if state is None:
            return
        state.fields = fields
        own = listenAddress(peer, fields)
        if own is not None:
            state.sender.excludeAddress(own)
        yourip = fields.get("yourip")
        if isinstance(yourip, bytes) and len(yourip) in (4, 16):
            address = self._ownAddress(str(ipaddress.ip_address(yourip)))
            if address is not None:
                state.receiver.addOwnAddress(address)

    def messageReceived(self, peer, payload: bytes) -> None:
        """
        Take the peers C{peer} tells us about; drop it if it floods or
        sends garbage.
        """
        state = self.states.get(peer)
        if state is None:
            return
        try:
            message = state.receiver.receive(payload, self.clock.seconds())
        except PexError as e:
            self.log.info(
                "dropping {host}:{port}: {reason}",
                host=peer.address[0],
                port=peer.address[1],
                reason=str(e),
                **self.logFields,
            )
            peer.drop(str(e))
            return
        if message.added:
            addresses = [address for address, _ in message.added]
            self.learned += len(addresses)
            self.log.debug(
                "{host}:{port} told us of {count} peers",
                host=peer.address[0],
                port=peer.address[1],
                count=len(addresses),
                **self.logFields,
            )
            self.addPeers(addresses)

    def peerLost(self, peer) -> None:
        """
        Forget C{peer}.
        """
        if self.states.pop(peer, None) is not None and not self.states:
            self.heartbeat.unsubscribe(self)

    # Handing a peer over (a magnet link's metadata phase ends)

    def release(self, peer) -> Optional[PexPeer]:
        """
        Forget C{peer} and return its state, for another L{PeerExchange}'s
        L{adopt}.
        """
        state = self.states.get(peer)
        self.peerLost(peer)
        return state

    def adopt(self, peer, state: Optional[PexPeer]) -> None:
        """
        Keep C{state} (from another L{PeerExchange}'s L{release}) for
        C{peer}: what it was told and what it told us carry on, so the
        one-minute spacing and the flood count hold across the move.
        """
        if state is None:
            return
        self.states[peer] = state
        if len(self.states) == 1:
            self.heartbeat.subscribe(self, self.tick)

    def stop(self) -> None:
        """
        Forget every peer and stop the timer.
        """
        self.states.clear()
        self.heartbeat.unsubscribe(self)

    # Sending

    def _connected(self) -> Dict[Address, int]:
        """
        The peers to list: listen address to flags.
        """
        out: Dict[Address, int] = {}
        for peer in self.peers():
            state = self.states.get(peer)
            fields = state.fields if state is not None else None
            address = listenAddress(peer, fields)
            if address is None:
                continue
            pieces = getattr(peer, "peerPieces", None)
            seed = bool(pieces is not None and len(pieces) and pieces.complete)
            fields = fields or {}
            if handshakeInt(fields, "upload_only"):
                seed = True
            out[address] = pexFlags(
                seed=seed,
                encryption=bool(handshakeInt(fields, "e")),
                outgoing=bool(getattr(peer, "outgoing", False)),
            )
        return out

    def tick(self, now: float) -> None:
        """
        A heartbeat: send each peer that is due what changed.
        """
        due = [
            (peer, state)
            for peer, state in self.states.items()
            if state.due <= now and UT_PEX in getattr(peer, "peerExtensions", {})
        ]
        if not due:
            return
        connected = self._connected()
        for peer, state in due:
            message = state.sender.nextMessage(connected, now)
            if message is None:
                state.due = now + RECHECK
                continue
            state.due = now + self.interval
            if peer.sendExtended(UT_PEX, encodePex(message)):
                self.sent += 1
