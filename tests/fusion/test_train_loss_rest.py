"""``fuse.tail: keep`` with a confident student: the student's mass outside the teacher's
top-k (q_rest) is exact however small it is.

The loss used to take log(1 - sum q) with sum q floored at 1 - 1e-6, so below 1e-6 of student
mass on the rest the loss was capped and the rest's gradient cut to zero (issue 27, item 15:
V = 50, k = 5, teacher rest 0.3, student rest 1e-7 gave KL 3.534 for 4.225 and a rest
gradient of 0 for -0.300). Checked against plain float64 numpy over the full distributions,
written here without the loss's code: coarsen both distributions to the k listed ids plus
one rest outcome, take CE / KL, and differentiate by hand
(dL/dz_v = q_v (sum_j P_j - P_g(v) / Q_g(v)), g(v) the outcome holding v) and by finite
differences (``torch.autograd.gradcheck``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fusion.train.loss import IGNORE, fused_loss

V, K = 50, 5


def _coarse(z: np.ndarray, ids: np.ndarray, logp: np.ndarray) -> tuple[np.ndarray, ...]:
    """One position: teacher P and student Q over [listed ids..., rest], and q over V."""
    q = np.exp(z - z.max())
    q = q / q.sum()
    listed = [int(i) for i in ids if i >= 0]
    p = np.exp(logp[ids >= 0].astype(np.float64))
    rest = np.ones(V, dtype=bool)
    rest[listed] = False
    big_p = np.append(p, max(1.0 - p.sum(), 0.0) if rest.any() else 0.0)
    big_q = np.append(q[listed], q[rest].sum())
    return big_p, big_q, q, listed, rest


def reference(logits, labels, ids, logp, kind: str) -> tuple[float, np.ndarray]:
    """Mean fusion term over labelled positions with a listed id, and its gradient."""
    z = logits.detach().double().numpy()
    ids, logp, labels = ids.numpy(), logp.double().numpy(), labels.numpy()
    total, grad, count = 0.0, np.zeros_like(z), 0
    for b, t in np.ndindex(*labels.shape):
        if labels[b, t] == IGNORE or not (ids[b, t] >= 0).any():
            continue
        big_p, big_q, q, listed, rest = _coarse(z[b, t], ids[b, t], logp[b, t])
        used = big_p > 0
        term = -(big_p[used] * np.log(big_q[used])).sum()
        if kind == "kl":
            term += (big_p[used] * np.log(big_p[used])).sum()
        total += term
        ratio = np.empty(V)
        ratio[listed] = big_p[:-1] / big_q[:-1]
        ratio[rest] = big_p[-1] / big_q[-1] if rest.any() else 0.0
        grad[b, t] = q * (big_p.sum() - ratio)
        count += 1
    return total / count, grad / count


def issue_case(dtype: torch.dtype, rest: float = 1e-7):
    """The issue's position: teacher 0.14 on each of 5 ids (rest 0.3), student (1 - rest) / 5
    on each and ``rest`` spread over the other 45 ids."""
    q = np.full(V, rest / (V - K))
    q[:K] = (1.0 - rest) / K
    logits = torch.tensor(np.log(q), dtype=dtype).view(1, 1, V)
    ids = torch.arange(K, dtype=torch.int32).view(1, 1, K)
    stored = torch.full((1, 1, K), math.log(0.7 / K), dtype=torch.float32)
    return logits, torch.tensor([[0]]), ids, stored


def _run(logits, labels, ids, stored, kind="kl"):
    x = logits.clone().requires_grad_()
    got = fused_loss(x, labels, ids, stored, lambda_clm=0.0, kind=kind, tail="keep")
    got.loss.backward()
    return float(got.fuse), x.grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["kl", "ce"])
def test_issue_case_loss_and_rest_gradient_are_exact(dtype: torch.dtype, kind: str) -> None:
    logits, labels, ids, stored = issue_case(dtype)
    loss, grad = _run(logits, labels, ids, stored, kind)
    want, want_grad = reference(logits, labels, ids, stored, kind)
    if kind == "kl":  # by hand: 0.7 log(0.7 / (1 - 1e-7)) + 0.3 log(0.3 / 1e-7)
        assert want == pytest.approx(4.2245645, abs=1e-6)
        assert loss == pytest.approx(4.2245645, abs=1e-5)  # was 3.534
    assert loss == pytest.approx(want, rel=1e-6)
    # d/dc of the loss when c is added to every rest logit: 0.7 q_rest - 0.3 (1 - q_rest).
    rest_grad = float(grad[0, 0, K:].sum())
    assert rest_grad == pytest.approx(0.7e-7 - 0.3 * (1 - 1e-7), rel=1e-5)  # was 7e-8
    np.testing.assert_allclose(grad.double().numpy(), want_grad, rtol=1e-5, atol=1e-9)


def _batch(seed: int, rests: list[float], dtype: torch.dtype):
    """Positions whose student holds exactly ``rests[i]`` outside the listed ids (random
    shapes inside and outside), a teacher with random absolute top-k, some pads, a position
    with nothing listed, an unlabelled one."""
    gen = np.random.default_rng(seed)
    n = len(rests)
    logits = np.empty((1, n, V))
    ids = np.full((1, n, K), -1, dtype=np.int32)
    logp = np.full((1, n, K), -np.inf, dtype=np.float32)
    for t, rest in enumerate(rests):
        listed = gen.choice(V, size=K, replace=False)
        width = K if t % 3 else K - 2  # some positions list fewer than k ids
        listed = listed[:width]
        others = np.setdiff1d(np.arange(V), listed)
        inside = gen.dirichlet(np.ones(width)) * (1.0 - rest)
        outside = gen.dirichlet(np.ones(len(others))) * rest
        z = np.empty(V)
        z[listed], z[others] = np.log(inside), np.log(outside)
        logits[0, t] = z + gen.normal() * 5  # a shift of every logit changes nothing
        ids[0, t, :width] = listed
        teacher = gen.dirichlet(np.ones(width)) * gen.uniform(0.2, 1.0)
        logp[0, t, :width] = np.log(teacher)
    ids[0, -2] = -1  # nothing listed: counts in CLM only
    logp[0, -2] = -np.inf
    labels = torch.tensor(gen.integers(0, V, size=(1, n)))
    labels[0, -1] = IGNORE
    return torch.tensor(logits, dtype=dtype), labels, torch.tensor(ids), torch.tensor(logp)


RESTS = [0.5, 1e-3, 1e-6, 1e-7, 1e-9, 1e-15, 1e-30, 1e-40, 0.2, 0.1]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["kl", "ce"])
def test_confident_students_match_the_full_distribution_maths(
    dtype: torch.dtype, kind: str
) -> None:
    """Student rest masses from 0.5 down to 1e-40 (far below float32's 1 - 6e-8): loss and
    every logit's gradient as the float64 derivation over all V ids says."""
    logits, labels, ids, stored = _batch(3, RESTS, dtype)
    loss, grad = _run(logits, labels, ids, stored, kind)
    want, want_grad = reference(logits, labels, ids, stored, kind)
    # The loss reads the teacher's stored values in float32 (p_tail to about 6e-8).
    assert loss == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(grad.double().numpy(), want_grad, rtol=1e-6, atol=1e-7)


def test_gradient_matches_finite_differences() -> None:
    """float64, CLM and fusion together, against central differences of the loss itself."""
    logits, labels, ids, stored = _batch(5, [1e-3, 1e-9, 1e-20, 0.3, 0.05], torch.float64)

    def loss(z: torch.Tensor) -> torch.Tensor:
        return fused_loss(z, labels, ids, stored, lambda_clm=0.4, kind="kl", tail="keep").loss

    assert torch.autograd.gradcheck(loss, (logits.clone().requires_grad_(),), eps=1e-6)


def test_bf16_logits_read_in_float32() -> None:
    """16-bit logits: the loss of their float32 values, the gradient in their dtype."""
    logits, labels, ids, stored = _batch(7, RESTS, torch.float32)
    half = logits.to(torch.bfloat16)
    loss, grad = _run(half, labels, ids, stored)
    want, want_grad = reference(half, labels, ids, stored, "kl")
    assert grad.dtype == torch.bfloat16
    assert loss == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(grad.double().numpy(), want_grad, rtol=1e-2, atol=1e-4)


def test_every_id_listed_leaves_no_tail() -> None:
    """k = V (a toy vocabulary): the rest is empty, the teacher's fp16 remainder has nowhere to
    go and costs nothing; loss and gradient are finite and those of the k outcomes alone."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 2, V, generator=gen, dtype=torch.float64)
    ids = torch.stack([torch.randperm(V, generator=gen) for _ in range(2)]).view(1, 2, V)
    teacher = torch.log_softmax(torch.randn(1, 2, V, generator=gen), -1) - 1e-3  # sums < 1
    labels = torch.tensor([[1, 2]])
    loss, grad = _run(logits, labels, ids.int(), teacher, "ce")
    want, want_grad = reference(logits, labels, ids.int(), teacher, "ce")
    assert loss == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(grad.numpy(), want_grad, atol=1e-7)


def test_keeps_no_vocabulary_sized_tensor_but_the_logits() -> None:
    """Memory: what autograd keeps for the backward holds one [B, T, V] tensor, the logits
    (the rest's logsumexp runs in one buffer that is freed before the forward returns)."""
    logits, labels, ids, stored = _batch(9, RESTS, torch.float32)
    x = logits.clone().requires_grad_()
    big: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.numel() >= x.numel():
            big.append(t.data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fused_loss(x, labels, ids, stored, lambda_clm=0.5, kind="kl", tail="keep")
    assert set(big) == {x.data_ptr()}


def test_an_id_listed_twice_is_one_id_of_the_student() -> None:
    """Stores list each id once; should one repeat, the student's probabilities stay those of
    its softmax (the normaliser counts the id once) and the gradient stays the loss's."""
    logits, labels, ids, stored = _batch(11, [1e-3, 1e-8, 0.3, 0.1], torch.float64)
    ids[0, 0, 1] = ids[0, 0, 0]
    stored[0, 0, :2] = math.log(0.2)
    loss, _ = _run(logits, labels, ids, stored)
    want, _ = reference(logits, labels, ids, stored, "kl")  # per entry, as written
    assert loss == pytest.approx(want, rel=1e-6)

    def fuse(z: torch.Tensor) -> torch.Tensor:
        return fused_loss(z, labels, ids, stored, lambda_clm=0.0, kind="kl", tail="keep").loss

    x = logits.clone().requires_grad_()
    assert torch.autograd.gradcheck(fuse, (x,), eps=1e-6, fast_mode=True)
