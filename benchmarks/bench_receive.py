"""
Benchmark: the reactor's Python work per block downloaded, in one process,
without the network, the disk or threads.

A L{Downloader} dials a fake seeder through its real L{PeerProtocol} on a
L{StringTransport}: the seeder reads the requests written and answers them
with the torrent's blocks, fed back in reads of C{--read} bytes, until the
download is complete.  The thread's side (the SHA-1 and the write of each
piece) is answered at once without being done, so that what is timed is
what the reactor's thread does for each block: framing, the events, the
request bookkeeping, the copy into the piece's buffer, the next requests,
and per piece the verified piece's bookkeeping and C{have}s.  The fake
seeder's own work is timed apart and taken off.

Unlike C{bench_download.py}, the figure hardly moves between runs (no
kernel, no second process, no GIL hand-off), so that a change of a few
percent in the receive path shows: run it before and after.

    python benchmarks/bench_receive.py [--size-mib 128] [--read 262144]
        [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from twisted.internet import task  # noqa: E402
from twisted.internet.defer import succeed  # noqa: E402
from twisted.internet.testing import MemoryReactor, StringTransport  # noqa: E402

from btorrent.codec import wire  # noqa: E402
from btorrent.engine.downloader import Downloader  # noqa: E402
from btorrent.engine.picker import PiecePicker  # noqa: E402
from btorrent.peer.framer import READ_SIZE  # noqa: E402
from tests.builders import fakeTorrent  # noqa: E402

PIECE_LENGTH = 256 * 1024
OUR_ID = b"-BT0100-" + b"b" * 12
THEIR_ID = b"-LT2000-" + b"s" * 12
_HEADER = struct.Struct(">IB")
_REQUEST = struct.Struct(">III")


class NullStorage:
    """
    Storage that holds nothing: the benchmark never reads back.
    """

    def __init__(self, metainfo) -> None:
        self.metainfo = metainfo

    def open(self) -> None:
        pass

    def readPieceIfCached(self, index):
        return None


def skipCheck(f, work) -> object:
    """
    The thread runner: every piece passes at once, neither hashed nor
    written (that is the threads' work, not the reactor's).
    """
    return succeed([(True, None)] * len(work))


class FakeSeeder:
    """
    Answers the requests a protocol wrote with the torrent's blocks.

    @ivar seconds: CPU seconds spent here (taken off the figure).
    """

    def __init__(self, metainfo, data: bytes, readSize: int) -> None:
        self.metainfo = metainfo
        self.data = data
        self.readSize = readSize
        self.seconds = 0.0
        self.blocks = 0
        self._handshaken = False

    def answer(self, written: bytes) -> list:
        """
        The reads that answer what was written: each request's block, as
        one stream cut in C{readSize} pieces.
        """
        started = time.process_time()
        offset = 0
        if not self._handshaken:
            offset = 68
            self._handshaken = True
        out = []
        data = self.data
        pieceLength = self.metainfo.pieceLength
        while offset + 5 <= len(written):
            length, kind = _HEADER.unpack_from(written, offset)
            if kind == wire.REQUEST:
                index, begin, size = _REQUEST.unpack_from(written, offset + 5)
                start = index * pieceLength + begin
                out.append(_HEADER.pack(9 + size, wire.PIECE))
                out.append(struct.pack(">II", index, begin))
                out.append(data[start : start + size])
                self.blocks += 1
            offset += 4 + length
        stream = b"".join(out)
        size = self.readSize
        reads = [stream[i : i + size] for i in range(0, len(stream), size)]
        self.seconds += time.process_time() - started
        return reads


def download(sizeMiB: int, readSize: int) -> tuple:
    """
    One download of a torrent of C{sizeMiB}.

    @return: (CPU seconds of the receiving side, blocks).
    """
    pieces = sizeMiB * 1024 * 1024 // PIECE_LENGTH
    metainfo, data = fakeTorrent(PIECE_LENGTH, pieces, 0)
    clock = task.Clock()
    reactor = MemoryReactor()
    picker = PiecePicker(
        metainfo.pieceCount,
        PIECE_LENGTH,
        metainfo.totalLength,
        random.Random(7),
        order="random",
    )
    downloader = Downloader(
        metainfo,
        picker,
        NullStorage(metainfo),
        skipCheck,
        clock,
        reactor,
        OUR_ID,
        listenPort=6881,
    )
    downloader.encryption = "tolerated"
    done = []
    downloader.events.listen("complete", lambda: done.append(True))
    downloader.startService()
    downloader.addPeers([("127.0.0.1", 6999)])
    host, port, factory = reactor.tcpClients[0][:3]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    seeder = FakeSeeder(metainfo, data, readSize)
    started = time.process_time()
    protocol.dataReceived(
        wire.encodeHandshake(wire.Handshake(metainfo.infoHash, THEIR_ID, bytes(8)))
        + wire.encodeMessage(wire.BitfieldMessage(b"\xff" * (pieces // 8)))
        + wire.encodeMessage(wire.Unchoke())
    )
    while not done:
        written = transport.value()
        transport.clear()
        reads = seeder.answer(written)
        if not reads:
            raise SystemExit("the downloader stopped asking before the end")
        for read in reads:
            protocol.dataReceived(read)
    seconds = time.process_time() - started - seeder.seconds
    downloader.stopService()
    return seconds, seeder.blocks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument(
        "--read", type=int, default=READ_SIZE, help="bytes per read (as TCP reads)"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002)
        profiler.start()
        download(args.size_mib, args.read)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        return
    results = []
    for run in range(args.runs):
        seconds, blocks = download(args.size_mib, args.read)
        results.append(seconds / blocks * 1e6)
        print(
            f"run {run + 1}: {seconds:.3f} CPU s for {blocks} blocks, "
            f"{results[-1]:.2f} us per block "
            f"({seconds / (args.size_mib / 1024):.2f} s per GiB)",
            flush=True,
        )
    median = statistics.median(results)
    print(
        f"median: {median:.2f} us per block "
        f"({median * 65536 / 1e6:.2f} CPU s per GiB of 16 KiB blocks)"
    )


if __name__ == "__main__":
    main()
