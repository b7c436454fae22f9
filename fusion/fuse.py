"""Fusion functions (FUSION_REFERENCE.md, section 3): one row's candidate distributions -> one.

Candidates are [T, S1, S2, ...]: the target's own top-k and each source projected onto the
target (ids in V_T, log-probabilities renormalised over the kept entries), each with a row
score ``ce``. Where a source has no projection (the last position when it had no match there)
the target's own distribution stands in for it.

- ``min_ce``: the candidate with the lowest CE (ties: the first of [T, S1, ...]).
- ``avg_ce``: sum_m w_m P_m, w = softmax_m(exp(-CE_m)) (nearly uniform: exp(-CE) lies in
  (0, 1]; the references' choice, kept as specified).
- ``avg_ce_sharp``: the same with w = softmax_m(-CE_m / temperature), a named sharper option.
- ``min_ce_aligned`` / ``avg_ce_aligned``: the same rules, with CE_m measured like with like
  (``aligned_ce``): every candidate's distribution over V_T against the target's gold tokens,
  on the same positions. The native CE (FuseLLM's) compares each model's per-token CE on its
  own tokenization, which rewards coarse or small vocabularies (about log|V| for models that
  know little).

The averages store the whole mixture: the union of the candidates' ids with their summed
mass, most probable first (ties: the entry that appears first, target before sources), so
the stored distribution is the specified one (up to fp16 storage). ``keep`` optionally cuts
each position to its ``keep`` most probable entries; the mass that drops is returned so that
the stage can report it. Stored log-probabilities are the log of the fused mass, which the
trainer's softmax over kept entries renormalises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fusion.store import PAD_ID

METHODS = ("min_ce", "avg_ce", "avg_ce_sharp", "min_ce_aligned", "avg_ce_aligned")
ALIGNED_SUFFIX = "_aligned"
# Probability mass never treated as smaller than this when the top-k leaves no tail.
MIN_TAIL = 1e-6


def weighting(method: str) -> str:
    """The weighting rule of a method (``min_ce_aligned`` weighs as ``min_ce``)."""
    return method.removesuffix(ALIGNED_SUFFIX)


def uses_aligned_ce(method: str) -> bool:
    return method.endswith(ALIGNED_SUFFIX)


@dataclass
class Candidate:
    """One model's distribution over V_T on a row: [m, k] ids (PAD_ID unused), log-probs."""

    ids: np.ndarray
    logprobs: np.ndarray
    ce: float


def weights(
    ces: Sequence[float], method: str, temperature: float = 1.0, include_target: bool = True
) -> np.ndarray:
    """Per-candidate weights: one-hot on the min-CE candidate, or a softmax. A CE of +inf (a
    model with no gold position on the row) never wins; if every CE is +inf the candidates
    are treated as equal. ``include_target=False``: the first candidate (the target's own)
    gets weight 0 and the sources share the weights (``fuse.include_target``)."""
    if not include_target and len(ces) > 1:
        return np.concatenate([[0.0], weights(ces[1:], method, temperature)])
    ce = np.asarray(ces, dtype=np.float64)
    if not np.isfinite(ce).any():
        ce = np.zeros_like(ce)
    if method in METHODS:
        method = weighting(method)
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


def absolute(candidate: Candidate, mass: np.ndarray) -> Candidate:
    """The candidate's kept entries at the probability they had in their model (``fuse.tail:
    keep``): renormalised log-probabilities plus log(mass) per position; 1 - their sum is the
    tail. A position with mass 0 (empty) stays -inf and is filled like any empty one."""
    with np.errstate(divide="ignore"):
        shift = np.log(np.clip(mass, 0.0, 1.0))[:, None]
    logprobs = np.where(np.isfinite(candidate.logprobs), candidate.logprobs + shift, -np.inf)
    return Candidate(candidate.ids, logprobs.astype(np.float32), candidate.ce)


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
    candidates: Sequence[Candidate],
    method: str,
    keep: int | None = None,
    temperature: float = 1.0,
    include_target: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fused ids [m, w] (PAD_ID unused, trailing), log-probabilities (-inf unused) and the
    mass dropped by ``keep`` per position [m] (zeros for min_ce and when nothing is cut)."""
    cands = _fill_missing(candidates)
    w = weights([c.ce for c in cands], method, temperature, include_target)
    if weighting(method) == "min_ce":
        best = cands[int(np.argmax(w))]
        return (
            best.ids.astype(np.int32),
            best.logprobs.astype(np.float32),
            np.zeros(len(best.ids)),
        )
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
    order = np.argsort(-total, axis=1, kind="stable")
    kept_ids = np.take_along_axis(ids, order, axis=1)
    kept = np.take_along_axis(total, order, axis=1)
    real = kept > 0
    width = int(real.sum(axis=1).max()) if kept.size else 0
    dropped = np.zeros(len(ids))
    if keep is not None and width > keep:
        dropped = np.where(real[:, keep:], kept[:, keep:], 0.0).sum(axis=1)
        width = keep
    kept_ids, kept, real = kept_ids[:, :width], kept[:, :width], real[:, :width]
    kept_ids = np.where(real, kept_ids, PAD_ID).astype(np.int32)
    with np.errstate(divide="ignore"):
        logprobs = np.where(real, np.log(np.maximum(kept, 1e-300)), -np.inf)
    return kept_ids, logprobs.astype(np.float32), dropped


def aligned_ce(
    candidates: Sequence[Candidate],
    masses: Sequence[np.ndarray],
    gold: np.ndarray,
    positions: np.ndarray,
    vocab_size: int,
) -> list[float]:
    """Each candidate's mean NLL of the target's gold next tokens on ``positions``.

    ``masses[m][i]`` is the probability mass candidate m's kept entries had at position i
    before renormalisation, so p(gold) = exp(logprob) * mass; a gold token missing from the
    entries gets the tail (1 - mass, at least MIN_TAIL) spread uniformly over the rest of
    V_T. Every candidate is scored on the same positions (those where every source has a
    projection of its own: a one-hot fallback would score a free 0).
    """
    out = []
    gold_at = gold[positions + 1]
    for cand, mass in zip(candidates, masses, strict=True):
        ids = cand.ids[positions]
        lp = cand.logprobs[positions].astype(np.float64)
        m = mass[positions]
        hit = (ids == gold_at[:, None]) & (ids != PAD_ID)
        p_hit = np.where(hit, np.exp(lp), 0.0).sum(axis=1) * m
        n_real = (ids != PAD_ID).sum(axis=1)
        tail = np.maximum(1.0 - m, MIN_TAIL) / np.maximum(vocab_size - n_real, 1)
        p = np.where(hit.any(axis=1), p_hit, tail)
        out.append(float(-np.log(np.maximum(p, 1e-300)).mean()))
    return out
