"""Which embedding rows of an expanded model are new: what ``vocab train`` freezes around."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fusion.vocab.corpus import VocabError

REPORT = "vocab_expansion.json"


@dataclass(frozen=True)
class NewRows:
    """Row ids of the added tokens, and the matrix size they live in."""

    ids: list[int]
    rows: int

    def mask(self) -> object:
        """Boolean tensor [rows]: True on new rows (a gradient hook zeroes the others)."""
        import torch

        mask = torch.zeros(self.rows, dtype=torch.bool)
        mask[self.ids] = True
        return mask


def new_rows(model_dir: Path) -> NewRows:
    """Read the expansion report of ``model_dir`` and check it against the model's config."""
    report_file = model_dir / REPORT
    if not report_file.is_file():
        raise VocabError(f"{model_dir}: no {REPORT} (not written by `fusebench vocab expand`)")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    rows = config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")
    ids = [int(entry["id"]) for entry in report["added"]]
    if rows != report["rows"] or any(not 0 <= i < rows for i in ids):
        raise VocabError(
            f"{model_dir}: {REPORT} says {report['rows']} embedding rows, config.json {rows}"
        )
    return NewRows(ids=ids, rows=rows)
