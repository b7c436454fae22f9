"""LogicKor judged files: validation, per-question rows and the published aggregates.

A judged file is ``<org>/<model>/<strategy>.jsonl``, one question per line: id, category,
questions, outputs, references, and query_single / query_multi {judge_message, judge_score}.
LogicKor's conventions (its ``score.py`` and leaderboard):

- a category's score is the mean of its single-turn mean and its multi-turn mean;
- single_turn and multi_turn are the means over all questions; overall = (single + multi) / 2.

Files judged by fusebench also carry a ``status`` per judgment. A judgment whose status is
``unparsable`` or ``error`` has ``judge_score`` null: it is left out of every mean (never
counted as 0) and counted instead (``judgments_unparsable`` / ``judgments_error`` score rows,
shown under the leaderboard). LogicKor's published files have no status and load as before.

Means are computed exactly (``Fraction``) so that rounding and truncation to two decimals
never trip over binary floats (see ``reports.rounding``).
"""

from __future__ import annotations

import hashlib
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

from reports.errors import BadFile
from reports.jsonio import iter_jsonl
from reports.rounding import exact
from tasks.logickor import QUESTION_FIELDS, row_problem

TASK = "logickor"
CATEGORIES = (
    "추론(Reasoning)",
    "수학(Math)",
    "글쓰기(Writing)",
    "코딩(Coding)",
    "이해(Understanding)",
    "문법(Grammar)",
)
SINGLE, MULTI, OVERALL = "single_turn", "multi_turn", "overall"
TURNS = {"query_single": SINGLE, "query_multi": MULTI}
# Markdown headers of LogicKor's own tables; JSON keeps the full names above.
SHORT = {SINGLE: "싱글턴", MULTI: "멀티턴", OVERALL: "Overall"}
SCORE_RANGE = (0, 10)
# Judgments without a score, by fusebench status -> the metric that counts them.
EXCLUDED = {"unparsable": "judgments_unparsable", "error": "judgments_error"}
COUNT_METRICS = frozenset(EXCLUDED.values())


def short_name(column: str) -> str:
    """``추론(Reasoning)`` -> ``추론``; the turn and overall columns by their Korean labels."""
    return SHORT.get(column) or column.split("(", 1)[0].strip() or column


def columns(categories: list[str]) -> list[str]:
    """Leaderboard columns: the six categories in LogicKor's order, any others after them."""
    known = [c for c in CATEGORIES if c in categories]
    return known + sorted(set(categories) - set(CATEGORIES)) + [SINGLE, MULTI, OVERALL]


def _score(row: dict, key: str, path: Path, number: int) -> float | None:
    """The judgment's score; None for a fusebench judgment recorded without one."""
    judged = row.get(key)
    if not isinstance(judged, dict):
        raise BadFile(
            path,
            f"line {number}: not judged (no {key}); LogicKor judged files "
            "carry query_single and query_multi",
        )
    score = judged.get("judge_score")
    if score is None and judged.get("status") in EXCLUDED:
        return None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        status = judged.get("status")
        extra = f", status {status!r}" if status else ""
        raise BadFile(path, f"line {number}: {key}.judge_score is {score!r}, not a number{extra}")
    low, high = SCORE_RANGE
    if not low <= score <= high:
        raise BadFile(path, f"line {number}: {key}.judge_score {score} is outside {low}-{high}")
    return float(score)


def read_judged(path: Path) -> list[dict[str, Any]]:
    """The rows of a judged file, checked: one line naming the file and line otherwise."""
    rows: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for number, row in iter_jsonl(path):
        if row_problem(row, QUESTION_FIELDS) is not None:
            raise BadFile(
                path, f"line {number}: not a LogicKor row (needs id, category, questions, outputs)"
            )
        if row.get("id") in seen:
            raise BadFile(path, f"line {number}: id {row.get('id')!r} appears twice")
        seen.add(row.get("id"))
        if not isinstance(row["category"], str):
            raise BadFile(path, f"line {number}: category is not a string")
        for key in TURNS:
            _score(row, key, path, number)
        rows.append(row)
    if not rows:
        raise BadFile(path, "empty: no LogicKor rows")
    return rows


