"""Fused minus clm-only over several training seeds: per seed, and pooled.

Each seed trains its own fused model and its own control, and both answer the same documents.
Per seed the comparison is the paired one of ``reports.compare`` (documents paired within the
seed). Pooled over S seeds, per task, setting and metric:

    pooled difference = (1/S) * sum over seeds s of [T(fused_s) - T(control_s)]

where T is the metric as lm-eval aggregates it over the seed's documents: the mean for
accuracy-like metrics and LogicKor-like scores, macro-F1 of the (gold, prediction) pairs for
F1 (a corpus-level figure), -sum(ll) / (ln 2 * sum(bytes)) for bits_per_byte and exp(-sum(ll)
/ sum(count)) for the perplexities (ratios of sums). Each seed weighs the same: the claim is
about the training recipe, and every seed is one draw of it.

The interval is a paired bootstrap over documents, stratified by seed: each resample draws
documents with replacement, applies the same draw to the fused model and the control of every
seed (the pairing within a seed), recomputes T on each seed's resampled documents (the ratio of
sums and F1 from the resampled records, as ``reports.stats`` does for one seed) and averages
the seeds' differences; the 2.5th and 97.5th percentiles of those averages are the 95%
interval. The seeds score the same documents, so one draw serves every seed (a document
cluster bootstrap): a document that is hard for the fused model under one seed tends to be hard
under the others, and drawing each seed's documents independently would ignore that
correlation and give too narrow an interval. The seeds themselves are not resampled (three are
too few to bootstrap); how much the seeds disagree is shown by the per-seed rows and by how
many of them share the pooled difference's sign.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reports import compare, stats
from reports.compare import Comparison, MetricRow
from reports.stats import Interval
from reports.table import Loaded


@dataclass(frozen=True)
class SeedComparison:
    """One training seed's fused vs clm-only comparison (``compare.compare_pair``)."""

    seed: int
    comparison: Comparison


@dataclass
class PooledRow:
    task: str
    metric: str
    setting: int | str
    primary: bool
    higher_is_better: bool
    seeds: list[int]
    control: list[float]  # each seed's control value
    fused: list[float]  # each seed's fused value
    diffs: list[float]  # each seed's fused - control
    seed_intervals: list[Interval | None]  # each seed's paired 95% interval
    diff: float  # pooled fused - control
    interval: Interval | None = None  # pooled 95% interval
    n: int | None = None  # documents per seed in the pool
    note: str | None = None
    resamples: int = 0

    @property
    def agree(self) -> int:
        """Seeds whose own difference has the pooled difference's sign (0 counts with 0)."""
        return sign_agreement(self.diffs, self.diff)

    @property
    def control_mean(self) -> float:
        return float(np.mean(self.control))

    @property
    def fused_mean(self) -> float:
        return float(np.mean(self.fused))

    def to_json(self) -> dict[str, Any]:
        setting = "strategy" if isinstance(self.setting, str) else "num_fewshot"
        return {
            "task": self.task,
            setting: self.setting,
            "metric": self.metric,
            "primary": self.primary,
            "higher_is_better": self.higher_is_better,
            "seeds": self.seeds,
            "diff": self.diff,
            "ci95": [self.interval.low, self.interval.high] if self.interval else None,
            "seeds_agreeing": self.agree,
            "control_mean": self.control_mean,
            "fused_mean": self.fused_mean,
            "n": self.n,
            "resamples": self.resamples,
            "note": self.note,
            "per_seed": [
                {
                    "seed": s,
                    "control": c,
                    "fused": f,
                    "diff": d,
                    "ci95": [i.low, i.high] if i else None,
                }
                for s, c, f, d, i in zip(
                    self.seeds,
                    self.control,
                    self.fused,
                    self.diffs,
                    self.seed_intervals,
                    strict=True,
                )
            ],
        }


