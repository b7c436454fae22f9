"""The ``hf`` backends: transformers models through lm-eval, on CPU or GPU.

``hf`` is fusebench's shared-context model (``harness.backends.shared_context``): lm-eval's
HF model with multiple-choice scoring that runs each context once. ``hf-lm-eval`` is
lm-eval's HF model unchanged, kept so that any figure can be checked against it.
"""

from __future__ import annotations

from typing import Any

from harness.backends import BackendOptions
from harness.errors import HarnessError


def _kwargs(model: str, options: BackendOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        pretrained=model,
        batch_size=options.batch_size,
        dtype=options.dtype,
        trust_remote_code=options.trust_remote_code,
        **options.extra,
    )
    if options.device:
        kwargs["device"] = options.device
    if options.revision:
        kwargs["revision"] = options.revision
    if options.max_length:
        kwargs["max_length"] = options.max_length
    return kwargs


def _load(cls: type, model: str, options: BackendOptions):
    try:
        return cls(**_kwargs(model, options))
    except (OSError, ValueError) as err:  # missing files, Hub errors, bad dtype
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HarnessError(f"{model}: could not load with transformers: {first}") from None


def build(model: str, options: BackendOptions):
    """``hf``: shared-context multiple-choice scoring, lm-eval's numbers."""
    from harness.backends.shared_context import SharedContextLM

    return _load(SharedContextLM, model, options)


def build_lm_eval(model: str, options: BackendOptions):
    """``hf-lm-eval``: lm-eval's own HF model, every choice scored with a full pass."""
    from lm_eval.models.huggingface import HFLM

    return _load(HFLM, model, options)
