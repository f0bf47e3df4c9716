"""House rules that hold for the whole source tree: short functions, examples that run."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

import napari_unetseg

SRC = Path(napari_unetseg.__file__).parent
MAX_FUNCTION_LINES = 80


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of every function or method longer than the limit, docstring included."""
    return [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]


def test_no_function_is_longer_than_80_lines():
    found = [f"{p.relative_to(SRC)}: {name} ({n} lines)" for p in sorted(SRC.rglob("*.py"))
             for name, n in long_functions(p.read_text())]
    assert found == []


def test_the_length_rule_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}\n") == [("f", MAX_FUNCTION_LINES + 1)]


def modules_with_examples() -> list[str]:
    return sorted(
        ".".join(("napari_unetseg", *p.relative_to(SRC).with_suffix("").parts))
        for p in SRC.joinpath("core").rglob("*.py") if ">>> " in p.read_text())


def test_the_small_pure_functions_have_examples():
    have = set(modules_with_examples())
    for name in ("instances.editing", "instances.stacks", "base.tiling", "instances.metrics",
                 "base.thresholds", "run.segmentation"):
        assert f"napari_unetseg.core.{name}" in have, name


@pytest.mark.parametrize("module", modules_with_examples())
def test_the_examples_in_the_docstrings_hold(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
