"""The self-contained HTML report: leaderboards, comparisons, charts and a sample browser.

One file that opens offline: inline CSS, charts as data-URI SVG images, no script and a
Content-Security-Policy that forbids loading anything. The template is rendered by Jinja2 with
autoescaping on, so every string from a run (model outputs, judge messages, prompts, model
names) reaches the page as text; the only markup is the template's own.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reports import logickor, plots, render, samples
from reports.compare import Comparison, Failure, ModelCard, setting_label
from reports.leaderboard import Board
from reports.rounding import fmt
from reports.stats import Interval
from reports.table import Loaded

TEMPLATES = Path(__file__).resolve().parent / "templates"
_BARS_MAX_ROWS = 8  # more LogicKor rows than this read better as a heatmap
# A lone surrogate (real generations hold them; JSON files keep them escaped) has no UTF-8
# form: the page shows U+FFFD in its place, the files keep the text as it is.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every {{ value }} is HTML-escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _cell(text: Any, cls: str = "") -> dict[str, str]:
    text = str(text)
    return {"text": text, "cls": "missing" if text == render.MISSING else cls}


def board_view(board: Board, rounding: str) -> dict[str, Any]:
    header = [
        "Model",
        "Shots" if board.setting == "num_fewshot" else "Strategy",
        *[board.headers[c] for c in board.columns],
    ]
    rows = [
        [
            _cell(r.model),
            _cell(r.setting),
            *[_cell(fmt(r.scores[c], board.places), "num") for c in board.columns],
        ]
        for r in board.rows
    ]
    title = "LogicKor" if board.kind == "logickor" else "lm-eval tasks"
    return {
        "title": title,
        "header": header,
        "rows": rows,
        "note": render.board_note(board, rounding),
    }


def logickor_charts(board: Board) -> list[dict[str, str]]:
    """Per-category scores: grouped bars for a few rows, a heatmap per strategy for many."""
    categories = [c for c in board.columns if c not in logickor.SHORT]
    if len(board.rows) <= _BARS_MAX_ROWS:
        series = [
            plots.Series(
                f"{r.model} · {r.setting}",
                [float(r.scores[c]) if r.scores[c] is not None else None for c in categories],
            )
            for r in board.rows
        ]
        title = "LogicKor per category"
        return [
            {
                "title": title,
                "uri": plots.grouped_bars(title, categories, series, "score (0-10)", ylim=(0, 10)),
            }
        ]
    charts = []
    columns = board.columns
    for strategy in dict.fromkeys(r.setting for r in board.rows):
        rows = [r for r in board.rows if r.setting == strategy]
        title = f"LogicKor per category · {strategy}"
        values = [
            [float(r.scores[c]) if r.scores[c] is not None else None for c in columns] for r in rows
        ]
        uri = plots.heatmap(
            title,
            [r.model for r in rows],
            [logickor.short_name(c) for c in columns],
            values,
            vmax=10,
        )
        charts.append({"title": title, "uri": uri})
    return charts


def _delta(row, who: str | None = None) -> str:
    """The paired difference and its interval; ``who`` names the run when several are drawn
    (otherwise the lines above a group would not say which run each is)."""
    k = render.places(row)
    ci = row.bootstrap.diff if row.bootstrap else None
    text = (f"{who}: " if who else "") + f"Δ {row.diff:+.{k}f}"
    return text + (f"\n[{ci.low:+.{k}f}, {ci.high:+.{k}f}]" if ci else "")


def comparison_charts(comparisons: list[Comparison]) -> list[dict[str, str]]:
    """Per task (primary metric) and per LogicKor strategy: base and fused side by side with
    each run's own 95% interval, and the paired difference with its interval written above."""
    charts = []
    # Every comparison's rows: a fusion report judges LogicKor for some runs only.
    rows = [r for c in comparisons for r in c.rows]
    primary = [
        (r.task, r.metric, r.higher_is_better) for r in rows if r.primary and r.kind == "lm-eval"
    ]
    for task, metric, higher in dict.fromkeys(primary):
        groups = sorted({r.setting for r in rows if (r.task, r.metric) == (task, metric)})
        series = _series(
            comparisons, lambda r, t=task, m=metric: (r.task, r.metric) == (t, m), groups
        )
        notes = [
            "\n".join(
                _delta(r, c.other.label if len(comparisons) > 1 else None)
                for c in comparisons
                for r in c.rows
                if (r.task, r.metric, r.setting) == (task, metric, g)
            )
            for g in groups
        ]
        label = render.metric_label(metric, higher)
        title = f"{task} ({label})"
        # Proportions share a 0-1 axis; bits per byte and perplexities get their own scale.
        values = [v for one in series for v in one.values if v is not None]
        ylim = (0, 1.15) if higher and all(0 <= v <= 1 for v in values) else None
        charts.append(
            {
                "title": title,
                "uri": plots.grouped_bars(
                    title, [setting_label(g) for g in groups], series, label, notes, ylim=ylim
                ),
            }
        )
    for strategy in dict.fromkeys(r.setting for r in rows if r.kind == "logickor"):
        columns = list(
            dict.fromkeys(r.metric for r in rows if r.kind == "logickor" and r.setting == strategy)
        )
        series = _series(
            comparisons,
            lambda r, s=strategy: r.kind == "logickor" and r.setting == s,
            columns,
            by="metric",
        )
        title = f"LogicKor · {strategy}"
        charts.append(
            {
                "title": title,
                "uri": plots.grouped_bars(
                    title,
                    [logickor.short_name(c) for c in columns],
                    series,
                    "score (0-10)",
                    ylim=(0, 10.5),
                ),
            }
        )
    return charts


