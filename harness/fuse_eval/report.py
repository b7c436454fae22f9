"""A fusion run's report under ``work_dir/report``, made by the reports package from the
evaluation run directories (nothing is recomputed here):

    compare.md, compare.json  first the claim: fused - clm-only per task and training seed,
                              pooled over seeds (forest plot and table); then the strength
                              matrix (every model on every task); then sections other modules
                              add (``extra_sections``); then clm-only vs base, fused vs base
                              (gated), fused vs clm-only per seed, and the machine that made it
    forest.svg                the claim's forest plot (compare.md links it)
    compare.html              the same page with its charts, self-contained
    model-card.md             the model-card table: base, clm-only, fused per shot count
    strengths.md              the leaderboard of every evaluated model (base, sources, ...)
    strength-check.md         the strength check before training (align/strength.json), also
                              a section of compare.md and compare.html
    contamination.md|json     the contamination check before extraction (written by
                              harness/fuse_eval/contamination.py), also a section of both

LogicKor, judged for base and fused only, is compared where both have it (fused vs base);
the comparisons with the control are restricted to the lm-eval tasks. Metrics kept out of the
page's tables (``TABLE_HIDDEN``: the perplexities, about 1e7 for tiny models and redundant with
bits per byte) stay in compare.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from fusion.layout import WorkDir
from harness.fuse_eval.headline import Outcome, headline_rows
from harness.fuse_eval.plan import BASE, SeedLabels
from reports import (
    claim,
    compare,
    contamination,
    forest,
    html,
    jsonio,
    leaderboard,
    machine,
    matrix,
    plots,
    render,
)
from reports import strength as strength_check
from reports.load import load_runs
from reports.seeds import Pooled, SeedComparison, pool
from reports.table import Loaded
from runrecords.atomic import write_text_atomic

ROUNDING = "round"
HTML_SAMPLES = 50  # documents per run, task and setting in the page's sample browser
TABLE_HIDDEN = frozenset({"byte_perplexity", "word_perplexity"})


@dataclass(frozen=True)
class Gate:
    max_drop: float | None
    max_drop_rel: float | None


@dataclass(frozen=True)
class Section:
    """A section another module adds to the page, after the strength matrix: Markdown for
    compare.md and an HTML fragment for compare.html (its own text escaped by its maker)."""

    markdown: str
    html: str


def extra_sections(layout: WorkDir) -> list[Section]:
    """The sections other modules contribute (each one line here)."""
    return [*_contamination(layout), *_strength_check(layout)]  # in the order they ran


def _contamination(layout: WorkDir) -> list[Section]:
    """The contamination check made before extraction (report/contamination.json)."""
    data = contamination.load(layout.contamination_json)
    if data is None:
        return []
    return [Section(contamination.markdown(data), contamination.html_section(data))]


def _strength_check(layout: WorkDir) -> list[Section]:
    """The strength check before training (align/strength.json), also written on its own to
    strength-check.md; nothing when the work_dir has none (aligned before the check)."""
    data = strength_check.load_strength(layout.align_strength)
    if data is None:
        return []
    text = strength_check.markdown(data)
    layout.report.mkdir(parents=True, exist_ok=True)
    write_text_atomic(layout.strength_check, text)
    return [Section(text, strength_check.html_section(data))]


def _relabel(loaded: Loaded, names: dict[str, str]) -> None:
    """Show runs under other labels (with several seeds, ``fused`` -> ``fused-seed-42``)."""
    names = {old: new for old, new in names.items() if old != new}
    if not names:
        return
    for frame in (loaded.scores, loaded.samples):
        for column in ("run", "model"):
            if column in frame:
                frame[column] = frame[column].map(lambda x: names.get(x, x))
    for info in loaded.runs:
        if info.label in names:
            info.label = names[info.label]
            info.model = names.get(info.model, info.model)


def for_tables(comparisons: list[compare.Comparison]) -> list[compare.Comparison]:
    """The comparisons as the page's tables show them: without ``TABLE_HIDDEN`` metrics."""
    return [
        replace(c, rows=[r for r in c.rows if r.metric not in TABLE_HIDDEN]) for c in comparisons
    ]


