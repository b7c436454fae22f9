"""Base versus fused: per task, metric and setting, both values, the difference, a paired 95%
bootstrap interval over the documents both runs scored, and an exact McNemar p-value for
0/1 metrics (accuracy).

Each metric keeps the direction lm-eval's results record for it (``higher_is_better``): for
bits_per_byte and the perplexities a rise is a loss, and the gate and the reports read it so.

Runs are compared only when they measured the same thing: the same tasks at the same task
versions, shot counts (LogicKor: strategies) and document limits, and the same document
behind each doc_id (lm-eval's doc_hash). ``force`` compares what they share instead.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from reports import logickor, stats
from reports.errors import ReportError
from reports.leaderboard import configured, primary_metric
from reports.table import Loaded, RunInfo, lower_is_better

_REPRODUCE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Meta:
    """What a run's results say about a metric: its direction and lm-eval's aggregation."""

    higher_is_better: bool = True
    aggregation: str | None = None


@dataclass
class MetricRow:
    task: str
    metric: str
    setting: int | str  # shots (int) or LogicKor strategy (str)
    base: float
    other: float
    n: int | None = None  # documents paired
    bootstrap: stats.PairedBootstrap | None = None
    mcnemar: stats.McNemar | None = None
    primary: bool = False
    note: str | None = None
    higher_is_better: bool = True

    @property
    def diff(self) -> float:
        return self.other - self.base

    @property
    def loss(self) -> float:
        """How much worse ``other`` is than ``base`` (negative: better), in the metric's
        units: a fall for accuracy, a rise for bits per byte."""
        return -self.diff if self.higher_is_better else self.diff

    @property
    def kind(self) -> str:
        return "logickor" if isinstance(self.setting, str) else "lm-eval"


@dataclass
class Comparison:
    base: RunInfo
    other: RunInfo
    rows: list[MetricRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def setting_label(setting: int | str) -> str:
    return f"{setting}-shot" if isinstance(setting, int) else str(setting)


def differences(base: RunInfo, other: RunInfo) -> list[str]:
    """What makes two runs incomparable, in words (empty when they compare)."""
    out = []
    only_base = sorted(set(base.settings) - set(other.settings))
    only_other = sorted(set(other.settings) - set(base.settings))
    if only_base:
        out.append(f"tasks only in {base.label}: {', '.join(only_base)}")
    if only_other:
        out.append(f"tasks only in {other.label}: {', '.join(only_other)}")
    for task in sorted(set(base.settings) & set(other.settings)):
        a, b = base.versions.get(task), other.versions.get(task)
        if a is not None and b is not None and a != b:
            out.append(f"{task} version {a} vs {b}")
        if base.settings[task] != other.settings[task]:
            what = "strategies" if task == logickor.TASK else "shots"
            sa = ",".join(map(str, sorted(base.settings[task])))
            sb = ",".join(map(str, sorted(other.settings[task])))
            out.append(f"{task} {what} {sa} vs {sb}")
    if base.limit != other.limit:
        out.append(f"limit {base.limit} vs {other.limit}")
    return out


def _docs(samples: pd.DataFrame, run: str, task: str, setting: Any, metric: str) -> pd.DataFrame:
    column = "strategy" if isinstance(setting, str) else "num_fewshot"
    rows = samples[
        (samples["run"] == run)
        & (samples["task"] == task)
        & (samples[column] == setting)
        & (samples["metric"] == metric)
    ]
    return rows.drop_duplicates("doc_id").set_index("doc_id")


def _pair(base: pd.DataFrame, other: pd.DataFrame, where: str, force: bool, notes: list[str]):
    """The doc_ids both runs scored, refusing (or, forced, dropping) ids whose documents differ."""
    common = base.index.intersection(other.index, sort=False)
    hashes = pd.DataFrame({"a": base.loc[common, "doc_hash"], "b": other.loc[common, "doc_hash"]})
    differ = hashes["a"].notna() & hashes["b"].notna() & (hashes["a"] != hashes["b"])
    if differ.any():
        first = hashes.index[differ][0]
        message = (
            f"{where}: {int(differ.sum())} doc_id(s) hold different documents in the two "
            f"runs (first: doc_id {first}, doc_hash differs)"
        )
        if not force:
            raise ReportError(
                f"{message}; were they evaluated on different data? "
                "(--force compares the documents that match)"
            )
        notes.append(message + "; those were left out")
        common = hashes.index[~differ]
    if len(common) < max(len(base), len(other)):
        notes.append(
            f"{where}: paired over the {len(common)} documents both runs scored "
            f"({len(base)} and {len(other)} scored)"
        )
    return common


def _is_ratio(docs: pd.DataFrame, aggregation: str | None) -> bool:
    return aggregation in stats.RATIO_STATISTICS and bool(docs["weight"].notna().all())


def _arrays(docs: pd.DataFrame, ids: pd.Index, aggregation: str | None) -> np.ndarray:
    """Per document: its value; (log-likelihood, count) for ratio metrics; (gold, pred)."""
    if _is_ratio(docs, aggregation):
        return docs.loc[ids, ["value", "weight"]].to_numpy(dtype=float)
    if docs["value"].notna().all():
        return docs.loc[ids, "value"].to_numpy(dtype=float)
    pairs = docs.loc[ids, ["gold", "pred"]].to_numpy()
    try:
        return pairs.astype(float)
    except (TypeError, ValueError):
        return pairs.astype(str)


def _statistic(docs: pd.DataFrame, aggregation: str | None) -> stats.Statistic:
    """The statistic lm-eval reported: a ratio of sums (bits_per_byte, perplexities), a
    mean of 0/1 values, or macro-F1 of (gold, prediction) pairs."""
    if _is_ratio(docs, aggregation):
        return stats.RATIO_STATISTICS[str(aggregation)]
    return stats.mean if docs["value"].notna().all() else stats.macro_f1


def document_values(
    loaded: Loaded, run: str, key: tuple, aggregation: str | None
) -> tuple[pd.Index, np.ndarray, stats.Statistic] | None:
    """One run's per-document records of ``key`` (task, setting, metric) as the paired
    bootstrap takes them (values; (log-likelihood, count) for ratio metrics; (gold, pred) for
    F1), by doc_id, with the statistic that recomputes the metric; None without samples.
    ``reports.seeds`` pools these over training seeds."""
    docs = _docs(loaded.samples, run, *key)
    if docs.empty:
        return None
    return docs.index, _arrays(docs, docs.index, aggregation), _statistic(docs, aggregation)


def metric_meta(loaded: Loaded, run: str) -> dict[tuple, Meta]:
    """Direction and lm-eval aggregation per (task, setting, metric) of one run."""
    return _meta(loaded.scores, run)


def _lmeval_row(
    loaded: Loaded,
    base: str,
    other: str,
    key: tuple,
    values: tuple,
    meta: Meta,
    options: dict,
    notes: list[str],
) -> MetricRow:
    task, setting, metric = key
    row = MetricRow(
        task, metric, setting, values[0], values[1], higher_is_better=meta.higher_is_better
    )
    a = _docs(loaded.samples, base, task, setting, metric)
    b = _docs(loaded.samples, other, task, setting, metric)
    if a.empty or b.empty:
        row.note = "no per-sample records: no interval"
        return row
    where = f"{task} {setting_label(setting)} {metric}"
    ids = _pair(a, b, where, options["force"], notes)
    if len(ids) == 0:
        row.note = "no document in common"
        return row
    statistic = _statistic(a, meta.aggregation)
    # Bootstrap only metrics whose reported value the samples reproduce (mean, lm-eval's
    # macro-F1 for pairs, its ratio of sums for bits_per_byte and perplexities): another
    # aggregation would make the interval about something else.
    for docs, reported in ((a, values[0]), (b, values[1])):
        try:
            full = float(statistic(_arrays(docs, docs.index, meta.aggregation)[None, ...])[0])
        except (TypeError, ValueError):  # records of another shape (brier_score: gold, probs)
            row.note = f"per-document records that {meta.aggregation} reduces: no interval"
            return row
        close = math.isclose(
            full, reported, rel_tol=_REPRODUCE_TOLERANCE, abs_tol=_REPRODUCE_TOLERANCE
        )
        if not close:
            row.note = f"samples give {full:.4f}, not the reported {reported:.4f}: no interval"
            return row
    xa, xb = _arrays(a, ids, meta.aggregation), _arrays(b, ids, meta.aggregation)
    row.n = len(ids)
    row.bootstrap = stats.paired_bootstrap(xa, xb, statistic, options["resamples"], options["seed"])
    if statistic is stats.mean and np.isin(np.concatenate([xa, xb]), (0.0, 1.0)).all():
        row.mcnemar = stats.mcnemar_exact(xa, xb)
    return row


def _per_question(
    single: pd.DataFrame, multi: pd.DataFrame, ids: pd.Index, column: str
) -> np.ndarray:
    """A turn's score for the turn columns, the mean of both turns for the others."""
    s = single.loc[ids, "value"].to_numpy(dtype=float)
    m = multi.loc[ids, "value"].to_numpy(dtype=float)
    return {logickor.SINGLE: s, logickor.MULTI: m}.get(column, (s + m) / 2)


