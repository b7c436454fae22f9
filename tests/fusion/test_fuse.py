"""MinCE / AvgCE against small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.fuse import Candidate, aligned_ce, fuse_row, weights
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
    ids, logp, dropped = fuse_row([target, source], "min_ce")
    assert ids.tolist() == [[5, PAD_ID], [3, 4]]  # last: the target's own
    np.testing.assert_allclose(np.exp(logp[1, :2]), [0.9, 0.1], rtol=1e-6)
    assert logp[0, 0] == 0 and np.isneginf(logp[0, 1:]).all()
    assert dropped.tolist() == [0.0, 0.0]


def test_avg_ce_stores_the_whole_mixture() -> None:
    """The specified mixture, every entry of the union: nothing is cut (the old code kept the
    k most probable and left the stored target far from the mixture)."""
    # weights w = softmax(exp(-[1, 2])) = softmax([0.3679, 0.1353])
    r = np.exp(-np.array([1.0, 2.0]))
    w = np.exp(r) / np.exp(r).sum()
    target = cand([[1, 2, 3]], [[0.5, 0.3, 0.2]], ce=1.0)
    source = cand([[2, 4, PAD_ID]], [[0.7, 0.3, 0.0]], ce=2.0)
    ids, logp, dropped = fuse_row([target, source], "avg_ce")
    mass = {1: w[0] * 0.5, 2: w[0] * 0.3 + w[1] * 0.7, 3: w[0] * 0.2, 4: w[1] * 0.3}
    order = sorted(mass, key=lambda t: -mass[t])
    assert ids[0].tolist() == order  # all four, most probable first
    np.testing.assert_allclose(np.exp(logp[0]), [mass[t] for t in order], rtol=1e-6)
    assert np.exp(logp[0]).sum() == pytest.approx(1.0)
    assert dropped.tolist() == [0.0]


def test_avg_ce_keep_cuts_and_reports_the_dropped_mass() -> None:
    r = np.exp(-np.array([1.0, 2.0]))
    w = np.exp(r) / np.exp(r).sum()
    target = cand([[1, 2, 3]], [[0.5, 0.3, 0.2]], ce=1.0)
    source = cand([[2, 4, PAD_ID]], [[0.7, 0.3, 0.0]], ce=2.0)
    ids, logp, dropped = fuse_row([target, source], "avg_ce", keep=2)
    mass = {1: w[0] * 0.5, 2: w[0] * 0.3 + w[1] * 0.7, 3: w[0] * 0.2, 4: w[1] * 0.3}
    order = sorted(mass, key=lambda t: -mass[t])
    assert ids[0].tolist() == order[:2]
    assert dropped[0] == pytest.approx(sum(mass[t] for t in order[2:]))


def test_positions_keep_their_own_width_with_unused_entries_last() -> None:
    target = cand([[1, 2], [3, 4]], [[0.5, 0.5], [0.9, 0.1]], ce=1.0)
    source = cand([[1, PAD_ID], [5, 6]], [[1.0, 0.0], [0.5, 0.5]], ce=1.0)
    ids, logp, _ = fuse_row([target, source], "avg_ce")
    assert ids.shape == (2, 4)
    assert ids[0].tolist()[2:] == [PAD_ID, PAD_ID] and np.isneginf(logp[0, 2:]).all()
    assert sorted(ids[1].tolist()) == [3, 4, 5, 6]


def test_aligned_ce_scores_every_candidate_on_the_target_gold_tokens() -> None:
    """By hand: gold next tokens 7 then 8. The target holds 7 at 0.5 (mass 0.9 kept) and lacks
    8 (tail 0.1 over V - 2 = 98 ids); the source holds 7 at 0.25 x 0.8 and 8 at 1.0 x 0.6."""
    target = cand([[7, 9], [9, 3]], [[0.5 / 0.9, 0.4 / 0.9], [0.5, 0.5]], ce=5.0)
    source = cand([[1, 7], [8, PAD_ID]], [[0.75, 0.25], [1.0, 0.0]], ce=1.0)
    masses = [np.array([0.9, 0.9, 1.0]), np.array([0.8, 0.6, 1.0])]
    gold = np.array([0, 7, 8])
    ces = aligned_ce([target, source], masses, gold, np.array([0, 1]), vocab_size=100)
    want_t = -(math.log(0.5) + math.log(0.1 / 98)) / 2
    want_s = -(math.log(0.25 * 0.8) + math.log(0.6)) / 2
    assert ces == pytest.approx([want_t, want_s], rel=1e-6)
    # min_ce_aligned weighs as min_ce, on these scores: the source wins
    assert weights(ces, "min_ce_aligned").tolist() == [0, 1]


def test_avg_ce_sharp_with_a_low_temperature_approaches_min_ce() -> None:
    target = cand([[1, 2]], [[0.5, 0.5]], ce=3.0)
    source = cand([[7, 8]], [[0.9, 0.1]], ce=1.0)
    ids, logp, _ = fuse_row([target, source], "avg_ce_sharp", temperature=0.01)
    assert ids[0].tolist()[:2] == [7, 8]
    np.testing.assert_allclose(np.exp(logp[0, :2]), [0.9, 0.1], rtol=1e-5)
    with pytest.raises(ValueError, match="unknown fusion method"):
        weights([1.0], "max_ce")


def test_a_model_without_gold_positions_never_wins() -> None:
    """A one-token row has no gold position: its stored mean NLL of 0 must not win MinCE."""
    inf = float("inf")
    assert weights([8.0, inf, 9.0], "min_ce").tolist() == [1, 0, 0]
    sharp = weights([8.0, inf, 9.0], "avg_ce_sharp", 1.0)
    assert sharp[1] == 0 and sharp.sum() == pytest.approx(1.0)
    assert weights([inf, inf], "avg_ce_sharp").tolist() == [0.5, 0.5]


def test_without_the_target_only_sources_teach_and_the_target_fills_gaps() -> None:
    """fuse.include_target: false: the target's own distribution wins nothing even with the
    lowest CE, has weight 0 in the averages, and still fills positions no source covers."""
    assert weights([0.5, 2.0, 1.0], "min_ce", include_target=False).tolist() == [0, 0, 1]
    w = weights([0.5, 2.0, 1.0], "avg_ce", include_target=False)
    r = np.exp(-np.array([2.0, 1.0]))
    np.testing.assert_allclose(w, [0.0, *(np.exp(r) / np.exp(r).sum())])
    target = cand([[1, 2], [3, 4]], [[0.6, 0.4], [0.9, 0.1]], ce=0.5)
    source = cand([[5, PAD_ID], [PAD_ID, PAD_ID]], [[1.0, 0.0], [0.0, 0.0]], ce=3.0)
    ids, _, _ = fuse_row([target, source], "min_ce", include_target=False)
    assert ids.tolist() == [[5, PAD_ID], [3, 4]]
    assert fuse_row([target, source], "min_ce")[0].tolist() == [[1, 2], [3, 4]]
