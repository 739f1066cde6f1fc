"""
Tests for L{btorrent.tracker.announce}: the pure tracker codecs.
"""

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode
from btorrent.tracker import announce as a
from btorrent.tracker.announce import (
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    TrackerCodecError,
    TrackerError,
    TrackerFailure,
)

HASH = bytes(range(20))
PEER_ID = b"-BT0001-" + b"\xff\x00 +&=%?" + b"abcd"


def request(**kw):
    fields = dict(
        infoHash=HASH,
        peerId=PEER_ID,
        port=6881,
        uploaded=10,
        downloaded=20,
        left=30,
        event="started",
        key=0xDEADBEEF,
    )
    fields.update(kw)
    return AnnounceRequest(**fields)


hashes = st.binary(min_size=20, max_size=20)
v4hosts = st.ip_addresses(v=4).filter(
    lambda ip: not (ip.is_unspecified or ip.is_multicast or int(ip) == 0xFFFFFFFF)
)
v6hosts = st.ip_addresses(v=6).filter(
    lambda ip: not (ip.is_unspecified or ip.is_multicast)
)
ports = st.integers(1, 65535)
requests = st.builds(
    AnnounceRequest,
    infoHash=hashes,
    peerId=hashes,
    port=ports,
    uploaded=st.integers(0, 2**62),
    downloaded=st.integers(0, 2**62),
    left=st.integers(0, 2**62),
    event=st.sampled_from(a.EVENTS),
    numwant=st.integers(0, 2**31 - 1),
    key=st.integers(0, 2**32 - 1),
    compact=st.booleans(),
    trackerId=st.none() | st.binary(max_size=10),
    ip=st.none() | v4hosts.map(str),
)


class PercentEncodingTests(SynchronousTestCase):
    """
    Binary info-hashes and peer ids in URLs.
    """

    def test_everyReservedByteEncoded(self) -> None:
        """
        Every byte outside the unreserved set becomes C{%XX}; unreserved
        bytes stay as they are.
        """
        encoded = a.percentEncode(bytes(range(256)))
        self.assertIn("%00", encoded)
        self.assertIn("%2B", encoded)  # +
        self.assertIn("%20", encoded)  # space
        self.assertIn("%26", encoded)  # &
        self.assertIn("%FF", encoded)
        unreserved = (
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
        )
        self.assertEqual(
            encoded,
            "".join(
                c if c in unreserved else f"%{ord(c):02X}" for c in map(chr, range(256))
            ),
        )
        self.assertEqual(len(encoded), 66 + 3 * 190)
        self.assertEqual(a.percentEncode(b"a b+c~"), "a%20b%2Bc~")

    @given(st.binary(max_size=40))
    def test_roundTrip(self, data: bytes) -> None:
        """
        L{parseQuery} reverses L{percentEncode}.
        """
        self.assertEqual(a.parseQuery("x=" + a.percentEncode(data)), {b"x": [data]})


