"""Extraction on the tiny zoo: equal to a direct full-softmax computation, 2 ranks == 1 rank,
resume redoes only unfinished shards; and the fused store that the align stage writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion.config import load_config
from fusion.extract import Rank, extract
from fusion.framing import START_FILE, framing, read_start
from fusion.store import PAD_ID, TopKStore


def store_arrays(path: Path) -> list[tuple]:
    return [
        (
            s.row_id,
            s.token_ids.tolist(),
            s.topk_ids.tolist(),
            s.topk_logprobs.tolist(),
            s.nll.tolist(),
            s.mean_nll,
        )
        for s in TopKStore(path)
    ]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory, fuse_config, nsmc_rows) -> Path:
    tmp = tmp_path_factory.mktemp("extract")
    config = load_config(fuse_config(tmp, nsmc_rows(10)))
    extract(config, Rank(0, 1), progress=False)
    return tmp


def test_stored_topk_equals_a_direct_full_softmax(extracted: Path, zoo: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = load_config(extracted / "fuse.yaml")
    rows = [json.loads(line)["text"] for line in (config.work_dir / "corpus" / "rows.jsonl").open()]
    for name in ("tiny-llama", "tiny-mistral"):
        store = TopKStore(config.work_dir / "stores" / name)
        assert store.manifest.complete and len(store) == 10 and store.manifest.id_bytes == 2
        tokenizer = AutoTokenizer.from_pretrained(zoo / name)
        model = AutoModelForCausalLM.from_pretrained(zoo / name, dtype=torch.float32).eval()
        for seq in store:
            ids = tokenizer(rows[seq.row_id])["input_ids"]
            assert seq.token_ids.tolist() == ids
            with torch.no_grad():
                logp = model(torch.tensor([ids])).logits[0].log_softmax(-1)
            top = logp.topk(5, dim=-1)
            np.testing.assert_allclose(
                seq.topk_logprobs.astype(np.float32), top.values.numpy(), rtol=2e-3, atol=2e-3
            )
            # ids equal except where two scores tie within fp16 rounding
            same = seq.topk_ids == top.indices.numpy()
            gaps = np.abs(np.diff(top.values.numpy(), axis=-1)) < 1e-3
            assert (same | np.pad(gaps, ((0, 0), (0, 1))) | np.pad(gaps, ((0, 0), (1, 0)))).all()
            gold = -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].numpy()
            np.testing.assert_allclose(seq.nll[:-1].astype(np.float32), gold, rtol=2e-3, atol=2e-3)
            assert seq.nll[-1] == 0
            assert seq.mean_nll == pytest.approx(float(gold.mean()), rel=1e-3)


def test_resume_redoes_only_unfinished_shards(
    extracted: Path, tmp_path: Path, fuse_config, nsmc_rows
) -> None:
    config = load_config(fuse_config(tmp_path, nsmc_rows(10)))
    written: list[int] = []

    def stop_after_two(shard: int) -> None:
        written.append(shard)
        if len(written) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(config, Rank(0, 1), progress=False, after_shard=stop_after_two)
    store = config.work_dir / "stores" / "tiny-llama"
    assert sorted(p.name for p in store.glob("shard-*.safetensors")) == [
        "shard-00000.safetensors",
        "shard-00001.safetensors",
    ]
    before = {p.name: p.stat().st_mtime_ns for p in store.glob("shard-*.safetensors")}
    redone: list[int] = []
    extract(config, Rank(0, 1), progress=False, after_shard=redone.append)
    after = {p.name: p.stat().st_mtime_ns for p in store.glob("shard-*.safetensors")}
    assert {name: after[name] for name in before} == before  # finished shards untouched
    assert redone == [2, 0, 1, 2]  # tiny-llama's last shard, then all of tiny-mistral's
    for name in ("tiny-llama", "tiny-mistral"):
        ours = store_arrays(config.work_dir / "stores" / name)
        clean = store_arrays(extracted / "work" / "stores" / name)
        assert ours == clean


@pytest.mark.slow
def test_two_torchrun_processes_write_the_same_store_as_one(
    extracted: Path, tmp_path: Path, fuse_config, nsmc_rows, run_fusebench, zoo: Path
) -> None:
    from transformers import AutoTokenizer

    # tiny-gpt2 beside: its tokenizer prepends no start token, so rank 0 (only) writes the
    # store's start sidecar (fusion/framing.py), once.
    sources = [{"name": n, "path": str(zoo / n)} for n in ("tiny-mistral", "tiny-gpt2")]
    config_file = fuse_config(tmp_path, nsmc_rows(10), sources=sources)
    done = run_fusebench(
        "fuse", "extract", str(config_file), "--nproc", "2", "--no-progress", timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 1:" in done.stderr  # both ranks worked
    for name in ("tiny-llama", "tiny-mistral"):
        assert store_arrays(tmp_path / "work" / "stores" / name) == store_arrays(
            extracted / "work" / "stores" / name
        )
        assert not (tmp_path / "work" / "stores" / name / START_FILE).exists()
    assert done.stderr.count("first-token distribution") == 1
    assert "tiny-gpt2: first-token distribution after the start token" in done.stderr
    gpt2 = TopKStore(tmp_path / "work" / "stores" / "tiny-gpt2")
    start = framing(AutoTokenizer.from_pretrained(zoo / "tiny-gpt2")).start
    found, why = read_start(gpt2.path, gpt2.manifest, start)
    assert found is not None, why


def test_fused_store_is_complete_and_a_distribution_per_position(extracted: Path) -> None:
    from fusion.align.stage import run_align

    config = load_config(extracted / "fuse.yaml")
    out = run_align(config, progress=False, say=lambda _: None)
    fused, target = TopKStore(out), TopKStore(config.work_dir / "stores" / "tiny-llama")
    assert fused.manifest.kind == "fused" and fused.manifest.complete
    assert fused.manifest.tokenizer_fingerprint == target.manifest.tokenizer_fingerprint
    report = json.loads((config.work_dir / "align" / "report.json").read_text())
    assert sum(report["projection"]["tiny-mistral"].values()) == target.manifest.positions
    for f, t in zip(fused, target, strict=True):
        assert f.token_ids.tolist() == t.token_ids.tolist() and f.mean_nll == t.mean_nll
        assert (f.topk_ids[:, 0] != PAD_ID).all()  # every position holds an entry
        real = f.topk_ids != PAD_ID
        assert np.isneginf(f.topk_logprobs[~real].astype(np.float32)).all()
        mass = np.where(real, np.exp(f.topk_logprobs.astype(np.float32)), 0).sum(-1)
        assert (mass <= 1.001).all() and (mass > 0.05).all()
        assert (f.topk_ids < fused.manifest.vocab_size).all()
    # a second run finds everything done
    said: list[str] = []
    run_align(config, progress=False, say=said.append)
    assert said == [f"fused store up to date: {out}"]
