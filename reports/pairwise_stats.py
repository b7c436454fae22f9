"""Statistics of pairwise verdicts: win rates with a question-level bootstrap, Bradley-Terry
scores, a length-controlled win rate, and agreement between judges. Pure functions of arrays
and frames; nothing here reads files.

- Win rate: wins plus half the ties over the judgments. The unit resampled is the *question*
  (both turns together, as they share a question and a conversation), so the interval is a
  ratio of resampled sums (a cluster bootstrap), percentile method, seeded.
- Bradley-Terry, as Arena-Hard fits it: a logistic regression without intercept on +1 / -1
  columns for the two models of each battle; a tie is two half-weight battles, one won by
  each side. Scores are log-strengths with the anchor (the base) at 0, so a score reads
  directly as the log-odds of beating the base; intervals from refitting on resampled
  questions.
- Length control, as AlpacaEval 2 does it in spirit: a logistic model of the outcome on
  ``tanh(length difference / its standard deviation)``, read at equal length (the
  intercept). A judge that rewards length puts the effect in the slope, not the intercept.
- Agreement: Spearman and Kendall correlations of per-question scores (scipy), Cohen's kappa
  of categorical verdicts (scikit-learn).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.stats import DEFAULT_SEED, Interval

OUTCOME_VALUE = {"win": 1.0, "tie": 0.5, "loss": 0.0}
LEVEL = 0.95


def _percentiles(values: np.ndarray, level: float = LEVEL) -> Interval | None:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    low, high = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return Interval(float(low), float(high))


def cluster_bootstrap_ratio(
    numerators: np.ndarray,
    denominators: np.ndarray,
    resamples: int,
    seed: int = DEFAULT_SEED,
    level: float = LEVEL,
) -> Interval | None:
    """Interval of sum(numerators) / sum(denominators) when whole clusters (questions, one
    entry each) are resampled with replacement."""
    num, den = np.asarray(numerators, float), np.asarray(denominators, float)
    if len(num) == 0 or den.sum() == 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(resamples, len(num)))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    return _percentiles(ratios, level)


@dataclass(frozen=True)
class WinRate:
    wins: int
    ties: int
    losses: int
    rate: float | None  # (wins + ties / 2) / judgments; None without an ok judgment
    interval: Interval | None
    questions: int  # questions with at least one ok judgment


def win_rate(
    questions: Sequence, outcomes: Sequence[str], resamples: int, seed: int = DEFAULT_SEED
) -> WinRate:
    """Win rate of ``outcomes`` (win / tie / loss, one per ok judgment) with a bootstrap
    over ``questions`` (the question of each judgment)."""
    frame = pd.DataFrame({"q": list(questions), "v": [OUTCOME_VALUE[o] for o in outcomes]})
    counts = pd.Series(list(outcomes), dtype=object).value_counts()
    wins, ties, losses = (int(counts.get(k, 0)) for k in ("win", "tie", "loss"))
    if frame.empty:
        return WinRate(0, 0, 0, None, None, 0)
    per_q = frame.groupby("q", sort=False)["v"].agg(["sum", "count"])
    interval = cluster_bootstrap_ratio(
        per_q["sum"].to_numpy(), per_q["count"].to_numpy(), resamples, seed
    )
    return WinRate(wins, ties, losses, float(frame["v"].mean()), interval, len(per_q))


# ---------------------------------------------------------------- logistic fits


def logistic_fit(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, ridge: float = 1e-6, iterations: int = 100
) -> np.ndarray:
    """Weighted logistic regressions of ``y`` (in [0, 1]: a tie is 0.5) on ``x`` (n, p), one
    per row of ``weights`` (B, n), fitted together: coefficients (B, p).

    Written by hand (damped Newton, batched with numpy) rather than with scikit-learn, which
    is installed: every bootstrap resample is a refit, and scikit-learn fits one model per
    call (300 Bradley-Terry refits took 17 s on this machine, this takes well under one).
    The fit is checked against scikit-learn's and a hand computation in the tests. A tiny
    ridge keeps coefficients finite when a resample is all wins (complete separation).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    weights = np.atleast_2d(np.asarray(weights, float))
    beta = np.zeros((weights.shape[0], x.shape[1]))
    eye = np.eye(x.shape[1])
    for _ in range(iterations):
        mu = 1 / (1 + np.exp(-(beta @ x.T)))
        grad = (weights * (y - mu)) @ x - ridge * beta
        hessian = np.einsum("bn,ni,nj->bij", weights * mu * (1 - mu), x, x) + ridge * eye
        step = np.linalg.solve(hessian, grad[..., None])[..., 0]
        # Damped: at most 5 log-odds per iteration, so a near-separable resample cannot jump.
        size = np.abs(step).max(axis=1, keepdims=True)
        step = step * np.minimum(1.0, 5.0 / np.maximum(size, 1e-300))
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return beta


