"""One merge from a spec: resolve and check the inputs, merge, write the model atomically."""

from __future__ import annotations

import json
from pathlib import Path

from fusion.merge.models import ModelFiles, check_compatible, read_model
from fusion.merge.spec import MERGEKIT_METHODS, MergeError, MergeSpec
from fusion.merge.tensors import copy_side_files, dtype_named
from runrecords.atomic import atomic_directory

# Methods that merge deltas against a base (the pivot); linear is the only one without.
NO_BASE_METHODS = ("linear",)


def read_inputs(spec: MergeSpec) -> tuple[ModelFiles | None, list[ModelFiles]]:
    """The base (pivot) and the models, resolved, indexed and checked against each other."""
    if spec.base_model is None and spec.method not in NO_BASE_METHODS:
        raise MergeError(f"base_model: method {spec.method} needs a base (pivot) model")
    remote = spec.trust_remote_code
    base = read_model(spec.base_model, "base_model", remote) if spec.base_model else None
    models = [
        read_model(entry.model, f"models.{index}.model", remote)
        for index, entry in enumerate(spec.models)
    ]
    reference, *others = [base, *models] if base is not None else models
    check_compatible(reference, others)
    return base, models


def merge(spec: MergeSpec, output: Path, overwrite: bool = False, progress: bool = True) -> Path:
    """Merge as ``spec`` says into ``output`` (a Hugging Face model directory)."""
    dtype = dtype_named(spec.dtype)
    base, models = read_inputs(spec)
    if spec.method in MERGEKIT_METHODS:
        from fusion.merge.mergekit_backend import check_parameters, merge_with_mergekit

        check_parameters(spec, base, models)
        with atomic_directory(output, overwrite) as scratch:
            merge_with_mergekit(spec, base, models, scratch, progress)
            _write_spec(spec, scratch)
        return output
    if spec.parameters or any(entry.parameters for entry in spec.models):
        raise MergeError("parameters: varm takes none (its weights come from the models)")
    from fusion.merge.varm import merge_varm

    assert base is not None  # read_inputs insists
    with atomic_directory(output, overwrite) as scratch:
        weights = merge_varm(
            base, models, scratch, spec.granularity, dtype, spec.shard_size, progress
        )
        copy_side_files(base.path, scratch)
        if dtype is not None:
            _set_config_dtype(scratch / "config.json", spec.dtype or "")
        report = {"granularity": spec.granularity, "models": [m.label for m in models],
                  "weights": weights}  # fmt: skip
        (scratch / "varm_weights.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        _write_spec(spec, scratch)
    return output


def _set_config_dtype(config_file: Path, dtype: str) -> None:
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text(encoding="utf-8"))
    name = str(dtype_named(dtype)).removeprefix("torch.")
    config["dtype"] = name
    if "torch_dtype" in config:
        config["torch_dtype"] = name
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _write_spec(spec: MergeSpec, folder: Path) -> None:
    """The config as run, next to the weights (what produced this model)."""
    import yaml

    text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    (folder / "fusebench_merge.yaml").write_text(text, encoding="utf-8")
