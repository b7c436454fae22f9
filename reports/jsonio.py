"""Reading JSON and JSON Lines inputs so that every failure is one line naming the file."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
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


# ---------------------------------------------------------------- strict JSON out

REASONS_KEY = "null_reasons"

# Path of a value inside its record (``scores.nsmc``, ``ci95[0]``) and the value -> why it is
# not a number; None: the generic reason.
Reason = Callable[[str, float], "str | None"]


def _token(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _generic(path: str, value: float) -> str:
    return f"{_token(value)}: not a finite number"


def finite(value: Any, reason: Reason | None = None) -> Any:
    """``value`` with every NaN or infinite float written as None, for strict JSON readers
    (JavaScript's ``JSON.parse``, Python with ``parse_constant``), which reject bare ``NaN``.

    Why a null is there is written beside it: the record holding it (the nearest object that
    is an item of a list, or the whole document) gets ``null_reasons``, its path inside that
    record -> the reason (``{"scores.nsmc": "NaN: ..."}``). ``reason`` words it for the
    caller's fields; the generic reason names the value. Values already None stay as they are.
    """
    return _record(value, reason or _generic)


def _record(value: Any, reason: Reason) -> Any:
    reasons: dict[str, str] = {}
    out = _walk(value, "", reason, reasons)
    if reasons and isinstance(out, dict):
        out[REASONS_KEY] = {**out.get(REASONS_KEY, {}), **reasons}
    return out


def _walk(value: Any, path: str, reason: Reason, reasons: dict[str, str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        reasons[path] = reason(path, value) or _generic(path, value)
        return None
    if isinstance(value, dict):
        return {
            k: v
            if k == REASONS_KEY
            else _walk(v, f"{path}.{k}" if path else str(k), reason, reasons)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [
            _record(v, reason) if isinstance(v, dict) else _walk(v, f"{path}[{i}]", reason, reasons)
            for i, v in enumerate(value)
        ]
    return value


def dumps_strict(data: Any, indent: int | None = 2, reason: Reason | None = None) -> str:
    """JSON text any strict reader accepts (see ``finite``), ending in a newline."""
    return (
        json.dumps(finite(data, reason), ensure_ascii=False, indent=indent, allow_nan=False) + "\n"
    )
