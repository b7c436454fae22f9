"""The strength matrix of a fusion run: every model (base, each source, clm-only, fused) on
every task, one primary metric per task and setting, the best of each column marked.

It answers what fusion is for: does each source bring a strength the base lacks, and does the
fused model keep it where the control does not? With several training seeds the control and
the fused model are shown as the mean over their seeds; each seed's value is in compare.json.
LogicKor (judged for base and fused only) has its own table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reports.compare import setting_label
from reports.leaderboard import configured, primary_metric
from reports.render import LOWER, MISSING, md_table
from reports.table import lower_is_better


@dataclass(frozen=True)
class Column:
    task: str
    setting: int
    metric: str
    higher_is_better: bool

    @property
    def header(self) -> str:
        arrow = "" if self.higher_is_better else f" {LOWER}"
        return f"{self.task} ({self.metric}{arrow}, {setting_label(self.setting)})"


@dataclass
class MatrixRow:
    model: str
    values: list[float | None]
    per_seed: dict[str, list[float | None]] = field(default_factory=dict)  # run -> values


@dataclass
class Matrix:
    columns: list[Column]
    rows: list[MatrixRow]
    best: list[int | None]  # per column: the row holding its best value

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [
                {
                    "task": c.task,
                    "num_fewshot": c.setting,
                    "metric": c.metric,
                    "higher_is_better": c.higher_is_better,
                }
                for c in self.columns
            ],
            "rows": [
                {"model": r.model, "values": r.values, "per_seed": r.per_seed or None}
                for r in self.rows
            ],
            "best": [self.rows[i].model if i is not None else None for i in self.best],
        }


def build(scores: pd.DataFrame, models: list[tuple[str, list[str]]]) -> Matrix:
    """``models``: (row name, the runs it stands for): one run, or one per training seed
    (their mean is shown). Columns: every lm-eval task any of them has, per shot count."""
    runs = [run for _, group in models for run in group]
    frame = scores[
        scores["run"].isin(runs) & scores["value"].notna() & (scores["kind"] == "lm-eval")
    ]
    columns = []
    listed = configured(frame)
    for task in dict.fromkeys(frame["task"]):
        rows = frame[frame["task"] == task]
        metric = primary_metric(task, set(rows["metric"]), listed.get(str(task), set()))
        if metric is None:
            continue
        chosen = rows[rows["metric"] == metric]
        higher = not any(lower_is_better(h) for h in chosen["higher_is_better"])
        for shots in sorted({int(s) for s in chosen["num_fewshot"]}):
            columns.append(Column(task, shots, metric, higher))
    value = {
        (r.run, r.task, int(r.num_fewshot), r.metric): float(r.value) for r in frame.itertuples()
    }
    out = []
    for name, group in models:
        per_run = {
            run: [value.get((run, c.task, c.setting, c.metric)) for c in columns] for run in group
        }
        means = []
        for index in range(len(columns)):
            got = [v[index] for v in per_run.values() if v[index] is not None]
            means.append(float(np.mean(got)) if len(got) == len(group) else None)
        out.append(MatrixRow(name, means, per_run if len(group) > 1 else {}))
    return Matrix(columns, out, [_best(out, i, c) for i, c in enumerate(columns)])


def _best(rows: list[MatrixRow], index: int, column: Column) -> int | None:
    found = [(r.values[index], i) for i, r in enumerate(rows) if r.values[index] is not None]
    if not found:
        return None
    pick = max if column.higher_is_better else min
    return pick(found, key=lambda vi: vi[0])[1]


def cells(matrix: Matrix, places: int = 4) -> list[list[tuple[str, bool]]]:
    """Per row: (model, False), then (value text, is the column's best: ties all marked)."""
    out = []
    for row in matrix.rows:
        texts = [(row.model, False)]
        for j, v in enumerate(row.values):
            best = matrix.best[j]
            top = None if best is None else matrix.rows[best].values[j]
            texts.append((MISSING if v is None else f"{v:.{places}f}", v is not None and v == top))
        out.append(texts)
    return out


def note(matrix: Matrix, seeds: int) -> str:
    text = f"Primary metric per task; best of each column in bold. {LOWER}: lower is better."
    if seeds > 1:
        text += (
            f" clm-only and fused: mean over {seeds} training seeds (each seed's values in "
            "compare.json, strength_matrix)."
        )
    return text


def markdown(matrix: Matrix, seeds: int) -> str:
    if not matrix.columns:
        return "## Strength matrix\n\nNo lm-eval task was evaluated.\n"
    rows = [[f"**{t}**" if best else t for t, best in row] for row in cells(matrix)]
    for row in rows:
        row[0] = row[0].strip("*")
    table = md_table(["Model", *[c.header for c in matrix.columns]], rows)
    return f"## Strength matrix\n\n{table}\n\n{note(matrix, seeds)}\n"


def view(matrix: Matrix, seeds: int) -> dict[str, Any]:
    """What the HTML template shows."""
    return {
        "header": ["Model", *[c.header for c in matrix.columns]],
        "rows": [
            [
                {"text": t, "cls": ("num best" if best else "num") if k else ""}
                for k, (t, best) in enumerate(row)
            ]
            for row in cells(matrix)
        ],
        "note": note(matrix, seeds),
    }
