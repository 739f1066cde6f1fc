"""
The torrents the tests use.

L{buildTorrent} writes files of random bytes under a directory and makes
their torrent with our codec: the C{.torrent} bytes, the L{Metainfo},
single- or multi-file, with the piece length asked for.  L{fakeMetainfo}
and L{fakeTorrent} make the same in memory (a L{tests.fakes.FakeMetainfo}
and its bytes), with any piece length and shape, padding files and
symbolic links included.

(Interop tests that need a torrent made by libtorrent itself, a hybrid or
a C{v1_only} one, use L{tests.realseeders.makeTorrent}.)
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from btorrent.codec import metainfo as metainfoCodec
from btorrent.codec.metainfo import Metainfo
from tests.fakes import FakeFileEntry, FakeMetainfo, pieceHashes

__all__ = [
    "ANNOUNCE",
    "BLOCK",
    "BuiltTorrent",
    "buildTorrent",
    "fakeEntries",
    "fakeMetainfo",
    "fakeTorrent",
    "writeFiles",
]

#: A tracker nobody answers (nothing listens on port 1).
ANNOUNCE = "http://127.0.0.1:1/announce"

#: The request size, 16 KiB.
BLOCK = 16384


def writeFiles(
    parent: str, files: Sequence[Tuple[str, int]], seed: int = 0
) -> List[str]:
    """
    Create files of random bytes.

    @param parent: the directory the relative paths start from.
    @param files: C{(relative path with /, size)} pairs.
    @param seed: seeds the bytes.
    @return: the absolute paths.
    """
    rng = random.Random(seed)
    paths = []
    for relative, size in files:
        path = os.path.join(parent, *relative.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            remaining = size
            while remaining:
                chunk = min(remaining, 1 << 20)
                f.write(rng.randbytes(chunk))
                remaining -= chunk
        paths.append(path)
    return paths


@dataclass
class BuiltTorrent:
    """
    Files on disk and their torrent.

    @ivar path: what the torrent shares: the file (single-file) or the
        directory (multi-file).
    @ivar files: the relative paths written (with C{/}), in the order
        given.
    @ivar torrentBytes: the C{.torrent} file's bytes.
    @ivar metainfo: the parsed L{Metainfo}.
    """

    path: str
    files: List[str]
    torrentBytes: bytes
    metainfo: Metainfo

    @property
    def parent(self) -> str:
        """
        The directory holding L{path}: where a client finds the data.
        """
        return os.path.dirname(self.path)

    def read(self, relative: str) -> bytes:
        """
        The bytes of one file (its path relative to the torrent's root;
        for a single-file torrent, its name).
        """
        base = self.path if self.metainfo.multiFile else self.parent
        with open(os.path.join(base, *relative.split("/")), "rb") as f:
            return f.read()

    def content(self) -> bytes:
        """
        The torrent's bytes, every file in the torrent's order.
        """
        if not self.metainfo.multiFile:
            with open(self.path, "rb") as f:
                return f.read()
        return b"".join(
            self.read("/".join(entry.path)) for entry in self.metainfo.files
        )

    def writeTorrent(self, path: Optional[str] = None) -> str:
        """
        Write the C{.torrent} file (by default beside L{path}, named after
        it with C{.torrent}).

        @return: its absolute path.
        """
        if path is None:
            path = self.path + ".torrent"
        path = os.path.abspath(path)
        with open(path, "wb") as f:
            f.write(self.torrentBytes)
        return path


def buildTorrent(
    path: str,
    files: Sequence[Tuple[str, int]],
    pieceLength: Optional[int] = 16384,
    *,
    single: bool = False,
    trackers: Sequence[Sequence[str]] = ((ANNOUNCE,),),
    seed: int = 0,
    private: bool = False,
    comment: Optional[str] = None,
) -> BuiltTorrent:
    """
    Write files of random bytes and make their torrent.

    @param path: the directory the torrent shares (multi-file: its name is
        the directory's), or, with C{single}, the directory holding the
        one file.
    @param files: C{(relative path with /, size)} pairs (with C{single},
        one pair: the file's name and size).
    @param pieceLength: a power of two from 16 KiB, or C{None} for the
        codec's choice.
    @param single: a single-file torrent.
    @param trackers: BEP 12 tiers of announce URLs.
    @param seed: seeds the bytes (the same seed, the same files).
    @param private: set the private flag.
    @param comment: the torrent's comment, if any.
    """
    path = os.path.abspath(path)
    written = writeFiles(path, files, seed)
    if single:
        if len(written) != 1:
            raise ValueError("a single-file torrent has one file")
        path = written[0]
    else:
        os.makedirs(path, exist_ok=True)
    data = metainfoCodec.create(
        path,
        [list(tier) for tier in trackers],
        pieceLength=pieceLength,
        private=private,
        comment=comment,
    )
    return BuiltTorrent(
        path, [relative for relative, _ in files], data, metainfoCodec.load(data)
    )


def fakeMetainfo(
    files: Sequence[Tuple[Tuple[str, ...], int]],
    pieceLength: int,
    name: str = "torrent",
    multiFile: bool = True,
    padding: Sequence[int] = (),
    data: Optional[bytes] = None,
    symlinks: Optional[Dict[int, Tuple[str, ...]]] = None,
    executable: Sequence[int] = (),
    infoHash: Optional[bytes] = None,
) -> Tuple[FakeMetainfo, bytes]:
    """
    A metainfo-shaped value and the torrent's content, in memory.

    @param files: C{(path, length)} per file.
    @param pieceLength: any positive length.
    @param padding: indexes of padding files (their content is zeros).
    @param data: the content, or C{None} for random bytes.
    @param symlinks: the target of each symbolic link, by index (its
        length must be 0).
    @param executable: indexes of executable files.
    @param infoHash: the info-hash (by default one made from the name and
        the content).
    @return: the metainfo and the content.
    """
    entries = []
    offset = 0
    for i, (path, length) in enumerate(files):
        entries.append(
            FakeFileEntry(
                tuple(path),
                length,
                offset,
                i in padding,
                (symlinks or {}).get(i),
                i in executable,
            )
        )
        offset += length
    if data is None:
        rng = random.Random(offset * 31 + pieceLength)
        content = bytearray(rng.randbytes(offset))
        for entry in entries:
            if entry.padding:
                content[entry.offset : entry.offset + entry.length] = bytes(
                    entry.length
                )
        data = bytes(content)
    if infoHash is None:
        infoHash = hashlib.sha1(name.encode() + data[:64]).digest()
    meta = FakeMetainfo(
        name=name,
        infoHash=infoHash,
        pieceLength=pieceLength,
        pieceHashes=pieceHashes(data, pieceLength),
        totalLength=offset,
        files=tuple(entries),
        multiFile=multiFile,
    )
    return meta, data


def fakeTorrent(
    pieceLength: int = 4 * BLOCK, pieces: int = 4, lastShort: int = 1000
) -> Tuple[FakeMetainfo, bytes]:
    """
    An in-memory single-file torrent of random bytes: C{pieces} pieces,
    the last one C{lastShort} bytes (a whole piece if 0), info-hash
    C{"h" * 20}.

    @return: C{(metainfo, data)}.
    """
    rng = random.Random(pieceLength * 31 + pieces)
    total = pieceLength * (pieces - 1) + (lastShort or pieceLength)
    data = rng.randbytes(total)
    return fakeMetainfo(
        [(("data",), total)],
        pieceLength,
        name="data",
        multiFile=False,
        data=data,
        infoHash=b"h" * 20,
    )


def fakeEntries(lengths: Sequence[int], padding: Sequence[int] = ()):
    """
    File entries of the given lengths, one after the other.
    """
    out = []
    offset = 0
    for i, length in enumerate(lengths):
        out.append(FakeFileEntry((f"f{i}",), length, offset, i in padding))
        offset += length
    return out
