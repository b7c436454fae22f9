"""``python -m fusion.rank harness.eval_rank PAYLOAD``: one rank of ``fusebench eval --nproc``.

Started by ``harness.eval_launch.run_ranked`` with the spec and the pending (task, shots)
list as JSON. Rank 0 evaluates and records into the run directory as a one-process run does;
the other ranks run the same evaluations, score their share of the forward passes
(``harness.eval_ranks``) and write nothing. A user error prints one line, as the CLI does.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
from pathlib import Path

from rich.console import Console

from runrecords.atomic import write_json_atomic
from runrecords.errors import Interrupted, UserError

_stopping = False


def _stop(signum: int, frame: object) -> None:
    """SIGTERM (the launcher stopping, or a scheduler) takes Ctrl-C's path: rank 0 records
    the run as interrupted, then the rank exits."""
    raise KeyboardInterrupt


def _stop_after_rank_0(signum: int, frame: object) -> None:
    """SIGTERM on the other ranks is noted, not acted on: were they to exit at once, rank 0
    could meet their closed connections in a collective before its own signal is handled,
    and record a failure, or be cut off while recording. They have nothing to record; they
    end when rank 0 has left the group (their next collective fails) or torchrun kills them."""
    global _stopping
    _stopping = True


def evaluate(payload: str) -> None:
    from harness import eval_ranks, logs
    from harness.evaluate import (
        _evaluate_one,
        _foreign,
        _quiet_git_hash,
        load_model,
        run_pending,
    )
    from harness.specs import EvalSpec
    from reports import rundir
    from tasks import catalog

    data = json.loads(payload)
    spec = EvalSpec.model_validate(data["spec"])
    pending = [(str(task), int(shots)) for task, shots in data["pending"]]
    logs.configure(False)
    ranks = eval_ranks.join()
    if ranks.rank != 0 or os.environ.get("TQDM_DISABLE") == "1":  # one set of bars, or none
        logs.hide_progress_bars()
    try:
        options = spec.options.model_copy(
            update={
                "device": eval_ranks.rank_device(spec.options.device or "cpu", ranks.local_rank)
            }
        )
        spec = spec.model_copy(update={"options": options})
        include = tuple(str(p) for p in spec.include_path)
        infos = catalog.resolve(spec.tasks, include)
        manifest = rundir.read_manifest(spec.output)
        if ranks.rank == 0:
            run_pending(spec, manifest, pending, infos, manifest.model, Console(stderr=True))
            return
        lm = load_model(spec, manifest.model)
        import lm_eval.evaluator

        lm_eval.evaluator.get_git_commit_hash = _quiet_git_hash
        own = catalog.task_manager() if any(infos[t].own for t, _ in pending) else None
        for task, shots in pending:
            manager = own if infos[task].own else _foreign(include)
            _evaluate_one(lm, task, shots, spec, manager, None)
    finally:
        eval_ranks.leave()


def _report(err: UserError, rank: str) -> None:
    """A user error goes to the launcher, which prints the lowest rank's as the one line
    (every rank would print the same one); without a launcher folder, printed here."""
    from harness.eval_launch import ERRORS

    folder = os.environ.get(ERRORS)
    if not folder:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return
    record = {"message": str(err), "exit_code": err.exit_code, "type": type(err).__name__}
    write_json_atomic(Path(folder) / f"rank-{rank}.json", record)


def main() -> int:
    rank = os.environ.get("RANK", "0")  # before join() hides it
    signal.signal(signal.SIGTERM, _stop if rank == "0" else _stop_after_rank_0)
    if rank != "0":
        signal.signal(signal.SIGINT, _stop_after_rank_0)
    try:
        evaluate(sys.argv[1])
    except (KeyboardInterrupt, Interrupted):  # rank 0 recorded it; the launcher says it
        return 130
    except UserError as err:
        _report(err, rank)
        return err.exit_code
    except Exception:
        if _stopping:  # rank 0 left the group after the stop: no error of this rank's
            return 130
        raise
    return 0


def _exit(code: int) -> None:
    """Exit without the interpreter's teardown: with torch, transformers and lm-eval loaded
    it takes seconds (3.5 s measured on two cores) for a process whose work is on disk and
    whose group is closed. Exit handlers still run, and the streams are flushed."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