class AnnounceURLTests(SynchronousTestCase):
    """
    L{announceURL} and the server side, L{parseAnnounceQuery}.
    """

    def test_fields(self) -> None:
        """
        The URL carries every field, binary ones percent-encoded.
        """
        url = a.announceURL("http://127.0.0.1:1/announce", request())
        self.assertIsInstance(url, bytes)
        self.assertTrue(url.startswith(b"http://127.0.0.1:1/announce?info_hash="))
        self.assertIn(b"info_hash=%00%01%02%03%04%05%06%07%08%09%0A", url)
        self.assertIn(b"peer_id=-BT0001-%FF%00%20%2B%26%3D%25%3Fabcd", url)
        for part in (
            b"port=6881",
            b"uploaded=10",
            b"downloaded=20",
            b"left=30",
            b"event=started",
            b"numwant=50",
            b"compact=1",
            b"key=DEADBEEF",
        ):
            self.assertIn(part, url.split(b"?", 1)[1].split(b"&"))

    def test_noEvent(self) -> None:
        """
        A regular announce has no C{event} field.
        """
        url = a.announceURL("http://t/announce", request(event=""))
        self.assertNotIn(b"event=", url)

    def test_existingQuery(self) -> None:
        """
        An announce URL with a query string keeps it; fields follow with
        C{&}.  A fragment is dropped.
        """
        url = a.announceURL("http://t/announce?passkey=abc#frag", request())
        self.assertTrue(url.startswith(b"http://t/announce?passkey=abc&info_hash="))
        self.assertNotIn(b"frag", url)
        url = a.announceURL("http://t/announce?", request())
        self.assertTrue(url.startswith(b"http://t/announce?info_hash="))

    def test_trackerIdAndIP(self) -> None:
        """
        C{trackerid} and C{ip} are sent when set.
        """
        url = a.announceURL(
            "http://t/announce", request(trackerId=b"a&b", ip="10.0.0.1")
        )
        self.assertIn(b"trackerid=a%26b", url)
        self.assertIn(b"ip=10.0.0.1", url)

    def test_parseRoundTrip(self) -> None:
        """
        The server reads back the request the client encoded.
        """
        r = request(trackerId=b"tid", ip="10.0.0.1", numwant=7)
        url = a.announceURL("http://t/announce?passkey=1", r)
        self.assertEqual(a.parseAnnounceQuery(url.split(b"?", 1)[1]), r)

    @given(requests)
    def test_parseRoundTripProperty(self, r: AnnounceRequest) -> None:
        """
        Any request survives encoding and parsing.
        """
        url = a.announceURL("http://t/announce", r)
        self.assertEqual(a.parseAnnounceQuery(url.split(b"?", 1)[1]), r)

    def test_parseOtherClients(self) -> None:
        """
        Other clients' forms: no compact (not compact), C{event=empty},
        a non-hex key, no numwant (50), C{+} as a space.
        """
        q = (
            "info_hash=" + a.percentEncode(HASH) + "&peer_id=" + "A" * 19 + "+"
            "&port=1&uploaded=0&downloaded=0&left=0&event=empty&key=zzzzzzzzzz"
        )
        r = a.parseAnnounceQuery(q)
        self.assertEqual(r.peerId, b"A" * 19 + b" ")
        self.assertEqual(r.event, "")
        self.assertFalse(r.compact)
        self.assertEqual(r.numwant, 50)
        self.assertIsInstance(r.key, int)

    def test_parseErrors(self) -> None:
        """
        Missing or malformed fields raise L{TrackerCodecError}.
        """
        good = a.announceURL("http://t/a", request()).split(b"?", 1)[1]
        self.assertIsInstance(a.parseAnnounceQuery(good), AnnounceRequest)
        bad = [
            good.replace(b"info_hash=%00", b"info_hash="),
            good.replace(b"peer_id=", b"peer_idx="),
            good.replace(b"port=6881", b"port=0"),
            good.replace(b"port=6881", b"port=65536"),
            good.replace(b"port=6881", b"port=x"),
            good.replace(b"left=30", b"left=-1"),
            good.replace(b"left=30", b"left=" + b"9" * 30),
            good.replace(b"event=started", b"event=bogus"),
            good.replace(b"event=started", b"event=%FF"),
            good.replace(b"port=6881", b""),
            "info_hash=\u00e9",
        ]
        for query in bad:
            self.assertRaises(TrackerCodecError, a.parseAnnounceQuery, query)

    @given(st.binary(max_size=200))
    def test_parseGarbage(self, data: bytes) -> None:
        """
        Garbage query strings raise only L{TrackerError}.
        """
        try:
            a.parseAnnounceQuery(data)
        except TrackerError:
            pass

    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    b"info_hash",
                    b"peer_id",
                    b"port",
                    b"left",
                    b"event",
                    b"numwant",
                    b"key",
                    b"ip",
                    b"compact",
                ]
            ),
            st.lists(st.binary(max_size=25), max_size=2),
            max_size=9,
        )
    )
    def test_argsGarbage(self, args) -> None:
        """
        Garbage field values raise only L{TrackerError}.
        """
        try:
            a.announceRequestFromArgs(args)
        except TrackerError:
            pass


