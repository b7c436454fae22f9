"""The journal of a long job (generation, judging): one JSON row a finished item.

Each finished row is appended to a hidden part file and fsync'd; the job writes its final
file atomically at the end and removes the journal. A rerun reads the journal to continue.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from runrecords.atomic import dumps


def append_journal(path: Path, row: Any, lock: threading.Lock) -> None:
    """Append one row and fsync: a kill -9 loses at most the rows still in flight."""
    with lock, path.open("a", encoding="utf-8") as handle:
        handle.write(dumps(row, indent=None) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The rows of a journal; a torn last line (killed mid-write) is dropped and redone."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
