"""Training end to end on real DeepSpeed processes: two-rank ZeRO-2, exact resume, ZeRO-3.

Tiny target (tiny-llama), 24 Korean rows, short sequences: seconds per run on two CPU cores.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fusion.config import load_config
from fusion.train.launch import run_training
from fusion.train.logbook import read_log

REPO = Path(__file__).resolve().parents[2]
FAST = dict(precision="fp32", max_length=24, learning_rate=1e-3, warmup_ratio=0.1, seed=3)


def _config(
    tmp: Path, train_config, store: Path, name: str = "c", file: str = "", **train: object
) -> Path:
    settings = {**FAST, "fused_store": str(store), **train}
    return train_config(tmp / f"{file or name}.yaml", tmp / name, **settings)


def _main(config: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "fusion.train.main", str(config), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _without_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def _loads_and_generates(final: Path, original: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    ids = tokenizer("영화가 정말", return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 5
    before = AutoModelForCausalLM.from_pretrained(original).state_dict()
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained


def test_two_process_zero2_trains_end_to_end(
    tmp_path: Path, zoo: Path, fused_store: Path, train_config
) -> None:
    cfg = _config(
        tmp_path,
        train_config,
        fused_store,
        zero_stage=2,
        micro_batch_size=2,
        epochs=2,
        gradient_accumulation_steps=1,
        save_every=4,
    )
    final = run_training(load_config(cfg), nproc=2, resume=False)
    log = read_log(tmp_path / "c" / "train" / "log.jsonl")
    # 24 rows over 2 ranks x 2 per micro-batch = 6 steps per epoch, 2 epochs.
    assert [r["step"] for r in log] == list(range(1, 13))
    for record in log:
        assert all(math.isfinite(record[k]) for k in ("loss", "clm", "fuse", "grad_norm"))
        assert record["tokens"] > 0
        assert record["loss"] == pytest.approx(0.9 * record["clm"] + 0.1 * record["fuse"], rel=1e-5)
    assert sum(r["loss"] for r in log[-3:]) < sum(r["loss"] for r in log[:3])
    assert log[0]["lr"] == 0 and max(r["lr"] for r in log) == pytest.approx(1e-3)
    pointer = json.loads((tmp_path / "c" / "train" / "checkpoints" / "latest.json").read_text())
    assert pointer["step"] == 12 and pointer["settings"]["world_size"] == 2
    ranks = sorted(
        p.name
        for p in (tmp_path / "c" / "train" / "checkpoints" / "step-000012").glob("fusebench-rank*")
    )
    assert ranks == ["fusebench-rank00000.pt", "fusebench-rank00001.pt"]
    try:
        import tensorboard  # noqa: F401  # the optional extra: curves beside log.jsonl
    except ImportError:
        assert not (tmp_path / "c" / "train" / "tensorboard").exists()
    else:
        assert list((tmp_path / "c" / "train" / "tensorboard").glob("events.out.tfevents.*"))
    _loads_and_generates(final, zoo / "tiny-llama")


@pytest.mark.slow
def test_sigterm_then_resume_reproduces_the_uninterrupted_losses(
    tmp_path: Path, fused_store: Path, train_config
) -> None:
    settings = dict(
        zero_stage=2, micro_batch_size=2, gradient_accumulation_steps=2, epochs=3, save_every=100
    )
    reference = _main(_config(tmp_path, train_config, fused_store, "ref", **settings))
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    want = read_log(tmp_path / "ref" / "train" / "log.jsonl")
    assert len(want) == 18  # 24 rows / (2 x 2) per step, 3 epochs

    cfg = _config(tmp_path, train_config, fused_store, "cut", **settings)
    log = tmp_path / "cut" / "train" / "log.jsonl"
    run = _main(cfg)
    deadline = time.monotonic() + 240
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=120) == 130
    message = run.stderr.read()
    assert "interrupted after step" in message and "--resume" in message
    assert "Traceback" not in message
    status = json.loads((tmp_path / "cut" / "train" / "status.json").read_text())
    stopped = status["step"]
    assert status["status"] == "interrupted" and 3 <= stopped < 18
    assert len(read_log(log)) == stopped

    # Without --resume the checkpoint is not clobbered; with other settings it is not mixed in.
    refused = _main(cfg)
    assert refused.wait(timeout=120) == 2
    assert "pass --resume" in refused.stderr.read()
    other = _config(
        tmp_path, train_config, fused_store, "cut", "other", **{**settings, "learning_rate": 5e-4}
    )
    mixed = _main(other, "--resume")
    assert mixed.wait(timeout=120) == 2
    assert "made with other settings (train.learning_rate" in mixed.stderr.read()

    resumed = _main(cfg, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert f"resumed at step {stopped}" in resumed.stderr.read()
    assert _without_time(read_log(log)) == _without_time(want)


@pytest.mark.parametrize("stage", [3])
def test_zero3_consolidates_the_final_model(
    tmp_path: Path, zoo: Path, fused_store: Path, train_config, stage: int
) -> None:
    cfg = _config(
        tmp_path,
        train_config,
        fused_store,
        zero_stage=stage,
        micro_batch_size=4,
        max_steps=4,
        save_every=2,
        keep_checkpoints=1,
    )
    final = run_training(load_config(cfg), nproc=1, resume=False)
    log = read_log(tmp_path / "c" / "train" / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert (tmp_path / "c" / "train" / "checkpoints" / "step-000004").is_dir()
    assert not (
        tmp_path / "c" / "train" / "checkpoints" / "step-000002"
    ).exists()  # keep_checkpoints=1
    _loads_and_generates(final, zoo / "tiny-llama")
    # A finished run is not redone: --resume returns the final model at once.
    assert run_training(load_config(cfg), nproc=1, resume=True) == final
