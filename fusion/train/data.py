"""Training data from the fused-targets store: dataset, padding collator, resumable order.

The store already holds the training sequence (the target's tokens) and, per position, the
fused top-k targets, so a batch is a few slices and a pad: no tokenisation, no dense targets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from torch.utils.data import Dataset, DistributedSampler

from fusion.errors import FusionError
from fusion.store import PAD_ID, StoreError, TopKStore
from fusion.train.loss import IGNORE


class TrainDataError(FusionError):
    """The fused store cannot be trained on as configured (kind, length, vocabulary)."""


def open_fused_store(path: Any, *, fingerprint: str, model: str, vocab_size: int) -> TopKStore:
    """Open a finished ``fused`` store and check it belongs to this model's tokenizer."""
    store = TopKStore(path)
    if store.manifest.kind != "fused":
        raise StoreError(
            f"{store.path}: a '{store.manifest.kind}' store, not a fused-targets store "
            "(train reads the output of the fuse stage)"
        )
    store.check_tokenizer(fingerprint, model)
    if store.manifest.vocab_size > vocab_size:
        raise StoreError(
            f"{store.path}: vocabulary of {store.manifest.vocab_size} ids, but {model} "
            f"has only {vocab_size} embeddings"
        )
    if len(store) == 0:
        raise StoreError(f"{store.path}: holds no sequences (all rows excluded or empty corpus)")
    store.verify()  # before training starts, not at the first read of a corrupt shard
    return store


def sequence_lengths(store: TopKStore) -> np.ndarray:
    """Length of every stored sequence, read from the shards' offsets only (no payload)."""
    parts = []
    for info in store.manifest.shards:
        with safe_open(str(store.path / info.file), framework="np") as handle:
            parts.append(np.diff(handle.get_tensor("offsets")))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class FusedDataset(Dataset):
    """One item per stored sequence, cut to ``max_length`` positions.

    Labels are the gold next tokens taken *before* the cut, so a truncated row keeps a label
    at its last kept position; rows longer than ``max_length`` are counted (``truncated``),
    or refused with ``long_rows='refuse'``. In a masked store (a conversation corpus) the
    positions whose loss_mask is 0 (system, user, template text) get label IGNORE, so neither
    the CLM nor the fusion term sees them (fused_loss counts only labelled positions).
    """

    def __init__(self, store: TopKStore, max_length: int, long_rows: str = "truncate") -> None:
        self.store = store
        self.max_length = max_length
        # How the fuse stage stored the targets: 'keep' = absolute probabilities with a tail.
        self.tail = store.manifest.settings.get("tail", "drop")
        lengths = sequence_lengths(store)
        long = np.flatnonzero(lengths > max_length)
        if long.size and long_rows == "refuse":
            row = int(store.row_ids()[long[0]])
            raise TrainDataError(
                f"{store.path}: corpus row {row} has {int(lengths[long[0]])} tokens, more than "
                f"train.max_length={max_length} ({long.size} such rows); raise max_length, "
                "pre-split the corpus shorter, or set train.long_rows: truncate"
            )
        self.truncated = int(long.size)
        self.positions = int(np.minimum(lengths, max_length).sum())

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        seq = self.store.sequence(i)
        labels = np.full(len(seq), IGNORE, dtype=np.int64)
        labels[:-1] = seq.token_ids[1:]
        if seq.loss_mask is not None:
            labels[seq.loss_mask == 0] = IGNORE
        n = min(len(seq), self.max_length)
        return {
            "input_ids": seq.token_ids[:n].astype(np.int64),
            "labels": labels[:n],
            "topk_ids": seq.topk_ids[:n],
            "topk_logprobs": seq.topk_logprobs[:n],
        }


@dataclass
class Collator:
    """Pads a batch to its own longest sequence (not to max_length)."""

    pad_token_id: int

    def __call__(self, items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in items)
        # Ragged (fused) stores pad every position to the store's widest: gather only the
        # columns some position of this batch uses.
        k = max(
            1, max(int((item["topk_ids"] != PAD_ID).sum(axis=1).max(initial=0)) for item in items)
        )
        size = len(items)
        input_ids = torch.full((size, width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((size, width), dtype=torch.long)
        labels = torch.full((size, width), IGNORE, dtype=torch.long)
        topk_ids = torch.full((size, width, k), PAD_ID, dtype=torch.long)
        topk_logprobs = torch.full((size, width, k), float("-inf"), dtype=torch.float32)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, :n] = torch.from_numpy(item["input_ids"])
            attention[row, :n] = 1
            labels[row, :n] = torch.from_numpy(item["labels"])
            topk_ids[row, :n] = torch.from_numpy(item["topk_ids"][:, :k].astype(np.int64))
            topk_logprobs[row, :n] = torch.from_numpy(
                item["topk_logprobs"][:, :k].astype(np.float32)
            )
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "topk_ids": topk_ids,
            "topk_logprobs": topk_logprobs,
        }


@dataclass
class DataState:
    """Where the data stream stands: the next micro-batch is ``batch`` of ``epoch``."""

    epoch: int = 0
    batch: int = 0


class MicroBatches:
    """The rank's micro-batches over all epochs, in a seeded order, resumable mid-epoch.

    Each epoch is DistributedSampler's order for (seed, epoch): shuffled, padded by repeats
    to a multiple of the world size, rank r taking every world-th index. Resuming at
    ``DataState(epoch, batch)`` yields exactly the batches an uninterrupted run would.
    """

    def __init__(
        self,
        dataset: FusedDataset,
        collate: Collator,
        *,
        micro_batch_size: int,
        epochs: int,
        seed: int,
        rank: int,
        world_size: int,
    ) -> None:
        self.dataset, self.collate = dataset, collate
        self.micro_batch_size, self.epochs = micro_batch_size, epochs
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        self.state = DataState()

    @property
    def per_epoch(self) -> int:
        """Micro-batches per epoch on every rank (the sampler pads ranks to equal length)."""
        return math.ceil(self.sampler.num_samples / self.micro_batch_size)

    @property
    def total(self) -> int:
        return self.per_epoch * self.epochs

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while self.state.epoch < self.epochs:
            self.sampler.set_epoch(self.state.epoch)
            order = list(self.sampler)
            while self.state.batch < self.per_epoch:
                start = self.state.batch * self.micro_batch_size
                batch = self.collate(
                    [self.dataset[i] for i in order[start : start + self.micro_batch_size]]
                )
                self.state.batch += 1
                yield batch
            self.state = DataState(epoch=self.state.epoch + 1, batch=0)
