"""Training the demo zoo's models in worker processes, one torch thread each.

Why one thread: a trained model's weights depend on the number of threads its matrix
products were split over (the floating-point sums are grouped differently), so a zoo trained
with the machine's default thread count would differ from one machine to the next. With one
thread per model, a seed gives the same weights whatever the machine's cores and however many
models train at once (measured: --jobs 1 and --jobs 2 give identical bytes, and so did a
build under load). Why processes: so that the one-thread rule costs little; on 2 cores two
single-threaded trainings side by side took about as long as the old two-threaded ones in a
row (the whole demo zoo: 4 min 35 s against 4 min 23 s).

A worker builds one model (tokenizer, training, ``save_pretrained`` into its directory,
atomically) and reports its steps through a queue; the parent draws the progress bars.
Workers are spawned (not forked): a forked copy of a parent that already ran torch can
deadlock in its thread pools. A failed worker stops the others; the models already built
stay built, so a rerun goes on from there.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion.errors import FusionError

if TYPE_CHECKING:
    from fusion.zoo import ZooSpec

THREADS = 1  # per model, always: the weights must not depend on the machine (above)
_POLL_SECONDS = 0.5

# Progress callback: (model name, step, loss); step 0 means "started".
OnStep = Callable[[str, int, float], None]


def _worker(spec: ZooSpec, target: Path, corpus: list[str], seed: int, messages: Any) -> None:
    """One model, built in this process; every outcome goes back as a message."""
    try:
        import torch

        torch.set_num_threads(THREADS)
        from fusion import zoo

        def on_step(step: int, loss: float) -> None:
            messages.put(("step", spec.name, step, loss))

        messages.put(("step", spec.name, 0, float("nan")))
        entry = zoo.build_one(spec, target, corpus, seed, on_step)
        messages.put(("done", spec.name, entry))
    except BaseException as exc:  # the parent decides; a worker never dies silently
        detail = str(exc) if isinstance(exc, FusionError) else traceback.format_exc(limit=3)
        messages.put(("error", spec.name, detail.strip()))


def build_in_workers(
    jobs: list[tuple[ZooSpec, Path]],
    corpus: list[str],
    seed: int,
    workers: int,
    on_step: OnStep | None = None,
) -> dict[str, dict[str, Any]]:
    """Build ``jobs`` (spec, directory) with at most ``workers`` at a time, longest training
    first; each model's zoo.json entry by name. Raises FusionError naming the model whose
    build failed, after stopping the others."""
    waiting = sorted(jobs, key=lambda job: -_steps(job[0]))
    if workers <= 1 or len(jobs) == 1:
        return _build_here(waiting, corpus, seed, on_step)
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    running: dict[str, Any] = {}
    entries: dict[str, dict[str, Any]] = {}
    try:
        while waiting or running:
            while waiting and len(running) < max(1, workers):
                spec, target = waiting.pop(0)
                process = context.Process(
                    target=_worker,
                    args=(spec, target, corpus, seed, messages),
                    name=f"zoo-{spec.name}",
                    daemon=True,
                )
                process.start()
                running[spec.name] = process
            _drain(messages, running, entries, on_step)
    finally:
        for process in running.values():
            process.terminate()
        for process in running.values():
            process.join()
        messages.close()
    return entries


def _build_here(
    jobs: list[tuple[ZooSpec, Path]], corpus: list[str], seed: int, on_step: OnStep | None
) -> dict[str, dict[str, Any]]:
    """One model at a time in this process, on one thread as in a worker (the same weights,
    without a worker's start-up cost); the caller's thread count is restored after."""
    import torch

    from fusion import zoo

    entries = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        for spec, target in jobs:

            def report(step: int, loss: float, name: str = spec.name) -> None:
                if on_step is not None:
                    on_step(name, step, loss)

            report(0, float("nan"))
            entries[spec.name] = zoo.build_one(spec, target, corpus, seed, report)
    finally:
        torch.set_num_threads(threads)
    return entries


def _steps(spec: ZooSpec) -> int:
    recipe = spec.training
    return 0 if recipe is None else recipe.steps + recipe.finetune_steps


def _drain(
    messages: Any,
    running: dict[str, Any],
    entries: dict[str, dict[str, Any]],
    on_step: OnStep | None,
) -> None:
    """Handle the messages that arrive within one poll; notice a worker that died without
    one (killed by the OOM killer, say)."""
    try:
        message = messages.get(timeout=_POLL_SECONDS)
    except queue_module.Empty:
        dead = [name for name, process in running.items() if not process.is_alive()]
        if not dead:
            return
        try:  # its last message may still be in the pipe
            message = messages.get(timeout=5)
        except queue_module.Empty:
            process = running.pop(dead[0])
            process.join()
            raise FusionError(
                f"zoo: building {dead[0]} stopped with exit code {process.exitcode} "
                "(out of memory?); rerun to continue, built models are kept"
            ) from None
    kind, name = message[0], message[1]
    if kind == "step":
        if on_step is not None:
            on_step(name, message[2], message[3])
    elif kind == "done":
        entries[name] = message[2]
        running.pop(name).join()
    else:
        running.pop(name).join()
        raise FusionError(f"zoo: building {name} failed: {message[2]}")
