"""
Message stream encryption in front of a peer protocol: a protocol that sits
between the TCP transport and the BitTorrent protocol, runs the MSE
handshake of L{btorrent.peer.mse}, then hands the wrapped protocol the
decrypted stream and encrypts what it writes.

The wrapped protocol is connected at once (it sees this wrapper as its
transport) and writes as if the connection were plain: what it writes
before the handshake is over is held back.  On an outgoing connection the
first bytes it writes (its BitTorrent handshake) become MSE's initial
payload, so they travel with step 3 instead of a round trip later.  An
incoming connection is told apart by its first bytes: a plaintext
BitTorrent handshake passes through untouched (if allowed), anything else
is taken for MSE.

Once the handshake is over the data path costs one RC4 call per chunk
(C{cryptography}'s C code) in each direction, or nothing for plaintext.
Given a C{runInThread}, big incoming chunks are decrypted in a thread
(C{cryptography} releases the GIL while RC4 runs), one job at a time per
connection and in order, what arrives meanwhile batched into the next job:
the reactor parses a chunk while the next one is decrypted.  Ciphertext
waiting for its thread is bounded (L{MAX_UNDECRYPTED}: reading pauses).

The lead's wiring, in a factory's C{buildProtocol}::

    peer = PeerProtocol(...)
    return MSEOutgoingProtocol(peer, reactor, infoHash)          # dialling
    return MSEIncomingProtocol(peer, reactor, torrentsByReq2.get)  # listening

with C{torrentsByReq2 = {mse.obfuscatedHash(ih): ih for ih in torrents}}.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Union

from twisted.internet.interfaces import IDelayedCall, IProtocol, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

from btorrent.peer.framer import READ_SIZE, setBufferSizes
from btorrent.peer.mse import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    INITIAL_PAYLOAD_MAX,
    MSEError,
    MSEInitiator,
    MSEResponder,
    detectPlaintext,
)
from btorrent.util import logs

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "INLINE_DECRYPT",
    "MAX_UNDECRYPTED",
    "MSEIncomingProtocol",
    "MSEOutgoingProtocol",
]

#: Seconds a connection may take to finish the MSE handshake (two round
#: trips and a little arithmetic) before it is dropped.
HANDSHAKE_TIMEOUT = 20.0

#: Received chunks up to this size are decrypted in the reactor thread
#: when no decryption is under way (control messages, a slow peer); bigger
#: ones go to a thread.
INLINE_DECRYPT = 16 * 1024

#: Ciphertext waiting for its thread beyond which the transport stops
#: reading until the thread caught up.
MAX_UNDECRYPTED = 4 * 1024 * 1024

log = Logger(observer=logs.observer)


def _peerName(address) -> str:
    """
    C{host:port} of a transport address, as the peer protocol names peers
    in the log.
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Decryption:
    """
    The incoming RC4 stream of one connection, decrypted in order: small
    chunks at once when nothing is under way, else in a thread, one job at
    a time, what arrives meanwhile joined into the next job.

    @ivar busy: a job is under way.
    @ivar maxWaiting: ciphertext waiting for the thread at which reading
        pauses until the job is done.
    @ivar onIdle: called once when no job is under way nor waiting (set by
        a connection that closed with ciphertext still being decrypted).
    """

    def __init__(
        self,
        decrypt: Callable[[bytes], bytes],
        runInThread: Callable,
        deliver: Callable[[bytes], None],
        pause: Callable[[bool], None],
        fail: Callable[[Failure], None],
    ) -> None:
        self._decrypt = decrypt
        self._runInThread = runInThread
        self._deliver = deliver
        self._pause = pause
        self._fail = fail
        self._waiting: list = []
        self._waitingBytes = 0
        self._paused = False
        self.maxWaiting = MAX_UNDECRYPTED
        self.busy = False
        self.discard = False
        self.onIdle: Optional[Callable[[], None]] = None

    def feed(self, data: bytes) -> None:
        """
        Ciphertext from the transport.
        """
        if not self.busy and len(data) <= INLINE_DECRYPT:
            # Nothing is waiting when nothing is under way.
            self._deliver(self._decrypt(data))
            return
        self._waiting.append(data)
        self._waitingBytes += len(data)
        if not self.busy:
            self._next()
        elif self._waitingBytes >= self.maxWaiting and not self._paused:
            self._paused = True
            self._pause(True)

    def _next(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._waitingBytes = 0
        data = waiting[0] if len(waiting) == 1 else b"".join(waiting)
        self.busy = True
        self._runInThread(self._decrypt, data).addCallbacks(self._done, self._failed)

    def _done(self, plaintext: bytes) -> None:
        self.busy = False
        if self.discard:
            return
        if self._paused:
            self._paused = False
            self._pause(False)
        if self._waiting:
            # The next job runs while this chunk is parsed.
            self._next()
        self._deliver(plaintext)
        if not self.busy and self.onIdle is not None:
            onIdle, self.onIdle = self.onIdle, None
            onIdle()

    def _failed(self, failure: Failure) -> None:
        self.busy = False
        if not self.discard:
            self.discard = True
            self._fail(failure)


class _MSEWrapper(Protocol):
    """
    What both directions share: the wrapped protocol's transport, the
    deadline, the held-back writes, the data path once ready.

    @ivar wrappedProtocol: the protocol that gets the plaintext stream.
    @ivar selected: L{CRYPTO_RC4} or L{CRYPTO_PLAINTEXT} once an MSE
        handshake is over; C{None} before, and for a plain BitTorrent
        connection without MSE.
    @ivar isEncrypted: whether the payload stream is RC4-encrypted.
    @ivar infoHash: the torrent MSE named (SKEY), once known.
    @ivar handshakeError: the L{MSEError} that ended the connection, if
        any; the wrapped protocol's C{connectionLost} gets it as reason.
    """

    disconnecting = False

    def __init__(
        self,
        wrappedProtocol: IProtocol,
        clock: IReactorTime,
        timeout: float,
        runInThread: Optional[Callable] = None,
    ) -> None:
        self.wrappedProtocol = wrappedProtocol
        self._clock = clock
        self._timeout = timeout
        self._runInThread = runInThread
        self._decryption: Optional[_Decryption] = None
        # Why reading is paused: the wrapped protocol asked, the decryption
        # thread is behind.
        self._pausedBy: set = set()
        self._deadline: Optional[IDelayedCall] = None
        self._pending = bytearray()
        self._maxWaiting = MAX_UNDECRYPTED
        self._ready = False
        self._encrypt: Optional[Callable[[bytes], bytes]] = None
        self._decrypt: Optional[Callable[[bytes], bytes]] = None
        self.selected: Optional[int] = None
        self.isEncrypted = False
        self.infoHash: Optional[bytes] = None
        self.handshakeError: Optional[MSEError] = None

    def logPrefix(self) -> str:
        return f"MSE({self.wrappedProtocol.__class__.__name__})"

    # Protocol, toward the TCP transport

    def makeConnection(self, transport) -> None:
        """
        Take the transport (and its interfaces, as
        C{twisted.protocols.policies.ProtocolWrapper} does), start the
        handshake, then connect the wrapped protocol to this wrapper.
        """
        directlyProvides(self, providedBy(transport))
        setBufferSizes(transport)
        Protocol.makeConnection(self, transport)
        self.wrappedProtocol.makeConnection(self)

    def connectionMade(self) -> None:
        self._deadline = self._clock.callLater(self._timeout, self._timedOut)

    def dataReceived(self, data: bytes) -> None:
        if self._decryption is not None:
            self._decryption.feed(data)
        elif self._decrypt is not None:
            self.wrappedProtocol.dataReceived(self._decrypt(data))
        elif self._ready:
            self.wrappedProtocol.dataReceived(data)
        elif self.handshakeError is None:
            self._handshakeData(data)

    def connectionLost(self, reason: Failure) -> None:
        self._cancelDeadline()
        if not self._ready and self.handshakeError is None:
            self.handshakeError = MSEError(
                "the connection closed during the MSE handshake"
                f" ({reason.getErrorMessage()})"
            )
        if self.handshakeError is not None:
            reason = Failure(self.handshakeError)
        decryption = self._decryption
        if decryption is not None and decryption.busy:
            if not self.disconnecting:
                # The peer closed: what it sent before is still being
                # decrypted, and is delivered first.
                decryption.onIdle = lambda: self._lost(reason)
                return
            decryption.discard = True
        self._lost(reason)

    def _lost(self, reason: Failure) -> None:
        wrapped, self.wrappedProtocol = self.wrappedProtocol, None
        if wrapped is not None:
            wrapped.connectionLost(reason)

    def _deliver(self, plaintext: bytes) -> None:
        if self.wrappedProtocol is not None and plaintext:
            self.wrappedProtocol.dataReceived(plaintext)

    def _decryptionFailed(self, failure: Failure) -> None:
        log.failure("RC4 decryption failed", failure=failure)
        self.abortConnection()

    def _pauseReading(self, reason: str, paused: bool) -> None:
        before = bool(self._pausedBy)
        if paused:
            self._pausedBy.add(reason)
        else:
            self._pausedBy.discard(reason)
        after = bool(self._pausedBy)
        if self.transport is None or before == after:
            return
        if after:
            self.transport.pauseProducing()
        else:
            self.transport.resumeProducing()

    # The handshake

    def _handshakeData(self, data: bytes) -> None:
        raise NotImplementedError()

    def _feed(self, handshake: Union[MSEInitiator, MSEResponder], data: bytes) -> None:
        """
        Give received bytes to the handshake, send its answer, finish when
        it is done.
        """
        try:
            out = handshake.dataReceived(data)
        except MSEError as e:
            self._fail(e)
            return
        self._stepped(handshake)
        if out:
            self.transport.write(out)
        if handshake.done:
            self.selected = handshake.selected
            self.infoHash = handshake.infoHash
            received = b""
            if isinstance(handshake, MSEResponder):
                received = handshake.initialPayload
            if handshake.selected == CRYPTO_RC4:
                self.isEncrypted = True
                self._encrypt, self._decrypt = handshake.encrypt, handshake.decrypt
                if self._runInThread is not None:
                    self._decryption = _Decryption(
                        handshake.decrypt,
                        self._runInThread,
                        self._deliver,
                        lambda paused: self._pauseReading("decryption", paused),
                        self._decryptionFailed,
                    )
                    self._decryption.maxWaiting = self._maxWaiting
            self._becomeReady(received + handshake.remainder)

    def _stepped(self, handshake: Union[MSEInitiator, MSEResponder]) -> None:
        """
        Called after each step of the handshake, before its answer is sent.
        """

    def _becomeReady(self, received: bytes) -> None:
        """
        The stream is open: send what the wrapped protocol wrote meanwhile,
        then give it what arrived.
        """
        self._cancelDeadline()
        self._ready = True
        if self._pending:
            pending, self._pending = bytes(self._pending), bytearray()
            self.write(pending)
        if received and self.wrappedProtocol is not None:
            self.wrappedProtocol.dataReceived(received)

    def _fail(self, error: MSEError) -> None:
        self._cancelDeadline()
        self.handshakeError = error
        self._pending = bytearray()
        log.info(
            "MSE handshake with {peer} failed: {reason}",
            peer=_peerName(self.transport.getPeer()),
            reason=str(error),
        )
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    @property
    def handshaking(self) -> bool:
        """
        Whether the MSE handshake (or, incoming, the wait for the first
        bytes) is still under way.
        """
        return not self._ready and self.handshakeError is None

    def abortHandshake(self, reason: str = "shutting down") -> None:
        """
        Abort the connection if its handshake is still under way (a server
        shutting down); a connection past it is left alone.
        """
        if self.handshaking and self.transport is not None:
            self._fail(MSEError(reason))

    def _timedOut(self) -> None:
        self._deadline = None
        self._fail(MSEError(f"no MSE handshake within {self._timeout:g} s"))

    def _cancelDeadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    # The wrapped protocol's transport

    def write(self, data: bytes) -> None:
        if self._encrypt is not None:
            self.transport.write(self._encrypt(data))
        elif self._ready:
            self.transport.write(data)
        else:
            self._pending += data

    def writeSequence(self, data) -> None:
        if self._encrypt is not None:
            encrypt = self._encrypt
            self.transport.writeSequence([encrypt(chunk) for chunk in data])
        elif self._ready:
            self.transport.writeSequence(data)
        else:
            for chunk in data:
                self._pending += chunk

    def loseConnection(self) -> None:
        self.disconnecting = True
        self.transport.loseConnection()

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.transport.abortConnection()

    def getPeer(self):
        return self.transport.getPeer()

    def getHost(self):
        return self.transport.getHost()

    @property
    def bufferSize(self) -> int:
        """
        Bytes the TCP transport reads at once (set on it: a download limit
        makes its reads small).
        """
        return self.transport.bufferSize

    @bufferSize.setter
    def bufferSize(self, size: int) -> None:
        # Reads smaller than usual mean a download limit: then at most one
        # read waits for the decryption thread (else a busy thread pool lets
        # megabytes in at once, a burst the limit must then pay back).
        self._maxWaiting = MAX_UNDECRYPTED if size >= READ_SIZE else size
        if self._decryption is not None:
            self._decryption.maxWaiting = self._maxWaiting
        if hasattr(self.transport, "bufferSize"):
            self.transport.bufferSize = size

    def pauseProducing(self) -> None:
        """
        Stop reading (the wrapped protocol asks; the decryption thread may
        hold reading paused too).
        """
        self._pauseReading("protocol", True)

    def resumeProducing(self) -> None:
        """
        Read again, unless the decryption thread is behind.
        """
        self._pauseReading("protocol", False)

    def stopProducing(self) -> None:
        self.transport.stopProducing()

    def registerProducer(self, producer, streaming) -> None:
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.transport.unregisterProducer()

    def stopConsuming(self) -> None:
        self.transport.stopConsuming()

    def __getattr__(self, name: str):
        return getattr(self.transport, name)


class MSEOutgoingProtocol(_MSEWrapper):
    """
    MSE on a connection we made: we are the initiator.
    """

    def __init__(
        self,
        wrappedProtocol: IProtocol,
        clock: IReactorTime,
        infoHash: bytes,
        provide: int = CRYPTO_PLAINTEXT | CRYPTO_RC4,
        timeout: float = HANDSHAKE_TIMEOUT,
        rng: Callable[[int], bytes] = os.urandom,
        runInThread: Optional[Callable] = None,
    ) -> None:
        """
        @param wrappedProtocol: the BitTorrent protocol.
        @param clock: for the handshake deadline.
        @param infoHash: the torrent we want from the peer.
        @param provide: the methods we accept (L{CRYPTO_PLAINTEXT},
            L{CRYPTO_RC4} or both); the peer chooses.
        @param timeout: seconds the handshake may take.
        @param rng: random bytes for keys and pads.
        @param runInThread: C{runInThread(f, *args) -> Deferred}, to
            decrypt big chunks off the reactor thread (C{None}: in it).
        """
        super().__init__(wrappedProtocol, clock, timeout, runInThread)
        self._initiator = MSEInitiator(infoHash, provide, rng=rng)
        self._initialPayloadLength = -1

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.write(self._initiator.start())

    def _handshakeData(self, data: bytes) -> None:
        initiator = self._initiator
        if not initiator.initialPayloadSent:
            # What the wrapped protocol wrote so far goes with step 3.
            initiator.initialPayload = bytes(self._pending[:INITIAL_PAYLOAD_MAX])
        self._feed(initiator, data)

    def _stepped(self, handshake: MSEInitiator) -> None:
        if handshake.initialPayloadSent and self._initialPayloadLength < 0:
            self._initialPayloadLength = len(handshake.initialPayload)
            del self._pending[: self._initialPayloadLength]


class MSEIncomingProtocol(_MSEWrapper):
    """
    MSE (or a plain BitTorrent handshake) on a connection we accepted: we
    are the responder.
    """

    def __init__(
        self,
        wrappedProtocol: IProtocol,
        clock: IReactorTime,
        lookup: Callable[[bytes], Optional[bytes]],
        allowLegacy: bool = True,
        allowPlaintext: bool = True,
        allowRC4: bool = True,
        preferRC4: bool = True,
        timeout: float = HANDSHAKE_TIMEOUT,
        rng: Callable[[int], bytes] = os.urandom,
        runInThread: Optional[Callable] = None,
    ) -> None:
        """
        @param wrappedProtocol: the BitTorrent protocol.
        @param clock: for the handshake deadline.
        @param lookup: maps HASH('req2', SKEY) to the info-hash of a torrent
            we serve, or C{None} (L{btorrent.peer.mse.obfuscatedHash}).
        @param allowLegacy: accept a plain BitTorrent handshake without MSE
            (libtorrent's C{in_enc_policy} "enabled"; C{False} is "forced").
        @param allowPlaintext: within MSE, allow selecting plaintext.
        @param allowRC4: within MSE, allow selecting RC4 (with neither,
            every MSE handshake is refused).
        @param preferRC4: select RC4 when the peer offers both.
        @param timeout: seconds the handshake may take.
        @param rng: random bytes for keys and pads.
        @param runInThread: C{runInThread(f, *args) -> Deferred}, to
            decrypt big chunks off the reactor thread (C{None}: in it).
        """
        super().__init__(wrappedProtocol, clock, timeout, runInThread)
        self._lookup = lookup
        self._allowLegacy = allowLegacy
        self._allowPlaintext = allowPlaintext
        self._allowRC4 = allowRC4
        self._preferRC4 = preferRC4
        self._rng = rng
        self._prefix = b""
        self._responder: Optional[MSEResponder] = None

    def _handshakeData(self, data: bytes) -> None:
        if self._responder is None:
            self._prefix += data
            plaintext = detectPlaintext(self._prefix)
            if plaintext is None:
                return
            data, self._prefix = self._prefix, b""
            if plaintext:
                if not self._allowLegacy:
                    self._fail(MSEError("a plaintext handshake, and we require MSE"))
                    return
                self._becomeReady(data)
                return
            if not (self._allowPlaintext or self._allowRC4):
                self._fail(MSEError("an MSE handshake, and we refuse MSE"))
                return
            self._responder = MSEResponder(
                self._lookup,
                allowPlaintext=self._allowPlaintext,
                allowRC4=self._allowRC4,
                preferRC4=self._preferRC4,
                rng=self._rng,
            )
        self._feed(self._responder, data)