def _logickor_rows(
    loaded: Loaded,
    base: str,
    other: str,
    strategy: str,
    values: dict,
    options: dict,
    notes: list[str],
) -> list[MetricRow]:
    """Every LogicKor column is a mean of per-question values (a turn's score, or the mean
    of both turns) over some questions: bootstrap those questions, paired by id."""
    per_run = []
    for run in (base, other):
        single = _docs(loaded.samples, run, logickor.TASK, strategy, logickor.SINGLE)
        multi = _docs(loaded.samples, run, logickor.TASK, strategy, logickor.MULTI)
        per_run.append((single, multi))
    (sa, ma), (sb, mb) = per_run
    ids = _pair(sa, sb, f"logickor {strategy}", options["force"], notes)
    rows = []
    for column, (va, vb) in values.items():
        row = MetricRow(logickor.TASK, column, strategy, va, vb, primary=column == logickor.OVERALL)
        if column in (logickor.SINGLE, logickor.MULTI, logickor.OVERALL):
            chosen = ids
        else:
            chosen = ids[(sa.loc[ids, "category"] == column).to_numpy()]
        if len(chosen):
            row.n = len(chosen)
            row.bootstrap = stats.paired_bootstrap(
                _per_question(sa, ma, chosen, column),
                _per_question(sb, mb, chosen, column),
                stats.mean,
                options["resamples"],
                options["seed"],
            )
        rows.append(row)
    return rows


