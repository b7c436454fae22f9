"""Projection of a source model's top-k onto the target's tokens and vocabulary, per row.

At target position i (which predicts target token i+1), with J_i the source positions DTW
matched to it (FUSION_REFERENCE.md, section 2):

- |J_i| = 1, the tokens match (same text without markers, or the vocabulary map sends
  the source token to the target token) and both end at the same character offset of the row:
  the source's top-k at that position, each id mapped into V_T, unmapped ids dropped,
  duplicates dropped keeping the first (highest) entry (the references' rule), or, with
  ``sum_repeats`` (``fuse.tail: keep``), summed into one entry: there the entries keep the
  probability they had in the source, and a dropped duplicate's mass would join the tail
  although its target id is listed. The offset test keeps out pairs such
  as target ``는다`` with source ``는다.`` (mapped to each other by the vocabulary map): the
  source there predicts what follows another offset of the text. Such positions fall back
  (``OFFSET_MISMATCH``, counted apart in the align report).
- |J_i| > 1 and the source pieces concatenate exactly to the target token (FuseChat's
  one-to-many rule): the distribution of the *last* piece, which predicts what follows.
- otherwise, and when every entry was unmapped: a one-hot on the target's gold NEXT token
  a_{i+1} (the reference uses the current token a_i, a listed defect). The last position has
  no next token: there the projection is empty and fusion uses the target's own distribution.

Kept entries are renormalised (log-softmax over what is kept: the tail mass is dropped).

Gold prefixes (``align.gold_prefix``, off by default; not in the references): at a projected
position, an entry whose target token is a proper prefix of the gold next token (source
``긍`` where the target writes ``긍정`` as one token) predicts text the row actually
continues with, at a granularity the target's tokenizer never emits there: the target would
learn to put mass on ``긍``, a token that cannot follow in its own segmentation. Such mass
moves onto the gold token (summed with the gold entry when present). Measured on the demo
zoo: at the answer position of sentiment rows the Mistral source put 0.99 on ``긍``; with the
rule nsmc against the control went from -0.022 to 0.000, but held-out bits per byte from
+0.005 to +0.026 (the moved mass over-weights the gold token on general text too), so it
stays off unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion.align.dtw import matches_per_target
from fusion.align.tokens import Vocabulary
from fusion.store import PAD_ID

# Per-position outcome codes (counted in the align stage's report). OFFSET_MISMATCH is a
# one-hot fallback whose tokens matched but ended at different offsets of the text.
FROM_SOURCE, ONE_TO_MANY, ONE_HOT, EMPTY, OFFSET_MISMATCH = 0, 1, 2, 3, 4


@dataclass
class Projected:
    """One row of a source projected onto the target: ids in V_T, normalised log-probs."""

    ids: np.ndarray  # int32 [m, k], PAD_ID where unused
    logprobs: np.ndarray  # float32 [m, k], -inf where unused
    outcome: np.ndarray  # int8 [m], one of the codes above
    # float64 [m]: the source probability the kept entries had before renormalisation (1 for a
    # one-hot fallback, 0 where empty): what the aligned CE needs to score a missing gold token.
    mass: np.ndarray
    # bool [m]: positions where gold-prefix mass moved onto the gold token (align report).
    completed: np.ndarray | None = None


def map_topk(
    ids: np.ndarray, logprobs: np.ndarray, vmap: np.ndarray, sum_repeats: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map [n, k] source ids through ``vmap``, drop unmapped and repeated ids (first kept),
    move kept entries to the front in their order, and renormalise; vectorised over rows.
    ``sum_repeats``: a repeated id's probability is added to its first entry instead, and
    the entries are ordered most probable first. Also returns each row's kept probability
    mass before renormalisation (with ``sum_repeats``, repeats included)."""
    valid = ids != PAD_ID
    mapped = np.where(valid, vmap[np.where(valid, ids, 0)], PAD_ID).astype(np.int32)
    k = mapped.shape[1]
    same = mapped[:, :, None] == mapped[:, None, :]
    earlier = np.tril(np.ones((k, k), dtype=bool), k=-1)
    repeat = (same & earlier[None]).any(axis=2)
    scores = logprobs.astype(np.float32)
    if sum_repeats:
        p = np.where(mapped != PAD_ID, np.exp(logprobs.astype(np.float64)), 0.0)
        with np.errstate(divide="ignore"):
            scores = np.log((same * p[:, None, :]).sum(axis=2)).astype(np.float32)
    mapped[repeat] = PAD_ID
    scores[mapped == PAD_ID] = -np.inf
    key = -scores if sum_repeats else (mapped == PAD_ID)
    order = np.argsort(key, axis=1, kind="stable")
    mapped = np.take_along_axis(mapped, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    scores[mapped == PAD_ID] = -np.inf
    mass = np.exp(scores.astype(np.float64)).sum(axis=1)
    return mapped, log_normalise(scores), mass


def log_normalise(scores: np.ndarray) -> np.ndarray:
    """log-softmax over the last axis, ignoring -inf entries; an all -inf row stays -inf."""
    top = np.max(scores, axis=-1, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.exp(scores - safe).sum(axis=-1, keepdims=True))
    return (scores - safe - total).astype(np.float32)


def project_row(
    target: Vocabulary,
    source: Vocabulary,
    vmap: np.ndarray,
    target_ids: np.ndarray,
    source_ids: np.ndarray,
    source_topk_ids: np.ndarray,
    source_topk_logprobs: np.ndarray,
    path: np.ndarray,
    target_ends: np.ndarray | None = None,
    source_ends: np.ndarray | None = None,
    gold_prefix: bool = False,
    sum_repeats: bool = False,
) -> Projected:
    """Project one row (``path`` from DTW between the two token sequences; ``*_ends`` from
    ``Vocabulary.end_offsets`` on the row's text, without them offsets are not checked;
    ``gold_prefix``: move prefixes of the gold next token onto it; ``sum_repeats``: source
    ids mapped to one target id share one entry holding their summed probability; see the
    module note)."""
    m, k = len(target_ids), source_topk_ids.shape[1]
    mapped, scores, kept_mass = map_topk(source_topk_ids, source_topk_logprobs, vmap, sum_repeats)
    chosen = np.full(m, -1, dtype=np.int64)
    outcome = np.full(m, ONE_HOT, dtype=np.int8)
    t_ids, s_ids = target_ids.tolist(), source_ids.tolist()
    for i, matched in enumerate(matches_per_target(path, m)):
        a = t_ids[i]
        if len(matched) == 1:
            b = s_ids[matched[0]]
            if target.key[a] == source.key[b] or int(vmap[b]) == a:
                if (
                    target_ends is not None
                    and source_ends is not None
                    and (target_ends[i] != source_ends[matched[0]])
                ):
                    outcome[i] = OFFSET_MISMATCH
                else:
                    chosen[i], outcome[i] = matched[0], FROM_SOURCE
        elif len(matched) > 1:
            joined = b"".join(source.data[s_ids[j]] for j in matched)
            if joined.replace(b" ", b"") == target.data[a].replace(b" ", b""):
                chosen[i], outcome[i] = matched[-1], ONE_TO_MANY
    ids = np.full((m, k), PAD_ID, dtype=np.int32)
    logprobs = np.full((m, k), -np.inf, dtype=np.float32)
    use = chosen >= 0
    ids[use] = mapped[chosen[use]]
    logprobs[use] = scores[chosen[use]]
    mass = np.zeros(m, dtype=np.float64)
    mass[use] = kept_mass[chosen[use]]
    completed = np.zeros(m, dtype=bool)
    if gold_prefix:
        for i in np.flatnonzero(use[:-1]):
            completed[i] = _complete_gold_prefix(target, ids[i], logprobs[i], t_ids[i + 1])
    # Nothing of the source's top-k maps into V_T there: fall back like a mismatch.
    nothing = use & (ids[:, 0] == PAD_ID)
    outcome[nothing] = ONE_HOT
    fallback = (outcome == ONE_HOT) | (outcome == OFFSET_MISMATCH)
    rows = np.flatnonzero(fallback[:-1])
    ids[rows] = PAD_ID
    logprobs[rows] = -np.inf
    ids[rows, 0] = target_ids[rows + 1]
    logprobs[rows, 0] = 0.0
    mass[rows] = 1.0
    if fallback[-1]:
        outcome[-1] = EMPTY
        ids[-1], logprobs[-1], mass[-1] = PAD_ID, -np.inf, 0.0
    completed &= ~fallback
    return Projected(ids, logprobs, outcome, mass, completed)


def _complete_gold_prefix(
    target: Vocabulary, ids: np.ndarray, logprobs: np.ndarray, gold: int
) -> bool:
    """In place on one position's [k] entries (normalised, most probable first): entries whose
    token bytes are a proper, non-empty prefix of the gold token's join the gold entry; the
    entries are re-sorted. True when something moved. Hand-written: no library does this."""
    gold_bytes = target.data[gold]
    prefix = [
        j
        for j, t in enumerate(ids.tolist())
        if t != PAD_ID
        and t != gold
        and t not in target.special_ids
        and 0 < len(target.data[t]) < len(gold_bytes)
        and gold_bytes.startswith(target.data[t])
    ]
    if not prefix:
        return False
    at_gold = np.flatnonzero(ids == gold).tolist()
    moved = np.logaddexp.reduce(logprobs[prefix + at_gold].astype(np.float64))
    keep = [j for j in range(len(ids)) if ids[j] != PAD_ID and j not in prefix and ids[j] != gold]
    entries = [(int(ids[j]), float(logprobs[j])) for j in keep] + [(gold, float(moved))]
    entries.sort(key=lambda e: -e[1])  # stable: ties keep their order, the gold last
    ids[:] = PAD_ID
    logprobs[:] = -np.inf
    for j, (t, lp) in enumerate(entries):
        ids[j], logprobs[j] = t, lp
    return True
