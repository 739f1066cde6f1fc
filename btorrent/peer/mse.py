"""
Message stream encryption (MSE, also called PE or "protocol encryption"),
the obfuscation layer BitTorrent clients put in front of the peer wire, as
two sans-IO state machines: bytes in, bytes to send out, no sockets, no
clock.

There is no BEP for it; this follows the classic "Message Stream
Encryption" specification and libtorrent's reading of it
(C{src/bt_peer_connection.cpp}, C{src/pe_crypto.cpp}).  The handshake, A
the initiator (the side that connected) and B the responder::

    1 A->B: Ya, PadA
    2 B->A: Yb, PadB
    3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
            ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
    4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD)
    5 A->B, B->A: the payload stream, ENCRYPT() again if RC4 was selected

Ya and Yb are 768-bit Diffie-Hellman public keys (L{P}, G = 2), 96 bytes
big-endian; S is the shared secret, also 96 bytes; SKEY is the torrent's
info-hash; HASH is SHA-1; VC is 8 zero bytes; every pad is 0 to 512 random
bytes; ENCRYPT is RC4 keyed with HASH('keyA', S, SKEY) from A to B and
HASH('keyB', S, SKEY) from B to A, with the first 1024 bytes of keystream
discarded; lengths are big-endian (crypto fields 4 bytes, pad and IA
lengths 2).  crypto_provide is a bit set (L{CRYPTO_PLAINTEXT},
L{CRYPTO_RC4}); crypto_select is one bit of it.  IA, the initial payload, is
always RC4-encrypted; whatever follows step 4 is RC4 or plaintext as
selected.

Neither side knows where the other's random pad ends: A finds the end of
PadB by looking for the encrypted VC in the 512 + 8 bytes after Yb, B finds
the end of PadA by looking for HASH('req1', S) in the 512 + 20 bytes after
Ya.  Nothing here ever holds more than those windows, the fixed-size fields
and the initial payload (at most 65535 bytes, its length field's range).

Both machines share one interface: L{start} gives the first bytes to send,
L{dataReceived} takes bytes from the peer and gives the bytes to send now;
once C{done} is true, C{selected}, C{encrypt}, C{decrypt} and C{remainder}
(the payload bytes that arrived with the end of the handshake, decrypted)
hold the result.  Anything wrong raises L{MSEError}, after which the machine
is dead.

The RC4 keystream is the C{cryptography} library's ARC4 (C code), always
applied to whole chunks.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable, List, Optional, Tuple

from cryptography.hazmat.primitives.ciphers import Cipher

try:
    # cryptography >= 43 moved RC4 among the "decrepit" algorithms.
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
except ImportError:  # pragma: no cover - cryptography < 43
    from cryptography.hazmat.primitives.ciphers.algorithms import ARC4

from btorrent.codec.wire import HANDSHAKE_PREFIX

__all__ = [
    "CRYPTO_PLAINTEXT",
    "CRYPTO_RC4",
    "INITIAL_PAYLOAD_MAX",
    "KEY_LENGTH",
    "MSEError",
    "MSEInitiator",
    "MSEResponder",
    "P",
    "PAD_MAX",
    "detectPlaintext",
    "obfuscatedHash",
    "privateKey",
    "publicKey",
    "sharedSecret",
    "streamCiphers",
]

#: The 768-bit prime of the key exchange, from the MSE specification (the
#: constant in libtorrent's C{pe_crypto.cpp}): a safe prime, (P - 1) / 2 is
#: prime too.  The generator is 2.
P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
    16,
)
G = 2
#: The length of a public key and of the shared secret on the wire.
KEY_LENGTH = 96
#: The size of our private keys, in bits (the specification asks for at
#: least 128; more than 180 adds nothing against a 768-bit group).
PRIVATE_KEY_BITS = 160
#: The longest pad (PadA, PadB, PadC, PadD) either side may send.
PAD_MAX = 512
#: The verification constant.
VC = bytes(8)
#: crypto_provide / crypto_select bits.
CRYPTO_PLAINTEXT = 0x01
CRYPTO_RC4 = 0x02
#: The largest initial payload: its length field has two bytes.
INITIAL_PAYLOAD_MAX = 0xFFFF
#: How many RC4 keystream bytes are thrown away after keying.
RC4_DISCARD = 1024
#: A's window after Yb in which the encrypted VC must end (PadB + VC).
VC_WINDOW = PAD_MAX + len(VC)
#: B's window after Ya in which HASH('req1', S) must end (PadA + hash).
REQ1_WINDOW = PAD_MAX + 20

_ALL_CRYPTO = CRYPTO_PLAINTEXT | CRYPTO_RC4


class MSEError(Exception):
    """
    The peer broke the MSE handshake (or offered nothing we accept); the
    connection must be closed.
    """


def _sha1(*parts: bytes) -> bytes:
    h = hashlib.sha1()
    for part in parts:
        h.update(part)
    return h.digest()


def _xor20(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(20, "big")


def _identity(data):
    return data


def privateKey(rng: Callable[[int], bytes] = os.urandom) -> int:
    """
    A fresh Diffie-Hellman private key of L{PRIVATE_KEY_BITS} bits (the
    top bit set, so it is never short).

    @param rng: C{rng(n)} returns C{n} random bytes.
    """
    x = int.from_bytes(rng(PRIVATE_KEY_BITS // 8), "big")
    return x | (1 << (PRIVATE_KEY_BITS - 1))


def publicKey(x: int) -> bytes:
    """
    The public key of private key C{x}: C{G ** x mod P}, 96 bytes
    big-endian.
    """
    return pow(G, x, P).to_bytes(KEY_LENGTH, "big")


def sharedSecret(x: int, remoteKey: bytes) -> bytes:
    """
    S, the shared secret of our private key C{x} and the peer's public
    key, 96 bytes big-endian.

    @raise MSEError: if the peer's key is one of the degenerate values
        (0, 1, P - 1 or anything not below P) that would make S guessable.
    """
    y = int.from_bytes(remoteKey, "big")
    if not 1 < y < P - 1:
        raise MSEError("the peer's public key is out of range")
    return pow(y, x, P).to_bytes(KEY_LENGTH, "big")


def obfuscatedHash(infoHash: bytes) -> bytes:
    """
    HASH('req2', SKEY) of an info-hash: what a responder recovers from step
    3 and looks up.  A session keeps C{{obfuscatedHash(ih): ih}} for every
    torrent it serves and hands that dict's C{get} to L{MSEResponder}.
    """
    return _sha1(b"req2", infoHash)


def _rc4(key: bytes) -> Callable[[bytes], bytes]:
    """
    An RC4 stream keyed with C{key}, the first L{RC4_DISCARD} bytes of
    keystream spent: a function mapping each chunk to its encryption (the
    same function decrypts).
    """
    context = Cipher(ARC4(key), mode=None).encryptor()
    context.update(bytes(RC4_DISCARD))
    return context.update


def streamCiphers(
    secret: bytes, infoHash: bytes, initiator: bool
) -> Tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    """
    The two RC4 streams of a connection: the initiator encrypts with
    HASH('keyA', S, SKEY) and decrypts with HASH('keyB', S, SKEY), the
    responder the other way round.

    @param secret: S (96 bytes).
    @param infoHash: SKEY.
    @param initiator: whose streams: the connecting side's or the other's.
    @return: C{(encrypt, decrypt)}, each a function of a chunk that keeps
        its place in its keystream.
    """
    keyA = _sha1(b"keyA", secret, infoHash)
    keyB = _sha1(b"keyB", secret, infoHash)
    if initiator:
        return _rc4(keyA), _rc4(keyB)
    return _rc4(keyB), _rc4(keyA)


def detectPlaintext(prefix: bytes) -> Optional[bool]:
    """
    Tell an incoming plaintext BitTorrent handshake from an MSE one by its
    first bytes.

    @param prefix: the first bytes received (any number).
    @return: C{True} once the 20 bytes C{"\\x13BitTorrent protocol"} are
        there, C{False} as soon as a byte differs from them (MSE: a
        public key), C{None} while more bytes are needed to decide.
    """
    n = min(len(prefix), len(HANDSHAKE_PREFIX))
    if prefix[:n] != HANDSHAKE_PREFIX[:n]:
        return False
    if n == len(HANDSHAKE_PREFIX):
        return True
    return None


def _padLength(rng: Callable[[int], bytes], maxPad: int) -> int:
    return int.from_bytes(rng(2), "big") % (maxPad + 1)


class _MSEHandshake:
    """
    What both sides share: the receive buffer, the loop over states, the
    result.

    @ivar done: whether the handshake is over (the result is then set).
    @ivar selected: L{CRYPTO_PLAINTEXT} or L{CRYPTO_RC4} once done.
    @ivar encrypt: once done, a function mapping payload bytes we send to
        bytes on the wire (the identity for plaintext).
    @ivar decrypt: once done, the same for bytes received.
    @ivar remainder: once done, the payload bytes that came after the
        handshake in the last L{dataReceived}, already decrypted.
    @ivar infoHash: SKEY, the torrent of the connection.
    """

    def __init__(self, rng: Callable[[int], bytes], maxPad: int) -> None:
        if not 0 <= maxPad <= PAD_MAX:
            raise ValueError(f"pads are 0 to {PAD_MAX} bytes, not {maxPad}")
        self._rng = rng
        self._maxPad = maxPad
        self._x = privateKey(rng)
        self._buffer = bytearray()
        self._state: Optional[Callable[[], Optional[bytes]]] = None
        self._error: Optional[MSEError] = None
        self._secret = b""
        self._encrypt: Callable[[bytes], bytes] = _identity
        self._decrypt: Callable[[bytes], bytes] = _identity
        self.done = False
        self.selected: Optional[int] = None
        self.encrypt: Optional[Callable[[bytes], bytes]] = None
        self.decrypt: Optional[Callable[[bytes], bytes]] = None
        self.remainder = b""
        self.infoHash: Optional[bytes] = None

    def _pad(self) -> bytes:
        return self._rng(_padLength(self._rng, self._maxPad))

    def _take(self, n: int) -> Optional[bytes]:
        """
        The next C{n} buffered bytes, consumed; C{None} if fewer are there.
        """
        if len(self._buffer) < n:
            return None
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _sync(self, pattern: bytes, window: int, what: str) -> bool:
        """
        Consume the buffer up to and including C{pattern} if it ends within
        the first C{window} bytes.

        @return: whether it was found; C{False} means wait for more.
        @raise MSEError: if C{window} bytes are there without it.
        """
        index = self._buffer.find(pattern, 0, window)
        if index < 0:
            if len(self._buffer) >= window:
                raise MSEError(f"no {what} within {window - len(pattern)} bytes")
            return False
        del self._buffer[: index + len(pattern)]
        return True

    def _finish(self, selected: int) -> None:
        self.selected = selected
        if selected == CRYPTO_RC4:
            self.encrypt, self.decrypt = self._encrypt, self._decrypt
        else:
            self.encrypt = self.decrypt = _identity
        rest = bytes(self._buffer)
        self._buffer = bytearray()
        self.remainder = self.decrypt(rest) if rest else b""
        self._state = None
        self.done = True

    def dataReceived(self, data: bytes) -> bytes:
        """
        Take bytes from the peer.

        @return: the bytes to send to the peer now (often empty).
        @raise MSEError: if the peer broke the handshake; the machine stays
            broken.
        """
        if self._error is not None:
            raise self._error
        if self.done:
            raise RuntimeError("the MSE handshake is over: use decrypt()")
        if self._state is None:
            raise RuntimeError("start() first")
        self._buffer += data
        out: List[bytes] = []
        try:
            while not self.done:
                sent = self._state()
                if sent is None:
                    break
                if sent:
                    out.append(sent)
        except MSEError as e:
            self._error = e
            self._buffer = bytearray()
            raise
        return b"".join(out)


class MSEInitiator(_MSEHandshake):
    """
    The connecting side of an MSE handshake.

    @ivar initialPayload: IA, the bytes sent encrypted with step 3
        (normally our BitTorrent handshake).  It may be replaced until the
        peer's public key arrives: that is when step 3 is written, and
        C{initialPayloadSent} becomes true.
    @ivar provide: the crypto_provide bits we send.
    """

    def __init__(
        self,
        infoHash: bytes,
        provide: int = CRYPTO_PLAINTEXT | CRYPTO_RC4,
        initialPayload: bytes = b"",
        rng: Callable[[int], bytes] = os.urandom,
        maxPad: int = PAD_MAX,
    ) -> None:
        """
        @param infoHash: SKEY, the torrent we want from the peer (20 bytes).
        @param provide: the methods we accept: L{CRYPTO_PLAINTEXT},
            L{CRYPTO_RC4} or both.
        @param initialPayload: IA, at most L{INITIAL_PAYLOAD_MAX} bytes.
        @param rng: C{rng(n)} returns C{n} random bytes (keys and pads).
        @param maxPad: the longest pad we send (random 0 to C{maxPad}).
        """
        if len(infoHash) != 20:
            raise ValueError("an info-hash has 20 bytes")
        if provide not in (CRYPTO_PLAINTEXT, CRYPTO_RC4, _ALL_CRYPTO):
            raise ValueError(f"crypto_provide must be 1, 2 or 3, not {provide!r}")
        super().__init__(rng, maxPad)
        self.infoHash = bytes(infoHash)
        self.provide = provide
        self.initialPayload = initialPayload
        self.initialPayloadSent = False
        self._vcPattern = b""
        self._padD = 0

    @property
    def initialPayload(self) -> bytes:
        return self._initialPayload

    @initialPayload.setter
    def initialPayload(self, payload: bytes) -> None:
        if len(payload) > INITIAL_PAYLOAD_MAX:
            raise ValueError(
                f"an initial payload has at most {INITIAL_PAYLOAD_MAX} bytes,"
                f" not {len(payload)}"
            )
        if getattr(self, "initialPayloadSent", False):
            raise RuntimeError("the initial payload is already sent")
        self._initialPayload = bytes(payload)

    def start(self) -> bytes:
        """
        Step 1: our public key and PadA, to send as soon as connected.
        """
        if self._state is not None or self.done:
            raise RuntimeError("start() twice")
        self._state = self._readPublicKey
        return publicKey(self._x) + self._pad()

    def _readPublicKey(self) -> Optional[bytes]:
        remote = self._take(KEY_LENGTH)
        if remote is None:
            return None
        payload = self._initialPayload
        secret = sharedSecret(self._x, remote)
        self._secret = secret
        self._encrypt, self._decrypt = streamCiphers(secret, self.infoHash, True)
        # The responder's step 4 starts with VC encrypted by the first
        # keystream bytes of our decrypting stream: that is what to find.
        self._vcPattern = self._decrypt(VC)
        padC = self._pad()
        self.initialPayloadSent = True
        self._state = self._syncVC
        return b"".join(
            (
                _sha1(b"req1", secret),
                _xor20(obfuscatedHash(self.infoHash), _sha1(b"req3", secret)),
                self._encrypt(
                    b"".join(
                        (
                            VC,
                            self.provide.to_bytes(4, "big"),
                            len(padC).to_bytes(2, "big"),
                            padC,
                            len(payload).to_bytes(2, "big"),
                            payload,
                        )
                    )
                ),
            )
        )

    def _syncVC(self) -> Optional[bytes]:
        if not self._sync(self._vcPattern, VC_WINDOW, "verification constant"):
            return None
        self._state = self._readSelect
        return b""

    def _readSelect(self) -> Optional[bytes]:
        data = self._take(6)
        if data is None:
            return None
        fields = self._decrypt(data)
        select = int.from_bytes(fields[:4], "big")
        if select not in (CRYPTO_PLAINTEXT, CRYPTO_RC4) or not select & self.provide:
            raise MSEError(
                f"crypto_select {select:#x} is not one of crypto_provide"
                f" {self.provide:#x}"
            )
        padD = int.from_bytes(fields[4:], "big")
        if padD > PAD_MAX:
            raise MSEError(f"PadD of {padD} bytes (more than {PAD_MAX})")
        self.selected = select
        self._padD = padD
        self._state = self._readPadD
        return b""

    def _readPadD(self) -> Optional[bytes]:
        pad = self._take(self._padD)
        if pad is None:
            return None
        self._decrypt(pad)
        self._finish(self.selected)
        return b""


class MSEResponder(_MSEHandshake):
    """
    The accepting side of an MSE handshake.

    @ivar initialPayload: once done, IA as the initiator sent it, decrypted
        (normally its BitTorrent handshake; may be empty).
    @ivar provide: once step 3 is read, the initiator's crypto_provide.
    """

    def __init__(
        self,
        lookup: Callable[[bytes], Optional[bytes]],
        allowPlaintext: bool = True,
        allowRC4: bool = True,
        preferRC4: bool = True,
        rng: Callable[[int], bytes] = os.urandom,
        maxPad: int = PAD_MAX,
        maxInitialPayload: int = INITIAL_PAYLOAD_MAX,
    ) -> None:
        """
        @param lookup: maps HASH('req2', SKEY) (see L{obfuscatedHash}) to the
            info-hash of a torrent we serve, or C{None}.
        @param allowPlaintext: whether we may select L{CRYPTO_PLAINTEXT}.
        @param allowRC4: whether we may select L{CRYPTO_RC4}.
        @param preferRC4: which to select when both are offered and allowed.
        @param rng: C{rng(n)} returns C{n} random bytes (keys and pads).
        @param maxPad: the longest pad we send (random 0 to C{maxPad}).
        @param maxInitialPayload: the longest IA we take: at most
            L{INITIAL_PAYLOAD_MAX}, the range of its length field, which
            bounds the buffer; a BitTorrent handshake is 68 bytes, and
            clients put nothing else there, but the field allows more.
        """
        if not (allowPlaintext or allowRC4):
            raise ValueError("allow plaintext, RC4 or both")
        if not 0 <= maxInitialPayload <= INITIAL_PAYLOAD_MAX:
            raise ValueError(f"maxInitialPayload is 0 to {INITIAL_PAYLOAD_MAX}")
        super().__init__(rng, maxPad)
        self._lookup = lookup
        self._allowed = (CRYPTO_PLAINTEXT if allowPlaintext else 0) | (
            CRYPTO_RC4 if allowRC4 else 0
        )
        self._preferRC4 = preferRC4
        self._maxInitialPayload = maxInitialPayload
        self._req1 = b""
        self._padC = 0
        self._lengthIA = 0
        self.provide: Optional[int] = None
        self.initialPayload = b""

    def start(self) -> bytes:
        """
        The responder speaks second: nothing to send until the initiator's
        key arrives.  Calling this is optional.
        """
        if self._state is None and not self.done:
            self._state = self._readPublicKey
        return b""

    def dataReceived(self, data: bytes) -> bytes:
        """
        Take bytes from the peer.

        @return: the bytes to send to the peer now (step 2, then step 4).
        @raise MSEError: if the peer broke the handshake.
        """
        self.start()
        return super().dataReceived(data)

    def _readPublicKey(self) -> Optional[bytes]:
        remote = self._take(KEY_LENGTH)
        if remote is None:
            return None
        self._secret = sharedSecret(self._x, remote)
        self._req1 = _sha1(b"req1", self._secret)
        self._state = self._syncReq1
        return publicKey(self._x) + self._pad()

    def _syncReq1(self) -> Optional[bytes]:
        if not self._sync(self._req1, REQ1_WINDOW, "HASH('req1', S)"):
            return None
        self._state = self._readStreamKey
        return b""

    def _chooseCrypto(self, provide: int) -> int:
        acceptable = provide & self._allowed
        if not acceptable:
            raise MSEError(
                f"crypto_provide {provide:#x} offers nothing we allow"
                f" ({self._allowed:#x})"
            )
        if acceptable == _ALL_CRYPTO:
            return CRYPTO_RC4 if self._preferRC4 else CRYPTO_PLAINTEXT
        return acceptable

    def _readStreamKey(self) -> Optional[bytes]:
        # HASH('req2', SKEY) xor HASH('req3', S), then ENCRYPT(VC,
        # crypto_provide, len(PadC)).
        data = self._take(20 + 8 + 4 + 2)
        if data is None:
            return None
        infoHash = self._lookup(_xor20(data[:20], _sha1(b"req3", self._secret)))
        if infoHash is None:
            raise MSEError("the peer asked for a torrent we do not serve")
        if len(infoHash) != 20:
            raise ValueError("lookup() must return a 20-byte info-hash or None")
        self.infoHash = bytes(infoHash)
        self._encrypt, self._decrypt = streamCiphers(self._secret, self.infoHash, False)
        fields = self._decrypt(data[20:])
        if fields[:8] != VC:
            raise MSEError("bad verification constant")
        self.provide = int.from_bytes(fields[8:12], "big")
        self._padC = int.from_bytes(fields[12:14], "big")
        if self._padC > PAD_MAX:
            raise MSEError(f"PadC of {self._padC} bytes (more than {PAD_MAX})")
        select = self._chooseCrypto(self.provide)
        self.selected = select
        padD = self._pad()
        self._state = self._readPadC
        return self._encrypt(
            b"".join(
                (VC, select.to_bytes(4, "big"), len(padD).to_bytes(2, "big"), padD)
            )
        )

    def _readPadC(self) -> Optional[bytes]:
        data = self._take(self._padC + 2)
        if data is None:
            return None
        lengthIA = int.from_bytes(self._decrypt(data)[-2:], "big")
        if lengthIA > self._maxInitialPayload:
            raise MSEError(
                f"an initial payload of {lengthIA} bytes"
                f" (more than {self._maxInitialPayload})"
            )
        self._lengthIA = lengthIA
        self._state = self._readInitialPayload
        return b""

    def _readInitialPayload(self) -> Optional[bytes]:
        data = self._take(self._lengthIA)
        if data is None:
            return None
        self.initialPayload = self._decrypt(data)
        self._finish(self.selected)
        return b""
