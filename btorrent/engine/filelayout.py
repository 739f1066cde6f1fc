"""
How a torrent's byte stream is cut into files, and the error of the
storage modules.

L{FileLayout} is pure arithmetic: it maps a byte range of the torrent (a
piece, a block) onto the files it spans.  L{checkComponent} refuses a
path component that could name something outside its directory.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, List, Sequence, Tuple

from btorrent.codec.safepath import componentProblem

__all__ = ["FileLayout", "Slice", "StorageError", "checkComponent"]

#: A slice of a byte range within one file: C{(fileIndex, fileOffset, length)}.
Slice = Tuple[int, int, int]


class StorageError(Exception):
    """
    A path outside the download directory, or an I/O failure.
    """


class FileLayout:
    """
    How a torrent's byte stream is cut into files.

    The torrent is one stream of C{totalLength} bytes; file C{i} holds the
    bytes C{[files[i].offset, files[i].offset + files[i].length)}.  Pieces
    are C{pieceLength} bytes each, the last one possibly shorter.

    L{slices} returns every file a range touches, B{padding files included}
    (so that the slices always cover the range exactly); a writer must skip
    the slices whose file is padding (L{isPadding}).  0-byte files never
    appear in a slice.

    @ivar files: the file entries (objects with C{path}, C{length},
        C{offset} and C{padding}).
    @ivar pieceLength: the nominal piece length.
    @ivar totalLength: the length of the whole torrent.
    @ivar pieceCount: the number of pieces.
    """

    def __init__(
        self, files: Sequence[Any], pieceLength: int, totalLength: int
    ) -> None:
        """
        @param files: objects with C{length}, C{offset} and C{padding}
            attributes, in torrent order, each starting where the previous
            one ends.
        @param pieceLength: the nominal piece length (> 0).
        @param totalLength: the sum of the file lengths.
        @raise ValueError: for inconsistent figures.
        """
        if pieceLength <= 0:
            raise ValueError(f"piece length must be positive, not {pieceLength}")
        if totalLength < 0:
            raise ValueError(f"negative total length {totalLength}")
        self.files = tuple(files)
        self.pieceLength = pieceLength
        self.totalLength = totalLength
        self.pieceCount = -(-totalLength // pieceLength)
        # Only non-empty files take part in the bisection: a 0-byte file
        # shares its offset with its neighbour and holds no byte.
        self._starts: List[int] = []
        self._indexes: List[int] = []
        position = 0
        for i, entry in enumerate(self.files):
            if entry.length < 0:
                raise ValueError(f"file {i} has a negative length")
            if entry.offset != position:
                raise ValueError(
                    f"file {i} starts at {entry.offset}, expected {position}"
                )
            if entry.length:
                self._starts.append(entry.offset)
                self._indexes.append(i)
            position += entry.length
        if position != totalLength:
            raise ValueError(
                f"files add up to {position} bytes, total length is {totalLength}"
            )

    def pieceSize(self, index: int) -> int:
        """
        @return: the length of piece C{index} (the last one may be short).
        @raise ValueError: for an index out of range.
        """
        if not 0 <= index < self.pieceCount:
            raise ValueError(f"piece index {index} out of range")
        return min(self.pieceLength, self.totalLength - index * self.pieceLength)

    def isPadding(self, fileIndex: int) -> bool:
        """
        @return: whether file C{fileIndex} is a padding file (BEP 47), whose
            bytes are zeros never stored on disk.
        """
        return bool(self.files[fileIndex].padding)

    def slices(self, index: int, begin: int, length: int) -> List[Slice]:
        """
        Map C{length} bytes at C{begin} within piece C{index} onto files.

        @return: C{(fileIndex, fileOffset, length)} tuples, in order, whose
            lengths add up to C{length}; none for a 0-byte file; padding
            files included.
        @raise ValueError: if the range does not lie within the piece.
        """
        size = self.pieceSize(index)
        if begin < 0 or length < 0 or begin + length > size:
            raise ValueError(
                f"range {begin}+{length} outside piece {index} of {size} bytes"
            )
        return self.rangeSlices(index * self.pieceLength + begin, length)

    def rangeSlices(self, offset: int, length: int) -> List[Slice]:
        """
        Map C{length} bytes at C{offset} within the whole torrent onto files.

        @return: as for L{slices}.
        @raise ValueError: if the range does not lie within the torrent.
        """
        if offset < 0 or length < 0 or offset + length > self.totalLength:
            raise ValueError(
                f"range {offset}+{length} outside a torrent of "
                f"{self.totalLength} bytes"
            )
        result: List[Slice] = []
        if not length:
            return result
        starts, indexes, files = self._starts, self._indexes, self.files
        k = bisect_right(starts, offset) - 1
        end = offset + length
        while offset < end:
            fileIndex = indexes[k]
            entry = files[fileIndex]
            inFile = offset - entry.offset
            n = min(entry.length - inFile, end - offset)
            result.append((fileIndex, inFile, n))
            offset += n
            k += 1
        return result

    def paddingBlocks(self, index: int, blockSize: int) -> List[int]:
        """
        The blocks of piece C{index} that lie wholly in padding files: their
        bytes are zeros by definition, so a downloader need not request
        them (libtorrent never does) but fills them with zeros itself.

        @param blockSize: the request size (16 KiB), the last block of the
            piece possibly shorter.
        @return: block indexes within the piece, ascending.
        @raise ValueError: for an index out of range.
        """
        size = self.pieceSize(index)
        start = index * self.pieceLength
        result = []
        for block, begin in enumerate(range(0, size, blockSize)):
            length = min(blockSize, size - begin)
            slices = self.rangeSlices(start + begin, length)
            if all(self.files[fileIndex].padding for fileIndex, _, _ in slices):
                result.append(block)
        return result

    def pieceRange(self, fileIndex: int) -> range:
        """
        @return: the indexes of the pieces that hold bytes of file
            C{fileIndex} (empty for a 0-byte file).
        """
        entry = self.files[fileIndex]
        if not entry.length:
            return range(0)
        first = entry.offset // self.pieceLength
        last = (entry.offset + entry.length - 1) // self.pieceLength
        return range(first, last + 1)


def checkComponent(component: Any) -> None:
    """
    Refuse a path component that could name something other than one entry
    inside its parent directory (the rules of L{btorrent.codec.safepath}).

    @raise StorageError: for an empty, C{.}, C{..}, absolute,
        separator-bearing or drive component.
    """
    problem = componentProblem(component)
    if problem is not None:
        raise StorageError(f"unsafe path component: {problem}")
