"""Training step time: the fused objective (CLM + sparse top-k fuse term) against CLM only.

Same model, same batch, same optimizer, measured side by side in one process: each repeat
times one CLM-only step and one fused step (interleaved, so drift hits both), after warm-up;
medians are compared. A step is forward, loss, backward and an AdamW update. The fused step
reads the student's log-probabilities at the k stored ids (fusion/train/loss.py); the
``dense`` column, for scale, builds the reference code's dense V-sized target per position
(vectorised, not its Python loop) and applies the full formula.

    PYTHONPATH=. python bench/train_step.py --seq 128 --threads 1   # vocab 32000, 4 layers
    PYTHONPATH=. python bench/train_step.py --vocab 32000 --hidden 512 --layers 4 --seq 512

Goal (issue 5): fused / CLM-only <= 1.3x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout, not whichever fusebench is installed

from fusion.train.loss import IGNORE, clm_loss, fused_loss  # noqa: E402


def dense_loss(logits, labels, topk_ids, topk_logprobs, lambda_clm):
    """The reference's layout: p scattered into a [B, T, V] tensor, then -sum p log q."""
    logq = torch.log_softmax(logits.float(), -1)
    real = topk_ids >= 0
    p = torch.softmax(topk_logprobs.float().masked_fill(~real, float("-inf")), -1)
    dense = torch.zeros_like(logq).scatter_(-1, topk_ids.clamp_min(0), p.masked_fill(~real, 0))
    mask = labels != IGNORE
    fuse = (-(dense * logq).sum(-1) * mask).sum() / mask.sum()
    clm = (-logq.gather(-1, labels.clamp_min(0)[..., None]).squeeze(-1) * mask).sum() / mask.sum()
    return lambda_clm * clm + (1 - lambda_clm) * fuse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--dense", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    from transformers import LlamaConfig, LlamaForCausalLM

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 8 // 3,
        num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.hidden // 64),
        num_key_value_heads=max(1, args.hidden // 128),
        max_position_embeddings=args.seq,
    )
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.1)
    input_ids = torch.randint(0, args.vocab, (args.batch, args.seq))
    labels = torch.cat([input_ids[:, 1:], torch.full((args.batch, 1), IGNORE)], 1)
    # Fused targets: k distinct ids per position with renormalised log-probabilities,
    # some rows holding fewer entries (pads), as a fused store has them.
    scores = torch.randn(args.batch, args.seq, args.vocab // 64)
    top = torch.topk(scores, args.k, -1)
    topk_ids = top.indices * 64 + torch.randint(0, 64, top.indices.shape)
    topk_logprobs = torch.log_softmax(top.values * 3, -1)
    cut = torch.arange(args.k) >= torch.randint(1, args.k + 1, (args.batch, args.seq, 1))
    topk_ids = topk_ids.masked_fill(cut, -1)
    topk_logprobs = topk_logprobs.masked_fill(cut, float("-inf")).half()

    def step(kind: str) -> tuple[float, float]:
        began, cpu = time.perf_counter(), time.process_time()
        logits = model(input_ids=input_ids).logits
        if kind == "clm":
            loss = clm_loss(logits, labels)
        elif kind == "fused":
            loss = fused_loss(logits, labels, topk_ids, topk_logprobs, lambda_clm=0.9).loss
        else:
            loss = dense_loss(logits, labels, topk_ids.long(), topk_logprobs, 0.9)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - began, time.process_time() - cpu

    kinds = ["clm", "fused"] + (["dense"] if args.dense else [])
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    for repeat in range(args.warmup + args.repeats):
        for kind in kinds:
            elapsed, used = step(kind)
            if repeat >= args.warmup:
                times[kind].append(elapsed)
                cpu[kind].append(used)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"model: llama, vocab {args.vocab}, hidden {args.hidden}, {args.layers} layers "
        f"({params:.1f}M params); batch {args.batch} x {args.seq} tokens, k={args.k}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{args.repeats} repeats after {args.warmup} warm-up"
    )
    base, base_cpu = statistics.median(times["clm"]), statistics.median(cpu["clm"])
    print("| step | median wall s | min wall s | wall ratio | median CPU s | CPU ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        med, med_cpu = statistics.median(times[kind]), statistics.median(cpu[kind])
        print(
            f"| {kind} | {med:.4f} | {min(times[kind]):.4f} | {med / base:.3f}x "
            f"| {med_cpu:.4f} | {med_cpu / base_cpu:.3f}x |"
        )
    ratio = statistics.median(times["fused"]) / base
    ratio_cpu = statistics.median(cpu["fused"]) / base_cpu
    verdict = "met" if max(ratio, ratio_cpu) <= 1.3 else "NOT met"
    # CPU time (process_time, all threads) is the steadier figure on a shared machine.
    print(
        f"fused / CLM-only step time: {ratio:.3f}x wall, {ratio_cpu:.3f}x CPU "
        f"(goal <= 1.3x: {verdict})"
    )


if __name__ == "__main__":
    main()
