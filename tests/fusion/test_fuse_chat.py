"""`fusebench fuse chat`: two sources of other tokenizers fused pairwise into tiny-llama on
DeepSpeed, the targets merged with VaRM; a rerun skips everything; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer


def _config(tmp_path: Path, zoo: Path, rows: list[str], **change: object) -> Path:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in rows), encoding="utf-8"
    )
    raw = {
        "work_dir": "work",
        "pivot": {"name": "tiny-llama", "path": str(zoo / "tiny-llama")},
        "sources": [
            {"name": "tiny-gpt2", "path": str(zoo / "tiny-gpt2")},
            {"name": "tiny-mistral", "path": str(zoo / "tiny-mistral")},
        ],
        "corpus": {"path": "corpus.jsonl", "max_chars": 200},
        "extract": {
            "k": 5,
            "max_length": 256,
            "batch_size": 8,
            "rows_per_shard": 8,
            "dtype": "float32",
        },
        "train": {
            "zero_stage": 2,
            "precision": "fp32",
            "micro_batch_size": 4,
            "max_length": 256,
            "learning_rate": 1e-3,
            "save_every": 2,
        },
        "merge": {"method": "varm"},
        **change,
    }
    file = tmp_path / "chat.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


@pytest.mark.slow
def test_fuse_chat_end_to_end_and_rerun(
    tmp_path: Path, zoo: Path, nsmc_rows, run_fusebench
) -> None:
    config = _config(tmp_path, zoo, nsmc_rows(16))
    done = run_fusebench("fuse", "chat", str(config), "--nproc", "2", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp_path / "work"
    assert done.stdout.splitlines()[-1] == f"model: {work / 'merged'}"

    # The pivot and each source were extracted once, into the shared stores.
    assert {p.name for p in (work / "stores").iterdir()} == {
        "tiny-llama",
        "tiny-gpt2",
        "tiny-mistral",
    }
    assert done.stderr.count("tiny-llama rank 0:") == 1
    pivot = AutoModelForCausalLM.from_pretrained(zoo / "tiny-llama").state_dict()
    finals = {}
    for name in ("tiny-gpt2", "tiny-mistral"):
        pair = work / "pairs" / name
        assert (pair / "fused" / "manifest.json").is_file()
        assert len((pair / "train" / "log.jsonl").read_text().splitlines()) == 2
        finals[name] = AutoModelForCausalLM.from_pretrained(pair / "train" / "final").state_dict()
        assert any(not w.equal(pivot[k]) for k, w in finals[name].items())

    # VaRM: per matrix, weights v_m / sum v_m of the two fused targets' squared deltas.
    merged = AutoModelForCausalLM.from_pretrained(work / "merged")
    key = "model.layers.0.mlp.up_proj.weight"
    v = [float(((finals[n][key] - pivot[key]) ** 2).mean()) for n in ("tiny-gpt2", "tiny-mistral")]
    expected = (v[0] * finals["tiny-gpt2"][key] + v[1] * finals["tiny-mistral"][key]) / sum(v)
    torch.testing.assert_close(merged.state_dict()[key], expected)
    tokenizer = AutoTokenizer.from_pretrained(work / "merged")
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(zoo / "tiny-llama").get_vocab()
    ids = tokenizer("영화 정말", return_tensors="pt")["input_ids"]
    assert merged.generate(ids, max_new_tokens=4, do_sample=False).shape[1] == ids.shape[1] + 4

    # A rerun skips both pairs and the merge: no extraction, no training, same files.
    stamp = (work / "merged" / "model.safetensors").stat().st_mtime_ns
    again = run_fusebench("fuse", "chat", str(config), "--nproc", "2", "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("finished earlier") == 3 and "corpus:" not in again.stderr
    assert (work / "merged" / "model.safetensors").stat().st_mtime_ns == stamp

    # Another merge method on the same pairs: only stage 2 runs again.
    config = _config(
        tmp_path, zoo, nsmc_rows(16), merge={"method": "linear", "parameters": {"weight": 0.5}}
    )
    linear = run_fusebench("fuse", "chat", str(config), "--no-progress")
    assert linear.returncode == 0, linear.stderr[-3000:]
    assert linear.stderr.count("finished earlier") == 2 and "merge: linear" in linear.stderr
    out = AutoModelForCausalLM.from_pretrained(work / "merged").state_dict()[key]
    torch.testing.assert_close(out, (finals["tiny-gpt2"][key] + finals["tiny-mistral"][key]) / 2)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"pivot": None}, "field pivot:"),
        (
            {"pivot": {"name": "p", "path": "./no-such-model"}},
            "field pivot: ./no-such-model: no such model directory",
        ),
        ({"sources": []}, "field sources: List should have at least 1 item"),
        (
            {"sources": [{"name": "tiny-llama-again", "path": "PIVOT"}]},
            "source 'tiny-llama-again' is the pivot itself",
        ),
        ({"merge": {"method": "average_all"}}, "field merge.method:"),
        (
            {"merge": {"method": "ties", "parameters": {"weight": 0.5, "densty": 0.5}}},
            "merge.parameters.densty: ties has no such parameter",
        ),
        ({"train": {"output": "elsewhere"}}, "train.output is set per pair"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, zoo: Path, nsmc_rows, run_fusebench, change: dict, expected: str
) -> None:
    if change.get("sources") and change["sources"][0]["path"] == "PIVOT":
        change["sources"][0]["path"] = str(zoo / "tiny-llama")
    config = _config(tmp_path, zoo, nsmc_rows(16), **change)
    if change.get("pivot", "") is None:
        raw = yaml.safe_load(config.read_text())
        del raw["pivot"]
        config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    done = run_fusebench("fuse", "chat", str(config))
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "work").exists()
