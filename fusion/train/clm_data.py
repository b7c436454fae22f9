"""Plain causal-LM data (``train.objective: clm``): the prepared corpus, tokenized by the model.

Used by ``fusebench vocab train``: there is no fused store, only text. Rows are tokenized once
when the run starts (with the model's special tokens) and cut to ``max_length``. A
conversation corpus is trained on its responses only (labels IGNORE elsewhere), as in fusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fusion import corpus as corpus_mod
from fusion.errors import FusionError
from fusion.train.loss import IGNORE


class ClmDataError(FusionError):
    """The corpus cannot be trained on (missing, empty, or a row too long when refused)."""


class ClmDataset(Dataset):
    """One item per corpus row: token ids and next-token labels, at most ``max_length`` long."""

    def __init__(
        self, work_dir: Path, tokenizer: Any, max_length: int, long_rows: str = "truncate"
    ) -> None:
        corpus = corpus_mod.load(work_dir)
        self.path = corpus.directory
        if corpus.spans is not None:
            from fusion.conversation import token_masks

            try:
                pairs = token_masks(tokenizer, list(corpus.rows), corpus.spans, "the model")
            except ValueError as err:
                raise ClmDataError(f"{self.path}: {err}") from None
        else:
            encoded = tokenizer(list(corpus.rows), add_special_tokens=True)["input_ids"]
            pairs = [(ids, None) for ids in encoded]
        kept = [(ids, mask) for ids, mask in pairs if len(ids) >= 2]
        self.rows = [np.asarray(ids, dtype=np.int64) for ids, _ in kept]
        self.masks = [mask for _, mask in kept]
        if not self.rows:
            raise ClmDataError(f"{self.path}: no row of two or more tokens to train on")
        lengths = np.array([len(r) for r in self.rows])
        long = np.flatnonzero(lengths > max_length)
        if long.size and long_rows == "refuse":
            raise ClmDataError(
                f"{corpus.where(int(long[0]))}: {int(lengths[long[0]])} tokens, more than "
                f"train.max_length={max_length}; raise it or set train.long_rows: truncate"
            )
        self.max_length = max_length
        self.truncated = int(long.size)
        self.positions = int(np.minimum(lengths, max_length).sum())

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        ids = self.rows[i]
        labels = np.full(len(ids), IGNORE, dtype=np.int64)
        labels[:-1] = ids[1:]
        if self.masks[i] is not None:
            labels[self.masks[i] == 0] = IGNORE
        n = min(len(ids), self.max_length)
        return {"input_ids": ids[:n], "labels": labels[:n]}


@dataclass
class ClmCollator:
    """Pads a batch to its own longest row."""

    pad_token_id: int

    def __call__(self, items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(items), width), dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, :n] = torch.from_numpy(item["input_ids"])
            attention[row, :n] = 1
            labels[row, :n] = torch.from_numpy(item["labels"])
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
