"""
Peer exchange (BEP 11, C{ut_pex}): the message codec, what one connection
sends, and what it accepts.

A PEX payload is a bencoded dictionary of compact peer lists: C{added} and
C{dropped} (6 bytes per IPv4 peer: address and port), C{added6} and
C{dropped6} (18 bytes per IPv6 peer), with C{added.f} and C{added6.f}
giving one byte of flags per added peer (L{PEX_ENCRYPTION}, L{PEX_SEED},
L{PEX_UTP}, L{PEX_HOLEPUNCH}, L{PEX_OUTGOING}).

Decoding (L{decodePex}) is tolerant of what does not matter and strict about
what does: a payload that is not one bencoded dictionary, or is larger than
L{MAX_PEX_SIZE}, raises L{PexError}; a list of the wrong type, or whose
length is not a multiple of its entry size, is ignored as a whole (a
misaligned list has no trustworthy entry); flags of the wrong length are
ignored (the peers are kept, with flags 0: libtorrent would drop them, BEP
11 makes the flags optional).  At most L{MAX_PEX_ENTRIES} added and as many
dropped peers are read from one message: BEP 11 allows 50 of each after the
first message, libtorrent's first message carries up to 100; 200 leaves
room for any honest client and bounds the work one message can cause.
Addresses are text in normal form; an IPv4-mapped IPv6 address is given in
its IPv4 form, so that one peer has one name.

L{PexSender} is one connection's outgoing state: given the peers we are
connected to, it makes the next message (everything in the first one, then
what was added or dropped since, at most 50 of each, never the receiver
itself, at most once a minute, and nothing when nothing changed: uTorrent
drops a peer that sends an empty PEX message).

L{PexReceiver} is one connection's incoming state: it drops a peer that
sends more than L{FLOOD_MESSAGES} messages within L{FLOOD_WINDOW} seconds
(libtorrent drops on the 7th within 60 s), filters our own address (in both
its IPv4 and IPv4-mapped IPv6 forms), refuses loopback and private
addresses from a peer that is neither, and applies BEP 11's advice to
ignore a second port of an address already heard from this peer, except on
loopback, where every peer of a test swarm shares 127.0.0.1.

This module is pure: it never imports C{twisted.internet}.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from btorrent.codec import bencode

__all__ = [
    "FLOOD_MESSAGES",
    "FLOOD_WINDOW",
    "MAX_DIFF_ENTRIES",
    "MAX_FIRST_ENTRIES",
    "MAX_LEARNED",
    "MAX_PEX_ENTRIES",
    "MAX_PEX_SIZE",
    "PEX_ENCRYPTION",
    "PEX_HOLEPUNCH",
    "PEX_INTERVAL",
    "PEX_OUTGOING",
    "PEX_SEED",
    "PEX_UTP",
    "PexError",
    "PexFlood",
    "PexMessage",
    "PexReceiver",
    "PexSender",
    "decodePex",
    "encodePex",
    "normaliseAddress",
    "pexFlags",
]

#: Flags of an added peer (BEP 11).
PEX_ENCRYPTION = 0x01  # prefers encryption (its handshake's "e")
PEX_SEED = 0x02  # seed or upload-only
PEX_UTP = 0x04  # supports uTP
PEX_HOLEPUNCH = 0x08  # supports ut_holepunch
PEX_OUTGOING = 0x10  # we connected to it: it is reachable

#: The largest PEX payload we read.  200 IPv6 peers with flags, added and
#: dropped, take under 8 KiB; libtorrent's own limit is 500 KiB.
MAX_PEX_SIZE = 64 * 1024
#: Added (and, separately, dropped) peers read from one message.
MAX_PEX_ENTRIES = 200
#: Added (or dropped) peers we put in a message after the first (BEP 11).
MAX_DIFF_ENTRIES = 50
#: Peers we put in the first message (libtorrent's number).
MAX_FIRST_ENTRIES = 100
#: Seconds between two messages we send (BEP 11: at most one a minute).
PEX_INTERVAL = 60.0
#: A peer sending more than this many messages within L{FLOOD_WINDOW}
#: seconds is dropped (libtorrent's numbers).
FLOOD_MESSAGES = 6
FLOOD_WINDOW = 60.0
#: Peers we keep learned from one source (libtorrent's C{max_pex_peers}):
#: BEP 11 warns against taking every candidate from one PEX source.
MAX_LEARNED = 200

Address = Tuple[str, int]

_V4 = struct.Struct(">4sH")
_V6 = struct.Struct(">16sH")


class PexError(ValueError):
    """
    A PEX message we cannot read (the peer should be dropped).
    """


class PexFlood(PexError):
    """
    The peer sends PEX messages too often (it should be dropped).
    """


@dataclass(frozen=True)
class PexMessage:
    """
    One PEX message, IPv4 and IPv6 peers together.

    @ivar added: C{((host, port), flags)} for each added peer.
    @ivar dropped: C{(host, port)} for each dropped peer.
    """

    added: Tuple[Tuple[Address, int], ...] = ()
    dropped: Tuple[Address, ...] = ()


def pexFlags(
    seed: bool = False,
    encryption: bool = False,
    utp: bool = False,
    holepunch: bool = False,
    outgoing: bool = False,
) -> int:
    """
    The flags byte of an added peer.
    """
    return (
        (PEX_SEED if seed else 0)
        | (PEX_ENCRYPTION if encryption else 0)
        | (PEX_UTP if utp else 0)
        | (PEX_HOLEPUNCH if holepunch else 0)
        | (PEX_OUTGOING if outgoing else 0)
    )


def _ip(host: str):
    """
    C{host} as an address object, an IPv4-mapped IPv6 address as its IPv4
    address.

    @raise ValueError: if it is not an IP address.
    """
    address = ipaddress.ip_address(host)
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normaliseAddress(address: Address) -> Address:
    """
    C{(host, port)} with C{host} in normal text form, an IPv4-mapped IPv6
    address written as IPv4: the form every address in this module takes.

    @raise ValueError: if C{host} is not an IP address.
    """
    host, port = address
    return str(_ip(host)), port


def _pack(peers: Iterable[Address]) -> Tuple[bytes, bytes]:
    """
    Compact IPv4 and IPv6 lists of C{peers}.
    """
    v4 = bytearray()
    v6 = bytearray()
    for host, port in peers:
        if not 0 <= port < 65536:
            raise ValueError(f"port must be 0 to 65535, not {port}")
        address = _ip(host)
        if address.version == 4:
            v4 += _V4.pack(address.packed, port)
        else:
            v6 += _V6.pack(address.packed, port)
    return bytes(v4), bytes(v6)


def encodePex(message: PexMessage) -> bytes:
    """
    The PEX payload of C{message}: C{added}, C{added.f} and C{dropped} are
    always written (libtorrent ignores C{added} without C{added.f}), the
    IPv6 lists when not empty.

    @raise ValueError: for a host that is not an IP address or a bad port.
    """
    v4 = [peer for peer, _ in message.added if _ip(peer[0]).version == 4]
    v6 = [peer for peer, _ in message.added if _ip(peer[0]).version == 6]
    flags4 = bytes(f & 0xFF for peer, f in message.added if _ip(peer[0]).version == 4)
    flags6 = bytes(f & 0xFF for peer, f in message.added if _ip(peer[0]).version == 6)
    added4, _ = _pack(v4)
    _, added6 = _pack(v6)
    dropped4, dropped6 = _pack(message.dropped)
    out = {b"added": added4, b"added.f": flags4, b"dropped": dropped4}
    if added6:
        out[b"added6"] = added6
        out[b"added6.f"] = flags6
    if dropped6:
        out[b"dropped6"] = dropped6
    return bencode.encode(out)


def _unpack(raw: object, entry: struct.Struct, limit: int) -> List[Address]:
    """
    The peers of one compact list (at most C{limit}); none if C{raw} is not
    a string or its length not a multiple of the entry size.
    """
    if not isinstance(raw, bytes) or len(raw) % entry.size:
        return []
    out = []
    for offset in range(0, min(len(raw), limit * entry.size), entry.size):
        packed, port = entry.unpack_from(raw, offset)
        address = ipaddress.ip_address(packed)
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        out.append((str(address), port))
    return out


def _flagsFor(raw: object, count: int) -> bytes:
    if isinstance(raw, bytes) and len(raw) == count:
        return raw
    return bytes(count)


def decodePex(payload: bytes) -> PexMessage:
    """
    Read a PEX payload (after the extended id byte); see the module's
    docstring for what is tolerated.

    @raise PexError: if the payload is larger than L{MAX_PEX_SIZE} or does
        not start with a bencoded dictionary; never anything else.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise PexError(f"expected bytes, not {type(payload).__name__}")
    if len(payload) > MAX_PEX_SIZE:
        raise PexError(
            f"PEX message too large: {len(payload)} bytes (at most {MAX_PEX_SIZE})"
        )
    try:
        top, _, _ = bencode.decodePrefixWithSpans(bytes(payload))
    except bencode.BencodeError as e:
        raise PexError(f"PEX message is not bencoded: {e}") from None
    if not isinstance(top, dict):
        raise PexError("PEX message is not a dictionary")
    rawAdded4 = top.get(b"added")
    rawAdded6 = top.get(b"added6")
    added4 = _unpack(rawAdded4, _V4, MAX_PEX_ENTRIES)
    added6 = _unpack(rawAdded6, _V6, MAX_PEX_ENTRIES - len(added4))
    # The flags go with the whole list as sent, before our cap.
    count4 = len(rawAdded4) // _V4.size if added4 else 0
    count6 = len(rawAdded6) // _V6.size if added6 else 0
    flags4 = _flagsFor(top.get(b"added.f"), count4)
    flags6 = _flagsFor(top.get(b"added6.f"), count6)
    added = [(peer, flags4[i]) for i, peer in enumerate(added4)]
    added += [(peer, flags6[i]) for i, peer in enumerate(added6)]
    dropped = _unpack(top.get(b"dropped"), _V4, MAX_PEX_ENTRIES)
    dropped += _unpack(top.get(b"dropped6"), _V6, MAX_PEX_ENTRIES - len(dropped))
    return PexMessage(added=tuple(added), dropped=tuple(dropped))


