"""Training data: truncation with labels kept, per-batch padding, seeded resumable sharded order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fusion.store import PAD_ID, TopKStore
from fusion.train.data import Collator, DataState, FusedDataset, MicroBatches, TrainDataError
from fusion.train.loss import IGNORE


def _batches(dataset: FusedDataset, rank: int = 0, world: int = 1, seed: int = 7) -> MicroBatches:
    return MicroBatches(
        dataset,
        Collator(pad_token_id=3),
        micro_batch_size=3,
        epochs=2,
        seed=seed,
        rank=rank,
        world_size=world,
    )


def test_items_are_the_stored_sequence_with_next_token_labels(fused_store: Path) -> None:
    store = TopKStore(fused_store)
    dataset = FusedDataset(store, max_length=10_000)
    assert dataset.truncated == 0 and len(dataset) == 24
    seq, item = store.sequence(5), dataset[5]
    np.testing.assert_array_equal(item["input_ids"], seq.token_ids)
    np.testing.assert_array_equal(item["labels"][:-1], seq.token_ids[1:])
    assert item["labels"][-1] == IGNORE  # no gold token after the last one
    np.testing.assert_array_equal(item["topk_ids"], seq.topk_ids)


def test_long_rows_are_cut_and_counted_or_refused(fused_store: Path) -> None:
    store = TopKStore(fused_store)
    lengths = [len(seq) for seq in store]
    cut = FusedDataset(store, max_length=12)
    assert cut.truncated == sum(n > 12 for n in lengths) > 0
    i = next(i for i, n in enumerate(lengths) if n > 12)
    item = cut[i]
    assert len(item["input_ids"]) == 12
    # The last kept position still learns its gold next token (cut after the labels).
    assert item["labels"][-1] == store.sequence(i).token_ids[12]
    with pytest.raises(
        TrainDataError, match=r"corpus row \d+ has \d+ tokens, more than train.max_length=12"
    ):
        FusedDataset(store, max_length=12, long_rows="refuse")


def test_collator_pads_to_the_longest_in_the_batch(fused_store: Path) -> None:
    dataset = FusedDataset(TopKStore(fused_store), max_length=2048)
    items = [dataset[0], dataset[1], dataset[2]]
    batch = Collator(pad_token_id=3)(items)
    longest = max(len(item["input_ids"]) for item in items)
    assert batch["input_ids"].shape == (3, longest)
    assert batch["topk_ids"].shape == (3, longest, 4)
    for row, item in enumerate(items):
        n = len(item["input_ids"])
        assert batch["attention_mask"][row].sum() == n
        assert (batch["labels"][row, n:] == IGNORE).all()
        assert (batch["topk_ids"][row, n:] == PAD_ID).all()
        assert torch.isinf(batch["topk_logprobs"][row, n:]).all()


def test_order_is_seeded_sharded_and_resumes_at_the_next_batch(fused_store: Path) -> None:
    dataset = FusedDataset(TopKStore(fused_store), max_length=2048)
    full = [b["input_ids"] for b in _batches(dataset)]
    assert len(full) == 2 * 8  # 24 sequences / 3 per batch, two epochs
    again = [b["input_ids"] for b in _batches(dataset)]
    assert all(torch.equal(a, b) for a, b in zip(full, again, strict=True))
    other_seed = [b["input_ids"] for b in _batches(dataset, seed=8)]
    assert not all(torch.equal(a, b) for a, b in zip(full, other_seed, strict=True))
    # Stop after 5 batches, carry the state over, continue: the same stream, nothing repeated.
    first = _batches(dataset)
    stream = iter(first)
    head = [next(stream)["input_ids"] for _ in range(5)]
    resumed = _batches(dataset)
    resumed.state = DataState(first.state.epoch, first.state.batch)
    tail = [b["input_ids"] for b in resumed]
    assert all(torch.equal(a, b) for a, b in zip(head + tail, full, strict=True))
    # Two ranks see disjoint halves of each epoch.
    seen = []
    for rank in (0, 1):
        shard = _batches(dataset, rank=rank, world=2)
        shard.epochs = 1
        seen.append({tuple(row.tolist()) for b in shard for row in b["input_ids"]})
    assert len(seen[0]) + len(seen[1]) == 24 and not seen[0] & seen[1]
