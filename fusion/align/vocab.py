"""Vocabulary mapping source -> target: ``exact``, ``mined`` and ``statistics``.

The result is an int32 array ``vmap[source id] = target id`` (-1: unmapped, the entry is
dropped at projection). Special tokens map by role (bos->bos, eos->eos, unk->unk), else to a
target special token spelled the same, else nowhere: a special token is never "nearest" to
an ordinary one.

- ``exact``: the target token with the same text after the marker swap (``▁`` <-> ``Ġ``,
  byte-level and ``<0xNN>`` bytes decoded), else unmapped.
- ``mined`` (FuseLLM): exact, else the target token at the smallest edit distance of the
  texts (ties: lowest target id). Computed by rapidfuzz over the whole vocabulary in blocks.
- ``statistics`` (FuseChat): exact first, as FuseChat does (a token whose identical text is
  in V_T maps there, however DTW aligned it); else from the counts N[a, b] of DTW-aligned
  (target a, source b) pairs over the corpus, kept sparse (a dict of dicts: a 152k x 32k
  dense float64 matrix is the reference's ~39 GB): b goes to the candidate with N[a, b] > 0
  at the smallest edit distance, ties to the higher count, then the lower id. Tokens neither
  exact nor ever aligned take the ``mined`` mapping (the reference sends them to unk, which
  only adds mass to unk).

Every map also says which rule mapped each source token (``RULES``), so that the align
stage can report how many tokens each rule decided.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

from fusion.align.tokens import Vocabulary

UNMAPPED = -1
METHODS = ("exact", "mined", "statistics")
# Which rule mapped a source token: codes are indices into RULES.
RULES = ("unmapped", "special", "exact", "statistics", "mined")
R_UNMAPPED, R_SPECIAL, R_EXACT, R_STATISTICS, R_MINED = range(len(RULES))


@dataclass
class VocabMap:
    """``ids[source id]`` = target id (UNMAPPED: dropped at projection); ``rule[source id]``
    = the code in RULES of the rule that decided it."""

    ids: np.ndarray
    rule: np.ndarray

    def rule_counts(self) -> dict[str, int]:
        """How many source tokens each rule mapped (for align/report.json)."""
        return {name: int((self.rule == code).sum()) for code, name in enumerate(RULES)}


class PairCounts:
    """Sparse counts of aligned (target id, source id) pairs: {source id: {target id: n}}."""

    def __init__(self) -> None:
        self.counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, target_ids: np.ndarray, source_ids: np.ndarray, path: np.ndarray) -> None:
        """Count the pairs on one row's warping path (ids of the two tokenizations)."""
        a = target_ids[path[:, 0]].tolist()
        b = source_ids[path[:, 1]].tolist()
        for ta, sb in zip(a, b, strict=True):
            self.counts[sb][ta] += 1

    def to_arrays(self) -> dict[str, np.ndarray]:
        """COO arrays (source, target, count), for saving."""
        rows = [(s, t, n) for s, targets in self.counts.items() for t, n in targets.items()]
        rows.sort()
        data = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
        # Contiguous copies: safetensors' save_file writes a strided column view as if it
        # were contiguous (consecutive elements from its start), corrupting the counts.
        return {
            name: np.ascontiguousarray(data[:, i])
            for i, name in enumerate(("source", "target", "count"))
        }

    def counts_update(self, arrays: dict[str, np.ndarray], prefix: str = "counts_") -> None:
        """Add counts saved by ``to_arrays`` (keys optionally prefixed)."""
        for s, t, n in zip(
            arrays[prefix + "source"].tolist(),
            arrays[prefix + "target"].tolist(),
            arrays[prefix + "count"].tolist(),
            strict=True,
        ):
            self.counts[s][t] += n

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> PairCounts:
        counts = cls()
        counts.counts_update(arrays, prefix="")
        return counts


def _special_map(source: Vocabulary, target: Vocabulary, vmap: np.ndarray) -> None:
    by_spelling = {target.raw[i]: i for i in sorted(target.special_ids)}
    for sid in source.special_ids:
        vmap[sid] = by_spelling.get(source.raw[sid], UNMAPPED)
    for role in ("unk_id", "bos_id", "eos_id"):  # eos last: <|endoftext|> is both bos and eos
        sid, tid = getattr(source, role), getattr(target, role)
        if sid is not None and tid is not None:
            vmap[sid] = tid


