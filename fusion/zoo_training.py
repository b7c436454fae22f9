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
    # A specialist's second phase: its task rows (text sources whose rows end in the answer
    # word), the answer's loss weighed up (finetune_answers); 0 steps: none.
    finetune_texts: tuple[str, ...] = ()
    finetune_steps: int = 0
    finetune_learning_rate: float = 1e-3
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

    stream = torch.tensor(_token_stream(tokenizer, rows), dtype=torch.long)
    blocks = stream[: len(stream) // recipe.seq_len * recipe.seq_len].view(-1, recipe.seq_len)

    def step_loss(generator: Any) -> tuple[Any, Any]:
        batch = blocks[torch.randint(len(blocks), (recipe.batch_size,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        return loss, loss

    warmup = max(1, int(recipe.steps * recipe.warmup_fraction))
    return _train_steps(
        model, recipe.steps, recipe.learning_rate, warmup, recipe, seed, step_loss, on_step
    )


def _train_steps(
    model: Any,
    steps: int,
    learning_rate: float,
    warmup: int,
    recipe: TrainingRecipe,
    seed: int,
    step_loss: Callable[[Any], tuple[Any, Any]],
    on_step: Callable[[int, float], None] | None,
) -> list[float]:
    """The loop both phases share: AdamW, warm-up and cosine decay, clipping; ``step_loss``
    draws a batch from the seeded generator and gives (loss to train on, loss to record).
    The global RNG (dropout) is seeded too, inside a fork so the caller's stream is kept."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=recipe.weight_decay
    )
    schedule = get_cosine_schedule_with_warmup(optimizer, warmup, steps)
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        for step in range(steps):
            loss, recorded = step_loss(generator)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(recorded.item())
            if on_step is not None:
                on_step(step + 1, losses[-1])
    model.eval()
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


def answer_split(row: str) -> tuple[str, str]:
    """(prompt, continuation) of a task-formatted row: the continuation is the last word with
    the space before it, the way lm-eval scores a choice after its target delimiter."""
    prompt, _, answer = row.rpartition(" ")
    return prompt, f" {answer}"


def _answer_batch(tokenizer: Any, rows: list[str], max_length: int) -> tuple[Any, Any, Any]:
    """Right-padded ids, attention mask, and per token 0 (padding), 1 (text) or 2 (answer,
    with the EOS after it)."""
    import torch

    sequences, answers = [], []
    for row in rows:
        prompt, answer = answer_split(row)
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        answer_ids = [
            *tokenizer(answer, add_special_tokens=False)["input_ids"],
            tokenizer.eos_token_id,
        ]
        prompt_ids = prompt_ids[-(max_length - len(answer_ids)) :]  # keep the prompt's end
        sequences.append(prompt_ids + answer_ids)
        answers.append(len(answer_ids))
    width = max(len(ids) for ids in sequences)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    role = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (seq, answer) in enumerate(zip(sequences, answers, strict=True)):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        role[i, : len(seq)] = 1
        role[i, len(seq) - answer : len(seq)] = 2
    return ids, mask, role


def _text_and_answer_loss(model: Any, ids: Any, mask: Any, role: Any) -> tuple[Any, Any]:
    """(mean next-token CE over the text, mean CE over the answers)."""
    import torch

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
    ).view(ids.shape[0], -1)
    target_role = role[:, 1:]
    return ce[target_role > 0].mean(), ce[target_role == 2].mean()


def finetune_answers(
    model: Any,
    tokenizer: Any,
    rows: list[str],
    recipe: TrainingRecipe,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """The specialist phase: batches of task rows, loss = the rows' CLM loss + the answers'
    mean loss (the answers weigh as much as all the rest, and the model keeps its language
    model: an answer-only loss made a source useless as a teacher everywhere else)."""
    import torch

    def step_loss(generator: Any) -> tuple[Any, Any]:
        index = torch.randint(len(rows), (recipe.batch_size,), generator=generator).tolist()
        ids, mask, role = _answer_batch(tokenizer, [rows[i] for i in index], recipe.seq_len * 2)
        text_loss, answer_loss = _text_and_answer_loss(model, ids, mask, role)
        return text_loss + answer_loss, answer_loss

    steps = recipe.finetune_steps
    return _train_steps(
        model,
        steps,
        recipe.finetune_learning_rate,
        max(1, steps // 20),
        recipe,
        seed,
        step_loss,
        on_step,
    )
