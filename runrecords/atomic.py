"""Atomic writes: a reader (or a resumed run) never sees half a file or half a directory.

A file is written to a temporary sibling, fsync'd and renamed over its name; a directory is
filled under a scratch name and swapped in when the block that fills it succeeds. A crash
leaves only a hidden ``.tmp`` file or ``.partial-`` folder beside the output, never a torn
output under its own name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from runrecords import lock
from runrecords.errors import OutputExists
from runrecords.space import DiskFull, writing


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays, paths and sets appear in lm-eval's objects."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, TypeError):
            pass
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


# Line separators JSON allows raw inside strings but line-splitting readers cut at
# (``str.splitlines``, JavaScript before ES2019): written escaped, read back unchanged.
# Lone surrogates (``"\\ud800"`` in a model's output), which UTF-8 cannot encode, likewise:
# escaped as the file being read had them, so writing never fails and the text reads back
# unchanged.
_ESCAPED = str.maketrans(
    {
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
        "\u0085": "\\u0085",
        **{chr(c): f"\\u{c:04x}" for c in range(0xD800, 0xE000)},
    }
)


def dumps(obj: Any, indent: int | None = 2) -> str:
    """JSON as fusebench writes it: UTF-8 text unescaped (but U+2028, U+2029 and U+0085, which
    split lines for some readers, and lone surrogates, which UTF-8 cannot hold), numpy values
    as plain numbers."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent, default=_json_default)
    return text.translate(_ESCAPED)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# What ``open()`` gives a new file; mkstemp's 0600 would hide runs and reports from others.
# Read once, at import: os.umask can only be read by setting it, which is not thread-safe.
_FILE_MODE = 0o666 & ~_umask()


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling, fsync it, then rename it over ``path``.
    A full disk is ``DiskFull`` naming ``path``; ``path`` is then left as it was."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        with writing(path, guess_from_free_space=True):  # asked before tmp frees its space
            write(tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, dumps(obj) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[Any]) -> None:
    write_text_atomic(path, "".join(dumps(row, indent=None) + "\n" for row in rows))


def write_status_json(path: Path, obj: Any) -> None:
    """A status record (``failed``, ``interrupted``) that must land even on a full disk, where
    the atomic write has no room for its temporary copy: then the existing file is rewritten
    in place, in the blocks it already holds, when the new text fits in them. A status left
    saying ``running`` after a failure would be a lie; a torn one (a crash mid-rewrite) is
    refused by its reader as unreadable, naming it."""
    try:
        write_json_atomic(path, obj)
    except DiskFull:
        data = (dumps(obj) + "\n").encode("utf-8")
        if not path.is_file() or len(data) > path.stat().st_blocks * 512:
            raise
        with writing(path), open(path, "r+b") as handle:
            handle.write(data)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())


def blocking_file(directory: Path) -> Path | None:
    """The file that stands where ``directory`` (or the nearest folder above it that exists)
    should be, or None: such a path cannot become a directory, and mkdir would say only
    ``NotADirectoryError``."""
    existing = next(p for p in (directory, *directory.absolute().parents) if p.exists())
    return None if existing.is_dir() else existing


def check_output_path(path: Path, what: str = "--output", *, directory: bool = False) -> None:
    """Refuse, in one line naming ``what``, an output that cannot be created because a file
    stands where a folder must be: the output itself (a ``directory`` output) or a folder
    above it. Asked before any work: mkdir would otherwise end the command, after the work,
    with a bare ``FileExistsError`` or ``NotADirectoryError``."""
    blocker = blocking_file(path if directory else path.parent)
    if blocker is not None:
        raise OutputExists(f"{what} {path}: {blocker} is a file, not a directory")


def _share_like_umask(folder: Path) -> None:
    """Files a library made private (safetensors writes ``model.safetensors`` 0600 through a
    temporary file) get the mode ``open()`` would give them: a team's shared run directory
    must not hide the model it trained. Files with any group or other bit are left alone."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o077 == 0:
            os.chmod(path, _FILE_MODE)


@contextlib.contextmanager
def atomic_directory(output: Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a scratch folder that becomes ``output`` only when the block succeeds.

    An interrupted save leaves no half-written model under the output name: the scratch
    folder is removed, and a previous ``output`` stays as it was. With ``overwrite=False`` an
    existing, non-empty ``output`` is refused (``OutputExists``) before anything is written;
    so is an ``output`` that is (or lies under) a file, whatever ``overwrite`` says.
    """
    blocker = blocking_file(output)
    if blocker is not None:
        raise OutputExists(f"{output}: {blocker} is a file, not a directory")
    if not overwrite and output.exists() and lock.entries(output):
        raise OutputExists(f"{output}: exists and is not empty (use --overwrite)")
    output.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    scratch = output.parent / f".{output.name}.partial-{tag}"
    scratch.mkdir()  # (not mkdtemp: its 0700 mode would stick to the final directory)
    try:
        with writing(output):
            yield scratch
        _share_like_umask(scratch)
        lock.carry(output, scratch)  # a held output stays held through the swap
        # The old output is moved aside, not deleted in place: a crash mid-delete would
        # leave a half model under the output name.
        stale = output.parent / f".{output.name}.stale-{tag}"
        if output.exists():
            os.replace(output, stale)
        os.replace(scratch, output)
        shutil.rmtree(stale, ignore_errors=True)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
