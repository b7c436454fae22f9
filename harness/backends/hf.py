"""The ``hf`` backend: lm-eval's HuggingFace model (transformers, CPU or GPU)."""

from __future__ import annotations

from harness.backends import BackendOptions
from harness.errors import HarnessError


def build(model: str, options: BackendOptions):
    from lm_eval.models.huggingface import HFLM

    kwargs = dict(
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
    try:
        return HFLM(**kwargs)
    except (OSError, ValueError) as err:  # missing files, Hub errors, bad dtype
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HarnessError(f"{model}: could not load with transformers: {first}") from None
