"""Two ``fusebench eval`` on one run directory: the second is refused, the first finishes.

Real processes: the first eval is paused (SIGSTOP) while it holds the run, so that the second
certainly starts while the first is mid-run, as in the defect (a second ``eval --overwrite``
under a running one lost ``kobest_boolq`` 0-shot for good).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from reports import rundir
from runrecords.lock import LOCK_NAME, entries

REPO = Path(__file__).resolve().parents[2]
FUSEBENCH = str(Path(sys.executable).parent / "fusebench")  # the installed console script


def _argv(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval",
        str(model),
        "--tasks",
        "kobest_boolq,nsmc",
        "--limit",
        "4",
        "--quiet",
        "--output",
        str(out),
        *extra,
    ]


@pytest.mark.slow  # two console scripts start one after the other: ~40 s on two cores
def test_a_second_eval_is_refused_while_the_first_runs(zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        [FUSEBENCH, *_argv(zoo / "tiny-gpt2", out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not ((out / LOCK_NAME).is_file() and (out / rundir.MANIFEST).is_file()):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)  # mid-run, holding the run directory
        second = subprocess.run(
            [FUSEBENCH, *_argv(zoo / "tiny-gpt2", out, "--overwrite")],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 2, second.stderr
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, second.stderr
        assert f"{out}: in use by fusebench eval (pid {first.pid} on host " in lines[0]
        assert "wait for it or stop it" in lines[0] and "Traceback" not in second.stderr
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
            first.wait()
    manifest = rundir.read_manifest(out)
    assert manifest.status == "complete" and len(manifest.completed) == 2
    assert set(rundir.read_results(out, 0)["results"]) == {"kobest_boolq", "nsmc"}
    for task in ("kobest_boolq", "nsmc"):
        assert len(rundir.samples_path(out, 0, task).read_text().splitlines()) == 4
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_eval_takes_over_the_lock_of_a_killed_eval(zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from runrecords.lock import hold\n"
            "with hold(Path(sys.argv[1]), 'fusebench eval'):\n"
            "    print('held', flush=True); time.sleep(600)",
            str(out),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # stale
    argv = ["eval", str(zoo / "tiny-gpt2"), "--tasks", "nsmc", "--limit", "3", "--quiet"]
    assert main([*argv, "--output", str(out)]) == 0
    assert rundir.read_manifest(out).status == "complete"
    assert not (out / LOCK_NAME).exists()


def test_overwrite_keeps_the_lock_it_replaces_under(zoo: Path, tmp_path: Path) -> None:
    """--overwrite empties the run but not its lock file: deleting it would let a second
    writer take a new lock on the same directory while this one still writes."""
    from runrecords.lock import hold

    out = tmp_path / "run"
    argv = ["eval", str(zoo / "tiny-gpt2"), "--tasks", "nsmc", "--quiet", "--output", str(out)]
    assert main([*argv, "--limit", "3"]) == 0
    with hold(out, "fusebench eval"):
        lock_inode = (out / LOCK_NAME).stat().st_ino
        assert main([*argv, "--limit", "4", "--overwrite"]) == 0
        assert (out / LOCK_NAME).stat().st_ino == lock_inode
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
        assert {p.name for p in entries(out)} >= {rundir.MANIFEST, "0-shot"}
    assert rundir.read_manifest(out).limit == 4