@dataclass
class Pooled:
    seeds: list[int]
    rows: list[PooledRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sign_agreement(diffs: Sequence[float], pooled: float) -> int:
    """How many of ``diffs`` have the sign of ``pooled`` (a zero agrees with a zero)."""
    target = np.sign(pooled)
    return int(sum(np.sign(d) == target for d in diffs))


def pooled_bootstrap(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    statistic: stats.Statistic,
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
    level: float = 0.95,
) -> tuple[float, Interval]:
    """The pooled difference and its percentile interval (the module's docstring).

    ``pairs[s]`` = (control records, fused records) of seed s, row i being document i in
    both runs *and in every seed*; records as ``stats.paired_bootstrap`` takes them.
    """
    if not pairs:
        raise ValueError("pooling needs at least one seed")
    arrays = [(np.asarray(c), np.asarray(f)) for c, f in pairs]
    n = len(arrays[0][0])
    if n == 0 or any(len(c) != n or len(f) != n for c, f in arrays):
        raise ValueError("every seed needs the same, non-zero number of paired documents")

    def one(c: np.ndarray, f: np.ndarray) -> float:
        return float(statistic(f[None, ...])[0] - statistic(c[None, ...])[0])

    point = float(np.mean([one(c, f) for c, f in arrays]))
    rng = np.random.default_rng(seed)
    chunk = max(1, stats._CHUNK_CELLS // (n * len(arrays)))
    pooled = []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        diffs = [statistic(f[idx]) - statistic(c[idx]) for c, f in arrays]
        pooled.append(np.mean(diffs, axis=0))
    values = np.concatenate(pooled)
    low, high = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return point, Interval(float(low), float(high))


def _key(row: MetricRow) -> tuple:
    return (row.task, row.setting, row.metric)


def pool(
    loaded: Loaded,
    per_seed: Sequence[SeedComparison],
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
) -> Pooled:
    """Every (task, setting, metric) that each seed's fused vs clm-only comparison has,
    pooled over the seeds; no interval where a seed has none (its row says why)."""
    out = Pooled([s.seed for s in per_seed])
    if not per_seed:
        return out
    by_seed = [{_key(r): r for r in s.comparison.rows} for s in per_seed]
    keys = [k for k in by_seed[0] if all(k in rows for rows in by_seed[1:])]
    for key in keys:
        rows = [rows[key] for rows in by_seed]
        first = rows[0]
        pooled = PooledRow(
            task=first.task,
            metric=first.metric,
            setting=first.setting,
            primary=first.primary,
            higher_is_better=first.higher_is_better,
            seeds=list(out.seeds),
            control=[r.base for r in rows],
            fused=[r.other for r in rows],
            diffs=[r.diff for r in rows],
            seed_intervals=[r.bootstrap.diff if r.bootstrap else None for r in rows],
            diff=float(np.mean([r.diff for r in rows])),
        )
        missing = next((r for r in rows if r.bootstrap is None), None)
        if missing is not None:
            pooled.note = missing.note or "no per-document records: no interval"
        else:
            _interval(loaded, per_seed, key, pooled, resamples, seed, out.notes)
        out.rows.append(pooled)
    return out


def _interval(
    loaded: Loaded,
    per_seed: Sequence[SeedComparison],
    key: tuple,
    row: PooledRow,
    resamples: int,
    seed: int,
    notes: list[str],
) -> None:
    """The pooled bootstrap over the documents every seed's two runs scored."""
    meta = compare.metric_meta(loaded, per_seed[0].comparison.base.label)
    aggregation = meta[key].aggregation if key in meta else None
    records = []
    for s in per_seed:
        pair = [
            compare.document_values(loaded, run.label, key, aggregation)
            for run in (s.comparison.base, s.comparison.other)
        ]
        if any(p is None for p in pair):
            row.note = "no per-document records: no interval"
            return
        records += pair
    common = records[0][0]
    for ids, _, _ in records[1:]:
        common = common.intersection(ids, sort=False)
    if len(common) == 0:
        row.note = "no document every seed scored"
        return
    largest = max(len(ids) for ids, _, _ in records)
    if len(common) < largest:
        notes.append(
            f"{key[0]} {compare.setting_label(key[1])} {key[2]}: pooled over the "
            f"{len(common)} documents every seed scored"
        )
    statistic = records[0][2]
    aligned = [values[pd.Index(ids).get_indexer(common)] for ids, values, _ in records]
    pairs = [(aligned[i], aligned[i + 1]) for i in range(0, len(aligned), 2)]
    row.diff, row.interval = pooled_bootstrap(pairs, statistic, resamples, seed)
    row.n, row.resamples = len(common), resamples