def _key(row: Any) -> tuple:
    setting = row.strategy if row.kind == "logickor" else int(row.num_fewshot)
    return (row.task, setting, row.metric)


def _values(scores: pd.DataFrame, run: str) -> dict[tuple, float]:
    """Recorded values; a NaN one has nothing to compare (the CLI warns about it)."""
    rows = scores[(scores["run"] == run) & scores["value"].notna()]
    return {_key(row): float(row.value) for row in rows.itertuples()}


def _meta(scores: pd.DataFrame, run: str) -> dict[tuple, Meta]:
    """Direction and aggregation per (task, setting, metric); a metric whose results do not
    say counts as higher-is-better (accuracy-like), as lm-eval's own tables assume."""
    out = {}
    for row in scores[scores["run"] == run].itertuples():
        aggregation = row.aggregation if isinstance(row.aggregation, str) else None
        out[_key(row)] = Meta(not lower_is_better(row.higher_is_better), aggregation)
    return out


def _directions_differ(base: dict[tuple, Meta], other: dict[tuple, Meta], keys) -> list[str]:
    return [
        f"{k[0]} {setting_label(k[1])} {k[2]}" for k in keys if base[k] != other.get(k, base[k])
    ]


def _only(info: RunInfo, tasks: Collection[str]) -> RunInfo:
    """``info`` as if the run had evaluated only ``tasks``."""
    return replace(
        info,
        settings={t: s for t, s in info.settings.items() if t in tasks},
        versions={t: v for t, v in info.versions.items() if t in tasks},
    )


def compare_pair(
    loaded: Loaded,
    base: RunInfo,
    other: RunInfo,
    force: bool = False,
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
    tasks: Collection[str] | None = None,
) -> Comparison:
    """``other`` against ``base``; a ReportError when they do not compare and not ``force``.
    ``tasks``: compare these tasks only, for runs that differ on purpose in the others (a
    fusion report judges LogicKor for base and fused but not for the control)."""
    comparison = Comparison(base, other)
    if tasks is not None:
        base, other = _only(base, tasks), _only(other, tasks)
    problems = differences(base, other)
    if problems and not force:
        raise ReportError(
            f"{base.label} and {other.label} do not compare: {'; '.join(problems)} "
            "(--force compares what they share)"
        )
    comparison.notes += [f"forced past: {p}" for p in problems]
    for info in (base, other):
        if info.status not in (None, "complete"):
            comparison.notes.append(
                f"{info.label} is {info.status}: only its finished evaluations are compared"
            )
    options = {"force": force, "resamples": resamples, "seed": seed}
    va, vb = _values(loaded.scores, base.label), _values(loaded.scores, other.label)
    shared = [key for key in va if key in vb and (tasks is None or key[0] in tasks)]
    if not shared:
        raise ReportError(f"{base.label} and {other.label} share no task, setting and metric")
    meta = _meta(loaded.scores, base.label)
    differing = _directions_differ(meta, _meta(loaded.scores, other.label), shared)
    if differing:  # one task version cannot do this; results from elsewhere might
        comparison.notes.append(
            f"{other.label} records another direction or aggregation than {base.label} for "
            f"{', '.join(differing)}; {base.label}'s is used"
        )
    lmeval_keys = [k for k in shared if k[0] != logickor.TASK]
    primaries: dict[str, str | None] = {}
    listed = configured(loaded.scores[loaded.scores["run"] == base.label])
    for task in dict.fromkeys(k[0] for k in lmeval_keys):
        metrics = {k[2] for k in lmeval_keys if k[0] == task}
        primaries[task] = primary_metric(task, metrics, listed.get(str(task), set()))
    for key in sorted(lmeval_keys, key=lambda k: (k[0], k[1], k[2] != primaries[k[0]], k[2])):
        row = _lmeval_row(
            loaded,
            base.label,
            other.label,
            key,
            (va[key], vb[key]),
            meta[key],
            options,
            comparison.notes,
        )
        row.primary = key[2] == primaries[key[0]]
        comparison.rows.append(row)
    strategies = dict.fromkeys(k[1] for k in shared if k[0] == logickor.TASK)
    for strategy in strategies:
        columns = logickor.columns(
            [
                k[2]
                for k in shared
                if k[0] == logickor.TASK
                and k[1] == strategy
                and k[2] not in logickor.SHORT
                and k[2] not in logickor.COUNT_METRICS
            ]
        )
        values = {
            c: (va[(logickor.TASK, strategy, c)], vb[(logickor.TASK, strategy, c)])
            for c in columns
            if (logickor.TASK, strategy, c) in va
        }
        comparison.rows += _logickor_rows(
            loaded, base.label, other.label, strategy, values, options, comparison.notes
        )
    return comparison