def _series(comparisons: list[Comparison], keep, groups: list, by: str = "setting"):
    def pick(c: Comparison, g: Any):
        return next((r for r in c.rows if keep(r) and getattr(r, by) == g), None)

    def ci(row, which: str) -> Interval | None:
        return getattr(row.bootstrap, which) if row is not None and row.bootstrap else None

    # The base's values from the first comparison that has each group (all share the base).
    base_rows = [next((r for c in comparisons if (r := pick(c, g))), None) for g in groups]
    out = [
        plots.Series(
            comparisons[0].base.label,
            [r.base if r else None for r in base_rows],
            [ci(r, "base") for r in base_rows],
        )
    ]
    for c in comparisons:
        rows = [pick(c, g) for g in groups]
        if not any(rows):
            continue  # this run has nothing in the chart (LogicKor not judged for it)
        out.append(
            plots.Series(
                c.other.label,
                [r.other if r else None for r in rows],
                [ci(r, "other") for r in rows],
            )
        )
    return out


def comparison_view(c: Comparison) -> dict[str, Any]:
    rows = []
    for r in c.rows:
        cells = render.comparison_cells(r)
        # Green for better, red for worse: a rise of bits per byte is red.
        diff_cls = "num up" if r.loss < 0 else "num down" if r.loss > 0 else "num"
        classes = ["", "", "", "num", "num", diff_cls, "num", "num", "num"]
        rows.append([_cell(text, cls) for text, cls in zip(cells, classes, strict=True)])
    return {
        "title": f"{c.other.label} vs {c.base.label}",
        "header": render.comparison_header(c),
        "rows": rows,
        "notes": c.notes,
        "legend": render.legend(c),
    }


def page(
    loaded: Loaded,
    boards: list[Board],
    rounding: str,
    max_samples: int = 50,
    comparisons: list[Comparison] | None = None,
    card: ModelCard | None = None,
    failures: list[Failure] | None = None,
    gate_lines: list[str] | None = None,
    more_comparisons: list[Comparison] | None = None,
    pairwise: dict[str, Any] | None = None,
    pairwise_gate: dict[str, Any] | None = None,
    compliance: dict[str, Any] | None = None,
    agreement: list[dict[str, Any]] | None = None,
    claim: dict[str, Any] | None = None,
    matrix: dict[str, Any] | None = None,
    sections: list[str] | None = None,
) -> str:
    """The whole report as one HTML string. ``more_comparisons`` (against another base than
    the charts' common one) are shown as tables only; ``pairwise`` is
    ``reports.pairwise_html.view``'s (``pairwise_gate``: passed, lines), ``compliance`` ``reports.language.view``'s, ``agreement``
    ``reports.agreement.views``'. A fusion report opens with ``claim``
    (``reports.claim.view``: the forest plot and its table), then ``matrix``
    (``reports.matrix.view``), then ``sections``: HTML fragments other modules made (each
    escapes its own text), inserted as they are."""
    runs = ", ".join(r.label for r in loaded.runs)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    context = {
        "title": "fusebench comparison" if comparisons or pairwise else "fusebench report",
        "subtitle": (
            f"{len(loaded.runs)} run(s): {runs} · generated {when}"
            if loaded.runs or not pairwise
            else f"pairwise judgments · generated {when}"
        ),
        "skipped": loaded.skipped,
        "boards": [board_view(b, rounding) for b in boards],
        "logickor_charts": [c for b in boards if b.kind == "logickor" for c in logickor_charts(b)],
        "comparisons": [
            comparison_view(c) for c in [*(comparisons or []), *(more_comparisons or [])]
        ],
        "comparison_charts": comparison_charts(comparisons) if comparisons else [],
        "model_card": {"header": ["Dataset", *card.columns], "rows": render.model_card_rows(card)}
        if card
        else None,
        "gate": {"passed": not failures, "lines": gate_lines} if gate_lines else None,
        "sample_groups": samples.groups(loaded.samples, max_samples),
        "pairwise": pairwise,
        "pairwise_gate": pairwise_gate,
        "compliance": compliance,
        "agreement": agreement or [],
        "claim": claim,
        "matrix": matrix,
        "sections": sections or [],
    }
    return _SURROGATE.sub("\ufffd", _environment().get_template("report.html.j2").render(**context))
