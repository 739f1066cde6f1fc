"""
Tests for L{btorrent.codec.safepath}: the one set of path rules.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.codec.safepath import (
    MAX_COMPONENT_BYTES,
    MAX_PATH_BYTES,
    MAX_PATH_DEPTH,
    UnsafePathError,
    checkComponent,
    componentProblem,
    cutComponent,
    isWithin,
    normalizePath,
    safeJoin,
    shownPath,
)


class ComponentTests(SynchronousTestCase):
    """
    L{componentProblem} and L{checkComponent}.
    """

    def test_plain(self) -> None:
        """
        Plain names, dots inside them included, have no problem.
        """
        for name in ["a", "...", ".hidden", "a.b", "a b", "\u00e9", "ab:c", "1:"]:
            self.assertIsNone(componentProblem(name), name)
            checkComponent(name, "here")

    def test_unsafe(self) -> None:
        """
        Each unsafe kind of name has its own reason.
        """
        for name, reason in [
            ("", "'' names no file"),
            (".", "'.' names no file"),
            ("..", "'..' leads out of its directory"),
            ("/etc", "'/etc' contains '/'"),
            ("a/b", "'a/b' contains '/'"),
            ("a\\b", "'a\\\\b' contains '\\'"),
            ("a\x00", "'a\\x00' contains NUL"),
            ("C:", "'C:' is a drive"),
            ("c:x", "'c:x' is a drive"),
            (b"a", "b'a' is not a string"),
            (None, "None is not a string"),
        ]:
            self.assertEqual(componentProblem(name), reason)
            e = self.assertRaises(UnsafePathError, checkComponent, name, "field")
            self.assertEqual(str(e), f"field: unsafe path component: {reason}")

    def test_longNameShown(self) -> None:
        """
        A huge component is cut in the message.
        """
        problem = componentProblem("a/" + "b" * 100000)
        self.assertLess(len(problem), 300)


class CutTests(SynchronousTestCase):
    """
    L{cutComponent}: libtorrent's cut (checked against libtorrent itself
    in C{tests/test_interop_conformance.py}).
    """

    def test_short(self) -> None:
        """
        Names of up to L{MAX_COMPONENT_BYTES} bytes are left alone.
        """
        for name in ["a", "x" * MAX_COMPONENT_BYTES, "\u00e9" * 120]:
            self.assertIs(cutComponent(name), name)

    def test_extension(self) -> None:
        """
        A long name keeps its first 240 bytes and an extension found in
        its last 9 bytes.
        """
        base = "x" * 300
        self.assertEqual(cutComponent(base), "x" * 240)
        self.assertEqual(cutComponent(base + ".txt"), "x" * 240 + ".txt")
        self.assertEqual(cutComponent(base + ".12345678"), "x" * 240 + ".12345678")
        self.assertEqual(cutComponent(base + ".123456789"), "x" * 240)
        # The last dot of the last 9 bytes.
        self.assertEqual(cutComponent(base + ".a.b"), "x" * 240 + ".b")

    def test_characters(self) -> None:
        """
        A character is never split: the cut goes to the end of the one
        that crosses 240 bytes.
        """
        name = "\u00e9" * 200  # 2 bytes each
        self.assertEqual(cutComponent(name), "\u00e9" * 120)
        name = "a" + "\u65e5" * 100  # 1 + 3 bytes each
        self.assertEqual(len(cutComponent(name).encode()), 241)
        # Bytes that are not UTF-8 count as one each and are kept as such.
        raw = b"\xff" * 300 + b".bin"
        cut = cutComponent(raw.decode("utf-8", "surrogateescape"))
        self.assertEqual(
            cut.encode("utf-8", "surrogateescape"), b"\xff" * 240 + b".bin"
        )


class NormalizeTests(SynchronousTestCase):
    """
    L{normalizePath}.
    """

    def test_dropsEmpty(self) -> None:
        """
        Empty and C{.} components are dropped; nothing else is left, the
        path is refused.
        """
        self.assertEqual(normalizePath(["", "a", ".", "b", ""], "p"), ("a", "b"))
        for path in [[], [""], [".", ""]]:
            e = self.assertRaises(UnsafePathError, normalizePath, path, "p")
            self.assertEqual(
                str(e),
                "p: every path component is empty or '.': the path names no file",
            )

    def test_unsafe(self) -> None:
        """
        An unsafe component is refused, naming the path and the component.
        """
        e = self.assertRaises(UnsafePathError, normalizePath, ["a", "..", "b"], "p")
        self.assertEqual(
            str(e), "p 'a/../b': unsafe path component: '..' leads out of its directory"
        )

    def test_bounds(self) -> None:
        """
        Depth and length are bounded; the name counts in the length.
        """
        normalizePath(["d"] * MAX_PATH_DEPTH, "p")
        e = self.assertRaises(
            UnsafePathError, normalizePath, ["d"] * (MAX_PATH_DEPTH + 1), "p"
        )
        self.assertIn(
            f"{MAX_PATH_DEPTH + 1} components, more than {MAX_PATH_DEPTH}", str(e)
        )
        path = ["x" * 200] * 20 + ["y" * (MAX_PATH_BYTES - 20 * 201)]
        normalizePath(path, "p")
        e = self.assertRaises(UnsafePathError, normalizePath, path, "p", prefix=("n",))
        self.assertIn(f"{MAX_PATH_BYTES + 2} bytes with the name", str(e))

    def test_cuts(self) -> None:
        """
        Long components are cut.
        """
        self.assertEqual(normalizePath(["a" * 300, "b"], "p"), ("a" * 240, "b"))

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.sampled_from(["", ".", "..", "/", "\\", "C:", "a", "\x00"]),
                st.text(max_size=300),
            ),
            max_size=8,
        )
    )
    def test_staysInside(self, components) -> None:
        """
        Whatever the components, a normalised path is plain names only and,
        joined under a directory, stays beneath it.
        """
        try:
            path = normalizePath(components, "p", prefix=("name",))
        except UnsafePathError:
            return
        self.assertTrue(path)
        for c in path:
            self.assertIsNone(componentProblem(c))
            # The limit, the rest of a character cut whole (3 bytes) and an
            # extension kept (9): below the 255 bytes a file system takes.
            self.assertLessEqual(
                len(c.encode("utf-8", "surrogateescape")), MAX_COMPONENT_BYTES + 12
            )
        root = "/download/name"
        joined = os.path.normpath(os.path.join(root, *path))
        self.assertTrue(joined.startswith(root + "/"), joined)


class WithinTests(SynchronousTestCase):
    """
    L{isWithin}.
    """

    def test_within(self) -> None:
        """
        A path is within itself and its ancestors, never a sibling with a
        common prefix.
        """
        self.assertTrue(isWithin("/a/b", "/a/b"))
        self.assertTrue(isWithin("/a/b/c", "/a/b"))
        self.assertFalse(isWithin("/a/bc", "/a/b"))
        self.assertFalse(isWithin("/a", "/a/b"))
        self.assertFalse(isWithin("relative", "/a"))

    def test_shownPath(self) -> None:
        """
        L{shownPath} cuts long paths in the middle.
        """
        self.assertEqual(shownPath(["a", "b"]), "a/b")
        self.assertLessEqual(len(shownPath(["x"] * 10000)), 203)


class SafeJoinTests(SynchronousTestCase):
    """
    L{safeJoin}.
    """

    def test_inside(self) -> None:
        """
        Plain components are joined under the directory.
        """
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        self.assertEqual(safeJoin(root, ["a", "b"]), os.path.join(root, "a", "b"))

    def test_unsafeComponents(self) -> None:
        """
        Unsafe components are refused, naming the path.
        """
        root = self.mktemp()
        os.makedirs(root)
        for parts in [[".."], ["a", ".."], ["/etc"], ["a\\b"], [""], ["C:"], []]:
            self.assertRaises(UnsafePathError, safeJoin, root, parts)
        e = self.assertRaises(UnsafePathError, safeJoin, root, ["x", "..", "y"])
        self.assertIn("x/../y", str(e))

    def test_symlinkEscape(self) -> None:
        """
        A path leading out of the directory through a symlink is refused.
        """
        root = self.mktemp()
        outside = self.mktemp()
        os.makedirs(root)
        os.makedirs(outside)
        os.symlink(os.path.abspath(outside), os.path.join(root, "link"))
        e = self.assertRaises(UnsafePathError, safeJoin, root, ["link", "f"])
        self.assertIn("outside", str(e))


class CleanComponentTests(SynchronousTestCase):
    """
    L{safepath.cleanComponent}: names that cannot pass for others.
    """

    def test_invisibleDropped(self) -> None:
        """
        Direction overrides and zero-width characters are dropped, as
        libtorrent drops them ("gnp.exe" must not show as "exe.png").
        """
        from btorrent.codec.safepath import cleanComponent

        self.assertEqual(cleanComponent("a\u202egnp.exe"), "agnp.exe")
        self.assertEqual(cleanComponent("x\u200by\ufeffz\u2060"), "xyz")
        self.assertEqual(cleanComponent("\u200b\u200c"), "_")

    def test_controlsShownAsUnderscore(self) -> None:
        from btorrent.codec.safepath import cleanComponent

        self.assertEqual(cleanComponent("a\x01b\x7fc\x85"), "a_b_c_")
        self.assertEqual(cleanComponent("plain name.txt"), "plain name.txt")
