"""The strength check (align/strength.json) against an independent recomputation.

Per model and corpus group: -[log p(t0 | start) + sum_i log p(t_i | t_<i)] / (ln 2 * bytes),
straight from transformers. BOS models score the whole text after their BOS; models whose
tokenizer prepends nothing score the first token after the start token (BOS, else EOS) and
the rest conditioned on the text alone, as their stores do. Prints the relative difference.

Usage: python bench/strength_check.py [WORK_DIR] [ZOO_DIR]   (defaults: runs/demo zoo)
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def row_nll(model, tokenizer, text: str) -> float:
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        after_start = torch.log_softmax(
            model(torch.tensor([[start, *ids]])).logits[0, :-1].double(), -1
        )
        if tokenizer(text)["input_ids"][0] == start:  # the tokenizer prepends its BOS
            return -float(after_start[torch.arange(len(ids)), torch.tensor(ids)].sum())
        alone = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].double(), -1)
    rest = alone[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum()
    return -float(after_start[0, ids[0]]) - float(rest)


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
    zoo = Path(sys.argv[2] if len(sys.argv) > 2 else "zoo")
    check = json.loads((work / "align" / "strength.json").read_text(encoding="utf-8"))
    lines = (zoo / "corpora" / "fusion-mix.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    for name, entry in check["models"].items():
        tokenizer = AutoTokenizer.from_pretrained(zoo / name)
        model = AutoModelForCausalLM.from_pretrained(zoo / name, dtype=torch.float32).eval()
        sums: dict[str, list[float]] = {}
        for row in rows:
            acc = sums.setdefault(row["group"], [0.0, 0])
            acc[0] += row_nll(model, tokenizer, row["text"])
            acc[1] += len(row["text"].encode("utf-8"))
        for group, (nll, size) in sorted(sums.items()):
            mine = nll / (math.log(2) * size)
            theirs = entry["groups"][group]["bpb"]
            print(
                f"{name:18s} {group:10s} independent {mine:.5f} check {theirs:.5f} "
                f"relative {(theirs - mine) / mine:+.1e}"
            )


if __name__ == "__main__":
    main()