def compare(
    loaded: Loaded,
    force: bool = False,
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
) -> list[Comparison]:
    """Every run after the first against the first."""
    if len(loaded.runs) < 2:
        raise ReportError("compare needs two runs: BASE and at least one other")
    base, *others = loaded.runs
    return [compare_pair(loaded, base, o, force, resamples, seed) for o in others]


# ---------------------------------------------------------------- regression gate


@dataclass(frozen=True)
class Failure:
    run: str
    task: str
    setting: int | str
    metric: str
    base: float
    other: float
    reason: str
    higher_is_better: bool = True


def gate(
    comparisons: list[Comparison], max_drop: float | None, max_drop_rel: float | None
) -> list[Failure]:
    """Every primary score (a task's metric per setting; LogicKor's overall per strategy) that
    got worse by more than ``max_drop`` (in the metric's own units) or ``max_drop_rel`` (a
    fraction of the base value): a fall where higher is better, a rise where lower is better
    (bits_per_byte), as each run's results record."""
    failures = []
    for comparison in comparisons:
        for row in comparison.rows:
            if not row.primary:
                continue
            drop, word = row.loss, "drop" if row.higher_is_better else "rise"
            scale = abs(row.base)
            reasons = []
            if max_drop is not None and drop > max_drop:
                reasons.append(f"{word} {drop:.4f} > {max_drop:g}")
            if max_drop_rel is not None and scale > 0 and drop / scale > max_drop_rel:
                reasons.append(f"relative {word} {drop / scale:.2%} > {max_drop_rel:.2%}")
            if reasons:
                failures.append(
                    Failure(
                        comparison.other.label,
                        row.task,
                        row.setting,
                        row.metric,
                        row.base,
                        row.other,
                        "; ".join(reasons),
                        row.higher_is_better,
                    )
                )
    return failures


# ---------------------------------------------------------------- model-card table


@dataclass
class ModelCard:
    columns: list[str]  # "Base (0 shot)", "Fuse (0 shot)", ...
    rows: list[tuple[str, list[float | None]]]  # (dataset, values in column order)
    lower_is_better: dict[str, str] = field(default_factory=dict)  # dataset -> its metric


def model_card(comparisons: list[Comparison]) -> ModelCard | None:
    """The table fusion model cards print: each task's primary metric, base and fused side
    by side per shot count (runs after the first two are named by their labels)."""
    primary = [[r for r in c.rows if r.primary and r.kind == "lm-eval"] for c in comparisons]
    shots = sorted({r.setting for rows in primary for r in rows})
    if not shots:
        return None
    names = ["Fuse"] if len(comparisons) == 1 else [c.other.label for c in comparisons]
    columns, cells = [], {}
    for s in shots:
        columns.append(f"Base ({s} shot)")
        for name in names:
            columns.append(f"{name} ({s} shot)")
    tasks = list(dict.fromkeys(r.task for rows in primary for r in rows))
    lower = {r.task: r.metric for rows in primary for r in rows if not r.higher_is_better}
    for name, rows in zip(names, primary, strict=True):
        for r in rows:
            cells[(r.task, f"Base ({r.setting} shot)")] = r.base
            cells[(r.task, f"{name} ({r.setting} shot)")] = r.other
    rows = [(t, [cells.get((t, c)) for c in columns]) for t in tasks]
    return ModelCard(columns, rows, lower)
