"""
Tests for L{btorrent.peer.extended}.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode
from btorrent.peer.extended import (
    EXTENDED,
    MAX_CLIENT_LENGTH,
    MAX_HANDSHAKE_SIZE,
    OUR_EXTENSION_IDS,
    UT_METADATA,
    UT_PEX,
    ExtendedError,
    ExtendedHandshake,
    decodeExtendedHandshake,
    decodeExtendedMessage,
    encodeExtendedHandshake,
    encodeExtendedMessage,
    localHandshake,
    mergeExtensionIds,
    mergeHandshake,
    setExtensionBit,
    supportsExtensions,
)

#: libtorrent 2.1.1's extended handshake as a seed, captured on loopback.
LIBTORRENT = (
    b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:"
    b"upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:"
    b"metadata_sizei82e4:reqqi2000e11:upload_onlyi1e1:v18:libtorrent/"
    b"2.1.1.06:yourip4:\x7f\x00\x00\x01e"
)


class ReservedTests(SynchronousTestCase):
    def test_bit(self) -> None:
        """
        BEP 10 is C{reserved[5] & 0x10}.
        """
        reserved = setExtensionBit()
        self.assertEqual(reserved, b"\x00\x00\x00\x00\x00\x10\x00\x00")
        self.assertTrue(supportsExtensions(reserved))
        self.assertFalse(supportsExtensions(bytes(8)))
        self.assertFalse(supportsExtensions(b"\xff" * 5 + b"\xef\xff\xff"))
        # Other bits (fast extension, DHT) stay.
        self.assertEqual(setExtensionBit(b"\x00" * 7 + b"\x05")[7], 5)
        self.assertRaises(ValueError, setExtensionBit, bytes(7))
        self.assertFalse(supportsExtensions(b"\x10" * 6))


class FrameTests(SynchronousTestCase):
    def test_encode(self) -> None:
        self.assertEqual(
            encodeExtendedMessage(3, b"abc"),
            struct.pack(">IBB", 5, EXTENDED, 3) + b"abc",
        )
        self.assertRaises(ValueError, encodeExtendedMessage, 256, b"")
        self.assertRaises(ValueError, encodeExtendedMessage, -1, b"")

    def test_decode(self) -> None:
        self.assertEqual(decodeExtendedMessage(b"\x02xyz"), (2, b"xyz"))
        self.assertEqual(decodeExtendedMessage(b"\x00"), (0, b""))
        self.assertRaises(ExtendedError, decodeExtendedMessage, b"")


class HandshakeTests(SynchronousTestCase):
    def test_libtorrent(self) -> None:
        """
        libtorrent's handshake: what we use is read, the rest ignored.
        """
        h = decodeExtendedHandshake(LIBTORRENT)
        self.assertEqual(h.extensionId(UT_METADATA), 2)
        self.assertEqual(h.extensionId(UT_PEX), 1)
        self.assertEqual(h.extensionId("lt_donthave"), 7)
        self.assertEqual(h.extensionId("nope"), 0)
        self.assertEqual(h.metadataSize, 82)
        self.assertEqual(h.reqq, 2000)
        self.assertEqual(h.client, "libtorrent/2.1.1.0")
        self.assertEqual(h.yourip, b"\x7f\x00\x00\x01")
        self.assertIs(h.uploadOnly, True)
        self.assertIsNone(h.port)
        self.assertIsNone(h.prefersEncryption)

    def test_roundTrip(self) -> None:
        h = ExtendedHandshake(
            m={"ut_metadata": 2, "ut_pex": 0},
            port=6881,
            client="btorrent/0.1",
            reqq=250,
            yourip=bytes(16),
            metadataSize=31235,
            ipv4=b"\x01\x02\x03\x04",
            ipv6=bytes(range(16)),
            uploadOnly=False,
            prefersEncryption=True,
        )
        self.assertEqual(decodeExtendedHandshake(encodeExtendedHandshake(h)), h)

    def test_bep10Example(self) -> None:
        """
        The example of BEP 10 (a non-UTF-8 name kept out).
        """
        h = decodeExtendedHandshake(
            b"d1:md11:LT_metadatai1e6:\xb5T_PEXi2ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e"
        )
        self.assertEqual(h.m, {"LT_metadata": 1})
        self.assertEqual(h.port, 6881)
        self.assertEqual(h.client, "\u00b5Torrent 1.2")

    def test_empty(self) -> None:
        self.assertEqual(decodeExtendedHandshake(b"de"), ExtendedHandshake())
        self.assertEqual(encodeExtendedHandshake(ExtendedHandshake()), b"d1:mdee")

    def test_wrongTypesDropped(self) -> None:
        """
        A known field of the wrong type or out of range is dropped, the
        rest kept.
        """
        payload = bencode.encode(
            {
                b"m": {b"a": 1, b"b": 256, b"c": -1, b"d": b"2", b"e": [1], b"f": 0},
                b"p": 70000,
                b"v": 5,
                b"reqq": 0,
                b"yourip": b"\x01\x02\x03",
                b"metadata_size": 0,
                b"ipv4": bytes(16),
                b"ipv6": bytes(4),
                b"upload_only": b"1",
                b"e": [],
                b"x": {b"anything": [1, 2]},
            }
        )
        self.assertEqual(
            decodeExtendedHandshake(payload), ExtendedHandshake(m={"a": 1, "f": 0})
        )
        for m in [b"i5e", b"le", b"3:abc"]:
            h = decodeExtendedHandshake(b"d1:m" + m + b"1:pi5ee")
            self.assertEqual(h, ExtendedHandshake(port=5))

    def test_longClient(self) -> None:
        h = decodeExtendedHandshake(bencode.encode({b"v": b"x" * 10000}))
        self.assertEqual(h.client, "x" * MAX_CLIENT_LENGTH)

    def test_trailingIgnored(self) -> None:
        self.assertEqual(
            decodeExtendedHandshake(b"d1:pi5eejunk"), ExtendedHandshake(port=5)
        )

    def test_errors(self) -> None:
        for payload in [
            b"",
            b"d",
            b"i5e",
            b"l1:me",
            b"garbage",
            b"d1:pi5e",
            b"d1:pi01ee",
            b"d1:pi5e1:pi6ee",
            b"d99999999999999999999:xe",
            b"d1:m" + b"d" * 200 + b"e" * 201,
            b"d1:v"
            + str(MAX_HANDSHAKE_SIZE).encode()
            + b":"
            + bytes(MAX_HANDSHAKE_SIZE)
            + b"e",
            "not bytes",
            None,
        ]:
            self.assertRaises(ExtendedError, decodeExtendedHandshake, payload)

    def test_encodeErrors(self) -> None:
        for h in [
            ExtendedHandshake(m={"a": 256}),
            ExtendedHandshake(m={"a": -1}),
            ExtendedHandshake(m={"a": True}),
            ExtendedHandshake(m={5: 1}),
            ExtendedHandshake(port=0),
            ExtendedHandshake(port=65536),
            ExtendedHandshake(reqq=0),
            ExtendedHandshake(yourip=b"123"),
            ExtendedHandshake(ipv4=bytes(16)),
            ExtendedHandshake(ipv6=bytes(4)),
            ExtendedHandshake(metadataSize=0),
            ExtendedHandshake(client="\udcff"),
        ]:
            self.assertRaises(ValueError, encodeExtendedHandshake, h)

    @given(st.binary(max_size=300))
    @settings(max_examples=1000, deadline=None)
    def test_anyBytes(self, payload: bytes) -> None:
        """
        Any bytes: a handshake or L{ExtendedError}, nothing else.
        """
        try:
            decodeExtendedHandshake(payload)
        except ExtendedError:
            pass

    values = st.recursive(
        st.integers(-300, 70000) | st.binary(max_size=20),
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    b"m",
                    b"p",
                    b"v",
                    b"reqq",
                    b"yourip",
                    b"metadata_size",
                    b"ipv4",
                    b"ipv6",
                    b"upload_only",
                    b"e",
                    b"ut_metadata",
                    b"ut_pex",
                    b"x",
                ]
            ),
            children,
            max_size=6,
        ),
        max_leaves=20,
    )

    @given(values)
    @settings(max_examples=500, deadline=None)
    def test_anyStructure(self, value) -> None:
        """
        Any bencoded value with our keys at any place: a handshake whose
        fields are all valid, or L{ExtendedError}; and what we decode, we
        encode back to something that decodes the same.
        """
        try:
            h = decodeExtendedHandshake(bencode.encode(value))
        except ExtendedError:
            self.assertNotIsInstance(value, dict)
            return
        self.assertEqual(decodeExtendedHandshake(encodeExtendedHandshake(h)), h)

    handshakes = st.builds(
        ExtendedHandshake,
        m=st.dictionaries(st.text(max_size=12), st.integers(0, 255), max_size=5),
        port=st.none() | st.integers(1, 65535),
        client=st.none()
        | st.text(max_size=MAX_CLIENT_LENGTH).filter(
            lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
        ),
        reqq=st.none() | st.integers(1, 2**40),
        yourip=st.none()
        | st.binary(min_size=4, max_size=4)
        | st.binary(min_size=16, max_size=16),
        metadataSize=st.none() | st.integers(1, 2**40),
        ipv4=st.none() | st.binary(min_size=4, max_size=4),
        ipv6=st.none() | st.binary(min_size=16, max_size=16),
        uploadOnly=st.none() | st.booleans(),
        prefersEncryption=st.none() | st.booleans(),
    )

    @given(handshakes)
    @settings(max_examples=500, deadline=None)
    def test_roundTripProperty(self, h) -> None:
        self.assertEqual(decodeExtendedHandshake(encodeExtendedHandshake(h)), h)

    @given(st.binary(min_size=1, max_size=200), st.data())
    @settings(max_examples=300, deadline=None)
    def test_truncated(self, junk, data) -> None:
        """
        A cut handshake is an L{ExtendedError} (or, cut after the
        dictionary, the same handshake).
        """
        payload = encodeExtendedHandshake(localHandshake(port=6881, metadataSize=999))
        cut = data.draw(st.integers(0, len(payload)))
        try:
            decodeExtendedHandshake(payload[:cut])
        except ExtendedError:
            self.assertLess(cut, len(payload))
        self.assertEqual(
            decodeExtendedHandshake(payload + junk), decodeExtendedHandshake(payload)
        )


class LocalTests(SynchronousTestCase):
    def test_ours(self) -> None:
        """
        Our ids are libtorrent's: ut_pex 1, ut_metadata 2.
        """
        self.assertEqual(dict(OUR_EXTENSION_IDS), {"ut_pex": 1, "ut_metadata": 2})
        h = localHandshake(port=1234, metadataSize=500, client="btorrent", reqq=250)
        self.assertEqual(
            encodeExtendedHandshake(h),
            b"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei500e1:pi1234e"
            b"4:reqqi250e1:v8:btorrente",
        )

    def test_private(self) -> None:
        """
        Neither extension for a private torrent; no size without
        ut_metadata.
        """
        h = localHandshake(metadataSize=5, metadata=False, pex=False)
        self.assertEqual(h.m, {})
        self.assertIsNone(h.metadataSize)
        self.assertEqual(localHandshake(pex=False).m, {"ut_metadata": 2})


class MergeTests(SynchronousTestCase):
    def test_ids(self) -> None:
        """
        BEP 10: C{m} is additive; id 0 removes a name.
        """
        self.assertEqual(
            mergeExtensionIds({"a": 1, "b": 2, "z": 0}, {"b": 0, "c": 3, "a": 4}),
            {"a": 4, "c": 3},
        )
        self.assertEqual(mergeExtensionIds({}, {"x": 0}), {})

    def test_handshake(self) -> None:
        first = decodeExtendedHandshake(
            b"d1:md11:ut_metadatai3e6:ut_pexi4e1:xi0ee1:pi80e4:reqqi9ee"
        )
        merged = mergeHandshake(None, first)
        self.assertEqual(merged.m, {"ut_metadata": 3, "ut_pex": 4})
        later = decodeExtendedHandshake(b"d1:md6:ut_pexi0ee13:metadata_sizei77ee")
        merged = mergeHandshake(merged, later)
        self.assertEqual(merged.m, {"ut_metadata": 3})
        self.assertEqual(merged.port, 80)
        self.assertEqual(merged.reqq, 9)
        self.assertEqual(merged.metadataSize, 77)
        self.assertEqual(merged.extensionId(UT_PEX), 0)
