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
