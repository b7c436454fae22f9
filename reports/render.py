"""Markdown, CSV and JSON for leaderboards and comparisons (HTML lives in ``reports.html``).

Markdown is what users paste into model cards and CI logs; CSV and JSON are for programs.
Leaderboard values are already rounded (``reports.leaderboard``); comparison CSV and JSON keep
full precision, their Markdown shows four decimals (two for LogicKor's 0-10 scores).
"""

from __future__ import annotations

import csv
import io
import math
from decimal import Decimal
from typing import Any

from reports import jsonio
from reports.compare import Comparison, Failure, MetricRow, ModelCard, setting_label
from reports.leaderboard import AVERAGE, Board
from reports.rounding import LMEVAL_PLACES, LOGICKOR_PLACES, fmt

MISSING = "—"
_TITLES = {"lm-eval": "lm-eval tasks", "logickor": "LogicKor"}


def md_cell(text: Any) -> str:
    """Table cells stay on one line and never split on a ``|`` inside a name."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = [
        "| " + " | ".join(md_cell(h) for h in header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- leaderboards


def _setting_header(board: Board) -> str:
    return "Shots" if board.setting == "num_fewshot" else "Strategy"


def board_note(board: Board, rounding: str) -> str:
    how = "rounded half-to-even" if rounding == "round" else "truncated"
    note = f"Scores {how} to {board.places} decimals; {MISSING} not evaluated."
    if any(v is not None and v.is_nan() for r in board.rows for v in r.scores.values()):
        note += " NaN: evaluated, but the results record NaN."
    if board.kind == "lm-eval":
        listed = ", ".join(
            f"{t} {m}" + (" (lower is better)" if t in board.lower_is_better else "")
            for t, m in board.metrics.items()
        )
        note += f" Metric per task: {listed} (f1: macro-F1)."
        if not board.lower_is_better:
            note += " Average: mean of the task columns."
        elif board.ascending:
            note += f" Average: mean of the task columns; {LOWER} lower is better, lowest first."
        else:
            left_out = ", ".join(t for t in board.metrics if t in board.lower_is_better)
            note += (
                f" Average: mean of the higher-is-better columns; {left_out} ({LOWER} lower "
                "is better, another scale) is left out of it."
            )
    else:
        note += (
            " Category: mean of its single- and multi-turn means; Overall = (싱글턴 + 멀티턴) / 2."
        )
        note += excluded_note(board)
    return note


def excluded_note(board: Board) -> str:
    """Judgments left out of the means because the judge gave no valid score."""
    parts = [
        f"{row.model} {row.setting}: "
        + ", ".join(f"{n} {status}" for status, n in row.excluded.items())
        for row in board.rows
        if row.excluded
    ]
    if not parts:
        return ""
    return (
        " Judgments without a score, left out of the means (not counted as 0): "
        + "; ".join(parts)
        + "."
    )


def boards_md(boards: list[Board], rounding: str) -> str:
    parts = []
    for board in boards:
        header = ["Model", _setting_header(board), *[board.headers[c] for c in board.columns]]
        rows = [
            [row.model, row.setting, *[fmt(row.scores[c], board.places) for c in board.columns]]
            for row in board.rows
        ]
        parts.append(
            f"## {_TITLES[board.kind]}\n\n{md_table(header, rows)}\n\n{board_note(board, rounding)}"
        )
    return "\n\n".join(parts) + "\n"


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def boards_json(boards: list[Board]) -> str:
    rows = [
        {
            "model": row.model,
            board.setting: row.setting,
            "scores": {c: _number(row.scores[c]) for c in board.columns},
            **({"excluded": row.excluded} if row.excluded else {}),
        }
        for board in boards
        for row in board.rows
    ]
    return jsonio.dumps_strict({"rows": rows}, reason=_board_reason)


def _board_reason(path: str, value: float) -> str:
    """Why a leaderboard score is null: only a NaN in the results makes one (nothing else)."""
    if path == f"scores.{AVERAGE}":
        return "NaN: the average takes in a score the results record as NaN"
    return "NaN: evaluated, but the results record NaN (no number came out)"


def boards_csv(boards: list[Board]) -> str:
    columns = list(dict.fromkeys(c for board in boards for c in board.columns))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "num_fewshot", "strategy", *columns])
    for board in boards:
        for row in board.rows:
            shots = row.setting if board.setting == "num_fewshot" else ""
            strategy = row.setting if board.setting == "strategy" else ""
            cells = [
                fmt(row.scores[c], board.places, "") if c in board.columns else "" for c in columns
            ]
            writer.writerow([row.model, shots, strategy, *cells])
    return out.getvalue()


# ---------------------------------------------------------------- comparisons


def places(row: MetricRow) -> int:
    return LOGICKOR_PLACES if row.kind == "logickor" else LMEVAL_PLACES


LOWER = "↓"  # marks a lower-is-better metric (bits_per_byte, perplexities)


def metric_label(metric: str, higher_is_better: bool) -> str:
    return metric if higher_is_better else f"{metric} {LOWER}"


def p_value(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def comparison_cells(row: MetricRow) -> list[str]:
    """Setting, metric, base, other, difference, interval, p-value, documents."""
    k = places(row)
    ci = row.bootstrap.diff if row.bootstrap else None
    return [
        row.task,
        setting_label(row.setting),
        metric_label(row.metric, row.higher_is_better) + (" *" if row.primary else ""),
        f"{row.base:.{k}f}",
        f"{row.other:.{k}f}",
        f"{row.diff:+.{k}f}",
        f"[{ci.low:+.{k}f}, {ci.high:+.{k}f}]" if ci else (row.note or MISSING),
        p_value(row.mcnemar.p_value) if row.mcnemar else MISSING,
        str(row.n) if row.n is not None else MISSING,
    ]


def comparison_header(c: Comparison) -> list[str]:
    return [
        "Task",
        "Setting",
        "Metric",
        c.base.label,
        c.other.label,
        "Δ",
        "95% CI of Δ",
        "McNemar p",
        "Docs",
    ]


def model_card_dataset(card: ModelCard, task: str) -> str:
    """The task, and for a lower-is-better primary metric which metric and its direction."""
    metric = card.lower_is_better.get(task)
    return task if metric is None else f"{task} ({metric} {LOWER})"


def model_card_rows(card: ModelCard) -> list[list[str]]:
    return [
        [
            model_card_dataset(card, task),
            *(MISSING if v is None else f"{v:.{LMEVAL_PLACES}f}" for v in values),
        ]
        for task, values in card.rows
    ]


def legend(c: Comparison) -> str:
    """What the table's marks and columns mean (Markdown and HTML say the same)."""
    resamples = next((r.bootstrap.resamples for r in c.rows if r.bootstrap), None)
    text = (
        f"* primary metric (gated). Δ = {c.other.label} − {c.base.label}; 95% CI: paired "
        f"bootstrap over the documents both runs scored ({resamples or 0:,} resamples)"
    )
    text += "; McNemar: exact, two-sided, for 0/1 metrics."
    if any(not r.higher_is_better for r in c.rows):
        text += f" {LOWER} lower is better: a positive Δ is a loss, and the gate counts a rise."
    return text