def doc_hash(row: dict) -> str:
    """Identifies a question by its text: pairing two runs' rows by id checks it."""
    payload = json.dumps([row.get("category"), row.get("questions")], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _value(row: dict, key: str) -> Any:
    return row[key].get("judge_score")


def excluded_counts(rows: list[dict]) -> dict[str, int]:
    """status -> judgments left out of the means (unparsable, error)."""
    counts = dict.fromkeys(EXCLUDED, 0)
    for row in rows:
        for key in TURNS:
            if _value(row, key) is None and row[key].get("status") in EXCLUDED:
                counts[row[key]["status"]] += 1
    return counts


def sample_rows(rows: list[dict], run: str, model: str, strategy: str) -> list[dict[str, Any]]:
    """Two rows per question: its single-turn and its multi-turn judge score (a judgment
    without a score has no row: it has nothing to pair or resample)."""
    out = []
    for row in rows:
        for key, metric in TURNS.items():
            if _value(row, key) is None:
                continue
            out.append(
                {
                    "run": run,
                    "model": model,
                    "kind": "logickor",
                    "task": TASK,
                    "num_fewshot": None,
                    "strategy": strategy,
                    "doc_id": row.get("id"),
                    "doc_hash": doc_hash(row),
                    "category": row["category"],
                    "metric": metric,
                    "value": float(row[key]["judge_score"]),
                    "gold": None,
                    "pred": None,
                    "weight": None,
                    "record": row,
                }
            )
    return out


def _mean(values: list[Fraction]) -> Fraction:
    return sum(values, Fraction(0)) / len(values)


def _stderr(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    mu = sum(values) / n
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1) / n)


def aggregate(rows: list[dict]) -> dict[str, tuple[Fraction, int, float]]:
    """column -> (exact value, questions, standard error of the per-question mean).

    Judgments without a score are left out of their turn's means; a column none of whose
    judgments has a score is absent (not 0). ``n`` counts questions with both turns scored
    for categories and overall, and the turn's scored questions for single / multi.
    """
    # A score written 2.3 in the file is 23/10, not the binary float nearest to it.
    single = {
        row["id"]: exact(_value(row, "query_single"))
        for row in rows
        if _value(row, "query_single") is not None
    }
    multi = {
        row["id"]: exact(_value(row, "query_multi"))
        for row in rows
        if _value(row, "query_multi") is not None
    }
    by_category: dict[str, list[Any]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row["id"])
    out: dict[str, tuple[Fraction, int, float]] = {}
    for category, ids in by_category.items():
        s_ids, m_ids = [i for i in ids if i in single], [i for i in ids if i in multi]
        if not s_ids or not m_ids:
            continue
        value = (_mean([single[i] for i in s_ids]) + _mean([multi[i] for i in m_ids])) / 2
        both = [i for i in ids if i in single and i in multi]
        per_question = [float(single[i] + multi[i]) / 2 for i in both]
        out[category] = (value, len(both), _stderr(per_question))
    if single:
        mean_single = _mean(list(single.values()))
        out[SINGLE] = (mean_single, len(single), _stderr([float(v) for v in single.values()]))
    if multi:
        mean_multi = _mean(list(multi.values()))
        out[MULTI] = (mean_multi, len(multi), _stderr([float(v) for v in multi.values()]))
    if single and multi:
        both = [i for i in single if i in multi]
        overall = [float(single[i] + multi[i]) / 2 for i in both]
        out[OVERALL] = ((mean_single + mean_multi) / 2, len(both), _stderr(overall))
    return out


def score_rows(rows: list[dict], run: str, model: str, strategy: str) -> list[dict[str, Any]]:
    return [
        {
            "run": run,
            "model": model,
            "kind": "logickor",
            "task": TASK,
            "metric": column,
            "num_fewshot": None,
            "strategy": strategy,
            "value": float(value),
            "stderr": stderr,
            "n": n,
            "version": None,
            "exact": value,
            "higher_is_better": True,
            "aggregation": "mean",
        }
        for column, (value, n, stderr) in aggregate(rows).items()
    ] + [
        {
            "run": run,
            "model": model,
            "kind": "logickor",
            "task": TASK,
            "metric": EXCLUDED[status],
            "num_fewshot": None,
            "strategy": strategy,
            "value": float(count),
            "stderr": math.nan,
            "n": count,
            "version": None,
            "exact": None,
            "higher_is_better": None,
            "aggregation": None,
        }
        for status, count in excluded_counts(rows).items()
        if count
    ]
