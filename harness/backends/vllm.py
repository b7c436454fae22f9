"""The ``vllm`` backend: lm-eval's vLLM model (CUDA GPUs only).

UNTESTED ON THE DEVELOPMENT MACHINE: it has no GPU and vLLM cannot run there. Written against
lm-eval 0.4.13's ``VLLM`` model (``lm_eval/models/vllm_causallms.py``): ``batch_size``
``"auto"`` hands every request to vLLM at once so that its scheduler batches them (a number
would cut them into fixed groups and starve it), ``max_model_len``, ``tensor_parallel_size``,
``data_parallel_size`` (through Ray) and ``gpu_memory_utilization`` (passed on to
``vllm.LLM``). The keyword arguments are built by ``vllm_kwargs`` and tested without a GPU;
``scripts/gpu_smoke.sh`` runs the model itself.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from harness.backends import BackendOptions
from harness.errors import BackendUnavailable


def vllm_kwargs(model: str, options: BackendOptions) -> dict[str, Any]:
    """lm-eval ``VLLM(**...)``; ``options.batch_size`` is the hf backends' and is not used."""
    kwargs: dict[str, Any] = dict(
        pretrained=model,
        batch_size="auto",
        dtype=options.dtype,
        trust_remote_code=options.trust_remote_code,
        tensor_parallel_size=int(options.extra.get("tensor_parallel_size", 1)),
        data_parallel_size=int(options.extra.get("data_parallel_size", 1)),
        gpu_memory_utilization=float(options.extra.get("gpu_memory_utilization", 0.9)),
    )
    if options.revision:
        kwargs["revision"] = options.revision
    if options.max_length:
        kwargs["max_model_len"] = options.max_length
    return kwargs


def build(model: str, options: BackendOptions):
    if importlib.util.find_spec("vllm") is None:
        raise BackendUnavailable(
            "the vllm backend needs vLLM and a CUDA GPU: pip install 'fusebench[vllm]' "
            "(in its own environment; see README, vLLM)"
        )
    from lm_eval.models.vllm_causallms import VLLM

    return VLLM(**vllm_kwargs(model, options))
