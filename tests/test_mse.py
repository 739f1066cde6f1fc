"""
Tests for L{btorrent.peer.mse}: the MSE handshake as bytes, both sides in
memory, and each side against a peer written here straight from the
specification (with knobs to break it).
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Callable, Iterable, List, Optional

from cryptography.hazmat.primitives.ciphers import Cipher
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec.wire import Handshake, encodeHandshake
from btorrent.peer import mse
from btorrent.peer.mse import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    INITIAL_PAYLOAD_MAX,
    MSEError,
    MSEInitiator,
    MSEResponder,
    P,
    detectPlaintext,
    obfuscatedHash,
)

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
except ImportError:  # pragma: no cover
    from cryptography.hazmat.primitives.ciphers.algorithms import ARC4

INFO_HASH = bytes(range(20))
OTHER_HASH = b"\xaa" * 20
BT_HANDSHAKE = encodeHandshake(Handshake(INFO_HASH, b"-BT0001-abcdefghijkl"))
BOTH = CRYPTO_PLAINTEXT | CRYPTO_RC4
#: libtorrent's constant (src/pe_crypto.cpp), as text.
LIBTORRENT_PRIME = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA6"
    "3B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245"
    "E485B576625E7EC6F44C42E9A63A36210000000000090563"
)


def lookupFor(*infoHashes: bytes) -> Callable[[bytes], Optional[bytes]]:
    """
    What a session hands the responder: HASH('req2', ih) -> ih.
    """
    return {obfuscatedHash(ih): ih for ih in infoHashes}.get


def sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def rc4(key: bytes) -> Callable[[bytes], bytes]:
    """
    RC4 written out here, independently of the module: ARC4 keyed with
    C{key}, 1024 bytes of keystream dropped.
    """
    context = Cipher(ARC4(key), mode=None).encryptor()
    context.update(bytes(1024))
    return context.update


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def padRng(length: int) -> Callable[[int], bytes]:
    """
    An rng whose pads are all C{length} bytes long (the module draws a pad
    length from two random bytes, modulo 513).
    """

    def rng(n: int) -> bytes:
        return u16(length) if n == 2 else os.urandom(n)

    return rng


class SpecInitiator:
    """
    An initiator written from the specification, step by step, so that a
    test can send anything.
    """

    def __init__(self, infoHash: bytes = INFO_HASH) -> None:
        self.infoHash = infoHash
        self.x = random.getrandbits(160) | (1 << 159)

    def step1(self, padA: bytes = b"") -> bytes:
        return pow(2, self.x, P).to_bytes(96, "big") + padA

    def step3(
        self,
        yb: bytes,
        provide: int = BOTH,
        padC: bytes = b"",
        ia: bytes = b"",
        vc: bytes = bytes(8),
        lengthIA: Optional[int] = None,
        skey: Optional[bytes] = None,
    ) -> bytes:
        skey = self.infoHash if skey is None else skey
        s = pow(int.from_bytes(yb, "big"), self.x, P).to_bytes(96, "big")
        self.secret = s
        self.encrypt = rc4(sha1(b"keyA", s, skey))
        self.decrypt = rc4(sha1(b"keyB", s, skey))
        lengthIA = len(ia) if lengthIA is None else lengthIA
        return (
            sha1(b"req1", s)
            + xor(sha1(b"req2", skey), sha1(b"req3", s))
            + self.encrypt(vc + u32(provide) + u16(len(padC)) + padC + u16(lengthIA))
            + self.encrypt(ia)
        )

    def readStep4(self, data: bytes):
        """
        @return: C{(crypto_select, PadD, rest of the bytes decrypted with the
            same stream)}.
        """
        pattern = self.decrypt(bytes(8))
        index = data.find(pattern)
        assert 0 <= index <= 512, index
        rest = self.decrypt(data[index + 8 :])
        select = int.from_bytes(rest[:4], "big")
        padD = int.from_bytes(rest[4:6], "big")
        return select, rest[6 : 6 + padD], rest[6 + padD :]


class SpecResponder:
    """
    A responder written from the specification.
    """

    def __init__(self, infoHash: bytes = INFO_HASH) -> None:
        self.infoHash = infoHash
        self.x = random.getrandbits(160) | (1 << 159)

    def step2(self, ya: bytes, padB: bytes = b"") -> bytes:
        s = pow(int.from_bytes(ya[:96], "big"), self.x, P).to_bytes(96, "big")
        self.secret = s
        self.encrypt = rc4(sha1(b"keyB", s, self.infoHash))
        self.decrypt = rc4(sha1(b"keyA", s, self.infoHash))
        return pow(2, self.x, P).to_bytes(96, "big") + padB

    def readStep3(self, data: bytes):
        """
        @return: C{(crypto_provide, PadC, IA)} from step 3, checking the two
            hashes and VC.
        """
        s = self.secret
        index = data.find(sha1(b"req1", s))
        assert index >= 0
        data = data[index + 20 :]
        assert data[:20] == xor(sha1(b"req2", self.infoHash), sha1(b"req3", s))
        fields = self.decrypt(data[20:34])
        assert fields[:8] == bytes(8)
        provide = int.from_bytes(fields[8:12], "big")
        padC = int.from_bytes(fields[12:14], "big")
        rest = self.decrypt(data[34:])
        lengthIA = int.from_bytes(rest[padC : padC + 2], "big")
        ia = rest[padC + 2 : padC + 2 + lengthIA]
        assert len(ia) == lengthIA
        return provide, rest[:padC], ia

    def step4(self, select: int, padD: bytes = b"", vc: bytes = bytes(8)) -> bytes:
        return self.encrypt(vc + u32(select) + u16(len(padD)) + padD)


def oneByte(data: bytes) -> Iterable[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def whole(data: bytes) -> Iterable[bytes]:
    return [data] if data else []


def exchange(
    initiator: MSEInitiator,
    responder: MSEResponder,
    chunks: Callable[[bytes], Iterable[bytes]] = whole,
    fromInitiator: bytes = b"",
    fromResponder: bytes = b"",
):
    """
    Run a handshake in memory, then send C{fromInitiator} and
    C{fromResponder} as payload, every stream cut by C{chunks}.

    @return: C{(payload the initiator received, payload the responder
        received)}, the responder's IA first.
    """
    toResponder = [initiator.start()]
    toInitiator: List[bytes] = []
    receivedByInitiator = bytearray()
    receivedByResponder = bytearray()
    sentI = sentR = False

    def deliver(side, stream, received, other):
        for chunk in chunks(b"".join(stream)):
            if side.done:
                received.extend(side.decrypt(chunk))
                continue
            out = side.dataReceived(chunk)
            if out:
                other.append(out)
            if side.done:
                if isinstance(side, MSEResponder):
                    received.extend(side.initialPayload)
                received.extend(side.remainder)
        stream.clear()

    for _ in range(20):
        if toResponder:
            deliver(responder, toResponder, receivedByResponder, toInitiator)
        if responder.done and not sentR:
            toInitiator.append(responder.encrypt(fromResponder))
            sentR = True
        if toInitiator:
            deliver(initiator, toInitiator, receivedByInitiator, toResponder)
        if initiator.done and not sentI:
            toResponder.append(initiator.encrypt(fromInitiator))
            sentI = True
        if not (toResponder or toInitiator):
            break
    return bytes(receivedByInitiator), bytes(receivedByResponder)


class ConstantsTests(SynchronousTestCase):
    """
    The group and RC4 as everybody else has them.
    """

    def test_primeIsLibtorrents(self):
        """
        P is the 768-bit prime of libtorrent's C{pe_crypto.cpp}.
        """
        self.assertEqual(P, int(LIBTORRENT_PRIME, 16))
        self.assertEqual(P.bit_length(), 768)

    def test_rc4DropsTheFirst1024Bytes(self):
        """
        After keying, RC4 starts at keystream offset 1024: RFC 6229's
        vector for the 40-bit key 0x0102030405 at offset 1024.
        """
        encrypt = mse._rc4(bytes.fromhex("0102030405"))
        self.assertEqual(encrypt(bytes(16)).hex(), "30abbcc7c20b01609f23ee2d5f6bb7df")

    def test_streamCiphers(self):
        """
        The initiator encrypts with HASH('keyA', S, SKEY) and the responder
        decrypts with it; the other direction uses 'keyB'.
        """
        secret = bytes(range(96))
        encryptA, decryptA = mse.streamCiphers(secret, INFO_HASH, True)
        encryptB, decryptB = mse.streamCiphers(secret, INFO_HASH, False)
        keyA = sha1(b"keyA", secret, INFO_HASH)
        keyB = sha1(b"keyB", secret, INFO_HASH)
        message = b"The quick brown fox"
        self.assertEqual(encryptA(message), rc4(keyA)(message))
        self.assertEqual(encryptB(message), rc4(keyB)(message))
        self.assertEqual(decryptB(rc4(keyA)(message)), message)
        self.assertEqual(decryptA(rc4(keyB)(message)), message)

    def test_keys(self):
        """
        Public keys are 96 bytes; both sides compute the same secret.
        """
        xa, xb = mse.privateKey(), mse.privateKey()
        self.assertEqual(xa.bit_length(), 160)
        ya, yb = mse.publicKey(xa), mse.publicKey(xb)
        self.assertEqual(len(ya), 96)
        self.assertEqual(mse.sharedSecret(xa, yb), mse.sharedSecret(xb, ya))
        self.assertEqual(
            mse.sharedSecret(xa, yb), pow(2, xa * xb, P).to_bytes(96, "big")
        )

    def test_degeneratePublicKeys(self):
        """
        A public key of 0, 1, P - 1 or P and above is refused.
        """
        x = mse.privateKey()
        for y in (0, 1, P - 1, P, 2**768 - 1):
            self.assertRaises(MSEError, mse.sharedSecret, x, y.to_bytes(96, "big"))


class DetectPlaintextTests(SynchronousTestCase):
    """
    L{detectPlaintext} tells a BitTorrent handshake from MSE.
    """

    def test_handshake(self):
        self.assertIs(detectPlaintext(BT_HANDSHAKE), True)
        self.assertIs(detectPlaintext(BT_HANDSHAKE[:20]), True)

    def test_undecided(self):
        for n in range(20):
            self.assertIsNone(detectPlaintext(BT_HANDSHAKE[:n]))

    def test_mse(self):
        self.assertIs(detectPlaintext(b"\x14"), False)
        self.assertIs(detectPlaintext(b"\x13BitTorrent protocoL"), False)
        self.assertIs(detectPlaintext(b"\x13Bit"), None)
        self.assertIs(detectPlaintext(b"\x13Bix"), False)
        self.assertIs(detectPlaintext(mse.publicKey(mse.privateKey())), False)


class RoundTripTests(SynchronousTestCase):
    """
    An initiator and a responder in memory agree, whatever the chunking.
    """

    def check(self, provide, chunks, expected, **policy):
        initiator = MSEInitiator(INFO_HASH, provide, BT_HANDSHAKE)
        responder = MSEResponder(lookupFor(OTHER_HASH, INFO_HASH), **policy)
        fromI = b"interested" * 100
        fromR = b"bitfield" * 100
        atI, atR = exchange(initiator, responder, chunks, fromI, fromR)
        self.assertTrue(initiator.done)
        self.assertTrue(responder.done)
        self.assertEqual(initiator.selected, expected)
        self.assertEqual(responder.selected, expected)
        self.assertEqual(responder.infoHash, INFO_HASH)
        self.assertEqual(responder.initialPayload, BT_HANDSHAKE)
        self.assertEqual(responder.provide, provide)
        self.assertEqual(atR, BT_HANDSHAKE + fromI)
        self.assertEqual(atI, fromR)
        message = b"x" * 1000
        if expected == CRYPTO_RC4:
            self.assertNotEqual(initiator.encrypt(message), message)
        else:
            self.assertEqual(initiator.encrypt(message), message)
            self.assertEqual(responder.encrypt(message), message)

    def test_rc4(self):
        for chunks in (whole, oneByte):
            self.check(BOTH, chunks, CRYPTO_RC4)
            self.check(CRYPTO_RC4, chunks, CRYPTO_RC4, allowPlaintext=False)

    def test_plaintext(self):
        for chunks in (whole, oneByte):
            self.check(BOTH, chunks, CRYPTO_PLAINTEXT, preferRC4=False)
            self.check(CRYPTO_PLAINTEXT, chunks, CRYPTO_PLAINTEXT)
            self.check(BOTH, chunks, CRYPTO_PLAINTEXT, allowRC4=False)

    def test_onlyWhatIsOffered(self):
        """
        The responder selects what the initiator offered even if it prefers
        the other.
        """
        self.check(CRYPTO_RC4, whole, CRYPTO_RC4, preferRC4=False)
        self.check(CRYPTO_PLAINTEXT, whole, CRYPTO_PLAINTEXT, preferRC4=True)

    def test_maximalPads(self):
        """
        Pads of 512 bytes on both sides (PadA..PadD) go through, one byte at
        a time too.
        """
        for chunks in (whole, oneByte):
            initiator = MSEInitiator(INFO_HASH, BOTH, BT_HANDSHAKE, rng=padRng(512))
            responder = MSEResponder(lookupFor(INFO_HASH), rng=padRng(512))
            atI, atR = exchange(initiator, responder, chunks, b"a", b"b")
            self.assertEqual((atI, atR), (b"b", BT_HANDSHAKE + b"a"))

    def test_noPads(self):
        initiator = MSEInitiator(INFO_HASH, BOTH, BT_HANDSHAKE, maxPad=0)
        responder = MSEResponder(lookupFor(INFO_HASH), maxPad=0)
        first = initiator.start()
        self.assertEqual(len(first), 96)
        second = responder.dataReceived(first)
        self.assertEqual(len(second), 96)
        third = initiator.dataReceived(second)
        self.assertEqual(len(third), 20 + 20 + 8 + 4 + 2 + 2 + len(BT_HANDSHAKE))
        fourth = responder.dataReceived(third)
        self.assertEqual(len(fourth), 8 + 4 + 2)
        self.assertEqual(initiator.dataReceived(fourth), b"")
        self.assertTrue(initiator.done and responder.done)

    def test_emptyInitialPayload(self):
        initiator = MSEInitiator(INFO_HASH)
        responder = MSEResponder(lookupFor(INFO_HASH))
        atI, atR = exchange(initiator, responder, whole, BT_HANDSHAKE, b"")
        self.assertEqual(responder.initialPayload, b"")
        self.assertEqual(atR, BT_HANDSHAKE)

    def test_initialPayloadReplaced(self):
        """
        The initiator's IA may be set after L{MSEInitiator.start}, until the
        peer's key arrives; after that it cannot change.
        """
        initiator = MSEInitiator(INFO_HASH)
        responder = MSEResponder(lookupFor(INFO_HASH))
        step2 = responder.dataReceived(initiator.start())
        initiator.initialPayload = BT_HANDSHAKE
        self.assertFalse(initiator.initialPayloadSent)
        responder.dataReceived(initiator.dataReceived(step2))
        self.assertTrue(initiator.initialPayloadSent)
        self.assertEqual(responder.initialPayload, BT_HANDSHAKE)
        with self.assertRaises(RuntimeError):
            initiator.initialPayload = b"late"

    def test_largestInitialPayload(self):
        ia = os.urandom(INITIAL_PAYLOAD_MAX)
        initiator = MSEInitiator(INFO_HASH, initialPayload=ia)
        responder = MSEResponder(lookupFor(INFO_HASH))
        exchange(initiator, responder)
        self.assertEqual(responder.initialPayload, ia)

    def test_doneMeansDone(self):
        initiator = MSEInitiator(INFO_HASH)
        responder = MSEResponder(lookupFor(INFO_HASH))
        exchange(initiator, responder)
        self.assertRaises(RuntimeError, initiator.dataReceived, b"x")
        self.assertRaises(RuntimeError, responder.dataReceived, b"x")
        self.assertRaises(RuntimeError, initiator.start)

    @settings(max_examples=60, deadline=None)
    @given(
        sizes=st.lists(st.integers(1, 700), min_size=1, max_size=12),
        provide=st.sampled_from([CRYPTO_PLAINTEXT, CRYPTO_RC4, BOTH]),
        preferRC4=st.booleans(),
        fromI=st.binary(max_size=300),
        fromR=st.binary(max_size=300),
    )
    def test_anyChunking(self, sizes, provide, preferRC4, fromI, fromR):
        """
        Whatever the chunk sizes, both sides finish and the payload
        arrives intact.
        """

        def chunks(data: bytes) -> Iterable[bytes]:
            out, start, i = [], 0, 0
            while start < len(data):
                out.append(data[start : start + sizes[i % len(sizes)]])
                start += sizes[i % len(sizes)]
                i += 1
            return out

        initiator = MSEInitiator(INFO_HASH, provide, BT_HANDSHAKE)
        responder = MSEResponder(lookupFor(INFO_HASH), preferRC4=preferRC4)
        atI, atR = exchange(initiator, responder, chunks, fromI, fromR)
        self.assertEqual(atI, fromR)
        self.assertEqual(atR, BT_HANDSHAKE + fromI)
        expected = provide if provide != BOTH else (2 if preferRC4 else 1)
        self.assertEqual(initiator.selected, expected)


class SpecificationTests(SynchronousTestCase):
    """
    Each side against a peer written from the specification: the bytes are
    the specification's.
    """

    def test_initiatorSteps(self):
        """
        Step 1 is Ya and PadA; step 3 carries HASH('req1', S),
        HASH('req2', SKEY) xor HASH('req3', S), then VC, crypto_provide,
        PadC, len(IA) and IA encrypted with HASH('keyA', S, SKEY).
        """
        peer = SpecResponder()
        initiator = MSEInitiator(INFO_HASH, BOTH, BT_HANDSHAKE, rng=padRng(300))
        step1 = initiator.start()
        self.assertEqual(len(step1), 96 + 300)
        step3 = initiator.dataReceived(peer.step2(step1, b"B" * 17))
        provide, padC, ia = peer.readStep3(step3)
        self.assertEqual((provide, len(padC), ia), (BOTH, 300, BT_HANDSHAKE))
        self.assertFalse(initiator.done)
        self.assertEqual(
            initiator.dataReceived(
                peer.step4(CRYPTO_RC4, b"D" * 5) + peer.encrypt(b"hi")
            ),
            b"",
        )
        self.assertTrue(initiator.done)
        self.assertEqual(initiator.remainder, b"hi")
        self.assertEqual(peer.decrypt(initiator.encrypt(b"ho")), b"ho")

    def test_initiatorPlaintextSelected(self):
        """
        With plaintext selected, what follows PadD is not encrypted.
        """
        peer = SpecResponder()
        initiator = MSEInitiator(INFO_HASH, BOTH, BT_HANDSHAKE)
        initiator.dataReceived(peer.step2(initiator.start()))
        initiator.dataReceived(peer.step4(CRYPTO_PLAINTEXT) + BT_HANDSHAKE)
        self.assertEqual(initiator.selected, CRYPTO_PLAINTEXT)
        self.assertEqual(initiator.remainder, BT_HANDSHAKE)

    def test_responderSteps(self):
        """
        The responder answers Ya with Yb and PadB, and step 3 with VC,
        crypto_select and PadD encrypted with HASH('keyB', S, SKEY).
        """
        peer = SpecInitiator()
        responder = MSEResponder(lookupFor(INFO_HASH), rng=padRng(200))
        step2 = responder.dataReceived(peer.step1(b"A" * 400))
        self.assertEqual(len(step2), 96 + 200)
        step4 = responder.dataReceived(
            peer.step3(step2[:96], BOTH, b"C" * 33, BT_HANDSHAKE)
        )
        select, padD, rest = peer.readStep4(step4)
        self.assertEqual((select, len(padD), rest), (CRYPTO_RC4, 200, b""))
        self.assertTrue(responder.done)
        self.assertEqual(responder.initialPayload, BT_HANDSHAKE)
        self.assertEqual(peer.decrypt(responder.encrypt(b"yes")), b"yes")
        self.assertEqual(responder.decrypt(peer.encrypt(b"no")), b"no")

    def test_req1AtTheEndOfTheWindow(self):
        """
        PadA may be 512 bytes: HASH('req1', S) then ends 628 bytes in.
        """
        peer = SpecInitiator()
        responder = MSEResponder(lookupFor(INFO_HASH))
        step2 = responder.dataReceived(peer.step1(os.urandom(512)))
        responder.dataReceived(peer.step3(step2[:96], ia=b"ia"))
        self.assertTrue(responder.done)

    def test_vcAtTheEndOfTheWindow(self):
        """
        PadB may be 512 bytes: the encrypted VC then ends 616 bytes in.
        """
        peer = SpecResponder()
        initiator = MSEInitiator(INFO_HASH)
        initiator.dataReceived(peer.step2(initiator.start(), os.urandom(512)))
        initiator.dataReceived(peer.step4(CRYPTO_RC4))
        self.assertTrue(initiator.done)


class BrokenPeerTests(SynchronousTestCase):
    """
    Whatever is wrong raises L{MSEError}, as soon as it can be seen, and
    the machine stays broken.
    """

    def responderAfterStep2(self, padA=b"", **policy):
        peer = SpecInitiator()
        responder = MSEResponder(lookupFor(INFO_HASH), **policy)
        step2 = responder.dataReceived(peer.step1(padA))
        return peer, responder, step2[:96]

    def assertBroken(self, machine, data):
        self.assertRaises(MSEError, machine.dataReceived, data)
        # Dead for good, and holding nothing.
        self.assertRaises(MSEError, machine.dataReceived, b"more")
        self.assertEqual(len(machine._buffer), 0)
        self.assertFalse(machine.done)

    def test_unknownInfoHash(self):
        peer, responder, yb = self.responderAfterStep2()
        self.assertBroken(responder, peer.step3(yb, skey=OTHER_HASH))

    def test_badVerificationConstant(self):
        peer, responder, yb = self.responderAfterStep2()
        self.assertBroken(responder, peer.step3(yb, vc=b"\x00" * 7 + b"\x01"))

    def test_responderRefusesPlaintext(self):
        peer, responder, yb = self.responderAfterStep2(allowPlaintext=False)
        self.assertBroken(responder, peer.step3(yb, provide=CRYPTO_PLAINTEXT))

    def test_responderRefusesRC4(self):
        peer, responder, yb = self.responderAfterStep2(allowRC4=False)
        self.assertBroken(responder, peer.step3(yb, provide=CRYPTO_RC4))

    def test_nothingProvided(self):
        for provide in (0, 0x04, 0xFFFFFFFC):
            peer, responder, yb = self.responderAfterStep2()
            self.assertBroken(responder, peer.step3(yb, provide=provide))

    def test_unknownBitsIgnored(self):
        """
        Bits of crypto_provide we do not know are ignored.
        """
        peer, responder, yb = self.responderAfterStep2()
        responder.dataReceived(peer.step3(yb, provide=0xFFFFFFFF))
        self.assertEqual(responder.selected, CRYPTO_RC4)

    def test_padCTooLong(self):
        peer, responder, yb = self.responderAfterStep2()
        self.assertBroken(responder, peer.step3(yb, padC=bytes(513)))

    def test_initialPayloadTooLong(self):
        peer = SpecInitiator()
        responder = MSEResponder(lookupFor(INFO_HASH), maxInitialPayload=68)
        yb = responder.dataReceived(peer.step1())[:96]
        self.assertBroken(responder, peer.step3(yb, ia=bytes(69)))

    def test_noReq1WithinTheWindow(self):
        """
        Without HASH('req1', S) in the 532 bytes after Ya (PadA of 512 and
        the hash), the responder gives up at the 532nd byte, not later.
        """
        peer, responder, yb = self.responderAfterStep2()
        garbage = os.urandom(531)
        for i in range(len(garbage)):
            responder.dataReceived(garbage[i : i + 1])
        self.assertLessEqual(len(responder._buffer), 531)
        self.assertBroken(responder, b"x")

    def test_req1OneByteTooLate(self):
        peer, responder, yb = self.responderAfterStep2(padA=os.urandom(513))
        self.assertBroken(responder, peer.step3(yb))

    def test_tenMegabytesOfPadding(self):
        """
        An initiator that sends 10 MB of "padding" is refused within the
        window, whether the bytes come at once or in 64 KiB pieces.
        """
        peer = SpecInitiator()
        garbage = peer.step1(os.urandom(10 * 1024 * 1024))
        responder = MSEResponder(lookupFor(INFO_HASH))
        self.assertBroken(responder, garbage)
        responder = MSEResponder(lookupFor(INFO_HASH))
        with self.assertRaises(MSEError):
            for start in range(0, len(garbage), 65536):
                responder.dataReceived(garbage[start : start + 65536])
        self.assertEqual(start, 0)

    def test_noVCWithinTheWindow(self):
        """
        Without the encrypted VC in the 520 bytes after Yb (PadB of 512 and
        VC), the initiator gives up at the 520th byte.
        """
        peer = SpecResponder()
        initiator = MSEInitiator(INFO_HASH)
        initiator.dataReceived(peer.step2(initiator.start()))
        garbage = os.urandom(519)
        for i in range(len(garbage)):
            initiator.dataReceived(garbage[i : i + 1])
        self.assertBroken(initiator, b"x")

    def test_vcOneByteTooLate(self):
        peer = SpecResponder()
        initiator = MSEInitiator(INFO_HASH)
        initiator.dataReceived(peer.step2(initiator.start(), os.urandom(513)))
        self.assertBroken(initiator, peer.step4(CRYPTO_RC4))

    def test_badSelect(self):
        """
        crypto_select must be one method, one we provided.
        """
        for provide, select in [
            (BOTH, 0),
            (BOTH, BOTH),
            (BOTH, 4),
            (CRYPTO_RC4, CRYPTO_PLAINTEXT),
            (CRYPTO_PLAINTEXT, CRYPTO_RC4),
        ]:
            peer = SpecResponder()
            initiator = MSEInitiator(INFO_HASH, provide)
            initiator.dataReceived(peer.step2(initiator.start()))
            self.assertBroken(initiator, peer.step4(select))

    def test_padDTooLong(self):
        peer = SpecResponder()
        initiator = MSEInitiator(INFO_HASH)
        initiator.dataReceived(peer.step2(initiator.start()))
        self.assertBroken(initiator, peer.step4(CRYPTO_RC4, bytes(513)))

    def test_badPublicKey(self):
        responder = MSEResponder(lookupFor(INFO_HASH))
        self.assertBroken(responder, (1).to_bytes(96, "big"))
        initiator = MSEInitiator(INFO_HASH)
        initiator.start()
        self.assertBroken(initiator, P.to_bytes(96, "big"))

    def test_wrongKeyOnOneSide(self):
        """
        An initiator that asks for a torrent the responder also serves, but
        keys its RC4 with another, fails on VC.
        """
        peer = SpecInitiator()
        responder = MSEResponder(lookupFor(INFO_HASH, OTHER_HASH))
        yb = responder.dataReceived(peer.step1())[:96]
        data = bytearray(peer.step3(yb, skey=OTHER_HASH))
        data[20:40] = xor(sha1(b"req2", INFO_HASH), sha1(b"req3", peer.secret))
        self.assertBroken(responder, bytes(data))

    def test_truncatedStreams(self):
        """
        Any prefix of a good stream leaves either side waiting: not done,
        no error.
        """
        peer = SpecInitiator()
        responder = MSEResponder(lookupFor(INFO_HASH))
        step1 = peer.step1(os.urandom(100))
        for n in range(len(step1)):
            MSEResponder(lookupFor(INFO_HASH)).dataReceived(step1[:n])
        yb = responder.dataReceived(step1)[:96]
        step3 = peer.step3(yb, padC=b"c" * 10, ia=BT_HANDSHAKE)
        for n in range(len(step3)):
            fresh = MSEResponder(lookupFor(INFO_HASH))
            fresh._x = responder._x
            fresh.dataReceived(step1)
            fresh.dataReceived(step3[:n])
            self.assertFalse(fresh.done)
        responder.dataReceived(step3)
        self.assertTrue(responder.done)

    def test_constructorChecks(self):
        self.assertRaises(ValueError, MSEInitiator, b"short")
        self.assertRaises(ValueError, MSEInitiator, INFO_HASH, 0)
        self.assertRaises(ValueError, MSEInitiator, INFO_HASH, 4)
        self.assertRaises(
            ValueError, MSEInitiator, INFO_HASH, BOTH, bytes(INITIAL_PAYLOAD_MAX + 1)
        )
        self.assertRaises(ValueError, MSEInitiator, INFO_HASH, maxPad=513)
        self.assertRaises(
            ValueError,
            MSEResponder,
            lookupFor(INFO_HASH),
            allowPlaintext=False,
            allowRC4=False,
        )
        self.assertRaises(
            ValueError, MSEResponder, lookupFor(INFO_HASH), maxInitialPayload=70000
        )
        self.assertRaises(RuntimeError, MSEInitiator(INFO_HASH).dataReceived, b"x")

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=2000), st.integers(1, 700))
    def test_garbageToResponder(self, data, size):
        """
        Random bytes make the responder wait or raise L{MSEError}, never
        anything else, and it never holds more than Ya and its window.
        """
        responder = MSEResponder(lookupFor(INFO_HASH))
        try:
            for start in range(0, len(data), size):
                responder.dataReceived(data[start : start + size])
                self.assertLess(len(responder._buffer), 96 + 532)
        except MSEError:
            pass
        self.assertFalse(responder.done)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=2000), st.integers(1, 700))
    def test_garbageToInitiator(self, data, size):
        initiator = MSEInitiator(INFO_HASH)
        initiator.start()
        try:
            for start in range(0, len(data), size):
                initiator.dataReceived(data[start : start + size])
                self.assertLess(len(initiator._buffer), 96 + 520)
        except MSEError:
            pass
        self.assertFalse(initiator.done)

    @settings(max_examples=100, deadline=None)
    @given(st.binary(min_size=1, max_size=200), st.integers(0, 700))
    def test_garbageAfterTheKeys(self, garbage, offset):
        """
        A good step 1 followed by garbage in step 3 never completes nor
        raises anything but L{MSEError}.
        """
        peer = SpecInitiator()
        responder = MSEResponder(lookupFor(INFO_HASH))
        yb = responder.dataReceived(peer.step1())[:96]
        step3 = bytearray(peer.step3(yb, ia=BT_HANDSHAKE))
        offset %= len(step3)
        step3[offset : offset + len(garbage)] = garbage
        try:
            responder.dataReceived(bytes(step3))
        except MSEError:
            return
        # Garbage that happened to leave every checked field intact (pads,
        # IA): then it completed or waits.
        self.assertLess(len(responder._buffer), 628 + 34 + 514 + 65535)
