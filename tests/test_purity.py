"""
The module boundaries of DEVELOPERS.md, checked: pure modules never import
C{twisted.internet}, only the composition roots import the global reactor,
and only C{btorrent/codec/bencode.py} imports bcoding.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import btorrent

#: Modules that must import nothing of twisted.internet, not even through
#: another package.
PURE = [
    "btorrent.codec.bencode",
    "btorrent.codec.metainfo",
    "btorrent.codec.wire",
    "btorrent.codec.bitfield",
    "btorrent.codec.safepath",
    "btorrent.codec.magnet",
    "btorrent.peer.connection",
    "btorrent.peer.extended",
    "btorrent.peer.utmetadata",
    "btorrent.peer.utpex",
    "btorrent.peer.mse",
    "btorrent.peer.fast",
    "btorrent.engine.picker",
    "btorrent.engine.choker",
    "btorrent.util.rate",
    "btorrent.util.heartbeat",
    "btorrent.util.events",
    "btorrent.engine.smartban",
    "btorrent.engine.requests",
    "btorrent.engine.fastpeer",
    "btorrent.engine.storage",
    "btorrent.engine.filelayout",
    "btorrent.engine.filepool",
    "btorrent.engine.filetree",
    "btorrent.engine.partsredirect",
    "btorrent.engine.resume",
    "btorrent.engine.partsfile",
    "btorrent.engine.bandwidth",
    "btorrent.engine.fileselect",
    "btorrent.engine.seedlimits",
    "btorrent.engine.seedwatch",
    "btorrent.engine.torrentfiles",
    "btorrent.trackerserver.swarm",
    "btorrent.tracker.announce",
    "btorrent.control.api",
    "btorrent.control.access",
    "btorrent.control.rpcargs",
    "btorrent.control.rpcfields",
    "btorrent.daemon.queueorder",
    "btorrent.daemon.sessiontotals",
    "btorrent.dht.krpc",
    "btorrent.dht.routing",
    "btorrent.dht.node",
    "btorrent.dht.tokens",
    "btorrent.dht.transactions",
]

#: The only modules allowed to import the global reactor.
REACTOR_IMPORTERS = {"daemon/tap.py", "cli/main.py", "trackerserver/tap.py"}

_PROBE = (
    "import importlib, sys\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(' '.join(sorted(m for m in sys.modules"
    " if m == 'twisted.internet' or m.startswith('twisted.internet.'))))\n"
)


def _importsReactor(tree: ast.AST) -> bool:
    """
    Whether a module's syntax tree imports C{twisted.internet.reactor},
    anywhere (functions included).
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "twisted.internet":
            if any(alias.name == "reactor" for alias in node.names):
                return True
        if isinstance(node, ast.Import):
            if any(alias.name == "twisted.internet.reactor" for alias in node.names):
                return True
    return False


#: The only module allowed to import bcoding.
BCODING_IMPORTERS = {"codec/bencode.py"}


def _importsModule(tree: ast.AST, module: str) -> bool:
    """
    Whether a module's syntax tree imports C{module} or anything in it,
    anywhere (functions included), in any spelling: C{import module},
    C{import module.sub as x}, C{from module import x}, C{from module.sub
    import x}, or C{__import__("module")} / C{importlib.import_module(...)}
    with the name as a literal.
    """
    prefix = module + "."
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = getattr(func, "attr", None) or getattr(func, "id", None)
            first = node.args[0]
            if (
                called in ("__import__", "import_module")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                names = [first.value]
        if any(name == module or name.startswith(prefix) for name in names):
            return True
    return False


def _importers(imports) -> set:
    """
    The files under C{btorrent/} (relative paths) whose syntax tree
    C{imports(tree)} says yes to.
    """
    root = os.path.dirname(btorrent.__file__)
    importers = set()
    for directory, _, names in os.walk(root):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), path)
            if imports(tree):
                importers.add(os.path.relpath(path, root))
    return importers


def _sourceImporters(module: str) -> set:
    """
    The files under C{btorrent/} (relative paths) whose source imports
    C{module}.
    """
    return _importers(lambda tree: _importsModule(tree, module))


class PurityTests(SynchronousTestCase):
    """
    Import boundaries.
    """

    def test_pureModules(self) -> None:
        """
        Each pure module, imported alone in a fresh interpreter, leaves no
        C{twisted.internet} module in C{sys.modules}.
        """
        processes = {
            name: subprocess.Popen(
                [sys.executable, "-c", _PROBE, name],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in PURE
        }
        found = {}
        for name, process in processes.items():
            out, err = process.communicate(timeout=60)
            self.assertEqual(process.returncode, 0, f"{name}: {err}")
            if out.strip():
                found[name] = out.split()
        self.assertEqual(found, {})

    def test_probeSeesImports(self) -> None:
        """
        The probe does see C{twisted.internet} when a module imports it (so
        that L{test_pureModules} can fail).
        """
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, "btorrent.peer.protocol"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        self.assertIn("twisted.internet.protocol", out.split())

    def test_globalReactor(self) -> None:
        """
        Only L{REACTOR_IMPORTERS} import the global reactor; every other
        module takes a reactor or clock as an argument.
        """
        importers = _importers(_importsReactor)
        self.assertLessEqual(importers, REACTOR_IMPORTERS)
        self.assertIn("daemon/tap.py", importers)

    def test_reactorDetection(self) -> None:
        """
        Both spellings of the import are seen, inside functions too.
        """
        for source in [
            "from twisted.internet import reactor",
            "def f():\n    from twisted.internet import defer, reactor",
            "import twisted.internet.reactor",
        ]:
            self.assertTrue(_importsReactor(ast.parse(source)), source)
        for source in [
            "from twisted.internet import defer",
            "def f(reactor):\n    reactor.run()",
        ]:
            self.assertFalse(_importsReactor(ast.parse(source)), source)

    def test_bcodingOnlyInBencode(self) -> None:
        """
        No module under C{btorrent/} but C{btorrent/codec/bencode.py} imports
        bcoding: everything else goes through L{btorrent.codec.bencode}, which
        makes bcoding strict.
        """
        self.assertEqual(_sourceImporters("bcoding"), BCODING_IMPORTERS)

    def test_bcodingDetection(self) -> None:
        """
        Every spelling of an import of bcoding is seen, inside functions
        too; mentions in comments, strings and other names are not.
        """
        for source in [
            "import bcoding",
            "import os, bcoding as b",
            "from bcoding import bdecode",
            "from bcoding.x import y",
            "import bcoding.x",
            "def f():\n    from bcoding import bencode as e",
            "__import__('bcoding')",
            "importlib.import_module('bcoding')",
        ]:
            self.assertTrue(_importsModule(ast.parse(source), "bcoding"), source)
        for source in [
            "# import bcoding",
            '"""import bcoding"""',
            "x = 'bcoding'",
            "import bcodingextra",
            "from btorrent import bencode",
            "from . import bcoding",
            "bcoding = 1",
        ]:
            self.assertFalse(_importsModule(ast.parse(source), "bcoding"), source)
