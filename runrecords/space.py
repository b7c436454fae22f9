"""A full disk (or an exhausted quota) as one line naming the file being written.

Why a module: the writers fusebench uses say "disk full" in different ways. Python's own
writes raise ``OSError`` ENOSPC with no file name (``f.write`` knows no path); safetensors
raises its own ``SafetensorError`` whose text says "No space left on device"; torch.save
only says "file write failed". The one place that knows which file was being written (the
atomic writers) asks ``is_disk_full`` and raises ``DiskFull`` naming it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from runrecords.errors import UserError

_CAUSES = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
# The same causes as third-party writers word them (safetensors: Rust's io::Error text;
# SQLite, as lm-eval's request cache: SQLITE_FULL).
_TEXTS = {
    "no space left on device": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
    "database or disk is full": errno.ENOSPC,
}
# Below this many free bytes, a write that failed without saying why is taken as disk full.
_NEARLY_FULL = 1 << 20


class DiskFull(UserError):
    """A write failed for want of space: an environment failure, not a setting to fix."""

    exit_code = 1


def disk_full_errno(err: BaseException, where: Path | None = None) -> int | None:
    """ENOSPC or EDQUOT when ``err`` is a failed write for want of space, else None. With
    ``where`` (a folder written to), a failure that names no cause counts as ENOSPC when that
    filesystem has (almost) no space left: what torch.save's "file write failed" means."""
    if isinstance(err, OSError) and err.errno in _CAUSES:
        return err.errno
    text = str(err).lower()
    for words, code in _TEXTS.items():
        if words in text:
            return code
    if where is not None and _free_bytes(where) < _NEARLY_FULL:
        return errno.ENOSPC
    return None


def _free_bytes(where: Path) -> int:
    """What this process may still write on ``where``'s filesystem (root may use the
    reserved blocks); a huge number when that cannot be told."""
    folder = next((p for p in (where, *where.absolute().parents) if p.exists()), None)
    try:
        stat = os.statvfs(folder or "/")
    except OSError:
        return 1 << 62
    blocks = stat.f_bfree if os.geteuid() == 0 else stat.f_bavail
    return blocks * stat.f_frsize


def disk_full(path: Path | str, code: int = errno.ENOSPC) -> DiskFull:
    """The one line for a failed write of ``path``."""
    return DiskFull(f"{path}: cannot write it: {_CAUSES.get(code, _CAUSES[errno.ENOSPC])}")


@contextlib.contextmanager
def writing(path: Path, guess_from_free_space: bool = False) -> Iterator[None]:
    """Errors of the block that mean the disk is full become ``DiskFull`` naming ``path``
    (a ``DiskFull`` from a file inside it passes unchanged: it names the file). With
    ``guess_from_free_space``, any failure on a (nearly) full filesystem counts: only for a
    block that does nothing but write ``path``."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as err:
        where = path.parent if guess_from_free_space else None
        code = disk_full_errno(err, where)
        if code is None:
            raise
        raise disk_full(path, code) from err
