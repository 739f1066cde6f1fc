"""
btorrent reads torrents the way libtorrent reads them: the 178 torrents of
C{tests/conformance/} (from libtorrent's, Transmission's, anacrolix's and
webtorrent's test suites) are loaded by libtorrent's own parser
(C{lt.torrent_info}) and by L{btorrent.codec.metainfo.loadFile}.

For every torrent libtorrent loads, btorrent gives the same info-hash,
name, piece length, piece count, total size, private flag and file list
(path, length, offset and BEP 47 flags of each file, and the target of
each symbolic link), unless the torrent is listed in L{DEVIATIONS} with
the reason.  A pad file's path is not compared: it is never on disk, and
libtorrent renames most of them C{.pad/<size>}.

Each deviation is checked to be still there (a stale entry fails, so that
the list stays true), and a new one fails the test.  Nothing in the corpus
may raise anything but L{MetainfoError}.

Needs the libtorrent Python bindings; fails (never skips) without them.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import libtorrent as lt
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec import bencode, metainfo
from btorrent.codec.metainfo import V2_ONLY, MetainfoError
from btorrent.codec.safepath import componentProblem

#: The corpus, inside the repository (CI runs on a fresh machine).
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conformance")
TORRENTS = os.path.join(CORPUS, "torrents")
#: How many torrents the corpus holds: a lost file is noticed.
CORPUS_SIZE = 178

#: One file as both sides are compared: (path from the torrent's name,
#: length, offset, pad, executable, hidden, symlink target or None).
Entry = Tuple[str, int, int, bool, bool, bool, Optional[str]]


@dataclass(frozen=True)
class Refused:
    """
    libtorrent loads the torrent, btorrent refuses it on purpose.

    @ivar error: what btorrent's error says (a fragment of it).
    @ivar reason: why.
    """

    error: str
    reason: str


@dataclass(frozen=True)
class Loaded:
    """
    libtorrent refuses the torrent, btorrent loads it.
    """

    reason: str


@dataclass(frozen=True)
class Different:
    """
    Both load, with file lists that differ only as C{relax} forgives.

    @ivar relax: a function of our file list giving what libtorrent's must
        equal (the strict comparison must fail, the relaxed one pass).
    """

    relax: Callable[[List[Entry], List[Entry]], Tuple[list, list]]
    reason: str


ESCAPES = (
    "a path component that could lead out of the download directory is "
    "refused, naming it (btorrent's policy; libtorrent rewrites it instead)"
)
WINDOWS = (
    "a backslash is a path separator on Windows, where the same torrent may "
    "be seeded from, so it is refused like '/' (libtorrent drops it)"
)
V2 = "BitTorrent v2-only torrents are not supported yet (BEP 52)"


def _emptyFilesAnywhere(ours: List[Entry], theirs: List[Entry]):
    """
    Compare the files that hold bytes in order, and the 0-byte ones as a
    set: where a 0-byte file stands holds no data.
    """

    def split(entries):
        full = [e for e in entries if e[1]]
        empty = sorted(e[:2] + e[3:] for e in entries if not e[1])
        return full, empty

    return split(ours), split(theirs)


def _underscoreForNonUTF8(ours: List[Entry], theirs: List[Entry]):
    """
    Our paths with each byte that is not UTF-8 written as libtorrent writes
    it, C{_}.
    """

    def underscore(path: str) -> str:
        raw = path.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "replace").replace("\ufffd", "_")

    return [(underscore(e[0]),) + e[1:] for e in ours], theirs


DEVIATIONS: Dict[str, object] = {
    # Paths that would leave the download directory: refused.
    "libtorrent/test_torrents/absolute_filename.torrent": Refused(
        "'/foobar' contains '/'", ESCAPES
    ),
    "libtorrent/test_torrents/hidden_parent_path.torrent": Refused(
        "'foo/../../../bar' contains '/'", ESCAPES
    ),
    "libtorrent/test_torrents/invalid_directory_name.torrent": Refused(
        "'/' contains '/'", ESCAPES
    ),
    "libtorrent/test_torrents/invalid_name2.torrent": Refused(
        "info.name '..': unsafe path component: '..' leads out", ESCAPES
    ),
    "libtorrent/test_torrents/parent_path.torrent": Refused(
        "'../../bar': unsafe path component: '..' leads out", ESCAPES
    ),
    "libtorrent/test_torrents/slash_path.torrent": Refused("'/' contains '/'", ESCAPES),
    "libtorrent/test_torrents/slash_path2.torrent": Refused(
        "'abc/../../def' contains '/'", ESCAPES
    ),
    "libtorrent/test_torrents/slash_path3.torrent": Refused(
        "info.name 'temp/../../abc': unsafe path component", ESCAPES
    ),
    "libtorrent/test_torrents/symlink_filtered_path.torrent": Refused(
        "'/' contains '/'", ESCAPES
    ),
    "libtorrent/test_torrents/backslash_path.torrent": Refused(
        "contains '\\'", WINDOWS
    ),
    "libtorrent/test_torrents/invalid_filename.torrent": Refused(
        "info.name '\\\\est2': unsafe path component", WINDOWS
    ),
    "libtorrent/test_torrents/invalid_filename2.torrent": Refused(
        "info.name '\\\\est2': unsafe path component", WINDOWS
    ),
    # Paths of nothing.
    "libtorrent/test_torrents/empty_path.torrent": Refused(
        "every path component is empty or '.': the path names no file",
        "a path whose components are all empty names no file (libtorrent "
        "calls it '_'); paths where only some are empty load",
    ),
    "libtorrent/test_torrents/empty_path_multi.torrent": Refused(
        "every path component is empty or '.': the path names no file",
        "as empty_path.torrent",
    ),
    # Two files at one path.
    "libtorrent/test_torrents/duplicate_files.torrent": Refused(
        "info.files[1].path 'foo/bar.txt': duplicate path",
        "a torrent naming one file twice is refused, as Transmission refuses "
        "it; libtorrent renames the second (foo/bar.1.txt), a name the "
        "torrent never gave",
    ),
    "transmission/dup-files.torrent": Refused(
        "duplicate path", "as duplicate_files.torrent (Transmission refuses it)"
    ),
    # Not valid bencoding.
    "transmission/dup-pieces-key.torrent": Refused(
        "duplicate dictionary key b'pieces'",
        "an info dictionary with a key twice is not valid bencoding (which "
        "'pieces' is meant is a guess); Transmission refuses it too",
    ),
    # Limits.
    "libtorrent/test_torrents/large_piece_size.torrent": Refused(
        "info.piece length: 536854528 is above 67108864",
        "btorrent holds whole pieces in memory (several in flight), so it "
        "takes pieces of at most 64 MiB; libtorrent takes up to 512 MiB",
    ),
    # BEP 52.
    "anacrolix/bittorrent-v2-test.torrent": Refused(V2_ONLY, V2),
    "libtorrent/bench-torrents/base-v2.torrent": Refused(V2_ONLY, V2),
    "libtorrent/test_torrents/v2_incomplete_piece_layer.torrent": Refused(V2_ONLY, V2),
    "libtorrent/test_torrents/v2_invalid_filename.torrent": Refused(V2_ONLY, V2),
    "libtorrent/test_torrents/v2_invalid_filename2.torrent": Refused(V2_ONLY, V2),
    "libtorrent/test_torrents/v2_multiple_files.torrent": Refused(V2_ONLY, V2),
    "libtorrent/test_torrents/v2_no_piece_layers.torrent": Refused(V2_ONLY, V2),
    "libtorrent/test_torrents/v2_only.torrent": Refused(V2_ONLY, V2),
    "libtorrent/test_torrents/v2_symlinks.torrent": Refused(V2_ONLY, V2),
    "libtorrent/test_torrents/v2_invalid_file.torrent": Loaded(
        "a hybrid whose v2 file tree is broken: btorrent reads hybrids in v1 "
        "mode only and never looks at the v2 part; the v1 part is whole"
    ),
    "libtorrent/test_torrents/v2_mismatching_metadata.torrent": Loaded(
        "a hybrid whose v1 and v2 file lists disagree: btorrent reads only "
        "the v1 part, which is consistent with its own pieces"
    ),
    # Both load, the file lists differ.
    "libtorrent/test_torrents/empty-files-2.torrent": Different(
        _emptyFilesAnywhere,
        "a hybrid: libtorrent takes the file order from the v2 file tree, "
        "where a 0-byte file comes after the previous file's pad; btorrent "
        "keeps the v1 order; the same files hold the same bytes",
    ),
    "transmission/bad-utf8-path.torrent": Different(
        _underscoreForNonUTF8,
        "a name that is not UTF-8 keeps its bytes on disk (btorrent); "
        "libtorrent writes '_' for each bad sequence",
    ),
}


def corpusFiles() -> List[str]:
    """
    The torrents, as paths relative to L{TORRENTS}, sorted.
    """
    out = []
    for directory, _, names in os.walk(TORRENTS):
        for name in names:
            out.append(os.path.relpath(os.path.join(directory, name), TORRENTS))
    return sorted(out)


def ltEntries(ti: lt.torrent_info) -> List[Entry]:
    """
    libtorrent's file list (pad files without their path).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = ti.files()
    out = []
    for i in range(fs.num_files()):
        flags = fs.file_flags(i)
        pad = bool(flags & lt.file_storage.flag_pad_file)
        path = fs.file_path(i).replace(os.sep, "/")
        target = None
        if flags & lt.file_storage.flag_symlink:
            target = fs.symlink(i).replace(os.sep, "/")
            if target == path:
                # libtorrent's mark of a link whose target it refused.
                target = None
        out.append(
            (
                "" if pad else path,
                fs.file_size(i),
                fs.file_offset(i),
                pad,
                bool(flags & lt.file_storage.flag_executable),
                bool(flags & lt.file_storage.flag_hidden),
                target,
            )
        )
    return out


