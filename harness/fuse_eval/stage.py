"""``fuse run`` with an ``evaluate`` section: fuse -> CLM-only control -> evaluate -> compare
-> gate, every step resumable and skipped when done.

The training half is ``fusion.pipeline.fuse_with_control``; this half needs the harness
(lm-eval runs, LogicKor generation and judging) and the reports package, which ``fusion`` may
not import (tests/test_import_direction.py), so it lives here, and the CLI calls it.

A finished run leaves ``report/status.json``: a key of the settings (the config, process
count, the tasks this catalogue has, the judge) and a fingerprint of the evaluation run
directories (every file's size and mtime). When both still match and every output exists, a
rerun does nothing but return the recorded headline: no stage is started, no model loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from fusion import pipeline
from fusion.config import FuseConfig
from fusion.layout import WorkDir
from fusion.pipeline import Reporter, SeedModels, trained_seeds
from harness.fuse_eval import logickor
from harness.fuse_eval.contamination import check_corpus
from harness.fuse_eval.headline import Outcome
from harness.fuse_eval.plan import (
    BASE,
    CONTROL,
    FUSED,
    Plan,
    eval_spec,
    make_plan,
    seed_labels,
    subjects,
    unchanged_or_refused,
)
from harness.fuse_eval.report import Gate, extra_sections, write_report
from harness.specs import EvalSpec
from runrecords.atomic import write_json_atomic
from runrecords.errors import Interrupted


class _Lines(io.TextIOBase):
    """A file whose complete lines go to a callback: the runners' consoles, as status lines."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say, self._pending = say, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *complete, self._pending = (self._pending + text).split("\n")
        for line in complete:
            if line.strip():
                self._say(line.rstrip())
        return len(text)


def status_console(report: Reporter | Callable[[str], None]) -> Console:
    """A console for ``run_eval`` / ``run_generate`` / ``run_judge`` that reports instead of
    printing (plain text: no colours, no terminal): each line to ``report.status``, or to
    the callable given."""
    say = report.status if isinstance(report, Reporter) else report
    return Console(
        file=_Lines(say), force_terminal=False, no_color=True, highlight=False, width=200
    )


def settings_key(config: FuseConfig, nproc: int, plan: Plan, judge: Any) -> str:
    """What a finished run's outputs depend on (never the judge's key)."""
    dumped = config.model_dump(mode="json")
    if config.evaluate is not None and config.evaluate.seeds is None:
        # Absent seeds leave the key as it was before the field existed: a finished one-seed
        # run stays finished. Named seeds are part of the key.
        dumped["evaluate"].pop("seeds", None)
    data = {
        "config": dumped,
        "nproc": nproc,
        "tasks": plan.tasks,
        "judge": judge.identity() if judge is not None else None,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def inputs_fingerprint(runs: list[Path]) -> str:
    """Every file of the evaluation runs by name, size and mtime: an edited or added result
    makes the report stale."""
    digest = hashlib.sha256()
    for run in runs:
        for folder, dirs, files in os.walk(run):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder) / name
                stat = path.stat()
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _report_files(layout: WorkDir) -> list[Path]:
    return [
        layout.compare_md,
        layout.compare_json,
        layout.compare_html,
        layout.model_card,
        layout.strengths,
    ]


