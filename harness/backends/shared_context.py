"""Multiple-choice scoring that runs each distinct context once (the ``hf`` backend's model).

lm-eval's ``hf`` model scores every (context, continuation) pair with a full forward pass, so
a four-way hellaswag question runs its context four times, and it projects every position of
every sequence onto the vocabulary although only the continuation's positions are scored.
``SharedContextLM`` keeps lm-eval's tokenisation, truncation and log-softmax, and changes only
how the forward passes are arranged. It plugs in where lm-eval lets backends score tokens:

- ``loglikelihood`` runs a pre-pass over the ``Instance`` objects (each request's task and
  document, for errors that name them; empty answer choices are rejected there), then hands
  the requests to lm-eval's ``TemplateLM.loglikelihood``, which tokenises every pair
  (``_encode_pair``, the empty-context rule) and calls ``_loglikelihood_tokens`` with
  ``((context, continuation), context_tokens, continuation_tokens)`` triples.
- ``_loglikelihood_tokens`` (lm-eval's extension point) checks the triples, groups them by
  context and plans the passes (``mc_plan``, pure), runs them with the strategy chosen at
  construction (``mc_strategies``: one packed pass per batch under a 4D mask for sdpa/eager
  attention, KV-cache copies for other kernels), and maps the scores back to the requests.

The numbers are lm-eval's up to float rounding of differently shaped matrix products (about
1e-5 on the tiny test models in float32). Everything else (``generate_until``, seq2seq
models, models whose cache is not a plain per-layer key/value store such as sliding-window
models, ``batch_size="auto"``) is HFLM's own code.

``loglikelihood_rolling`` (ko_bpb) is HFLM's too, windows and scoring, with one change: the
document is encoded without special tokens. lm-eval 0.4.13 encodes it with the tokenizer's
default and then puts its prefix token (BOS, else EOS) in front, so with a tokenizer that
prepends BOS (Llama, Mistral) log P(BOS | BOS) is counted as part of every document: a
tokenizer-dependent term in a score meant to compare tokenizers. Here the document's own
tokens are scored, the first one conditioned on the prefix token, for every tokenizer.
``rolling_scores_bos`` tells whether another backend (``hf-lm-eval``, ``vllm``) counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lm_eval.models  # noqa: F401  (lm-eval's models registered first; ours joins them)
from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import has_bos_prefix
from tqdm import tqdm

from harness.backends import mc_plan
from harness.backends.mc_plan import Score, Tokens, is_truncated
from harness.backends.mc_strategies import (
    Forward,
    KVCacheStrategy,
    PackedStrategy,
    Strategy,
    Unshareable,
    plain_cache,
)
from harness.errors import HarnessError
from harness.eval_ranks import my_share, run_shared

__all__ = [
    "MODEL_NAME",
    "SharedContextLM",
    "encode_request",
    "encode_requests",
    "is_truncated",
    "rolling_scores_bos",
    "truncated_documents",
]

log = logging.getLogger(__name__)

MODEL_NAME = "fusebench-hf"
_SCORED_TYPES = ("loglikelihood", "multiple_choice")
_Triple = tuple[tuple[str, str], list[int], list[int]]
_MemoKey = tuple[str, bool | None, int | None]


class _Recorder:
    """Stands in for ``lm`` in ``TemplateLM.loglikelihood``: tokenisation is ``lm``'s own (its
    ``tok_encode``, ``_encode_pair`` and prefix token), and "scoring" returns the tokens."""

    def __init__(self, lm: TemplateLM) -> None:
        self._lm = lm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lm, name)

    @staticmethod
    def _loglikelihood_tokens(
        requests: list[_Triple], **_: Any
    ) -> list[tuple[list[int], list[int]]]:
        return [(list(context), list(continuation)) for _, context, continuation in requests]


def encode_requests(
    lm: TemplateLM, pairs: Sequence[tuple[str, str]]
) -> list[tuple[list[int], list[int]]]:
    """Context and continuation tokens of each pair exactly as ``lm.loglikelihood`` makes them:
    lm-eval's own ``TemplateLM.loglikelihood`` tokenises, with ``lm``'s tokeniser."""
    requests = [Instance("loglikelihood", {}, tuple(pair), i) for i, pair in enumerate(pairs)]
    return TemplateLM.loglikelihood(_Recorder(lm), requests, disable_tqdm=True)  # type: ignore[arg-type]


def encode_request(lm: TemplateLM, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """``encode_requests`` for one pair."""
    return encode_requests(lm, [(context, continuation)])[0]


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
    documents = [
        [tuple(a) for a in sample.get("arguments", []) if len(a) == 2]
        for sample in results.get("samples", {}).get(task, [])
    ]
    encoded = iter(encode_requests(lm, [pair for pairs in documents for pair in pairs]))
    count = 0
    for pairs in documents:
        cut = [is_truncated(*next(encoded), lm.max_length) for _ in pairs]
        count += any(cut)
    return count


def rolling_scores_bos(lm: Any) -> bool:
    """Whether ``lm``'s ``loglikelihood_rolling`` counts log P(BOS | BOS) in each document:
    lm-eval's own models do when the tokenizer prepends the prefix token (see the module
    docstring); ``SharedContextLM`` never does."""
    if isinstance(lm, SharedContextLM):
        return False
    prefix = getattr(lm, "prefix_token_id", None)
    try:
        encoded = lm.tok_encode("가")
    except Exception:  # a model without a local tokenizer: nothing to tell
        return False
    return prefix is not None and bool(encoded) and encoded[0] == prefix


def _describe(request: Instance) -> str:
    task = request.task_name or "(unnamed task)"
    return f"task {task}, document {request.doc_id}"


def _pair_strings(context: str, continuation: str) -> tuple[str, str]:
    """The two strings lm-eval's ``_encode_pair`` tokenises for a causal model: the context
    without its trailing whitespace, and the whole (that whitespace moves to the continuation).
    Used only to tokenise ahead of time: a string missed here is tokenised when asked for."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    return context, context + continuation