def ourEntries(m: metainfo.Metainfo) -> List[Entry]:
    """
    Our file list in the same form: paths prefixed with the name for a
    multi-file torrent, as libtorrent gives them.
    """

    def full(path) -> str:
        return "/".join((m.name,) + tuple(path)) if m.multiFile else path[0]

    return [
        (
            "" if f.padding else full(f.path),
            f.length,
            f.offset,
            f.padding,
            f.executable,
            f.hidden,
            None if f.symlink is None else full(f.symlink),
        )
        for f in m.files
    ]


def summary(ti: lt.torrent_info) -> tuple:
    """
    Everything but the file list, from libtorrent.
    """
    return (
        ti.info_hashes().v1.to_bytes(),
        ti.name(),
        ti.piece_length(),
        ti.num_pieces(),
        ti.total_size(),
        ti.priv(),
    )


def ourSummary(m: metainfo.Metainfo) -> tuple:
    """
    Everything but the file list, from btorrent.
    """
    return (m.infoHash, m.name, m.pieceLength, m.pieceCount, m.totalLength, m.private)


def check(relative: str) -> Optional[str]:
    """
    Load one torrent both ways and compare.

    @return: C{None} when btorrent behaves as expected, else what is wrong.
    """
    path = os.path.join(TORRENTS, relative)
    try:
        ti = lt.torrent_info(path)
    except RuntimeError:
        ti = None
    try:
        ours = metainfo.loadFile(path)
        error = None
    except MetainfoError as e:
        ours, error = None, str(e)
    except Exception as e:
        return f"raised {type(e).__name__}: {e}"
    expected = DEVIATIONS.get(relative)
    if ti is None:
        if ours is not None and not isinstance(expected, Loaded):
            return "libtorrent refuses it, btorrent loads it"
        if ours is None and expected is not None:
            return f"libtorrent and btorrent refuse it: stale entry {expected}"
        if error is not None and "\n" in error:
            return f"a multi-line error: {error!r}"
        return None
    if ours is None:
        if not isinstance(expected, Refused):
            return f"libtorrent loads it, btorrent refuses it: {error}"
        if expected.error not in error:
            return f"refused, but the error {error!r} lacks {expected.error!r}"
        return None
    if summary(ti) != ourSummary(ours):
        return f"libtorrent {summary(ti)[1:]} != btorrent {ourSummary(ours)[1:]}"
    theirs, mine = ltEntries(ti), ourEntries(ours)
    if isinstance(expected, Different):
        if mine == theirs:
            return f"same files: stale entry {expected}"
        mine, theirs = expected.relax(mine, theirs)
    elif expected is not None:
        return f"both load it: stale entry {expected}"
    if mine != theirs:
        first = next(i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b)
        return (
            f"file lists differ ({len(mine)} and {len(theirs)} files), first at "
            f"{first}: btorrent {mine[first]} libtorrent {theirs[first]}"
        )
    return None


