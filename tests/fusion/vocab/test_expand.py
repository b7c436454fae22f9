"""Vocabulary expansion on the tiny zoo: tokens chosen, rows initialised exactly, compression up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fusion.vocab.corpus import read_corpus, tokens_per_1k_korean
from fusion.vocab.rows import new_rows
from harness.cli import main

CORPUS = "kobest_v1/hellaswag/train.tsv"
HELD_OUT = "kobest_v1/hellaswag/dev.tsv"  # same kind of text, not seen by the expansion


def _expand(zoo: Path, data_root: Path, name: str, out: Path, add: int = 200) -> dict:
    args = [
        "vocab",
        "expand",
        str(zoo / name),
        "--corpus",
        str(data_root / CORPUS),
        "--add",
        str(add),
        "--output",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    return json.loads((out / "vocab_expansion.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def llama_ko(zoo: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vocab") / "tiny-llama-ko"
    _expand(zoo, data_root, "tiny-llama", out)
    return out


def test_compression_improves_on_held_out_korean(
    zoo: Path, data_root: Path, llama_ko: Path
) -> None:
    from transformers import AutoTokenizer

    report = json.loads((llama_ko / "vocab_expansion.json").read_text(encoding="utf-8"))
    assert 0 < len(report["added"]) <= 200
    assert report["tokens_per_1k_korean_after"] < report["tokens_per_1k_korean_before"]
    held_out = read_corpus(data_root / HELD_OUT)
    before = tokens_per_1k_korean(AutoTokenizer.from_pretrained(zoo / "tiny-llama"), held_out)
    after = tokens_per_1k_korean(AutoTokenizer.from_pretrained(llama_ko), held_out)
    assert after < before, (before, after)


def test_added_tokens_are_new_single_tokens(zoo: Path, llama_ko: Path) -> None:
    from transformers import AutoTokenizer

    old = AutoTokenizer.from_pretrained(zoo / "tiny-llama")
    new = AutoTokenizer.from_pretrained(llama_ko)
    report = json.loads((llama_ko / "vocab_expansion.json").read_text(encoding="utf-8"))
    assert len(new) == len(old) + len(report["added"])
    for entry in report["added"]:
        assert len(old(entry["token"], add_special_tokens=False)["input_ids"]) > 1
        assert new(entry["token"], add_special_tokens=False)["input_ids"] == [entry["id"]]
        assert entry["uses"] >= report["min_frequency"]
    # frequent single Hangul syllables the byte-level vocabulary lacked are among them
    assert any(len(e["token"]) == 1 and "가" <= e["token"] <= "힣" for e in report["added"])


def test_embedding_rows_initialised_exactly(zoo: Path, llama_ko: Path) -> None:
    from transformers import AutoModelForCausalLM

    old = AutoModelForCausalLM.from_pretrained(zoo / "tiny-llama")
    new = AutoModelForCausalLM.from_pretrained(llama_ko)
    old_in, new_in = old.get_input_embeddings().weight, new.get_input_embeddings().weight
    old_out, new_out = old.get_output_embeddings().weight, new.get_output_embeddings().weight
    rows = new_rows(llama_ko)
    assert rows.rows == new_in.shape[0] == new_out.shape[0]
    assert torch.equal(new_in[: old_in.shape[0]], old_in)
    assert torch.equal(new_out[: old_out.shape[0]], old_out)
    report = json.loads((llama_ko / "vocab_expansion.json").read_text(encoding="utf-8"))
    assert rows.ids == [e["id"] for e in report["added"]]
    assert rows.mask().sum() == len(rows.ids) and not rows.mask()[: old_in.shape[0]].any()
    for entry in report["added"]:
        pieces = entry["pieces"]
        assert torch.equal(new_in[entry["id"]], old_in[pieces].mean(dim=0))
        assert torch.equal(new_out[entry["id"]], old_out[pieces[0]])


def test_tied_model_is_untied_and_generates(
    zoo: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = _expand(zoo, data_root, "tiny-gpt2", tmp_path / "gpt2-ko", add=50)
    assert "warning: the model ties its input and output embeddings" in capsys.readouterr().out
    assert report["untied_embeddings"] is True
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "gpt2-ko")
    assert model.config.tie_word_embeddings is False
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert embed.data_ptr() != head.data_ptr()
    multi = [e for e in report["added"] if len(e["pieces"]) > 1]
    assert any(not torch.equal(embed[e["id"]], head[e["id"]]) for e in multi)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "gpt2-ko")
    inputs = tokenizer(report["added"][0]["token"] + " 영화", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 3


def _fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_input(
    zoo: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import ByT5Tokenizer

    corpus = str(data_root / CORPUS)
    slow = tmp_path / "slow-tokenizer-model"
    shutil.copytree(zoo / "tiny-llama", slow)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (slow / name).unlink()
    ByT5Tokenizer().save_pretrained(slow)  # a pure-Python tokenizer
    base = ["vocab", "expand", "--corpus", corpus, "--output", str(tmp_path / "out")]
    err = _fails([*base, str(slow)], capsys)
    assert "ByT5Tokenizer is not a fast (tokenizers-backed) tokenizer" in err
    err = _fails([*base, "--model", str(tmp_path / "nope")], capsys)  # the former option
    assert f"model {tmp_path / 'nope'}: no such model directory" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "안녕하세요"}\n{"text": 3}\n', encoding="utf-8")
    args = [
        "vocab",
        "expand",
        str(zoo / "tiny-llama"),
        "--corpus",
        str(bad),
        "--output",
        str(tmp_path / "out"),
    ]
    err = _fails(args, capsys)
    assert f"{bad}:2: no string field 'text'" in err
    assert not (tmp_path / "out").exists()
