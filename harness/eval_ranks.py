"""Several processes on one evaluation (``fusebench eval --nproc N``): the ranks' side.

Why not lm-eval's own data parallelism: lm-eval 0.4.13 shards documents by ``lm.rank`` /
``lm.world_size`` (document i to rank i mod N) and gathers samples on rank 0, but (1) HFLM
turns it on only with more than one GPU (on CPU every rank would score every document), and
(2) a document's log-likelihood depends on its batch-mates: the shared-context scorer packs
several contexts into one forward pass, and another packing changes float32 rounding
(measured: up to 3e-5 on kobest_hellaswag with the tiny zoo model), so per-document numbers
would differ from a one-process run by more than 1e-6, and lm-eval's gathered order (rank 0's
documents, then rank 1's) changes bootstrap standard errors.

So here every rank builds all of a task's requests (lm-eval sees one process; that part is
cheap) and plans the forward passes exactly as one process would; the passes, the expensive
part, are dealt out to the ranks (whole batches, so each is the same batch as in a
one-process run), and the scores are all-gathered over a gloo group (CPU or GPU alike), so
every rank then holds every score and lm-eval's metrics come out of the same numbers in the
same order. Only rank 0 writes the run directory. Scoring that does not go through the
shared-context planner (``loglikelihood_rolling``, ``generate_until``) runs whole on every
rank: the same numbers, no speed-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# torchrun's variables that tell accelerate (inside lm-eval's HFLM) it is one of several
# processes; hidden once our own group exists, so that lm-eval runs as one process per rank.
_DIST_KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the evaluation's processes."""

    rank: int
    world_size: int
    local_rank: int


_current: Ranks | None = None


def current() -> Ranks | None:
    """The ranks of a multi-process evaluation this process belongs to (None: alone)."""
    return _current


def join() -> Ranks:
    """In a rank torchrun started: join the gloo group, hide the rendezvous from lm-eval and
    accelerate (each rank is one lm-eval process), share the CPU threads."""
    global _current
    import torch
    import torch.distributed as dist

    ranks = Ranks(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ["LOCAL_RANK"]),
    )
    dist.init_process_group("gloo")
    for key in _DIST_KEYS:
        os.environ.pop(key, None)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // ranks.world_size))
    _current = ranks
    return ranks


def leave() -> None:
    """Leave the group (end of the rank's work)."""
    global _current
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _current = None


def rank_device(device: str, local_rank: int) -> str:
    """The device of the rank ``local_rank``: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
    return f"cuda:{local_rank}" if device == "cuda" else device


def deal(costs: Sequence[float], world_size: int) -> list[int]:
    """The rank that runs each item: the costliest first, each to the least loaded rank
    (ties to the lowest rank), so ranks finish together. Deterministic: every rank computes
    the same deal from the same plan."""
    loads = [0.0] * world_size
    owner = [0] * len(costs)
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        owner[index] = rank
        loads[rank] += costs[index]
    return owner


def my_share(costs: Sequence[float]) -> list[int]:
    """Indices of the items this rank runs (all of them in a one-process run)."""
    ranks = current()
    if ranks is None or ranks.world_size == 1:
        return list(range(len(costs)))
    owner = deal(costs, ranks.world_size)
    return [index for index, rank in enumerate(owner) if rank == ranks.rank]


def run_shared(
    items: Sequence[T], costs: Sequence[float], work: Callable[[T], dict[Any, Any]]
) -> dict[Any, Any]:
    """``work`` on this rank's share of ``items``, the results of every rank merged (all
    ranks must call this with the same items); alone, ``work`` on every item.

    An exception in one rank's share is raised on every rank (the lowest rank's), so that
    all take the same path after it (the scorer's fallback for an unshareable cache, or
    one error line) instead of some waiting for the others in the next collective."""
    ranks = current()
    mine: dict[Any, Any] = {}
    if ranks is None or ranks.world_size == 1:
        for index in my_share(costs):
            mine.update(work(items[index]))
        return mine
    import torch.distributed as dist

    failed: BaseException | None = None
    try:
        for index in my_share(costs):
            mine.update(work(items[index]))
    except Exception as err:
        failed = _picklable(err)
    gathered: list[tuple[dict[Any, Any], BaseException | None] | None] = [None] * ranks.world_size
    dist.all_gather_object(gathered, (mine if failed is None else {}, failed))
    merged: dict[Any, Any] = {}
    for part, error in (g for g in gathered if g is not None):
        if error is not None:
            raise error
        merged.update(part)
    return merged


def _picklable(err: Exception) -> Exception:
    """``err`` itself if it can travel to the other ranks, else a RuntimeError saying it."""
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")
    return err
