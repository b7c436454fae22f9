"""The sparse fused loss equals the dense formula (targets scattered into the vocabulary)."""

from __future__ import annotations

import pytest
import torch

from fusion.train.loss import IGNORE, clm_loss, fused_loss

V, K = 50, 5


def _dense_reference(logits, labels, topk_ids, topk_logprobs, lambda_clm, kind):
    """The reference's way: a dense V-sized target per position, then the full formula."""
    logq = torch.log_softmax(logits.double(), -1)
    mask = labels != IGNORE
    clm = (
        -(logq.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1) * mask).sum() / mask.sum()
    )
    total, count = torch.zeros((), dtype=torch.float64), 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            real = topk_ids[b, t] >= 0
            if not mask[b, t] or not real.any():
                continue
            lp = topk_logprobs[b, t][real].double()
            p_kept = torch.exp(lp - torch.logsumexp(lp, 0))
            dense = torch.zeros(V, dtype=torch.float64)
            dense[topk_ids[b, t][real].long()] = p_kept
            term = -(dense * logq[b, t]).sum()
            if kind == "kl":
                nz = dense > 0
                term = term + (dense[nz] * dense[nz].log()).sum()
            total, count = total + term, count + 1
    fuse = total / max(count, 1)
    return lambda_clm * clm + (1 - lambda_clm) * fuse, clm, fuse


def _batch(seed: int, one_hot: bool = False):
    gen = torch.Generator().manual_seed(seed)
    B, T = 3, 7
    logits = torch.randn(B, T, V, generator=gen) * 3
    labels = torch.randint(0, V, (B, T), generator=gen)
    labels[:, -1] = IGNORE  # no gold after the last token
    labels[2, 4:] = IGNORE  # a shorter, padded sequence
    ids = torch.stack([torch.randperm(V, generator=gen)[:K] for _ in range(B * T)]).view(B, T, K)
    raw = torch.randn(B, T, K, generator=gen)
    logprobs = raw - torch.logsumexp(torch.randn(B, T, 1, generator=gen) + raw, -1, keepdim=True)
    ids = ids.to(torch.int32)
    ids[0, 1, 3:] = -1  # a fused row with fewer than k entries
    ids[1, 2, 1:] = -1  # a one-hot row
    if one_hot:
        ids[:, :, 1:] = -1
    logprobs = logprobs.half().masked_fill(ids < 0, float("-inf"))
    return logits, labels, ids, logprobs


@pytest.mark.parametrize("kind", ["ce", "kl"])
@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("lambda_clm", [0.9, 0.0, 1.0])
def test_sparse_loss_equals_dense_reference(kind: str, one_hot: bool, lambda_clm: float) -> None:
    logits, labels, ids, logprobs = _batch(seed=len(kind) + 7 * one_hot, one_hot=one_hot)
    got = fused_loss(logits, labels, ids, logprobs, lambda_clm=lambda_clm, kind=kind)
    want, clm, fuse = _dense_reference(logits, labels, ids, logprobs, lambda_clm, kind)
    assert float(got.loss) == pytest.approx(float(want), abs=1e-5, rel=1e-5)
    assert float(got.clm) == pytest.approx(float(clm), abs=1e-5, rel=1e-5)
    assert float(got.fuse) == pytest.approx(float(fuse), abs=1e-5, rel=1e-5)
    if one_hot and kind == "kl":
        # KL to a one-hot target is the CE at that id: non-negative and not trivially zero.
        assert float(got.fuse) > 0
    assert got.positions == int((labels != IGNORE).sum())


def test_gradient_matches_dense_reference() -> None:
    logits, labels, ids, logprobs = _batch(seed=3)
    a = logits.clone().double().requires_grad_()
    b = logits.clone().double().requires_grad_()
    fused_loss(a, labels, ids, logprobs, lambda_clm=0.9, kind="kl").loss.backward()
    _dense_reference(b, labels, ids, logprobs, 0.9, "kl")[0].backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5)


def test_all_pad_row_counts_only_in_clm() -> None:
    logits, labels, ids, logprobs = _batch(seed=5)
    ids[0, 0, :] = -1
    logprobs[0, 0, :] = float("-inf")
    got = fused_loss(logits, labels, ids, logprobs, lambda_clm=0.5)
    want = _dense_reference(logits, labels, ids, logprobs, 0.5, "ce")[0]
    assert torch.isfinite(got.loss)
    assert float(got.loss) == pytest.approx(float(want), abs=1e-5)


def test_lambda_one_is_plain_clm() -> None:
    logits, labels, ids, logprobs = _batch(seed=9)
    got = fused_loss(logits, labels, ids, logprobs, lambda_clm=1.0)
    assert float(got.loss) == pytest.approx(float(clm_loss(logits, labels)), abs=1e-5)


@pytest.mark.parametrize("kind", ["ce", "kl"])
def test_lambda_one_contributes_exactly_no_fusion_term(kind: str) -> None:
    """The CLM-only control (``fuse run`` with an evaluate section) trains with lambda_clm = 1:
    its loss and gradients are pure CLM's on the same batch, whatever the fused targets hold,
    bit for bit, even targets that would make the fusion term non-finite."""
    logits, labels, ids, logprobs = _batch(seed=11)
    other_ids, other_logprobs = _batch(seed=12)[2:]
    broken = logprobs.clone()
    broken[0, 0, 0] = float("nan")  # a corrupt target: 0 * NaN would poison a weighted sum

    def grad(ids_: torch.Tensor, logprobs_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = logits.clone().requires_grad_()
        loss = fused_loss(leaf, labels, ids_, logprobs_, lambda_clm=1.0, kind=kind).loss
        loss.backward()
        return loss.detach(), leaf.grad

    loss, g = grad(ids, logprobs)
    for ids_, logprobs_ in ((other_ids, other_logprobs), (ids, broken)):
        other_loss, other_g = grad(ids_, logprobs_)
        assert torch.equal(loss, other_loss) and torch.equal(g, other_g)
    assert torch.isfinite(g).all()
    plain = logits.clone().requires_grad_()
    clm = clm_loss(plain, labels)
    clm.backward()
    torch.testing.assert_close(loss, clm.detach(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(g, plain.grad, atol=1e-7, rtol=1e-5)
