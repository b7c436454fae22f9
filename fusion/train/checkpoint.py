"""Checkpoints that a crash cannot corrupt: DeepSpeed writes a tag, then our pointer moves.

``engine.save_checkpoint`` writes ``checkpoints/step-NNNNNN/`` (model, optimizer and
scheduler states, per rank). Only after every rank has finished does rank 0 replace
``checkpoints/latest.json`` atomically; DeepSpeed's own ``latest`` file is not written. A
crash mid-save leaves a partial tag that nothing points to, and ``--resume`` loads the
previous one. Each rank adds its RNG states and data position beside DeepSpeed's files.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from fusion.errors import FusionError
from runrecords.atomic import write_atomic, write_json_atomic

POINTER = "latest.json"


class CheckpointError(FusionError):
    """A checkpoint cannot be resumed (missing, or made with other settings)."""


def tag_name(step: int) -> str:
    return f"step-{step:06d}"


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    engine: Any, root: Path, step: int, rank_state: dict[str, Any], run: dict[str, Any], keep: int
) -> Path:
    """Save step ``step`` on every rank, then (rank 0) point ``latest.json`` at it and prune."""
    tag = tag_name(step)
    engine.save_checkpoint(str(root), tag=tag, save_latest=False)
    rank = dist.get_rank()
    state = {**rank_state, "rng": rng_state()}
    write_atomic(root / tag / f"fusebench-rank{rank:05d}.pt", lambda tmp: torch.save(state, tmp))
    dist.barrier()
    if rank == 0:
        write_json_atomic(root / POINTER, {"tag": tag, "step": step, **run})
        tags = sorted(p for p in root.glob("step-*") if p.is_dir())
        for old in tags[: max(0, len(tags) - keep)]:
            if old.name != tag:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return root / tag


def latest(root: Path) -> dict[str, Any] | None:
    """What ``latest.json`` points to, or None when no checkpoint was finished."""
    file = root / POINTER
    if not file.is_file():
        return None
    pointer = json.loads(file.read_text(encoding="utf-8"))
    if not (root / pointer["tag"]).is_dir():
        raise CheckpointError(f"{file}: points to {pointer['tag']}, which is missing")
    return pointer


def load(engine: Any, root: Path, pointer: dict[str, Any]) -> dict[str, Any]:
    """Restore the engine (model, optimizer, scheduler) and this rank's RNG; return its state."""
    tag = pointer["tag"]
    path, _ = engine.load_checkpoint(
        str(root), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if path is None:
        raise CheckpointError(f"{root / tag}: DeepSpeed could not load this checkpoint")
    file = root / tag / f"fusebench-rank{dist.get_rank():05d}.pt"
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (the checkpoint was made by fewer processes)")
    state = torch.load(file, weights_only=False)
    set_rng_state(state.pop("rng"))
    return state