def _isLoopback(host: str) -> bool:
    try:
        return _ip(host).is_loopback
    except ValueError:
        return False


def _isLocal(address) -> bool:
    """
    Loopback, private or link-local (libtorrent's C{is_local}).
    """
    return address.is_loopback or address.is_private or address.is_link_local


class PexSender:
    """
    What we tell one peer about the others, BEP 11's way.

    Call L{nextMessage} on a timer (every few seconds is fine) with the
    peers we are connected to; send what it returns (if anything) with
    L{encodePex}.

    The caller gives only peers whose connection is established (BEP 11),
    under the address others can reach: the remote address of a connection
    we made, the listen port from the extended handshake (C{p}) for one
    made to us (libtorrent leaves out incoming peers whose port it does not
    know).
    """

    def __init__(
        self, receiver: Iterable[Address] = (), interval: float = PEX_INTERVAL
    ):
        """
        @param receiver: the addresses of the peer we send to (its remote
            address and, once known, its listen address): it is never listed
            to itself.
        @param interval: seconds between two messages.
        """
        self.interval = interval
        self._receiver: Set[Address] = set()
        for address in receiver:
            self.excludeAddress(address)
        self._announced: Dict[Address, int] = {}
        self._lastSent: Optional[float] = None

    def excludeAddress(self, address: Address) -> None:
        """
        Another address of the receiver (its listen port, say, once its
        extended handshake arrives): never list it.
        """
        try:
            self._receiver.add(normaliseAddress(address))
        except ValueError:
            pass

    def nextMessage(
        self, peers: Mapping[Address, int], now: float
    ) -> Optional[PexMessage]:
        """
        The message to send now, or C{None}: if one was sent less than
        C{interval} seconds ago, or nothing changed since the last one.

        The first message lists up to L{MAX_FIRST_ENTRIES} peers; later ones
        list up to L{MAX_DIFF_ENTRIES} peers added and as many dropped since
        what this receiver was told (what does not fit waits for the next).

        @param peers: the peers we are connected to now, C{(host, port)} to
            flags (L{pexFlags}); hosts must be IP addresses (others are
            skipped), in any form.
        """
        if self._lastSent is not None and now - self._lastSent < self.interval:
            return None
        current: Dict[Address, int] = {}
        for address, flags in peers.items():
            try:
                address = normaliseAddress(address)
            except ValueError:
                continue
            if address not in self._receiver and 0 < address[1] < 65536:
                current[address] = flags
        first = self._lastSent is None
        limit = MAX_FIRST_ENTRIES if first else MAX_DIFF_ENTRIES
        added = [(a, f) for a, f in current.items() if a not in self._announced]
        dropped = [a for a in self._announced if a not in current]
        added = added[:limit]
        dropped = dropped[:MAX_DIFF_ENTRIES]
        if not added and not dropped:
            return None
        for address, flags in added:
            self._announced[address] = flags
        for address in dropped:
            del self._announced[address]
        self._lastSent = now
        return PexMessage(added=tuple(added), dropped=tuple(dropped))


