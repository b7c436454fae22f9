"""Multiple-choice scoring that runs each distinct context once (the ``hf`` backend's model).

lm-eval's ``hf`` model scores every (context, continuation) pair with a full forward pass, so
a four-way hellaswag question runs its context four times, and it projects every position of
every sequence onto the vocabulary although only the continuation's positions are scored.
``SharedContextLM`` keeps lm-eval's tokenisation, truncation and log-softmax, and changes only
how the forward passes are arranged:

1. Requests are grouped by the context tokens the model actually sees (after lm-eval's left
   truncation), and identical continuations of one context are scored once.
2. Each context is followed by its longest continuation (the lead), which therefore scores
   entirely, and every other continuation for as long as it agrees with the lead (boolq's
   two answers share their first token, after which the shorter one is complete). Only the
   positions that score a continuation token are projected onto the vocabulary.
3. The rest of every other continuation (its tail) must see the context and the lead tokens
   it shares, and nothing else. With sdpa or eager attention (the default on CPU and most
   GPUs), a batch of up to ``batch_size`` contexts runs as **one** forward pass: each row is
   a context, its lead and then the tails, packed, with a 4D attention mask that lets each
   tail attend to the shared part of the row and to itself, and position ids that go on
   from the shared part. Other attention kernels (flash attention takes no custom mask) use
   the KV-cache path: the contexts run once, right-padded, with the cache kept, and the
   tails run after copies of their context's cached keys and values, in as few passes as
   possible (sorted by length, split only where one pass would be mostly padding).

The numbers are lm-eval's up to float rounding of differently shaped matrix products (about
1e-5 on the tiny test models in float32). Memory: a batch holds the KV cache of its contexts
and one copy of a context's cache rows per continuation that has a tail (KV-cache path), or
a [batch, width, width] mask (packed path).

Everything else (``loglikelihood_rolling``, ``generate_until``, seq2seq models, models whose
cache is not a plain per-layer key/value store, ``batch_size="auto"``) is HFLM's own code.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lm_eval.models  # noqa: F401  (fills the registry before ours is added; see LMEVAL_NOTES)
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import _add_special_kwargs, has_bos_prefix
from tqdm import tqdm

from harness.errors import HarnessError

log = logging.getLogger(__name__)

MODEL_NAME = "fusebench-hf"
_SCORED_TYPES = ("loglikelihood", "multiple_choice")


@dataclass
class _Context:
    """One distinct context (as the model sees it) and the distinct continuations asked of it."""

    tokens: list[int]
    continuations: dict[tuple[int, ...], list[int]] = field(default_factory=dict)


@dataclass
class _Plan:
    """How one context runs. Its longest continuation leads: ``prefix`` is the context plus
    everything the lead feeds, so that one pass scores the lead and, for every other
    continuation, the tokens predicted while it agrees with the lead (``depth`` of its fed
    tokens are the lead's). ``tails`` are the continuations that go on from there."""

    entry: _Context
    prefix: list[int]
    depth: dict[tuple[int, ...], int]
    tails: list[tuple[list[int], int]]

    @property
    def first_scored(self) -> int:
        """The prefix position that predicts every continuation's first token."""
        return len(self.entry.tokens) - 1

    @property
    def scored(self) -> int:
        """How many prefix positions score something (the lead's length)."""
        return len(self.prefix) - self.first_scored

    @classmethod
    def of(cls, entry: _Context) -> _Plan:
        conts = list(entry.continuations.values())
        lead = max(conts, key=len)[:-1]  # the tokens the lead feeds to the model
        depth: dict[tuple[int, ...], int] = {}
        tails: list[tuple[list[int], int]] = []
        for cont in conts:
            n = 0
            while n < min(len(cont) - 1, len(lead)) and cont[n] == lead[n]:
                n += 1
            depth[tuple(cont)] = n
            if len(cont) - 1 > n:
                tails.append((cont, n))
        return cls(entry, entry.tokens + lead, depth, tails)


def _window(context: list[int], continuation: list[int], max_length: int) -> list[int]:
    """The context tokens lm-eval's ``hf`` feeds before ``continuation``.

    lm-eval keeps the last ``max_length + 1`` tokens of context + continuation and drops the
    final one, so a long context loses tokens from the left, by an amount that depends on the
    continuation's length (choices of one question may see different contexts).
    """
    whole = (context + continuation)[-(max_length + 1) :]
    return whole[: len(whole) - len(continuation)]


def encode_request(lm: HFLM, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context and continuation tokens exactly as lm-eval's ``TemplateLM.loglikelihood`` makes
    them: trailing spaces of the context move to the continuation, the pair is tokenised
    whole and split at the context's length, and an empty context becomes the prefix token."""
    if context == "":
        continuation_enc = lm.tok_encode(continuation, add_special_tokens=False)
        if continuation_enc and lm.prefix_token_id == continuation_enc[0]:
            return continuation_enc[:1], continuation_enc[1:]
        return [lm.prefix_token_id], continuation_enc
    return lm._encode_pair(context, continuation)


def _pair_strings(context: str, continuation: str) -> tuple[str, str]:
    """The two strings lm-eval's ``_encode_pair`` tokenises for a causal model: the context
    without its trailing whitespace, and the whole (that whitespace moves to the continuation)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    return context, context + continuation


def is_truncated(context: list[int], continuation: list[int], max_length: int) -> bool:
    """Whether lm-eval's ``hf`` cuts this request's context from the left."""
    return len(context) + len(continuation) > max_length + 1


def truncated_documents(lm: Any, results: dict, task: str) -> int | None:
    """How many of ``task``'s documents had a context cut from the left to fit the model.

    Counted from the logged samples with the model's own tokeniser and limit, so the figure
    is the same whichever HF backend ran the task and whether or not responses came from the
    response cache. ``None`` for models that are not transformers models (vLLM).
    """
    if not isinstance(lm, HFLM) or lm.backend != "causal":
        return None
    config = results.get("configs", {}).get(task, {})
    if config.get("output_type") not in _SCORED_TYPES:
        return 0
    count = 0
    for sample in results.get("samples", {}).get(task, []):
        pairs = (tuple(a) for a in sample.get("arguments", []))
        if any(
            len(pair) == 2 and is_truncated(*encode_request(lm, *pair), lm.max_length)
            for pair in pairs
        ):
            count += 1
    return count


def _describe(request: Instance) -> str:
    task = request.task_name or "(unnamed task)"
    return f"task {task}, document {request.doc_id}"


@register_model(MODEL_NAME)
class SharedContextLM(HFLM):
    """lm-eval's HF model with shared-context loglikelihood scoring (see the module docstring).

    Accepts every HFLM argument. ``batch_size`` counts contexts per forward pass; the
    continuations of those contexts then share one or a few shorter passes.
    """

    _memo: dict[tuple[str, bool | None, int | None], list[int]] | None = None

    def tok_encode(
        self,
        string: str,
        add_special_tokens: bool | None = None,
        left_truncate_len: int | None = None,
        **kwargs: Any,
    ) -> list[int]:
        """HFLM's encoding, remembered while one ``loglikelihood`` call runs: lm-eval encodes
        a context once per answer choice, and the choices of a question share it."""
        if self._memo is None or kwargs:
            return super().tok_encode(string, add_special_tokens, left_truncate_len, **kwargs)
        key = (string, add_special_tokens, left_truncate_len)
        if key not in self._memo:
            self._memo[key] = super().tok_encode(string, add_special_tokens, left_truncate_len)
        return list(self._memo[key])

    def _prefill(self, pairs: list[tuple[str, str]]) -> None:
        """Tokenise every string ``_encode_pair`` will ask for in one batched call per
        special-token setting: the same encodings as one ``tok_encode`` call per string
        (the fast tokenizer's batch path is what ``encode`` runs too), without the Python
        overhead of a call per request, which dominates with small models."""
        if self._memo is None or not getattr(self.tokenizer, "is_fast", False):
            return
        bos_text = self.tokenizer.decode(self.prefix_token_id)
        groups: dict[tuple[tuple[str, Any], ...], list[str]] = {}
        for context, continuation in pairs:
            if not context:
                continue  # encode_request encodes these with add_special_tokens=False
            for string in _pair_strings(context, continuation):
                if (string, None, None) in self._memo:
                    continue
                kwargs = _add_special_kwargs(None, self.add_bos_token)
                if has_bos_prefix(string, bos_text):
                    kwargs["add_special_tokens"] = False
                groups.setdefault(tuple(sorted(kwargs.items())), []).append(string)
        for kwargs, strings in groups.items():
            unique = list(dict.fromkeys(strings))
            encoded = self.tokenizer(unique, **dict(kwargs))["input_ids"]
            self._memo.update(
                ((string, None, None), list(ids))
                for string, ids in zip(unique, encoded, strict=True)
            )

    def loglikelihood(
        self, requests: list[Instance], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        if not self._can_share():
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        self._memo = {}
        try:
            self._prefill([request.args for request in requests])
            contexts, slots, truncated = self._group(requests)
        finally:
            self._memo = None
        if truncated:
            log.warning(
                "%d of %d requests are longer than the model's maximum length (%d) and were "
                "truncated from the left, as lm-eval's hf model does",
                truncated, len(requests), self.max_length,
            )  # fmt: skip
        try:
            scores = self._score_contexts(contexts, disable_tqdm)
        except _Unshareable as err:
            log.warning("%s: the model's cache (%s) cannot be shared; using lm-eval's path",
                        MODEL_NAME, err)  # fmt: skip
            self._cache_ok = False
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        answers = [scores[slot] for slot in slots]
        for request, answer in zip(requests, answers, strict=True):
            self.cache_hook.add_partial("loglikelihood", request.args, answer)
        return answers

    # ------------------------------------------------------------------ internals

    def _group(
        self, requests: list[Instance]
    ) -> tuple[dict[tuple[int, ...], _Context], list[tuple[tuple[int, ...], tuple[int, ...]]], int]:
        """Tokenise as lm-eval does and group by the context the model will see; rejects
        requests that cannot be scored, naming their task and document."""
        contexts: dict[tuple[int, ...], _Context] = {}
        slots: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        truncated = 0
        for request in requests:
            context, continuation = request.args
            if not continuation.strip():
                raise HarnessError(
                    f"{_describe(request)}: continuation {continuation!r} is empty (an empty "
                    "answer choice?); there is no text to score"
                )
            context_enc, continuation_enc = encode_request(self, context, continuation)
            if not continuation_enc:
                raise HarnessError(
                    f"{_describe(request)}: continuation {continuation!r} tokenises to nothing "
                    "after its context; nothing to score"
                )
            if len(continuation_enc) > self.max_length:
                raise HarnessError(
                    f"{_describe(request)}: continuation of {len(continuation_enc)} tokens is "
                    f"longer than the model's maximum length ({self.max_length})"
                )
            truncated += is_truncated(context_enc, continuation_enc, self.max_length)
            window = _window(context_enc, continuation_enc, self.max_length)
            if not window:
                raise HarnessError(
                    f"{_describe(request)}: context {context!r} has no tokens to condition on"
                )
            key, cont_key = tuple(window), tuple(continuation_enc)
            entry = contexts.setdefault(key, _Context(window))
            entry.continuations.setdefault(cont_key, continuation_enc)
            slots.append((key, cont_key))
        return contexts, slots, truncated

    def _can_share(self) -> bool:
        """Sharing needs a decoder-only model, a fixed batch size and a plain KV cache that
        can be row-selected; anything else goes through HFLM unchanged."""
        if self.backend != "causal" or not isinstance(self.batch_size, int):
            return False
        if getattr(self, "enable_thinking", False):
            return False  # HFLM raises its own error for this
        if not hasattr(self, "_cache_ok"):
            self._cache_ok = self._plain_cache()
        return self._cache_ok

    def _plain_cache(self) -> bool:
        try:
            from transformers import DynamicCache

            plain = _plain_layers(DynamicCache(config=self.model.config).layers)
        except Exception:  # older transformers, or configs DynamicCache cannot read
            return False
        if not plain:
            log.info("%s: cache is not a plain key/value store; using lm-eval's path", MODEL_NAME)
        return plain

    def _masked_logits(self) -> bool:
        """Whether the model projects only the positions picked by a boolean
        ``logits_to_keep`` (transformers 5's ``slice_logits_to_keep``); otherwise every
        position is projected and the wanted ones are picked afterwards."""
        if not hasattr(self, "_keep_mask"):
            module = sys.modules.get(type(self.model).__module__)
            params = inspect.signature(self.model.forward).parameters
            self._keep_mask = "logits_to_keep" in params and hasattr(module, "slice_logits_to_keep")
        return self._keep_mask

    def _logprobs(
        self, keep: torch.Tensor, use_cache: bool = True, **kwargs: Any
    ) -> tuple[torch.Tensor, Any]:
        """Log-softmax (in HFLM's ``softmax_dtype``) at the positions where ``keep`` is True,
        flattened in row-major order, and the model's KV cache."""
        if self._masked_logits():
            kwargs["logits_to_keep"] = keep
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            out = self.model(use_cache=use_cache, **kwargs)
        logits = out.logits if out.logits.dim() == 2 else out.logits[keep]
        return F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype), out.past_key_values

    def _score_contexts(
        self, contexts: dict[tuple[int, ...], _Context], disable_tqdm: bool
    ) -> dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[float, bool]]:
        """(log-probability, is-greedy) for every distinct (context, continuation)."""
        # Longest first, as lm-eval orders them: similar lengths share a batch (little
        # padding) and the first batch shows at once whether memory suffices.
        plans = sorted(
            (_Plan.of(entry) for entry in contexts.values()),
            key=lambda plan: (-len(plan.prefix), plan.prefix),
        )
        scores: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[float, bool]] = {}
        pbar = tqdm(
            total=sum(len(plan.entry.continuations) for plan in plans),
            disable=(disable_tqdm or self.rank != 0),
            desc="Running loglikelihood requests (shared contexts)",
        )
        for start in range(0, len(plans), self.batch_size):
            batch = plans[start : start + self.batch_size]
            for plan, answers in zip(batch, self._score_batch(batch), strict=True):
                key = tuple(plan.entry.tokens)
                scores.update({(key, cont): answer for cont, answer in answers.items()})
            pbar.update(sum(len(plan.entry.continuations) for plan in batch))
        pbar.close()
        return scores

    def _packable(self) -> bool:
        """Whether the attention takes a custom 4D mask (sdpa and eager do; flash attention
        and other kernels do not, and use the KV-cache path) and every layer attends to the
        whole sequence (a custom mask would overrule a sliding window)."""
        if not hasattr(self, "_packs"):
            impl = getattr(self.model.config, "_attn_implementation", None)
            self._packs = impl in ("sdpa", "eager") and self._plain_cache()
        return self._packs

    def _score_batch(self, plans: list[_Plan]) -> list[dict[tuple[int, ...], tuple[float, bool]]]:
        if self._packable():
            return self._score_batch_packed(plans)
        return self._score_batch_cached(plans)

    def _score_batch_packed(
        self, plans: list[_Plan]
    ) -> list[dict[tuple[int, ...], tuple[float, bool]]]:
        """Score one batch of contexts in a single forward pass: each row is a context with
        its lead continuation followed by the other continuations' tails, and a 4D mask lets
        each tail see only the shared part of the prefix and itself, with position ids going
        on from that shared part (as the cached path's tail pass does). Fewer, fuller passes
        and no copies of cached keys and values: the same arithmetic per scored token."""
        tails = [(row, cont, n) for row, plan in enumerate(plans) for cont, n in plan.tails]
        lengths = [len(plan.prefix) + sum(len(c) - 1 - n for c, n in plan.tails) for plan in plans]
        width = max(lengths)
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
                fed = cont[n:-1]
                seen = len(plan.entry.tokens) + n
                end = start + len(fed)
                inputs[row, start:end] = torch.tensor(fed, dtype=torch.long)
                positions[row, start:end] = torch.arange(seen, seen + len(fed))
                allowed[row, start:end, :seen] = True
                allowed[row, start:end, start:end] = causal[: len(fed), : len(fed)]
                keep[row, start:end] = True
                tail_rows += range(flat, flat + len(fed))
                flat += len(fed)
                start = end
            if tails:  # padding attends to itself only: no row of the mask is empty
                pad = torch.arange(start, width)
                allowed[row, pad, pad] = True
        device = self.device
        masking: dict[str, torch.Tensor] = {}
        if tails:  # else plain causal attention over right padding, as lm-eval runs it
            dtype = self.model.dtype
            mask = torch.zeros((batch, 1, width, width), dtype=dtype)
            mask.masked_fill_(~allowed.unsqueeze(1), torch.finfo(dtype).min)
            masking = {"attention_mask": mask.to(device), "position_ids": positions.to(device)}
        logprobs, _ = self._logprobs(
            keep.to(device), use_cache=False, input_ids=inputs.to(device), **masking
        )
        head = logprobs[torch.tensor(head_rows, dtype=torch.long, device=logprobs.device)]
        tail = (
            logprobs[torch.tensor(tail_rows, dtype=torch.long, device=logprobs.device)]
            if tail_rows
            else None
        )
        return self._collect(plans, tails, head, tail)

    def _score_batch_cached(
        self, plans: list[_Plan]
    ) -> list[dict[tuple[int, ...], tuple[float, bool]]]:
        """Score one batch of contexts: one pass over the contexts, each with its lead
        continuation, then the other continuations' tails after copies of the KV cache."""
        width = max(len(plan.prefix) for plan in plans)
        # Right padding with token 0 and no attention mask, as lm-eval's hf model does: causal
        # attention keeps the padding out of every real position.
        inputs = torch.zeros((len(plans), width), dtype=torch.long)
        keep = torch.zeros((len(plans), width), dtype=torch.bool)
        for row, plan in enumerate(plans):
            inputs[row, : len(plan.prefix)] = torch.tensor(plan.prefix, dtype=torch.long)
            keep[row, plan.first_scored : len(plan.prefix)] = True
        head, cache = self._logprobs(keep.to(self.device), input_ids=inputs.to(self.device))
        tails = [(row, cont, n) for row, plan in enumerate(plans) for cont, n in plan.tails]
        tails.sort(key=lambda tail: tail[2] - len(tail[1]))  # longest fed first
        tail = self._tail_pass(plans, tails, cache, width) if tails else None
        return self._collect(plans, tails, head, tail)

    def _tail_pass(
        self, plans: list[_Plan], tails: list[tuple[int, list[int], int]], cache: Any, width: int
    ) -> torch.Tensor:
        """Log-probabilities for the continuation tokens past where each continuation leaves
        its lead: the rest is fed after a copy of the context's cached keys and values, which
        sees the context and the ``depth`` lead tokens it shares (the lead's other tokens and
        the row's padding are masked out), with positions going on from there. ``tails``
        come longest first and run in passes of similar length (see ``_chunks``); the rows
        of the result follow ``tails``."""
        if not _row_selectable(cache):
            raise _Unshareable(type(cache).__name__)
        device = self.device
        fed_lengths = [len(cont) - 1 - n for _, cont, n in tails]
        out = []
        for chunk in _chunks(fed_lengths):
            part = tails[chunk]
            span = fed_lengths[chunk.start]
            inputs = torch.zeros((len(part), span), dtype=torch.long)
            keep = torch.zeros((len(part), span), dtype=torch.bool)
            mask = torch.ones((len(part), width + span), dtype=torch.long)
            positions = torch.zeros((len(part), span), dtype=torch.long)
            for i, (row, cont, n) in enumerate(part):
                fed = cont[n:-1]
                seen = len(plans[row].entry.tokens) + n
                inputs[i, : len(fed)] = torch.tensor(fed, dtype=torch.long)
                keep[i, : len(fed)] = True
                mask[i, seen:width] = 0
                positions[i] = torch.arange(seen, seen + span)
            rows = torch.tensor([row for row, _, _ in part], device=device)
            logprobs, _ = self._logprobs(
                keep.to(device),
                input_ids=inputs.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                past_key_values=_select_rows(cache, rows),
            )
            out.append(logprobs)
        return torch.cat(out) if len(out) > 1 else out[0]

    def _collect(
        self,
        plans: list[_Plan],
        tails: list[tuple[int, list[int], int]],
        head: torch.Tensor,
        tail: torch.Tensor | None,
    ) -> list[dict[tuple[int, ...], tuple[float, bool]]]:
        """Per context, (log-probability, is-greedy) of each continuation, from the rows of
        ``head`` (``plan.scored`` per context) and ``tail`` (one per fed tail token)."""
        tail_at: dict[tuple[int, tuple[int, ...]], int] = {}
        offset = 0
        for row, cont, n in tails:
            tail_at[(row, tuple(cont))] = offset
            offset += len(cont) - 1 - n
        # Every scored token: the row that predicts it, its id, and its continuation's index.
        keys: list[tuple[int, tuple[int, ...]]] = []
        picks: dict[str, tuple[list[int], list[int], list[int]]] = {
            "head": ([], [], []),
            "tail": ([], [], []),
        }
        base = 0
        for row, plan in enumerate(plans):
            for cont_key, cont in plan.entry.continuations.items():
                n_head = min(len(cont), plan.depth[cont_key] + 1)
                rows, ids, segs = picks["head"]
                rows += range(base, base + n_head)
                ids += cont[:n_head]
                segs += [len(keys)] * n_head
                if len(cont) > n_head:
                    start = tail_at[(row, cont_key)]
                    rows, ids, segs = picks["tail"]
                    rows += range(start, start + len(cont) - n_head)
                    ids += cont[n_head:]
                    segs += [len(keys)] * (len(cont) - n_head)
                keys.append((row, cont_key))
            base += plan.scored

        values, wrong, segments = [], [], []
        for name, logprobs in (("head", head), ("tail", tail)):
            rows, ids, segs = picks[name]
            if not rows or logprobs is None:
                continue
            rows_t = torch.tensor(rows, dtype=torch.long, device=logprobs.device)
            ids_t = torch.tensor(ids, dtype=torch.long, device=logprobs.device)
            values.append(logprobs[rows_t, ids_t])
            wrong.append(logprobs.argmax(dim=-1)[rows_t] != ids_t)
            segments.append(torch.tensor(segs, dtype=torch.long, device=logprobs.device))
        seg = torch.cat(segments)
        # Each continuation's log-probabilities in token order, summed by the same float32
        # ``sum`` lm-eval applies, so that the rounding matches too.
        order = torch.sort(seg, stable=True).indices
        lengths = torch.bincount(seg, minlength=len(keys)).tolist()
        sums = torch.stack([part.sum() for part in torch.split(torch.cat(values)[order], lengths)])
        misses = torch.zeros(len(keys), dtype=torch.long, device=seg.device)
        misses.index_add_(0, seg, torch.cat(wrong).long())
        results: list[dict[tuple[int, ...], tuple[float, bool]]] = [{} for _ in plans]
        for (row, cont_key), total, missed in zip(
            keys, sums.tolist(), misses.tolist(), strict=True
        ):
            results[row][cont_key] = (total, missed == 0)
        return results


class _Unshareable(Exception):
    """The model returned a cache whose rows cannot be selected (checked after the fact,
    for models whose config promised a plain one)."""


def _plain_layers(layers: Sequence[Any]) -> bool:
    """Full-attention key/value layers only (no sliding window, quantisation or state)."""
    from transformers.cache_utils import DynamicLayer

    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _select_rows(cache: Any, rows: torch.Tensor) -> Any:
    """A new cache holding ``cache``'s batch rows ``rows`` (repeats allowed); ``cache`` is
    left as it is for the next chunk."""
    from transformers import DynamicCache

    selected = DynamicCache()
    for index, layer in enumerate(cache.layers):
        selected.update(layer.keys[rows], layer.values[rows], index)
    return selected


# A forward pass costs about as much as this many token positions more (launching it, the
# copy of the cache rows), and a split must also save this share of the unsplit pass: tails
# are split only where padding would waste a lot (hellaswag's endings), never for a token.
_PASS_COST_TOKENS = 128
_PASS_COST_SHARE = 0.2


def _chunks(lengths: list[int]) -> list[slice]:
    """Forward passes for rows sorted longest first: every row of a pass is padded to its
    first (longest) row, so one pass over rows of very different lengths computes mostly
    padding, while each extra pass has a fixed cost. Dynamic programming over the cut
    points minimises padded positions plus a per-pass cost."""
    n = len(lengths)
    per_pass = max(_PASS_COST_TOKENS, _PASS_COST_SHARE * n * lengths[0])
    best = [0.0] + [float("inf")] * n  # best[i]: cheapest way to run rows[:i]
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end):
            cost = best[start] + (end - start) * lengths[start] + per_pass
            if cost < best[end]:
                best[end], cut[end] = cost, start
    passes, end = [], n
    while end > 0:
        passes.append(slice(cut[end], end))
        end = cut[end]
    return passes[::-1]


def _row_selectable(cache: Any) -> bool:
    from transformers import DynamicCache

    return isinstance(cache, DynamicCache) and _plain_layers(cache.layers)