class PeersTests(SynchronousTestCase):
    """
    Compact (BEP 23, BEP 7) and dictionary peers.
    """

    def test_compactV4(self) -> None:
        """
        Six bytes per peer, network order.
        """
        data = bytes([10, 0, 0, 1, 0x1A, 0xE1, 127, 0, 0, 1, 0, 80])
        self.assertEqual(
            a.decodeCompactPeers(data), (("10.0.0.1", 6881), ("127.0.0.1", 80))
        )
        self.assertEqual(
            a.encodeCompactPeers([("10.0.0.1", 6881), ("127.0.0.1", 80)]), data
        )

    def test_compactV6(self) -> None:
        """
        Eighteen bytes per IPv6 peer.
        """
        data = bytes(15) + b"\x01" + b"\x00\x50"
        self.assertEqual(a.decodeCompactPeers(data, v6=True), (("::1", 80),))
        self.assertEqual(a.encodeCompactPeers([("::1", 80)], v6=True), data)

    def test_malformedDropped(self) -> None:
        """
        Port 0, unspecified, broadcast and multicast addresses and a
        trailing partial entry are dropped; the rest is kept.
        """
        data = (
            bytes([1, 2, 3, 4, 0, 0])
            + bytes([0, 0, 0, 0, 0, 1])
            + bytes([255, 255, 255, 255, 0, 1])
            + bytes([224, 0, 0, 1, 0, 1])
            + bytes([1, 2, 3, 4, 0, 2])
            + b"\x01\x02\x03"
        )
        self.assertEqual(a.decodeCompactPeers(data), (("1.2.3.4", 2),))
        self.assertEqual(a.decodeCompactPeers(bytes(17) + b"\x01", v6=True), ())

    def test_encodeWrongFamily(self) -> None:
        """
        Encoding an address of the other family, a host name or a bad port
        raises.
        """
        self.assertRaises(TrackerCodecError, a.encodeCompactPeers, [("::1", 1)])
        self.assertRaises(
            TrackerCodecError, a.encodeCompactPeers, [("1.2.3.4", 1)], True
        )
        self.assertRaises(TrackerCodecError, a.encodeCompactPeers, [("host", 1)])
        self.assertRaises(TrackerCodecError, a.encodeCompactPeers, [("1.2.3.4", 70000)])

    def test_dictionaryModel(self) -> None:
        """
        The original list of dictionaries; bad entries are dropped.
        """
        peers = [
            {b"ip": b"10.0.0.1", b"port": 1, b"peer id": b"x" * 20},
            {b"ip": b"::1", b"port": 2},
            {b"ip": b"example.com", b"port": 3},
            {b"ip": b"10.0.0.2", b"port": 0},
            {b"ip": b"10.0.0.3", b"port": b"4"},
            {b"ip": b"\xff", b"port": 5},
            {b"ip": 7, b"port": 6},
            {b"port": 7},
            b"junk",
            {b"ip": b"10.0.0.4", b"port": 65536},
        ]
        self.assertEqual(a.decodeDictionaryPeers(peers), (("10.0.0.1", 1), ("::1", 2)))
        self.assertRaises(TrackerCodecError, a.decodeDictionaryPeers, {})

    @given(st.binary(max_size=300), st.booleans())
    def test_compactGarbage(self, data: bytes, v6: bool) -> None:
        """
        Any bytes decode to valid peers.
        """
        for host, port in a.decodeCompactPeers(data, v6=v6):
            self.assertTrue(0 < port < 65536)
            self.assertIsInstance(host, str)

    @given(st.lists(st.tuples(v4hosts.map(str), ports), max_size=20))
    def test_compactRoundTrip(self, peers) -> None:
        """
        Encoding then decoding gives the peers back.
        """
        self.assertEqual(
            a.decodeCompactPeers(a.encodeCompactPeers(peers)), tuple(peers)
        )


responses = st.builds(
    AnnounceResponse,
    interval=st.integers(0, 2**31),
    minInterval=st.none() | st.integers(0, 2**31),
    peers=st.lists(st.tuples(v4hosts.map(str), ports), max_size=10).map(tuple),
    complete=st.none() | st.integers(0, 2**40),
    incomplete=st.none() | st.integers(0, 2**40),
    # Printable: the decoder escapes anything else (HostileTextTests).
    warning=st.none() | st.text(max_size=20).filter(str.isprintable),
    trackerId=st.none() | st.binary(max_size=20),
)