def _recorded(layout: WorkDir, key: str, runs: list[Path]) -> Outcome | None:
    """The recorded outcome when the report is current for ``key`` and the runs."""
    path = layout.report_status
    if not path.is_file() or not all(p.is_file() for p in _report_files(layout)):
        return None
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
        if status.get("key") != key or status.get("inputs") != inputs_fingerprint(runs):
            return None
        return Outcome.from_json(status["outcome"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: made again


def _labels(config: FuseConfig) -> list[str]:
    """Every evaluation run's folder under work_dir/eval: base, the sources, then each
    training seed's control and fused model."""
    assert config.evaluate is not None
    sources = [s.name for s in config.sources] if config.evaluate.sources else []
    trained = [label for s in seed_labels(config) for label in (s.control, s.fused)]
    return [BASE, *sources, *trained]


def _evaluate_models(
    config: FuseConfig,
    plan: Plan,
    trained: list[SeedModels],
    *,
    overwrite: bool,
    report: Reporter,
    console: Console,
    workers: int = 1,
) -> None:
    """``run_eval`` for every model into work_dir/eval/<label>: resumed, or skipped when done;
    a run made with other evaluate settings is refused (replaced with ``overwrite``). With
    ``workers`` > 1 on the CPU, that many models are evaluated at once (``_parallel``)."""
    layout = WorkDir(config.work_dir)
    jobs: list[tuple[str, EvalSpec]] = []
    for subject in subjects(config, trained):
        out = layout.eval_run(subject.label)
        spec = eval_spec(config, plan, subject, out)
        changed = unchanged_or_refused(out, spec, overwrite)
        if changed:
            report.status(f"evaluate {subject.label}: other settings ({changed}): evaluated anew")
            shutil.rmtree(out)
        jobs.append((subject.model, spec))
    evaluate_jobs(jobs, workers, report, console)


def evaluate_jobs(
    jobs: list[tuple[str, EvalSpec]], workers: int, report: Reporter, console: Console
) -> None:
    """Evaluate each (model, spec): vLLM one model per process, ``workers`` CPU models at a
    time when > 1, else one after another in this process (``fuse run`` and ``fuse chat``)."""
    from harness.evaluate import run_eval

    workers = min(workers, len(jobs))
    if any(spec.backend == "vllm" for _, spec in jobs):
        _each_in_own_process(jobs, report)
        return
    if workers > 1 and all(spec.options.device == "cpu" for _, spec in jobs):
        _parallel(jobs, workers, report)
        return
    for model, spec in jobs:
        report.status(f"evaluate {spec.label}: {model}")
        run_eval(spec, console)
        report.output(f"eval {spec.label}", spec.output)


def _parallel(jobs: list[tuple[str, EvalSpec]], workers: int, report: Reporter) -> None:
    """Evaluate ``workers`` models at a time in spawned processes, each with its share of the
    cores. Why: these models are too small for two threads to help one another (measured
    here: one model's eval takes 25 s on 2 threads, 29 s on 1), so two single-threaded
    evaluations finish in about the time of one. Results do not depend on the thread count
    (the same scores to the last digit, 1 or 2 threads). A failure in one evaluation stops
    the rest; finished ones are kept and a rerun resumes."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending = {}
        for model, spec in jobs:
            report.status(f"evaluate {spec.label}: {model}")
            pending[pool.submit(_evaluate_one, spec, threads)] = spec
        try:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # a worker's error, re-raised here as it was raised there
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        for spec in pending.values():
            report.output(f"eval {spec.label}", spec.output)


def _each_in_own_process(jobs: list[tuple[str, EvalSpec]], report: Reporter) -> None:
    """One model after another, each in a spawned process of its own that exits when done.
    Why: vLLM does not give its GPU memory back inside a process, so a second model (and a
    LogicKor ``vllm serve`` after the evaluations) would find the GPU full. UNTESTED WITH
    vLLM on the development machine (no GPU); the process handling is tested with ``hf``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    for model, spec in jobs:
        report.status(f"evaluate {spec.label}: {model} (a process of its own)")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            pool.submit(_evaluate_one, spec, os.cpu_count() or 1).result()
        report.output(f"eval {spec.label}", spec.output)


def _evaluate_one(spec: EvalSpec, threads: int) -> None:
    """One evaluation in a worker process: ``threads`` torch threads, no progress bars (two
    processes' bars would overwrite each other), status lines prefixed with the label."""
    import sys

    import torch

    from harness import logs

    logs.configure()  # a spawned process starts with the libraries' logging unconfigured
    logs.hide_progress_bars()
    torch.set_num_threads(threads)
    from harness.evaluate import run_eval

    prefix = f"  [{spec.label}] "
    run_eval(
        spec, status_console(lambda line: print(prefix + line.strip(), file=sys.stderr, flush=True))
    )


def _eval_threads(workers: int, jobs: int) -> int:
    """The torch threads each evaluation gets on the CPU (``_parallel``'s split)."""
    return max(1, (os.cpu_count() or 1) // max(1, min(workers, jobs)))


def _logickor(
    config: FuseConfig,
    fused_label: str,
    fused: Path,
    judge: logickor.Judge,
    *,
    progress: bool,
    report: Reporter,
) -> None:
    """Base and fused answer LogicKor into their evaluation runs and are judged there."""
    section, target, layout = config.evaluate, config.target, WorkDir(config.work_dir)
    assert section is not None
    for label, model in ((BASE, target.path), (fused_label, str(fused))):
        report.status(f"LogicKor {label}: answer ({section.logickor_strategy}) and judge")
        logickor.answer_and_judge(
            config,
            layout.eval_run(label),
            model,
            judge,
            trust_remote_code=target.trust_remote_code,
            quiet=not progress,
            console=status_console(report),
        )


def evaluate_fusion(
    config: FuseConfig,
    *,
    nproc: int = 1,
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = True,
    report: Reporter | None = None,
) -> Outcome:
    """Fuse and train (``fusion.pipeline.fuse_with_control``), evaluate every model, write
    the report, gate; returns the headline. ``Outcome.failed``: the gate failed."""
    report = report or Reporter()
    section = config.evaluate
    if section is None:
        raise ValueError("evaluate_fusion needs a config with an evaluate section")
    plan = make_plan(config)  # checked before any work: a typo costs no training
    judge = logickor.judge_from_env()
    if judge is not None:
        logickor.check_strategy(config)
    layout = WorkDir(config.work_dir)
    labels = _labels(config)
    runs = [layout.eval_run(label) for label in labels]
    key = settings_key(config, nproc, plan, judge)

    done = trained_seeds(config)
    if not overwrite and done is not None:
        recorded = _recorded(layout, key, runs)
        if recorded is not None:
            seeds = f"{len(done)} seeds, " if len(done) > 1 else ""
            report.status(
                f"fuse run: finished earlier ({seeds}training, control, {len(runs)} "
                f"evaluations, report): {layout.report}"
            )
            several = len(done) > 1
            for m in done:
                suffix = f" (seed {m.seed})" if several else ""
                report.output("model" + suffix, m.fused)
                report.output("control" + suffix, m.control)
            report.output("report", layout.report)
            return recorded

    for name in plan.skipped:
        report.status(f"evaluate: task {name} is not in this task catalogue: skipped")
    check_corpus(config, plan.expanded, judged=judge is not None, progress=progress, report=report)
    trained = pipeline.fuse_with_control(
        config, nproc=nproc, overwrite=overwrite, resume=resume, progress=progress, report=report
    )
    try:
        console = status_console(report)
        _evaluate_models(
            config,
            plan,
            trained,
            overwrite=overwrite,
            report=report,
            console=console,
            workers=nproc,
        )
        notes = [f"task {n} is not in this task catalogue: not evaluated" for n in plan.skipped]
        if judge is None:
            notes.append(logickor.NOT_JUDGED)
        else:
            # Several seeds: the first seed's fused model answers LogicKor (one judging).
            first = seed_labels(config)[0]
            fused = next(m.fused for m in trained if m.seed == first.seed)
            _logickor(config, first.fused, fused, judge, progress=progress, report=report)
        inputs = inputs_fingerprint(runs)  # the runs as the report reads them
        several = len(trained) > 1
        per_seed = f" ({len(trained)} seeds, pooled)" if several else ""
        report.status(f"report: comparing {BASE}, {CONTROL} and {FUSED}{per_seed}")
        gate = Gate(section.max_drop, section.max_drop_rel)
        outcome = write_report(
            layout,
            labels,
            plan.expanded,
            gate,
            notes,
            seeds=seed_labels(config),
            sections=extra_sections(layout),
            eval_threads=_eval_threads(nproc, len(runs)),
        )
        write_json_atomic(
            layout.report_status, {"key": key, "inputs": inputs, "outcome": outcome.to_json()}
        )
    except KeyboardInterrupt:
        raise Interrupted(
            "fuse run: interrupted; finished training and evaluations are kept: rerun to continue"
        ) from None
    report.output("report", layout.report)
    return outcome
