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


def read_formatted(path: Path, fmt: str, what: str) -> dict[str, Any] | None:
    """A JSON object whose ``format`` is ``fmt`` (a file fusebench wrote), or None when the
    file is not there; invalid JSON or another format is one line naming the file."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise BadFile(path, f"not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise BadFile(path, f"not {what} (format is not {fmt!r})")
    return data
