"""VaRM (FuseChat v1): merge weights from how far each target moved from the pivot.

For each group of parameters (a matrix, a layer or the whole model):
v_m = mean((theta_m - theta_pivot)^2) over the group, w_m = v_m / sum_m v_m, and each
tensor of the group becomes sum_m w_m theta_m. When no target moved (all v_m = 0) the
weights are equal. FuseChat's own ``merge.py`` returns the first model unchanged with equal
weights (an empty exclude pattern matches everything); this is the intended algorithm.

Two layer granularities, because "the mean over a layer" has two readings:

- ``layer`` pools: v_m = sum of (theta_m - theta_pivot)^2 over every element of the layer,
  divided by the layer's element count. A big matrix (the MLP) outweighs a small one (a norm)
  in proportion to its size. Tensors outside the numbered blocks are each their own group.
- ``layer_fusechat`` is what FuseChat's code computes (``layer_to_params`` in
  FuseChat/merge/VaRM/analysis.py, used by ``avg_layer`` in merge.py): v_m = sum over the
  layer's tensors of each tensor's own mean((theta_m - theta_pivot)^2), so every tensor counts
  alike whatever its size (a norm vector as much as the MLP). Tensors outside the blocks
  (embeddings, final norm, LM head) get equal weights there, i.e. a plain average; so here.
  Where every v_m of a layer is 0, FuseChat divides 0 by 0; here the weights are equal.

The ``model`` granularity needs no second variant: FuseChat's ``aveage_var_degree`` is already
the pooled mean (all squared changes over all parameters), as here.

Why not a mergekit method: mergekit's kernels see one output tensor at a time, so they can
do the matrix granularity but not per-layer or per-model weights, which need statistics over
many tensors first. One streaming merge of our own does all of them: a statistics pass over
the inputs (layer / model granularities only), then a merge pass, tensor by tensor.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from fusion.merge.models import ModelFiles
from fusion.merge.tensors import load_tensor

_LAYER = re.compile(r"^(.*?\b(?:layers|layer|h|blocks|block)\.\d+)\.")
LAYER_GRANULARITIES = ("layer", "layer_fusechat")


def varm_weights(variances: Sequence[float]) -> list[float]:
    """w_m = v_m / sum v_m; equal weights when every v_m is 0."""
    total = float(sum(variances))
    if total == 0.0:
        return [1.0 / len(variances)] * len(variances)
    return [float(v) / total for v in variances]


def group_of(name: str, granularity: str) -> str:
    """The weight group of tensor ``name``: itself, its decoder layer, or the whole model.

    With ``layer`` and ``layer_fusechat``, tensors outside the numbered blocks (embeddings,
    final norm, LM head) are each their own group.
    """
    if granularity == "model":
        return "model"
    if granularity in LAYER_GRANULARITIES:
        match = _LAYER.match(name)
        if match:
            return match.group(1)
    return name


def _outside_blocks(name: str) -> bool:
    return _LAYER.match(name) is None


def _squared_change(tensor: torch.Tensor, pivot: torch.Tensor) -> float:
    return float((tensor.double() - pivot.double()).square().sum())


def group_weights(
    pivot: ModelFiles, models: list[ModelFiles], granularity: str, progress: bool = True
) -> dict[str, list[float]]:
    """Statistics pass: the weights of every group, one tensor in memory per model at a time.

    Pooled (``layer``, ``model``): v_m = sum of squared changes / the group's numel; the numel
    is common to all m, so it cancels in w_m and only the sums are kept. ``layer_fusechat``:
    v_m = sum over the group's tensors of (squared change / the tensor's numel).
    """
    from tqdm import tqdm

    per_tensor_mean = granularity == "layer_fusechat"
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(models))
    for name in tqdm(list(pivot.tensors), desc="varm statistics", disable=not progress):
        base = load_tensor(pivot, name)
        if not base.is_floating_point():
            continue
        group = group_of(name, granularity)
        if per_tensor_mean and _outside_blocks(name):
            sums[group] = [0.0] * len(models)  # all 0: equal weights, FuseChat's average
            continue
        for index, model in enumerate(models):
            change = _squared_change(load_tensor(model, name), base)
            if per_tensor_mean and base.numel():
                change /= base.numel()
            sums[group][index] += change
    return {group: varm_weights(values) for group, values in sums.items()}


def merge_tensor(tensors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """sum_m w_m theta_m, accumulated in float32 (float64 inputs stay float64)."""
    dtype = torch.float64 if tensors[0].dtype == torch.float64 else torch.float32
    result = torch.zeros(tensors[0].shape, dtype=dtype)
    for tensor, weight in zip(tensors, weights, strict=True):
        result.add_(tensor.to(dtype), alpha=weight)
    return result


def merge_varm(
    pivot: ModelFiles,
    models: list[ModelFiles],
    out_dir: Path,
    granularity: str = "matrix",
    dtype: torch.dtype | None = None,
    shard_size: int = 2_000_000_000,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Write the VaRM merge of ``models`` against ``pivot`` into ``out_dir``; return weights.

    Matrix granularity needs no statistics pass: each tensor's weights come from the
    tensors in hand. Non-float tensors (integer buffers) are copied from the pivot.
    """
    from mergekit.io.tensor_writer import TensorWriter
    from tqdm import tqdm

    weights = {} if granularity == "matrix" else group_weights(pivot, models, granularity, progress)
    with TensorWriter(str(out_dir), max_shard_size=shard_size) as writer:
        for name in tqdm(list(pivot.tensors), desc="varm merge", disable=not progress):
            base = load_tensor(pivot, name)
            if not base.is_floating_point():
                writer.save_tensor(name, base)
                continue
            tensors = [load_tensor(model, name) for model in models]
            if granularity == "matrix":
                weights[name] = varm_weights([_squared_change(t, base) for t in tensors])
            merged = merge_tensor(tensors, weights[group_of(name, granularity)])
            writer.save_tensor(name, merged.to(dtype or base.dtype))
            del tensors, merged, base
    return weights
