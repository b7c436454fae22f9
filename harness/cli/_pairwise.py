"""What ``compare`` and ``report`` do with pairwise judgment folders among their paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from reports.pairwise import Table


def split(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(pairwise judgment folders, everything else), each in the order given."""
    from reports.pairwise import is_pairwise

    pairwise = [p for p in paths if is_pairwise(p)]
    return pairwise, [p for p in paths if p not in pairwise]


@dataclass
class PairwiseReport:
    tables: list[Table]
    frame: pd.DataFrame
    failures: list[str]
    gate_lines: list[str]
    min_win_rate: float | None
    allow_partial: bool = False

    def markdown(self) -> str:
        from reports import pairwise

        return pairwise.to_markdown(self.tables, self.gate_lines)

    def data(self) -> dict[str, Any]:
        from reports import pairwise

        return pairwise.payload(self.tables, self.failures, self.min_win_rate, self.allow_partial)

    def merged_json(self, text: str | None) -> str:
        """The pairwise data added to another command's JSON text (or alone)."""
        from reports.jsonio import dumps_strict

        base = json.loads(text) if text else {}
        return dumps_strict({**base, **self.data()}, indent=1)

    def html(self, max_samples: int) -> dict[str, Any]:
        """``html.page``'s pairwise arguments."""
        from reports import pairwise_html

        gate = {"passed": not self.failures, "lines": self.gate_lines} if self.gate_lines else None
        return {
            "pairwise": pairwise_html.view(self.tables, self.frame, max_samples),
            "pairwise_gate": gate,
        }


def load(
    paths: list[Path],
    min_win_rate: float | None,
    resamples: int,
    seed: int,
    allow_partial: bool = False,
) -> PairwiseReport | None:
    """The pairwise report of ``paths``; with ``min_win_rate``, its gate, which fails on a
    model judged on part of the questions unless ``allow_partial``."""
    if not paths:
        return None
    from reports import pairwise

    frame = pairwise.load(paths)
    tables = pairwise.tables(frame, resamples, seed)
    failures = pairwise.gate(tables, min_win_rate, allow_partial)
    lines = pairwise.gate_lines(failures, min_win_rate, tables, allow_partial)
    return PairwiseReport(tables, frame, failures, lines, min_win_rate, allow_partial)


def empty_loaded():
    """A ``Loaded`` with no run: the HTML page of pairwise judgments alone."""
    from reports.table import SAMPLE_COLUMNS, SCORE_COLUMNS, Loaded, frame

    return Loaded(frame([], SCORE_COLUMNS), frame([], SAMPLE_COLUMNS), [])
