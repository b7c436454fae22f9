"""Torch's extension build locks: a lock left by a killed build is removed, a live one is named.

DeepSpeed compiles its CPU communication op (``deepspeed_shm_comm``) on first use, through
``torch.utils.cpp_extension``, into the torch extensions cache. While it builds, torch holds
``<cache>/<op>/lock`` (created with O_EXCL and kept open); every other process polls until
the file disappears, without a bound and without a word. A build killed midway (Ctrl-C of the
process group, an OOM kill, a reboot) leaves the file for good, and every later training run
then hangs silently.

The builder keeps the lock file open, so a lock that no process has open belongs to a dead
build: it is removed, with one line saying so. A lock some process has open is a build in
progress: it is named (pid and command) before training waits on it. A lock this user cannot
judge (another user's, in a shared cache) is reported in one line instead of waited on.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fusion.errors import FusionError

LOCK_NAME = "lock"  # torch.utils.cpp_extension's FileBaton, beside the op's build files
_PROC = Path("/proc")


class StaleBuildLock(FusionError):
    """A build lock that may be live, that this process can neither judge nor remove."""


@dataclass(frozen=True)
class BuildLock:
    """One lock file and the processes that have it open (its builder, when alive)."""

    path: Path
    holders: tuple[int, ...]

    @property
    def op(self) -> str:
        return self.path.parent.name


def extensions_root() -> Path:
    """Where torch builds extensions: ``TORCH_EXTENSIONS_DIR``, else its per-user cache."""
    explicit = os.environ.get("TORCH_EXTENSIONS_DIR")
    if explicit:
        return Path(explicit)
    from torch.utils.cpp_extension import get_default_build_root

    return Path(get_default_build_root())


def lock_files(root: Path) -> list[Path]:
    """Every op's lock under ``root`` (``root/<op>/lock``, or ``root/<py_tag>/<op>/lock``
    when torch chose the root)."""
    if not root.is_dir():
        return []
    return sorted({*root.glob(f"*/{LOCK_NAME}"), *root.glob(f"*/*/{LOCK_NAME}")})


def holders(path: Path) -> tuple[int, ...] | None:
    """The pids that have ``path`` open, or None when some process of the lock's owner
    could not be inspected (then a holder may exist unseen)."""
    target = os.path.realpath(path)
    try:
        owner = path.stat().st_uid
    except FileNotFoundError:
        return ()
    found, unseen = [], False
    for entry in _processes():
        try:
            fds = list((entry / "fd").iterdir())
        except FileNotFoundError:  # exited meanwhile
            continue
        except PermissionError:
            unseen = unseen or _uid(entry) in (owner, None)
            continue
        if any(_link(fd) == target for fd in fds):
            found.append(int(entry.name))
    if not found and unseen:
        return None
    return tuple(found)


def find_locks(root: Path) -> Iterator[BuildLock | Path]:
    """Each lock under ``root`` with its holders; a bare Path for one that cannot be judged."""
    for path in lock_files(root):
        pids = holders(path)
        yield path if pids is None else BuildLock(path, pids)


def clear_stale_locks(say: Callable[[str], None] | None = None) -> list[Path]:
    """Remove every lock whose builder is dead (saying so), name every live build before
    training waits on it; returns the locks removed. A lock that cannot be judged raises
    ``StaleBuildLock`` (one line). Nothing to do where there is no ``/proc``."""
    say = say or _stderr
    if not _PROC.is_dir():
        return []
    removed = []
    for lock in find_locks(extensions_root()):
        if isinstance(lock, Path):
            raise StaleBuildLock(
                f"{lock}: a torch extension build lock of another user, perhaps left by a "
                "killed build; training would wait on it forever: remove it if no build is "
                "running"
            )
        if lock.holders:
            pids = ", ".join(f"{pid} ({_command(pid)})" for pid in lock.holders)
            say(f"waiting for the build of {lock.op} by process {pids} to finish ({lock.path})")
            continue
        if not _still_stale(lock.path):
            continue
        try:
            lock.path.unlink()
        except FileNotFoundError:  # the build finished meanwhile
            continue
        except PermissionError:
            raise StaleBuildLock(
                f"{lock.path}: left by a killed build of {lock.op} (no process holds it) and "
                "not removable by this user; training would wait on it forever: remove it"
            ) from None
        removed.append(lock.path)
        say(
            f"removed a stale build lock of {lock.op} (its build was killed; no process holds "
            f"it): {lock.path}; the op is rebuilt on first use"
        )
    return removed


@contextmanager
def watching_locks(say: Callable[[str], None] | None = None, every: float = 30.0) -> Iterator[None]:
    """Around DeepSpeed's setup (which loads, or waits for another process to build, its op):
    every ``every`` seconds the locks are checked again, so a wait on a build is never silent
    for longer, and a lock whose builder dies meanwhile is removed (torch's wait then ends)."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every):
            try:
                clear_stale_locks(say)
            except StaleBuildLock as err:
                (say or _stderr)(f"still waiting: {err}")

    thread = threading.Thread(target=watch, name="build-lock-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _still_stale(path: Path, settle: float = 1.0) -> bool:
    """A lock without holders, seen again ``settle`` seconds later: torch's release closes the
    file before it removes it, and that instant must not pass for a dead build."""
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return False
    time.sleep(settle)
    try:
        return path.stat().st_ino == inode and holders(path) == ()
    except FileNotFoundError:
        return False


def _processes() -> Iterator[Path]:
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            yield entry


def _uid(entry: Path) -> int | None:
    try:
        return entry.stat().st_uid
    except OSError:
        return None


def _link(fd: Path) -> str | None:
    try:
        return os.readlink(fd)
    except OSError:
        return None


def _command(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    # One line: arguments (a ``python -c`` script too) joined by single spaces.
    return " ".join(raw.decode(errors="replace").replace("\0", " ").split())[:120] or "?"


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build_ops(say: Callable[[str], None] | None = None) -> bool:
    """Build (or load, when built) DeepSpeed's CPU comm op now, as a training run's first
    process-group setup would; ``scripts/setup.sh`` runs it once under a timeout so that no
    first training pays for, or is killed during, the build. False: not needed here."""
    clear_stale_locks(say)
    from deepspeed.comm.torch import build_shm_op

    return build_shm_op() is not None


if __name__ == "__main__":
    try:
        built = build_ops()
    except StaleBuildLock as err:
        _stderr(f"error: {err}")
        sys.exit(2)
    _stderr("DeepSpeed comm op ready" if built else "DeepSpeed comm op: not used on this machine")
