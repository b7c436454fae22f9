"""Paired statistics for base-versus-fused comparisons.

lm-eval's own comparator treats two runs as independent samples (an unpaired z-test), but both
runs scored the same documents: the paired view is much sharper. Here:

- a paired bootstrap: documents are resampled with replacement, the *same* resample for both
  runs, and the metric recomputed on each; the 2.5th and 97.5th percentiles of the
  differences are the 95% interval (percentile method). Seeded, vectorised with numpy.
- for lm-eval's ratio metrics (bits_per_byte, byte and word perplexity) the resampled unit is
  still the document: each keeps its (log-likelihood, bytes or words) pair, and the corpus
  figure is recomputed from the resampled sums (-sum ll / (ln 2 * sum bytes) for bits per
  byte), as lm-eval aggregates it; a mean of per-document ratios would weight short
  documents like long ones and estimate something else.
- an exact McNemar test for accuracy: only documents the runs disagree on carry information;
  under "no difference" each such document is equally likely to favour either run, so the
  two-sided p-value is a binomial test of b successes in b + c trials at p = 1/2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]  # (resamples, docs[, 2]) -> (resamples,)

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
# Resamples are drawn in chunks so that memory stays bounded on 50,000-document tasks.
_CHUNK_CELLS = 2_000_000


def mean(values: np.ndarray) -> np.ndarray:
    """Accuracy-like metrics and LogicKor scores: the mean over documents."""
    return values.mean(axis=-1)


def macro_f1(pairs: np.ndarray) -> np.ndarray:
    """Macro-F1 of (gold, prediction) pairs along the last-but-one axis, as scikit-learn's
    ``f1_score(average="macro")`` computes it: the classes are those present among the golds
    or the predictions of *that* sample, each with F1 = 2 TP / (n_gold + n_pred)."""
    gold, pred = pairs[..., 0], pairs[..., 1]
    classes = np.unique(pairs)
    total = np.zeros(gold.shape[:-1])
    present = np.zeros(gold.shape[:-1])
    for cls in classes:
        is_gold, is_pred = gold == cls, pred == cls
        tp = (is_gold & is_pred).sum(axis=-1)
        support = is_gold.sum(axis=-1) + is_pred.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(support > 0, 2 * tp / np.maximum(support, 1), 0.0)
        total += f1
        present += support > 0
    return total / np.maximum(present, 1)


def bits_per_byte(pairs: np.ndarray) -> np.ndarray:
    """lm-eval's ``bits_per_byte`` of (log-likelihood, bytes) pairs along the last-but-one
    axis: -sum(ll) / (ln 2 * sum(bytes))."""
    return -pairs[..., 0].sum(axis=-1) / (math.log(2) * pairs[..., 1].sum(axis=-1))


def weighted_perplexity(pairs: np.ndarray) -> np.ndarray:
    """lm-eval's ``weighted_perplexity`` (byte and word perplexity) of (log-likelihood,
    count) pairs: exp(-sum(ll) / sum(count))."""
    return np.exp(-pairs[..., 0].sum(axis=-1) / pairs[..., 1].sum(axis=-1))


# lm-eval aggregation name -> the statistic that recomputes it from per-document records.
RATIO_STATISTICS: dict[str, Statistic] = {
    "bits_per_byte": bits_per_byte,
    "weighted_perplexity": weighted_perplexity,
}


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class PairedBootstrap:
    """The paired bootstrap of one metric: the difference's interval and each run's own."""

    diff: Interval  # other - base
    base: Interval
    other: Interval
    resamples: int


def paired_bootstrap(
    base: np.ndarray,
    other: np.ndarray,
    statistic: Statistic,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> PairedBootstrap:
    """Percentile intervals from resampling documents (axis 0), the same draws for both runs.

    ``base[i]`` and ``other[i]`` must be the two runs' records of the same document.
    """
    base, other = np.asarray(base), np.asarray(other)
    if len(base) != len(other) or len(base) == 0:
        raise ValueError("paired bootstrap needs the same, non-zero number of documents")
    n = len(base)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    b_stats, o_stats = [], []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        b_stats.append(statistic(base[idx]))
        o_stats.append(statistic(other[idx]))
    b, o = np.concatenate(b_stats), np.concatenate(o_stats)
    tails = [100 * (1 - level) / 2, 100 * (1 + level) / 2]

    def interval(values: np.ndarray) -> Interval:
        low, high = np.percentile(values, tails)
        return Interval(float(low), float(high))

    return PairedBootstrap(interval(o - b), interval(b), interval(o), resamples)


@dataclass(frozen=True)
class McNemar:
    base_only: int  # b: documents only the base run got right
    other_only: int  # c: documents only the other run got right
    p_value: float


def mcnemar_exact(base_correct: np.ndarray, other_correct: np.ndarray) -> McNemar:
    """Exact (binomial) McNemar test on two runs' 0/1 scores of the same documents."""
    base_correct = np.asarray(base_correct).astype(bool)
    other_correct = np.asarray(other_correct).astype(bool)
    b = int((base_correct & ~other_correct).sum())
    c = int((~base_correct & other_correct).sum())
    return McNemar(b, c, mcnemar_p(b, c))


def mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact p-value for b and c discordant pairs (1.0 when there are none)."""
    from scipy.stats import binomtest

    if b + c == 0:
        return 1.0
    return float(min(1.0, binomtest(b, b + c, 0.5, alternative="two-sided").pvalue))
