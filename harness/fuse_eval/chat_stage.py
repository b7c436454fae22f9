"""``fuse chat`` with an ``evaluate`` section: fuse and merge (``fusion.pipeline.fuse_chat``),
then evaluate the pivot (``base``), each pair target (``pair-<source>``) and the merge
(``merged``) into ``work_dir/eval/<label>``, compare merged with the pivot (and with each pair
target) into ``work_dir/report/compare.{md,json}``, and gate merged against the pivot.

The chat template is on by default (``fusion.chat.ChatEvaluate``): FuseChat's models are chat
models. Task names and the chat settings are checked, and the pivot's template resolved, before
any training. The task plan and each ``EvalSpec`` are fuse run's (``harness.fuse_eval.plan``),
made from a view of the chat config as a fusion config, so both commands read the section alike.
Every evaluation resumes (``run_eval`` skips what its run holds); one made with other evaluate
settings is refused (redone with ``--overwrite``), and one of a pair target or merge that has
been made again since (other weights) is evaluated anew.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fusion import pipeline
from fusion.chat import ChatConfig, ChatEvaluate, pair_config
from fusion.config import FuseConfig
from fusion.layout import WorkDir
from fusion.pipeline import Reporter
from harness.errors import HarnessError
from harness.fuse_eval.headline import Outcome, Row
from harness.fuse_eval.plan import BASE, Plan, Subject, eval_spec, make_plan, unchanged_or_refused
from harness.fuse_eval.report import for_tables
from harness.fuse_eval.stage import evaluate_jobs, status_console
from harness.specs import EvalSpec
from runrecords.atomic import write_text_atomic
from runrecords.errors import Interrupted

MERGED = "merged"
PAIR = "pair-"


def fuse_view(chat: ChatConfig) -> FuseConfig:
    """The chat config as fuse run's planning reads it: the pivot as target, its evaluate
    section, no sources (pair targets are not fuse run's sources). Not validated again: only
    ``plan.make_plan`` and ``plan.eval_spec`` read it."""
    return FuseConfig.model_construct(
        work_dir=chat.work_dir,
        target=chat.pivot,
        sources=[],
        corpus=chat.corpus,
        evaluate=chat.evaluate,
        source_file=chat.source_file,
    )


def subjects(chat: ChatConfig, merged: Path) -> list[Subject]:
    """The pivot, each pair target (``evaluate.pairs``), then the merge."""
    section, pivot = chat.evaluate, chat.pivot
    assert section is not None
    out = [Subject(BASE, pivot.path, pivot.revision, pivot.trust_remote_code)]
    remote = pivot.trust_remote_code
    if section.pairs:
        from fusion.train.trainer import finished

        for source in chat.sources:
            final = finished(pair_config(chat, source))
            if final is not None:
                out.append(Subject(PAIR + source.name, str(final), trust_remote_code=remote))
    out.append(Subject(MERGED, str(merged), trust_remote_code=remote))
    return out


def check_pivot_template(chat: ChatConfig, plan: Plan) -> None:
    """A pivot without a chat template (or without the named one) is refused before any
    training: the pair targets and the merge carry the pivot's tokenizer."""
    from harness.chat_format import resolve
    from reports.rundir import ModelInfo

    section = chat.evaluate
    assert section is not None
    if not section.apply_chat_template:
        return
    spec = eval_spec(fuse_view(chat), plan, Subject(BASE, chat.pivot.path), chat.work_dir)
    model = ModelInfo(name_or_path=chat.pivot.path, revision=chat.pivot.revision, local=False)
    try:
        resolve(spec, model)
    except HarnessError as err:
        cause = str(err).split("; evaluate it without")[0]  # eval's advice names its option
        raise HarnessError(
            f"{chat.source_file}: field evaluate.apply_chat_template: {cause} "
            "(apply_chat_template: false evaluates without one)"
        ) from None


def _model_changed(run: Path, spec: EvalSpec) -> bool:
    """``run`` holds results of other weights than the model now at ``spec.model``."""
    from harness.models import resolve_model
    from reports import rundir
    from reports.errors import BadFile

    if not (run / rundir.MANIFEST).is_file():
        return False
    try:
        old = rundir.read_manifest(run)
    except BadFile:
        return False  # run_eval names the broken file
    return old.model.sha256 != resolve_model(spec.model).sha256


def _jobs(
    chat: ChatConfig, plan: Plan, merged: Path, *, overwrite: bool, report: Reporter
) -> list[tuple[str, EvalSpec]]:
    layout, view = WorkDir(chat.work_dir), fuse_view(chat)
    jobs = []
    for subject in subjects(chat, merged):
        out = layout.eval_run(subject.label)
        spec = eval_spec(view, plan, subject, out)
        changed = unchanged_or_refused(out, spec, overwrite)
        if not changed and subject.label != BASE and _model_changed(out, spec):
            changed = "the model was made again since"
        if changed:
            report.status(f"evaluate {subject.label}: {changed}: evaluated anew")
            shutil.rmtree(out)
        jobs.append((subject.model, spec))
    return jobs


def write_report(chat: ChatConfig, labels: list[str], plan: Plan, notes: list[str]) -> Outcome:
    """compare.md and compare.json under work_dir/report: merged vs base (gated), each pair
    target vs base, merged vs each pair target; returns the headline (merged vs base). Only
    merged vs base is gated."""
    from reports import compare, render
    from reports.load import load_runs

    section = chat.evaluate
    assert section is not None
    layout = WorkDir(chat.work_dir)
    loaded = load_runs([layout.eval_run(label) for label in labels])
    info = {r.label: r for r in loaded.runs}
    pairs = [label for label in labels if label.startswith(PAIR)]
    merged_vs_base = compare.compare_pair(loaded, info[BASE], info[MERGED])
    merged_vs_base.notes += notes
    against_base = [merged_vs_base]
    against_base += [compare.compare_pair(loaded, info[BASE], info[p]) for p in pairs]
    against_pairs = [compare.compare_pair(loaded, info[p], info[MERGED]) for p in pairs]
    every = [*against_base, *against_pairs]
    card = compare.model_card(against_base)
    failures = compare.gate([merged_vs_base], section.max_drop, section.max_drop_rel)
    gate = render.gate_lines(failures, section.max_drop, section.max_drop_rel)
    layout.report.mkdir(parents=True, exist_ok=True)
    title = f"# fuse chat: {MERGED} vs {BASE} (the pivot, {chat.pivot.name})\n\n"
    # as fuse run's page: the perplexities (redundant with bits per byte) in compare.json only
    shown = render.comparisons_md(for_tables(every), card, gate)
    write_text_atomic(layout.compare_md, title + shown)
    write_text_atomic(
        layout.compare_json,
        render.comparisons_json(every, card, failures, section.max_drop, section.max_drop_rel),
    )
    rows = [
        Row(
            r.task,
            r.metric,
            r.setting,
            r.base,
            r.other,
            None,
            r.diff,
            *_ends(r),
            r.higher_is_better,
        )
        for r in merged_vs_base.rows
        if r.primary
    ]
    return Outcome(rows, list(notes), gate, bool(failures), str(layout.compare_md))


def _ends(row: object) -> tuple[float | None, float | None]:
    boot = getattr(row, "bootstrap", None)
    return (boot.diff.low, boot.diff.high) if boot is not None else (None, None)


def lines(outcome: Outcome) -> list[str]:
    """The headline: per task and shot count, base / merged and merged - base [95% CI]."""
    from reports.render import metric_label

    out = ["task (metric, setting): base / merged; merged - base [95% CI]"]
    for r in outcome.rows:
        ci = f" [{r.low:+.4f}, {r.high:+.4f}]" if r.low is not None and r.high is not None else ""
        out.append(
            f"  {r.task} ({metric_label(r.metric, r.higher_is_better)}, {r.setting}-shot): "
            f"{r.base:.4f} / {r.fused:.4f}; merged - base {r.diff:+.4f}{ci}"
        )
    out += [f"note: {n}" for n in outcome.notes]
    out += outcome.gate
    out.append(f"comparison: {outcome.html}")
    return out


def evaluate_chat(
    chat: ChatConfig,
    *,
    nproc: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    report: Reporter | None = None,
) -> Outcome:
    """Fuse and merge, evaluate, compare, gate (``Outcome.failed``: the gate failed)."""
    report = report or Reporter()
    section: ChatEvaluate | None = chat.evaluate
    if section is None:
        raise ValueError("evaluate_chat needs a config with an evaluate section")
    plan = make_plan(fuse_view(chat))  # a task typo costs no training
    check_pivot_template(chat, plan)
    for name in plan.skipped:
        report.status(f"evaluate: task {name} is not in this task catalogue: skipped")
    merged = pipeline.fuse_chat(
        chat, nproc=nproc, overwrite=overwrite, progress=progress, report=report
    )
    try:
        jobs = _jobs(chat, plan, merged, overwrite=overwrite, report=report)
        evaluate_jobs(jobs, nproc, report, status_console(report))
        notes = [f"task {n} is not in this task catalogue: not evaluated" for n in plan.skipped]
        report.status(f"report: comparing {MERGED} with {BASE}")
        outcome = write_report(chat, [spec.label or "" for _, spec in jobs], plan, notes)
    except KeyboardInterrupt:
        raise Interrupted(
            "fuse chat: interrupted; finished pairs, merge and evaluations are kept: rerun to "
            "continue"
        ) from None
    report.output("report", WorkDir(chat.work_dir).report)
    return outcome
