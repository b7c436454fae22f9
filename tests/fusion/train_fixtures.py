"""A small, real fused-targets store for training tests (no extraction code needed), and the
fixtures that hand it to them (a pytest plugin: ``tests/conftest.py`` registers it).

Korean NSMC reviews are tokenised with the target's tokenizer; the fused targets are the
top-k of a *teacher* that shares the target's vocabulary but not its weights (the target's
architecture, random-initialised from another seed), with rows holding 1..k entries as a
fused store may. Real distributions from a real forward pass, not constants.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fusion.store import (
    PAD_ID,
    SequenceTopK,
    StoreManifest,
    StoreWriter,
    mean_gold_nll,
    tokenizer_fingerprint,
)


def korean_rows(data_root: Path, count: int, skip: int = 0) -> list[str]:
    """The first ``count`` non-empty NSMC test reviews of at least 10 characters."""
    rows: list[str] = []
    with open(data_root / "nsmc" / "ratings_test.txt", encoding="utf-8") as handle:
        for record in csv.DictReader(handle, delimiter="\t"):
            text = (record["document"] or "").strip()
            if len(text) >= 10:
                rows.append(text)
            if len(rows) >= count + skip:
                break
    return rows[skip:]


@torch.no_grad()
def build_fused_store(
    target: Path,
    out: Path,
    texts: list[str],
    *,
    k: int = 4,
    max_tokens: int = 48,
    teacher_seed: int = 1234,
    kind: str = "fused",
    tokenizer_dir: Path | None = None,
) -> Path:
    """Write a finished store of ``kind`` for ``target`` (tokenizer from ``tokenizer_dir``)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or target)
    torch.manual_seed(teacher_seed)
    teacher = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(target)).eval()
    rows = []
    for row_id, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=True)["input_ids"][:max_tokens]
        tokens = torch.tensor([ids])
        logp = torch.log_softmax(teacher(input_ids=tokens).logits[0].float() * 4, -1)
        top = torch.topk(logp, k, dim=-1)
        topk_ids = top.indices.to(torch.int32).numpy()
        topk_lp = top.values.numpy().astype(np.float16)
        kept = 1 + np.arange(len(ids)) % k  # fused rows may hold fewer than k entries
        unused = np.arange(k)[None, :] >= kept[:, None]
        topk_ids[unused] = PAD_ID
        topk_lp[unused] = -np.inf
        nll = np.zeros(len(ids), dtype=np.float16)
        nll[:-1] = (-logp[:-1].gather(-1, tokens[0, 1:, None]).squeeze(-1)).numpy()
        rows.append(
            SequenceTopK(
                row_id=row_id,
                token_ids=np.asarray(ids, dtype=np.int32),
                topk_ids=topk_ids,
                topk_logprobs=topk_lp,
                nll=nll,
                mean_nll=mean_gold_nll(nll),
            )
        )
    manifest = StoreManifest(
        kind=kind,
        model=str(target),
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
        vocab_size=len(tokenizer),
        k=k,
        corpus_fingerprint=f"test-nsmc-{len(texts)}",
        num_rows=len(rows),
        rows_per_shard=max(1, len(rows) // 3),
    )
    writer = StoreWriter(out, manifest)
    for index in range(manifest.num_shards):
        span = writer.shard_rows(index)
        writer.write_shard(index, [r for r in rows if r.row_id in span])
    writer.finalize()
    return out


def write_config(path: Path, target: Path, work_dir: Path, **train: object) -> Path:
    """A FuseConfig YAML whose train section takes ``train`` (other stages: defaults)."""
    config = {
        "work_dir": str(work_dir),
        "target": {"name": "target", "path": str(target)},
        "sources": [{"name": "source", "path": str(target)}],
        "corpus": {"path": str(work_dir / "corpus.jsonl")},
        "train": train,
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="session", name="korean_rows")
def korean_rows_fixture(data_root: Path) -> Callable[..., list[str]]:
    """``korean_rows(count, skip=0)``: :func:`korean_rows` from the data directory."""
    return lambda count, skip=0: korean_rows(data_root, count, skip)


@pytest.fixture(scope="session", name="build_fused_store")
def build_fused_store_fixture() -> Callable[..., Path]:
    """:func:`build_fused_store` (target, out, texts, k=, kind=, tokenizer_dir=, ...)."""
    return build_fused_store


@pytest.fixture(scope="session")
def train_config(zoo: Path) -> Callable[..., Path]:
    """``train_config(path, work_dir, **train)``: :func:`write_config` for the zoo's tiny-llama."""
    return lambda path, work_dir, **train: write_config(path, zoo / "tiny-llama", work_dir, **train)


@pytest.fixture(scope="session")
def fused_store(zoo: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-llama's fused targets over 24 NSMC reviews (top-4 of a teacher in its vocabulary)."""
    out = tmp_path_factory.mktemp("fused") / "fused"
    return build_fused_store(zoo / "tiny-llama", out, korean_rows(data_root, 24))