class HTTPResponseTests(SynchronousTestCase):
    """
    L{encodeHTTPResponse} and L{decodeHTTPResponse}.
    """

    def test_compactAndPeers6(self) -> None:
        """
        IPv4 peers go in C{peers}, IPv6 in C{peers6}; both come back.
        """
        response = AnnounceResponse(
            interval=1800,
            minInterval=900,
            peers=(("10.0.0.1", 1), ("2001:db8::1", 2)),
            complete=3,
            incomplete=4,
            warning="careful",
            trackerId=b"tid",
        )
        body = a.encodeHTTPResponse(response)
        decoded = bencode.decode(body)
        self.assertEqual(decoded[b"peers"], bytes([10, 0, 0, 1, 0, 1]))
        self.assertEqual(len(decoded[b"peers6"]), 18)
        self.assertEqual(decoded[b"min interval"], 900)
        self.assertEqual(a.decodeHTTPResponse(body), response)

    def test_dictionaryPeers(self) -> None:
        """
        Without C{compact}, peers are a list of dictionaries.
        """
        response = AnnounceResponse(interval=60, peers=(("10.0.0.1", 1), ("::1", 2)))
        body = a.encodeHTTPResponse(response, compact=False)
        self.assertIsInstance(bencode.decode(body)[b"peers"], list)
        self.assertEqual(a.decodeHTTPResponse(body), response)

    def test_minimal(self) -> None:
        """
        Only C{interval} is required; absent figures are C{None}.
        """
        self.assertEqual(
            a.decodeHTTPResponse(b"d8:intervali60ee"), AnnounceResponse(interval=60)
        )

    def test_failureReason(self) -> None:
        """
        A C{failure reason} raises L{TrackerFailure} with the tracker's words.
        """
        body = a.encodeFailure("Requested download is not authorized")
        e = self.assertRaises(TrackerFailure, a.decodeHTTPResponse, body)
        self.assertEqual(e.reason, "Requested download is not authorized")
        self.assertIn("not authorized", str(e))
        self.assertIsInstance(e, TrackerError)
        e = self.assertRaises(
            TrackerFailure, a.decodeHTTPResponse, b"d14:failure reasoni3ee"
        )
        self.assertEqual(e.reason, "a failure reason that is not text (an integer)")

    def test_garbage(self) -> None:
        """
        Non-bencoded bodies, non-dictionaries, a missing or bad interval and
        bad peers raise L{TrackerCodecError}.
        """
        for body in [
            b"",
            b"<html>404</html>",
            b"i3e",
            b"d8:intervali60e",
            b"de",
            b"d8:interval2:60e",
            b"d8:intervali-1ee",
            b"d8:intervali60e5:peersi3ee",
        ]:
            self.assertRaises(TrackerCodecError, a.decodeHTTPResponse, body)

    def test_badOptionalFields(self) -> None:
        """
        Optional fields of the wrong type are ignored.
        """
        body = bencode.encode(
            {
                b"interval": 60,
                b"min interval": b"x",
                b"complete": -1,
                b"incomplete": [],
                b"warning message": 5,
                b"tracker id": 5,
                b"peers6": 5,
            }
        )
        self.assertEqual(a.decodeHTTPResponse(body), AnnounceResponse(interval=60))

    @given(responses, st.booleans())
    def test_roundTrip(self, response, compact) -> None:
        """
        Any response survives encoding and decoding.
        """
        self.assertEqual(
            a.decodeHTTPResponse(a.encodeHTTPResponse(response, compact)), response
        )

    @given(st.binary(max_size=300))
    def test_garbageProperty(self, body: bytes) -> None:
        """
        Garbage raises only L{TrackerError}.
        """
        try:
            a.decodeHTTPResponse(body)
        except TrackerError:
            pass

    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    b"interval",
                    b"peers",
                    b"peers6",
                    b"complete",
                    b"min interval",
                    b"failure reason",
                    b"warning message",
                    b"tracker id",
                ]
            ),
            st.recursive(
                st.integers() | st.binary(max_size=40),
                lambda c: st.lists(c, max_size=3)
                | st.dictionaries(st.sampled_from([b"ip", b"port"]), c),
                max_leaves=8,
            ),
        )
    )
    def test_structuredGarbage(self, value) -> None:
        """
        Well-formed bencoding with wrong types raises only L{TrackerError}.
        """
        try:
            a.decodeHTTPResponse(bencode.encode(value))
        except TrackerError:
            pass


