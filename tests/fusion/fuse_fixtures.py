"""Fixtures for the fuse pipeline tests: NSMC or UnSmile rows and a fuse config around them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def nsmc_rows(data_root: Path) -> Callable[[int], list[str]]:
    """``nsmc_rows(n)``: the first ``n`` NSMC test reviews, as they are."""
    lines = (data_root / "nsmc" / "ratings_test.txt").read_text(encoding="utf-8").splitlines()
    return lambda n: [line.split("\t")[1] for line in lines[1 : n + 1]]


@pytest.fixture(scope="session")
def comment_rows(data_root: Path) -> Callable[[int], list[str]]:
    """``comment_rows(n)``: the first ``n`` UnSmile train comments: a fusion corpus that holds
    no scored document of the tasks the pipeline tests evaluate (NSMC's test reviews are
    nsmc's scored documents, so a run evaluating nsmc stops on them before extraction)."""
    lines = (
        (data_root / "korean_unsmile" / "unsmile_train_v1.0.tsv")
        .read_text(encoding="utf-8")
        .splitlines()
    )
    return lambda n: [line.split("\t")[0] for line in lines[1 : n + 1]]


@pytest.fixture(scope="session")
def fuse_config(zoo: Path) -> Callable[..., Path]:
    """``fuse_config(tmp, texts, **sections)``: ``tmp/fuse.yaml`` fusing tiny-mistral into
    tiny-llama over ``texts`` (written to ``tmp/corpus.jsonl``), work_dir ``tmp/work``; each
    section given is merged into the default one (or replaces a list such as ``sources``)."""

    def write(tmp: Path, texts: list[str], **sections: object) -> Path:
        corpus = tmp / "corpus.jsonl"
        corpus.write_text(
            "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts),
            encoding="utf-8",
        )
        raw: dict = {
            "work_dir": "work",
            "target": {"name": "tiny-llama", "path": str(zoo / "tiny-llama")},
            "sources": [{"name": "tiny-mistral", "path": str(zoo / "tiny-mistral")}],
            "corpus": {"path": "corpus.jsonl", "max_chars": 200},
            "extract": {
                "k": 5,
                "max_length": 256,
                "batch_size": 3,
                "rows_per_shard": 4,
                "dtype": "float32",
            },
        }
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp / "fuse.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        return path

    return write
