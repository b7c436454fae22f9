"""Checkpoints that a crash cannot corrupt: DeepSpeed writes a tag, then its manifest.

``engine.save_checkpoint`` writes ``checkpoints/step-NNNNNN/`` (model, optimizer and
scheduler states, per rank); each rank adds its RNG states and data position beside
DeepSpeed's files. Only after every rank has finished are the files hashed (each rank a
share) and rank 0 writes the tag's manifest (``checkpoint_manifest``), then replaces
``checkpoints/latest.json``; DeepSpeed's own ``latest`` file is not written. A crash
mid-save leaves a tag without a manifest, which ``--resume`` never loads; a file damaged
later (a full disk, a killed copy) is found by its size or sha256 before anything loads.
"""

from __future__ import annotations

import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from fusion.train.checkpoint_manifest import (
    MANIFEST,
    POINTER,
    CheckpointError,
    checkpoint_files,
    file_records,
    tag_step,
    tags,
    write_manifest,
)
from runrecords.atomic import write_atomic, write_json_atomic

__all__ = ["MANIFEST", "POINTER", "CheckpointError", "load", "save", "tag_name"]


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
    """Save step ``step`` on every rank; once all have, record the files in the manifest,
    then (rank 0) point ``latest.json`` at it and prune."""
    tag = tag_name(step)
    rank = dist.get_rank()
    if rank == 0 and (root / tag).exists():
        # A save that did not finish, or a damaged tag a resume went back past: replaced
        # whole, so that no file of it is mixed into the new one.
        shutil.rmtree(root / tag)
    dist.barrier()
    engine.save_checkpoint(str(root), tag=tag, save_latest=False)
    state = {**rank_state, "rng": rng_state()}
    write_atomic(root / tag / f"fusebench-rank{rank:05d}.pt", lambda tmp: torch.save(state, tmp))
    dist.barrier()
    files = _record_files(root / tag)
    if rank == 0:
        write_manifest(root / tag, step, run, files)
        write_json_atomic(root / POINTER, {"tag": tag, "step": step, "manifest": MANIFEST, **run})
        prune(root, step, keep)
    dist.barrier()
    return root / tag


def _record_files(folder: Path) -> list[dict[str, Any]]:
    """Every file of a saved tag with its size and sha256: rank 0 lists them, each rank
    hashes a share, rank 0 gets them all (the others get an empty list)."""
    listing: list[Any] = [checkpoint_files(folder) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(listing, src=0)
    names: list[str] = listing[0]
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = file_records(folder, names[rank::world])
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine)
    return [record for part in gathered for record in part] if rank == 0 else []


def prune(root: Path, step: int, keep: int) -> None:
    """Keep the ``keep`` newest checkpoints up to ``step`` (the one just saved, so at least
    one intact checkpoint always stays); remove those after it, which a resume went back
    past (damaged or unfinished: a later resume must not prefer them)."""
    older = 0
    for folder in tags(root):
        saved = tag_step(folder.name) or 0
        if saved > step:
            shutil.rmtree(folder, ignore_errors=True)
        elif saved < step:
            older += 1
            if older >= keep:
                shutil.rmtree(folder, ignore_errors=True)


def load(engine: Any, root: Path, pointer: dict[str, Any]) -> dict[str, Any]:
    """Restore the engine (model, optimizer, scheduler) and this rank's RNG; return its state."""
    tag = pointer["tag"]
    try:
        path, _ = engine.load_checkpoint(
            str(root), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True
        )
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        # Verified checkpoints load; this is for one saved before manifests existed.
        raise CheckpointError(f"{root / tag}: cannot be loaded ({_first_line(err)})") from None
    if path is None:
        raise CheckpointError(f"{root / tag}: DeepSpeed could not load this checkpoint")
    file = root / tag / f"fusebench-rank{dist.get_rank():05d}.pt"
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (the checkpoint was made by fewer processes)")
    try:
        state = torch.load(file, weights_only=False)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"{file}: cannot be loaded ({_first_line(err)})") from None
    set_rng_state(state.pop("rng"))
    return state


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