class ScrapeTests(SynchronousTestCase):
    """
    HTTP scrape (BEP 48).
    """

    def test_scrapeURL(self) -> None:
        """
        The last path component's C{announce} becomes C{scrape}.
        """
        self.assertEqual(a.scrapeURL("http://t:1/announce"), "http://t:1/scrape")
        self.assertEqual(
            a.scrapeURL("http://t/x/announce.php?pk=1"), "http://t/x/scrape.php?pk=1"
        )
        self.assertEqual(
            a.scrapeURL("http://t/announce?pk=1#f"), "http://t/scrape?pk=1"
        )
        for url in (
            "http://t/a",
            "http://t/announce/x",
            "http://t",
            "http://t/x_announce",
        ):
            self.assertRaises(TrackerError, a.scrapeURL, url)

    def test_requestURL(self) -> None:
        """
        One C{info_hash} per torrent; the server reads them back.
        """
        other = b"\xff" * 20
        url = a.scrapeRequestURL("http://t/scrape?pk=1", [HASH, other])
        self.assertTrue(url.startswith(b"http://t/scrape?pk=1&info_hash=%00"))
        self.assertEqual(a.parseScrapeQuery(url.split(b"?", 1)[1]), [HASH, other])
        self.assertEqual(a.parseScrapeQuery(b""), [])
        self.assertRaises(TrackerCodecError, a.parseScrapeQuery, b"info_hash=abc")

    def test_body(self) -> None:
        """
        Figures per info-hash round-trip; bad entries are dropped.
        """
        files = {HASH: ScrapeStats(1, 2, 3), b"\xff" * 20: ScrapeStats(0, 0, 0)}
        self.assertEqual(a.decodeScrapeResponse(a.encodeScrapeResponse(files)), files)
        body = bencode.encode(
            {
                b"files": {
                    b"short": {b"complete": 1},
                    HASH: {b"complete": 5},
                    b"x" * 20: 3,
                }
            }
        )
        self.assertEqual(a.decodeScrapeResponse(body), {HASH: ScrapeStats(5, 0, 0)})

    def test_bodyErrors(self) -> None:
        """
        A failure reason raises L{TrackerFailure}; garbage L{TrackerCodecError}.
        """
        self.assertRaises(TrackerFailure, a.decodeScrapeResponse, a.encodeFailure("no"))
        for body in (b"", b"de", b"d5:filesi1ee", b"le"):
            self.assertRaises(TrackerCodecError, a.decodeScrapeResponse, body)

    @given(st.binary(max_size=200))
    def test_garbageProperty(self, body: bytes) -> None:
        """
        Garbage raises only L{TrackerError}.
        """
        try:
            a.decodeScrapeResponse(body)
        except TrackerError:
            pass
        try:
            a.parseScrapeQuery(body)
        except TrackerError:
            pass


