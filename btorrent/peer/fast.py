"""
The Fast extension (BEP 6): the allowed-fast set, the pieces a peer may
request from us even while choked.

The set depends only on the peer's address (its /24 for IPv4, so that
peers behind one NAT cannot collect several sets), the torrent and its piece
count, so a peer that reconnects gets the same pieces again.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import List, Union

__all__ = ["ALLOWED_FAST_SIZE", "allowedFastSet"]

#: The set size BEP 6 suggests (and libtorrent's default).
ALLOWED_FAST_SIZE = 10


def _addressBytes(ip: Union[str, bytes]) -> bytes:
    """
    The masked address that seeds the hash chain: an IPv4 address with its
    last byte zeroed (BEP 6); an IPv4-mapped IPv6 address likewise.  BEP 6
    says nothing of IPv6: we keep its /48 (the usual site prefix), 16 bytes.
    """
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    packed = address.packed
    if len(packed) == 4:
        return packed[:3] + b"\x00"
    return packed[:6] + bytes(10)


def allowedFastSet(
    k: int, ip: Union[str, bytes], infoHash: bytes, pieceCount: int
) -> List[int]:
    """
    The allowed-fast set of BEP 6, in the order the algorithm yields it.

    C{x = (ip & 0xFFFFFF00) + infoHash}; repeat C{x = SHA1(x)} and take
    each of its five 4-byte big-endian words modulo C{pieceCount}, skipping
    pieces already chosen, until C{k} pieces are chosen.

    @param k: how many pieces; when C{k >= pieceCount} every piece is
        allowed (the BEP's loop would never end).
    @param ip: the peer's address, text (C{"80.4.4.200"}) or packed.
    @param infoHash: the torrent's 20-byte info-hash.
    @param pieceCount: the torrent's number of pieces.
    @return: C{k} distinct piece indexes (fewer only if the torrent has
        fewer pieces).
    """
    if len(infoHash) != 20:
        raise ValueError("an info-hash has 20 bytes")
    if k <= 0 or pieceCount <= 0:
        return []
    if k >= pieceCount:
        return list(range(pieceCount))
    x = _addressBytes(ip) + infoHash
    chosen: List[int] = []
    seen = set()
    while len(chosen) < k:
        x = hashlib.sha1(x).digest()
        for i in range(0, 20, 4):
            index = int.from_bytes(x[i : i + 4], "big") % pieceCount
            if index not in seen:
                seen.add(index)
                chosen.append(index)
                if len(chosen) == k:
                    break
    return chosen
