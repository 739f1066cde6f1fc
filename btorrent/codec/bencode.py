"""
Bencoding (BEP 3), strict.

This is the only module that imports L{bcoding}.  bcoding on its own is
lenient: it accepts a truncated dictionary (C{d3:fooi42e}), non-canonical
integers (C{i01e}, C{i-0e}), turns UTF-8-valid binary strings into C{str},
and recurses without bound.  We therefore run a strict, iterative scanner
over the input first; only input that passes it is handed to bcoding, and
whatever bcoding returns is normalised so that every string and every
dictionary key is C{bytes}.

The scanner also records where each value of a top-level dictionary stands
in the input, so that callers can hash the raw bytes of C{info} exactly as
they are in the file (L{decodeWithSpans}).

L{decode} and L{decodeWithSpans} refuse anything after the value.
L{decodePrefixWithSpans} reads one value from the start of its input and
ignores what follows: a C{.torrent} file with a trailing newline or other
junk after its top-level dictionary is loaded by libtorrent, so
L{btorrent.codec.metainfo} loads it too.  The value itself is as strictly checked
as ever.

L{encode} raises only L{BencodeError}, whatever it is given.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Tuple, Union

import bcoding

__all__ = [
    "BencodeError",
    "MAX_DEPTH",
    "decode",
    "decodePrefixWithSpans",
    "decodeWithSpans",
    "encode",
]

#: The deepest nesting of lists and dictionaries we accept (libtorrent: 100).
MAX_DEPTH = 100

Bencodable = Union[int, bytes, list, dict]

_INT = re.compile(rb"i(-?(?:0|[1-9][0-9]*))e")
_LENGTH = re.compile(rb"(0|[1-9][0-9]*):")
_DIGITS = frozenset(b"0123456789")
# A string length with more digits than this cannot fit in any input (and
# int() refuses more than 4300 digits with a ValueError of its own).
_MAX_LENGTH_DIGITS = 18
_I, _L, _D, _E = ord("i"), ord("l"), ord("d"), ord("e")
_LIST = "list"  # the scanner's frame for a list being read


class BencodeError(ValueError):
    """
    The input is not one well-formed, canonical bencoded value.
    """


class _DictFrame:
    """
    Scanner state for one dictionary being read.
    """

    __slots__ = ("keys", "key", "expectKey")

    def __init__(self) -> None:
        self.keys: set = set()
        self.key: bytes = b""
        self.expectKey = True


def _scan(
    data: bytes, maxDepth: int, trailing: bool = False
) -> Tuple[Dict[bytes, Tuple[int, int]], int]:
    """
    Check that C{data} is exactly one strict bencoded value (or, with
    C{trailing}, starts with one).

    @param trailing: accept anything after the value.
    @return: for a top-level dictionary, its keys mapped to the C{(start,
        end)} offsets of their raw values (otherwise an empty dict), and the
        offset where the value ends.
    @raise BencodeError: on any problem, naming the offset.
    """
    n = len(data)
    pos = 0
    stack: list = []
    spans: Dict[bytes, Tuple[int, int]] = {}
    valueStart = 0
    while True:
        if pos >= n:
            if not stack and pos == 0:
                raise BencodeError("empty input")
            raise BencodeError(f"truncated input: ended at offset {pos}")
        top = stack[-1] if stack else None
        c = data[pos]
        if stack and c == _E:
            if type(top) is _DictFrame and not top.expectKey:
                raise BencodeError(f"dictionary key without a value at {pos}")
            stack.pop()
            pos += 1
        else:
            if type(top) is _DictFrame and top.expectKey:
                if c not in _DIGITS:
                    raise BencodeError(f"dictionary key is not a string at {pos}")
                m = _LENGTH.match(data, pos)
                if m is None:
                    raise BencodeError(f"malformed string length at {pos}")
                start = m.end()
                if m.end(1) - pos > _MAX_LENGTH_DIGITS:
                    raise BencodeError(f"truncated string at {pos}")
                end = start + int(m.group(1))
                if end > n:
                    raise BencodeError(f"truncated string at {pos}")
                key = data[start:end]
                if key in top.keys:
                    raise BencodeError(f"duplicate dictionary key {key!r} at {pos}")
                top.keys.add(key)
                top.key = key
                top.expectKey = False
                pos = end
                continue
            if len(stack) == 1:
                valueStart = pos
            if c == _I:
                m = _INT.match(data, pos)
                if m is None:
                    raise BencodeError(f"malformed integer at {pos}")
                if m.group(1) == b"-0":
                    raise BencodeError(f"malformed integer at {pos}")
                pos = m.end()
            elif c in _DIGITS:
                m = _LENGTH.match(data, pos)
                if m is None:
                    raise BencodeError(f"malformed string length at {pos}")
                if m.end(1) - pos > _MAX_LENGTH_DIGITS:
                    raise BencodeError(f"truncated string at {pos}")
                pos = m.end() + int(m.group(1))
                if pos > n:
                    raise BencodeError(f"truncated string at {m.start()}")
            elif c == _L or c == _D:
                if len(stack) >= maxDepth:
                    raise BencodeError(f"nesting deeper than {maxDepth} at {pos}")
                stack.append(_DictFrame() if c == _D else _LIST)
                pos += 1
                continue
            else:
                raise BencodeError(f"unexpected byte {bytes([c])!r} at {pos}")
        # A value (or a container) has just ended at pos.
        if not stack:
            if pos != n and not trailing:
                raise BencodeError(f"trailing data at offset {pos}")
            return spans, pos
        top = stack[-1]
        if type(top) is _DictFrame:
            if len(stack) == 1:
                spans[top.key] = (valueStart, pos)
            top.expectKey = True


def _normalise(value: Any) -> Bencodable:
    """
    Turn what bcoding returns into bytes-only values.

    bcoding decodes strings that happen to be valid UTF-8 into C{str};
    encoding them back to UTF-8 restores the exact original bytes.
    """
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        return {
            (k.encode("utf-8") if isinstance(k, str) else k): _normalise(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _decode(
    data: bytes, maxDepth: int, trailing: bool
) -> Tuple[Bencodable, Dict[bytes, Tuple[int, int]], int]:
    """
    Scan, then decode with bcoding: the body of the public decoders.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BencodeError(f"expected bytes, not {type(data).__name__}")
    data = bytes(data)
    spans, end = _scan(data, maxDepth, trailing)
    try:
        value = bcoding.bdecode(data[:end] if end != len(data) else data)
    except (ValueError, TypeError, AssertionError, RecursionError) as e:
        # The scanner accepts only input bcoding can read; keep the promise
        # of one exception type all the same.
        raise BencodeError(f"undecodable input: {e}") from None
    return _normalise(value), spans, end