def write_report(
    layout: WorkDir,
    labels: list[str],
    lmeval_tasks: list[str],
    gate: Gate,
    notes: list[str],
    seeds: list[SeedLabels] | None = None,
    sections: list[Section] | None = None,
    eval_threads: int | None = None,
) -> Outcome:
    """Every report file (atomically) and the headline; ``labels``: every evaluated run's
    folder, in the strengths leaderboard's order; ``seeds``: each training seed's control and
    fused runs (default: one seed in ``clm-only`` and ``fused``). ``notes`` go under fused vs
    base."""
    seeds = seeds or [SeedLabels(0, "clm-only", "fused", "clm-only", "fused")]
    sections = sections or []
    loaded = load_runs([layout.eval_run(label) for label in labels])
    shown = {s.control: s.control_shown for s in seeds} | {s.fused: s.fused_shown for s in seeds}
    _relabel(loaded, shown)
    info = {r.label: r for r in loaded.runs}
    base = info[BASE]
    only = set(lmeval_tasks)
    control_vs_base, fused_vs_base, fused_vs_control = [], [], []
    for s in seeds:
        control, fused = info[s.control_shown], info[s.fused_shown]
        control_vs_base.append(compare.compare_pair(loaded, base, control, tasks=only))
        fused_vs_base.append(compare.compare_pair(loaded, base, fused))
        fused_vs_control.append(compare.compare_pair(loaded, control, fused, tasks=only))
    fused_vs_base[0].notes += notes
    pooled = pool(
        loaded, [SeedComparison(s.seed, c) for s, c in zip(seeds, fused_vs_control, strict=True)]
    )
    against_base = [*control_vs_base, *fused_vs_base]
    card = compare.model_card(against_base)
    failures = compare.gate(fused_vs_base, gate.max_drop, gate.max_drop_rel)
    gate_lines = render.gate_lines(failures, gate.max_drop, gate.max_drop_rel)
    every = [*against_base, *fused_vs_control]
    shown_models = _matrix_models(labels, seeds)
    strength = matrix.build(loaded.scores, shown_models)
    record = machine.record(eval_threads)
    machine_line = machine.line(record)

    layout.report.mkdir(parents=True, exist_ok=True)
    svg = forest.forest_svg(forest.panels(pooled))
    write_text_atomic(layout.forest_svg, svg)
    md_parts = [
        claim.markdown(pooled, layout.forest_svg.name, machine_line),
        matrix.markdown(strength, len(seeds)),
        *[s.markdown for s in sections],
        render.comparisons_md(for_tables(every), card, gate_lines),
    ]
    write_text_atomic(layout.compare_md, "\n".join(p.rstrip("\n") + "\n" for p in md_parts))
    data = json.loads(
        render.comparisons_json(every, card, failures, gate.max_drop, gate.max_drop_rel)
    )
    data["seeds"] = _seeds_json(pooled, seeds)
    data["strength_matrix"] = strength.to_json()
    data["machine"] = record
    write_text_atomic(layout.compare_json, jsonio.dumps_strict(data))
    boards = leaderboard.build(loaded.scores, ROUNDING)
    page = html.page(
        loaded,
        boards,
        ROUNDING,
        HTML_SAMPLES,
        for_tables(against_base),
        card,
        failures,
        gate_lines,
        more_comparisons=for_tables(fused_vs_control),
        claim=claim.view(pooled, plots.svg_data_uri(svg), machine_line),
        matrix=matrix.view(strength, len(seeds)),
        sections=[s.html for s in sections],
    )
    write_text_atomic(layout.compare_html, page)
    write_text_atomic(layout.model_card, _model_card(card))
    write_text_atomic(layout.strengths, _strengths(boards))
    return Outcome(
        rows=headline_rows(fused_vs_base[0], pooled),
        notes=list(notes),
        gate=gate_lines,
        failed=bool(failures),
        html=str(layout.compare_html),
    )


def _matrix_models(labels: list[str], seeds: list[SeedLabels]) -> list[tuple[str, list[str]]]:
    """Base and the sources as they are; clm-only and fused each one row over its seeds."""
    trained = {s.control for s in seeds} | {s.fused for s in seeds}
    out = [(label, [label]) for label in labels if label not in trained]
    out.append(("clm-only", [s.control_shown for s in seeds]))
    out.append(("fused", [s.fused_shown for s in seeds]))
    return out


def _seeds_json(pooled: Pooled, seeds: list[SeedLabels]) -> dict:
    return {
        "seeds": pooled.seeds,
        "runs": [
            {"seed": s.seed, "clm-only": s.control_shown, "fused": s.fused_shown} for s in seeds
        ],
        "pooled": [r.to_json() for r in pooled.rows],
        "notes": pooled.notes,
    }


def _model_card(card: compare.ModelCard | None) -> str:
    if card is None:
        return "No lm-eval task was compared.\n"
    table = render.md_table(["Dataset", *card.columns], render.model_card_rows(card))
    return f"## Model card\n\n{table}\n"


def _strengths(boards: list[leaderboard.Board]) -> str:
    """Every evaluated model side by side, a column per task: which source is good at what,
    and where the fused model landed among them."""
    intro = (
        "# Strengths: every evaluated model\n\n"
        "Base is the target before training, the sources are under their config names, "
        "clm-only is the target trained without the fusion term, fused with it.\n\n"
    )
    return intro + render.boards_md(boards, ROUNDING)
