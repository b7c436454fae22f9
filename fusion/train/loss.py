"""The fused objective L = lambda * CLM + (1 - lambda) * L_fuse, computed sparsely.

The reference builds dense [B, T, V] targets in its collator; here the student's
log-probabilities are read only at the gold token and at the k stored ids of the fused
distribution: log q(v) = z_v - logsumexp(z), one gather of 1 + k ids per position. The
forward pass keeps no V-sized tensor beyond the logits themselves (PyTorch's
``cross_entropy`` keeps a full log-softmax; this keeps a [B, T] vector) and the backward
makes one V-sized gradient, as cross-entropy does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

IGNORE = -100  # label of positions without a gold next token (last position, padding)


class _LogProbsAt(torch.autograd.Function):
    """log softmax(z)[..., index] without a V-sized log-softmax, forward or backward.

    Hand-written because autograd's version (gather minus logsumexp) allocates three
    V-sized gradients (two gather scatters and the logsumexp's) and sums them; here the
    backward is one: d/dz sum_i g_i log q(id_i) = scatter(g) - softmax(z) * sum_i g_i,
    computed in place, as PyTorch's fused cross-entropy does for its single gold id.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        z = _wide(logits)
        lse = torch.logsumexp(z, dim=-1, keepdim=True)
        ctx.save_for_backward(logits, lse, index)
        return torch.gather(z, -1, index) - lse

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        logits, lse, index = ctx.saved_tensors
        out = _wide(logits).sub(lse).exp_()  # softmax, in one fresh V-sized buffer
        out.mul_(grad.sum(-1, keepdim=True).neg_()).scatter_add_(-1, index, grad)
        return out.to(logits.dtype), None


def _wide(logits: torch.Tensor) -> torch.Tensor:
    """16-bit logits are read in float32 (as the CLM loss does); wider ones as they are."""
    return logits.float() if logits.element_size() < 4 else logits


def log_probs_at(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Student log-probabilities at ``index`` ([..., m] ids into the last axis of logits)."""
    return _LogProbsAt.apply(logits, index)


@dataclass
class FusedLoss:
    """The combined loss and its parts (the parts detached, for logging)."""

    loss: torch.Tensor
    clm: torch.Tensor
    fuse: torch.Tensor
    positions: int


def fused_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_logprobs: torch.Tensor,
    *,
    lambda_clm: float,
    kind: Literal["ce", "kl"] = "ce",
) -> FusedLoss:
    """Combined loss over positions whose label is not IGNORE.

    logits [B, T, V]; labels [B, T] (gold next token or IGNORE); topk_ids [B, T, k] target-vocab
    ids of the fused distribution (negative = pad); topk_logprobs [B, T, k] its stored
    log-probabilities (-inf at pads). The fused distribution p is the softmax of the kept
    entries (tail mass dropped, renormalised). 'ce': -sum p log q; 'kl': sum p (log p - log q).
    Each term is a mean over the labelled positions (a position whose fused row is all pad
    counts in CLM only).
    """
    mask = labels != IGNORE
    real = topk_ids >= 0  # [B, T, k]
    # One gather for the gold token and the k fused ids: column 0 is the gold one.
    index = torch.cat([labels.clamp_min(0).unsqueeze(-1), topk_ids.clamp_min(0).long()], -1)
    logq_all = log_probs_at(logits, index)  # [B, T, 1 + k]
    gold_logq, logq = logq_all[..., 0], logq_all[..., 1:]
    count = mask.sum().clamp_min(1)
    clm = -(gold_logq * mask).sum() / count

    stored = topk_logprobs.float().masked_fill(~real, float("-inf"))
    has = real.any(-1) & mask  # positions with a fused target
    # A row with no kept entry would give softmax(all -inf) = NaN: fill it before, mask after.
    logp = torch.log_softmax(stored.masked_fill(~has.unsqueeze(-1), 0.0), dim=-1)
    p = logp.exp().masked_fill(~real, 0.0)
    per_position = -(p * logq.masked_fill(~real, 0.0)).sum(-1)
    if kind == "kl":
        per_position = per_position + (p * logp.masked_fill(~real, 0.0)).sum(-1)
    elif kind != "ce":
        raise ValueError(f"fuse loss kind {kind!r}: expected 'ce' or 'kl'")
    fuse = (per_position * has).sum() / has.sum().clamp_min(1)
    # lambda_clm = 1 (the CLM-only control): the fusion term is left out of the graph, not
    # weighted by 0 (0 * a non-finite fuse would be NaN), so loss and gradients are pure CLM's.
    loss = clm if lambda_clm == 1.0 else lambda_clm * clm + (1.0 - lambda_clm) * fuse
    return FusedLoss(loss=loss, clm=clm.detach(), fuse=fuse.detach(), positions=int(mask.sum()))


def clm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain causal-LM loss with the same label convention (the benchmark's baseline)."""
    return torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE
    )