def _ordinary(vocab: Vocabulary) -> list[int]:
    return [i for i in range(len(vocab)) if i not in vocab.special_ids]


def exact_map(source: Vocabulary, target: Vocabulary) -> VocabMap:
    """Same text after the marker swap, else unmapped."""
    index: dict[str, int] = {}
    for tid in _ordinary(target):
        index.setdefault(target.text[tid], tid)
    vmap = np.full(len(source), UNMAPPED, dtype=np.int32)
    for sid in _ordinary(source):
        vmap[sid] = index.get(source.text[sid], UNMAPPED)
    rule = np.where(vmap != UNMAPPED, R_EXACT, R_UNMAPPED).astype(np.int8)
    _special_map(source, target, vmap)
    roles = {getattr(source, r) for r in ("unk_id", "bos_id", "eos_id")} - {None}
    rule[sorted(set(source.special_ids) | roles)] = R_SPECIAL
    rule[(rule == R_SPECIAL) & (vmap == UNMAPPED)] = R_UNMAPPED
    return VocabMap(vmap, rule)


def nearest(
    queries: list[str],
    choices: list[str],
    block: int = 2048,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Index and distance of the nearest choice for every query (ties: first choice)."""
    best = np.zeros(len(queries), dtype=np.int64)
    dist = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(queries), block):
        part = queries[start : start + block]
        matrix = cdist(part, choices, scorer=Levenshtein.distance, dtype=np.int32, workers=-1)
        best[start : start + len(part)] = matrix.argmin(axis=1)
        dist[start : start + len(part)] = matrix.min(axis=1)
        if progress is not None:
            progress(len(part))
    return best, dist


def _mine(
    source: Vocabulary,
    target: Vocabulary,
    result: VocabMap,
    progress: Callable[[int], None] | None = None,
) -> VocabMap:
    """Map every still-unmapped ordinary token to the nearest ordinary target token."""
    missing = [sid for sid in _ordinary(source) if result.ids[sid] == UNMAPPED]
    choices = _ordinary(target)
    if missing and choices:
        best, _ = nearest(
            [source.text[s] for s in missing], [target.text[t] for t in choices], progress=progress
        )
        result.ids[np.asarray(missing)] = np.asarray(choices)[best]
        result.rule[np.asarray(missing)] = R_MINED
    return result


def mined_map(
    source: Vocabulary, target: Vocabulary, progress: Callable[[int], None] | None = None
) -> VocabMap:
    """Exact, else the nearest ordinary target token by edit distance of the texts."""
    return _mine(source, target, exact_map(source, target), progress)


def statistics_map(
    source: Vocabulary,
    target: Vocabulary,
    counts: PairCounts,
    progress: Callable[[int], None] | None = None,
) -> VocabMap:
    """Exact first; else FuseChat's rule over the aligned-pair counts; else mined."""
    result = exact_map(source, target)
    for sid in _ordinary(source):
        if result.ids[sid] != UNMAPPED:
            continue
        candidates = {
            t: n for t, n in counts.counts.get(sid, {}).items() if t not in target.special_ids
        }
        if not candidates:
            continue
        text = source.text[sid]
        result.ids[sid] = min(
            candidates,
            key=lambda t: (Levenshtein.distance(text, target.text[t]), -candidates[t], t),
        )
        result.rule[sid] = R_STATISTICS
    return _mine(source, target, result, progress)


def build_map(
    method: str,
    source: Vocabulary,
    target: Vocabulary,
    counts: PairCounts | None = None,
    progress: Callable[[int], None] | None = None,
) -> VocabMap:
    """The vocabulary map by name (``counts`` is needed for ``statistics``)."""
    if method == "exact":
        return exact_map(source, target)
    if method == "mined":
        return mined_map(source, target, progress=progress)
    if method == "statistics":
        if counts is None:
            raise ValueError("statistics mapping needs the aligned-pair counts")
        return statistics_map(source, target, counts, progress=progress)
    raise ValueError(f"unknown vocabulary mapping {method!r}; known: {', '.join(METHODS)}")


def coverage(vmap: np.ndarray, ids: Iterable[int] | None = None) -> float:
    """Share of source ids (all, or those given) that map somewhere."""
    chosen = vmap if ids is None else vmap[np.fromiter(ids, dtype=np.int64)]
    return float((chosen != UNMAPPED).mean()) if chosen.size else 0.0
