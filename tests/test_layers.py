"""
The architecture, checked: the sub-packages form layers and nothing imports
a layer above its own; no module imports another that imports it back
(directly or through others).

Layers, bottom up (a module may import its own layer and those below):
  0. contracts and helpers: C{btorrent} itself, C{interfaces},
     C{control.api} (the session API every layer may name), C{util},
     C{codec}, C{twistdfiles};
  1. C{peer}, C{tracker}, C{dht}: protocols;
  2. C{engine}: a torrent and the policies that run it;
  3. C{control}: what speaks the session API to the outside;
  4. C{daemon}, C{trackerserver}: composition roots;
  5. C{cli}: the command line.
"""

from __future__ import annotations

import ast
import os
from typing import Dict, Set

from twisted.trial.unittest import SynchronousTestCase

import btorrent

ROOT = os.path.dirname(btorrent.__file__)

#: Layer of each module or package prefix (the longest prefix wins).
LAYERS = {
    "btorrent": 0,
    "btorrent.interfaces": 0,
    "btorrent.control.api": 0,
    "btorrent.util": 0,
    "btorrent.codec": 0,
    "btorrent.twistdfiles": 0,
    "btorrent.peer": 1,
    "btorrent.tracker": 1,
    "btorrent.dht": 1,
    "btorrent.engine": 2,
    "btorrent.control": 3,
    "btorrent.daemon": 4,
    "btorrent.trackerserver": 4,
    "btorrent.cli": 5,
}


def layerOf(module: str) -> int:
    """
    The layer of C{module} (by its longest known prefix).
    """
    best = None
    for prefix in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best):
                best = prefix
    if best is None:
        raise KeyError(module)
    return LAYERS[best]


def modules() -> Dict[str, str]:
    """
    Every module under C{btorrent/}: C{dotted name -> path}.
    """
    found = {}
    for directory, _, names in os.walk(ROOT):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, os.path.dirname(ROOT))[:-3]
            dotted = relative.replace(os.sep, ".")
            if dotted.endswith(".__init__"):
                dotted = dotted[: -len(".__init__")]
            found[dotted] = path
    return found


def importsOf(path: str, known: Set[str]) -> Set[str]:
    """
    The btorrent modules a module imports, anywhere in it (functions
    included), resolved to modules that exist.
    """
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    result = set()
    for name in names:
        if not name.startswith("btorrent"):
            continue
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != "btorrent":
            result.add(name)
    return result


class LayerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.modules = modules()
        known = set(self.modules)
        self.graph = {
            name: importsOf(path, known) - {name} for name, path in self.modules.items()
        }

    def test_everyModuleHasALayer(self) -> None:
        for name in self.modules:
            layerOf(name)

    def test_nothingImportsUpward(self) -> None:
        """
        No module imports a module of a higher layer.
        """
        upward = sorted(
            f"{name} (layer {layerOf(name)}) imports {other} (layer {layerOf(other)})"
            for name, imported in self.graph.items()
            for other in imported
            if layerOf(other) > layerOf(name)
        )
        self.assertEqual(upward, [])

    def test_noCycles(self) -> None:
        """
        No module imports itself back through others (Tarjan's strongly
        connected components, of more than one module).
        """
        index: Dict[str, int] = {}
        low: Dict[str, int] = {}
        stack: list = []
        onStack: Set[str] = set()
        cycles = []

        def visit(node: str) -> None:
            index[node] = low[node] = len(index)
            stack.append(node)
            onStack.add(node)
            for other in self.graph.get(node, ()):
                if other not in index:
                    visit(other)
                    low[node] = min(low[node], low[other])
                elif other in onStack:
                    low[node] = min(low[node], index[other])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    onStack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

        for node in sorted(self.graph):
            if node not in index:
                visit(node)
        self.assertEqual(cycles, [])

    def test_detection(self) -> None:
        """
        The checks see what they look for.
        """
        self.assertEqual(layerOf("btorrent.engine.torrent"), 2)
        self.assertEqual(layerOf("btorrent.control.api"), 0)
        self.assertEqual(layerOf("btorrent.control.rpc"), 3)
        known = {"btorrent.codec.wire", "btorrent.engine.picker"}
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(
                "from btorrent.codec import wire\n"
                "def f():\n    from btorrent.engine.picker import PiecePicker\n"
            )
        self.assertEqual(importsOf(path, known), known)
