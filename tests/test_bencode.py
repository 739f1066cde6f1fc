"""
Tests for L{btorrent.codec.bencode}.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec.bencode import (
    MAX_DEPTH,
    BencodeError,
    decode,
    decodePrefixWithSpans,
    decodeWithSpans,
    encode,
)

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

    def test_prefix(self) -> None:
        """
        L{decodePrefixWithSpans} decodes the value at the start of its input
        and ignores what follows, giving the offset where the value ends;
        L{decode} and L{decodeWithSpans} still refuse trailing data.
        """
        data = b"d4:infod1:ai1ee1:xi2ee"
        for tail in [b"", b"\n", b"garbage", b"i1e", b"\xff" * 10]:
            value, spans, end = decodePrefixWithSpans(data + tail)
            self.assertEqual(value, {b"info": {b"a": 1}, b"x": 2})
            self.assertEqual(spans, decodeWithSpans(data)[1])
            self.assertEqual(end, len(data))
            if tail:
                self.assertRaises(BencodeError, decode, data + tail)
                self.assertRaises(BencodeError, decodeWithSpans, data + tail)
        self.assertEqual(decodePrefixWithSpans(b"4:spam4:eggs"), (b"spam", {}, 6))

    def test_prefixStrict(self) -> None:
        """
        The value L{decodePrefixWithSpans} reads is as strictly checked as
        ever.
        """
        for bad in [
            b"",
            b"\n",
            b"d3:fooi42e",
            b"i01e\n",
            b"d1:ai1e1:ai2ee\n",
            b"x",
            b"d4:info999999999999:x",
            b"9" * 5000 + b":x",
            b"l" * 1000 + b"e" * 1000,
        ]:
            with self.assertRaises(BencodeError, msg=repr(bad)):
                decodePrefixWithSpans(bad)


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

    def test_unencodableText(self) -> None:
        """
        A C{str} with a lone surrogate (as a value or a key, at any depth)
        has no UTF-8 form: L{BencodeError}, not L{UnicodeEncodeError}.
        """
        for bad in ["\ud800", ["ok", "a\udfffb"], {"\udc80": 1}, {b"k": ["\ud83d"]}]:
            with self.assertRaises(BencodeError, msg=repr(bad)):
                encode(bad)

    def test_hugeInteger(self) -> None:
        """
        An integer too long for C{str()} (more digits than
        C{sys.get_int_max_str_digits()}) is a L{BencodeError}.
        """
        self.assertRaises(BencodeError, encode, 10**5000)
        self.assertRaises(BencodeError, encode, [-(10**5000)])

    def test_intSubclass(self) -> None:
        """
        An C{int} subclass is encoded by value, whatever it prints as.
        """

        class Odd(int):
            def __str__(self) -> str:
                return "odd"

            __repr__ = __str__

        self.assertEqual(encode([Odd(7)]), b"li7ee")


anything = st.recursive(
    st.integers()
    | st.integers(4300, 4400).map(lambda digits: -(10**digits))
    | st.binary(max_size=10)
    | st.text(st.characters(blacklist_categories=()), max_size=5)
    | st.booleans()
    | st.none()
    | st.floats(),
    lambda children: st.lists(children, max_size=4)
    | st.tuples(children, children)
    | st.dictionaries(
        st.text(st.characters(blacklist_categories=()), max_size=3)
        | st.binary(max_size=3)
        | st.integers(),
        children,
        max_size=4,
    ),
    max_leaves=20,
)


class PropertyTests(SynchronousTestCase):
    """
    Property tests with hypothesis.
    """

    @given(anything)
    @settings(max_examples=500, deadline=None)
    def test_encodeAnything(self, value) -> None:
        """
        L{encode} either returns bytes that decode strictly or raises
        L{BencodeError}, never another exception (text with lone
        surrogates, huge integers, floats, C{None} included).
        """
        try:
            data = encode(value)
        except BencodeError:
            return
        self.assertIsInstance(data, bytes)
        decode(data)

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
        for decoder in (decode, decodePrefixWithSpans):
            try:
                decoder(data)
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
        for decoder in (decode, decodePrefixWithSpans):
            try:
                decoder(bytes(raw))
            except BencodeError:
                pass
