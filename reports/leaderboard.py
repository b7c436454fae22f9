"""Leaderboards from the tidy table: one row per model and setting, one column per score.

Two boards, because their scales and settings differ:

- lm-eval: a row per (model, shot count), a column per task holding its primary metric
  (acc; macro-F1 for korunsmile; bits_per_byte for ko_bpb; as the task catalogue defines),
  and ``average``, the mean of the higher-is-better columns (missing when any of those is
  missing: a partial average would rank unlike with like). A group's aggregate (kmmlu, from a
  run directory's manifest) is a column too, left out of the average: its tasks are in it. Lower-is-better columns (bits per
  byte, perplexities: another scale, the other direction) stay out of it; a board of those
  alone averages them and ranks lowest first;
- LogicKor: a row per (model, strategy), the six category columns, ``single_turn``,
  ``multi_turn`` and ``overall`` (which is LogicKor's average).

Rows are sorted best first by average / overall; rows without one come last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cache

import numpy as np
import pandas as pd

from reports import logickor
from reports.rounding import LMEVAL_PLACES, LOGICKOR_PLACES, Rounding, exact, quantize
from reports.table import lower_is_better

AVERAGE = "average"
NAN = Decimal("NaN")  # a metric the results record as NaN: shown as NaN, never as missing


@dataclass
class Row:
    model: str
    setting: int | str  # shots or strategy
    run: str
    scores: dict[str, Decimal | None]  # column -> rounded value, None when missing
    key: Fraction | None = None  # unrounded sort key (average / overall)
    excluded: dict[str, int] = field(default_factory=dict)  # LogicKor: status -> judgments


@dataclass
class Board:
    kind: str  # "lm-eval" or "logickor"
    setting: str  # "num_fewshot" or "strategy"
    columns: list[str]  # score columns (JSON keys)
    headers: dict[str, str]  # column -> Markdown / HTML header
    places: int
    rows: list[Row] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)  # lm-eval: task -> metric shown
    lower_is_better: set[str] = field(default_factory=set)  # columns where lower is better
    averaged: list[str] = field(default_factory=list)  # the columns ``average`` is taken over
    ascending: bool = False  # rows sorted lowest average first (only lower-is-better columns)


@cache
def _catalogue_metrics() -> dict[str, str]:
    from tasks import catalog
    from tasks.errors import TaskDataError

    try:
        return {name: info.metric for name, info in catalog.all_tasks().items()}
    except (ImportError, OSError, KeyError, TaskDataError):  # fall back to the heuristic
        return {}


def configured(scores: pd.DataFrame) -> dict[str, set[str]]:
    """task -> the metrics the results' task configs list first (``primary`` rows)."""
    if "primary" not in scores:
        return {}
    rows = scores[scores["primary"].map(lambda v: v is True or v is np.True_).astype(bool)]
    return {str(t): set(g["metric"]) for t, g in rows.groupby("task", sort=False)}


def primary_metric(task: str, available: set[str], listed: set[str] = frozenset()) -> str | None:
    """The task catalogue's metric for fusebench tasks; for others the metric their config
    lists first (``listed``, from the results: an lm-eval task's metric_list[0], so a metric
    fusebench has never seen is a primary like any), else acc, then acc_norm, then the first
    metric (results without configs)."""
    known = _catalogue_metrics().get(task)
    if known in available:
        return known
    for metric in sorted(listed & available, key=lambda m: ("," in m, m)):
        return metric
    for metric in ("acc", "acc_norm", "f1", "exact_match"):
        if metric in available:
            return metric
    return sorted(available)[0] if available else None


def _label_models(scores: pd.DataFrame, setting: str) -> dict[str, str]:
    """run -> model label; runs of the same model at the same setting get the run appended."""
    pairs = scores[["run", "model", setting]].drop_duplicates()
    clashes = pairs.groupby(["model", setting])["run"].nunique()
    clashing = {model for (model, _), count in clashes.items() if count > 1}
    return {
        run: f"{model} [{run}]" if model in clashing else model
        for run, model in pairs[["run", "model"]].drop_duplicates().itertuples(index=False)
    }


def _sort(rows: list[Row], ascending: bool = False) -> list[Row]:
    sign = 1 if ascending else -1
    return sorted(rows, key=lambda r: (r.key is None, sign * (r.key or 0), r.model, str(r.setting)))


def _lower_is_better(scores: pd.DataFrame, metrics: dict[str, str]) -> set[str]:
    """Tasks whose shown metric the results record as lower-is-better (bits_per_byte)."""
    return {
        str(row.task)
        for row in scores.itertuples()
        if metrics.get(row.task) == row.metric and lower_is_better(row.higher_is_better)
    }


