"""Paired bootstrap and exact McNemar against hand-computed cases and scikit-learn."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from reports import stats


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (1, 6, 2 * (math.comb(7, 0) + math.comb(7, 1)) / 2**7),  # 0.125
        (6, 1, 0.125),  # symmetric
        (0, 5, 2 / 2**5),  # 0.0625
        (3, 3, 1.0),
        (0, 0, 1.0),  # no discordant pair: no evidence either way
        (2, 8, 2 * sum(math.comb(10, k) for k in range(3)) / 2**10),  # 0.109375
    ],
)
def test_mcnemar_exact_p_values(b: int, c: int, expected: float) -> None:
    assert stats.mcnemar_p(b, c) == pytest.approx(expected, abs=1e-12)


def test_mcnemar_counts_discordant_documents() -> None:
    base = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 1])
    other = np.array([1, 0, 1, 1, 1, 1, 1, 1, 0, 1])  # b = 1 (doc 1), c = 6 (docs 2,3,5,6,7)
    result = stats.mcnemar_exact(base, other)
    assert (result.base_only, result.other_only) == (1, 5)
    assert result.p_value == pytest.approx(2 * (1 + 6) / 2**6)  # b=1, c=5: 0.21875


def _exact_bootstrap_cdf(diffs: np.ndarray):
    """The bootstrap distribution of the mean difference, by enumerating every resample."""
    n = len(diffs)
    means = np.array([diffs[list(idx)].mean() for idx in itertools.product(range(n), repeat=n)])
    eps = 1e-9  # resample means are sums of floats: compare with a little slack

    def cdf(x: float, strict: bool = False) -> float:
        return float(np.mean(means < x - eps if strict else means <= x + eps))

    return cdf


@pytest.mark.parametrize(
    ("base", "other"),
    [
        ([1, 0, 0, 1, 0], [1, 1, 0, 1, 1]),
        ([1, 1, 1, 0, 1, 0], [0, 1, 0, 0, 1, 1]),
        ([0.0, 2.5, 7.0, 4.0, 9.0], [1.0, 2.0, 8.5, 6.0, 9.0]),
    ],
)
def test_bootstrap_interval_matches_the_exact_bootstrap_distribution(base, other) -> None:
    """With every resample enumerated (n**n of them), the 2.5% and 97.5% points are known;
    10,000 random resamples must land on them (up to Monte Carlo error in the tail mass)."""
    base, other = np.array(base, dtype=float), np.array(other, dtype=float)
    cdf = _exact_bootstrap_cdf(other - base)
    result = stats.paired_bootstrap(base, other, stats.mean, resamples=10_000, seed=3)
    low, high = result.diff.low, result.diff.high
    tol = 0.01
    assert cdf(low, strict=True) <= 0.025 + tol and cdf(low) >= 0.025 - tol
    assert cdf(high, strict=True) <= 0.975 + tol and cdf(high) >= 0.975 - tol


def test_bootstrap_hand_cases() -> None:
    # Two documents, differences 0 and 1: resample means are 0 (1/4), 0.5 (1/2), 1 (1/4).
    result = stats.paired_bootstrap(np.array([1.0, 0.0]), np.array([1.0, 1.0]), stats.mean)
    assert (result.diff.low, result.diff.high) == (0.0, 1.0)
    # The same difference on every document: the interval is that difference.
    same = stats.paired_bootstrap(np.zeros(30), np.full(30, 0.5), stats.mean)
    assert same.diff.low == same.diff.high == pytest.approx(0.5)
    # Identical runs: no difference at all, whatever the resample.
    x = np.random.default_rng(0).integers(0, 2, 50).astype(float)
    assert stats.paired_bootstrap(x, x, stats.mean).diff == stats.Interval(0.0, 0.0)


def test_bootstrap_is_seeded_and_pairs_documents() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2, 200).astype(float)
    other = np.where(rng.random(200) < 0.9, base, 1 - base)  # 90% of answers agree
    a = stats.paired_bootstrap(base, other, stats.mean, seed=7)
    assert a == stats.paired_bootstrap(base, other, stats.mean, seed=7)
    assert a != stats.paired_bootstrap(base, other, stats.mean, seed=8)
    # Paired is much narrower than the unpaired view of the same data.
    unpaired = 1.96 * math.sqrt(base.var(ddof=1) / 200 + other.var(ddof=1) / 200)
    assert a.diff.high - a.diff.low < unpaired
    # Large n: close to the normal approximation of the paired difference.
    d = other - base
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
    assert a.diff.low == pytest.approx(d.mean() - half, abs=0.015)
    assert a.diff.high == pytest.approx(d.mean() + half, abs=0.015)


def test_macro_f1_matches_scikit_learn_on_every_resample() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 40)
    pred = np.where(rng.random(40) < 0.5, gold, rng.integers(0, 3, 40))
    pairs = np.stack([gold, pred], axis=1)
    idx = rng.integers(0, 40, size=(200, 40))
    ours = stats.macro_f1(pairs[idx])
    for row, value in zip(idx, ours, strict=True):
        assert value == pytest.approx(f1_score(gold[row], pred[row], average="macro"), abs=1e-12)
    # Classes absent from a resample (here: class 2 never appears) are left out, as sklearn does.
    two = np.array([[0, 0], [1, 0], [1, 1]])
    assert stats.macro_f1(two[None])[0] == pytest.approx(
        f1_score([0, 1, 1], [0, 0, 1], average="macro")
    )


def test_bootstrap_needs_paired_documents() -> None:
    with pytest.raises(ValueError):
        stats.paired_bootstrap(np.zeros(3), np.zeros(4), stats.mean)


# ---------------------------------------------------------------- ratio metrics (bits per byte)

# (log-likelihood, bytes) of four documents of very different lengths, for two runs.
_BASE_DOCS = np.array([[-40.0, 20.0], [-900.0, 400.0], [-75.0, 30.0], [-300.0, 160.0]])
_OTHER_DOCS = np.array([[-38.0, 20.0], [-1000.0, 400.0], [-70.0, 30.0], [-310.0, 160.0]])


def _exact_ratio_cdf(base: np.ndarray, other: np.ndarray):
    """The bootstrap distribution of the bits-per-byte difference by enumerating every
    resample of documents, each side recomputed as -sum(ll) / (ln 2 * sum(bytes))."""
    n = len(base)
    diffs = []
    for idx in itertools.product(range(n), repeat=n):
        rows = list(idx)
        bpb = [-x[rows, 0].sum() / (math.log(2) * x[rows, 1].sum()) for x in (base, other)]
        diffs.append(bpb[1] - bpb[0])
    diffs_arr = np.array(diffs)

    def cdf(x: float, strict: bool = False) -> float:
        return float(np.mean(diffs_arr < x - 1e-12 if strict else diffs_arr <= x + 1e-12))

    return cdf


def test_bits_per_byte_is_lm_evals_ratio_of_sums() -> None:
    expected = -(-40 - 900 - 75 - 300) / (math.log(2) * (20 + 400 + 30 + 160))
    assert stats.bits_per_byte(_BASE_DOCS[None, ...])[0] == pytest.approx(expected, rel=1e-12)
    perplexity = math.exp((40 + 900 + 75 + 300) / (20 + 400 + 30 + 160))
    assert stats.weighted_perplexity(_BASE_DOCS[None, ...])[0] == pytest.approx(perplexity)
    assert set(stats.RATIO_STATISTICS) == {"bits_per_byte", "weighted_perplexity"}


def test_ratio_bootstrap_matches_the_exact_bootstrap_distribution() -> None:
    """All 4**4 resamples enumerated with numpy: the interval's ends sit at the 2.5% and
    97.5% points of that distribution; the mean of per-document ratios would not."""
    cdf = _exact_ratio_cdf(_BASE_DOCS, _OTHER_DOCS)
    result = stats.paired_bootstrap(_BASE_DOCS, _OTHER_DOCS, stats.bits_per_byte, 20_000, seed=5)
    tol = 0.01
    low, high = result.diff.low, result.diff.high
    assert cdf(low, strict=True) <= 0.025 + tol and cdf(low) >= 0.025 - tol
    assert cdf(high, strict=True) <= 0.975 + tol and cdf(high) >= 0.975 - tol
    # Each run's own interval is about its own corpus figure.
    full = stats.bits_per_byte(_OTHER_DOCS[None, ...])[0]
    assert result.other.low <= full <= result.other.high

    def mean_of_ratios(pairs: np.ndarray) -> np.ndarray:
        return (-pairs[..., 0] / (math.log(2) * pairs[..., 1])).mean(axis=-1)

    wrong = stats.paired_bootstrap(_BASE_DOCS, _OTHER_DOCS, mean_of_ratios, 20_000, seed=5)
    assert abs(wrong.diff.high - high) > 0.01  # the two statistics are told apart here


def test_ratio_bootstrap_against_an_independent_numpy_loop() -> None:
    """30 documents: a plain loop over resamples with its own generator gives the same
    interval up to Monte Carlo error."""
    rng = np.random.default_rng(11)
    n_bytes = rng.integers(50, 1200, 30).astype(float)
    base = np.column_stack([-n_bytes * rng.uniform(2.0, 3.0, 30), n_bytes])
    other = np.column_stack([base[:, 0] * rng.uniform(0.95, 1.03, 30), n_bytes])
    loop_rng = np.random.default_rng(99)
    diffs = []
    for _ in range(20_000):
        idx = loop_rng.integers(0, 30, 30)
        a = -base[idx, 0].sum() / (math.log(2) * base[idx, 1].sum())
        b = -other[idx, 0].sum() / (math.log(2) * other[idx, 1].sum())
        diffs.append(b - a)
    low, high = np.percentile(diffs, [2.5, 97.5])
    result = stats.paired_bootstrap(base, other, stats.bits_per_byte, 20_000, seed=0)
    width = high - low
    assert result.diff.low == pytest.approx(low, abs=0.05 * width)
    assert result.diff.high == pytest.approx(high, abs=0.05 * width)
