"""Damaged checkpoints on resume, with real training and the real ``fusebench`` command.

One short run (4 steps, a checkpoint every 2) is made once and ended by a real failure after
its last checkpoint (a file stands where the final model goes); each test damages a copy of
it the way a full disk or a killed copy does (truncated files, a truncated ``latest.json``)
and resumes: the newest intact checkpoint is used with one line saying why the newer one was
not, or the command refuses in one line (exit 2), never a traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fusion.config import load_config
from fusion.errors import FusionError
from fusion.launch import rank_env, torchrun_command
from fusion.train.checkpoint import MANIFEST, prune
from fusion.train.checkpoint_manifest import tags
from fusion.train.logbook import read_log
from fusion.train.trainer import start_point
from harness.cli import main

FAST = dict(
    precision="fp32",
    max_length=24,
    learning_rate=1e-3,
    warmup_ratio=0.1,
    seed=3,
    zero_stage=2,
    micro_batch_size=4,
    max_steps=4,
    save_every=2,
    keep_checkpoints=3,
)


def _config(root: Path, train_config, store: Path) -> Path:
    return train_config(root / "config.yaml", root / "work", fused_store=str(store), **FAST)


@pytest.fixture(scope="module")
def interrupted(
    tmp_path_factory: pytest.TempPathFactory, fused_store: Path, train_config, run_fusebench
) -> Path:
    """A run with checkpoints at steps 2 and 4 that failed while saving its final model
    (the real command, in a process of its own: DeepSpeed keeps the first process group it
    saw, so an in-process run would break later in-process trainings of the session)."""
    root = tmp_path_factory.mktemp("ckpt")
    cfg = _config(root, train_config, fused_store)
    train = root / "work" / "train"
    train.mkdir(parents=True)
    (train / "final").write_text("in the way")  # the final save fails after step 4
    done = run_fusebench("fuse", "train", str(cfg), "--quiet")
    assert done.returncode == 2 and "final" in done.stderr, done.stderr
    (train / "final").unlink()
    assert [p.name for p in tags(train / "checkpoints")] == ["step-000004", "step-000002"]
    return train


@pytest.fixture
def run_copy(
    interrupted: Path, tmp_path: Path, fused_store: Path, train_config
) -> tuple[Path, Path]:
    """(config, train folder) of a private copy of the interrupted run."""
    cfg = _config(tmp_path, train_config, fused_store)
    train = tmp_path / "work" / "train"
    shutil.copytree(interrupted, train)
    return cfg, train


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _resume(run: Callable[..., subprocess.CompletedProcess], cfg: Path, *extra: str):
    return run("fuse", "train", str(cfg), "--resume", "--quiet", *extra)


def test_truncated_checkpoint_and_pointer_fall_back_to_the_intact_one(
    run_copy: tuple[Path, Path], run_fusebench
) -> None:
    cfg, train = run_copy
    want = read_log(train / "log.jsonl")
    assert [r["step"] for r in want] == [1, 2, 3, 4]
    newest = train / "checkpoints" / "step-000004"
    model_states = newest / "mp_rank_00_model_states.pt"
    _truncate(model_states)
    _truncate(newest / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    _truncate(train / "checkpoints" / "latest.json")

    done = _resume(run_fusebench, cfg)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    said = [line for line in _lines(done.stderr) if "step-000004" in line]
    assert len(said) == 1, done.stderr
    assert str(model_states) in said[0] and "truncated" in said[0]
    assert "using step-000002" in said[0]
    pointer = [line for line in _lines(done.stderr) if "latest.json" in line]
    assert len(pointer) == 1 and "unreadable" in pointer[0], done.stderr
    assert "resumed at step 2" in done.stderr
    # Steps 3 and 4 are trained again exactly as the first time.
    got = read_log(train / "log.jsonl")
    assert [r["step"] for r in got] == [1, 2, 3, 4]
    assert [r["loss"] for r in got] == pytest.approx([r["loss"] for r in want], rel=1e-6)
    assert json.loads((train / "status.json").read_text())["status"] == "finished"
    assert (train / "final" / "model.safetensors").is_file()
    # The damaged tag was replaced by a whole one; both kept (keep_checkpoints=3).
    assert start_point(load_config(cfg), 1, resume=True).pointer["tag"] == "step-000004"
    assert json.loads((train / "checkpoints" / "latest.json").read_text())["step"] == 4


def test_no_intact_checkpoint_refuses_in_one_line(run_copy: tuple[Path, Path], capsys) -> None:
    cfg, train = run_copy
    for tag in ("step-000002", "step-000004"):
        _truncate(train / "checkpoints" / tag / "mp_rank_00_model_states.pt")

    code = main(["fuse", "train", str(cfg), "--resume", "--quiet"])  # the command, in-process

    stderr = capsys.readouterr().err
    assert code == 2
    lines = _lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "no intact checkpoint" in lines[0] and "start afresh" in lines[0]
    assert "step-000004/mp_rank_00_model_states.pt" in lines[0]
    assert "step-000002/mp_rank_00_model_states.pt" in lines[0]
    # Nothing was started or removed: both damaged checkpoints are still there to inspect.
    assert (train / "checkpoints" / "step-000002").is_dir()
    assert (train / "checkpoints" / "step-000004").is_dir()


# ---------------------------------------------------- choosing, without a training process


def _choose(cfg: Path, *, resume: bool = True) -> tuple[dict | None, list[str]]:
    said: list[str] = []
    chosen = start_point(load_config(cfg), 1, resume=resume, say=said.append).pointer
    return chosen, said


def test_a_fresh_start_is_refused_even_with_a_truncated_pointer(
    run_copy: tuple[Path, Path],
) -> None:
    cfg, train = run_copy
    _truncate(train / "checkpoints" / "latest.json")
    with pytest.raises(FusionError, match="pass --resume"):
        _choose(cfg, resume=False)


def test_a_corrupt_byte_is_found_by_its_digest(run_copy: tuple[Path, Path]) -> None:
    cfg, train = run_copy
    file = train / "checkpoints" / "step-000004" / "fusebench-rank00000.pt"
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    file.write_bytes(bytes(data))
    chosen, said = _choose(cfg)
    assert chosen is not None and chosen["tag"] == "step-000002" and chosen["step"] == 2
    assert said == [
        f"train: {file}: sha256 differs from the one recorded when saved (corrupt): "
        "not resuming step-000004; using step-000002"
    ]


def test_a_save_that_did_not_finish_is_not_trusted(run_copy: tuple[Path, Path]) -> None:
    """A newer folder without a manifest (killed mid-save) is passed over, in one line."""
    cfg, train = run_copy
    shutil.copytree(train / "checkpoints" / "step-000004", train / "checkpoints" / "step-000006")
    (train / "checkpoints" / "step-000006" / MANIFEST).unlink()
    chosen, said = _choose(cfg)
    assert chosen is not None and chosen["tag"] == "step-000004"
    assert len(said) == 1 and "step-000006" in said[0] and "did not finish" in said[0]


def test_checkpoints_from_before_manifests(run_copy: tuple[Path, Path]) -> None:
    """Written before checkpoints had a manifest (latest.json, without "manifest", points to
    it): resumed with a warning that it cannot be verified. A newer one without a manifest,
    which latest.json does not point to, is a save that did not finish: not trusted."""
    cfg, train = run_copy
    checkpoints = train / "checkpoints"
    for tag in ("step-000002", "step-000004"):
        (checkpoints / tag / MANIFEST).unlink()
    pointer = json.loads((checkpoints / "latest.json").read_text())
    del pointer["manifest"]
    pointer["tag"], pointer["step"] = "step-000002", 2
    (checkpoints / "latest.json").write_text(json.dumps(pointer))

    chosen, said = _choose(cfg)

    assert chosen is not None and chosen["tag"] == "step-000002" and chosen["step"] == 2
    assert len(said) == 2, said
    assert "step-000002" in said[0] and "cannot be verified" in said[0]
    assert "step-000004" in said[1] and "did not finish" in said[1]


def test_pruning_never_counts_a_damaged_newer_checkpoint(tmp_path: Path) -> None:
    """After a resume went back to step 2, saving step 3 with keep_checkpoints=1 keeps step 3
    and removes both step 2 and the damaged step 4 (a later resume must not prefer it)."""
    for step in (2, 3, 4):
        (tmp_path / f"step-{step:06d}").mkdir()
    prune(tmp_path, 3, keep=1)
    assert [p.name for p in tmp_path.iterdir()] == ["step-000003"]
    for step in (1, 2, 4):
        (tmp_path / f"step-{step:06d}").mkdir()
    prune(tmp_path, 4, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000003", "step-000004"]


# ---------------------------------------------------- two ranks (DeepSpeed ZeRO-2)


@pytest.mark.slow
def test_two_ranks_agree_on_the_intact_checkpoint(
    tmp_path: Path, fused_store: Path, train_config, run_fusebench
) -> None:
    """Rank 1's optimizer file of the newest checkpoint truncated: resumed from the older one
    by both ranks, said once, whether rank 0 chooses (the deepspeed launcher on
    ``fusion.train.main``) or the ``fusebench`` launcher does before starting the ranks."""
    cfg = train_config(
        tmp_path / "config.yaml",
        tmp_path / "work",
        fused_store=str(fused_store),
        **{**FAST, "micro_batch_size": 2},
    )
    train = tmp_path / "work" / "train"
    train.mkdir(parents=True)
    (train / "final").write_text("in the way")
    first = run_fusebench("fuse", "train", str(cfg), "--nproc", "2", "--quiet")
    assert first.returncode == 2, first.stderr
    want = read_log(train / "log.jsonl")
    assert [r["step"] for r in want] == [1, 2, 3, 4]
    damaged = train / "checkpoints" / "step-000004" / "zero_pp_rank_1_mp_rank_00_optim_states.pt"

    # Rank 0 chooses and tells rank 1 (no launcher choice); the final save fails again.
    _truncate(damaged)
    ranks = subprocess.run(
        torchrun_command("fusion.train.main", [str(cfg), "--resume", "--no-progress"], 2),
        env=rank_env(2),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ranks.returncode != 0
    said = [line for line in _lines(ranks.stderr) if "not resuming step-000004" in line]
    assert len(said) == 1 and str(damaged) in said[0], ranks.stderr
    assert ranks.stderr.count("resumed at step 2") == 1
    assert (damaged.parent / MANIFEST).is_file()  # step 4 saved again, whole

    # The fusebench launcher chooses before the ranks start; the run completes.
    _truncate(damaged)
    (train / "final").unlink()
    done = run_fusebench("fuse", "train", str(cfg), "--nproc", "2", "--resume", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    said = [line for line in _lines(done.stderr) if "not resuming step-000004" in line]
    assert len(said) == 1 and str(damaged) in said[0], done.stderr
    assert done.stderr.count("resumed at step 2") == 1
    got = read_log(train / "log.jsonl")
    assert [r["loss"] for r in got] == pytest.approx([r["loss"] for r in want], rel=1e-6)
    assert json.loads((train / "status.json").read_text())["status"] == "finished"
