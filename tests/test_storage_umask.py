"""
The modes of what L{MultiFileWriter} creates: C{0o666} and C{0o777} less
its C{umask} (022 by default), whatever the process's umask.  twistd in the
background sets the umask to 077; downloads must still come out
C{rw-r--r--} in C{rwxr-xr-x} directories, as with Transmission.
"""

from __future__ import annotations

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from btorrent.engine.storage import DEFAULT_UMASK, MultiFileWriter
from tests.builders import fakeMetainfo

FILES = [
    (("a.bin",), 3000),
    (("sub", "deeper", "b.bin"), 5000),
    (("sub", "empty.bin"), 0),
    (("tool.sh",), 100),
]


def mode(path: str) -> int:
    """
    The permission bits of C{path} (not following a link).
    """
    return stat.S_IMODE(os.lstat(path).st_mode)


class UmaskTests(SynchronousTestCase):
    """
    L{MultiFileWriter} sets the modes of the files and directories it
    creates itself.
    """

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.setProcessUmask(0o077)

    def setProcessUmask(self, umask: int) -> None:
        """
        Set the process's umask for this test.
        """
        previous = os.umask(umask)
        self.addCleanup(os.umask, previous)

    def openStorage(self, downloadDir: str, **kwargs) -> MultiFileWriter:
        """
        Create the files of a torrent of L{FILES} (the last executable)
        under C{downloadDir}, and write its first piece.
        """
        meta, data = fakeMetainfo(FILES, 4096, name="t", executable=[3])
        writer = MultiFileWriter(meta, downloadDir, **kwargs)
        writer.open()
        self.addCleanup(writer.close)
        writer.writePiece(0, data[:4096])
        return writer

    def modes(self, downloadDir: str) -> dict:
        """
        The mode of everything under C{downloadDir}, by relative path.
        """
        found = {}
        for dirpath, dirnames, filenames in os.walk(downloadDir):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                found[os.path.relpath(path, downloadDir)] = mode(path)
        return found

    def test_default(self) -> None:
        """
        With the process's umask at 077, files are created 0644 (0755 when
        the torrent says executable), directories 0755, the download
        directory and its missing parents included.
        """
        self.assertEqual(DEFAULT_UMASK, 0o022)
        downloadDir = os.path.join(self.base, "new", "downloads")
        self.openStorage(downloadDir)
        self.assertEqual(
            self.modes(downloadDir),
            {
                "t": 0o755,
                "t/a.bin": 0o644,
                "t/sub": 0o755,
                "t/sub/deeper": 0o755,
                "t/sub/deeper/b.bin": 0o644,
                "t/sub/empty.bin": 0o644,
                "t/tool.sh": 0o755,
            },
        )
        self.assertEqual(mode(downloadDir), 0o755)
        self.assertEqual(mode(os.path.dirname(downloadDir)), 0o755)

    def test_configured(self) -> None:
        """
        Another umask gives other modes, still whatever the process's.
        """
        downloadDir = os.path.join(self.base, "d")
        self.openStorage(downloadDir, umask=0o027)
        modes = self.modes(downloadDir)
        self.assertEqual(modes["t/a.bin"], 0o640)
        self.assertEqual(modes["t/sub/deeper"], 0o750)
        self.assertEqual(modes["t/tool.sh"], 0o750)
        self.assertEqual(mode(downloadDir), 0o750)

    def test_private(self) -> None:
        """
        C{umask=0o077} makes private files even under a process umask of 0.
        """
        self.setProcessUmask(0)
        downloadDir = os.path.join(self.base, "d")
        self.openStorage(downloadDir, umask=0o077)
        modes = self.modes(downloadDir)
        self.assertEqual(modes["t/a.bin"], 0o600)
        self.assertEqual(modes["t/sub"], 0o700)
        self.assertEqual(modes["t/tool.sh"], 0o700)

    def test_existingKept(self) -> None:
        """
        What exists already keeps its mode: a file of the right length, one
        brought to its length, a directory, the download directory.
        """
        downloadDir = os.path.join(self.base, "d")
        os.makedirs(os.path.join(downloadDir, "t", "sub"))
        os.chmod(downloadDir, 0o711)
        os.chmod(os.path.join(downloadDir, "t", "sub"), 0o700)
        for name, size in (("a.bin", 3000), ("tool.sh", 7)):
            path = os.path.join(downloadDir, "t", name)
            with open(path, "wb") as f:
                f.write(bytes(size))
            os.chmod(path, 0o600)
        self.openStorage(downloadDir)
        modes = self.modes(downloadDir)
        self.assertEqual(mode(downloadDir), 0o711)
        self.assertEqual(modes["t/sub"], 0o700)
        self.assertEqual(modes["t/a.bin"], 0o600)
        # Executable where it can be read: only the owner.
        self.assertEqual(modes["t/tool.sh"], 0o700)
        self.assertEqual(
            os.path.getsize(os.path.join(downloadDir, "t", "tool.sh")), 100
        )
        # Created now: the default mode.
        self.assertEqual(modes["t/sub/deeper"], 0o755)
        self.assertEqual(modes["t/sub/deeper/b.bin"], 0o644)

    def test_singleFile(self) -> None:
        """
        A single-file torrent's file too.
        """
        meta, data = fakeMetainfo([(("one.bin",), 5000)], 4096, "one.bin", False)
        writer = MultiFileWriter(meta, self.base)
        writer.open()
        self.addCleanup(writer.close)
        self.assertEqual(mode(os.path.join(self.base, "one.bin")), 0o644)

    def test_badUmask(self) -> None:
        """
        A umask outside 0..0o777 is a L{ValueError} naming it.
        """
        meta, data = fakeMetainfo(FILES, 4096, name="t")
        for umask in (-1, 0o1000):
            e = self.assertRaises(
                ValueError, MultiFileWriter, meta, self.base, umask=umask
            )
            self.assertEqual(str(e), f"umask must be 0..0o777, not {umask:#o}")
