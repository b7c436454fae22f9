"""Fusion functions (FUSION_REFERENCE.md, section 3): one row's candidate distributions -> one.

Candidates are [T, S1, S2, ...]: the target's own top-k and each source projected onto the
target (ids in V_T, log-probabilities renormalised over the kept entries), with each model's
sequence CE on the row (its mean gold-token NLL). Where a source has no projection (the last
position when it had no match there) the target's own distribution stands in for it.

- ``min_ce``: the candidate with the lowest CE (ties: the first of [T, S1, ...]).
- ``avg_ce``: sum_m w_m P_m, w = softmax_m(exp(-CE_m)) (nearly uniform: exp(-CE) lies in
  (0, 1]; the references' choice, kept as specified).
- ``avg_ce_sharp``: the same with w = softmax_m(-CE_m / temperature), a named sharper option.

For the averages the union of the candidates' ids is summed and the ``k`` most probable
entries are kept (ties: the entry that appears first, target before sources); their
log-probabilities are stored un-renormalised (log of the fused mass), which the trainer's
softmax over kept entries renormalises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fusion.store import PAD_ID

METHODS = ("min_ce", "avg_ce", "avg_ce_sharp")


@dataclass
class Candidate:
    """One model's distribution over V_T on a row: [m, k] ids (PAD_ID unused), log-probs."""

    ids: np.ndarray
    logprobs: np.ndarray
    ce: float


def weights(ces: Sequence[float], method: str, temperature: float = 1.0) -> np.ndarray:
    """Per-candidate weights: one-hot on the min-CE candidate, or a softmax."""
    ce = np.asarray(ces, dtype=np.float64)
    if method == "min_ce":
        out = np.zeros_like(ce)
        out[int(np.argmin(ce))] = 1.0  # argmin returns the first of equal minima
        return out
    if method == "avg_ce":
        logits = np.exp(-ce)
    elif method == "avg_ce_sharp":
        logits = -ce / temperature
    else:
        raise ValueError(f"unknown fusion method {method!r}; known: {', '.join(METHODS)}")
    logits = logits - logits.max()
    return np.exp(logits) / np.exp(logits).sum()


def _fill_missing(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Positions where a source has no entry at all take the target's own distribution."""
    own = candidates[0]
    out = [own]
    for cand in candidates[1:]:
        empty = (cand.ids == PAD_ID).all(axis=1)
        ids, logprobs = cand.ids.copy(), cand.logprobs.copy()
        ids[empty], logprobs[empty] = own.ids[empty], own.logprobs[empty]
        out.append(Candidate(ids, logprobs, cand.ce))
    return out


def fuse_row(
    candidates: Sequence[Candidate], method: str, k: int, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fused [m, k] ids (PAD_ID unused) and log-probabilities (-inf unused) of one row."""
    cands = _fill_missing(candidates)
    w = weights([c.ce for c in cands], method, temperature)
    if method == "min_ce":
        best = cands[int(np.argmax(w))]
        return _fit(best.ids, best.logprobs, k)
    ids = np.concatenate([c.ids for c in cands], axis=1)
    mass = np.concatenate(
        [wm * np.exp(c.logprobs.astype(np.float64)) for wm, c in zip(w, cands, strict=True)],
        axis=1,
    )
    mass[ids == PAD_ID] = 0.0
    same = (ids[:, :, None] == ids[:, None, :]) & (ids[:, None, :] != PAD_ID)
    total = (same * mass[:, None, :]).sum(axis=2)
    first = ~np.tril(same, k=-1).any(axis=2)
    total[~first | (ids == PAD_ID)] = -1.0
    order = np.argsort(-total, axis=1, kind="stable")[:, :k]
    kept_ids = np.take_along_axis(ids, order, axis=1)
    kept = np.take_along_axis(total, order, axis=1)
    kept_ids[kept <= 0] = PAD_ID
    with np.errstate(divide="ignore"):
        logprobs = np.where(kept > 0, np.log(np.maximum(kept, 1e-300)), -np.inf)
    return _fit(kept_ids, logprobs.astype(np.float32), k)


def _fit(ids: np.ndarray, logprobs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad or cut to exactly k columns."""
    m, width = ids.shape
    if width >= k:
        return ids[:, :k].astype(np.int32), logprobs[:, :k].astype(np.float32)
    pad_ids = np.full((m, k - width), PAD_ID, dtype=np.int32)
    pad_lp = np.full((m, k - width), -np.inf, dtype=np.float32)
    return (np.concatenate([ids.astype(np.int32), pad_ids], axis=1),
            np.concatenate([logprobs.astype(np.float32), pad_lp], axis=1))  # fmt: skip
