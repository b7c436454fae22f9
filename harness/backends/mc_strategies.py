"""How a batch of planned contexts runs through the model: two strategies, one interface.

``strategy.score(plans)`` takes one batch of ``mc_plan.Plan`` (``batch_size`` contexts) and
returns, per plan, ``{continuation: (log-probability, is-greedy)}``.

- ``PackedStrategy`` (sdpa and eager attention): **one** forward pass per batch. Each row is
  a context, its lead continuation and then the other continuations' tails, packed, with a
  4D attention mask that lets each tail attend to the shared part of the row and to itself,
  and position ids that go on from the shared part.
- ``KVCacheStrategy`` (attention kernels that take no custom mask, such as flash attention):
  the contexts with their leads run once, right-padded, with the cache kept; the tails run
  after copies of their context's cached keys and values, in as few passes as possible
  (sorted by length, split only where one pass would be mostly padding; ``mc_plan.chunks``).

Both project onto the vocabulary only the positions that score a continuation token (when the
model takes a boolean ``logits_to_keep``) and sum each continuation's log-probabilities with
the same float32 ``sum`` lm-eval applies. Memory: a batch holds a [batch, width, width] mask
(packed), or the KV cache of its contexts and one copy of a context's cache rows per
continuation that has a tail (KV cache).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from harness.backends import mc_plan
from harness.backends.mc_plan import Plan, Score, Tail, Tokens

Results = list[dict[Tokens, Score]]


class Unshareable(Exception):
    """The model returned a cache whose rows cannot be selected (checked after the fact,
    for models whose config promised a plain one)."""


class Strategy(Protocol):
    name: str

    def score(self, plans: Sequence[Plan]) -> Results:
        """Per plan, (log-probability, is-greedy) of each of its continuations."""
        ...


class Forward:
    """One forward pass as HFLM runs it (no gradients, HFLM's autocast and log-softmax dtype),
    returning log-probabilities only at the positions a boolean ``keep`` selects."""

    def __init__(
        self,
        model: Any,
        device: torch.device,
        softmax_dtype: torch.dtype | None,
        autocast_dtype: torch.dtype | None,
    ) -> None:
        self.model, self.device = model, device
        self.softmax_dtype, self.autocast_dtype = softmax_dtype, autocast_dtype
        self.masked_logits = takes_keep_mask(model)
        # transformers 5.x renames the cache argument ``past_key_values`` to ``cache`` (the old
        # name warns, and goes in 5.40); pass it by the name this model's ``forward`` takes.
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def __call__(
        self,
        keep: torch.Tensor,
        use_cache: bool = True,
        cache: Any = None,
        **inputs: torch.Tensor,
    ) -> tuple[torch.Tensor, Any]:
        """Log-softmax at the positions where ``keep`` is True, flattened in row-major order,
        and the model's KV cache (``None`` without ``use_cache``). ``cache``: keys and values
        of earlier positions, which the inputs go on from."""
        kwargs: dict[str, Any] = {name: value.to(self.device) for name, value in inputs.items()}
        if cache is not None:
            kwargs[self.cache_arg] = cache
        keep = keep.to(self.device)
        if self.masked_logits:
            kwargs["logits_to_keep"] = keep
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.autocast_dtype,
                enabled=self.autocast_dtype is not None,
            ),
        ):
            out = self.model(use_cache=use_cache, **kwargs)
        logits = out.logits if out.logits.dim() == 2 else out.logits[keep]
        returned = getattr(out, "cache", None) if use_cache else None
        if use_cache and returned is None:  # transformers before the rename
            returned = out.past_key_values
        return F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype), returned


def takes_keep_mask(model: Any) -> bool:
    """Whether the model projects only the positions picked by a boolean ``logits_to_keep``
    (transformers 5's ``slice_logits_to_keep``); otherwise every position is projected and
    the wanted ones are picked afterwards."""
    module = sys.modules.get(type(model).__module__)
    params = inspect.signature(model.forward).parameters
    return "logits_to_keep" in params and hasattr(module, "slice_logits_to_keep")


def collect(
    plans: Sequence[Plan], tails: Sequence[Tail], head: torch.Tensor, tail: torch.Tensor | None
) -> Results:
    """Per plan, (log-probability, is-greedy) of each continuation, from the rows of ``head``
    (``plan.scored`` per plan) and ``tail`` (one per fed tail token, in ``tails`` order)."""
    where = mc_plan.picks(plans, tails)
    values, wrong, segments = [], [], []
    for source, logprobs in ((where.head, head), (where.tail, tail)):
        if not source.rows or logprobs is None:
            continue
        device = logprobs.device
        rows = torch.tensor(source.rows, dtype=torch.long, device=device)
        ids = torch.tensor(source.ids, dtype=torch.long, device=device)
        values.append(logprobs[rows, ids])
        wrong.append(logprobs.argmax(dim=-1)[rows] != ids)
        segments.append(torch.tensor(source.segments, dtype=torch.long, device=device))
    seg = torch.cat(segments)
    # Each continuation's log-probabilities in token order, summed by the same float32
    # ``sum`` lm-eval applies, so that the rounding matches too.
    order = torch.sort(seg, stable=True).indices
    lengths = torch.bincount(seg, minlength=len(where.keys)).tolist()
    sums = torch.stack([part.sum() for part in torch.split(torch.cat(values)[order], lengths)])
    misses = torch.zeros(len(where.keys), dtype=torch.long, device=seg.device)
    misses.index_add_(0, seg, torch.cat(wrong).long())
    results: Results = [{} for _ in plans]
    for (row, cont_key), total, missed in zip(
        where.keys, sums.tolist(), misses.tolist(), strict=True
    ):
        results[row][cont_key] = (total, missed == 0)
    return results


class PackedStrategy:
    """Score one batch of contexts in a single forward pass: each row is a context with its
    lead continuation followed by the other continuations' tails, and a 4D mask lets each
    tail see only the shared part of the prefix and itself, with position ids going on from
    that shared part (as the KV-cache path's tail pass does). Fewer, fuller passes and no
    copies of cached keys and values: the same arithmetic per scored token.

    Needs attention that takes a custom 4D mask (sdpa, eager) and attends to the whole
    sequence in every layer: a custom mask would overrule a sliding window."""

    name = "packed"

    def __init__(self, forward: Forward, mask_dtype: torch.dtype) -> None:
        self.forward, self.mask_dtype = forward, mask_dtype

    def score(self, plans: Sequence[Plan]) -> Results:
        tails = mc_plan.tails(plans)
        width = max(plan.packed_length for plan in plans)
        batch = len(plans)
        inputs = torch.zeros((batch, width), dtype=torch.long)
        positions = torch.zeros((batch, width), dtype=torch.long)
        keep = torch.zeros((batch, width), dtype=torch.bool)
        # Only rows with tails need a mask of their own; [width, width] booleans per row.
        allowed = torch.zeros((batch if tails else 0, width, width), dtype=torch.bool)
        causal = torch.ones((width, width) if tails else (0, 0), dtype=torch.bool).tril()
        head_rows: list[int] = []
        tail_rows: list[int] = []
        flat = 0
        for row, plan in enumerate(plans):
            size = len(plan.prefix)
            inputs[row, :size] = torch.tensor(plan.prefix, dtype=torch.long)
            positions[row, :size] = torch.arange(size)
            if tails:
                allowed[row, :size, :size] = causal[:size, :size]
            keep[row, plan.first_scored : size] = True
            head_rows += range(flat, flat + plan.scored)
            flat += plan.scored
            start = size
            for cont, n in plan.tails:
                tokens, seen = mc_plan.fed(plan, cont, n)
                end = start + len(tokens)
                inputs[row, start:end] = torch.tensor(tokens, dtype=torch.long)
                positions[row, start:end] = torch.arange(seen, seen + len(tokens))
                allowed[row, start:end, :seen] = True
                allowed[row, start:end, start:end] = causal[: len(tokens), : len(tokens)]
                keep[row, start:end] = True
                tail_rows += range(flat, flat + len(tokens))
                flat += len(tokens)
                start = end
            if tails:  # padding attends to itself only: no row of the mask is empty
                pad = torch.arange(start, width)
                allowed[row, pad, pad] = True
        masking: dict[str, torch.Tensor] = {}
        if tails:  # else plain causal attention over right padding, as lm-eval runs it
            mask = torch.zeros((batch, 1, width, width), dtype=self.mask_dtype)
            mask.masked_fill_(~allowed.unsqueeze(1), torch.finfo(self.mask_dtype).min)
            masking = {"attention_mask": mask, "position_ids": positions}
        logprobs, _ = self.forward(keep, use_cache=False, input_ids=inputs, **masking)
        device = logprobs.device
        head = logprobs[torch.tensor(head_rows, dtype=torch.long, device=device)]
        tail = (
            logprobs[torch.tensor(tail_rows, dtype=torch.long, device=device)]
            if tail_rows
            else None
        )
        return collect(plans, tails, head, tail)


class KVCacheStrategy:
    """Score one batch of contexts: one pass over the contexts, each with its lead
    continuation, then the other continuations' tails after copies of the KV cache.

    Needs a cache whose rows can be selected (a plain per-layer key/value store); raises
    ``Unshareable`` when the model returns another."""

    name = "kv-cache"

    def __init__(self, forward: Forward) -> None:
        self.forward = forward

    def score(self, plans: Sequence[Plan]) -> Results:
        width = max(len(plan.prefix) for plan in plans)
        # Right padding with token 0 and no attention mask, as lm-eval's hf model does: causal
        # attention keeps the padding out of every real position.
        inputs = torch.zeros((len(plans), width), dtype=torch.long)
        keep = torch.zeros((len(plans), width), dtype=torch.bool)
        for row, plan in enumerate(plans):
            inputs[row, : len(plan.prefix)] = torch.tensor(plan.prefix, dtype=torch.long)
            keep[row, plan.first_scored : len(plan.prefix)] = True
        head, cache = self.forward(keep, input_ids=inputs)
        tails = mc_plan.tails(plans)
        tails.sort(key=lambda tail: tail[2] - len(tail[1]))  # longest fed first
        tail = self._tail_pass(plans, tails, cache, width) if tails else None
        return collect(plans, tails, head, tail)

    def _tail_pass(
        self, plans: Sequence[Plan], tails: list[Tail], cache: Any, width: int
    ) -> torch.Tensor:
        """Log-probabilities for the continuation tokens past where each continuation leaves
        its lead: the rest is fed after a copy of the context's cached keys and values, which
        sees the context and the ``depth`` lead tokens it shares (the lead's other tokens and
        the row's padding are masked out), with positions going on from there. ``tails``
        come longest first and run in passes of similar length (``mc_plan.chunks``); the rows
        of the result follow ``tails``."""
        if not row_selectable(cache):
            raise Unshareable(type(cache).__name__)
        fed_lengths = [len(cont) - 1 - n for _, cont, n in tails]
        out = []
        for chunk in mc_plan.chunks(fed_lengths):
            part = tails[chunk]
            span = fed_lengths[chunk.start]
            inputs = torch.zeros((len(part), span), dtype=torch.long)
            keep = torch.zeros((len(part), span), dtype=torch.bool)
            mask = torch.ones((len(part), width + span), dtype=torch.long)
            positions = torch.zeros((len(part), span), dtype=torch.long)
            for i, (row, cont, n) in enumerate(part):
                tokens, seen = mc_plan.fed(plans[row], cont, n)
                inputs[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                keep[i, : len(tokens)] = True
                mask[i, seen:width] = 0
                positions[i] = torch.arange(seen, seen + span)
            rows = torch.tensor([row for row, _, _ in part], device=self.forward.device)
            logprobs, _ = self.forward(
                keep,
                input_ids=inputs,
                attention_mask=mask,
                position_ids=positions,
                cache=select_rows(cache, rows),
            )
            out.append(logprobs)
        return torch.cat(out) if len(out) > 1 else out[0]


def plain_cache(config: Any) -> bool:
    """Whether the model's cache is a plain per-layer key/value store (full attention in every
    layer: no sliding window, quantisation or state), as both strategies need."""
    try:
        from transformers import DynamicCache

        return plain_layers(DynamicCache(config=config).layers)
    except Exception:  # configs DynamicCache cannot read
        return False


def plain_layers(layers: Sequence[Any]) -> bool:
    """Full-attention key/value layers only (no sliding window, quantisation or state)."""
    from transformers.cache_utils import DynamicLayer

    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def row_selectable(cache: Any) -> bool:
    from transformers import DynamicCache

    return isinstance(cache, DynamicCache) and plain_layers(cache.layers)


def select_rows(cache: Any, rows: torch.Tensor) -> Any:
    """A new cache holding ``cache``'s batch rows ``rows`` (repeats allowed); ``cache`` is
    left as it is for the next chunk."""
    from transformers import DynamicCache

    selected = DynamicCache()
    for index, layer in enumerate(cache.layers):
        selected.update(layer.keys[rows], layer.values[rows], index)
    return selected
