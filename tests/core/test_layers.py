"""The architecture as a test: core's subpackages form layers, and no module imports a
higher layer or takes part in an import cycle (function-local imports included: they hid
two cycles once)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import napari_unetseg.core as core

CORE = Path(core.__file__).parent
#: Lowest first. A module may import its own layer and the layers below it.
LAYERS = ["base", "io", "instances", "network", "inference", "run", "training"]


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_imports(path: Path, source: str | None = None) -> set[str]:
    """Every napari_unetseg.core module ``path`` imports, at any depth of the file."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith("napari_unetseg.core.")
                     and _is_module(n))
    found.discard(here)
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[2:])
    return (CORE / rel).with_suffix(".py").exists() or (CORE / rel / "__init__.py").exists()


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[2]) if len(parts) > 3 else None


MODULES = {module_name(p): p for p in CORE.rglob("*.py")}
GRAPH = {m: core_imports(p) for m, p in MODULES.items()}


def test_every_subpackage_has_a_layer():
    packages = {p.parent.name for p in CORE.glob("*/__init__.py")}
    assert packages == set(LAYERS)
    loose = [p.name for p in CORE.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside a layer: {loose}"


def test_no_module_imports_a_higher_layer():
    wrong = [f"{m} imports {d}" for m, deps in GRAPH.items() for d in deps
             if layer_of(m) is not None and layer_of(d) is not None
             and layer_of(d) > layer_of(m)]
    assert wrong == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if d.endswith(".__init__") or d not in graph or d in _PACKAGES:
                continue
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (cycle := visit(d)):
                return cycle
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


_PACKAGES = {module_name(p) for p in CORE.rglob("__init__.py")}


def test_no_import_cycles():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"a"}}, True),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, False),
])
def test_the_cycle_check_finds_cycles(graph, cycle):
    assert (find_cycle(graph) is not None) == cycle


def test_the_graph_sees_function_local_and_relative_imports():
    probe = CORE / "base" / "probe.py"  # never written: only its source is parsed
    source = "def f():\n    from ..run import batch\n    from .labels import label_dtype\n"
    assert core_imports(probe, source) >= {"napari_unetseg.core.run.batch",
                                           "napari_unetseg.core.base.labels"}
    assert "napari_unetseg.core.run.blockwise" in GRAPH["napari_unetseg.core.run.batch"]


def test_core_stays_free_of_qt_and_napari():
    gui = ("napari", "qtpy", "PyQt", "PySide", "magicgui", "superqt")
    wrong = []
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            wrong += [f"{m}: {n}" for n in names if n.split(".")[0] in gui]
    assert wrong == []