def gate_lines(
    failures: list[Failure], max_drop: float | None, max_drop_rel: float | None
) -> list[str]:
    if max_drop is None and max_drop_rel is None:
        return []
    limits = " / ".join(
        x
        for x in (
            f"{max_drop:g} absolute" if max_drop is not None else "",
            f"{max_drop_rel:.2%} relative" if max_drop_rel is not None else "",
        )
        if x
    )
    if not failures:
        return [f"PASS: no primary score dropped by more than {limits}"]
    tasks = sorted({f.task for f in failures})
    lines = [f"FAIL: {len(tasks)} task(s) dropped by more than {limits}: {', '.join(tasks)}"]
    for f in failures:
        k = LOGICKOR_PLACES if isinstance(f.setting, str) else LMEVAL_PLACES
        direction = "" if f.higher_is_better else ", lower is better"
        lines.append(
            f"- {f.run}: {f.task} {setting_label(f.setting)} {f.metric} "
            f"{f.base:.{k}f} -> {f.other:.{k}f} ({f.reason}{direction})"
        )
    return lines


def comparisons_md(comparisons: list[Comparison], card: ModelCard | None, gate: list[str]) -> str:
    parts = []
    for c in comparisons:
        rows = [comparison_cells(r) for r in c.rows]
        text = f"## {c.other.label} vs {c.base.label}\n\n{md_table(comparison_header(c), rows)}\n\n"
        text += "\\" + legend(c)
        text += "".join(f"\n- note: {n}" for n in c.notes)
        parts.append(text)
    if card and len(card.columns) > 2:  # several shot counts (or runs): the model-card table
        parts.append(
            "## Model card\n\n" + md_table(["Dataset", *card.columns], model_card_rows(card))
        )
    if gate:
        parts.append("## Regression gate\n\n" + "\n".join(gate))
    return "\n\n".join(parts) + "\n"


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _row_json(row: MetricRow) -> dict[str, Any]:
    setting = "strategy" if row.kind == "logickor" else "num_fewshot"
    b = row.bootstrap
    return {
        "task": row.task,
        setting: row.setting,
        "metric": row.metric,
        "primary": row.primary,
        "higher_is_better": row.higher_is_better,
        "base": row.base,
        "other": row.other,
        "diff": row.diff,
        "n": row.n,
        "ci95": [b.diff.low, b.diff.high] if b else None,
        "base_ci95": [b.base.low, b.base.high] if b else None,
        "other_ci95": [b.other.low, b.other.high] if b else None,
        "mcnemar_p": row.mcnemar.p_value if row.mcnemar else None,
        "discordant": {"base_only": row.mcnemar.base_only, "other_only": row.mcnemar.other_only}
        if row.mcnemar
        else None,
        "note": row.note,
    }


