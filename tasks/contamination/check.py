"""A corpus checked against the scored documents of tasks: which documents share a long
n-gram with it, the overlapping text, and the corpus rows (``file:line``) it was found in.

A document is contaminated when any of its texts shares at least one window of ``n`` units
(characters or words, ``ngrams.py``) with any corpus row. A document none of whose texts is
``n`` units long is found only when one of its texts is a whole corpus row (normalized): it
is counted apart (``checkable`` counts the others), and reports say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

from tasks.contamination.documents import TaskDocuments
from tasks.contamination.index import EvalIndex, Piece
from tasks.contamination.ngrams import Unit

# Defaults, justified in docs/contamination.md (measured with bench/contamination_length.py):
# 13 words as GPT-3's and lm-eval's decontamination; 25 characters for Korean.
DEFAULT_N: dict[Unit, int] = {"chars": 25, "words": 13}
BATCH_CHARS = 1_000_000  # corpus characters hashed per numpy pass
FORMAT = "fusebench-contamination"  # reports/contamination.py reads it


@dataclass(frozen=True)
class Settings:
    """Which units to compare and the window length of each."""

    lengths: dict[Unit, int] = field(default_factory=lambda: dict(DEFAULT_N))

    def to_json(self) -> dict:
        return {"ngram": dict(self.lengths)}


@dataclass(frozen=True)
class Finding:
    """One contaminated document: its longest overlap and where the corpus holds it."""

    index: int
    field: str
    unit: Unit
    n: int
    match: str  # "ngram": a window of n units inside a row; "whole row": a short text is a row
    overlap: str  # the document's own text of the longest overlapping run
    overlap_units: int
    coverage: float  # share of the field's units inside some matched window
    corpus: list[str]  # the first corpus rows (``file:line``) that matched
    corpus_rows: int  # how many corpus rows matched this document's texts


@dataclass
class TaskResult:
    task: str
    split: str
    version: str
    documents: int
    checkable: int  # documents with a text of at least n units (the rest: as whole rows only)
    findings: list[Finding]

    @property
    def contaminated(self) -> int:
        return len(self.findings)

    @property
    def rate(self) -> float:
        """Contaminated share of the scored documents."""
        return self.contaminated / self.documents if self.documents else 0.0

    def to_json(self) -> dict:
        return {
            "task": self.task,
            "split": self.split,
            "version": self.version,
            "documents": self.documents,
            "checkable": self.checkable,
            "contaminated": self.contaminated,
            "rate": self.rate,
            "findings": [asdict(f) for f in self.findings],
        }


@dataclass
class CheckResult:
    settings: Settings
    tasks: list[TaskResult]
    corpus_rows: int
    corpus_chars: int
    sources: list[str]

    def to_json(self, max_rate: float = 0.0) -> dict:
        return {
            "format": FORMAT,
            "max_rate": max_rate,
            **self.settings.to_json(),
            "corpus": {
                "sources": self.sources,
                "rows": self.corpus_rows,
                "chars": self.corpus_chars,
            },
            "tasks": [t.to_json() for t in self.tasks],
        }


def _runs(offsets: set[int], n: int) -> list[tuple[int, int]]:
    """Covered unit ranges ``[start, end)`` of the matched windows, merged."""
    runs: list[tuple[int, int]] = []
    for offset in sorted(offsets):
        if runs and offset <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], offset + n))
        else:
            runs.append((offset, offset + n))
    return runs


def _finding(piece: Piece, index: EvalIndex, corpus_rows: int) -> Finding:
    runs = _runs(piece.matched, min(index.n, len(piece.units)))
    first, end = max(runs, key=lambda run: run[1] - run[0])
    start_char, end_char = piece.units.source_span(first, end - 1)
    covered = sum(b - a for a, b in runs)
    return Finding(
        index=piece.document,
        field=piece.field,
        unit=index.unit,
        n=index.n,
        match="ngram" if len(piece.units) >= index.n else "whole row",
        overlap=piece.text[start_char:end_char],
        overlap_units=end - first,
        coverage=round(covered / max(1, len(piece.units)), 4),
        corpus=list(piece.origins),
        corpus_rows=corpus_rows,
    )


def _results(tasks: Sequence[TaskDocuments], indexes: list[EvalIndex]) -> list[TaskResult]:
    """Per task: checkable documents and, per contaminated document, its best finding (the
    most covered text shows the leak best), in one pass over the pieces."""
    checkable: list[set[int]] = [set() for _ in tasks]
    rows: list[dict[int, set[str]]] = [{} for _ in tasks]
    matched = [(index, piece) for index in indexes for piece in index.pieces if piece.matched]
    for index in indexes:
        for piece in index.pieces:
            if index.checkable(piece):
                checkable[piece.task].add(piece.document)
    for _, piece in matched:
        rows[piece.task].setdefault(piece.document, set()).update(piece.rows)
    best: list[dict[int, Finding]] = [{} for _ in tasks]
    for index, piece in matched:
        found = _finding(piece, index, len(rows[piece.task][piece.document]))
        held = best[piece.task].get(piece.document)
        if held is None or (found.coverage, found.overlap_units) > (
            held.coverage,
            held.overlap_units,
        ):
            best[piece.task][piece.document] = found
    return [
        TaskResult(
            task.task,
            task.split,
            task.version,
            len(task.documents),
            len(checkable[t]),
            [best[t][d] for d in sorted(best[t])],
        )
        for t, task in enumerate(tasks)
    ]


def batches(rows: Iterable[tuple[str, str]], size: int = BATCH_CHARS):
    """Rows grouped into batches of about ``size`` characters."""
    batch: list[tuple[str, str]] = []
    chars = 0
    for row in rows:
        batch.append(row)
        chars += len(row[1])
        if chars >= size:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def check(
    tasks: Sequence[TaskDocuments],
    rows: Iterable[tuple[str, str]],
    settings: Settings | None = None,
    *,
    sources: list[str] | None = None,
    advance: Callable[[int], None] | None = None,
) -> CheckResult:
    """Stream ``rows`` (``(origin, text)``, origin ``file:line``) through an index of the
    tasks' scored texts; ``advance(chars)`` after each batch (a progress bar)."""
    settings = settings or Settings()
    indexes = [EvalIndex(tasks, unit, n) for unit, n in settings.lengths.items()]
    count = chars = 0
    for batch in batches(rows):
        for index in indexes:
            index.scan(batch)
        size = sum(len(text) for _, text in batch)
        count, chars = count + len(batch), chars + size
        if advance is not None:
            advance(size)
    return CheckResult(settings, _results(tasks, indexes), count, chars, list(sources or []))


def shared_with(texts: list[str], corpus: Iterable[str]) -> set[int]:
    """Which of ``texts`` (by index) share text with ``corpus`` under the default settings:
    what a derived held-out split leaves out (tasks/loaders.py)."""
    from tasks.contamination.documents import Document

    docs = [Document(i, {"text": t}) for i, t in enumerate(texts)]
    result = check(
        [TaskDocuments("texts", "-", "0", docs)], ((str(i), t) for i, t in enumerate(corpus))
    )
    return {finding.index for finding in result.tasks[0].findings}