@register_model(MODEL_NAME)
class SharedContextLM(HFLM):
    """lm-eval's HF model with shared-context loglikelihood scoring (see the module docstring).

    Accepts every HFLM argument. ``batch_size`` counts contexts per forward pass; the
    continuations of those contexts run in the same pass (packed) or in one or a few shorter
    ones (KV cache). ``strategy`` is ``None`` where HFLM's own path scores.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Per-call state, set only while a ``loglikelihood`` call runs: the first request of
        # each (context, continuation) (its task and document name it in errors), and the
        # encodings of the strings lm-eval will ask for.
        self._sources: dict[tuple[str, str], Instance] | None = None
        self._memo: dict[_MemoKey, list[int]] | None = None
        self._rolling = False  # set while loglikelihood_rolling encodes its documents
        super().__init__(*args, **kwargs)
        self.strategy: Strategy | None = self._choose_strategy()
        self._bos_text = self.tokenizer.decode(self.prefix_token_id)
        self._batch_tokenize = self._batch_encoding_agrees()

    def _choose_strategy(self) -> Strategy | None:
        """Sharing needs a decoder-only model, a fixed batch size and a plain KV cache (every
        layer attending to the whole sequence); anything else goes through HFLM unchanged.
        Attention that takes a custom 4D mask (sdpa, eager) runs packed; other kernels (flash
        attention takes no custom mask) use the KV cache."""
        if self.backend != "causal" or not isinstance(self.batch_size, int):
            return None
        if self.enable_thinking:
            return None  # HFLM raises its own error for this
        if not plain_cache(self.model.config):
            log.info("%s: cache is not a plain key/value store; using lm-eval's path", MODEL_NAME)
            return None
        forward = Forward(self.model, self.device, self.softmax_dtype, self.mixed_precision_dtype)
        if getattr(self.model.config, "_attn_implementation", None) in ("sdpa", "eager"):
            return PackedStrategy(forward, self.model.dtype)
        return KVCacheStrategy(forward)

    # ------------------------------------------------------------------ tokenisation

    def tok_encode(
        self,
        string: str,
        add_special_tokens: bool | None = None,
        left_truncate_len: int | None = None,
        **kwargs: Any,
    ) -> list[int]:
        """HFLM's encoding, remembered while one ``loglikelihood`` call runs: lm-eval encodes
        a context once per answer choice, and the choices of a question share it. Documents
        of ``loglikelihood_rolling`` are encoded without special tokens."""
        if self._rolling and add_special_tokens is None:
            add_special_tokens = False
        if self._memo is None or kwargs:
            return super().tok_encode(string, add_special_tokens, left_truncate_len, **kwargs)
        key = (string, add_special_tokens, left_truncate_len)
        if key not in self._memo:
            self._memo[key] = super().tok_encode(string, add_special_tokens, left_truncate_len)
        return list(self._memo[key])

    def _special_kwargs(self, string: str) -> dict[str, bool]:
        """The special-token arguments HFLM's ``tok_encode(string)`` gives the tokenizer."""
        if has_bos_prefix(string, self._bos_text):
            return {"add_special_tokens": False}
        return {} if self.add_bos_token is None else {"add_special_tokens": self.add_bos_token}

    def _batch_encoding_agrees(self) -> bool:
        """Whether one batched tokenizer call gives ``tok_encode``'s encodings (a fast
        tokenizer, and HFLM's special-token rule as ``_special_kwargs`` reads it); checked
        once on probe strings, else ``_prefill`` stays off and strings encode one by one."""
        if not getattr(self.tokenizer, "is_fast", False):
            return False
        probes = ["가나 abc", self._bos_text + "가나 abc"]
        try:
            return all(
                self.tokenizer([probe], **self._special_kwargs(probe))["input_ids"][0]
                == super(SharedContextLM, self).tok_encode(probe)
                for probe in probes
            )
        except Exception:
            return False

    def _prefill(self, pairs: list[tuple[str, str]]) -> None:
        """Tokenise every string lm-eval's ``_encode_pair`` will ask for in one batched call
        per special-token setting: the same encodings as one ``tok_encode`` call per string
        (the fast tokenizer's batch path is what ``encode`` runs too), without the Python
        overhead of a call per request, which dominates with small models."""
        if self._memo is None or not self._batch_tokenize:
            return
        groups: dict[tuple[tuple[str, bool], ...], list[str]] = {}
        for context, continuation in pairs:
            if not context:
                continue  # lm-eval encodes these with add_special_tokens=False
            for string in _pair_strings(context, continuation):
                if (string, None, None) in self._memo:
                    continue
                kwargs = self._special_kwargs(string)
                groups.setdefault(tuple(sorted(kwargs.items())), []).append(string)
        for kwargs, strings in groups.items():
            unique = list(dict.fromkeys(strings))
            encoded = self.tokenizer(unique, **dict(kwargs))["input_ids"]
            self._memo.update(
                ((string, None, None), list(ids))
                for string, ids in zip(unique, encoded, strict=True)
            )

    # ------------------------------------------------------------------ scoring

    def loglikelihood_rolling(
        self, requests: list[Instance], disable_tqdm: bool = False
    ) -> list[float]:
        """HFLM's rolling log-likelihood of each document's own tokens: the prefix token that
        lm-eval's windows put in front conditions the first one, and no BOS of the
        tokenizer's is scored as if it were text (see the module docstring)."""
        self._rolling = True
        try:
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
        finally:
            self._rolling = False

    def loglikelihood(
        self, requests: list[Instance], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        """The pre-pass (each request's task and document; empty answer choices rejected),
        then lm-eval's tokenisation, which calls ``_loglikelihood_tokens``."""
        if self.strategy is None:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        sources: dict[tuple[str, str], Instance] = {}
        for request in requests:
            context, continuation = request.args
            if not continuation.strip():
                raise HarnessError(
                    f"{_describe(request)}: continuation {continuation!r} is empty (an empty "
                    "answer choice?); there is no text to score"
                )
            sources.setdefault((context, continuation), request)
        self._sources, self._memo = sources, {}
        try:
            self._prefill([request.args for request in requests])
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        finally:
            self._sources, self._memo = None, None

    def _loglikelihood_tokens(
        self,
        requests: list[_Triple],
        disable_tqdm: bool = False,
        override_bs: int | None = None,
    ) -> list[tuple[float, bool]]:
        """lm-eval's scoring hook: shared-context scoring for the requests of a
        ``loglikelihood`` call; HFLM's own for everything else (``loglikelihood_rolling``'s
        windows, models without a strategy)."""
        sources = self._sources
        if sources is None or override_bs is not None or self.strategy is None:
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        self._memo = None  # tokenisation is over; the encodings need not stay
        for strings, context_enc, continuation_enc in requests:
            self._check(sources, strings, context_enc, continuation_enc)
        grouping = mc_plan.group(((c, x) for _, c, x in requests), self.max_length)
        if grouping.truncated:
            log.warning(
                "%d of %d requests are longer than the model's maximum length (%d) and were "
                "truncated from the left, as lm-eval's hf model does",
                grouping.truncated,
                len(requests),
                self.max_length,
            )
        try:
            scores = self._score_contexts(grouping.contexts, disable_tqdm)
        except Unshareable as err:
            log.warning(
                "%s: the model's cache (%s) cannot be shared; using lm-eval's path", MODEL_NAME, err
            )
            self.strategy = None
            return super()._loglikelihood_tokens(requests, disable_tqdm)
        answers = grouping.answers(scores)
        for (strings, _, _), answer in zip(requests, answers, strict=True):
            self.cache_hook.add_partial("loglikelihood", strings, answer)
        return answers

    def _check(
        self,
        sources: dict[tuple[str, str], Instance],
        strings: tuple[str, str],
        context_enc: list[int],
        continuation_enc: list[int],
    ) -> None:
        """Rejects a request that cannot be scored, naming its task and document."""
        n_context, n_continuation = len(context_enc), len(continuation_enc)
        fits = 0 < n_continuation <= self.max_length
        if fits and mc_plan.window_size(n_context, n_continuation, self.max_length) > 0:
            return
        context, continuation = strings
        source = sources.get(strings)
        where = _describe(source) if source is not None else "(unknown request)"
        if not continuation_enc:
            raise HarnessError(
                f"{where}: continuation {continuation!r} tokenises to nothing after its "
                "context; nothing to score"
            )
        if n_continuation > self.max_length:
            raise HarnessError(
                f"{where}: continuation of {n_continuation} tokens is longer than the "
                f"model's maximum length ({self.max_length})"
            )
        raise HarnessError(f"{where}: context {context!r} has no tokens to condition on")

    def _score_contexts(
        self, contexts: dict[Tokens, mc_plan.Context], disable_tqdm: bool
    ) -> dict[tuple[Tokens, Tokens], Score]:
        """(log-probability, is-greedy) for every distinct (context, continuation)."""
        assert self.strategy is not None
        # With --nproc N each rank runs its share of the same batches (harness.eval_ranks).
        batches = mc_plan.batches(contexts.values(), self.batch_size)
        costs = [len(batch) * max(plan.packed_length for plan in batch) for batch in batches]
        pbar = tqdm(
            total=sum(
                len(plan.entry.continuations) for i in my_share(costs) for plan in batches[i]
            ),
            disable=(disable_tqdm or self.rank != 0),
            desc="Running loglikelihood requests (shared contexts)",
        )
        strategy = self.strategy

        def run(batch: list[mc_plan.Plan]) -> dict[tuple[Tokens, Tokens], Score]:
            done: dict[tuple[Tokens, Tokens], Score] = {}
            for plan, answers in zip(batch, strategy.score(batch), strict=True):
                done.update({(plan.key, cont): answer for cont, answer in answers.items()})
            pbar.update(sum(len(plan.entry.continuations) for plan in batch))
            return done

        scores = run_shared(batches, costs, run)
        pbar.close()
        return scores
