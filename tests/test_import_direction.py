"""DESIGN.md: dependencies point one way, and every package is checked.

    runrecords  <-  tasks  <-  reports, judges, fusion  <-  harness

``runrecords`` is the bottom: the standard library only. ``tasks`` uses nothing of the others
but ``runrecords``. ``reports`` and ``judges`` may use ``tasks`` (LogicKor's row checks, the
task catalog) and never each other. ``fusion`` may read tasks' data-directory setting and
catch its data errors (``tasks.datadir``, ``tasks.errors``), and the demo zoo reads training
splits the way the tasks do (``tasks.loaders``, ``tasks.lmeval.utils``); nothing else of tasks
(the catalogue and lm-eval stay out of fusion's processes).
``harness`` may import every package. Imports inside functions count as much as any.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

PACKAGES = ("runrecords", "tasks", "reports", "judges", "fusion", "harness")
# package -> what it may import of the others (a package, or one module of it).
ALLOWED: dict[str, tuple[str, ...]] = {
    "runrecords": (),
    "tasks": ("runrecords",),
    "reports": ("runrecords", "tasks"),
    "judges": ("runrecords", "tasks"),
    "fusion": (
        "runrecords",
        "tasks.datadir",
        "tasks.errors",
        "tasks.loaders",
        "tasks.lmeval.utils",
    ),
    "harness": ("runrecords", "tasks", "reports", "judges", "fusion"),
}


def _imports(package: str) -> list[tuple[str, str]]:
    """(file, dotted name) for every absolute import anywhere in the package's files:
    ``import a.b`` gives ``a.b``; ``from a.b import c`` gives ``a.b.c`` (c a module or a name)."""
    root = Path(importlib.import_module(package).__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(where, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found += [(where, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _allowed(name: str, allowed: tuple[str, ...]) -> bool:
    return any(name == entry or name.startswith(entry + ".") for entry in allowed)


def test_every_package_has_a_rule() -> None:
    assert set(ALLOWED) == set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    offenders = [
        f"{where}: {name}"
        for where, name in _imports(package)
        if name.split(".")[0] in PACKAGES
        and name.split(".")[0] != package
        and not _allowed(name, ALLOWED[package])
    ]
    assert offenders == []


def test_the_bottom_needs_only_the_standard_library() -> None:
    outside = [
        f"{where}: {name}"
        for where, name in _imports("runrecords")
        if name.split(".")[0] not in {*sys.stdlib_module_names, "__future__", "runrecords"}
    ]
    assert outside == []