def _group_columns(scores: pd.DataFrame) -> set[str]:
    """Columns holding a group's aggregate (kmmlu): its tasks are columns too, so the
    average leaves it out."""
    if "group" not in scores:
        return set()
    return {str(t) for t in scores.loc[scores["group"].eq(True), "task"]}


def lmeval_board(scores: pd.DataFrame, rounding: Rounding) -> Board | None:
    scores = scores[scores["kind"] == "lm-eval"]
    if scores.empty:
        return None
    metrics = {}
    listed = configured(scores)
    for task, group in scores.groupby("task", sort=False):
        metric = primary_metric(task, set(group["metric"]), listed.get(str(task), set()))
        if metric is not None:
            metrics[task] = metric
    order = list(_catalogue_metrics())
    lower = _lower_is_better(scores, metrics)
    group_columns = _group_columns(scores)
    # Catalogue order, then groups' aggregates, lower-is-better columns (not in the
    # average) after the others.
    tasks = sorted(
        metrics,
        key=lambda t: (
            t in lower,
            t in group_columns,
            t not in order,
            order.index(t) if t in order else 0,
            t,
        ),
    )
    members = [t for t in tasks if t not in group_columns]  # a group's tasks count once
    averaged = [t for t in members if t not in lower] or members
    board = Board(
        "lm-eval",
        "num_fewshot",
        [*tasks, AVERAGE],
        {t: f"{t} ↓" if t in lower else t for t in tasks},
        LMEVAL_PLACES,
        metrics={t: metrics[t] for t in tasks},
        lower_is_better=lower,
        averaged=averaged,
        ascending=all(t in lower for t in averaged),
    )
    board.headers[AVERAGE] = "Average"
    labels = _label_models(scores, "num_fewshot")
    for (run, shots), group in scores.groupby(["run", "num_fewshot"], sort=False):
        values = {
            row.task: row.value for row in group.itertuples() if metrics.get(row.task) == row.metric
        }
        nan = {t for t in tasks if t in values and math.isnan(values[t])}
        exact_values = {t: exact(values[t]) for t in tasks if t in values and t not in nan}
        average = (
            sum((exact_values[t] for t in averaged), Fraction(0)) / len(averaged)
            if all(t in exact_values for t in averaged)
            else None
        )
        cells = {t: quantize(v, LMEVAL_PLACES, rounding) for t, v in exact_values.items()}
        cells = {t: NAN if t in nan else cells.get(t) for t in tasks}
        cells[AVERAGE] = None if average is None else quantize(average, LMEVAL_PLACES, rounding)
        if average is None and any(t in nan for t in averaged):
            cells[AVERAGE] = NAN  # the mean of a NaN is NaN, not "not evaluated"
        board.rows.append(Row(labels[run], int(shots), run, cells, average))
    board.rows = _sort(board.rows, board.ascending)
    return board


def logickor_board(scores: pd.DataFrame, rounding: Rounding) -> Board | None:
    scores = scores[scores["kind"] == "logickor"]
    if scores.empty:
        return None
    metrics = list(dict.fromkeys(scores["metric"]))
    categories = [
        m
        for m in metrics
        if m not in (logickor.SINGLE, logickor.MULTI, logickor.OVERALL, *logickor.COUNT_METRICS)
    ]
    columns = logickor.columns(categories)
    board = Board(
        "logickor",
        "strategy",
        columns,
        {c: logickor.short_name(c) for c in columns},
        LOGICKOR_PLACES,
    )
    labels = _label_models(scores, "strategy")
    for (run, strategy), group in scores.groupby(["run", "strategy"], sort=False):
        values = {
            row.metric: row.exact if row.exact is not None else row.value
            for row in group.itertuples()
        }
        cells = {
            c: quantize(values[c], LOGICKOR_PLACES, rounding) if c in values else None
            for c in columns
        }
        key = values.get(logickor.OVERALL)
        excluded = {
            status: int(values[metric])
            for status, metric in logickor.EXCLUDED.items()
            if values.get(metric)
        }
        board.rows.append(
            Row(
                labels[run],
                str(strategy),
                run,
                cells,
                None if key is None else exact(key),
                excluded,
            )
        )
    board.rows = _sort(board.rows)
    return board


def build(scores: pd.DataFrame, rounding: Rounding = "round") -> list[Board]:
    """The leaderboards the table holds data for (lm-eval first, then LogicKor)."""
    return [b for b in (lmeval_board(scores, rounding), logickor_board(scores, rounding)) if b]
