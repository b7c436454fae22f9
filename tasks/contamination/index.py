"""The evaluation side as a hash index, and one batch of corpus rows looked up in it.

Memory is bounded by the evaluation side: every n-gram of every scored text is hashed once
(a uint64, its text and offset), sorted, and a bitmap of the hashes' low bits filters the
corpus windows before the exact lookup. The corpus streams through in batches: its rows are
normalized, joined, hashed window by window in numpy, filtered, and the few candidates are
verified against the evaluation text itself (a hash collision never counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from tasks.contamination.documents import JOINED, TaskDocuments
from tasks.contamination.ngrams import Batch, Unit, Units, batch, informative, units_with_spans

# A shorter whole text in a row is a common phrase more often than a leak: measured on
# independent text (bench/contamination_length.py), 2-6 character rows such as "좋아요" match.
MIN_WHOLE = {"chars": 10, "words": 5}
EXAMPLES_KEPT = 3  # corpus rows remembered per matched text (the count goes on)


@dataclass
class Piece:
    """One scored text: whose it is, its units, and what the corpus matched in it."""

    task: int
    document: int
    field: str
    text: str
    unit: Unit
    items: str | list[str]  # the normalized units (a string of characters, or words)
    matched: set[int] = field(default_factory=set)  # window offsets found in the corpus
    origins: list[str] = field(default_factory=list)  # first corpus rows that matched
    rows: set[str] = field(default_factory=set)  # every corpus row that matched (bounded below)

    @cached_property
    def units(self) -> Units:
        """The units with their places in the text: for showing a finding only (slower)."""
        return units_with_spans(self.text, self.unit)

    def record(self, offset: int, origin: str) -> None:
        self.matched.add(offset)
        if origin not in self.rows and len(self.rows) < 10_000:
            self.rows.add(origin)
            if len(self.origins) < EXAMPLES_KEPT:
                self.origins.append(origin)


class EvalIndex:
    """Every window of ``n`` units of every scored text of ``tasks``."""

    def __init__(self, tasks: Sequence[TaskDocuments], unit: Unit, n: int) -> None:
        self.unit, self.n = unit, n
        self.pieces: list[Piece] = []
        # A document's whole text shorter than n (but not shorter than MIN_WHOLE): found only
        # as a whole corpus row (normalized), by exact key.
        self.short: dict[str, list[int]] = {}
        texts = [
            (t, doc.index, name, text, name == JOINED or len(doc.texts) == 1)
            for t, task in enumerate(tasks)
            for doc in task.documents
            for name, text in doc.texts.items()
        ]
        # Normalized and hashed as the corpus is (``batch``), so both sides agree by making.
        units = batch([text for *_, text, _ in texts], unit)
        for row, (t, document, name, text, whole) in enumerate(texts):
            items = units.units_of(row)
            self.pieces.append(Piece(t, document, name, text, unit, items))
            short = MIN_WHOLE[unit] <= len(items) < n
            # half the units distinct: ``informative`` for the whole text
            if whole and short and len(set(items)) >= len(items) // 2:
                self.short.setdefault(units.keys[row], []).append(row)
        found, owner = units.window_rows(n)
        kept = np.flatnonzero((owner >= 0) & informative(units.codes, n))
        order = np.argsort(found[kept], kind="stable")
        self.hashes = found[kept][order]
        self.owners = owner[kept][order]
        self.offsets = (kept - units.first[owner[kept]])[order]
        bits = int(min(30, max(16, np.ceil(np.log2(max(1, len(self.hashes)) * 8)))))
        self._mask = np.uint64((1 << bits) - 1)
        self._bitmap = np.zeros(1 << bits, dtype=bool)
        self._bitmap[(self.hashes & self._mask).astype(np.int64)] = True

    def __len__(self) -> int:
        return len(self.hashes)

    def checkable(self, piece: Piece) -> bool:
        return len(piece.items) >= self.n

    def _whole_rows(self, rows: Sequence[tuple[str, str]], units: Batch) -> None:
        """Short texts (fewer than n units) that are a whole corpus row."""
        hits = self.short.keys() & set(units.keys)
        if not hits:
            return
        for r, key in enumerate(units.keys):
            if key in hits:
                for piece in self.short[key]:
                    self.pieces[piece].record(0, rows[r][0])

    def scan(self, rows: Sequence[tuple[str, str]]) -> None:
        """Look up every window of every row (``(origin, text)``) and record verified hits."""
        units = batch([text for _, text in rows], self.unit)
        if self.short:
            self._whole_rows(rows, units)
        if not len(self.hashes):
            return
        found, row_of = units.window_rows(self.n)
        candidates = np.flatnonzero(
            (row_of >= 0) & self._bitmap[(found & self._mask).astype(np.int64)]
        )
        if not len(candidates):
            return
        values = found[candidates]
        low = np.searchsorted(self.hashes, values, side="left")
        high = np.searchsorted(self.hashes, values, side="right")
        for position, lo, hi in zip(candidates.tolist(), low.tolist(), high.tolist(), strict=True):
            if lo == hi:
                continue
            r = int(row_of[position])
            offset = position - int(units.first[r])
            window = units.units_of(r)[offset : offset + self.n]
            for entry in range(lo, hi):
                piece = self.pieces[int(self.owners[entry])]
                at = int(self.offsets[entry])
                if piece.items[at : at + self.n] == window:
                    piece.record(at, rows[r][0])
