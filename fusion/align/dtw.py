"""Dynamic time warping of two tokenizations of one text (FUSION_REFERENCE.md, section 2).

    D[0][0] = 0;  D[i][0] = D[0][j] = inf
    D[i+1][j+1] = c(i, j) + min(D[i][j+1], D[i+1][j], D[i][j])

with c(i, j) the Levenshtein distance of the marker-stripped token strings. The path is
traced back from the last cell of both sequences to the first; at each step the smallest of
(diagonal, previous source token, previous target token) is taken, ties in that order: the
diagonal wins every tie, and between the two single steps the *source* step wins. That is
FuseLLM's ``dtw`` (``utils/others.py``), which is called with the source as its first series
and takes ``argmin([diag, up, left])``, "up" stepping back in the source. Every token of both
sides is on the path.

Why it is fast: the cost matrix comes from rapidfuzz's ``cdist`` (C++, bit-parallel) instead
of one Python call per cell, and the recurrence and the trace-back are compiled by numba
(no DTW library offers this exact recurrence with this tie rule). Costs are integers, so the
result is exact and equals the plain Python loop cell for cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

# "inf": larger than any path cost (<= (n + m) * longest token), small enough not to overflow.
INF = np.int64(1) << 40
BIG = INF * 4  # "no such cell" while tracing back


def cost_matrix(target: Sequence[str], source: Sequence[str]) -> np.ndarray:
    """Levenshtein distance of every (target token, source token) pair, int32 [m, n]."""
    return cdist(target, source, scorer=Levenshtein.distance, dtype=np.int32, workers=1)


@njit(cache=True, nogil=True)
def _dtw_path(cost: np.ndarray) -> np.ndarray:  # pragma: no cover (compiled)
    m, n = cost.shape
    acc = np.empty((m + 1, n + 1), dtype=np.int64)
    acc[0, :] = INF
    acc[:, 0] = INF
    acc[0, 0] = 0
    for i in range(m):
        for j in range(n):
            best = min(acc[i, j + 1], acc[i + 1, j], acc[i, j])
            acc[i + 1, j + 1] = cost[i, j] + best
    # Backtrack over D[1:, 1:] (index shift of one): diagonal, then source, then target.
    path = np.empty((m + n, 2), dtype=np.int32)
    i, j, k = m - 1, n - 1, 0
    path[0, 0], path[0, 1] = i, j
    while i > 0 or j > 0:
        diag = acc[i, j] if i > 0 and j > 0 else BIG
        back_target = acc[i, j + 1] if i > 0 else BIG
        back_source = acc[i + 1, j] if j > 0 else BIG
        if diag <= back_target and diag <= back_source:
            i -= 1
            j -= 1
        elif back_source <= back_target:
            j -= 1
        else:
            i -= 1
        k += 1
        path[k, 0], path[k, 1] = i, j
    return path[: k + 1][::-1].copy()


def align(target: Sequence[str], source: Sequence[str]) -> np.ndarray:
    """DTW path between two token-string sequences (both non-empty)."""
    if not target or not source:
        raise ValueError("cannot align an empty token sequence")
    return _dtw_path(cost_matrix(target, source))


def matches_per_target(path: np.ndarray, target_len: int) -> list[list[int]]:
    """J_i: the source positions matched to each target position i, ascending."""
    matched: list[list[int]] = [[] for _ in range(target_len)]
    for i, j in path.tolist():
        matched[i].append(j)
    return matched