def decodeWithSpans(
    data: bytes, maxDepth: int = MAX_DEPTH
) -> Tuple[Bencodable, Dict[bytes, Tuple[int, int]]]:
    """
    Decode one strict bencoded value.

    @param data: the whole input; nothing may follow the value.
    @return: the value (strings and keys as C{bytes}) and, for a top-level
        dictionary, each key mapped to the C{(start, end)} offsets of its raw
        value in C{data}, so that C{data[start:end]} is that value exactly as
        encoded in the input.
    @raise BencodeError: if C{data} is not exactly one valid value.
    """
    value, spans, _ = _decode(data, maxDepth, False)
    return value, spans


def decodePrefixWithSpans(
    data: bytes, maxDepth: int = MAX_DEPTH
) -> Tuple[Bencodable, Dict[bytes, Tuple[int, int]], int]:
    """
    Decode the strict bencoded value at the start of C{data}, ignoring
    whatever follows it (for C{.torrent} files, which other clients load
    with trailing bytes).

    @return: the value and the spans as L{decodeWithSpans} gives them, and
        the offset in C{data} where the value ends.
    @raise BencodeError: if C{data} does not start with one valid value.
    """
    return _decode(data, maxDepth, True)


def decode(data: bytes, maxDepth: int = MAX_DEPTH) -> Bencodable:
    """
    Decode one strict bencoded value; strings and keys come back as C{bytes}.

    @raise BencodeError: if C{data} is not exactly one valid value.
    """
    return decodeWithSpans(data, maxDepth)[0]


def _check(value: Any, depth: int) -> Any:
    """
    Validate a value for encoding and convert C{str} to UTF-8 C{bytes}.
    """
    if depth > MAX_DEPTH:
        raise BencodeError(f"nesting deeper than {MAX_DEPTH}")
    if isinstance(value, bool) or value is None:
        raise BencodeError(f"cannot bencode {value!r}")
    if isinstance(value, int):
        # A plain int: a subclass could print as something other than digits.
        return int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return str.encode(value, "utf-8")
        except UnicodeEncodeError as e:
            # A lone surrogate, say: text that has no UTF-8 form.
            raise BencodeError(f"string is not encodable as UTF-8: {e}") from None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = _check(k, depth + 1)
            if not isinstance(key, bytes):
                raise BencodeError(f"dictionary key {k!r} is not a string")
            if key in out:
                raise BencodeError(f"duplicate dictionary key {key!r}")
            out[key] = _check(v, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_check(v, depth + 1) for v in value]
    raise BencodeError(f"cannot bencode a {type(value).__name__}")


def encode(value: Any) -> bytes:
    """
    Bencode C{value} canonically (dictionary keys in raw byte order).

    Accepts C{int} (not C{bool}), C{bytes}, C{str} (encoded as UTF-8),
    C{list}/C{tuple} and C{dict} with C{bytes} or C{str} keys.

    @raise BencodeError: for anything that cannot be bencoded (and never
        any other exception): a C{bool} or C{None}, a C{str} with a lone
        surrogate, a non-string key, nesting deeper than L{MAX_DEPTH}, an
        integer too long to print.
    """
    checked = _check(value, 0)
    try:
        return bcoding.bencode(checked)
    except (ValueError, TypeError, RecursionError) as e:
        # int -> str refuses more than sys.get_int_max_str_digits() digits.
        raise BencodeError(f"cannot bencode: {e}") from None
