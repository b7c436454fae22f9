"""Which parameters a stage trains: EEVE's groups, with the old rows of an embedding matrix
frozen inside a trainable matrix.

A partly trainable matrix (``new_input_embeddings`` or ``new_output_embeddings`` without the
matching ``all_*`` group) keeps ``requires_grad`` and gets a tensor hook that zeroes the
gradient rows of the old tokens. The hook runs before the gradient is accumulated, so
DeepSpeed's own accumulation hooks (ZeRO-1/2 bucket and partition the gradient *after*
``AccumulateGrad``) only ever see zeros there. Adam then keeps zero moments for those rows
and moves them by exactly 0; weight decay would still shrink them, so such a matrix goes in a
parameter group without weight decay (``partial`` below).

Exact under every ZeRO stage with DeepSpeed 0.19 (tests/fusion/vocab/test_vocab_train.py runs
ZeRO-0, 2 and 3 on two CPU processes): ZeRO-1/2 reduce and partition the gradient in hooks
that run after ours, and ZeRO-3 gathers the parameter for the forward pass, so autograd
hands our hook the full [rows, dim] gradient before its reduce-scatter. Under bf16 the
model is trained and saved in bf16: old rows equal the bf16 cast of the input bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fusion.errors import FusionError


class FreezeError(FusionError):
    """The trainable groups cannot be applied to this model as configured."""


def row_mask(new_ids: Sequence[int], rows: int) -> torch.Tensor:
    mask = torch.zeros(rows, dtype=torch.bool)
    mask[list(new_ids)] = True
    return mask


def _rows(weight: torch.Tensor) -> int:
    shape = getattr(weight, "ds_shape", weight.shape)  # ZeRO-3 partitions hold the full shape here
    return int(shape[0])


def _keep_new_rows(mask: torch.Tensor) -> Any:
    def hook(grad: torch.Tensor) -> torch.Tensor:
        # masked_fill, not a product: an inf or NaN gradient in an old row still becomes 0.
        keep = mask.to(grad.device).unsqueeze(-1)
        return grad.masked_fill(~keep, 0)

    return hook


def apply_trainable(
    model: Any, groups: Sequence[str] | None, new_ids: Sequence[int] | None
) -> list[torch.nn.Parameter]:
    """Set ``requires_grad`` per group and hook partly trainable matrices; returns those.

    Call before ``deepspeed.initialize``: DeepSpeed builds its optimizer groups and gradient
    partitions from the parameters that require gradients at that moment.
    """
    if groups is None or "all" in groups:
        for param in model.parameters():
            param.requires_grad_(True)
        return []
    wanted = set(groups)
    inputs = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    outputs = head.weight if head is not None else None
    if outputs is None or outputs is inputs:
        raise FreezeError(
            "the model ties its input and output embeddings (or has no output matrix); "
            "`fusebench vocab expand` unties them: train the expanded model"
        )
    if wanted & {"new_input_embeddings", "new_output_embeddings"} and not new_ids:
        raise FreezeError("new_* groups need the added rows: no vocab_expansion.json ids given")
    for param in model.parameters():
        param.requires_grad_("transformer_layers" in wanted)
    partial = []
    for weight, side in ((inputs, "input"), (outputs, "output")):
        if f"all_{side}_embeddings" in wanted:
            weight.requires_grad_(True)
        elif f"new_{side}_embeddings" in wanted:
            rows = _rows(weight)
            if max(new_ids or [0]) >= rows:
                raise FreezeError(
                    f"new row id {max(new_ids or [0])} outside the {side} "
                    f"embedding matrix ({rows} rows)"
                )
            weight.requires_grad_(True)
            weight.register_hook(_keep_new_rows(row_mask(new_ids or [], rows)))
            partial.append(weight)
        else:
            weight.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise FreezeError(f"groups {sorted(wanted)}: nothing to train in this model")
    return partial
