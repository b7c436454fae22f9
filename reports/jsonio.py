"""Reading JSON and JSON Lines inputs so that every failure is one line naming the file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reports.errors import BadFile


def read_text(path: Path) -> str:
    """UTF-8 with or without a BOM (LogicKor's published files carry one)."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadFile(path, f"not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise BadFile(path, f"unreadable ({err.strerror or err})") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise BadFile(path, f"not JSON (line {err.lineno}: {err.msg})") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, object) for each non-blank line.

    Split on newlines only: ``str.splitlines`` would also cut at U+2028 and friends, which
    ``json.dumps(ensure_ascii=False)`` writes raw inside strings (model outputs contain them).
    """
    for number, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise BadFile(path, f"line {number}: not JSON ({err.msg})") from None
