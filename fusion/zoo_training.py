"""Pre-training a zoo model from scratch on its recipe's text, for a fixed number of steps.

A plain single-process PyTorch loop (no DeepSpeed: these models have a few million
parameters and train in a minute or two on a CPU), deterministic for a seed: the rows are
tokenised once, packed into one stream with EOS between rows, cut into fixed-length blocks,
and batches are drawn from a seeded generator. AdamW with linear warm-up and cosine decay
(transformers' schedule). The held-out loss is the mean token cross-entropy over the
held-out rows, each scored on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingRecipe:
    """How a zoo model is trained: which text sources, how long, how."""

    texts: tuple[str, ...]
    steps: int
    batch_size: int = 32
    seq_len: int = 64
    learning_rate: float = 3e-3
    warmup_fraction: float = 0.05
    weight_decay: float = 0.01
    held_out_fraction: float = 0.02
    held_out_max_rows: int = 400  # the loss is measured on at most this many held-out rows


def _token_stream(tokenizer: Any, rows: list[str]) -> list[int]:
    """Every row tokenised (with the tokenizer's own BOS, if it adds one) and EOS after it."""
    encoded = tokenizer(rows, add_special_tokens=True)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream += ids
        stream.append(tokenizer.eos_token_id)
    return stream


def pretrain(
    model: Any,
    tokenizer: Any,
    rows: list[str],
    recipe: TrainingRecipe,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on ``rows``; the loss of every step."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    stream = torch.tensor(_token_stream(tokenizer, rows), dtype=torch.long)
    blocks = stream[: len(stream) // recipe.seq_len * recipe.seq_len].view(-1, recipe.seq_len)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    schedule = get_cosine_schedule_with_warmup(
        optimizer, max(1, int(recipe.steps * recipe.warmup_fraction)), recipe.steps
    )
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global stream: seed it
        torch.manual_seed(seed)
        losses = _loop(model, blocks, recipe, generator, optimizer, schedule, on_step)
    model.eval()
    return losses


def _loop(
    model: Any,
    blocks: Any,
    recipe: TrainingRecipe,
    generator: Any,
    optimizer: Any,
    schedule: Any,
    on_step: Callable[[int, float], None] | None,
) -> list[float]:
    import torch

    model.train()
    losses = []
    for step in range(recipe.steps):
        index = torch.randint(len(blocks), (recipe.batch_size,), generator=generator)
        batch = blocks[index]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, losses[-1])
    return losses


def held_out_loss(model: Any, tokenizer: Any, rows: list[str], max_length: int) -> float:
    """Mean next-token cross-entropy (nats per token) over ``rows``, each row alone."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for ids in tokenizer(rows, add_special_tokens=True)["input_ids"]:
            ids = [*ids, tokenizer.eos_token_id][:max_length]
            if len(ids) < 2:
                continue
            batch = torch.tensor([ids])
            loss = model(input_ids=batch, labels=batch).loss
            total += float(loss) * (len(ids) - 1)
            count += len(ids) - 1
    return total / count if count else math.nan
