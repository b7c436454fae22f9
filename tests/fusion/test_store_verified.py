"""A corrupt fused store is found before a stage says "up to date" and before training starts,
and a training that fails after it started leaves a truthful status.json, not ``running``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fusion.store import TopKStore

REPO = Path(__file__).resolve().parents[2]
FAST = dict(precision="fp32", max_length=24, learning_rate=1e-3, warmup_ratio=0.1, seed=3)


def _flip_byte(path: Path) -> None:
    """One byte in the middle of the file changed: the size stays, the sha256 does not."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.slow  # two tiny fuse runs
def test_corrupt_fused_shard_is_named_redone_and_never_trained_on(
    tmp_path: Path, zoo: Path, fuse_config, nsmc_rows, run_fusebench
) -> None:
    config = fuse_config(
        tmp_path,
        nsmc_rows(8),
        train={"precision": "fp32", "micro_batch_size": 4, "max_length": 64, "max_steps": 1},
    )
    done = run_fusebench("fuse", "run", str(config), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    fused = tmp_path / "work" / "fused"
    shard = fused / TopKStore(fused).manifest.shards[-1].file

    # fuse run: the stage names the corrupt shard and redoes it instead of calling it up to date.
    _flip_byte(shard)
    again = run_fusebench("fuse", "run", str(config), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "fused store up to date" not in again.stderr
    said = [line for line in _lines(again.stderr) if "corrupt shard" in line]
    assert len(said) == 1 and f"{shard}: sha256 does not match" in said[0], again.stderr
    assert TopKStore(fused).problems() == []

    # fuse train on a corrupt store: refused in one line before anything starts or is written.
    _flip_byte(shard)
    shutil.rmtree(tmp_path / "work" / "train")
    refused = run_fusebench("fuse", "train", str(config))
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr
    lines = _lines(refused.stderr)
    assert len(lines) == 1 and f"{shard}: sha256 does not match" in lines[0], refused.stderr
    assert not (tmp_path / "work" / "train").exists()


def test_training_that_fails_after_starting_records_failed(
    tmp_path: Path, train_config, fused_store: Path
) -> None:
    """A real failure mid-run (the checkpoint folder cannot be made: a file holds its name)
    leaves status.json at ``failed`` with the error, not ``running``."""
    output = tmp_path / "c" / "train"
    output.mkdir(parents=True)
    (output / "checkpoints").write_text("in the way")
    config = train_config(
        tmp_path / "c.yaml", tmp_path / "c", fused_store=str(fused_store), save_every=1, **FAST
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "fusion.train.main", str(config), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    status = json.loads((output / "status.json").read_text())
    assert status["status"] == "failed", status
    assert status["step"] == 1 and status["steps"] >= 1
    assert status["error"] and "\n" not in status["error"]


def _rank_zero_under(folder: Path) -> int | None:
    """The pid of rank 0 of a training whose config lies under ``folder`` (from /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = any(arg.startswith(str(folder).encode()) for arg in cmdline)
        if b"fusion.train.main" in cmdline and ours and b"RANK=0" in environ:
            return int(proc.name)
    return None


@pytest.mark.slow  # a real two-rank DeepSpeed launch
def test_rank_killed_under_the_launcher_leaves_failed(
    tmp_path: Path, train_config, fused_store: Path, fusebench_env
) -> None:
    """Rank 0 (the status writer) SIGKILLed mid-training: the launcher records ``failed``."""
    config = train_config(
        tmp_path / "k.yaml",
        tmp_path / "k",
        fused_store=str(fused_store),
        epochs=500,
        micro_batch_size=1,
        save_every=100000,
        **FAST,
    )
    status_file = tmp_path / "k" / "train" / "status.json"
    child = subprocess.Popen(
        [str(Path(sys.executable).parent / "fusebench"), "fuse", "train", str(config)]
        + ["--nproc", "2", "--quiet"],
        env={**fusebench_env, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if status_file.is_file() and '"running"' in status_file.read_text():
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.5)
        rank0 = _rank_zero_under(tmp_path)
        assert rank0 is not None
        os.kill(rank0, signal.SIGKILL)
        _, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 2, err[-3000:]
    status = json.loads(status_file.read_text())
    assert status["status"] == "failed", status
    assert "training processes failed" in status["error"]