class ConformanceTests(SynchronousTestCase):
    """
    The corpus against libtorrent.
    """

    def test_corpus(self) -> None:
        """
        Every torrent of the corpus loads as libtorrent loads it, or as
        L{DEVIATIONS} says.
        """
        files = corpusFiles()
        self.assertEqual(len(files), CORPUS_SIZE)
        problems = [f"{relative}: {check(relative)}" for relative in files]
        problems = [p for p in problems if not p.endswith(": None")]
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_deviationsExist(self) -> None:
        """
        Every listed deviation names a torrent of the corpus and gives a
        reason.
        """
        files = set(corpusFiles())
        for relative, deviation in DEVIATIONS.items():
            self.assertIn(relative, files)
            self.assertTrue(deviation.reason)

    def test_symlink1(self) -> None:
        """
        libtorrent's C{symlink1.torrent}: the link takes no room, so the
        torrent is 425 bytes, one piece that can verify.
        """
        m = metainfo.loadFile(
            os.path.join(TORRENTS, "libtorrent/test_torrents/symlink1.torrent")
        )
        self.assertEqual(m.totalLength, 425)
        self.assertEqual(m.files[1].symlink, ("a", "b", "bar"))

    def test_warnedNotRefused(self) -> None:
        """
        The torrents with a malformed optional field load with a warning.
        """
        for relative, words in [
            ("webtorrent/leaves-empty-announce-list.torrent", "announce-list"),
            ("libtorrent/test_torrents/url_list2.torrent", "url-list"),
        ]:
            m = metainfo.loadFile(os.path.join(TORRENTS, relative))
            self.assertEqual(len(m.warnings), 1, relative)
            self.assertIn(words, m.warnings[0])

    @settings(max_examples=200, deadline=None)
    @given(
        st.text(
            st.characters(
                blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\0"
            ),
            min_size=230,
            max_size=300,
        ),
        st.sampled_from(["", ".txt", ".12345678", ".123456789", ".a.b", "."]),
    )
    def test_longNamesCutAsLibtorrent(self, stem: str, extension: str) -> None:
        """
        A long name is cut exactly as libtorrent cuts it (a name that begins
        like a Windows drive, C{"A:"}, btorrent refuses on purpose, so those
        are not compared).
        """
        assume(componentProblem(stem + extension) is None)
        name = (stem + extension).encode()
        info = {
            b"name": name,
            b"piece length": 16384,
            b"pieces": b"\x01" * 20,
            b"length": 10,
        }
        data = bencode.encode({b"info": info})
        expected = lt.torrent_info(lt.bdecode(data)).name()
        self.assertEqual(metainfo.load(data).name, expected)
