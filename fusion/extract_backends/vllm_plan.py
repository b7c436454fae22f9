"""What the vllm extraction backend asks of vLLM, worked out before vLLM or a GPU is touched.

Pure functions (no vllm import), so that every argument and every refusal is tested on a
machine without a GPU: the ``LLM(...)`` and ``SamplingParams(...)`` keyword arguments, the
checks that refuse an impossible ``extract.k`` or an over-long ``extract.max_length`` before
a model is loaded, the vocabulary size read from the checkpoint's own output layer, and the
conversion of vLLM's prompt log-probabilities into the store's arrays (top-k ordered by
vLLM's rank, so ties come out in the order the hf backend's ``topk`` gives).

Written against vLLM's documented API (``LLM(max_logprobs=, max_model_len=,
tensor_parallel_size=, gpu_memory_utilization=)``, ``SamplingParams(prompt_logprobs=,
logprobs=, detokenize=)``, ``RequestOutput.prompt_logprobs`` = ``[None, {id: Logprob(logprob,
rank, decoded_token)}, ...]``); the calls themselves are UNTESTED on the development machine
(no GPU): ``scripts/gpu_smoke.sh`` checks them where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import FusionError
from fusion.extract_backends import resolved_dtype

# The config fields vLLM reads the model's context length from (the smallest one present
# wins, as in vLLM's ``_get_and_verify_max_len``; rope scaling is not applied here, so a
# model whose scaled context is longer is held to its unscaled one).
CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
# The output layer's weight (untied), else the input embedding it is tied to.
OUTPUT_SUFFIXES = ("lm_head.weight", "embed_out.weight", "output.weight")
TIED_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")


@dataclass(frozen=True)
class VLLMPlan:
    """One model's extraction settings for vLLM."""

    max_model_len: int  # extract.max_length + 1: the last position's token is generated
    context: int
    context_key: str
    vocab_rows: int  # rows of the checkpoint's output layer: the logits' width


def text_config(entry: Any) -> Any:
    """The model's (text) config, as vLLM reads it: config.json, no weights."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(
        entry.path, revision=entry.revision, trust_remote_code=entry.trust_remote_code
    )
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def model_context(entry: Any, text: Any) -> tuple[int, str]:
    """The model's context length and the config field it came from."""
    found = [(int(getattr(text, key)), key) for key in CONTEXT_KEYS if getattr(text, key, None)]
    if not found:
        raise FusionError(
            f"{entry.name}: its config names no context length ({', '.join(CONTEXT_KEYS)}); "
            "the vllm backend needs one"
        )
    return min(found)


def _safetensors_shapes(entry: Any) -> dict[str, list[int]]:
    """Tensor name -> shape from the checkpoint's safetensors headers (no weights read)."""
    local = Path(entry.path)
    if local.is_dir():
        from safetensors import safe_open

        shapes: dict[str, list[int]] = {}
        for file in sorted(local.glob("*.safetensors")):
            with safe_open(str(file), framework="np") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    shapes[name] = list(handle.get_slice(name).get_shape())
        return shapes
    from huggingface_hub import get_safetensors_metadata

    try:
        meta = get_safetensors_metadata(entry.path, revision=entry.revision)
    except Exception as err:  # offline, no safetensors, gated: say which
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise FusionError(
            f"{entry.name}: cannot read {entry.path}'s safetensors headers ({first})"
        ) from None
    return {
        name: list(info.shape)
        for file in meta.files_metadata.values()
        for name, info in file.tensors.items()
    }


def checkpoint_vocab_rows(entry: Any) -> int:
    """Rows of the output layer as stored in the checkpoint: the model's real vocabulary
    (what the hf backend reads from the loaded weights), read without loading them."""
    shapes = _safetensors_shapes(entry)
    for suffixes in (OUTPUT_SUFFIXES, TIED_SUFFIXES):
        rows = [s[0] for name, s in shapes.items() if name.endswith(suffixes) and len(s) == 2]
        if rows:
            return int(rows[0])
    raise FusionError(
        f"{entry.name}: no output layer ({', '.join(OUTPUT_SUFFIXES + TIED_SUFFIXES)}) in its "
        "safetensors files; the vllm backend reads the vocabulary size from there (the hf "
        "backend reads it from the loaded model)"
    )


