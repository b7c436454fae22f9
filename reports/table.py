"""The tidy tables every loader fills and every renderer reads.

One row per (run, task, metric, setting) in ``scores`` and one row per (run, task, setting,
document, metric) in ``samples``. lm-eval settings are shot counts (``num_fewshot``), LogicKor
settings are prompt strategies (``strategy``); the other column is empty. Keeping both kinds
in one table lets a report mix classification runs and judged generations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

SCORE_COLUMNS = [
    "run",  # label of the run the row came from (unique within one load)
    "model",  # model name as users know it (Hub id, org/model, or a local folder's name)
    "kind",  # "lm-eval" or "logickor"
    "task",
    "metric",
    "num_fewshot",  # lm-eval: shot count; LogicKor: empty
    "strategy",  # LogicKor: prompt strategy; lm-eval: empty
    "value",
    "stderr",
    "n",  # documents (LogicKor: questions) behind the value
    "version",  # task version, as recorded by the run
    "exact",  # fractions.Fraction when the value is an exact mean of recorded scores
    "higher_is_better",  # as lm-eval's results record it (bits_per_byte: False); LogicKor: True
    "aggregation",  # lm-eval's aggregation name ("mean", "bits_per_byte", ...) when known
    "primary",  # lm-eval: True for the metric its task config lists first (metric_list[0])
    "group",  # True on a group's aggregate row (kmmlu): its tasks have rows too
]

SAMPLE_COLUMNS = [
    "run",
    "model",
    "kind",
    "task",
    "num_fewshot",
    "strategy",
    "doc_id",
    "doc_hash",  # identifies the document's content: pairing across runs checks it
    "category",  # LogicKor category, else empty
    "metric",
    "value",  # per-document score (0/1 accuracy, a judge's 0-10 score); NaN for pair metrics
    "gold",  # pair metrics such as lm-eval's f1 store (gold, prediction) per document
    "pred",
    # Ratio metrics (lm-eval's bits_per_byte and perplexities) store (log-likelihood, bytes or
    # words) per document: the log-likelihood in value, the count here; NaN for the others.
    "weight",
    "record",  # the raw record (dict), for the sample browser
]


@dataclass
class RunInfo:
    """One loaded run: what compare needs to decide whether two runs are comparable."""

    label: str
    path: Path
    source: Literal["run directory", "lm-eval output", "logickor files"]
    model: str
    versions: dict[str, str] = field(default_factory=dict)  # task -> version
    settings: dict[str, set[Any]] = field(default_factory=dict)  # task -> shots or strategies
    limit: float | None = None
    status: str | None = None  # fusebench manifests only


@dataclass
class Loaded:
    """Everything read from the paths given: the tidy tables plus what was skipped."""

    scores: pd.DataFrame
    samples: pd.DataFrame
    runs: list[RunInfo]
    skipped: list[str] = field(default_factory=list)  # "path: reason" for each bad file
    warnings: list[str] = field(default_factory=list)  # loaded, but worth a look (NaN metrics)


def nan_warnings(scores: pd.DataFrame) -> list[str]:
    """One line per metric whose recorded value is NaN."""
    out = []
    for row in scores[scores["value"].isna()].itertuples():
        setting = row.strategy if isinstance(row.strategy, str) else f"{row.num_fewshot}-shot"
        out.append(
            f"{row.run}: {row.task} {row.metric} ({setting}) is NaN in its results; "
            "shown as NaN (evaluated, but no number came out)"
        )
    return out


def frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """A DataFrame with exactly ``columns``, object dtype where values are mixed or missing."""
    df = pd.DataFrame(rows, columns=columns)
    for column in ("num_fewshot", "n"):
        if column in df:
            df[column] = df[column].astype("Int64")
    for column in ("value", "stderr"):
        if column in df:
            df[column] = df[column].astype(float)
    if "weight" in df:
        df["weight"] = df["weight"].astype(float)
    if "group" in df:
        df["group"] = df["group"].eq(True)  # rows other than a group's aggregate: False
    return df


def lower_is_better(value: Any) -> bool:
    """Whether a ``higher_is_better`` cell says lower is better; a missing one does not (the
    metric then reads as accuracy-like, as lm-eval's own tables assume)."""
    return isinstance(value, (bool, np.bool_)) and not value
