"""A persistent cache of judge replies, so that a rerun or a crash never pays for a call twice.

The key is a sha256 over the endpoint (``endpoint_of``: scheme, host, port and path of the
base URL, never its user, password or query, so never a key), the judge model, the full
messages and every sampling setting (plus the repeat and re-ask index, so that asking again
after an unparsable reply, or repeating a judgment, is a different entry). The same model name
at two providers (a local vLLM and a hosted API) is two judges: neither reuses the other's
verdicts. Entries written before the endpoint was part of the key match no request any more
(they are kept in the file, unused).

Texts are any Python ``str``, lone surrogates included (``"\\ud800"`` from a model's JSON
output): the key hashes them with ``surrogatepass``, and a reply that holds one is stored as
a BLOB of those bytes, so a reply that was paid for is always kept. Only replies the endpoint
actually returned are stored; errors are not. SQLite (standard library) rather than a
key-value package: one file, atomic commits, safe with several threads through one lock and
with several processes through its own file locking.
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
from urllib.parse import urlsplit

_SCHEMA = """CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, reply TEXT NOT NULL,
    prompt_tokens INTEGER, completion_tokens INTEGER, created TEXT NOT NULL)"""


def default_path() -> Path:
    """``$XDG_CACHE_HOME/fusebench/judge-cache.sqlite`` (``~/.cache`` when unset): the XDG
    rule in three lines rather than a platformdirs dependency for one path."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fusebench" / "judge-cache.sqlite"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_of(base_url: str) -> str:
    """``scheme://host:port/path`` of a base URL, as the cache tells judges apart: the port
    written out (``https://h/v1`` and ``https://h:443/v1`` are one endpoint), scheme and host
    lower-cased, a trailing ``/`` dropped; user, password, query and fragment left out, so no
    credential reaches the key or a file."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number: keep the text, the client will refuse it
        port = parts.netloc.rpartition(":")[2]
    return f"{scheme}://{host}{f':{port}' if port else ''}{parts.path.rstrip('/')}"


def _utf8(text: str) -> bytes:
    """UTF-8 that also carries lone surrogates (``surrogatepass``): the same bytes as plain
    UTF-8 for every valid text, so keys of ordinary prompts do not depend on this."""
    return text.encode("utf-8", "surrogatepass")


def cache_key(
    model: str, messages: list[dict[str, str]], sampling: dict[str, Any], *, endpoint: str
) -> str:
    """The sha256 of everything a reply depends on; ``endpoint`` from ``endpoint_of``."""
    payload = json.dumps(
        {"endpoint": endpoint, "model": model, "messages": messages, "sampling": sampling},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(_utf8(payload)).hexdigest()


def _storable(text: str) -> str | bytes:
    """``text`` as SQLite can hold it: itself, or (lone surrogates in it, which SQLite's UTF-8
    refuses) its ``surrogatepass`` bytes as a BLOB that ``_text`` turns back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _utf8(text)
    return text


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


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
        return Cached(_text(row[0]), row[1], row[2]) if row else None

    def put(self, key: str, model: str, value: Cached, created: str) -> None:
        if self._db is None:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    _storable(model),
                    _storable(value.reply),
                    value.prompt_tokens,
                    value.completion_tokens,
                    created,
                ),
            )
            self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
                self._db = None
