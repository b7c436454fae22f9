"""One writer per output directory (runrecords/lock.py), with real processes and signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runrecords.errors import UserError
from runrecords.lock import LOCK_NAME, Busy, clear, entries, hold

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from pathlib import Path
from runrecords.lock import hold
with hold(Path(sys.argv[1]), "fusebench eval"):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(directory: Path) -> subprocess.Popen:
    """Another process holding ``directory``'s lock (until it is killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "held\n"
    return process


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        with pytest.raises(Busy) as refused, hold(run, "fusebench eval"):
            pass
        message = str(refused.value)
        assert message.startswith(f"{run}: in use by fusebench eval (pid {holder.pid} on host ")
        assert socket.gethostname() in message and message.endswith("; wait for it or stop it")
        assert refused.value.exit_code == 2
        assert (run / LOCK_NAME).is_file()  # the refusal takes nothing from the holder
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = _holder(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    stale = json.loads((run / LOCK_NAME).read_text())
    assert stale["pid"] == holder.pid  # left behind, but no longer held
    with hold(run, "fusebench eval"):
        mine = json.loads((run / LOCK_NAME).read_text())
        assert mine["pid"] == os.getpid() and mine["command"] == "fusebench eval"
    assert not (run / LOCK_NAME).exists()


def test_released_on_every_exit_and_what_it_created_is_removed(tmp_path: Path) -> None:
    run = tmp_path / "a" / "run"
    with pytest.raises(UserError), hold(run, "fusebench eval"):
        assert (run / LOCK_NAME).is_file()
        raise UserError("bad input")
    assert not (tmp_path / "a").exists()  # nothing written: nothing left
    with hold(run, "fusebench eval"):
        (run / "manifest.json").write_text("{}")
    assert [p.name for p in run.iterdir()] == ["manifest.json"]


def test_holding_again_in_the_same_process_is_allowed(tmp_path: Path) -> None:
    with hold(tmp_path, "fusebench fuse run"), hold(tmp_path, "fusebench fuse run"):
        pass
    with hold(tmp_path, "fusebench fuse run"):  # and released in the end
        pass


def test_a_file_is_not_a_directory_to_lock(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="exists and is not a directory"), hold(tmp_path / "f", "x"):
        pass
    with pytest.raises(UserError, match="is a file"), hold(tmp_path / "f" / "run", "x"):
        pass


def test_clear_keeps_the_lock(tmp_path: Path) -> None:
    with hold(tmp_path, "fusebench eval"):
        (tmp_path / "0-shot").mkdir()
        (tmp_path / "0-shot" / "results.json").write_text("{}")
        (tmp_path / "manifest.json").write_text("{}")
        clear(tmp_path)
        assert entries(tmp_path) == [] and (tmp_path / LOCK_NAME).is_file()
        holder_pid = json.loads((tmp_path / LOCK_NAME).read_text())["pid"]
        assert holder_pid == os.getpid()
