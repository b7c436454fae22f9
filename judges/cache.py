"""A persistent cache of judge replies, so that a rerun or a crash never pays for a call twice.

The key is a sha256 over the judge model, the full messages and every sampling setting (plus
the repeat and re-ask index, so that asking again after an unparsable reply, or repeating a
judgment, is a different entry). Only replies the endpoint actually returned are stored;
errors are not. SQLite (standard library) rather than a key-value package: one file, atomic
commits, safe with several threads through one lock and with several processes through its
own file locking.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, reply TEXT NOT NULL,
    prompt_tokens INTEGER, completion_tokens INTEGER, created TEXT NOT NULL)"""


def default_path() -> Path:
    """``$XDG_CACHE_HOME/fusebench/judge-cache.sqlite`` (``~/.cache`` when unset): the XDG
    rule in three lines rather than a platformdirs dependency for one path."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fusebench" / "judge-cache.sqlite"


def cache_key(model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str:
    payload = json.dumps(
        {"model": model, "messages": messages, "sampling": sampling},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Cached:
    reply: str
    prompt_tokens: int | None
    completion_tokens: int | None


class ReplyCache:
    """Get and put judge replies by key; ``None`` path disables caching."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()

    def get(self, key: str) -> Cached | None:
        if self._db is None:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT reply, prompt_tokens, completion_tokens FROM replies WHERE key = ?", (key,)
            ).fetchone()
        return Cached(*row) if row else None

    def put(self, key: str, model: str, value: Cached, created: str) -> None:
        if self._db is None:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?)",
                (key, model, value.reply, value.prompt_tokens, value.completion_tokens, created),
            )
            self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
                self._db = None
