"""
A fixed-length set of piece indexes, in the wire's bit order.

Backed by a C{bytearray} laid out exactly as a C{bitfield} message (the high
bit of byte 0 is piece 0), so that L{Bitfield.toBytes} and
L{Bitfield.fromBytes} are a copy each; the number of pieces set is kept up
to date so that L{Bitfield.count} and L{Bitfield.complete} cost nothing.
"""

from __future__ import annotations

from typing import Iterator, Tuple

__all__ = ["Bitfield"]

# For each byte value: the number of bits set, and the bit offsets set
# (0 = the high bit), ascending.
_POPCOUNT = bytes(bin(i).count("1") for i in range(256))
_OFFSETS: Tuple[Tuple[int, ...], ...] = tuple(
    tuple(bit for bit in range(8) if i & (0x80 >> bit)) for i in range(256)
)


class Bitfield:
    """
    The set of pieces (of C{length}) that a peer or we have.

    @ivar count: how many pieces are set.
    """

    __slots__ = ("_bits", "_length", "count")

    def __init__(self, length: int) -> None:
        """
        @param length: the number of pieces; all start unset.
        """
        if length < 0:
            raise ValueError(f"negative bitfield length {length}")
        self._length = length
        self._bits = bytearray((length + 7) >> 3)
        self.count = 0

    @classmethod
    def fromBytes(cls, data: bytes, length: int) -> Bitfield:
        """
        Build a bitfield from its wire form.

        @param data: exactly C{ceil(length / 8)} bytes.
        @param length: the number of pieces.
        @raise ValueError: for the wrong number of bytes or a spare bit (past
            C{length}) set.
        """
        size = (length + 7) >> 3
        if len(data) != size:
            raise ValueError(
                f"bitfield of {len(data)} bytes for {length} pieces, not {size}"
            )
        spare = size * 8 - length
        if spare and data[-1] & ((1 << spare) - 1):
            raise ValueError("bitfield has spare bits set")
        self = cls.__new__(cls)
        self._length = length
        self._bits = bytearray(data)
        self.count = sum(self._bits.translate(_POPCOUNT))
        return self

    @classmethod
    def full(cls, length: int) -> Bitfield:
        """
        A bitfield of C{length} pieces, all set.
        """
        self = cls(length)
        size = len(self._bits)
        if size:
            self._bits[:] = b"\xff" * size
            spare = size * 8 - length
            self._bits[-1] &= (0xFF << spare) & 0xFF
        self.count = length
        return self

    def copy(self) -> Bitfield:
        """
        @return: an independent copy.
        """
        other = Bitfield.__new__(Bitfield)
        other._length = self._length
        other._bits = bytearray(self._bits)
        other.count = self.count
        return other

    def difference(self, other: Bitfield) -> Bitfield:
        """
        The pieces set here and not in C{other}, computed a machine word at
        a time (a peer's repeated bitfields cost no loop over the pieces).

        @raise ValueError: for bitfields of different lengths.
        """
        if other._length != self._length:
            raise ValueError(f"bitfields of {self._length} and {other._length} pieces")
        size = len(self._bits)
        bits = int.from_bytes(self._bits, "big") & ~int.from_bytes(other._bits, "big")
        result = Bitfield.__new__(Bitfield)
        result._length = self._length
        result._bits = bytearray(bits.to_bytes(size, "big"))
        result.count = sum(result._bits.translate(_POPCOUNT))
        return result

    def toBytes(self) -> bytes:
        """
        @return: the wire form (spare bits zero).
        """
        return bytes(self._bits)

    def _check(self, index: int) -> None:
        if not 0 <= index < self._length:
            raise IndexError(f"piece {index} out of range 0..{self._length - 1}")

    def add(self, index: int) -> None:
        """
        Set piece C{index}.

        @raise IndexError: for an index out of range.
        """
        if not 0 <= index < self._length:
            self._check(index)
        mask = 0x80 >> (index & 7)
        byte = self._bits[index >> 3]
        if not byte & mask:
            self._bits[index >> 3] = byte | mask
            self.count += 1

    def discard(self, index: int) -> None:
        """
        Unset piece C{index} (nothing happens if it is not set).

        @raise IndexError: for an index out of range.
        """
        if not 0 <= index < self._length:
            self._check(index)
        mask = 0x80 >> (index & 7)
        byte = self._bits[index >> 3]
        if byte & mask:
            self._bits[index >> 3] = byte & ~mask
            self.count -= 1

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int) or not 0 <= index < self._length:
            return False
        return bool(self._bits[index >> 3] & (0x80 >> (index & 7)))

    def __len__(self) -> int:
        return self._length

    @property
    def complete(self) -> bool:
        """
        C{True} when every piece is set.
        """
        return self.count == self._length

    def __iter__(self) -> Iterator[int]:
        """
        The indexes set, ascending.
        """
        offsets = _OFFSETS
        for byteIndex, byte in enumerate(self._bits):
            if byte:
                base = byteIndex << 3
                for bit in offsets[byte]:
                    yield base + bit

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bitfield):
            return NotImplemented
        return self._length == other._length and self._bits == other._bits

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Bitfield {self.count}/{self._length}>"
