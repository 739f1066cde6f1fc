"""
Tests for L{btorrent.util.readfile.readAtMost}.
"""

from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from btorrent.util.readfile import readAtMost


class ReadAtMostTests(SynchronousTestCase):
    def write(self, data: bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_small(self) -> None:
        """
        A file within the limit is read whole; one at the limit too.
        """
        for data in (b"", b"x", b"0123456789"):
            with open(self.write(data), "rb") as f:
                self.assertEqual(readAtMost(f, 10), data)

    def test_tooLarge(self) -> None:
        """
        A larger file gives C{limit + 1} bytes, for the caller to refuse.
        """
        with open(self.write(b"0123456789A"), "rb") as f:
            self.assertEqual(readAtMost(f, 10), b"0123456789A")
        with open(self.write(b"x" * 100), "rb") as f:
            self.assertEqual(len(readAtMost(f, 10)), 11)

    def test_grows(self) -> None:
        """
        A file that grows between its size and its read is read on, up to
        C{limit + 1} bytes.
        """
        path = self.write(b"abc")
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            self.patch(os, "fstat", lambda fd: stat)
            with open(path, "ab") as g:
                g.write(b"defgh")
            self.assertEqual(readAtMost(f, 6), b"abcdefg")

    def test_notAFile(self) -> None:
        """
        Something without a file descriptor is read up to C{limit + 1}.
        """
        self.assertEqual(readAtMost(io.BytesIO(b"x" * 50), 10), b"x" * 11)
        self.assertEqual(readAtMost(io.BytesIO(b"abc"), 10), b"abc")
