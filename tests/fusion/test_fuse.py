"""MinCE / AvgCE against small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.fuse import Candidate, fuse_row, weights
from fusion.store import PAD_ID


def cand(ids: list[list[int]], probs: list[list[float]], ce: float) -> Candidate:
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return Candidate(np.asarray(ids, np.int32), np.log(p).astype(np.float32), ce)


def test_weights_hand_computed() -> None:
    assert weights([2.0, 1.0, 1.0], "min_ce").tolist() == [0, 1, 0]  # tie: the first
    assert weights([1.0, 1.0], "min_ce").tolist() == [1, 0]  # tie with the target: target
    r = np.exp(-np.array([2.0, 1.0]))
    np.testing.assert_allclose(weights([2.0, 1.0], "avg_ce"), np.exp(r) / np.exp(r).sum())
    # softmax(-CE / 0.5) = softmax([-4, -2])
    np.testing.assert_allclose(
        weights([2.0, 1.0], "avg_ce_sharp", 0.5), [1 / (1 + math.e**2), math.e**2 / (1 + math.e**2)]
    )


def test_min_ce_takes_the_lowest_ce_candidate_and_fills_its_empty_positions() -> None:
    target = cand([[1, 2], [3, 4]], [[0.6, 0.4], [0.9, 0.1]], ce=2.0)
    source = cand([[5, PAD_ID], [PAD_ID, PAD_ID]], [[1.0, 0.0], [0.0, 0.0]], ce=1.0)
    ids, logp = fuse_row([target, source], "min_ce", k=3)
    assert ids.tolist() == [[5, PAD_ID, PAD_ID], [3, 4, PAD_ID]]  # last: the target's own
    np.testing.assert_allclose(np.exp(logp[1, :2]), [0.9, 0.1], rtol=1e-6)
    assert logp[0, 0] == 0 and np.isneginf(logp[0, 1:]).all()


def test_avg_ce_sums_the_union_and_keeps_the_top_k() -> None:
    # weights w = softmax(exp(-[1, 2])) = softmax([0.3679, 0.1353])
    r = np.exp(-np.array([1.0, 2.0]))
    w = np.exp(r) / np.exp(r).sum()
    target = cand([[1, 2, 3]], [[0.5, 0.3, 0.2]], ce=1.0)
    source = cand([[2, 4, PAD_ID]], [[0.7, 0.3, 0.0]], ce=2.0)
    ids, logp = fuse_row([target, source], "avg_ce", k=3)
    mass = {1: w[0] * 0.5, 2: w[0] * 0.3 + w[1] * 0.7, 3: w[0] * 0.2, 4: w[1] * 0.3}
    best = sorted(mass, key=lambda t: -mass[t])[:3]
    assert ids[0].tolist() == best
    np.testing.assert_allclose(np.exp(logp[0]), [mass[t] for t in best], rtol=1e-6)


def test_avg_ce_sharp_with_a_low_temperature_approaches_min_ce() -> None:
    target = cand([[1, 2]], [[0.5, 0.5]], ce=3.0)
    source = cand([[7, 8]], [[0.9, 0.1]], ce=1.0)
    ids, logp = fuse_row([target, source], "avg_ce_sharp", k=2, temperature=0.01)
    assert ids[0].tolist() == [7, 8]
    np.testing.assert_allclose(np.exp(logp[0]), [0.9, 0.1], rtol=1e-5)
    with pytest.raises(ValueError, match="unknown fusion method"):
        weights([1.0], "max_ce")
