"""Fused minus clm-only pooled over training seeds (``reports/seeds.py``): the point estimate
against a hand computation, the interval against a plain loop, coverage of a known
difference, the metric kinds (mean, ratio of sums, macro-F1) and the sign-agreement count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports import stats
from reports.seeds import pooled_bootstrap, sign_agreement

# Two seeds, four documents each: 0/1 scores of the control and the fused model.
CONTROL = [np.array([1, 0, 0, 1.0]), np.array([0, 0, 1, 1.0])]
FUSED = [np.array([1, 1, 0, 1.0]), np.array([1, 0, 1, 0.0])]


def test_point_estimate_is_the_mean_of_the_seeds_differences() -> None:
    # seed 0: 3/4 - 2/4 = +0.25; seed 1: 2/4 - 2/4 = 0; pooled (0.25 + 0) / 2.
    point, _ = pooled_bootstrap(list(zip(CONTROL, FUSED, strict=True)), stats.mean, 200)
    assert point == pytest.approx(0.125)


def test_interval_matches_a_plain_loop_with_one_draw_for_every_seed() -> None:
    """Independent implementation: per resample, one document draw applied to both runs of
    every seed, the seeds' differences averaged; percentiles of those averages."""
    rng = np.random.default_rng(7)
    control = [rng.integers(0, 2, 30).astype(float) for _ in range(3)]
    fused = [rng.integers(0, 2, 30).astype(float) for _ in range(3)]
    resamples = 3000
    _, interval = pooled_bootstrap(list(zip(control, fused, strict=True)), stats.mean, resamples, 5)
    draws = np.random.default_rng(5).integers(0, 30, size=(resamples, 30))
    expected = []
    for idx in draws:
        per_seed = [f[idx].mean() - c[idx].mean() for c, f in zip(control, fused, strict=True)]
        expected.append(sum(per_seed) / len(per_seed))
    low, high = np.percentile(expected, [2.5, 97.5])
    assert interval.low == pytest.approx(low) and interval.high == pytest.approx(high)


def test_the_interval_covers_a_known_difference() -> None:
    """Three seeds of 600 documents: the fused model answers each document right with
    probability 0.60, the control with 0.50 (correlated across seeds through the document's
    difficulty); the 95% interval contains the true +0.10, and excludes 0."""
    rng = np.random.default_rng(11)
    difficulty = rng.normal(0, 1, 600)
    pairs = []
    for _ in range(3):
        noise = rng.normal(0, 0.3, 600)
        base = 1 / (1 + np.exp(difficulty + noise))  # mean 0.5 over documents
        control = (rng.random(600) < base).astype(float)
        fused = (rng.random(600) < np.clip(base + 0.10, 0, 1)).astype(float)
        pairs.append((control, fused))
    point, interval = pooled_bootstrap(pairs, stats.mean, 4000)
    assert interval.low < 0.10 < interval.high
    assert interval.low > 0 and interval.low < point < interval.high


def test_bits_per_byte_pools_each_seeds_ratio_of_sums() -> None:
    """(log-likelihood, bytes) per document: each seed's bits per byte is -sum(ll) / (ln 2 *
    sum(bytes)), not a mean of per-document ratios; the seeds' differences are averaged."""
    control = [np.array([[-10.0, 10], [-30.0, 10]]), np.array([[-20.0, 20], [-20.0, 5]])]
    fused = [np.array([[-12.0, 10], [-24.0, 10]]), np.array([[-18.0, 20], [-21.0, 5]])]

    def bpb(x: np.ndarray) -> float:
        return -x[:, 0].sum() / (math.log(2) * x[:, 1].sum())

    expected = np.mean([bpb(f) - bpb(c) for c, f in zip(control, fused, strict=True)])
    point, interval = pooled_bootstrap(
        list(zip(control, fused, strict=True)), stats.bits_per_byte, 500
    )
    assert point == pytest.approx(expected)
    assert interval.low <= point <= interval.high


def test_macro_f1_is_recomputed_per_seed_from_gold_and_prediction_pairs() -> None:
    from sklearn.metrics import f1_score

    gold = ["a", "b", "c", "a", "b", "c"]
    control = [np.array(list(zip(gold, p, strict=True))) for p in ("aaaaaa", "abcabc")]
    fused = [np.array(list(zip(gold, p, strict=True))) for p in ("abcaaa", "abcabb")]

    def f1(x: np.ndarray) -> float:
        return f1_score(x[:, 0], x[:, 1], average="macro")

    expected = np.mean([f1(f) - f1(c) for c, f in zip(control, fused, strict=True)])
    point, _ = pooled_bootstrap(list(zip(control, fused, strict=True)), stats.macro_f1, 300)
    assert point == pytest.approx(expected)


def test_one_seed_pools_to_the_paired_bootstrap() -> None:
    rng = np.random.default_rng(3)
    c, f = rng.random(40), rng.random(40)
    point, interval = pooled_bootstrap([(c, f)], stats.mean, 2000, seed=9)
    single = stats.paired_bootstrap(c, f, stats.mean, 2000, seed=9)
    assert point == pytest.approx(f.mean() - c.mean())
    assert interval.low == pytest.approx(single.diff.low)
    assert interval.high == pytest.approx(single.diff.high)


@pytest.mark.parametrize(
    ("diffs", "pooled", "agree"),
    [
        ([0.1, -0.2, 0.3], 0.0667, 2),
        ([0.1, 0.2, 0.3], 0.2, 3),
        ([-0.1, 0.0, 0.05], -0.0167, 1),
        ([0.0, 0.0], 0.0, 2),
    ],
)
def test_sign_agreement(diffs: list[float], pooled: float, agree: int) -> None:
    assert sign_agreement(diffs, pooled) == agree


def test_seeds_must_pair_the_same_number_of_documents() -> None:
    with pytest.raises(ValueError, match="same, non-zero"):
        pooled_bootstrap([(np.ones(3), np.ones(3)), (np.ones(2), np.ones(2))], stats.mean)
    with pytest.raises(ValueError, match="at least one seed"):
        pooled_bootstrap([], stats.mean)
