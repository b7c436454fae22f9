"""Backends that score token sequences: per position the top-k log-probabilities and gold NLL.

Every backend returns, for each sequence of n token ids, ``(topk_ids int32 [n, k],
topk_logprobs float32 [n, k], nll float32 [n])`` where position t describes the next token
t+1 and the last position has nll 0 (no gold next token). The hf backend also gives
``start_logprobs(start_id)`` (float32 [V]: the next-token log-probabilities after the single
token ``start_id``) for the store's start sidecar (fusion/framing.py); vllm does not.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

Scored = tuple[np.ndarray, np.ndarray, np.ndarray]


class Backend(Protocol):
    vocab_size: int
    batch_rows: int | None  # rows per score() call; None: a whole shard at once

    def score(self, batch: list[list[int]]) -> list[Scored]: ...


def resolved_dtype(dtype: str, device_type: str) -> str:
    """The dtype a backend really runs in: ``auto`` is bfloat16 on CUDA, float32 elsewhere,
    for both backends (vLLM's own ``auto`` would take the checkpoint's dtype, so hf and vllm
    stores of one model would differ); the store records this, never ``auto``."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if device_type == "cuda" else "float32"


def make_backend(name: str, entry: Any, section: Any, device: str) -> Backend:
    """The named backend for one model entry of the config."""
    if name == "hf":
        from fusion.extract_backends.hf import HFBackend

        return HFBackend(entry, section, device)
    if name == "vllm":
        from fusion.extract_backends.vllm import VLLMBackend

        return VLLMBackend(entry, section)
    raise ValueError(f"unknown extraction backend {name!r}")
