"""``fuse.tail: keep``: the fused loss is the exact CE / KL of teacher and student coarsened
to k + 1 outcomes (the k stored ids and the rest of the vocabulary as one tail).

Checked against an independent derivation: a full teacher distribution over V, its top-k
stored as absolute log-probabilities, and both distributions coarsened over the whole
vocabulary with ``scatter_add`` (no top-k sums, no log1p)."""

from __future__ import annotations

import pytest
import torch

from fusion.train.loss import IGNORE, fused_loss

V, K = 40, 6


def _teacher_batch(seed: int):
    gen = torch.Generator().manual_seed(seed)
    B, T = 2, 5
    logits = torch.randn(B, T, V, generator=gen, dtype=torch.float64) * 2
    labels = torch.randint(0, V, (B, T), generator=gen)
    labels[:, -1] = IGNORE
    teacher = torch.log_softmax(torch.randn(B, T, V, generator=gen, dtype=torch.float64) * 2, -1)
    top, ids = teacher.topk(K, dim=-1)
    ids = ids.to(torch.int32)
    ids[0, 1, 2:] = -1  # fewer than k entries: their mass joins the tail
    top = top.masked_fill(ids < 0, float("-inf"))
    return logits, labels, ids, top.float(), teacher


def _coarsened_reference(logits, labels, ids, teacher, kind):
    """Mean over labelled positions of CE/KL between P and Q coarsened to the kept ids + tail."""
    logq = torch.log_softmax(logits, -1)
    total, count = torch.zeros((), dtype=torch.float64), 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            if labels[b, t] == IGNORE:
                continue
            kept = ids[b, t][ids[b, t] >= 0].long()
            group = torch.full((V,), len(kept), dtype=torch.long)  # the tail's index
            group[kept] = torch.arange(len(kept))
            pc = torch.zeros(len(kept) + 1, dtype=torch.float64).scatter_add(
                0, group, teacher[b, t].exp()
            )
            qc = torch.zeros(len(kept) + 1, dtype=torch.float64).scatter_add(
                0, group, logq[b, t].exp()
            )
            term = -(pc * qc.log()).sum()
            if kind == "kl":
                term = term + (pc * pc.log()).sum()
            total, count = total + term, count + 1
    return total / count


@pytest.mark.parametrize("kind", ["ce", "kl"])
def test_tail_loss_equals_coarsened_distributions(kind: str) -> None:
    logits, labels, ids, stored, teacher = _teacher_batch(seed=11)
    got = fused_loss(logits, labels, ids, stored, lambda_clm=0.0, kind=kind, tail="keep")
    want = _coarsened_reference(logits, labels, ids, teacher, kind)
    assert float(got.fuse) == pytest.approx(float(want), rel=1e-5, abs=1e-5)
    # The same store read the reference's way (renormalised) is a different, larger-CE target.
    dropped = fused_loss(logits, labels, ids, stored, lambda_clm=0.0, kind=kind)
    assert abs(float(dropped.fuse) - float(got.fuse)) > 1e-2


def test_tail_gradient_matches_reference() -> None:
    logits, labels, ids, stored, teacher = _teacher_batch(seed=12)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    fused_loss(a, labels, ids, stored, lambda_clm=0.3, kind="ce", tail="keep").loss.backward()
    mask = labels != IGNORE
    logq = torch.log_softmax(b, -1)
    clm = -(logq.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1) * mask).sum()
    ref = 0.3 * clm / mask.sum() + 0.7 * _coarsened_reference(b, labels, ids, teacher, "ce")
    ref.backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5)


def test_all_pad_position_has_finite_loss_and_gradient() -> None:
    logits, labels, ids, stored, _ = _teacher_batch(seed=13)
    ids[1, 2, :] = -1
    stored[1, 2, :] = float("-inf")
    x = logits.clone().requires_grad_()
    got = fused_loss(x, labels, ids, stored, lambda_clm=0.5, tail="keep")
    got.loss.backward()
    assert torch.isfinite(got.loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("tail", ["drop", "keep"])
def test_minimising_recovers_the_teacher_only_with_the_tail(tail: str) -> None:
    """Why the option exists: a student trained on a top-k holding 30% of the mass ends with
    all its mass on those k ids when the tail is dropped, and with the teacher's 70% tail when
    it is kept."""
    teacher = torch.full((V,), 0.7 / (V - K), dtype=torch.float64)
    teacher[:K] = torch.linspace(0.1, 0.02, K, dtype=torch.float64)
    teacher = teacher / teacher.sum()
    ids = torch.arange(K, dtype=torch.int32).view(1, 1, K)
    stored = teacher[:K].log().float().view(1, 1, K)
    labels = torch.tensor([[0]])
    logits = torch.zeros(1, 1, V, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(600):
        opt.zero_grad()
        fused_loss(logits, labels, ids, stored, lambda_clm=0.0, tail=tail).loss.backward()
        opt.step()
    q_top = torch.softmax(logits.detach(), -1)[0, 0, :K].sum()
    if tail == "keep":
        assert float(q_top) == pytest.approx(float(teacher[:K].sum()), abs=1e-3)
    else:
        assert float(q_top) > 0.99
