"""
The framing of the peer wire: a byte stream in, the handshake and then
decoded messages out, without I/O (L{MessageFramer}).

The handshake is 68 bytes, its 20-byte prefix checked as it arrives.  Then
every message is a 4-byte big-endian length and that many bytes.  The
length is checked against the longest message the torrent allows before
anything is buffered; a message split across reads is gathered once, when
all of it is here; keep-alives (length 0) are taken at a bounded rate.
Everything a message means (is its piece index in range? is it allowed
now?) is L{btorrent.peer.connection}'s.

This is the hot path of a download: one call per read (64 KiB to 256 KiB),
one pass over every complete message of the buffer with an offset, and no
copy but each message's own payload (a block is sliced out once).
"""

from __future__ import annotations

import struct
from typing import Any, List, Optional, Tuple

from btorrent.codec import wire
from btorrent.codec.wire import (
    HANDSHAKE_LENGTH,
    HANDSHAKE_PREFIX,
    Handshake,
    WireError,
    decodeHandshake,
    decodeMessageAt,
)

__all__ = [
    "KEEPALIVE_BURST",
    "READ_SIZE",
    "MessageFramer",
    "setBufferSizes",
    "setReadSize",
]

#: Keep-alives a peer may send back to back; beyond that, one a second on
#: average (clients send one every minute or two).  A peer sending more is
#: dropped: a flood of 4-byte messages costs CPU and proves nothing.
KEEPALIVE_BURST = 100

#: Bytes a peer's TCP transport reads (and sends) at once (Twisted's
#: defaults are 64 KiB and 128 KiB): a 1 GiB download is 4,096 reads
#: instead of 16,384, each one a reactor wake-up, a C{recv} and a call into
#: the framer.
READ_SIZE = 256 * 1024

_unpackLength = struct.Struct(">I").unpack_from
# The pieces of a partial message kept as they came before the rest is
# gathered in one bytearray.
_MAX_PENDING_PIECES = 64


def setBufferSizes(transport, size: int = READ_SIZE) -> None:
    """
    Make a TCP transport read and send up to C{size} bytes at a time
    (Twisted's C{bufferSize}, which is also how much it buffers before it
    pauses its producer, and C{SEND_LIMIT}, 128 KiB by default: seeding
    1 GiB took 8,192 sends).  A transport without them, such as a test's,
    is left alone.
    """
    if hasattr(transport, "bufferSize"):
        transport.bufferSize = size
    if hasattr(transport, "SEND_LIMIT"):
        transport.SEND_LIMIT = size


def setReadSize(transport, size: int) -> None:
    """
    Make C{transport} (a TCP transport, or a wrapper such as the
    encryption's that passes C{bufferSize} on) read up to C{size} bytes at
    a time.  A transport without C{bufferSize} is left alone.
    """
    if transport is not None and hasattr(transport, "bufferSize"):
        transport.bufferSize = size


