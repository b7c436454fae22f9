"""The fused objective L = lambda * CLM + (1 - lambda) * L_fuse, computed sparsely.

The reference builds dense [B, T, V] targets in its collator; here the student's
log-probabilities are read only at the gold token and at the k stored ids of the fused
distribution: log q(v) = z_v - logsumexp(z), one gather of 1 + k ids per position. The
forward pass keeps no V-sized tensor beyond the logits themselves (PyTorch's
``cross_entropy`` keeps a full log-softmax; this keeps a [B, T] vector) and the backward
makes one V-sized gradient, as cross-entropy does. With ``tail: keep`` the student's mass
outside the k ids is a logsumexp over the other ids: the forward needs one V-sized buffer
for it while it runs (the float32 copy of 16-bit logits is reused for it), and keeps none.
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


class _LogProbsAndRest(torch.autograd.Function):
    """``_LogProbsAt`` plus log q_rest, the student's log-mass outside the listed ids.

    log q_rest = logsumexp of the logits with the listed ids masked to -inf, minus
    logsumexp(z): exact however little mass the rest holds (1 - sum q over the listed ids
    cancels to 0 in float32 below about 6e-8, and was floored at 1e-6, which cut the
    gradient). The forward works in one V-sized buffer, freed before it returns:
    logsumexp(z) is the rest's combined with the listed ids' (each id once), so V is read
    no more often than for the rest alone. The backward writes one V-sized buffer: for a
    rest id v, d/dz_v = g_rest exp(z_v - lse_rest) - G q_v
    = exp(z_v - lse_rest) (g_rest - G q_rest), G the sum of all incoming gradients; listed
    ids get -G q_v (set, so repeated ids agree), then the gathered ids' own gradients are
    added.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        logits: torch.Tensor,
        index: torch.Tensor,
        listed: torch.Tensor,
        real: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z = _wide(logits)
        at = torch.gather(z, -1, index)
        top = _pads_to_listed(listed, real)
        listed_any = real.any(-1, keepdim=True)
        z_top = torch.gather(z, -1, top)
        # Listed ids -> -inf. A row listing nothing (all pad, its pads at id 0) gets id 0's
        # own logit written back: its rest is the whole vocabulary.
        fill = torch.where(listed_any, float("-inf"), z_top)
        rest = z.clone() if z is logits else z  # a 16-bit input's float copy is reused
        rest.scatter_(-1, top, fill)
        peak = rest.amax(-1, keepdim=True)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        lse_rest = rest.sub_(peak).exp_().sum(-1, keepdim=True).log_().add_(peak)
        del rest
        # logsumexp(z) = logaddexp(rest, listed ids each once): no second pass over V.
        k = top.shape[-1]
        earlier = torch.ones(k, k, dtype=torch.bool, device=top.device).tril_(-1)
        repeat = ((top.unsqueeze(-1) == top.unsqueeze(-2)) & earlier).any(-1)
        once = torch.where(real & ~repeat, z_top, float("-inf"))
        lse = torch.logaddexp(lse_rest, torch.logsumexp(once, -1, keepdim=True))
        ctx.save_for_backward(logits, lse, lse_rest, index, top, listed_any)
        return at - lse, (lse_rest - lse).squeeze(-1)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx, grad_at: torch.Tensor, grad_rest: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        logits, lse, lse_rest, index, top, listed_any = ctx.saved_tensors
        z = _wide(logits)
        g_rest = grad_rest.unsqueeze(-1)
        total = grad_at.sum(-1, keepdim=True) + g_rest
        # A rest of no mass at all (every id listed, or -inf logits): no gradient through it.
        finite = torch.isfinite(lse_rest)
        shift = torch.where(finite, lse_rest, lse)
        q_rest = (lse_rest - lse).exp()
        scale = torch.where(finite, g_rest - total * q_rest, -total)
        q_top = (torch.gather(z, -1, top) - lse).exp()
        out = z.clone() if z is logits else z  # a 16-bit input's float copy is reused
        out.sub_(shift).exp_().mul_(scale)  # right at rest ids; listed ones are set next
        # A row listing nothing: its pad "id 0" belongs to the rest (lse_rest = lse there).
        out.scatter_(-1, top, q_top * torch.where(listed_any, -total, g_rest - total))
        out.scatter_add_(-1, index, grad_at)
        return out.to(logits.dtype), None, None, None


