"""The fused loss with ``fuse.tail: keep`` on a finished work_dir, against a dense derivation.

Reads the fused store of WORK_DIR (made with ``tail: keep``) and the target model, and for
every STRIDE-th row compares the trainer's sparse fusion term (``fused_loss``, lambda 0) with
the cross-entropy of teacher and student coarsened to k + 1 outcomes, computed over the whole
vocabulary with ``scatter_add`` (no top-k sums, no log1p). Prints the largest difference.

    PYTHONPATH=. python bench/tail_loss_check.py runs/demo zoo/target-llama
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from fusion.store import PAD_ID, TopKStore
from fusion.train.loss import IGNORE, fused_loss


def dense_coarsened(logq: torch.Tensor, ids: torch.Tensor, logp: torch.Tensor) -> float:
    """Mean over positions of -sum_c P_c log Q_c, c = each kept id and the tail."""
    total, count = 0.0, 0
    vocab = logq.shape[-1]
    for i in range(len(logq)):
        real = ids[i] >= 0
        kept = ids[i][real]
        if not len(kept):
            continue
        group = torch.full((vocab,), len(kept))
        group[kept] = torch.arange(len(kept))
        pc = torch.zeros(len(kept) + 1, dtype=torch.float64)
        pc[:-1] = logp[i][real].double().exp()
        pc[-1] = max(0.0, 1.0 - float(pc[:-1].sum()))
        qc = torch.zeros(len(kept) + 1, dtype=torch.float64).scatter_add(0, group, logq[i].exp())
        total += float(-(pc * qc.log()).sum())
        count += 1
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir")
    parser.add_argument("model")
    parser.add_argument("--stride", type=int, default=60)
    args = parser.parse_args()
    store = TopKStore(f"{args.work_dir}/fused")
    if store.manifest.settings.get("tail") != "keep":
        raise SystemExit(
            f"{args.work_dir}/fused: made with tail {store.manifest.settings.get('tail')!r}, not keep"
        )
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    worst, rows = 0.0, 0
    for row in range(0, len(store), args.stride):
        seq = store.sequence(row)
        tokens = torch.tensor(seq.token_ids, dtype=torch.long)[None]
        with torch.no_grad():
            logits = model(tokens).logits.double()
        labels = torch.full_like(tokens, IGNORE)
        labels[0, :-1] = tokens[0, 1:]
        ids = torch.tensor(seq.topk_ids.astype(np.int64))
        ids = torch.where(ids == PAD_ID, torch.tensor(-1), ids)
        logp = torch.tensor(seq.topk_logprobs.astype(np.float32))
        sparse = fused_loss(logits, labels, ids[None], logp[None], lambda_clm=0.0, tail="keep")
        dense = dense_coarsened(torch.log_softmax(logits[0, :-1], -1), ids[:-1], logp[:-1])
        worst, rows = max(worst, abs(float(sparse.fuse) - dense)), rows + 1
    print(f"{rows} of {len(store)} rows: max |sparse - dense coarsened| = {worst:.2e}")


if __name__ == "__main__":
    main()
