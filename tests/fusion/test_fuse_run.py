"""`fusebench fuse run` end to end: two sources of other tokenizers fused into a target and
trained on two DeepSpeed processes (ZeRO-2, gloo), then rerun as a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from fusion.store import TopKStore


def test_fuse_run_extracts_aligns_and_trains_on_two_processes(
    tmp_path: Path, zoo: Path, fuse_config, nsmc_rows, run_fusebench
) -> None:
    config = fuse_config(
        tmp_path, nsmc_rows(24),
        sources=[{"name": "tiny-gpt2", "path": str(zoo / "tiny-gpt2")},
                 {"name": "tiny-mistral", "path": str(zoo / "tiny-mistral")}],
        train={"zero_stage": 2, "precision": "fp32", "micro_batch_size": 4,
               "max_length": 256, "learning_rate": 1e-3, "save_every": 2},
    )  # fmt: skip
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

    # The result is a Hugging Face model with the target's tokenizer, changed by training.
    model = AutoModelForCausalLM.from_pretrained(final)
    start = AutoModelForCausalLM.from_pretrained(zoo / "tiny-llama")
    assert (
        AutoTokenizer.from_pretrained(final).get_vocab()
        == AutoTokenizer.from_pretrained(zoo / "tiny-llama").get_vocab()
    )
    changed = [
        name
        for name, weight in model.state_dict().items()
        if not weight.equal(start.state_dict()[name])
    ]
    assert changed

    # A rerun skips every finished stage and trains nothing more.
    again = run_fusebench("fuse", "run", str(config), "--nproc", "2", "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len((work / "train" / "log.jsonl").read_text().splitlines()) == len(log)