class UDPTests(SynchronousTestCase):
    """
    BEP 15 packets.
    """

    def test_connect(self) -> None:
        """
        The connect request carries the protocol id; the response a
        connection id.
        """
        data = a.encodeUDPRequest(a.UDPConnectRequest(0x01020304))
        self.assertEqual(data, struct.pack("!QII", 0x41727101980, 0, 0x01020304))
        self.assertEqual(a.decodeUDPRequest(data), a.UDPConnectRequest(0x01020304))
        response = a.UDPConnectResponse(7, 2**64 - 1)
        data = a.encodeUDPResponse(response)
        self.assertEqual(data, struct.pack("!IIQ", 0, 7, 2**64 - 1))
        self.assertEqual(a.decodeUDPResponse(data), response)

    def test_announce(self) -> None:
        """
        A 98-byte announce with the BEP 15 layout.
        """
        r = request(event="completed", ip="10.0.0.1", numwant=-1)
        data = a.encodeUDPRequest(a.UDPAnnounceRequest(9, 8, r))
        self.assertEqual(len(data), 98)
        self.assertEqual(
            data,
            struct.pack("!QII", 9, 1, 8)
            + HASH
            + PEER_ID
            + struct.pack("!qqqIIIiH", 20, 30, 10, 1, 0x0A000001, 0xDEADBEEF, -1, 6881),
        )
        self.assertEqual(a.decodeUDPRequest(data), a.UDPAnnounceRequest(9, 8, r))
        # BEP 41 options after the fixed part are ignored.
        self.assertEqual(
            a.decodeUDPRequest(data + b"\x02\x05/path"), a.UDPAnnounceRequest(9, 8, r)
        )

    def test_announceResponse(self) -> None:
        """
        Interval, leechers, seeders, then 6-byte (or 18-byte) peers.
        """
        response = AnnounceResponse(
            interval=1800, peers=(("10.0.0.1", 1),), complete=3, incomplete=4
        )
        data = a.encodeUDPResponse(a.UDPAnnounceResponse(5, response))
        self.assertEqual(
            data, struct.pack("!IIIII", 1, 5, 1800, 4, 3) + bytes([10, 0, 0, 1, 0, 1])
        )
        self.assertEqual(a.decodeUDPResponse(data), a.UDPAnnounceResponse(5, response))
        response6 = AnnounceResponse(
            interval=10, peers=(("::1", 2),), complete=0, incomplete=0
        )
        data = a.encodeUDPResponse(a.UDPAnnounceResponse(5, response6), v6=True)
        self.assertEqual(len(data), 20 + 18)
        self.assertEqual(
            a.decodeUDPResponse(data, v6=True), a.UDPAnnounceResponse(5, response6)
        )

    def test_scrape(self) -> None:
        """
        Scrape requests list info-hashes; responses 12 bytes per torrent.
        """
        message = a.UDPScrapeRequest(1, 2, (HASH, b"\xff" * 20))
        data = a.encodeUDPRequest(message)
        self.assertEqual(len(data), 56)
        self.assertEqual(a.decodeUDPRequest(data), message)
        response = a.UDPScrapeResponse(2, (ScrapeStats(1, 2, 3), ScrapeStats(4, 5, 6)))
        data = a.encodeUDPResponse(response)
        self.assertEqual(data, struct.pack("!II6I", 2, 2, 1, 2, 3, 4, 5, 6))
        self.assertEqual(a.decodeUDPResponse(data), response)
        self.assertRaises(
            TrackerCodecError,
            a.encodeUDPRequest,
            a.UDPScrapeRequest(1, 2, (HASH,) * 75),
        )

    def test_error(self) -> None:
        """
        Action 3 carries the tracker's message.
        """
        data = a.encodeUDPResponse(a.UDPErrorResponse(4, "go away"))
        self.assertEqual(data, struct.pack("!II", 3, 4) + b"go away")
        self.assertEqual(a.decodeUDPResponse(data), a.UDPErrorResponse(4, "go away"))
        self.assertEqual(a.peekUDPResponse(data), (3, 4))

    def test_requestErrors(self) -> None:
        """
        Truncated, unknown or inconsistent requests raise.
        """
        connect = a.encodeUDPRequest(a.UDPConnectRequest(1))
        announce = a.encodeUDPRequest(a.UDPAnnounceRequest(1, 2, request()))
        for data in [
            b"",
            connect[:15],
            connect + b"x",
            b"\x00" * 8 + connect[8:],
            announce[:97],
            struct.pack("!QII", 1, 2, 3) + b"x" * 19,
            struct.pack("!QII", 1, 9, 3),
            announce[:80] + struct.pack("!I", 9) + announce[84:],
        ]:
            self.assertRaises(TrackerCodecError, a.decodeUDPRequest, data)
        self.assertRaises(
            TrackerCodecError,
            a.encodeUDPRequest,
            a.UDPAnnounceRequest(1, 2**32, request()),
        )
        self.assertRaises(
            TrackerCodecError,
            a.encodeUDPRequest,
            a.UDPAnnounceRequest(1, 2, request(ip="::1")),
        )

    def test_responseErrors(self) -> None:
        """
        Truncated or unknown responses raise.
        """
        for data in [
            b"",
            b"\x00" * 7,
            struct.pack("!II", 0, 1) + b"\x00" * 7,
            struct.pack("!II", 1, 1) + b"\x00" * 11,
            struct.pack("!II", 4, 1),
        ]:
            self.assertRaises(TrackerCodecError, a.decodeUDPResponse, data)

    @given(st.binary(max_size=200), st.booleans())
    def test_garbageProperty(self, data: bytes, v6: bool) -> None:
        """
        Garbage packets raise only L{TrackerError}, both directions.
        """
        try:
            a.decodeUDPResponse(data, v6=v6)
        except TrackerError:
            pass
        try:
            a.decodeUDPRequest(data)
        except TrackerError:
            pass

    @given(requests, st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1))
    def test_announceRoundTrip(self, r, cid, tid) -> None:
        """
        Any announce survives the UDP codec (less the tracker id, which UDP
        does not carry, and compact, which it implies).
        """
        r = AnnounceRequest(**{**r.__dict__, "trackerId": None, "compact": True})
        message = a.UDPAnnounceRequest(cid, tid, r)
        self.assertEqual(a.decodeUDPRequest(a.encodeUDPRequest(message)), message)


