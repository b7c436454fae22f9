"""Starting a training run: in this process for one rank, through torchrun for several.

``run_training`` is what ``fusebench fuse train`` and ``fuse run`` call. Inputs are checked
here first (store, tokenizer, resume point), so a user mistake is one line from this
process rather than one per rank.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from fusion.config import TrainRunConfig
from fusion.errors import FusionError
from fusion.launch import Launched, run_ranks
from fusion.train.extensions import clear_stale_locks, watching_locks
from fusion.train.setup import RunPaths, load_tokenizer, new_row_ids, open_data, run_paths
from runrecords.atomic import write_json_atomic, write_status_json
from runrecords.errors import Interrupted

if TYPE_CHECKING:  # the trainer imports torch and DeepSpeed: only when training starts
    from fusion.train.trainer import StartPoint


class TrainingFailed(FusionError):
    """The training processes exited with an error (printed above by the failing rank)."""


def check_inputs(
    config: TrainRunConfig,
    *,
    nproc: int,
    resume: bool,
    say: Callable[[str], None] | None = None,
) -> StartPoint | None:
    """Everything a rank would refuse, refused once here (no process group needed); returns
    the checkpoint to start from, verified here once for every rank (None: finished)."""
    from fusion.train.trainer import finished, start_point

    if nproc < 1:
        raise FusionError(f"--nproc {nproc}: expected at least 1 process")
    if resume and finished(config):
        return None
    new_row_ids(config)
    open_data(config, load_tokenizer(config))
    return start_point(config, nproc, resume=resume, say=say or _quiet)


def run_training(
    config: TrainRunConfig,
    *,
    nproc: int,
    resume: bool,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> Path:
    """Train the target (fused objective, or plain CLM for a vocab stage); returns the final
    Hugging Face model's folder. Status lines go to ``say`` (the ranks of a multi-process
    run print theirs on stderr), with a progress bar unless ``progress`` is off."""
    start = check_inputs(config, nproc=nproc, resume=resume, say=say)
    clear_stale_locks(say)
    if nproc == 1:
        from fusion.train.trainer import train

        return train(config, resume=resume, progress=progress, say=say or _quiet, start=start)
    paths = run_paths(config)
    paths.output.mkdir(parents=True, exist_ok=True)
    config_file = paths.output / "launch-config.yaml"
    config_file.write_text(
        yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    # FUSEBENCH_LAUNCHED: the caller reports the final model itself.
    args = [
        str(config_file),
        *(["--resume"] if resume else []),
        *([] if progress else ["--no-progress"]),
        *(_start_tag(start)),
    ]
    try:
        write_json_atomic(paths.status, {"status": "launching", "nproc": nproc})
        launched = run_ranks(
            "fusion.train.main", args, nproc=nproc, env={"FUSEBENCH_LAUNCHED": "1"}
        )
    except KeyboardInterrupt:  # before the launcher passes signals on
        launched = Launched(code=130, interrupted=True)
    code = launched.code
    if code == 0:
        return paths.final
    status = _status(paths.status)
    if launched.interrupted and status.get("status") in (None, "launching", "running"):
        raise _unrecorded_interrupt(paths, status, nproc)
    if status.get("status") == "interrupted":
        raise Interrupted(
            f"train: interrupted after step {status.get('step')} of {status.get('steps')}; "
            f"checkpoint in {paths.checkpoints}; rerun with --resume to continue"
        )
    message = (
        f"train: the {nproc} training processes failed (exit code {code}); "
        "the failing rank's error is printed above"
    )
    if status.get("status") in ("launching", "running"):  # a rank died without saying so
        write_json_atomic(
            paths.status, {**status, "status": "failed", "error": status.get("error", message)}
        )
    raise TrainingFailed(message)


def _unrecorded_interrupt(paths: RunPaths, status: dict, nproc: int) -> Interrupted:
    """Stopped (SIGTERM, Ctrl-C) before a rank could record it, e.g. while the ranks were
    still starting: status.json says ``interrupted``, not ``failed`` (no rank failed, none
    printed an error), and the command exits 130 like any interruption."""
    write_status_json(paths.status, {"nproc": nproc, **status, "status": "interrupted"})
    if status.get("status") == "running":
        when = f"at step {status.get('step')} of {status.get('steps')}"
        again = f"rerun with --resume to continue from the latest checkpoint in {paths.checkpoints}"
    else:
        when = f"while the {nproc} training processes were starting, before any step"
        again = "rerun the same command to start again"
    return Interrupted(f"train: interrupted {when}; {again}")


@contextmanager
def shared_process_group(nproc: int, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Several one-process trainings in this process (``vocab train``'s stages) share one
    gloo/nccl group: DeepSpeed's comm layer keeps the first group it saw, so a destroyed and
    re-created one breaks the second run. With nproc > 1 each run has its own torchrun.
    DeepSpeed builds its CPU comm op here, so a killed build's lock is cleared first."""
    if nproc != 1:
        yield
        return
    clear_stale_locks(say)
    import torch
    import torch.distributed as dist

    from fusion.train.setup import single_rank_env

    single_rank_env()
    started = not dist.is_initialized()
    if started:
        import deepspeed

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        with watching_locks(say):
            deepspeed.init_distributed(dist_backend=backend, verbose=False)
    try:
        yield
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def _start_tag(start: StartPoint | None) -> list[str]:
    """The ranks' ``--start-tag``: the checkpoint chosen here, so that they neither verify it
    again nor choose differently (none when a finished run is returned at once)."""
    if start is None:
        return []
    return ["--start-tag", start.pointer["tag"] if start.pointer else "none"]


def _quiet(text: str) -> None:
    return None


def _status(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
