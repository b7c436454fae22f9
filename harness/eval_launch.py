"""``fusebench eval --nproc N``: the launching side (checks, torchrun, how the ranks ended).

The command that launches holds the run directory's lock (``fusebench eval``) and has opened
the run (manifest, what is pending) before any rank starts; the ranks take no lock and open
nothing: rank 0 evaluates the pending list it is given and records each result as one
process would (``harness.evaluate.run_pending``), the other ranks score their share
(``harness.eval_ranks``). Ranks start through the project's one launcher
(``fusion.launch.run_ranks``): SIGTERM / Ctrl-C passed on, no rank outlives this process.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from harness.errors import HarnessError
from harness.specs import EvalSpec
from reports import rundir
from reports.rundir import Manifest
from runrecords.errors import Interrupted

RANK_MODULE = "harness.eval_rank"


def check_nproc(spec: EvalSpec) -> None:
    """What ``--nproc`` cannot do, refused in one line before anything is loaded."""
    n = spec.nproc
    if n < 1:
        raise HarnessError(f"--nproc {n}: expected at least 1 process")
    if n == 1:
        return
    if spec.backend == "vllm":
        raise HarnessError(
            f"--nproc {n} does not apply to --backend vllm: vLLM spreads the work itself; "
            "use --tensor-parallel-size (GPUs per model) and --data-parallel-size (replicas)"
        )
    if spec.backend != "hf":
        raise HarnessError(
            f"--nproc {n} needs --backend hf (hf-lm-eval, lm-eval's reference model, runs "
            "in one process)"
        )
    if spec.cache_dir is not None:
        raise HarnessError(
            f"--nproc {n} with --cache-dir: the response cache belongs to one process; "
            "drop one of the two"
        )
    device = spec.options.device or "cpu"
    if device.startswith("cuda"):
        if device != "cuda":
            raise HarnessError(
                f"--device {device} names one GPU; with --nproc {n} use --device cuda "
                "(rank i runs on cuda:i)"
            )
        import torch

        found = torch.cuda.device_count()
        if found < n:
            raise HarnessError(f"--nproc {n}: one GPU per process, but {found} are visible")


def run_ranked(
    spec: EvalSpec, manifest: Manifest, pending: list[tuple[str, int]], console: Console
) -> Path:
    """Evaluate ``pending`` on ``spec.nproc`` ranks into the run ``run_eval`` opened; the
    outcome is read back from the manifest rank 0 kept."""
    from fusion.launch import Launched, run_ranks

    run = spec.output
    payload = json.dumps({"spec": spec.model_dump(mode="json"), "pending": pending})
    console.print(f"evaluating on {spec.nproc} processes")
    try:
        launched = run_ranks(RANK_MODULE, [payload], nproc=spec.nproc)
    except KeyboardInterrupt:  # before the launcher passes signals on
        launched = Launched(code=130, interrupted=True)
    after = rundir.read_manifest(run)
    if launched.code == 0 and after.status == "complete":
        return run
    if launched.interrupted or after.status == "interrupted":
        if after.status == "running":  # stopped before rank 0 could record it
            after.status = "interrupted"
            rundir.write_end_status(run, after)
        raise Interrupted(
            f"interrupted; {len(after.completed)} task evaluation(s) are saved in {run}: "
            "rerun the same command to continue"
        )
    message = (
        f"the {spec.nproc} evaluation processes failed (exit code {launched.code}); "
        "the failing rank's error is printed above"
    )
    if after.status in ("running", "complete"):  # a rank died without recording it
        after.status, after.error = "failed", after.error or message
        rundir.write_end_status(run, after)
    raise HarnessError(message)
