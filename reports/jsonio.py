"""Reading JSON and JSON Lines inputs so that every failure is one line naming the file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reports.errors import BadFile
from runrecords.jsonl import json_lines


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
    """(line number, object) for each non-blank line."""
    return json_lines(
        read_text(path).split("\n"), lambda line, why: BadFile(path, f"line {line}: {why}")
    )