class MessageFramer:
    """
    Splits what a peer sends after its handshake into messages.

    @ivar maxLength: the longest message allowed (a longer length prefix is
        an error before anything is buffered).
    @ivar reportKeepAlives: return keep-alives too (for a debug log);
        otherwise they are only counted against the flood limit.
    """

    __slots__ = (
        "clock",
        "maxLength",
        "reportKeepAlives",
        "_leftover",
        "_pending",
        "_pendingSize",
        "_pendingNeed",
        "_keepAliveTokens",
        "_keepAliveRefilled",
    )

    def __init__(self, clock, maxLength: int = 0) -> None:
        """
        @param clock: provides C{seconds()} (the keep-alive rate).
        @param maxLength: the longest message allowed.
        """
        self.clock = clock
        self.maxLength = maxLength
        self.reportKeepAlives = False
        self._leftover = b""
        self._pending: list = []
        self._pendingSize = 0
        self._pendingNeed = 0
        # A token bucket for keep-alives: tokens left, and when it was last
        # refilled (lazily, when it runs dry).
        self._keepAliveTokens = KEEPALIVE_BURST
        self._keepAliveRefilled = clock.seconds()

    def start(self, now: float) -> None:
        """
        The connection starts now: the keep-alive bucket is full.
        """
        self._keepAliveTokens = KEEPALIVE_BURST
        self._keepAliveRefilled = now

    def clear(self) -> None:
        """
        Forget every buffered byte.
        """
        self._leftover = b""
        self._pending = []
        self._pendingSize = 0
        self._pendingNeed = 0

    @property
    def buffered(self) -> int:
        """
        Bytes held of a message not complete yet.
        """
        return len(self._leftover) + self._pendingSize

    def feedHandshake(self, data) -> Tuple[Optional[Handshake], bytes, Optional[str]]:
        """
        Take bytes read before the peer's handshake is complete.

        @return: C{(handshake, rest, fault)}: the handshake once all of it
            is here (else C{None}) and the bytes after it, or why the
            stream is not a BitTorrent handshake.
        """
        buf = self._leftover + data
        n = min(len(buf), len(HANDSHAKE_PREFIX))
        if buf[:n] != HANDSHAKE_PREFIX[:n]:
            return None, b"", "not a BitTorrent handshake"
        if len(buf) < HANDSHAKE_LENGTH:
            self._leftover = buf
            return None, b"", None
        self._leftover = b""
        return decodeHandshake(buf[:HANDSHAKE_LENGTH]), buf[HANDSHAKE_LENGTH:], None

    def feed(self, data) -> Tuple[List[Any], Optional[str]]:
        """
        Take bytes read from the peer.

        @return: the messages completed (L{btorrent.codec.wire} values, in
            order), and C{None} or why the stream is broken (then the
            messages are those before the fault, and the framer is not to
            be fed again).
        """
        messages: List[Any] = []
        offset = 0
        if type(data) is not bytes:
            # What is kept of a read (a partial message) must not change or
            # pin the caller's buffer, and blocks are views of bytes only.
            data = bytes(data)
        if self._pendingNeed:
            # Collecting a message longer than what we had: join only when
            # all of it is here.  A peer dribbling bytes would make one
            # object per byte: past a few pieces, gather them in one buffer.
            pending = self._pending
            missing = self._pendingNeed - self._pendingSize
            if len(data) < missing:
                if type(pending[-1]) is bytearray:
                    pending[-1] += data
                elif len(pending) < _MAX_PENDING_PIECES:
                    pending.append(data)
                else:
                    pending.append(bytearray(data))
                self._pendingSize += len(data)
                return messages, None
            # It ends in this read: join its own bytes only (not the whole
            # read, a second copy of every byte downloaded), and go on
            # with the rest of the read where it is.
            pending.append(data[:missing] if len(data) > missing else data)
            message = b"".join(pending)
            self._pending = []
            self._pendingSize = self._pendingNeed = 0
            try:
                messages.append(decodeMessageAt(message, 4, len(message)))
            except WireError as e:
                return messages, str(e)
            buf, offset = data, missing
        elif self._leftover:
            buf = self._leftover + data
            self._leftover = b""
        else:
            buf = data
        append = messages.append
        decode = decodeMessageAt
        end = len(buf)
        maxLength = self.maxLength
        while end - offset >= 4:
            (length,) = _unpackLength(buf, offset)
            if length > maxLength:
                return (
                    messages,
                    f"message of {length} bytes, longest allowed {maxLength}",
                )
            stop = offset + 4 + length
            if stop > end:
                self._pending = [buf[offset:]]
                self._pendingSize = end - offset
                self._pendingNeed = 4 + length
                return messages, None
            if length == 0:
                offset = stop
                if self._keepAliveTokens:
                    self._keepAliveTokens -= 1
                elif not self._refillKeepAlives():
                    return messages, "keep-alive flood"
                if self.reportKeepAlives:
                    append(wire.KEEP_ALIVE)
                continue
            try:
                append(decode(buf, offset + 4, stop))
            except WireError as e:
                return messages, str(e)
            offset = stop
        if offset < end:
            self._leftover = buf[offset:]
        return messages, None

    def _refillKeepAlives(self) -> bool:
        """
        The keep-alive bucket is empty: add a token per second since it was
        last refilled (at most L{KEEPALIVE_BURST}) and take one.

        @return: whether there was one to take.
        """
        now = self.clock.seconds()
        tokens = int(now - self._keepAliveRefilled)
        if tokens <= 0:
            return False
        if tokens >= KEEPALIVE_BURST:
            tokens = KEEPALIVE_BURST
            self._keepAliveRefilled = now
        else:
            # Keep the fraction of a second towards the next token.
            self._keepAliveRefilled += tokens
        self._keepAliveTokens = tokens - 1
        return True
