"""`fusebench fuse run` end to end: two sources of other tokenizers fused into a target and
trained on two DeepSpeed processes (ZeRO-2, gloo), then rerun as a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from fusion.store import TopKStore
from fusion.train.data import Collator, FusedDataset
from fusion.train.loss import fused_loss

LAMBDA_CLM = 0.9  # the train section's default


@torch.no_grad()
def objective(model_dir: Path, store: TopKStore, max_length: int) -> tuple[float, float]:
    """(the training objective, its CLM part) of a model over every row of the fused store,
    in one batch: the loss training minimises, on the rows it trained on, deterministically."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    data = FusedDataset(store, max_length)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = Collator(tokenizer.pad_token_id or 0)([data[i] for i in range(len(data))])
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = fused_loss(
        logits, batch["labels"], batch["topk_ids"], batch["topk_logprobs"], lambda_clm=LAMBDA_CLM
    )
    return float(loss.loss), float(loss.clm)


@pytest.mark.slow
def test_fuse_run_extracts_aligns_and_trains_on_two_processes(
    tmp_path: Path, zoo: Path, fuse_config, nsmc_rows, run_fusebench
) -> None:
    config = fuse_config(
        tmp_path,
        nsmc_rows(24),
        sources=[
            {"name": "tiny-gpt2", "path": str(zoo / "tiny-gpt2")},
            {"name": "tiny-mistral", "path": str(zoo / "tiny-mistral")},
        ],
        train={
            "zero_stage": 2,
            "precision": "fp32",
            "micro_batch_size": 4,
            "max_length": 256,
            "learning_rate": 1e-3,
            "lambda_clm": LAMBDA_CLM,
            "save_every": 2,
        },
    )
    done = run_fusebench("fuse", "run", str(config), "--nproc", "2", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp_path / "work"
    final = work / "train" / "final"
    assert done.stdout.count(f"model: {final}") == 1

    # Every stage left its file: three top-k stores, the fused store, the training log.
    fused = TopKStore(work / "fused")
    assert fused.manifest.kind == "fused" and len(fused) == 24
    sources = yaml.safe_load(config.read_text())["sources"]
    assert {p.name for p in (work / "stores").iterdir()} == {"tiny-llama"} | {
        s["name"] for s in sources
    }
    log = [json.loads(line) for line in (work / "train" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == list(range(1, len(log) + 1)) and len(log) == 3
    assert all(0 < row["fuse"] < 20 and 0 < row["clm"] < 20 for row in log)

    # Training lowered the loss it minimises on the rows it saw, and the CLM part with it.
    before, clm_before = objective(zoo / "tiny-llama", fused, 256)
    after, clm_after = objective(final, fused, 256)
    assert before == pytest.approx(log[0]["loss"], rel=0.05)  # the same objective as logged
    assert after < before - 0.05, (before, after)
    assert clm_after < clm_before, (clm_before, clm_after)

    # The result is a Hugging Face model with the target's tokenizer.
    assert (
        AutoTokenizer.from_pretrained(final).get_vocab()
        == AutoTokenizer.from_pretrained(zoo / "tiny-llama").get_vocab()
    )

    # A rerun skips every finished stage and trains nothing more.
    again = run_fusebench("fuse", "run", str(config), "--nproc", "2", "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len((work / "train" / "log.jsonl").read_text().splitlines()) == len(log)
