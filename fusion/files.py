"""Atomic file writing for the fusion package (it may not import reports' helpers)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling, fsync it, then rename it over ``path``.

    Readers (and a resumed run) never see half a file: a crash leaves only a ``.tmp`` file,
    which the next run overwrites.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    text = json.dumps(obj, ensure_ascii=False, indent=2) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_directory(output: Path) -> Iterator[Path]:
    """Yield a scratch folder that replaces ``output`` only when the block succeeds: an
    interrupted save leaves no half-written model under the output name."""
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        yield scratch
        if output.exists():
            shutil.rmtree(output)
        os.replace(scratch, output)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