def plan(entry: Any, section: Any) -> VLLMPlan:
    """The settings for one model, or a one-line refusal naming the setting to change."""
    text = text_config(entry)
    context, key = model_context(entry, text)
    if section.max_length >= context:
        raise FusionError(
            f"extract.max_length {section.max_length} reaches {entry.name}'s context of "
            f"{context} tokens (config.json {key}); vLLM needs one more position for the "
            f"token it generates: set extract.max_length to {context - 1} at most"
        )
    rows = checkpoint_vocab_rows(entry)
    if rows != int(text.vocab_size):
        raise FusionError(
            f"{entry.name}: the checkpoint's output layer has {rows} rows, its config.json "
            f"vocab_size says {text.vocab_size}; fix the config (the store's id range is "
            "the logits' width)"
        )
    if section.k > rows:
        raise FusionError(
            f"extract.k {section.k} is over {entry.name}'s vocabulary of {rows} tokens: "
            "vLLM cannot return more log-probabilities than there are tokens; lower extract.k"
        )
    return VLLMPlan(
        max_model_len=section.max_length + 1, context=context, context_key=key, vocab_rows=rows
    )


def llm_kwargs(entry: Any, section: Any, chosen: VLLMPlan) -> dict[str, Any]:
    """``vllm.LLM(**...)``: ``max_logprobs`` from k (vLLM's default of 20 refuses more at the
    first request), the context sized to the longest row, one model over
    ``tensor_parallel_size`` GPUs in this one process."""
    kwargs: dict[str, Any] = {
        "model": entry.path,
        "trust_remote_code": entry.trust_remote_code,
        "dtype": resolved_dtype(section.dtype, "cuda"),
        "max_model_len": chosen.max_model_len,
        "max_logprobs": section.k,
        "tensor_parallel_size": section.tensor_parallel_size,
        "gpu_memory_utilization": section.gpu_memory_utilization,
        "seed": 0,
    }
    if entry.revision:
        kwargs["revision"] = entry.revision
    return kwargs


def sampling_kwargs(k: int) -> dict[str, Any]:
    """``vllm.SamplingParams(**...)``: the top-k of every prompt position and of the one
    generated token (the last position); ids only, so no detokenizing (as lm-eval does)."""
    return {
        "max_tokens": 1,
        "temperature": 0.0,
        "prompt_logprobs": k,
        "logprobs": k,
        "detokenize": False,
    }


def ranked_top(entries: dict[int, Any], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of one position's ``{id: Logprob}``, ordered by vLLM's rank (1 = best), so
    equal log-probabilities keep the order vLLM's top-k gave them; the gold token vLLM adds
    beside the top-k carries its own, larger rank and drops out unless it is in it. A
    ``rank`` of None (not reported) falls back to the log-probability."""

    def key(item: tuple[int, Any]) -> tuple[float, float]:
        rank = item[1].rank
        return (float(rank) if rank is not None else float("inf"), -item[1].logprob)

    ranked = sorted(entries.items(), key=key)[:k]
    ids = np.full(k, -1, dtype=np.int32)
    lps = np.full(k, -np.inf, dtype=np.float32)
    for slot, (tid, lp) in enumerate(ranked):
        ids[slot], lps[slot] = tid, lp.logprob
    return ids, lps


def scored(batch: list[list[int]], outputs: list[Any], k: int) -> list:
    """The store's ``(topk_ids, topk_logprobs, nll)`` per sequence from vLLM's outputs:
    position t (predicting t+1) is vLLM's prompt entry t+1, the last position is the
    distribution of the generated token."""
    out = []
    for ids, result in zip(batch, outputs, strict=True):
        n = len(ids)
        prompt = result.prompt_logprobs  # [None, {id: Logprob}, ...] one per prompt token
        top_ids = np.full((n, k), -1, dtype=np.int32)
        top_lp = np.full((n, k), -np.inf, dtype=np.float32)
        nll = np.zeros(n, dtype=np.float32)
        for t in range(n - 1):
            entries = prompt[t + 1]
            top_ids[t], top_lp[t] = ranked_top(entries, k)
            nll[t] = -entries[ids[t + 1]].logprob
        top_ids[n - 1], top_lp[n - 1] = ranked_top(result.outputs[0].logprobs[0], k)
        out.append((top_ids, top_lp, nll))
    return out
