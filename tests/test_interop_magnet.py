"""
Magnet links, ut_metadata and ut_pex against libtorrent 2.1 on 127.0.0.1.

The peer connection that will carry these extensions is being rewritten,
so these tests drive a plain blocking socket (L{RawPeer}) with our codecs
and state machines: what they prove is that the bytes and the policies
agree with a real client.

  - L{parseMagnet} reads what C{lt.parse_magnet_uri} reads (hash, name,
    trackers, peers), for generated links.
  - L{MetadataFetcher} gets a three-piece info dictionary from a
    libtorrent seeder, two requests at a time, and
    L{metainfoFromMetadata} turns it into the torrent libtorrent seeds.
  - L{MetadataServer} gives a libtorrent leecher, started from a magnet
    link naming us in C{x.pe}, its metadata.
  - A libtorrent leecher that learns a seeder only from our L{PexSender}'s
    message downloads from it; a libtorrent seeder's PEX message, read by
    L{PexReceiver}, names the other peer it has.

libtorrent missing is a failure, never a skip.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import metainfo, wire
from btorrent.codec.magnet import formatMagnet, metainfoFromMetadata, parseMagnet
from btorrent.peer.extended import (
    EXTENDED,
    HANDSHAKE_ID,
    OUR_EXTENSION_IDS,
    UT_METADATA,
    UT_PEX,
    decodeExtendedHandshake,
    encodeExtendedHandshake,
    encodeExtendedMessage,
    localHandshake,
    setExtensionBit,
    supportsExtensions,
)
from btorrent.peer.utmetadata import (
    MAX_MESSAGE_SIZE,
    MAX_OUTSTANDING,
    MetadataData,
    MetadataFetcher,
    MetadataReject,
    MetadataRequest,
    MetadataServer,
    decodeMetadataMessage,
    encodeMetadataMessage,
    pieceCount,
)
from btorrent.peer.utpex import (
    PEX_OUTGOING,
    PEX_SEED,
    PexMessage,
    PexReceiver,
    PexSender,
    decodePex,
    encodePex,
)
from tests.realclients import loopbackSession, waitUntil, writeFiles
from tests.realpeers import freePort
from tests.realseeders import lt, makeTorrent

#: Files whose long names make an info dictionary of three metadata pieces.
MANY_FILES = [(f"many/{'n' * 60}-{i:04d}.bin", 100 + i) for i in range(500)]


class RawPeer:
    """
    A blocking BitTorrent connection for tests: our handshake with the BEP
    10 bit, extended messages in and out, every other message skipped.
    """

    def __init__(self, sock: socket.socket, timeout: float = 10.0) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buffer = bytearray()
        self.handshake: Optional[wire.Handshake] = None
        self.extended = None  # the peer's extended handshake

    @classmethod
    def connect(cls, port: int) -> RawPeer:
        return cls(socket.create_connection(("127.0.0.1", port), timeout=10))

    def close(self) -> None:
        self.sock.close()

    def _fill(self, n: int) -> None:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the peer closed the connection")
            self.buffer += chunk

    def sendHandshake(self, infoHash: bytes) -> None:
        peerId = b"-BT0001-" + os.urandom(12)
        self.sock.sendall(
            wire.encodeHandshake(wire.Handshake(infoHash, peerId, setExtensionBit()))
        )

    def readHandshake(self) -> wire.Handshake:
        self._fill(wire.HANDSHAKE_LENGTH)
        self.handshake = wire.decodeHandshake(bytes(self.buffer[:68]))
        del self.buffer[:68]
        return self.handshake

    def sendExtended(self, extendedId: int, payload: bytes) -> None:
        self.sock.sendall(encodeExtendedMessage(extendedId, payload))

    def readExtended(self) -> Tuple[int, bytes]:
        """
        The next extended message: its extended id and payload (the peer's
        extended handshake, id 0, is also kept in L{extended}).
        """
        while True:
            self._fill(4)
            (length,) = struct.unpack(">I", self.buffer[:4])
            if length > 1 << 20:
                raise ValueError(f"message of {length} bytes")
            self._fill(4 + length)
            message = bytes(self.buffer[4 : 4 + length])
            del self.buffer[: 4 + length]
            if len(message) >= 2 and message[0] == EXTENDED:
                if message[1] == HANDSHAKE_ID:
                    self.extended = decodeExtendedHandshake(message[2:])
                return message[1], message[2:]


def seedTorrent(parent: str, files, pex: bool = False, seed: bool = True, port=None):
    """
    A libtorrent session on 127.0.0.1 with one torrent over C{files} under
    C{parent}: seeding (in seed mode) or leeching; PEX off unless C{pex}.

    @return: C{(session, handle, torrent bytes, port)}.
    """
    torrent = makeTorrent(parent, files, 16384)
    port = port or freePort()
    session = loopbackSession(port, close_redundant_connections=False)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(torrent))
    params.save_path = parent
    flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
    if not pex:
        flags |= lt.torrent_flags.disable_pex
    if seed:
        flags |= lt.torrent_flags.seed_mode
    params.flags = flags
    handle = session.add_torrent(params)
    waitUntil(lambda: session.is_listening(), 10, "libtorrent listening")
    return session, handle, torrent, port


class ParseMagnetInteropTests(SynchronousTestCase):
    """
    L{parseMagnet} against C{lt.parse_magnet_uri}.
    """

    @given(
        st.binary(min_size=20, max_size=20).filter(any),
        st.booleans(),
        st.none() | st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s),
        st.lists(
            st.builds(
                lambda scheme, host, port: f"{scheme}://{host}:{port}/announce",
                st.sampled_from(["http", "https", "udp"]),
                st.from_regex(r"[a-z][a-z0-9]{0,8}\.(com|org|net)", fullmatch=True),
                st.integers(1, 65535),
            ),
            max_size=4,
            unique=True,
        ),
        st.lists(
            st.tuples(
                st.ip_addresses().filter(
                    lambda a: a.version == 4 or a.ipv4_mapped is None
                ),
                st.integers(1, 65535),
            ).map(lambda p: (str(p[0]), p[1])),
            max_size=3,
            unique=True,
        ),
    )
    @settings(max_examples=200, deadline=None)
    def test_sameAsLibtorrent(self, infoHash, base32, name, trackers, peers) -> None:
        link = formatMagnet(infoHash, name, trackers, peers)
        if base32:
            import base64

            hashText = base64.b32encode(infoHash).decode()
            link = link.replace(infoHash.hex(), hashText)
        ours = parseMagnet(link)
        theirs = lt.parse_magnet_uri(link)
        self.assertEqual(ours.infoHash, bytes.fromhex(str(theirs.info_hashes.v1)))
        self.assertEqual(ours.name or "", theirs.name)
        self.assertEqual([t for (t,) in ours.trackers], list(theirs.trackers))
        self.assertEqual(list(theirs.tracker_tiers), list(range(len(trackers))))
        self.assertEqual(list(ours.peers), [(h, p) for h, p in theirs.peers])


class MetadataInteropTests(SynchronousTestCase):
    """
    ut_metadata with libtorrent, both ways.
    """

    def test_fetchFromLibtorrent(self) -> None:
        """
        The fetcher gets a libtorrent seeder's three-piece info dictionary
        with at most two requests outstanding; the torrent built from it is
        the one libtorrent seeds.
        """
        parent = self.mktemp()
        os.makedirs(parent)
        writeFiles(parent, MANY_FILES)
        session, handle, torrent, port = seedTorrent(parent, MANY_FILES)
        self.addCleanup(session.remove_torrent, handle)
        expected = metainfo.load(torrent)
        self.assertEqual(pieceCount(len(expected.infoBytes)), 3)

        peer = RawPeer.connect(port)
        self.addCleanup(peer.close)
        peer.sendHandshake(expected.infoHash)
        self.assertTrue(supportsExtensions(peer.readHandshake().reserved))
        peer.sendExtended(HANDSHAKE_ID, encodeExtendedHandshake(localHandshake()))

        fetcher = MetadataFetcher(expected.infoHash)
        start = time.monotonic()
        ourId = OUR_EXTENSION_IDS[UT_METADATA]
        maxOutstanding = 0
        while not fetcher.done:
            self.assertLess(time.monotonic() - start, 20)
            if peer.extended is not None and not fetcher.peers():
                self.assertTrue(fetcher.addPeer("lt", peer.extended.metadataSize))
            theirId = peer.extended.extensionId(UT_METADATA) if peer.extended else 0
            for piece in fetcher.requests("lt", time.monotonic()):
                peer.sendExtended(
                    theirId, encodeMetadataMessage(MetadataRequest(piece))
                )
            maxOutstanding = max(maxOutstanding, len(fetcher.outstanding("lt")))
            extendedId, payload = peer.readExtended()
            if extendedId != ourId:
                continue
            self.assertLessEqual(len(payload), MAX_MESSAGE_SIZE)
            message = decodeMetadataMessage(payload)
            self.assertIsInstance(message, MetadataData)
            self.assertEqual(
                fetcher.gotData("lt", message, time.monotonic()), frozenset()
            )
        self.assertEqual(maxOutstanding, MAX_OUTSTANDING)
        self.assertEqual(fetcher.infoBytes, expected.infoBytes)
        built, data = metainfoFromMetadata(fetcher.infoBytes, expected.trackers)
        self.assertEqual(built.infoHash, expected.infoHash)
        self.assertEqual(built.files, expected.files)
        self.assertEqual(
            lt.torrent_info(lt.bdecode(data)).info_hashes().v1.to_bytes(),
            expected.infoHash,
        )

    def test_serveToLibtorrent(self) -> None:
        """
        A libtorrent leecher given a magnet link that names us in C{x.pe}
        connects and gets its metadata from our server; asking for a piece
        out of range gets a reject.
        """
        parent = self.mktemp()
        os.makedirs(parent)
        writeFiles(parent, MANY_FILES)
        expected = metainfo.load(makeTorrent(parent, MANY_FILES, 16384))
        server = MetadataServer(expected.infoBytes)

        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(20)
        ourPort = listener.getsockname()[1]

        session = loopbackSession(freePort())
        params = lt.parse_magnet_uri(
            formatMagnet(expected.infoHash, "x", peers=[("127.0.0.1", ourPort)])
        )
        params.save_path = self.mktemp()
        params.flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
        handle = session.add_torrent(params)
        self.addCleanup(session.remove_torrent, handle)

        sock, _ = listener.accept()
        peer = RawPeer(sock)
        self.addCleanup(peer.close)
        self.assertEqual(peer.readHandshake().infoHash, expected.infoHash)
        self.assertTrue(supportsExtensions(peer.handshake.reserved))
        peer.sendHandshake(expected.infoHash)
        peer.sendExtended(
            HANDSHAKE_ID,
            encodeExtendedHandshake(localHandshake(metadataSize=server.metadataSize)),
        )
        served = set()
        start = time.monotonic()
        while not handle.status().has_metadata:
            self.assertLess(time.monotonic() - start, 20)
            peer.sock.settimeout(0.5)
            try:
                extendedId, payload = peer.readExtended()
            except socket.timeout:
                continue
            if extendedId != OUR_EXTENSION_IDS[UT_METADATA]:
                continue
            request = decodeMetadataMessage(payload)
            self.assertIsInstance(request, MetadataRequest)
            reply = server.respond(request, "lt")
            served.add(request.piece)
            theirId = peer.extended.extensionId(UT_METADATA)
            peer.sendExtended(theirId, encodeMetadataMessage(reply))
        self.assertEqual(served, {0, 1, 2})
        info = handle.torrent_file()
        self.assertEqual(info.info_hashes().v1.to_bytes(), expected.infoHash)
        self.assertEqual(info.num_files(), len(MANY_FILES))
        self.assertIsInstance(server.respond(MetadataRequest(3)), MetadataReject)


class PexInteropTests(SynchronousTestCase):
    """
    ut_pex with libtorrent, both ways.
    """

    def test_libtorrentLearnsFromUs(self) -> None:
        """
        A libtorrent leecher that knows no peer downloads from a libtorrent
        seeder named only in our PEX message.
        """
        files = [("pex.bin", 200000)]
        seedDir = self.mktemp()
        os.makedirs(seedDir)
        writeFiles(seedDir, files)
        seeder, seedHandle, torrent, seedPort = seedTorrent(seedDir, files)
        self.addCleanup(seeder.remove_torrent, seedHandle)
        leechDir = self.mktemp()
        os.makedirs(leechDir)
        leecher = loopbackSession(freePort())
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(lt.bdecode(torrent))
        params.save_path = leechDir
        params.flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
        leechHandle = leecher.add_torrent(params)
        self.addCleanup(leecher.remove_torrent, leechHandle)
        waitUntil(lambda: leecher.is_listening(), 10, "libtorrent listening")
        infoHash = metainfo.load(torrent).infoHash

        peer = RawPeer.connect(leecher.listen_port())
        self.addCleanup(peer.close)
        peer.sendHandshake(infoHash)
        peer.readHandshake()
        peer.sendExtended(HANDSHAKE_ID, encodeExtendedHandshake(localHandshake()))
        waitUntil(lambda: self._readUntilHandshake(peer), 10, "extended handshake")
        theirId = peer.extended.extensionId(UT_PEX)
        self.assertNotEqual(theirId, 0)

        sender = PexSender([("127.0.0.1", peer.sock.getsockname()[1])])
        message = sender.nextMessage(
            {("127.0.0.1", seedPort): PEX_SEED | PEX_OUTGOING}, time.monotonic()
        )
        self.assertEqual(len(message.added), 1)
        peer.sendExtended(theirId, encodePex(message))
        waitUntil(lambda: leechHandle.status().is_finished, 30, "the leecher to finish")

    def _readUntilHandshake(self, peer: RawPeer) -> bool:
        if peer.extended is not None:
            return True
        peer.sock.settimeout(0.2)
        try:
            peer.readExtended()
        except socket.timeout:
            pass
        return peer.extended is not None

    def test_weLearnFromLibtorrent(self) -> None:
        """
        A libtorrent seeder connected to a libtorrent leecher and to us
        sends us a PEX message naming the leecher's listen address, which
        L{PexReceiver} takes; our own address, which libtorrent lists too,
        is not learned.
        """
        files = [("pex2.bin", 50000)]
        seedDir = self.mktemp()
        os.makedirs(seedDir)
        writeFiles(seedDir, files)
        seeder, seedHandle, torrent, seedPort = seedTorrent(seedDir, files, pex=True)
        self.addCleanup(seeder.remove_torrent, seedHandle)
        infoHash = metainfo.load(torrent).infoHash
        leechPort = freePort()
        leecher = loopbackSession(leechPort, close_redundant_connections=False)
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(lt.bdecode(torrent))
        params.save_path = self.mktemp()
        params.flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
        leechHandle = leecher.add_torrent(params)
        self.addCleanup(leecher.remove_torrent, leechHandle)
        leechHandle.connect_peer(("127.0.0.1", seedPort))

        peer = RawPeer.connect(seedPort)
        self.addCleanup(peer.close)
        peer.sendHandshake(infoHash)
        peer.readHandshake()
        ourListen = ("127.0.0.1", freePort())
        peer.sendExtended(
            HANDSHAKE_ID, encodeExtendedHandshake(localHandshake(port=ourListen[1]))
        )
        receiver = PexReceiver(("127.0.0.1", seedPort), ownAddresses=[ourListen])
        learned: List = []
        raw: List[PexMessage] = []
        start = time.monotonic()
        peer.sock.settimeout(1)
        while ("127.0.0.1", leechPort) not in [a for a, _ in learned]:
            self.assertLess(time.monotonic() - start, 30, f"learned {learned}")
            try:
                extendedId, payload = peer.readExtended()
            except socket.timeout:
                continue
            if extendedId == OUR_EXTENSION_IDS[UT_PEX]:
                raw.append(decodePex(payload))
                learned.extend(receiver.receive(payload, time.monotonic()).added)
        learnedAddresses = [a for a, _ in learned]
        self.assertNotIn(ourListen, learnedAddresses)
        self.assertNotIn(("127.0.0.1", peer.sock.getsockname()[1]), learnedAddresses)
        # libtorrent lists the receiver too (under the listen port we gave
        # it): our filter is what kept it out.
        self.assertIn(ourListen, [a for m in raw for a, _ in m.added])
