"""The ``vllm`` backend: lm-eval's vLLM model (CUDA GPUs only).

UNTESTED ON THE DEVELOPMENT MACHINE: it has no GPU and vLLM cannot run there. Written against
lm-eval's documented ``vllm`` model arguments (``tensor_parallel_size``,
``data_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``); its tests are marked
``gpu`` and skip without CUDA.
"""

from __future__ import annotations

import importlib.util

from harness.backends import BackendOptions
from harness.errors import BackendUnavailable


def build(model: str, options: BackendOptions):
    if importlib.util.find_spec("vllm") is None:
        raise BackendUnavailable(
            "the vllm backend needs vLLM and a CUDA GPU: pip install 'fusebench[vllm]'"
        )
    from lm_eval.models.vllm_causallms import VLLM

    kwargs = dict(
        pretrained=model,
        batch_size=options.batch_size,
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
    return VLLM(**kwargs)
