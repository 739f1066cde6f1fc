"""
The encryption policy of a session's peer connections, with Transmission's
three settings (C{"encryption"} in its C{settings.json} and RPC):

  - C{tolerated}: dial in plaintext; accept incoming connections plain or
    through MSE (within MSE, plaintext is chosen when the peer offers it).
  - C{preferred} (the default): dial through MSE offering RC4 only; if the
    MSE handshake fails (a peer that knows no MSE closes the connection
    on its first bytes), dial again once in plaintext; accept both kinds
    of incoming connections (within MSE, RC4 is chosen when offered).
  - C{required}: dial through MSE offering RC4 only, never plaintext;
    refuse incoming plain BitTorrent handshakes, and MSE without RC4.

The wrappers are L{btorrent.peer.msetransport}'s; this module only says
which, with which options.
"""

from __future__ import annotations

from typing import Callable, Optional

from btorrent.peer.mse import CRYPTO_RC4
from btorrent.peer.msetransport import MSEIncomingProtocol, MSEOutgoingProtocol

__all__ = [
    "DEFAULT",
    "MODES",
    "PREFERRED",
    "REQUIRED",
    "TOLERATED",
    "checkMode",
    "fallsBackToPlaintext",
    "outgoingProvide",
    "wrapIncoming",
    "wrapOutgoing",
]

TOLERATED = "tolerated"
PREFERRED = "preferred"
REQUIRED = "required"

#: The settings, in Transmission's order (its numbers 0, 1, 2).
MODES = (TOLERATED, PREFERRED, REQUIRED)

DEFAULT = PREFERRED


def checkMode(mode: str) -> str:
    """
    @return: C{mode}, if it is one of L{MODES}.
    @raise ValueError: naming the allowed values.
    """
    if mode not in MODES:
        raise ValueError(
            f"encryption must be tolerated, preferred or required, not {mode!r}"
        )
    return mode


def outgoingProvide(mode: str) -> Optional[int]:
    """
    The MSE methods to offer when dialling (C{crypto_provide}), or C{None}
    to dial in plaintext.
    """
    if checkMode(mode) == TOLERATED:
        return None
    return CRYPTO_RC4


def fallsBackToPlaintext(mode: str) -> bool:
    """
    Whether a dial whose MSE handshake failed is tried again in plaintext.
    """
    return checkMode(mode) == PREFERRED


def wrapOutgoing(
    peerProtocol,
    clock,
    infoHash: bytes,
    provide: Optional[int],
    runInThread: Optional[Callable] = None,
):
    """
    The protocol to give the transport of a connection we dialled:
    C{peerProtocol} itself, or an L{MSEOutgoingProtocol} around it.

    @param provide: from L{outgoingProvide}.
    @param runInThread: C{runInThread(f, *args) -> Deferred}: RC4 of big
        incoming chunks runs there (C{None}: in the reactor thread).
    """
    if provide is None:
        return peerProtocol
    return MSEOutgoingProtocol(
        peerProtocol, clock, infoHash, provide=provide, runInThread=runInThread
    )


def wrapIncoming(
    peerProtocol,
    clock,
    lookup: Callable[[bytes], Optional[bytes]],
    mode: str,
    runInThread: Optional[Callable] = None,
):
    """
    The protocol to give the transport of a connection we accepted: an
    L{MSEIncomingProtocol} around C{peerProtocol} that tells a plain
    BitTorrent handshake from MSE by the first bytes and applies C{mode}.

    @param lookup: maps C{HASH('req2', SKEY)} to the info-hash of a torrent
        we serve (L{btorrent.peer.mse.obfuscatedHash}), or C{None}.
    @param runInThread: as for L{wrapOutgoing}.
    """
    strict = checkMode(mode) == REQUIRED
    return MSEIncomingProtocol(
        peerProtocol,
        clock,
        lookup,
        allowLegacy=not strict,
        allowPlaintext=not strict,
        allowRC4=True,
        preferRC4=mode != TOLERATED,
        runInThread=runInThread,
    )
