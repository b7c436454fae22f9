"""Model backends, registered by name and imported only when used (vLLM is a GPU extra)."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import HarnessError

BACKENDS: dict[str, str] = {
    "hf": "harness.backends.hf:build",
    "hf-lm-eval": "harness.backends.hf:build_lm_eval",
    "vllm": "harness.backends.vllm:build",
}


class BackendOptions(BaseModel):
    """What every backend understands; backend-specific extras go in ``extra``."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(8, ge=1)
    device: str | None = None
    dtype: str = "auto"
    trust_remote_code: bool = False
    revision: str | None = None
    max_length: int | None = None
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
    return getattr(importlib.import_module(module_name), func)(model, options)
