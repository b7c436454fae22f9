"""Alignment speed: fusebench's DTW against the reference's method, on the same rows.

The baseline is FuseLLM's method as FUSION_REFERENCE.md describes it: a Python double loop
over a numpy matrix with one edit-distance call per cell (a C edit distance, as the reference
uses ``editdistance``; here rapidfuzz's single-pair call), then the same trace-back. Both run
in this process on the same token-string pairs: real Korean NSMC reviews, joined into rows
pre-split at ``--max-chars`` (the corpus stage's splitting), tokenised by two zoo tokenizers
of different families (tiny-llama ``Ġ`` byte-level, tiny-mistral ``▁`` with byte fallback).
Every alignment is checked identical before the ratio is printed.

    PYTHONPATH=. python bench/align_speed.py --rows 30 --max-chars 1000
    PYTHONPATH=. python bench/align_speed.py --rows 200 --max-chars 150
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def reference_dtw(a: list[str], b: list[str]) -> list[tuple[int, int]]:
    """The reference's method: per-cell edit-distance calls into a numpy matrix. FuseLLM
    calls it with the source as its first series; call ``reference_dtw(source, target)``."""
    from rapidfuzz.distance import Levenshtein

    matrix = np.zeros((len(a) + 1, len(b) + 1))
    matrix[0, :] = np.inf
    matrix[:, 0] = np.inf
    matrix[0, 0] = 0
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            cost = Levenshtein.distance(x, y)
            matrix[i + 1, j + 1] = cost + min(matrix[i, j + 1], matrix[i + 1, j], matrix[i, j])
    matrix = matrix[1:, 1:]
    i, j = matrix.shape[0] - 1, matrix.shape[1] - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        diag = matrix[i - 1, j - 1] if i > 0 and j > 0 else np.inf
        up = matrix[i - 1, j] if i > 0 else np.inf
        left = matrix[i, j - 1] if j > 0 else np.inf
        move = int(np.argmin([diag, up, left]))
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j) if move == 1 else (i, j - 1)
        path.append((i, j))
    return path[::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--max-chars", type=int, default=1000)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from fusion.align.dtw import align
    from fusion.align.tokens import Vocabulary
    from fusion.corpus import split_text
    from fusion.zoo import cached_zoo
    from tasks.datadir import data_dir

    root = data_dir()
    lines = (root / "nsmc" / "ratings_test.txt").read_text(encoding="utf-8").splitlines()[1:]
    text = "\n".join(line.split("\t")[1] for line in lines[:20000])
    rows = split_text(text, args.max_chars)[: args.rows]
    zoo = cached_zoo()
    toks = [AutoTokenizer.from_pretrained(zoo / n) for n in ("tiny-llama", "tiny-mistral")]
    vocabs = [Vocabulary.from_tokenizer(t) for t in toks]
    pairs = [
        tuple(v.keys(np.asarray(t(row)["input_ids"])) for t, v in zip(toks, vocabs, strict=True))
        for row in rows
    ]
    align(*pairs[0])  # compile (numba caches to disk; the first call of a fresh install compiles)

    start = time.perf_counter()
    fast = [align(a, b) for a, b in pairs]
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    slow = [[(t, s) for s, t in reference_dtw(b, a)] for a, b in pairs]
    slow_s = time.perf_counter() - start
    for ours, theirs in zip(fast, slow, strict=True):
        assert [tuple(p) for p in ours.tolist()] == theirs, "alignments differ"
    tokens = np.mean([len(a) + len(b) for a, b in pairs]) / 2
    print(
        f"{len(pairs)} rows of <= {args.max_chars} chars, {tokens:.0f} tokens per side on "
        f"average; alignments identical"
    )
    print(f"reference method: {len(pairs) / slow_s:10.1f} rows/s")
    print(f"fusebench:        {len(pairs) / fast_s:10.1f} rows/s")
    print(f"ratio: {slow_s / fast_s:.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
