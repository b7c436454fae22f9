"""A torch extension build killed midway leaves its lock; training must not wait on it forever.

The builder is a real process that takes the lock the way torch does (FileBaton) and is
SIGKILLed, in a temporary TORCH_EXTENSIONS_DIR laid out as DeepSpeed's op is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusion.train.extensions import clear_stale_locks

OP = "deepspeed_shm_comm"
_HOLD = (
    "import sys, time\n"
    "from torch.utils.file_baton import FileBaton\n"
    "assert FileBaton(sys.argv[1]).try_acquire()\n"
    "print('holding', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def extensions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "torch_extensions"
    (root / OP).mkdir(parents=True)
    (root / OP / "shm.o").write_bytes(b"half built")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(root))
    return root


@pytest.fixture
def builder(extensions: Path) -> Iterator[subprocess.Popen]:
    """A process holding the op's build lock, as torch's builder does while it compiles."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(extensions / OP / "lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "holding\n"
    yield child
    if child.poll() is None:
        child.kill()
    child.wait()


def test_lock_of_a_killed_build_is_removed(extensions: Path, builder: subprocess.Popen) -> None:
    from torch.utils.file_baton import FileBaton

    lock = extensions / OP / "lock"
    os.kill(builder.pid, signal.SIGKILL)
    builder.wait()
    assert lock.exists()  # what a killed build leaves behind
    said: list[str] = []
    assert clear_stale_locks(said.append) == [lock]
    assert len(said) == 1 and said[0].startswith(f"removed a stale build lock of {OP}")
    assert str(lock) in said[0]
    assert not lock.exists() and (extensions / OP / "shm.o").exists()
    assert FileBaton(str(lock)).try_acquire()  # the next build goes ahead instead of waiting


def test_live_build_is_named_and_kept(extensions: Path, builder: subprocess.Popen) -> None:
    lock = extensions / OP / "lock"
    said: list[str] = []
    assert clear_stale_locks(said.append) == []
    assert lock.exists()
    assert len(said) == 1, said
    assert said[0].startswith(f"waiting for the build of {OP} by process {builder.pid} (")
    assert "file_baton" in said[0] and str(lock) in said[0]


def test_no_lock_says_nothing(extensions: Path) -> None:
    said: list[str] = []
    assert clear_stale_locks(said.append) == [] and said == []


@pytest.mark.slow
def test_training_setup_after_a_killed_build_does_not_hang(
    extensions: Path, builder: subprocess.Popen
) -> None:
    """The real thing: DeepSpeed's process-group setup (which loads the op) after the build
    was killed. Before the fix it waits on the lock forever; now it rebuilds the op."""
    os.kill(builder.pid, signal.SIGKILL)
    builder.wait()
    script = (
        "from fusion.train.launch import shared_process_group\n"
        "with shared_process_group(1):\n"
        "    print('group ready', flush=True)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "group ready" in done.stdout
    assert f"removed a stale build lock of {OP}" in done.stderr
    assert (extensions / OP / f"{OP}.so").is_file()


def test_a_wait_is_never_silent_and_ends_when_the_builder_dies(
    extensions: Path, builder: subprocess.Popen
) -> None:
    """Waiting as torch does (polling until the lock is gone) inside ``watching_locks``: the
    build is named while its builder lives; once it is SIGKILLed the lock is removed and the
    wait ends."""
    from fusion.train.extensions import watching_locks

    lock = extensions / OP / "lock"
    said: list[str] = []
    killer = threading.Timer(1.5, os.kill, (builder.pid, signal.SIGKILL))
    killer.start()
    deadline = time.monotonic() + 60
    with watching_locks(said.append, every=0.3):
        while lock.exists() and time.monotonic() < deadline:  # torch's FileBaton.wait, bounded
            time.sleep(0.1)
    killer.join()
    assert not lock.exists(), said
    assert said[0].startswith(f"waiting for the build of {OP} by process {builder.pid}")
    assert said[-1].startswith(f"removed a stale build lock of {OP}")
