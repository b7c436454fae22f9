"""One merge from a spec: resolve and check the inputs, merge, write the model atomically."""

from __future__ import annotations

import json
from pathlib import Path

from fusion.merge.errors import MergeError
from fusion.merge.methods import method
from fusion.merge.models import ModelFiles, check_compatible, read_model
from fusion.merge.output import MERGE_RECORD, check_not_an_input, check_output
from fusion.merge.spec import MergeSpec
from fusion.merge.tensors import copy_side_files, dtype_named
from runrecords.atomic import atomic_directory


def read_inputs(spec: MergeSpec) -> tuple[ModelFiles | None, list[ModelFiles]]:
    """The base (pivot) and the models, resolved, indexed and checked against each other."""
    if spec.base_model is None and method(spec.method).needs_base:
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


def check_target(spec: MergeSpec, output: Path, overwrite: bool = False) -> None:
    """Refuse a bad dtype or an output the merge may not write, before any input is read (or
    downloaded from the Hub), and before the CLI takes the output's lock."""
    dtype_named(spec.dtype)
    check_not_an_input(output, _local_inputs(spec))
    check_output(output, overwrite)


def merge(spec: MergeSpec, output: Path, overwrite: bool = False, progress: bool = True) -> Path:
    """Merge as ``spec`` says into ``output`` (a Hugging Face model directory)."""
    check_target(spec, output, overwrite)
    chosen = method(spec.method)
    base, models = read_inputs(spec)
    chosen.check_parameters(
        spec.parameters,
        [
            (entry.model, f"models.{index}.parameters", entry.parameters)
            for index, entry in enumerate(spec.models)
        ],
    )
    chosen.check_inputs([model.path for model in models], base.path if base else None)
    run = _BACKENDS[chosen.backend]
    with atomic_directory(output, overwrite) as scratch:
        run(spec, base, models, scratch, progress)
        _write_spec(spec, scratch)
    return output


def _local_inputs(spec: MergeSpec) -> list[tuple[str, Path]]:
    """(field, directory) of every input that is a local directory (read_model's rule)."""
    named = [(f"models.{index}.model", entry.model) for index, entry in enumerate(spec.models)]
    if spec.base_model is not None:
        named.insert(0, ("base_model", spec.base_model))
    return [
        (field, Path(reference).expanduser())
        for field, reference in named
        if Path(reference).expanduser().is_dir()
    ]


def _run_mergekit(
    spec: MergeSpec,
    base: ModelFiles | None,
    models: list[ModelFiles],
    scratch: Path,
    progress: bool,
) -> None:
    from fusion.merge.mergekit_backend import merge_with_mergekit

    merge_with_mergekit(spec, base, models, scratch, progress)


def _run_varm(
    spec: MergeSpec,
    base: ModelFiles | None,
    models: list[ModelFiles],
    scratch: Path,
    progress: bool,
) -> None:
    from fusion.merge.varm import merge_varm

    assert base is not None  # read_inputs insists (varm needs a base)
    dtype = dtype_named(spec.dtype)
    weights = merge_varm(base, models, scratch, spec.granularity, dtype, spec.shard_size, progress)
    copy_side_files(base.path, scratch)
    if dtype is not None:
        _set_config_dtype(scratch / "config.json", spec.dtype or "")
    report = {
        "granularity": spec.granularity,
        "models": [m.label for m in models],
        "weights": weights,
    }
    (scratch / "varm_weights.json").write_text(json.dumps(report, indent=1), encoding="utf-8")


# Who runs a method, by the backend its registry entry names.
_BACKENDS = {"mergekit": _run_mergekit, "varm": _run_varm}


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
    (folder / MERGE_RECORD).write_text(text, encoding="utf-8")