def comparisons_json(
    comparisons: list[Comparison],
    card: ModelCard | None,
    failures: list[Failure],
    max_drop: float | None,
    max_drop_rel: float | None,
) -> str:
    data = {
        "base": comparisons[0].base.label,
        "comparisons": [
            {
                "run": c.other.label,
                "base": c.base.label,
                "notes": c.notes,
                "rows": [_row_json(r) for r in c.rows],
            }
            for c in comparisons
        ],
        "model_card": {
            "columns": ["Dataset", *card.columns],
            "rows": [[t, *[_finite(v) for v in values]] for t, values in card.rows],
            "lower_is_better": card.lower_is_better,
        }
        if card
        else None,
        "gate": None
        if max_drop is None and max_drop_rel is None
        else {
            "max_drop": max_drop,
            "max_drop_rel": max_drop_rel,
            "passed": not failures,
            "failures": [f.__dict__ for f in failures],
        },
    }
    return jsonio.dumps_strict(data)


def comparisons_csv(comparisons: list[Comparison]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "base_run",
            "run",
            "task",
            "num_fewshot",
            "strategy",
            "metric",
            "primary",
            "base",
            "other",
            "diff",
            "ci95_low",
            "ci95_high",
            "mcnemar_p",
            "base_only",
            "other_only",
            "n",
            "note",
            "higher_is_better",
        ]
    )
    for c in comparisons:
        for r in c.rows:
            b, m = r.bootstrap, r.mcnemar
            writer.writerow(
                [
                    c.base.label,
                    c.other.label,
                    r.task,
                    "" if r.kind == "logickor" else r.setting,
                    r.setting if r.kind == "logickor" else "",
                    r.metric,
                    r.primary,
                    repr(r.base),
                    repr(r.other),
                    repr(r.diff),
                    repr(b.diff.low) if b else "",
                    repr(b.diff.high) if b else "",
                    repr(m.p_value) if m else "",
                    m.base_only if m else "",
                    m.other_only if m else "",
                    "" if r.n is None else r.n,
                    r.note or "",
                    r.higher_is_better,
                ]
            )
    return out.getvalue()
