"""No rank outlives its launcher: real torchrun, real ranks, real SIGKILL.

The launcher is a real Python process calling ``fusion.launch.run_ranks`` on a rank that only
sleeps (``tests/fusion/rank_sleeper.py``); ``fuse train --nproc 2`` killed mid-training is
the slow end-to-end case.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from fusion.rank import alive

REPO = Path(__file__).resolve().parents[2]

LAUNCHER = """
import sys
from fusion.launch import run_ranks
sys.exit(run_ranks("tests.fusion.rank_sleeper", [sys.argv[1]], nproc=2).code)
"""


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@contextmanager
def _reaped(pids: list[int]) -> Iterator[None]:
    """Whatever the test finds, no process it started is left running afterwards."""
    try:
        yield
    finally:
        for pid in pids:
            if alive(pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _launch(tmp_path: Path) -> tuple[subprocess.Popen, int, list[int]]:
    """A launcher running two sleeping ranks: (launcher, torchrun's pid, the ranks' pids)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "FUSEBENCH_ORPHAN_GRACE_S": "5"}
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path)], env=env, stderr=subprocess.DEVNULL
    )
    pids = [tmp_path / "rank-0.pid", tmp_path / "rank-1.pid"]
    try:
        _wait_until(lambda: all(p.is_file() and p.read_text() for p in pids), 120, "no ranks")
    except AssertionError:
        launcher.kill()
        raise
    (torchrun,) = _children(launcher.pid)
    return launcher, torchrun, [int(p.read_text()) for p in pids]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_sigkill_of_the_launcher_ends_torchrun_and_every_rank(tmp_path: Path) -> None:
    launcher, torchrun, ranks = _launch(tmp_path)
    with _reaped([torchrun, *ranks]):
        assert alive(torchrun) and all(alive(r) for r in ranks)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        _wait_until(lambda: not any(alive(p) for p in [torchrun, *ranks]), 20, "orphans left")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_ranks_end_when_torchrun_itself_is_killed(tmp_path: Path) -> None:
    launcher, torchrun, ranks = _launch(tmp_path)
    with _reaped(ranks):
        os.kill(torchrun, signal.SIGKILL)  # as an OOM kill would: torchrun passes nothing on
        _wait_until(lambda: not any(alive(r) for r in ranks), 20, "ranks outlived torchrun")
        assert launcher.wait(timeout=30) != 0  # and the launcher hears of it


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_sigkill_of_fuse_train_on_two_ranks_leaves_no_rank_running(
    tmp_path: Path, fused_store: Path, train_config, fusebench_env: dict[str, str]
) -> None:
    settings = dict(
        precision="fp32",
        max_length=24,
        learning_rate=1e-3,
        seed=3,
        fused_store=str(fused_store),
        zero_stage=2,
        micro_batch_size=2,
        epochs=200,
        save_every=10_000,
    )
    work = tmp_path / "work"
    config = train_config(tmp_path / "train.yaml", work, **settings)
    run = subprocess.Popen(
        [str(Path(sys.executable).parent / "fusebench"), "fuse", "train", str(config)]
        + ["--nproc", "2", "--quiet"],
        env=fusebench_env | {"OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = work / "train" / "log.jsonl"
    try:
        _wait_until(lambda: log.is_file() and len(log.read_text().splitlines()) >= 2, 300, "slow")
    except AssertionError:
        run.kill()
        raise
    family = _descendants(run.pid)
    assert len(family) >= 3  # torchrun and two ranks (and whatever they started)
    with _reaped(family):
        run.send_signal(signal.SIGKILL)
        run.wait()
        _wait_until(lambda: not any(alive(p) for p in family), 60, "ranks outlived fuse train")
    status = json.loads((work / "train" / "status.json").read_text())
    assert status["status"] == "interrupted"  # the ranks were told, saved and stopped
    lines = len(log.read_text().splitlines())
    time.sleep(2)
    assert len(log.read_text().splitlines()) == lines  # nobody is still training


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_sigterm_while_the_ranks_start_is_an_interruption(
    tmp_path: Path, fused_store: Path, train_config, fusebench_env: dict[str, str]
) -> None:
    """SIGTERM (a scheduler's preemption) as soon as status.json says ``launching``: the
    command exits 130 with one line, and status.json says ``interrupted``, not ``failed``
    with a "the failing rank's error is printed above" that nothing printed."""
    work = tmp_path / "work"
    config = train_config(
        tmp_path / "train.yaml",
        work,
        precision="fp32",
        max_length=24,
        fused_store=str(fused_store),
        micro_batch_size=2,
        epochs=1,
    )
    run = subprocess.Popen(
        [str(Path(sys.executable).parent / "fusebench"), "fuse", "train", str(config)]
        + ["--nproc", "2", "--quiet"],
        env=fusebench_env | {"OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    status_file = work / "train" / "status.json"

    def launching() -> bool:
        with suppress(OSError, ValueError):
            return json.loads(status_file.read_text())["status"] == "launching"
        return False

    family: list[int] = []
    try:
        _wait_until(launching, 120, "never launching")
        family = _descendants(run.pid)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    with _reaped(family):
        _wait_until(lambda: not any(alive(p) for p in family), 30, "ranks outlived fuse train")
    assert run.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: train: interrupted while the 2 training processes were starting, before any "
        "step; rerun the same command to start again"
    ], stderr[-3000:]
    assert json.loads(status_file.read_text()) == {"status": "interrupted", "nproc": 2}
