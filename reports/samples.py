"""What the sample browser shows for each document: plain strings, never markup.

The HTML template escapes every one of these strings; this module only decides what to show
(the question, the model's answers, references, judge messages and scores for LogicKor; the
prompt, the scored choices with their log-likelihoods and the prediction for lm-eval).

Each text is cut at ``MAX_CHARS`` with the count of characters left out: one runaway
generation (20 million characters, tried) would otherwise make a 63 MB page. The samples
files keep every character.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from reports import logickor


@dataclass
class Turn:
    question: str
    answer: str
    reference: str | None
    judge_score: str
    judge_message: str


@dataclass
class Choice:
    text: str
    loglikelihood: str
    gold: bool
    predicted: bool


@dataclass
class SampleView:
    doc_id: str
    title: str
    scores: list[tuple[str, str]]
    turns: list[Turn] = field(default_factory=list)
    prompt: str | None = None
    choices: list[Choice] = field(default_factory=list)
    response: str | None = None
    doc: str | None = None


@dataclass
class SampleGroup:
    run: str
    model: str
    task: str
    setting: str
    total: int
    shown: list[SampleView]


MAX_CHARS = 10_000  # per text shown in the browser


def capped(text: str, limit: int = MAX_CHARS) -> str:
    """``text``, or its first ``limit`` characters and how many were left out."""
    if len(text) <= limit:
        return text
    left_out = len(text) - limit
    return f"{text[:limit]}\n… [{left_out:,} more characters left out here; the file has them all]"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return capped(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _label(value: Any) -> str:
    """Class labels that pandas turned into floats (1.0) read as the integers they were."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _text(value)


def _at(items: Any, i: int) -> Any:
    return items[i] if isinstance(items, list) and i < len(items) else None


def logickor_view(record: dict) -> SampleView:
    turns = []
    for i, key in enumerate(logickor.TURNS):
        judged = record.get(key) or {}
        turns.append(
            Turn(
                _text(_at(record.get("questions"), i)),
                _text(_at(record.get("outputs"), i)),
                _text(_at(record.get("references"), i)) or None,
                _text(judged.get("judge_score")),
                _text(judged.get("judge_message")),
            )
        )
    scores = [
        (logickor.short_name(logickor.TURNS[k]), t.judge_score)
        for k, t in zip(logickor.TURNS, turns, strict=True)
    ]
    return SampleView(_text(record.get("id")), _text(record.get("category")), scores, turns)


def _arguments(record: dict) -> list[tuple[Any, Any]]:
    """(context, continuation) pairs from either layout: fusebench keeps lm-eval's nested
    lists, lm-eval's CLI writes {"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}."""
    args = record.get("arguments")
    if isinstance(args, dict):
        args = [[v.get("arg_0"), v.get("arg_1")] for v in args.values() if isinstance(v, dict)]
    if not isinstance(args, list):
        return []
    return [(a[0], a[1] if len(a) > 1 else None) for a in args if isinstance(a, list) and a]


def lmeval_view(record: dict, scores: list[tuple[str, str]]) -> SampleView:
    args = _arguments(record)
    view = SampleView(
        _text(record.get("doc_id")),
        "",
        scores,
        doc=capped(json.dumps(record.get("doc"), ensure_ascii=False, indent=1)),
    )
    if args:
        view.prompt = _text(args[0][0])
    responses = record.get("filtered_resps") or []
    logliks = [
        r[0] if isinstance(r, list) and r and isinstance(r[0], (int, float)) else None
        for r in responses
    ]
    if args and len(logliks) == len(args) and all(v is not None for v in logliks):
        target = record.get("target")
        try:
            gold = int(target)
        except (TypeError, ValueError):
            gold = None
        best = max(range(len(logliks)), key=lambda i: logliks[i])
        view.choices = [
            Choice(_text(cont), f"{ll:.3f}" if math.isfinite(ll) else str(ll), i == gold, i == best)
            for i, ((_, cont), ll) in enumerate(zip(args, logliks, strict=True))
        ]
    elif responses:
        view.response = _text(responses[0] if len(responses) == 1 else responses)
    return view


def _score(row: Any) -> str:
    """One document's record of one metric, as text."""
    if not pd.isna(getattr(row, "weight", None)):  # ratio metrics: (log-likelihood, count)
        return f"log-likelihood {row.value:.3f} over {row.weight:g}"
    if not pd.isna(row.value):
        return f"{row.value:g}"
    return f"gold {_label(row.gold)}, predicted {_label(row.pred)}"


def groups(samples: pd.DataFrame, max_per_group: int) -> list[SampleGroup]:
    """One group per (run, task, setting), each with its first ``max_per_group`` documents."""
    if samples.empty or max_per_group <= 0:
        return []
    out = []
    keys = ["run", "task", "num_fewshot", "strategy"]
    for (run, task, shots, strategy), rows in samples.groupby(keys, sort=False, dropna=False):
        by_doc = rows.groupby("doc_id", sort=False)
        views = []
        for _, doc_rows in list(by_doc)[:max_per_group]:
            first = doc_rows.iloc[0]
            if first["kind"] == "logickor":
                views.append(logickor_view(first["record"]))
                continue
            scores = [(str(r.metric), _score(r)) for r in doc_rows.itertuples()]
            views.append(lmeval_view(first["record"], scores))
        setting = str(strategy) if not pd.isna(strategy) else f"{int(shots)}-shot"
        out.append(
            SampleGroup(
                str(run), str(rows["model"].iloc[0]), str(task), setting, by_doc.ngroups, views
            )
        )
    return out
