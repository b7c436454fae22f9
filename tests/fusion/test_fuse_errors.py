"""Bad input through the real CLI: one clear line and exit 2, never a traceback or a skip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from fusion.config import load_config
from fusion.extract import Rank, extract
from fusion.store import StoreManifest, StoreWriter, TopKStore
from harness.cli import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["fuse", *args, "--no-progress"])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory, fuse_config, nsmc_rows) -> Path:
    """A finished extraction to copy and damage."""
    tmp = tmp_path_factory.mktemp("bad")
    extract(load_config(fuse_config(tmp, nsmc_rows(6))), Rank(0, 1), progress=False)
    return tmp


def copy(done: Path, tmp_path: Path) -> Path:
    shutil.copytree(done, tmp_path / "run")
    return tmp_path / "run" / "fuse.yaml"


def test_empty_corpus(tmp_path: Path, fuse_config, capsys: pytest.CaptureFixture[str]) -> None:
    config = fuse_config(tmp_path, [])
    (tmp_path / "corpus.jsonl").write_text("\n\n", encoding="utf-8")
    code, err = cli(capsys, "extract", str(config))
    assert code == 2 and "the corpus has no text rows" in err and "Traceback" not in err


def test_over_long_row_is_named(
    tmp_path: Path, fuse_config, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = ["짧은 리뷰", "아주 " * 150]
    config = fuse_config(tmp_path, texts, corpus={"max_chars": 1000}, extract={"max_length": 64})
    code, err = cli(capsys, "extract", str(config))
    assert code == 2 and "corpus row 1 (corpus.jsonl:2)" in err and "max_length 64" in err


def test_bad_jsonl_line_is_named(
    tmp_path: Path, fuse_config, capsys: pytest.CaptureFixture[str]
) -> None:
    config = fuse_config(tmp_path, ["좋아요"])
    with (tmp_path / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    code, err = cli(capsys, "extract", str(config))
    assert code == 2 and "corpus.jsonl:2: not valid JSON" in err


def test_corrupted_shard(done: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = copy(done, tmp_path)
    shard = tmp_path / "run" / "work" / "stores" / "tiny-mistral" / "shard-00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    code, err = cli(capsys, "align", str(config))
    assert code == 2 and "shard-00001.safetensors: sha256 does not match" in err


def test_store_of_another_tokenizer(
    done: Path, tmp_path: Path, zoo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy(done, tmp_path)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["sources"][0]["path"] = str(zoo / "tiny-qwen2")  # same name, other model
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    code, err = cli(capsys, "align", str(config))
    assert code == 2 and "made with another tokenizer than tiny-mistral" in err
    code, err = cli(capsys, "extract", str(config))
    assert code == 2 and "tokenizer_fingerprint" in err and "use another directory" in err


def test_stores_of_different_corpora(
    done: Path, tmp_path: Path, fuse_config, nsmc_rows, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy(done, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    extract(load_config(fuse_config(other, nsmc_rows(7)[1:])), Rank(0, 1), progress=False)
    mine = tmp_path / "run" / "work" / "stores" / "tiny-mistral"
    shutil.rmtree(mine)
    shutil.copytree(other / "work" / "stores" / "tiny-mistral", mine)
    code, err = cli(capsys, "align", str(config))
    assert code == 2 and "different corpora" in err


def test_nan_rows_are_excluded_everywhere_and_reported(
    done: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy(done, tmp_path)
    path = tmp_path / "run" / "work" / "stores" / "tiny-mistral"
    store = TopKStore(path)
    rows = list(store)
    rows[2].topk_logprobs = rows[2].topk_logprobs.copy()
    rows[2].topk_logprobs[1, 0] = np.nan
    manifest = StoreManifest(
        **store.manifest.model_dump(
            exclude={"complete", "shards", "sequences", "positions", "excluded"}
        )
    )
    shutil.rmtree(path)
    writer = StoreWriter(path, manifest)
    for shard in range(manifest.num_shards):
        writer.write_shard(shard, [r for r in rows if r.row_id in writer.shard_rows(shard)])
    assert writer.finalize().excluded == {2: "NaN or +inf in top-k log-probabilities"}
    code, err = cli(capsys, "align", str(config))
    assert code == 0, err
    fused = TopKStore(tmp_path / "run" / "work" / "fused")
    assert 2 not in fused.row_ids().tolist() and len(fused) == 5
    assert "tiny-mistral store: NaN" in fused.manifest.excluded[2]
    report = json.loads((tmp_path / "run" / "work" / "align" / "report.json").read_text())
    assert "2" in report["excluded"]


def test_changed_fusion_settings_need_overwrite(
    done: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy(done, tmp_path)
    assert cli(capsys, "align", str(config))[0] == 0
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["fuse"] = {"method": "avg_ce"}
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    code, err = cli(capsys, "align", str(config))
    assert code == 2 and "--overwrite" in err
    assert cli(capsys, "align", str(config), "--overwrite")[0] == 0
    assert TopKStore(tmp_path / "run" / "work" / "fused").manifest.settings["method"] == "avg_ce"
    raw["fuse"] = {"method": "min_ce", "temperature": 0.5}
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    code, err = cli(capsys, "align", str(config))
    assert code == 2 and "fuse: temperature is only used by method avg_ce_sharp" in err
