"""
A hybrid (BEP 52 v1 + v2) torrent made by libtorrent, seeded by libtorrent,
downloads into C{btorrent download} byte-identical, in v1 mode, with no pad
file on disk.

Needs the libtorrent Python bindings; fails (never skips) without them.
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess

from twisted.trial.unittest import TestCase

from btorrent.codec import metainfo
from tests.realseeders import libtorrentSeeder, makeTorrent, writeFiles
from tests.test_interop_seed import WorkDirectories, assertSameFiles
from tests.twistdproc import downloadCommand, repositoryEnvironment

#: Files of odd sizes (so that libtorrent pads each to a piece), a 0-byte
#: file, and one larger than a piece; pieces of 32 KiB, so that some pads
#: hold whole 16 KiB blocks.
HYBRID = [
    ("hybrid/a.bin", 70001),
    ("hybrid/empty", 0),
    ("hybrid/sub/b.bin", 12345),
    ("hybrid/sub/deeper/c.bin", 40003),
    ("hybrid/d.bin", 1),
    ("hybrid/z.bin", 33000),
]
HYBRID_PIECE = 32768


def onDisk(root: str) -> set:
    """
    Every file and directory under C{root}, as relative paths with C{/}.
    """
    found = set()
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return {p.replace(os.sep, "/") for p in found}


class HybridDownloadTests(TestCase):
    """
    C{btorrent download} of a libtorrent hybrid from a libtorrent seeder.
    """

    def test_hybrid(self):
        """
        The torrent is a hybrid with pad files; btorrent reads it in v1
        mode, downloads every file byte-identical and creates exactly the
        torrent's files and directories: no pad file, no C{.pad}
        directory.
        """
        work = WorkDirectories(self)
        writeFiles(work.seedDir, HYBRID, seed=7)
        torrent = makeTorrent(work.seedDir, HYBRID, HYBRID_PIECE, hybrid=True)
        info = metainfo.load(torrent)
        self.assertTrue(info.hybrid)
        pads = [f for f in info.files if f.padding]
        self.assertGreaterEqual(len(pads), 4)
        self.assertTrue(any(f.length >= 16384 for f in pads))
        torrentPath = os.path.join(work.base, "hybrid.torrent")
        with open(torrentPath, "wb") as f:
            f.write(torrent)
        seeder = libtorrentSeeder(work.seedDir, torrent)
        self.addCleanup(seeder.close)
        result = subprocess.run(
            downloadCommand()
            + [
                torrentPath,
                "-o",
                work.downloadDir,
                "--port",
                "0",
                "--interface",
                "127.0.0.1",
                "--peer",
                f"127.0.0.1:{seeder.port}",
                "--quiet",
            ],
            env=repositoryEnvironment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        assertSameFiles(self, HYBRID, work.seedDir, work.downloadDir)
        expected = set()
        for relative, _ in HYBRID:
            parts = relative.split("/")
            expected.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        self.assertEqual(onDisk(work.downloadDir), expected)
