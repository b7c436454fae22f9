"""The pairwise statistics against hand computations and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports import pairwise_stats as ps


def _battles(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_a": [r[0] for r in rows],
            "model_b": [r[1] for r in rows],
            "score_a": [r[2] for r in rows],
            "question": list(range(len(rows))),
        }
    )


def test_bradley_terry_of_one_pair_is_the_log_odds_by_hand() -> None:
    # X beats base 3 times, loses once, ties twice: 4 wins of 6 (ties as half), so the
    # maximum-likelihood log-strength is log(4 / 2).
    battles = _battles([("base", "X", 0.0)] * 3 + [("base", "X", 1.0)] + [("base", "X", 0.5)] * 2)
    scores = ps.bradley_terry(battles, "base")
    assert scores["base"] == 0.0
    assert scores["X"] == pytest.approx(math.log(2), abs=1e-4)
    assert ps.to_probability(scores["X"]) == pytest.approx(4 / 6, abs=1e-4)


def test_bradley_terry_of_a_small_table_solves_its_score_equations() -> None:
    """base, X, Y with every pair played: the fit must satisfy, for each model, observed
    wins = expected wins (the likelihood's score equations, solvable by hand); checked
    against a direct solution of them by fixed-point (Zermelo's iteration)."""
    table = {("base", "X"): (1, 3), ("base", "Y"): (2, 2), ("X", "Y"): (3, 1)}  # (a wins, b wins)
    rows = []
    for (a, b), (wa, wb) in table.items():
        rows += [(a, b, 1.0)] * wa + [(a, b, 0.0)] * wb
    scores = ps.bradley_terry(_battles(rows), "base")
    strength = {m: math.exp(s) for m, s in scores.items()}
    for model in strength:
        observed = expected = 0.0
        for (a, b), (wa, wb) in table.items():
            if model in (a, b):
                mine, theirs = (a, b) if model == a else (b, a)
                observed += wa if model == a else wb
                expected += (wa + wb) * strength[mine] / (strength[mine] + strength[theirs])
        assert observed == pytest.approx(expected, abs=1e-4), model
    # Zermelo: p_i = W_i / sum_j n_ij / (p_i + p_j), normalised so base = 1.
    p = {"base": 1.0, "X": 1.0, "Y": 1.0}
    for _ in range(2000):
        new = {}
        for m in p:
            wins = sum(wa if m == a else wb for (a, b), (wa, wb) in table.items() if m in (a, b))
            denom = sum(
                (wa + wb) / (p[a] + p[b]) for (a, b), (wa, wb) in table.items() if m in (a, b)
            )
            new[m] = wins / denom
        p = {m: v / new["base"] for m, v in new.items()}
    assert scores["X"] == pytest.approx(math.log(p["X"]), abs=1e-4)
    assert scores["Y"] == pytest.approx(math.log(p["Y"]), abs=1e-4)


def test_the_hand_written_fit_matches_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(200), rng.normal(size=200)])
    y = (rng.random(200) < 1 / (1 + np.exp(-(0.3 + 1.2 * x[:, 1])))).astype(float)
    ours = ps.logistic_fit(x, y, np.ones(200), ridge=0.0)[0]
    theirs = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=1000)
    theirs.fit(x, y)
    assert ours == pytest.approx(theirs.coef_[0], abs=1e-5)


def test_an_all_wins_resample_stays_finite() -> None:
    battles = _battles([("base", "X", 0.0)] * 5)
    assert math.isfinite(ps.bradley_terry(battles, "base")["X"])
    interval = ps.bradley_terry_intervals(battles, "base", 50)["X"]
    assert interval is not None and interval.low > 5


def test_win_rate_counts_ties_as_half_and_resamples_questions() -> None:
    questions = [1, 1, 2, 2, 3, 3]
    outcomes = ["win", "win", "tie", "loss", "win", "tie"]
    rate = ps.win_rate(questions, outcomes, 4000)
    assert (rate.wins, rate.ties, rate.losses, rate.questions) == (3, 2, 1, 3)
    assert rate.rate == pytest.approx(4 / 6)
    # Question means 1, 0.25, 0.75: the bootstrap can reach neither below 0.25 nor above 1.
    assert 0.25 <= rate.interval.low < rate.rate < rate.interval.high <= 1.0


def test_a_question_is_resampled_whole() -> None:
    """Two questions, one all wins, one all losses: a resample holds 0, 1 or 2 copies of
    each, so the rate is 0, 0.5 or 1 and never anything between (a turn-level bootstrap
    would give 0.25 and 0.75 too)."""
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 2, size=(2000, 2))
    num, den = np.array([2.0, 0.0]), np.array([2.0, 2.0])
    values = set(np.round(num[idx].sum(axis=1) / den[idx].sum(axis=1), 6))
    assert values <= {0.0, 0.5, 1.0}
    interval = ps.cluster_bootstrap_ratio(num, den, 2000)
    assert interval.low == 0.0 and interval.high == 1.0


def test_length_control_reads_the_rate_at_equal_length() -> None:
    # Wins exactly when longer, ties at equal length: at equal length the rate is 1/2.
    diff = np.array([0, 0, 0, 0, 50, 80, 120, 200, -40, -90] * 3, float)
    values = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    result = ps.length_controlled(np.arange(30), values, 500 + diff, np.full(30, 500.0), 200)
    assert values.mean() == pytest.approx(0.6)
    assert result.rate == pytest.approx(0.5, abs=0.01) and result.slope > 3


def test_agreement_measures() -> None:
    a = np.array([1, 2, 3, 4, 5.0])
    agree = ps.score_agreement(a, a * 2)
    assert agree.spearman == pytest.approx(1.0) and agree.kendall == pytest.approx(1.0)
    assert ps.score_agreement(a, -a).spearman == pytest.approx(-1.0)
    # Cohen's kappa by hand: observed agreement 5/6; chance: judge 1 (3 win, 3 loss), judge
    # 2 (2 win, 4 loss) -> 3/6*2/6 + 3/6*4/6 = 1/2; kappa = (5/6 - 1/2) / (1 - 1/2) = 2/3.
    one = ["win", "win", "win", "loss", "loss", "loss"]
    two = ["win", "win", "loss", "loss", "loss", "loss"]
    assert ps.verdict_kappa(one, two) == pytest.approx(2 / 3)
    assert ps.verdict_kappa(one, one) == 1.0
