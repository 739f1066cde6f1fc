"""
Tests for L{btorrent.bencode}.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.bencode import MAX_DEPTH, BencodeError, decode, decodeWithSpans, encode

values = st.recursive(
    st.integers(min_value=-(2**70), max_value=2**70) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.binary(max_size=10), children, max_size=5),
    max_leaves=30,
)


class DecodeTests(SynchronousTestCase):
    """
    Strict decoding.
    """

    def test_values(self) -> None:
        """
        Integers, strings, lists and dictionaries decode to C{int}, C{bytes},
        C{list} and C{dict} with C{bytes} keys, even for UTF-8-valid strings.
        """
        self.assertEqual(decode(b"i42e"), 42)
        self.assertEqual(decode(b"i-7e"), -7)
        self.assertEqual(decode(b"i0e"), 0)
        self.assertEqual(decode(b"4:spam"), b"spam")
        self.assertEqual(decode(b"0:"), b"")
        self.assertEqual(decode(b"l4:spami1ee"), [b"spam", 1])
        self.assertEqual(
            decode(b"d3:cow3:moo4:spaml1:aee"), {b"cow": b"moo", b"spam": [b"a"]}
        )
        self.assertEqual(decode(b"3:\xff\x00a"), b"\xff\x00a")
        self.assertEqual(decode(b"le"), [])
        self.assertEqual(decode(b"de"), {})

    def test_rejects(self) -> None:
        """
        Every malformed input raises L{BencodeError} and nothing else.
        """
        for bad in [
            b"",
            b"d3:fooi42e",  # truncated dict (bcoding alone accepts it)
            b"i01e",  # bcoding alone accepts it
            b"i-0e",
            b"i e",
            b"ie",
            b"i12",
            b"4:spa",
            b"04:spam",
            b"-1:a",
            b"l",
            b"li1e",
            b"e",
            b"x",
            b"i1ei2e",  # trailing data
            b"di1ei2ee",  # integer key
            b"d1:ae",  # key without value
            b"d1:ai1e1:ai2ee",  # duplicate key
            b"99999999999999999999:a",
        ]:
            with self.assertRaises(BencodeError, msg=repr(bad)):
                decode(bad)

    def test_hugeNumbers(self) -> None:
        """
        A string length or an integer with more digits than Python converts
        (4300 by default) is a L{BencodeError}, not a bare C{ValueError},
        wherever it stands.
        """
        digits = b"9" * 5000
        for bad in [
            digits + b":a",
            b"l" + digits + b":ae",
            b"d" + digits + b":a1:be",
            b"d1:a" + digits + b":be",
            b"i" + digits + b"e",
            b"li" + digits + b"ee",
        ]:
            try:
                decode(bad)
            except BencodeError:
                pass
            except Exception as e:
                self.fail(f"{bad[:12]!r}...: {type(e).__name__}: {e}")
            else:
                self.fail(f"{bad[:12]!r}... decoded")

    def test_notBytes(self) -> None:
        """
        Decoding something that is not bytes is a L{BencodeError}.
        """
        self.assertRaises(BencodeError, decode, "i1e")
        self.assertRaises(BencodeError, decode, None)

    def test_depth(self) -> None:
        """
        Nesting up to L{MAX_DEPTH} decodes; one more level is refused without
        a RecursionError, however deep the input.
        """
        ok = b"l" * MAX_DEPTH + b"e" * MAX_DEPTH
        value = decode(ok)
        for _ in range(MAX_DEPTH - 1):
            value = value[0]
        self.assertEqual(value, [])
        self.assertRaises(
            BencodeError, decode, b"l" * (MAX_DEPTH + 1) + b"e" * (MAX_DEPTH + 1)
        )
        self.assertRaises(BencodeError, decode, b"l" * 100000)

    def test_spans(self) -> None:
        """
        L{decodeWithSpans} gives the raw bytes of each top-level value as
        they stand in the input, even with unsorted keys.
        """
        data = b"d4:zeta3:abc4:infod1:bi1e1:ai2eee"
        value, spans = decodeWithSpans(data)
        self.assertEqual(value[b"info"], {b"b": 1, b"a": 2})
        start, end = spans[b"info"]
        self.assertEqual(data[start:end], b"d1:bi1e1:ai2ee")
        start, end = spans[b"zeta"]
        self.assertEqual(data[start:end], b"3:abc")
        self.assertEqual(decodeWithSpans(b"li1ee")[1], {})


class EncodeTests(SynchronousTestCase):
    """
    Canonical encoding.
    """

    def test_canonical(self) -> None:
        """
        Keys come out in raw byte order; C{str} is UTF-8.
        """
        self.assertEqual(
            encode({b"b": 1, "a": [b"\xff", "x"]}), b"d1:al1:\xff1:xe1:bi1ee"
        )
        self.assertEqual(encode(-3), b"i-3e")
        self.assertEqual(encode((1, 2)), b"li1ei2ee")

    def test_rejects(self) -> None:
        """
        Values bencoding cannot express raise L{BencodeError}.
        """
        for bad in [True, None, 1.5, {1: 2}, {"a": 1, b"a": 2}, object()]:
            with self.assertRaises(BencodeError, msg=repr(bad)):
                encode(bad)


class PropertyTests(SynchronousTestCase):
    """
    Property tests with hypothesis.
    """

    @given(values)
    @settings(max_examples=300, deadline=None)
    def test_roundTrip(self, value) -> None:
        """
        C{decode(encode(v)) == v} and C{encode(decode(x)) == x} for canonical
        input.
        """
        data = encode(value)
        self.assertEqual(decode(data), value)
        self.assertEqual(encode(decode(data)), data)

    @given(st.binary(max_size=200))
    @settings(max_examples=500, deadline=None)
    def test_randomBytes(self, data) -> None:
        """
        Random bytes either decode or raise L{BencodeError}.
        """
        try:
            decode(data)
        except BencodeError:
            pass

    @given(values, st.data())
    @settings(max_examples=300, deadline=None)
    def test_mutated(self, value, data) -> None:
        """
        A valid encoding with a byte changed, removed or the tail cut off
        either decodes or raises L{BencodeError}.
        """
        raw = bytearray(encode(value))
        i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "delete", "truncate"]))
        if op == "flip":
            raw[i] = data.draw(st.integers(min_value=0, max_value=255))
        elif op == "delete":
            del raw[i]
        else:
            del raw[i:]
        try:
            decode(bytes(raw))
        except BencodeError:
            pass