def _pads_to_listed(listed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Pad entries point at the row's first real id (so masking them masks nothing more);
    in a row with no real entry they stay as they are (id 0 after the caller's clamp)."""
    first = torch.gather(listed, -1, real.long().argmax(-1, keepdim=True))
    return torch.where(real, listed, first)


def log_probs_and_rest(
    logits: torch.Tensor, index: torch.Tensor, listed: torch.Tensor, real: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Student log-probabilities at ``index`` [..., m] and log q_rest [...], the log of the
    mass on every id not among ``listed`` [..., k] where ``real`` (non-negative ids)."""
    return _LogProbsAndRest.apply(logits, index, listed, real)


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
    tail: Literal["drop", "keep"] = "drop",
) -> FusedLoss:
    """Combined loss over positions whose label is not IGNORE.

    logits [B, T, V]; labels [B, T] (gold next token or IGNORE); topk_ids [B, T, k] target-vocab
    ids of the fused distribution (negative = pad); topk_logprobs [B, T, k] its stored
    log-probabilities (-inf at pads). 'ce': -sum p log q; 'kl': sum p (log p - log q).

    tail 'drop' (the reference's): p is the softmax of the kept entries, the tail mass is
    dropped and the k entries renormalised. tail 'keep': the stored values are absolute
    log-probabilities (a store fused with ``fuse.tail: keep``), and the rest of the
    vocabulary is one more outcome, the tail, with p_tail = 1 - sum p over the k ids and
    q_tail the student's mass on every other id (a logsumexp over them, not 1 - sum q, which
    float32 cannot tell from 0 below about 1e-7): the exact CE / KL of the two distributions
    coarsened to k + 1 outcomes. Why: when the top-k holds little mass (a small model's
    top-10 holds about 25% on Korean text), renormalising trains the student to put all its
    mass on k tokens, which costs held-out likelihood; the bucket keeps the teacher's
    uncertainty.
    Each term is a mean over the labelled positions (a position whose fused row is all pad
    counts in CLM only).
    """
    mask = labels != IGNORE
    real = topk_ids >= 0  # [B, T, k]
    # One gather for the gold token and the k fused ids: column 0 is the gold one.
    index = torch.cat([labels.clamp_min(0).unsqueeze(-1), topk_ids.clamp_min(0).long()], -1)
    if tail == "keep":
        logq_all, log_q_rest = log_probs_and_rest(logits, index, index[..., 1:], real)
    else:
        logq_all = log_probs_at(logits, index)  # [B, T, 1 + k]
    gold_logq, logq = logq_all[..., 0], logq_all[..., 1:]
    count = mask.sum().clamp_min(1)
    clm = -(gold_logq * mask).sum() / count

    stored = topk_logprobs.float().masked_fill(~real, float("-inf"))
    has = real.any(-1) & mask  # positions with a fused target
    if kind not in ("ce", "kl"):
        raise ValueError(f"fuse loss kind {kind!r}: expected 'ce' or 'kl'")
    if tail == "drop":
        # A row with no kept entry would give softmax(all -inf) = NaN: fill before, mask after.
        logp = torch.log_softmax(stored.masked_fill(~has.unsqueeze(-1), 0.0), dim=-1)
    elif tail == "keep":
        logp = stored
    else:
        raise ValueError(f"fuse tail {tail!r}: expected 'drop' or 'keep'")
    p = logp.exp().masked_fill(~real, 0.0)
    per_position = -(p * logq.masked_fill(~real, 0.0)).sum(-1)
    if kind == "kl":
        per_position = per_position + (p * logp.masked_fill(~real, 0.0)).sum(-1)
    if tail == "keep":
        per_position = per_position + _tail_term(p, log_q_rest, real, logits.shape[-1], kind)
    fuse = (per_position * has).sum() / has.sum().clamp_min(1)
    # lambda_clm = 1 (the CLM-only control): the fusion term is left out of the graph, not
    # weighted by 0 (0 * a non-finite fuse would be NaN), so loss and gradients are pure CLM's.
    loss = clm if lambda_clm == 1.0 else lambda_clm * clm + (1.0 - lambda_clm) * fuse
    return FusedLoss(loss=loss, clm=clm.detach(), fuse=fuse.detach(), positions=int(mask.sum()))


def _tail_term(
    p: torch.Tensor, log_q_rest: torch.Tensor, real: torch.Tensor, vocab: int, kind: str
) -> torch.Tensor:
    """-p_tail log q_rest (+ p_tail log p_tail for KL) per position; p [.., k] with zeros at
    pads, log_q_rest [..] exact (``log_probs_and_rest``), real [.., k] the non-pad entries.
    Stored fp16 masses can sum a hair above (or below) 1: the teacher's tail is clamped at 0,
    and is 0 where the k ids are the whole vocabulary (no rest to hold it)."""
    p_tail = (1.0 - p.sum(-1)).clamp_min(0.0).masked_fill(real.sum(-1) >= vocab, 0.0)
    # 0 * log 0 is 0 here, not NaN: a tail the teacher does not have costs nothing.
    term = -p_tail * torch.where(p_tail > 0, log_q_rest, torch.zeros_like(log_q_rest))
    if kind == "kl":
        term = term + torch.xlogy(p_tail, p_tail)
    return term


def clm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain causal-LM loss with the same label convention (the benchmark's baseline)."""
    return torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE
    )
