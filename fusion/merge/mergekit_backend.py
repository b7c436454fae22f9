"""The mergekit methods, through mergekit's Python API (``run_merge``), not its CLI.

The spec is checked against the method's own declared schema first (fusion/merge/methods.py
reads parameter names, required parameters, base and input-count contract from mergekit),
so a config mistake is one line before mergekit starts rather than an exception from inside
its task graph.

``sce`` is mergekit's SCE, which differs from FuseChat 2.0's script: with
``select_topk`` < 1 the top-k variance mask is applied to the task vectors themselves
(FuseChat's script only uses it to compute the weights and merges unmasked deltas), the
sign election and weights are computed on the masked deltas, and
theta = theta_0 + sum_m w_m keep_m d_m / sum_m w_m keep_m with w_m = mean(d_m^2) normalised.
mergekit's default ``select_topk`` is 1.0 (no selection); FuseChat's tau is 0.1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fusion.merge.errors import MergeError
from fusion.merge.models import ModelFiles
from fusion.merge.spec import MergeSpec


@contextlib.contextmanager
def _files_closed_after_each_read() -> Iterator[None]:
    """Make mergekit's lazy loader drop its open shard after every tensor it reads.

    ``LazyTensorLoader`` keeps the current shard open (memory-mapped), and every page read
    from it stays in the process's resident set: with one-shard inputs a merge ends up
    holding every input (bench/merge_memory.py measured ~6x one model for ties). Closing the
    file after each read keeps only the tensors in hand; the header is re-read per tensor.
    """
    from mergekit.io.lazy_tensor_loader import LazyTensorLoader

    original = LazyTensorLoader.get_tensor

    def get_tensor(self: LazyTensorLoader, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            self.flush()

    LazyTensorLoader.get_tensor = get_tensor  # type: ignore[method-assign]
    try:
        yield
    finally:
        LazyTensorLoader.get_tensor = original  # type: ignore[method-assign]


def merge_with_mergekit(
    spec: MergeSpec,
    base: ModelFiles | None,
    models: list[ModelFiles],
    out_dir: Path,
    progress: bool = True,
) -> None:
    """Run one mergekit method into ``out_dir`` (which already exists and is empty)."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    config: dict[str, Any] = {
        "merge_method": spec.method,
        # resolved local paths: mergekit would ask the Hub about a relative path
        "models": [
            {"model": str(model.path), "parameters": entry.parameters or None}
            for model, entry in zip(models, spec.models, strict=True)
        ],
        "parameters": spec.parameters or None,
    }
    if base is not None:
        config["base_model"] = str(base.path)
    if spec.dtype is not None:
        config["dtype"] = spec.dtype
    options = MergeOptions(
        device=spec.device,
        out_shard_size=spec.shard_size,
        random_seed=spec.seed,
        trust_remote_code=spec.trust_remote_code,
        copy_tokenizer=True,
        write_model_card=True,
        quiet=not progress,
    )
    try:
        with _files_closed_after_each_read():
            run_merge(MergeConfiguration.model_validate(config), str(out_dir), options)
    except (ValueError, RuntimeError) as exc:
        raise MergeError(f"mergekit {spec.method}: {exc}") from None