def _cluster_weights(questions: Sequence, resamples: int, seed: int) -> np.ndarray:
    """(resamples, rows): how often each row's question was drawn in each resample."""
    codes, uniques = pd.factorize(pd.Series(list(questions)))
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(uniques), size=(resamples, len(uniques)))
    counts = np.zeros((resamples, len(uniques)))
    np.add.at(counts, (np.arange(resamples)[:, None], drawn), 1.0)
    return counts[:, codes]


# ---------------------------------------------------------------- Bradley-Terry


def _bt_design(battles: pd.DataFrame, anchor: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Arena-Hard's layout less the anchor's column (its strength is fixed at 0): a row per
    battle, +1 for model_a, -1 for model_b; y is model_a's score (1, 0.5, 0)."""
    others = sorted((set(battles["model_a"]) | set(battles["model_b"])) - {anchor})
    index = {m: i for i, m in enumerate(others)}
    x = np.zeros((len(battles), len(others)))
    for side, sign in (("model_a", 1.0), ("model_b", -1.0)):
        for row, model in enumerate(battles[side]):
            if model != anchor:
                x[row, index[model]] = sign
    return others, x, battles["score_a"].to_numpy(dtype=float)


def bradley_terry(battles: pd.DataFrame, anchor: str) -> dict[str, float]:
    """Log-strengths of every model in ``battles`` (columns model_a, model_b, score_a with
    1 = a won, 0.5 tie, 0 = b won), ``anchor`` at 0: a score is the log-odds of beating the
    anchor."""
    others, x, y = _bt_design(battles, anchor)
    beta = logistic_fit(x, y, np.ones(len(y)))[0]
    return {anchor: 0.0, **{m: float(b) for m, b in zip(others, beta, strict=True)}}


def bradley_terry_intervals(
    battles: pd.DataFrame, anchor: str, resamples: int, seed: int = DEFAULT_SEED
) -> dict[str, Interval | None]:
    """Percentile intervals of the scores, refitted on battles of resampled questions
    (column ``question``); the anchor has none."""
    others, x, y = _bt_design(battles, anchor)
    betas = logistic_fit(x, y, _cluster_weights(battles["question"], resamples, seed))
    return {
        anchor: None,
        **{m: _percentiles(betas[:, i]) for i, m in enumerate(others)},
    }


def to_probability(score: float) -> float:
    """A log-odds (a Bradley-Terry score, an intercept) as a probability."""
    return 1 / (1 + math.exp(-score))


# ---------------------------------------------------------------- length control


def length_feature(other_len: np.ndarray, base_len: np.ndarray) -> np.ndarray:
    """tanh of the length difference over its standard deviation (AlpacaEval 2's feature):
    bounded, so that one runaway answer does not dominate the fit."""
    diff = np.asarray(other_len, float) - np.asarray(base_len, float)
    scale = diff.std()
    return np.tanh(diff / scale) if scale > 0 else np.zeros_like(diff)


@dataclass(frozen=True)
class LengthControlled:
    rate: float | None  # the win rate the model predicts at equal length
    interval: Interval | None
    slope: float | None  # log-odds per unit of the length feature: > 0, longer wins


def length_controlled(
    questions: Sequence,
    values: np.ndarray,
    other_len: np.ndarray,
    base_len: np.ndarray,
    resamples: int,
    seed: int = DEFAULT_SEED,
) -> LengthControlled:
    """A logistic model of ``values`` (1 win, 0.5 tie, 0 loss) on an intercept and the length
    feature, read at equal length (the intercept); intervals from resampled questions."""
    v = np.asarray(values, float)
    if len(v) == 0:
        return LengthControlled(None, None, None)
    x = np.column_stack([np.ones(len(v)), length_feature(other_len, base_len)])
    point = logistic_fit(x, v, np.ones(len(v)))[0]
    boot = logistic_fit(x, v, _cluster_weights(questions, resamples, seed))
    rates = 1 / (1 + np.exp(-boot[:, 0]))
    return LengthControlled(to_probability(point[0]), _percentiles(rates), float(point[1]))


# ---------------------------------------------------------------- agreement between judges


@dataclass(frozen=True)
class Correlation:
    spearman: float
    kendall: float
    n: int


def score_agreement(a: np.ndarray, b: np.ndarray) -> Correlation:
    """Rank correlations of two judges' scores of the same answers (NaN when either judge
    gave every answer one score)."""
    from scipy.stats import kendalltau, spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input: NaN, reported as such
        return Correlation(
            float(spearmanr(a, b).statistic), float(kendalltau(a, b).statistic), len(a)
        )


def verdict_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two judges' verdicts (win / tie / loss) on the same judgments."""
    from sklearn.metrics import cohen_kappa_score

    if list(a) == list(b):
        return 1.0  # sklearn gives NaN when both judges always say the same one label
    return float(cohen_kappa_score(list(a), list(b)))
