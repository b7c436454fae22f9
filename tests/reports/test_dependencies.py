"""DESIGN.md: dependencies point one way; reports imports nothing of harness or fusion."""

from __future__ import annotations

import ast
from pathlib import Path

import reports


def test_reports_imports_neither_harness_nor_fusion() -> None:
    offenders = []
    for path in Path(reports.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in ("harness", "fusion")]  # fmt: skip
    assert offenders == []


def _imports(package: str) -> list[tuple[str, str]]:
    import importlib

    root = Path(importlib.import_module(package).__file__).parent
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((path.name, node.module))
    return found


def test_judges_and_tasks_import_in_one_direction() -> None:
    """judges may use reports and tasks, never harness or fusion; tasks uses none of them."""
    judges = [
        f"{f}: {m}" for f, m in _imports("judges") if m.split(".")[0] in ("harness", "fusion")
    ]
    tasks = [f"{f}: {m}" for f, m in _imports("tasks")
             if m.split(".")[0] in ("harness", "fusion", "judges", "reports")]  # fmt: skip
    assert judges == [] and tasks == []
