"""One writer per output directory: an exclusive lock held for a whole command.

Why: two commands writing one run or work directory interleave their records (a second
``eval --overwrite`` under a running one loses finished results for good). The lock is a
file, ``.fusebench.lock``, inside the directory, held with ``flock``: the kernel releases it
when the holder exits in any way (SIGKILL included), so the file a dead process left behind
is simply taken over. The file's text names the holder (pid, host, command, start time) for
the one-line refusal a second writer gets (exit 2).

Outputs nest (``eval --output WORK/eval/x`` under ``fuse run`` on WORK): a directory inside,
or holding, one another live process holds is refused too. That check only looks (a shared
``flock`` let go at once; nothing created, written or removed), so a dead holder's file is
ignored as before.

The lock belongs to the command, not to its workers: torchrun ranks and evaluation workers
run inside the locked command and never take it. Within one process, holding a directory
again is a no-op (a command that calls another stage on the same directory).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from runrecords.errors import UserError

LOCK_NAME = ".fusebench.lock"

_held: dict[Path, int] = {}  # directory (resolved) -> how many holds in this process


class Busy(UserError):
    """The output directory is being written by another command (exit 2)."""


def lock_path(directory: Path) -> Path:
    return directory / LOCK_NAME


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is a lock file (to leave out of "is this directory empty" checks)."""
    return path.name == LOCK_NAME


def entries(directory: Path) -> list[Path]:
    """What ``directory`` holds, the lock file left out."""
    return [p for p in directory.iterdir() if not is_lock_file(p)]


def clear(directory: Path) -> None:
    """Delete everything in ``directory`` but its lock file: an ``--overwrite`` that replaces
    a locked output must not delete the lock (a second writer could then take a new one)."""
    import shutil

    for path in entries(directory):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _created_dirs(directory: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``directory``, deepest first."""
    missing = []
    path = directory
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _make_directory(directory: Path) -> list[Path]:
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory}: exists and is not a directory")
    created = _created_dirs(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{directory}: a part of this path is a file, not a directory") from None
    except PermissionError:
        raise UserError(f"{directory}: cannot create this directory (permission denied)") from None
    return created


def _holder_text(fd: int) -> str:
    """The holder's record; retried briefly while it is empty or half written (the holder
    has just taken the lock), then whatever is there."""
    text = ""
    for _ in range(20):
        text = os.pread(fd, 65536, 0).decode("utf-8", errors="replace")
        try:
            json.loads(text)
            return text
        except ValueError:
            time.sleep(0.05)
    return text


def describe(text: str) -> str:
    """``fusebench eval (pid 1234 on host h, since 2026-...)`` from a lock file's text."""
    try:
        record = json.loads(text)
        return (
            f"{record['command']} (pid {record['pid']} on host {record['host']}, "
            f"since {record['started_at']})"
        )
    except (ValueError, KeyError, TypeError):
        return "another process"


def _record(command: str) -> str:
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "argv": sys.argv,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        ensure_ascii=False,
    )


def _lock_exclusive(fd: int, tries: int = 10, pause: float = 0.02) -> bool:
    """Take the lock, retrying for a moment: another command's ``_probe`` holds it shared for
    an instant, and must not make a free directory look busy."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(pause)
    return False


def _acquire(path: Path, directory: Path, command: str) -> int:
    """Lock ``path`` and write this process's record into it; returns the open descriptor.

    The file is unlinked on release, so a lock taken on a file that was meanwhile unlinked
    (or replaced) is worthless: the inode locked must still be the one at ``path``.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            taken = _lock_exclusive(fd)
        except BaseException:
            os.close(fd)
            raise
        if not taken:
            holder = describe(_holder_text(fd))
            os.close(fd)
            raise Busy(f"{directory}: in use by {holder}; wait for it or stop it")
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, _record(command).encode("utf-8"), 0)
        return fd


def _release(fd: int, path: Path, created: list[Path]) -> None:
    """Unlink while still holding, then unlock; remove folders the lock alone created."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            path.unlink()
    os.close(fd)
    _release_created(created)


@contextlib.contextmanager
def hold(directory: Path, command: str) -> Iterator[Path]:
    """Hold ``directory`` (created if missing) for the block, or raise ``Busy`` naming the
    holder. ``command`` (e.g. ``fusebench eval``) is what a refused writer is told.

    Folders created only to hold the lock are removed again if the command wrote nothing
    there (a refused input leaves nothing behind).
    """
    created = _make_directory(directory)
    key = directory.resolve()
    if _held.get(key):
        _held[key] += 1
        try:
            yield directory
        finally:
            _held[key] -= 1
        return
    path = lock_path(directory)
    try:
        fd = _acquire(path, directory, command)
    except BaseException:
        _release_created(created)
        raise
    try:
        _refuse_nested(directory, key)
    except BaseException:
        _release(fd, path, created)
        raise
    _held[key] = 1
    try:
        yield directory
    finally:
        del _held[key]
        _release(fd, path, created)


def _release_created(created: list[Path]) -> None:
    """Remove the folders made for the lock, deepest first; one the command wrote into stays."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            break


# ---------------------------------------------------------------- nested outputs


def _probe(path: Path) -> str | None:
    """Who holds the lock file at ``path``, or None when no live process does (or there is no
    lock file). Read only: the file is neither created, written nor removed, and the shared
    lock taken to ask the kernel is let go at once (``_lock_exclusive`` waits out that instant).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        return describe(_holder_text(fd)) if current else None  # released meanwhile: not held
    finally:
        os.close(fd)


def _enclosing_holder(key: Path) -> tuple[Path, str] | None:
    """The nearest folder above ``key`` (resolved) that another live process holds."""
    for folder in key.parents:
        if not _held.get(folder):
            holder = _probe(lock_path(folder))
            if holder is not None:
                return folder, holder
    return None


def _holder_below(key: Path) -> tuple[Path, str] | None:
    """A folder below ``key`` (resolved) that another live process holds. Symbolic links are
    not followed."""
    for root, dirs, files in os.walk(key):
        if root != str(key) and LOCK_NAME in files and not _held.get(Path(root)):
            holder = _probe(Path(root) / LOCK_NAME)
            if holder is not None:
                return Path(root), holder
        dirs.sort()
    return None


def _refuse_nested(directory: Path, key: Path) -> None:
    """Refuse ``directory`` when it lies inside, or holds, a folder another command writes:
    ``eval --output WORK/eval/x`` under a running ``fuse run`` on WORK would otherwise write
    the very run ``fuse run`` writes, and the reverse. Checked after taking the lock, so of two
    commands starting at once at least one sees the other."""
    above = _enclosing_holder(key)
    if above is not None:
        folder, holder = above
        raise Busy(
            f"{directory}: inside {folder}, which is in use by {holder}; wait for it or stop it"
        )
    below = _holder_below(key)
    if below is not None:
        folder, holder = below
        raise Busy(f"{directory}: {folder} inside it is in use by {holder}; wait for it or stop it")


def carry(directory: Path, replacement: Path) -> None:
    """Link this process's lock file of ``directory`` into ``replacement``, a folder about to
    be renamed over it (``runrecords.atomic.atomic_directory``): the same locked file then
    stands in the new folder, so the directory stays held through the swap."""
    if not _held.get(directory.resolve()):
        return
    with contextlib.suppress(FileNotFoundError):
        os.link(lock_path(directory), lock_path(replacement))
