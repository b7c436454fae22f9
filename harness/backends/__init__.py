"""Model backends, registered by name and imported only when used (vLLM is a GPU extra)."""

from __future__ import annotations

import importlib
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fusion.model_dir import LOAD_ERRORS, cannot_load
from harness.errors import HarnessError
from runrecords.errors import UserError


class Backend(str, Enum):
    """``fusebench eval --backend``."""

    hf = "hf"
    hf_lm_eval = "hf-lm-eval"
    vllm = "vllm"


BACKENDS: dict[str, str] = {
    Backend.hf.value: "harness.backends.hf:build",
    Backend.hf_lm_eval.value: "harness.backends.hf:build_lm_eval",
    Backend.vllm.value: "harness.backends.vllm:build",
}


class BackendOptions(BaseModel):
    """What every backend understands; backend-specific extras go in ``extra``."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(
        8,
        ge=1,
        description="Sequences per forward pass (hf: contexts, whose answer choices "
        "then share one more pass).",
    )
    device: str | None = Field(
        None, description="cpu, cuda, cuda:1 ... (default: cuda when available)."
    )
    dtype: str = Field("auto", description="auto, float32, bfloat16, float16.")
    trust_remote_code: bool = Field(
        False, description="Run code shipped with the model (off unless asked)."
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    max_length: int | None = Field(None, description="Context length (default: the model's).")
    extra: dict[str, Any] = Field(default_factory=dict)

    def recorded(self) -> dict[str, Any]:
        """The arguments as written to the manifest (no secrets are ever among them)."""
        return self.model_dump(mode="json")


def build_backend(name: str, model: str, options: BackendOptions):
    """An lm-eval ``LM`` for ``model`` from the backend registered as ``name``."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise HarnessError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}") from None
    module_name, func = target.split(":")
    build = getattr(importlib.import_module(module_name), func)
    from safetensors import SafetensorError

    try:
        return build(model, options)
    except UserError:
        raise
    except (*LOAD_ERRORS, SafetensorError) as err:
        # What loaders raise for a model's files that the checks before loading let through
        # (harness/models.py), or for memory: one line naming the model and what the loader
        # said, not its traceback. Other exceptions are bugs and keep theirs.
        raise cannot_load(model, err) from None