class PexReceiver:
    """
    What we take from one peer's PEX messages.

    @ivar learned: the peers this source told us about and has not dropped
        (at most L{MAX_LEARNED}), address to flags.
    """

    def __init__(
        self,
        source: Optional[Address] = None,
        ownAddresses: Iterable[Address] = (),
        maxMessages: int = FLOOD_MESSAGES,
        window: float = FLOOD_WINDOW,
    ) -> None:
        """
        @param source: the address of the peer sending (to judge whether
            it may tell us about loopback and private addresses).
        @param ownAddresses: our own listen addresses: never learned.
        @param maxMessages: messages allowed within C{window} seconds.
        """
        self.maxMessages = maxMessages
        self.window = window
        self._own: Set[Address] = set()
        for address in ownAddresses:
            self.addOwnAddress(address)
        self._sourceLocal = True
        if source is not None:
            try:
                self._sourceLocal = _isLocal(_ip(source[0]))
            except ValueError:
                self._sourceLocal = False
        self._times: Deque[float] = deque()
        self.learned: Dict[Address, int] = {}

    def addOwnAddress(self, address: Address) -> None:
        """
        One more address of ours (an external address learned from
        C{yourip}, say, with our listen port).
        """
        try:
            self._own.add(normaliseAddress(address))
        except ValueError:
            pass

    def receive(self, payload: bytes, now: float) -> PexMessage:
        """
        Read one PEX payload from this peer.

        @return: the peers newly learned (C{added}: not ourselves, not
            already learned from this peer, usable addresses, not over
            L{MAX_LEARNED}) and those it dropped that we had learned from
            it (C{dropped}).
        @raise PexFlood: if this is message number C{maxMessages + 1} within
            C{window} seconds.
        @raise PexError: if the payload cannot be read (L{decodePex}).
        """
        times = self._times
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.maxMessages:
            raise PexFlood(
                f"more than {self.maxMessages} PEX messages within {self.window:g} s"
            )
        times.append(now)
        message = decodePex(payload)
        dropped = []
        for address in message.dropped:
            if self.learned.pop(address, None) is not None:
                dropped.append(address)
        added = []
        hosts = {host for host, _ in self.learned}
        for address, flags in message.added:
            if not self._acceptable(address) or address in self.learned:
                continue
            host = address[0]
            if host in hosts and not _isLoopback(host):
                # BEP 11: a second port of one address is not another peer
                # (but every loopback peer shares 127.0.0.1).
                continue
            if len(self.learned) >= MAX_LEARNED:
                break
            self.learned[address] = flags
            hosts.add(host)
            added.append((address, flags))
        return PexMessage(added=tuple(added), dropped=tuple(dropped))

    def _acceptable(self, address: Address) -> bool:
        host, port = address
        if port == 0 or address in self._own:
            return False
        ip = _ip(host)
        if (
            ip.is_unspecified
            or ip.is_multicast
            or ip == ipaddress.IPv4Address("255.255.255.255")
        ):
            return False
        # Nobody outside our network has a reason to send us to a local
        # address (libtorrent ignores them too): it would make us knock on
        # our own network's doors.
        return self._sourceLocal or not _isLocal(ip)
