"""The merge configuration: one YAML file, validated by pydantic, defaults written out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from fusion.config import read_yaml_mapping, validate_config
from fusion.merge.errors import MergeError
from fusion.merge.methods import check_name

__all__ = [
    "Granularity",
    "InputModel",
    "MergeError",
    "MergeSpec",
    "Method",
    "ParameterValue",
    "describe_fields",
    "load_spec",
]

# A merge method's name, checked against the registry (fusion/merge/methods.py).
Method = Annotated[str, AfterValidator(check_name)]
# VaRM's weight groups; layer_fusechat is FuseChat's per-layer statistic (sum of per-tensor
# means), layer the pooled mean over the layer (fusion/merge/varm.py says why both exist).
Granularity = Literal["matrix", "layer", "layer_fusechat", "model"]
ParameterValue = bool | int | float | str | list[bool | int | float | str]


class InputModel(BaseModel, extra="forbid"):
    """One model to merge and its per-model method parameters (mergekit's ``parameters``)."""

    model: str = Field(description="Local model directory or Hub id.")
    parameters: dict[str, ParameterValue] = Field(
        default_factory=dict,
        description="Per-model parameters of the method, e.g. weight, density.",
    )


class MergeSpec(BaseModel, extra="forbid"):
    """What ``fusebench merge CONFIG`` reads."""

    method: Method = Field(description="Merge method (fusion/merge/methods.py).")
    models: list[InputModel] = Field(min_length=1, description="Models to merge.")
    base_model: str | None = Field(
        None,
        description="The pivot / base model (required by every method but linear); "
        "config and tokenizer are copied from it.",
    )
    parameters: dict[str, ParameterValue] = Field(
        default_factory=dict,
        description="Method parameters for all models (mergekit's global parameters).",
    )
    granularity: Granularity = Field(
        "matrix",
        description="varm only: one weight set per matrix, per layer (layer: pooled mean "
        "squared change over the layer; layer_fusechat: FuseChat's sum of per-matrix means, "
        "tensors outside the layers averaged) or per model.",
    )
    dtype: str | None = Field(
        None, description="Output dtype (float32, bfloat16, float16); default: the inputs'."
    )
    output: Path | None = Field(None, description="Output directory (or --output).")
    seed: int = Field(0, description="Seed for the random methods (dare_*).")
    shard_size: int = Field(2_000_000_000, gt=0, description="Bytes per output safetensors shard.")
    device: str = Field("cpu", description="Where the arithmetic runs (cpu, cuda, auto).")
    trust_remote_code: bool = Field(False, description="Run model code from the Hub.")


def describe_fields() -> str:
    """The config keys with their defaults, for ``--help`` (so help and YAML never drift)."""
    lines = []
    for name, field in MergeSpec.model_fields.items():
        default = "required" if field.is_required() else _default_text(field)
        lines.append(f"{name}: {field.description} (default: {default})")
    return "\n\n".join(lines)


def _default_text(field: object) -> str:
    factory = getattr(field, "default_factory", None)
    value = factory() if factory is not None else getattr(field, "default", None)
    return "none" if value is None else str(value)


def load_spec(path: Path) -> MergeSpec:
    """Read and validate CONFIG; the first problem becomes one line naming file and field."""
    return validate_config(MergeSpec, read_yaml_mapping(path), path)
