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
from tasks.contamination.ngrams import (
    Unit,
    Units,
    codes_of_text,
    informative,
    normalized_chars,
    normalized_words,
    unit_codes,
    units_with_spans,
    window_hashes,
)

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
    hits: int = 0  # corpus windows that matched

    @cached_property
    def units(self) -> Units:
        """The units with their places in the text: for showing a finding only (slower)."""
        return units_with_spans(self.text, self.unit)

    def record(self, offset: int, origin: str) -> None:
        self.matched.add(offset)
        self.hits += 1
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
        self.short: dict[str | tuple[str, ...], list[int]] = {}
        for t, task in enumerate(tasks):
            for doc in task.documents:
                for name, text in doc.texts.items():
                    items = self._units_of_row(text)
                    piece = len(self.pieces)
                    self.pieces.append(Piece(t, doc.index, name, text, unit, items))
                    whole = name == JOINED or len(doc.texts) == 1
                    short = MIN_WHOLE[unit] <= len(items) < n
                    # half the units distinct: ``informative`` for the whole text
                    if whole and short and len(set(items)) >= len(items) // 2:
                        self.short.setdefault(self._key(items), []).append(piece)
        # Every piece's windows in one numpy pass over the pieces joined end to end; windows
        # that cross from one piece into the next are dropped.
        lengths = np.fromiter((len(p.items) for p in self.pieces), np.int64, len(self.pieces))
        if unit == "chars":
            codes = codes_of_text("".join(p.items for p in self.pieces))  # type: ignore[misc]
        else:
            codes = unit_codes([w for p in self.pieces for w in p.items], unit)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        found = window_hashes(codes, n)
        positions = np.arange(len(found), dtype=np.int64)
        owner = np.searchsorted(starts, positions, side="right") - 1
        keep = (positions + n <= starts[owner] + lengths[owner]) & informative(codes, n)
        kept = np.flatnonzero(keep)
        order = np.argsort(found[kept], kind="stable")
        self.hashes = found[kept][order]
        self.owners = owner[kept][order]
        self.offsets = (positions - starts[owner])[kept][order]
        bits = int(min(30, max(16, np.ceil(np.log2(max(1, len(self.hashes)) * 8)))))
        self._mask = np.uint64((1 << bits) - 1)
        self._bitmap = np.zeros(1 << bits, dtype=bool)
        self._bitmap[(self.hashes & self._mask).astype(np.int64)] = True

    def __len__(self) -> int:
        return len(self.hashes)

    def checkable(self, piece: Piece) -> bool:
        return len(piece.items) >= self.n

    def _units_of_row(self, text: str) -> list[str] | str:
        return normalized_chars(text) if self.unit == "chars" else normalized_words(text)

    def _key(self, items: list[str] | str) -> str | tuple[str, ...]:
        return "".join(items) if self.unit == "chars" else tuple(items)

    def _whole_rows(self, rows: Sequence[tuple[str, str]], units: list) -> None:
        """Short texts (fewer than n units) that are a whole corpus row."""
        for (origin, _), row in zip(rows, units, strict=True):
            if 0 < len(row) < self.n:
                for piece in self.short.get(self._key(row), ()):
                    self.pieces[piece].record(0, origin)

    def scan(self, rows: Sequence[tuple[str, str]]) -> None:
        """Look up every window of every row (``(origin, text)``) and record verified hits."""
        units = [self._units_of_row(text) for _, text in rows]
        if self.short:
            self._whole_rows(rows, units)
        if not len(self.hashes):
            return
        lengths = np.fromiter((len(u) for u in units), dtype=np.int64, count=len(units))
        if self.unit == "chars":
            codes = codes_of_text("".join(units))  # type: ignore[arg-type]
        else:
            codes = unit_codes([w for row in units for w in row], "words")
        found = window_hashes(codes, self.n)
        if not len(found):
            return
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        ends = starts + lengths
        # The row of each window start, and whether the window ends inside that row.
        row_of = np.searchsorted(starts, np.arange(len(found)), side="right") - 1
        inside = np.arange(len(found)) + self.n <= ends[row_of]
        candidates = np.flatnonzero(inside & self._bitmap[(found & self._mask).astype(np.int64)])
        if not len(candidates):
            return
        values = found[candidates]
        low = np.searchsorted(self.hashes, values, side="left")
        high = np.searchsorted(self.hashes, values, side="right")
        for position, lo, hi in zip(candidates.tolist(), low.tolist(), high.tolist(), strict=True):
            if lo == hi:
                continue
            r = int(row_of[position])
            offset = position - int(starts[r])
            window = units[r][offset : offset + self.n]
            for entry in range(lo, hi):
                piece = self.pieces[int(self.owners[entry])]
                at = int(self.offsets[entry])
                if piece.items[at : at + self.n] == window:
                    piece.record(at, rows[r][0])
