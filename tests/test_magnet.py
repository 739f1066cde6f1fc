"""
Tests for L{btorrent.codec.magnet}.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode, metainfo
from btorrent.codec.magnet import (
    MAX_MAGNET_LENGTH,
    Magnet,
    MagnetError,
    formatMagnet,
    isMagnet,
    metainfoFromMetadata,
    parseMagnet,
    torrentFromMetadata,
)
from tests.test_purity import _PROBE

HASH = bytes(range(20))
HEX = HASH.hex()
B32 = base64.b32encode(HASH).decode()
LINK = "magnet:?xt=urn:btih:" + HEX


def infoDict(name: bytes = b"file.bin", length: int = 40000, piece: int = 16384):
    """
    The bytes of a valid single-file info dictionary.
    """
    count = -(-length // piece)
    return bencode.encode(
        {
            b"name": name,
            b"length": length,
            b"piece length": piece,
            b"pieces": bytes(20 * count),
        }
    )


class ParseTests(SynchronousTestCase):
    """
    L{parseMagnet} on well-formed links.
    """

    def test_hex(self) -> None:
        """
        A 40-character hex info-hash, in either case.
        """
        self.assertEqual(parseMagnet(LINK), Magnet(HASH))
        self.assertEqual(
            parseMagnet("magnet:?xt=urn:btih:" + HEX.upper()).infoHash, HASH
        )
        self.assertEqual(parseMagnet("MAGNET:?xt=URN:BTIH:" + HEX).infoHash, HASH)

    def test_base32(self) -> None:
        """
        A 32-character base32 info-hash, in either case.
        """
        self.assertEqual(parseMagnet("magnet:?xt=urn:btih:" + B32).infoHash, HASH)
        self.assertEqual(
            parseMagnet("magnet:?xt=urn:btih:" + B32.lower()).infoHash, HASH
        )

    def test_everything(self) -> None:
        """
        C{dn}, several C{tr} (each a tier, in order, without repeats) and
        C{x.pe} of every form.
        """
        magnet = parseMagnet(
            LINK
            + "&dn=My+File%20%C3%A9"
            + "&tr=http%3A%2F%2Fa.example%2Fannounce"
            + "&tr=udp://b.example:80"
            + "&tr.1=http://a.example/announce"
            + "&x.pe=127.0.0.1:6881&x.pe=[::1]:6882&x.pe=Peer.Example.com:1"
            + "&x.pe=[::ffff:10.0.0.1]:5"
            + "&ws=http://web.example/&so=0,2-4&dht=1.2.3.4:5&xl=10"
        )
        self.assertEqual(
            magnet,
            Magnet(
                infoHash=HASH,
                name="My File é",
                trackers=(("http://a.example/announce",), ("udp://b.example:80",)),
                peers=(
                    ("127.0.0.1", 6881),
                    ("::1", 6882),
                    ("peer.example.com", 1),
                    ("10.0.0.1", 5),
                ),
            ),
        )

    def test_suffixes(self) -> None:
        """
        A numeric suffix on a parameter name is dropped (libtorrent);
        another suffix makes a name we do not know.
        """
        magnet = parseMagnet(
            "magnet:?xt.1=urn:btih:" + HEX + "&dn.2=x&tr.=http://t/a&tr.a=http://u/a"
        )
        self.assertEqual(magnet, Magnet(HASH, "x", (("http://t/a",),)))

    def test_whitespaceAndBytes(self) -> None:
        """
        Surrounding white space is ignored; bytes are read as UTF-8.
        """
        self.assertEqual(parseMagnet("  " + LINK + "\n").infoHash, HASH)
        self.assertEqual(parseMagnet(LINK.encode()).infoHash, HASH)

    def test_hybrid(self) -> None:
        """
        A link with both a v1 and a v2 hash uses the v1 hash.
        """
        link = LINK + "&xt=urn:btmh:1220" + "ab" * 32
        self.assertEqual(parseMagnet(link).infoHash, HASH)
        link = "magnet:?xt=urn:btmh:1220" + "ab" * 32 + "&xt=urn:btih:" + B32
        self.assertEqual(parseMagnet(link).infoHash, HASH)

    def test_escapedXt(self) -> None:
        """
        An escaped C{xt} is unescaped first.
        """
        self.assertEqual(parseMagnet("magnet:?xt=urn%3Abtih%3A" + HEX).infoHash, HASH)

    def test_sameHashTwice(self) -> None:
        """
        The same hash twice (hex and base32) is fine.
        """
        link = LINK + "&xt=urn:btih:" + B32
        self.assertEqual(parseMagnet(link).infoHash, HASH)

    def test_otherNamespaces(self) -> None:
        """
        Other C{xt} namespaces are ignored.
        """
        link = "magnet:?xt=urn:sha1:ABC&xt=urn:btih:" + HEX + "&xt=urn:ed2k:x"
        self.assertEqual(parseMagnet(link).infoHash, HASH)

    def test_badTrackersDropped(self) -> None:
        """
        Trackers libtorrent 2.1 drops are dropped: bad escape, unknown
        scheme, no host, white space or control characters, empty.
        """
        bad = [
            "http://a/%zz",
            "foo://a",
            "http:/a",
            "http://",
            "http://a/%20b",
            "http://a/+b",
            "http://a/%09",
            "http://a/%7F",
            "http://%C3%A9/",
            "a",
            "",
        ]
        link = LINK + "".join("&tr=" + t for t in bad) + "&tr=HTTPS://ok/a"
        self.assertEqual(parseMagnet(link).trackers, (("HTTPS://ok/a",),))

    def test_nameLenient(self) -> None:
        """
        A bad escape in C{dn} is kept literally; invalid UTF-8 is replaced;
        an empty C{dn} is no name.
        """
        self.assertEqual(parseMagnet(LINK + "&dn=50%").name, "50%")
        self.assertEqual(parseMagnet(LINK + "&dn=a%zzb").name, "a%zzb")
        self.assertEqual(parseMagnet(LINK + "&dn=%FF").name, "\ufffd")
        self.assertIsNone(parseMagnet(LINK + "&dn=").name)

    def test_loneSurrogates(self) -> None:
        """
        Text with lone surrogates (from a terminal or a file name) does not
        break parsing or formatting.
        """
        self.assertEqual(parseMagnet(LINK + "&dn=a\ud800%41").name, "a?A")
        self.assertRaises(MagnetError, parseMagnet, LINK + "&x.pe=\ud800%41:5")
        self.assertIn("dn=a%3Fb", formatMagnet(HASH, "a\ud800b"))

    def test_manyTrackers(self) -> None:
        """
        A link near the length limit, full of trackers, is read whole (kept
        in ordered sets: no quadratic search for repeats), and its first
        L{metainfo.MAX_TRACKERS} trackers are kept: each would be announced
        to.
        """
        link = LINK + "".join(f"&tr=http://t{i}.example/a" for i in range(2400))
        self.assertLess(len(link), MAX_MAGNET_LENGTH)
        trackers = parseMagnet(link).trackers
        self.assertEqual(len(trackers), metainfo.MAX_TRACKERS)
        self.assertEqual(trackers[0], ("http://t0.example/a",))
        self.assertEqual(trackers[-1], ("http://t99.example/a",))

    def test_repeatedPeers(self) -> None:
        """
        A peer given twice is listed once.
        """
        link = LINK + "&x.pe=1.2.3.4:5&x.pe=1.2.3.4:5"
        self.assertEqual(parseMagnet(link).peers, (("1.2.3.4", 5),))


class ErrorTests(SynchronousTestCase):
    """
    L{parseMagnet} on malformed links: a L{MagnetError} with a one-line
    message.
    """

    def assertRefused(self, link, words: str) -> None:
        with self.assertRaises(MagnetError) as caught:
            parseMagnet(link)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertIn(words, message)

    def test_notMagnet(self) -> None:
        self.assertRefused("http://example.com/x.torrent", "not a magnet link")
        self.assertRefused("magnet:xt=urn:btih:" + HEX, "not a magnet link")
        self.assertRefused("", "not a magnet link")

    def test_noHash(self) -> None:
        self.assertRefused("magnet:?dn=x", "no xt=urn:btih:")
        self.assertRefused("magnet:?", "no xt=urn:btih:")
        self.assertRefused("magnet:?xt=urn:sha1:abc", "no xt=urn:btih:")

    def test_v2Only(self) -> None:
        self.assertRefused(
            "magnet:?xt=urn:btmh:1220" + "ab" * 32,
            "BitTorrent v2-only torrents are not supported yet",
        )

    def test_badV2(self) -> None:
        self.assertRefused("magnet:?xt=urn:btmh:1220abc", "urn:btmh:")
        self.assertRefused(LINK + "&xt=urn:btmh:1114" + "ab" * 32, "urn:btmh:")

    def test_hashLength(self) -> None:
        self.assertRefused(LINK[:-1], "39 characters")
        self.assertRefused(LINK + "0", "41 characters")
        self.assertRefused("magnet:?xt=urn:btih:", "0 characters")

    def test_badHex(self) -> None:
        self.assertRefused("magnet:?xt=urn:btih:" + "g" * 40, "not hexadecimal")
        # bytes.fromhex would skip spaces: not we.
        self.assertRefused("magnet:?xt=urn:btih:" + HEX[:-2] + "+0", "not hexadecimal")

    def test_badBase32(self) -> None:
        self.assertRefused("magnet:?xt=urn:btih:" + "1" * 32, "not base32")
        self.assertRefused("magnet:?xt=urn:btih:" + B32[:-1] + "=", "not base32")

    def test_conflictingHashes(self) -> None:
        self.assertRefused(LINK + "&xt=urn:btih:" + "00" * 20, "two different")

    def test_badEscapeInXt(self) -> None:
        self.assertRefused("magnet:?xt=urn:btih:%zz" + HEX, "percent-escape")
        self.assertRefused("magnet:?xt=urn:btih:" + HEX[:-1] + "%", "percent-escape")
        self.assertRefused("magnet:?xt=urn:btih:" + HEX[:-2] + "%0", "percent-escape")

    def test_badPeers(self) -> None:
        for peer in [
            "1.2.3.4",
            "1.2.3.4:",
            "1.2.3.4:0",
            "1.2.3.4:65536",
            "1.2.3.4:-1",
            "1.2.3.4:1e3",
            ":80",
            "::1:80",
            "[::1]80",
            "[::1]:",
            "[::1",
            "[1.2.3.4]:5",
            "[zz::1]:5",
            "bad_host:5",
            "-a.com:5",
            "1.2.3:5",
            "999.1.1.1:5",
            "a..b:5",
            "%zz:5",
            "h\u00e9:5",
        ]:
            self.assertRefused(LINK + "&x.pe=" + peer, "x.pe")

    def test_tooLong(self) -> None:
        """
        A link longer than L{MAX_MAGNET_LENGTH} is refused before any
        parsing.
        """
        link = LINK + "&tr=http://a/" + "x" * MAX_MAGNET_LENGTH
        self.assertRefused(link, "too long")
        self.assertRefused(link.encode(), "too long")

    def test_wrongTypes(self) -> None:
        for value in [None, 5, ["magnet:?"], b"\xff\xfe"]:
            with self.assertRaises(MagnetError):
                parseMagnet(value)

    @given(st.text(max_size=300))
    @settings(max_examples=500, deadline=None)
    def test_anyText(self, text: str) -> None:
        """
        Any text gives a L{Magnet} or a L{MagnetError}, nothing else.
        """
        for link in (text, "magnet:?" + text, LINK + "&" + text):
            try:
                result = parseMagnet(link)
            except MagnetError as e:
                self.assertNotIn("\n", str(e))
            else:
                self.assertEqual(len(result.infoHash), 20)

    @given(
        st.lists(
            st.sampled_from(
                [
                    "xt=",
                    "urn:btih:",
                    "urn:btmh:",
                    "1220",
                    HEX,
                    B32,
                    "&",
                    "=",
                    "%",
                    "%3A",
                    "+",
                    "dn",
                    "tr",
                    "x.pe",
                    ".1",
                    "[",
                    "]",
                    ":",
                    "::1",
                    "127.0.0.1",
                    "80",
                    "http://",
                    "a",
                ]
            ),
            max_size=30,
        )
    )
    @settings(max_examples=1000, deadline=None)
    def test_tokenSoup(self, tokens) -> None:
        """
        Links assembled from meaningful tokens never raise anything but
        L{MagnetError}.
        """
        try:
            parseMagnet("magnet:?" + "".join(tokens))
        except MagnetError:
            pass


names = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s)
hosts4 = st.ip_addresses(v=4).map(str)
hosts6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
ports = st.integers(1, 65535)
trackerURLs = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "udp"]),
    st.from_regex(r"[a-z0-9]{1,10}(\.[a-z]{2,5})?", fullmatch=True),
    st.text(
        alphabet=st.characters(
            min_codepoint=0x21, max_codepoint=0x2FF, blacklist_characters="\x7f"
        ),
        max_size=20,
    ),
)


class FormatTests(SynchronousTestCase):
    """
    L{formatMagnet} and L{isMagnet}.
    """

    def test_minimal(self) -> None:
        self.assertEqual(formatMagnet(HASH), LINK)

    def test_everything(self) -> None:
        link = formatMagnet(
            HASH,
            "a b+c&d",
            [("http://t/a?x=1&y=2", "udp://u:1"), ["http://t/a?x=1&y=2"]],
            [("::1", 5), ("127.0.0.1", 6)],
        )
        self.assertEqual(
            link,
            LINK
            + "&dn=a%20b%2Bc%26d"
            + "&tr=http://t/a%3Fx%3D1%26y%3D2&tr=udp://u:1"
            + "&x.pe=[::1]:5&x.pe=127.0.0.1:6",
        )
        self.assertEqual(
            parseMagnet(link),
            Magnet(
                HASH,
                "a b+c&d",
                (("http://t/a?x=1&y=2",), ("udp://u:1",)),
                (("::1", 5), ("127.0.0.1", 6)),
            ),
        )

    def test_plainURLs(self) -> None:
        """
        Trackers may be plain URLs instead of tiers.
        """
        link = formatMagnet(HASH, trackers=["http://a/b", "http://c/d"])
        self.assertEqual(parseMagnet(link).trackers, (("http://a/b",), ("http://c/d",)))

    def test_undecodableName(self) -> None:
        """
        A torrent name holding undecodable bytes (lone surrogates, as
        L{metainfo} gives them) is written as those bytes.
        """
        link = formatMagnet(HASH, "a\udcffb")
        self.assertIn("dn=a%FFb", link)

    def test_errors(self) -> None:
        for call in [
            lambda: formatMagnet(HASH[:19]),
            lambda: formatMagnet("x" * 20),
            lambda: formatMagnet(HASH, peers=[("1.2.3.4", 0)]),
            lambda: formatMagnet(HASH, peers=[("1.2.3.4", 70000)]),
            lambda: formatMagnet(HASH, trackers=[[5]]),
        ]:
            self.assertRaises(MagnetError, call)

    def test_isMagnet(self) -> None:
        self.assertTrue(isMagnet(LINK))
        self.assertTrue(isMagnet("  MAGNET:?xt"))
        self.assertFalse(isMagnet("/tmp/magnet:?x.torrent"))
        self.assertFalse(isMagnet("magnet:x"))
        self.assertFalse(isMagnet(b"magnet:?"))
        self.assertFalse(isMagnet(None))

    @given(
        st.binary(min_size=20, max_size=20),
        st.none() | names,
        st.lists(trackerURLs, max_size=5, unique=True),
        st.lists(st.tuples(hosts4 | hosts6, ports), max_size=5, unique=True),
    )
    @settings(max_examples=300, deadline=None)
    def test_roundTrip(self, infoHash, name, trackers, peers) -> None:
        """
        What L{formatMagnet} writes, L{parseMagnet} reads back.
        """
        link = formatMagnet(infoHash, name, trackers, peers)
        self.assertTrue(isMagnet(link))
        self.assertEqual(
            parseMagnet(link),
            Magnet(infoHash, name, tuple((t,) for t in trackers), tuple(peers)),
        )


class MetadataTests(SynchronousTestCase):
    """
    L{torrentFromMetadata} and L{metainfoFromMetadata}.
    """

    def test_infoHashOfExactBytes(self) -> None:
        """
        The info-hash is the SHA-1 of exactly the bytes fetched, even when
        they are not in canonical key order (a re-encoding would change
        the hash).
        """
        canonical = infoDict()
        # The same dictionary with its keys out of order: valid for the
        # strict decoder (it checks duplicates, not order).
        shuffled = (
            b"d6:lengthi40000e4:name8:file.bin6:pieces60:"
            + bytes(60)
            + b"12:piece lengthi16384ee"
        )
        for raw in (canonical, shuffled):
            result, data = metainfoFromMetadata(raw, ((("http://t/a"),),))
            self.assertEqual(result.infoHash, hashlib.sha1(raw).digest())
            self.assertEqual(result.infoBytes, raw)
            self.assertEqual(metainfo.load(data), result)
        self.assertNotEqual(
            hashlib.sha1(canonical).digest(), hashlib.sha1(shuffled).digest()
        )

    def test_trackers(self) -> None:
        """
        The magnet's tiers become C{announce-list}, the first URL
        C{announce}; a repeated URL is kept once.
        """
        trackers = (("http://a/1",), ("udp://b:2", "http://a/1"), "http://c/3")
        data = torrentFromMetadata(infoDict(), trackers)
        top = bencode.decode(data)
        self.assertEqual(top[b"announce"], b"http://a/1")
        self.assertEqual(
            top[b"announce-list"], [[b"http://a/1"], [b"udp://b:2"], [b"http://c/3"]]
        )
        self.assertEqual(bencode.encode(top), data)  # canonical
        result, _ = metainfoFromMetadata(infoDict(), trackers)
        self.assertEqual(
            result.trackers, (("http://a/1",), ("udp://b:2",), ("http://c/3",))
        )
        self.assertEqual(result.name, "file.bin")

    def test_noTrackers(self) -> None:
        data = torrentFromMetadata(infoDict())
        self.assertEqual(data, b"d4:info" + infoDict() + b"e")
        self.assertEqual(metainfo.load(data).trackers, ())

    def test_expectedHash(self) -> None:
        raw = infoDict()
        result, _ = metainfoFromMetadata(raw, infoHash=hashlib.sha1(raw).digest())
        self.assertEqual(result.name, "file.bin")
        self.assertRaises(
            metainfo.MetainfoError, metainfoFromMetadata, raw, infoHash=bytes(20)
        )

    def test_badMetadata(self) -> None:
        """
        Garbage, a non-dictionary, trailing bytes, an invalid or unsafe
        info dictionary: L{metainfo.MetainfoError}.
        """
        for raw in [
            b"",
            b"garbage",
            b"i5e",
            b"le",
            infoDict() + b"x",
            infoDict()[:-1],
            infoDict(name=b"../etc"),
            infoDict(length=0),
            bencode.encode({b"name": b"x"}),
        ]:
            self.assertRaises(metainfo.MetainfoError, metainfoFromMetadata, raw)

    @given(st.binary(max_size=200))
    @settings(max_examples=300, deadline=None)
    def test_anyBytes(self, raw: bytes) -> None:
        try:
            metainfoFromMetadata(raw)
        except metainfo.MetainfoError:
            pass


class PurityTests(SynchronousTestCase):
    def test_pure(self) -> None:
        """
        The magnet module and the extension modules import nothing of
        C{twisted.internet}.
        """
        for name in [
            "btorrent.codec.magnet",
            "btorrent.peer.extended",
            "btorrent.peer.utmetadata",
            "btorrent.peer.utpex",
        ]:
            out = subprocess.run(
                [sys.executable, "-c", _PROBE, name],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            self.assertEqual(out.strip(), "", name)
