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
import tempfile
from pathlib import Path

from rich.console import Console

from harness.errors import HarnessError
from harness.specs import EvalSpec
from reports import rundir
from reports.rundir import Manifest
from runrecords.errors import Interrupted, UserError

RANK_MODULE = "harness.eval_rank"
ERRORS = "FUSEBENCH_EVAL_ERRORS"  # a folder: each rank's user error as rank-R.json


class RankError(UserError):
    """A rank's user error, raised again by the launcher with its exit code."""

    def __init__(self, message: str, exit_code: int, kind: str) -> None:
        super().__init__(message)
        self.exit_code, self.kind = exit_code, kind


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
    outcome is read back from the manifest rank 0 kept, and a rank's error is raised here
    as one line (the ranks and torchrun print none: ``ERRORS``, ``FAILURES``)."""
    from fusion.launch import Launched, run_ranks
    from fusion.torchrun import FAILURES

    run = spec.output
    payload = json.dumps({"spec": spec.model_dump(mode="json"), "pending": pending})
    console.print(f"evaluating on {spec.nproc} processes")
    with tempfile.TemporaryDirectory(prefix="fusebench-eval-") as scratch:
        env = {ERRORS: scratch, FAILURES: str(Path(scratch) / "torchrun.json")}
        try:
            launched = run_ranks(RANK_MODULE, [payload], nproc=spec.nproc, env=env)
        except KeyboardInterrupt:  # before the launcher passes signals on
            launched = Launched(code=130, interrupted=True)
        failure = None if launched.code == 0 else _failure(Path(scratch), spec.nproc)
    after = rundir.read_manifest(run)
    if failure is None and launched.code == 0 and after.status == "complete":
        return run
    if failure is None and (launched.interrupted or after.status == "interrupted"):
        if after.status == "running":  # stopped before rank 0 could record it
            after.status = "interrupted"
            rundir.write_end_status(run, after)
        raise Interrupted(
            f"interrupted; {len(after.completed)} task evaluation(s) are saved in {run}: "
            "rerun the same command to continue"
        )
    if failure is None:
        failure = HarnessError(
            f"the {spec.nproc} evaluation processes failed (exit code {launched.code})"
        )
    # Rank 0 may have recorded "interrupted" (torchrun stops the others when one fails).
    kind = failure.kind if isinstance(failure, RankError) else type(failure).__name__
    after.status, after.error = "failed", f"{kind}: {failure}"[:500]
    rundir.write_end_status(run, after)
    raise failure


def _failure(scratch: Path, nproc: int) -> UserError | None:
    """The error of the lowest rank that reported one (its one line and exit code); else,
    from torchrun's report, the rank that ended without one (a crash, a kill)."""
    reported = sorted(scratch.glob("rank-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    if reported:
        data = json.loads(reported[0].read_text(encoding="utf-8"))
        return RankError(data["message"], int(data["exit_code"]), str(data["type"]))
    report = scratch / "torchrun.json"
    if not report.is_file():
        return None
    failures = json.loads(report.read_text(encoding="utf-8"))
    ended = [
        f"rank {rank} "
        + (f"killed by {f['signal']}" if f["exitcode"] < 0 else f"exit code {f['exitcode']}")
        for rank, f in sorted(failures.items(), key=lambda item: int(item[0]))
        if f["exitcode"] != 0 and f["signal"] != "SIGTERM"  # SIGTERM: stopped by torchrun
    ] or ["a rank was stopped"]
    return HarnessError(
        f"the {nproc} evaluation processes failed: {', '.join(ended)}"
        " (a traceback above, if any, is that rank's)"
    )
