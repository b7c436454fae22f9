"""A fusion run's report under ``work_dir/report``, made by the reports package from the
evaluation run directories (nothing is recomputed here):

    compare.md, compare.json  clm-only vs base, fused vs base (gated), fused vs clm-only
    compare.html              the comparison page with its charts (``compare --format html``)
    model-card.md             the model-card table: base, clm-only, fused per shot count
    strengths.md              the leaderboard of every evaluated model (base, sources, ...)
    strength-check.md         the strength check before training (align/strength.json), also
                              a section of compare.md and compare.html

LogicKor, judged for base and fused only, is compared where both have it (fused vs base);
the comparisons with the control are restricted to the lm-eval tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fusion.layout import WorkDir
from harness.fuse_eval.headline import Outcome, headline_rows
from harness.fuse_eval.plan import BASE, CONTROL, FUSED
from reports import compare, html, leaderboard, render
from reports import strength as strength_check
from reports.load import load, load_runs
from runrecords.atomic import write_text_atomic

ROUNDING = "round"
HTML_SAMPLES = 50  # documents per run, task and setting in the page's sample browser


@dataclass(frozen=True)
class Gate:
    max_drop: float | None
    max_drop_rel: float | None


def write_report(
    layout: WorkDir,
    labels: list[str],
    lmeval_tasks: list[str],
    gate: Gate,
    notes: list[str],
) -> Outcome:
    """Every report file (atomically) and the headline; ``labels``: every evaluated run,
    in the strengths leaderboard's order. ``notes`` go under fused vs base."""
    loaded = load_runs([layout.eval_run(label) for label in (BASE, CONTROL, FUSED)])
    base, control, fused = loaded.runs
    only = set(lmeval_tasks)
    control_vs_base = compare.compare_pair(loaded, base, control, tasks=only)
    fused_vs_base = compare.compare_pair(loaded, base, fused)
    fused_vs_base.notes += notes
    fused_vs_control = compare.compare_pair(loaded, control, fused, tasks=only)
    against_base = [control_vs_base, fused_vs_base]
    card = compare.model_card(against_base)
    failures = compare.gate([fused_vs_base], gate.max_drop, gate.max_drop_rel)
    gate_lines = render.gate_lines(failures, gate.max_drop, gate.max_drop_rel)
    every = [*against_base, fused_vs_control]

    layout.report.mkdir(parents=True, exist_ok=True)
    # Strength check (issue 22): its own file, plus one section in compare.md and compare.html.
    strength_md, strength_html = _strength_check(layout)
    write_text_atomic(
        layout.compare_md, render.comparisons_md(every, card, gate_lines) + strength_md
    )
    write_text_atomic(
        layout.compare_json,
        render.comparisons_json(every, card, failures, gate.max_drop, gate.max_drop_rel),
    )
    boards = leaderboard.build(loaded.scores, ROUNDING)
    page = html.page(
        loaded,
        boards,
        ROUNDING,
        HTML_SAMPLES,
        against_base,
        card,
        failures,
        gate_lines,
        more_comparisons=[fused_vs_control],
        extra_sections=strength_html,
    )
    write_text_atomic(layout.compare_html, page)
    write_text_atomic(layout.model_card, _model_card(card))
    write_text_atomic(layout.strengths, _strengths([layout.eval_run(x) for x in labels]))
    return Outcome(
        rows=headline_rows(fused_vs_base, fused_vs_control),
        notes=list(notes),
        gate=gate_lines,
        failed=bool(failures),
        html=str(layout.compare_html),
    )


def _strength_check(layout: WorkDir) -> tuple[str, list[str]]:
    """The strength check's Markdown (written to strength-check.md, appended to compare.md)
    and HTML sections; nothing when the work_dir has none (aligned before the check)."""
    data = strength_check.load_strength(layout.align_strength)
    if data is None:
        return "", []
    text = strength_check.markdown(data)
    write_text_atomic(layout.strength_check, text)
    return "\n" + text, [strength_check.html_section(data)]


def _model_card(card: compare.ModelCard | None) -> str:
    if card is None:
        return "No lm-eval task was compared.\n"
    table = render.md_table(["Dataset", *card.columns], render.model_card_rows(card))
    return f"## Model card\n\n{table}\n"


def _strengths(runs: list[Path]) -> str:
    """Every evaluated model side by side, a column per task: which source is good at what,
    and where the fused model landed among them."""
    loaded = load(runs)
    intro = (
        "# Strengths: every evaluated model\n\n"
        "Base is the target before training, the sources are under their config names, "
        "clm-only is the target trained without the fusion term, fused with it.\n\n"
    )
    return intro + render.boards_md(leaderboard.build(loaded.scores, ROUNDING), ROUNDING)