MIB = 1 << 20
CUT = "\u2026(cut, 1048576 characters)"


class HostileTextTests(SynchronousTestCase):
    """
    A tracker's words are kept and logged cut to L{a.MAX_TRACKER_TEXT}
    characters, the cut said, control characters escaped: a 1 MB C{failure
    reason} or C{warning message} is not written whole into the log on
    every announce.
    """

    def test_trackerText(self) -> None:
        """
        Short printable text is kept as is; long text is cut and says how
        long it was; bad UTF-8 is replaced; control characters, terminal
        escapes and direction overrides are escaped.
        """
        self.assertEqual(a.trackerText("slow down"), "slow down")
        self.assertEqual(a.trackerText(b"caf\xc3\xa9 \xff"), "caf\xe9 \ufffd")
        self.assertEqual(
            a.trackerText("a\nb\x1b[2J\u202ec\U000e0001"),
            "a\\x0ab\\x1b[2J\\u202ec\\U000e0001",
        )
        self.assertEqual(a.trackerText("x" * MIB), "x" * a.MAX_TRACKER_TEXT + CUT)
        self.assertEqual(
            a.trackerText("abcdef", limit=3), "abc\u2026(cut, 6 characters)"
        )

    @given(st.binary(max_size=2000) | st.text(max_size=2000))
    def test_trackerTextBounded(self, value) -> None:
        """
        Whatever a tracker sends, the text kept is printable and at most ten
        times L{a.MAX_TRACKER_TEXT} characters (each one escaped) plus the
        note of the cut.
        """
        text = a.trackerText(value)
        self.assertTrue(text.isprintable())
        self.assertLessEqual(len(text), 10 * a.MAX_TRACKER_TEXT + 40)

    def test_hugeFailureReason(self) -> None:
        """
        A 1 MB C{failure reason} becomes a 300-character reason and the
        note of the cut.
        """
        body = bencode.encode({b"failure reason": b"x" * MIB})
        for decoder in (a.decodeHTTPResponse, a.decodeScrapeResponse):
            e = self.assertRaises(TrackerFailure, decoder, body)
            self.assertEqual(e.reason, "x" * a.MAX_TRACKER_TEXT + CUT)
            self.assertEqual(str(e), e.reason)

    def test_hugeFailureReasonNotText(self) -> None:
        """
        A C{failure reason} that is a huge list is named, never shown.
        """
        body = b"d14:failure reasonl" + b"le" * (MIB // 2) + b"ee"
        e = self.assertRaises(TrackerFailure, a.decodeHTTPResponse, body)
        self.assertEqual(e.reason, "a failure reason that is not text (a list)")

    def test_hugeWarning(self) -> None:
        """
        A 1 MB C{warning message} is kept cut; the answer is still used.
        """
        body = bencode.encode(
            {b"interval": 60, b"peers": b"", b"warning message": b"w" * MIB}
        )
        response = a.decodeHTTPResponse(body)
        self.assertEqual(response.interval, 60)
        self.assertEqual(response.warning, "w" * a.MAX_TRACKER_TEXT + CUT)

    def test_hugeUDPError(self) -> None:
        """
        A UDP error message as large as a datagram gets is kept cut.
        """
        data = struct.pack("!II", a.ACTION_ERROR, 7) + b"e" * 65000
        message = a.decodeUDPResponse(data)
        self.assertEqual(
            message,
            a.UDPErrorResponse(
                7, "e" * a.MAX_TRACKER_TEXT + "\u2026(cut, 65000 characters)"
            ),
        )

    def test_trackerIdKept(self) -> None:
        """
        The decoder keeps a long C{tracker id} as given: dropping it is the
        client's decision (it logs it), see L{a.MAX_TRACKER_ID}.
        """
        body = bencode.encode({b"interval": 60, b"tracker id": b"t" * MIB})
        self.assertEqual(a.decodeHTTPResponse(body).trackerId, b"t" * MIB)


class PeerCapTests(SynchronousTestCase):
    """
    At most L{a.MAX_RESPONSE_PEERS} peer entries of one answer are read:
    decoding 1 MiB of compact peers whole takes about a second of CPU and
    30 MB at its peak.
    """

    def compact(self, count: int, v6: bool = False) -> bytes:
        size = 16 if v6 else 4
        return b"".join(
            (i + 1).to_bytes(size, "big") + b"\x1a\xe1" for i in range(count)
        )

    def test_compactCapped(self) -> None:
        """
        A 1 MiB compact list gives L{a.MAX_RESPONSE_PEERS} peers, the
        first ones, and a bounded peak of memory.
        """
        import tracemalloc

        raw = self.compact(MIB // 6)
        body = bencode.encode({b"interval": 60, b"peers": raw})
        tracemalloc.start()
        try:
            response = a.decodeHTTPResponse(body)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertEqual(len(response.peers), a.MAX_RESPONSE_PEERS)
        self.assertEqual(response.peers[0], ("0.0.0.1", 6881))
        # The body is 1 MiB and bencode copies it once; 174,762 decoded
        # peers would take about 30 MB on top.
        self.assertLess(peak, 4 * MIB)

    def test_sharedBetweenFamilies(self) -> None:
        """
        IPv4 entries read count against the cap before IPv6 ones; a
        dictionary list is capped the same way.
        """
        cap = a.MAX_RESPONSE_PEERS
        body = bencode.encode(
            {
                b"interval": 60,
                b"peers": self.compact(cap - 10),
                b"peers6": self.compact(cap, v6=True),
            }
        )
        peers = a.decodeHTTPResponse(body).peers
        self.assertEqual(len(peers), cap)
        self.assertEqual(sum(":" in host for host, port in peers), 10)
        entries = [{b"ip": b"10.0.0.1", b"port": i + 1} for i in range(cap + 500)]
        body = bencode.encode({b"interval": 60, b"peers": entries})
        self.assertEqual(len(a.decodeHTTPResponse(body).peers), cap)

    def test_udpCapped(self) -> None:
        """
        A UDP announce answer is capped too.
        """
        data = struct.pack("!IIIII", a.ACTION_ANNOUNCE, 1, 60, 0, 0) + self.compact(
            a.MAX_RESPONSE_PEERS + 100
        )
        response = a.decodeUDPResponse(data).response
        self.assertEqual(len(response.peers), a.MAX_RESPONSE_PEERS)

    def test_limitArgument(self) -> None:
        """
        C{limit} counts entries read, valid or not; none means all.
        """
        raw = b"\x00" * 6 + self.compact(5)
        self.assertEqual(len(a.decodeCompactPeers(raw)), 5)
        self.assertEqual(len(a.decodeCompactPeers(raw, limit=3)), 2)
        self.assertEqual(a.decodeCompactPeers(raw, limit=0), ())
        self.assertEqual(a.decodeCompactPeers(raw, limit=-1), ())
        entries = [{b"ip": b"10.0.0.1", b"port": 0}] + [
            {b"ip": b"10.0.0.1", b"port": i + 1} for i in range(5)
        ]
        self.assertEqual(len(a.decodeDictionaryPeers(entries, limit=3)), 2)


class MappedAddressTests(SynchronousTestCase):
    """
    A tracker listing an IPv4-mapped IPv6 address (C{::ffff:127.0.0.1}, our
    own port: a way to make us dial ourselves) gets the IPv4 address back,
    which the checks for our own address know.
    """

    def test_compactV6(self) -> None:
        """
        Compact IPv6 entries that map IPv4 addresses decode as IPv4.
        """
        data = bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1]) + b"\x1a\xe1"
        self.assertEqual(a.decodeCompactPeers(data, v6=True), (("127.0.0.1", 6881),))

    def test_dictionary(self) -> None:
        """
        Dictionary entries too, in any spelling.
        """
        entries = [
            {b"ip": b"::ffff:127.0.0.1", b"port": 1},
            {b"ip": b"::FFFF:7f00:2", b"port": 2},
            {b"ip": b"0:0:0:0:0:ffff:10.0.0.1", b"port": 3},
            {b"ip": b"::ffff:0.0.0.0", b"port": 4},
        ]
        self.assertEqual(
            a.decodeDictionaryPeers(entries),
            (("127.0.0.1", 1), ("127.0.0.2", 2), ("10.0.0.1", 3)),
        )
