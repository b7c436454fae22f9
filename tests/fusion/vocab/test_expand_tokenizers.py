"""Vocabulary expansion on every tokenizer family: byte-level (tiny-llama, tiny-gpt2,
tiny-qwen2), metaspace with byte fallback (tiny-mistral) and a Llama-style SentencePiece BPE
built here (transformers' LlamaTokenizer: Metaspace ``prepend_scheme: first``, no split,
byte fallback), as EEVE's base SOLAR loads.

Each expansion reads the first 600 rows of KoBEST HellaSwag's train split (``--add 200
--min-frequency 8``: enough frequent candidates for about 200 tokens on every tokenizer); the
compression and round trip are measured on its last 300 rows (held out from the expansion).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from functools import cache
from itertools import islice
from pathlib import Path

import pytest

from fusion.vocab.corpus import tokens_per_1k_korean
from harness.cli import main

TRAIN = "kobest_v1/hellaswag/train.tsv"
EXPANSION_ROWS = 600  # the first rows: the expansion corpus
HELD_OUT_ROWS = 300  # the last rows: held-out text
ZOO = ["tiny-llama", "tiny-gpt2", "tiny-qwen2", "tiny-mistral"]
ADD = 200


def _rows(data_root: Path) -> list[str]:
    with (data_root / TRAIN).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            " ".join(row[c] for c in ("context", "choice1", "choice2", "choice3", "choice4"))
            for row in reader
        ]


def _sentencepiece_llama(data_root: Path, out: Path) -> Path:
    """A Llama-2-style tokenizer (BPE with byte fallback, ``▁`` word marker) trained on 600
    UnSmile train texts, with a tiny random LlamaForCausalLM."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    path = data_root / "korean_unsmile/unsmile_train_v1.0.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        texts = [row["문장"] for row in islice(csv.DictReader(handle, delimiter="\t"), 600)]
    draft = Tokenizer(models.BPE(unk_token="<unk>"))
    draft.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    specials = ["<unk>", "<s>", "</s>"]
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=specials, show_progress=False)
    draft.train_from_iterator(texts, trainer)
    learned = json.loads(draft.to_str())["model"]
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    pieces = sorted(learned["vocab"], key=learned["vocab"].__getitem__)
    ordered = specials + byte_tokens + [p for p in pieces if p not in specials]
    vocab = {piece: index for index, piece in enumerate(ordered)}
    tokenizer = LlamaTokenizer(vocab=vocab, merges=[tuple(m) for m in learned["merges"]])
    tokenizer.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    codes, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


def _byte_level(tokenizer: object) -> bool:
    pipeline = json.loads(tokenizer.backend_tokenizer.to_str())  # type: ignore[attr-defined]
    return "ByteLevel" in json.dumps(pipeline["pre_tokenizer"])


def _spelled(tokenizer: object, ids: list[int]) -> str:
    """The text old token ids stand for, word markers included (``▁``/``Ġ`` -> a space)."""
    raw, byte_level = bytearray(), _byte_level(tokenizer)
    for token in tokenizer.convert_ids_to_tokens(ids):  # type: ignore[attr-defined]
        if byte_level:
            raw += bytes(_byte_decoder()[char] for char in token)
        elif re.fullmatch(r"<0x[0-9A-F]{2}>", token):
            raw.append(int(token[3:5], 16))
        else:
            raw += token.replace("▁", " ").encode("utf-8")
    return raw.decode("utf-8")


def _model_form(text: str, byte_level: bool) -> str:
    """``text`` as a vocabulary entry would spell it (``" 영화"`` -> ``▁영화`` / ``Ġ영화``)."""
    if byte_level:
        encoder = {byte: char for char, byte in _byte_decoder().items()}
        return "".join(encoder[byte] for byte in text.encode("utf-8"))
    return text.replace(" ", "▁")


@pytest.fixture(scope="module")
def corpora(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    rows = _rows(data_root)
    corpus = tmp_path_factory.mktemp("corpus") / "expansion.txt"
    corpus.write_text("\n".join(rows[:EXPANSION_ROWS]) + "\n", encoding="utf-8")
    return corpus, rows[-HELD_OUT_ROWS:]


@pytest.fixture(scope="module", params=[*ZOO, "sentencepiece-llama"])
def expanded(
    request: pytest.FixtureRequest,
    zoo: Path,
    data_root: Path,
    corpora: tuple[Path, list[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict]:
    """(old model, expanded model, report) for one tokenizer, ``--add 200``."""
    folder = tmp_path_factory.mktemp(request.param)
    if request.param in ZOO:
        old = zoo / request.param
    else:
        old = _sentencepiece_llama(data_root, folder / "old")
    out = folder / "expanded"
    args = [
        "vocab",
        "expand",
        "--model",
        str(old),
        "--corpus",
        str(corpora[0]),
        "--add",
        str(ADD),
        "--min-frequency",
        "8",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    return old, out, json.loads((out / "vocab_expansion.json").read_text(encoding="utf-8"))


def test_about_add_tokens_are_added_and_none_existed(expanded: tuple[Path, Path, dict]) -> None:
    from transformers import AutoTokenizer

    old_dir, new_dir, report = expanded
    old, new = AutoTokenizer.from_pretrained(old_dir), AutoTokenizer.from_pretrained(new_dir)
    added = report["added"]
    assert ADD * 0.9 <= len(added) <= ADD, len(added)
    assert len(new) == len(old) + len(added) == report["old_tokens"] + len(added)
    vocabulary, byte_level = old.get_vocab(), _byte_level(old)
    for entry in added:
        assert entry["token"] not in vocabulary, entry
        assert _model_form(entry["token"], byte_level) not in vocabulary, entry
        assert len(entry["pieces"]) > 1, entry
        assert new(entry["token"], add_special_tokens=False)["input_ids"] == [entry["id"]]
    # both forms occur: word-initial (after a space) and word-internal
    assert any(e["token"].startswith(" ") for e in added)
    assert any(not e["token"].startswith(" ") for e in added)


def test_pieces_spell_the_token_as_used_in_text(expanded: tuple[Path, Path, dict]) -> None:
    """The old pieces decode to exactly the token (``▁``/``Ġ`` only for a word-initial one),
    and the new rows are EEVE's: input = their mean, output = the first piece's."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    old_dir, new_dir, report = expanded
    old = AutoTokenizer.from_pretrained(old_dir)
    spelled = {e["token"]: _spelled(old, e["pieces"]) for e in report["added"]}
    wrong = [(token, text) for token, text in spelled.items() if text != token]
    assert not wrong, wrong[:5]
    old_lm, new_lm = (AutoModelForCausalLM.from_pretrained(d) for d in (old_dir, new_dir))
    old_in, new_in = old_lm.get_input_embeddings().weight, new_lm.get_input_embeddings().weight
    old_out, new_out = old_lm.get_output_embeddings().weight, new_lm.get_output_embeddings().weight
    for entry in report["added"]:
        assert torch.equal(new_in[entry["id"]], old_in[entry["pieces"]].mean(dim=0))
        assert torch.equal(new_out[entry["id"]], old_out[entry["pieces"][0]])


def test_held_out_korean_compresses_and_round_trips(
    expanded: tuple[Path, Path, dict], corpora: tuple[Path, list[str]]
) -> None:
    from transformers import AutoTokenizer

    old_dir, new_dir, report = expanded
    held_out = corpora[1]
    old, new = AutoTokenizer.from_pretrained(old_dir), AutoTokenizer.from_pretrained(new_dir)
    before, after = tokens_per_1k_korean(old, held_out), tokens_per_1k_korean(new, held_out)
    print(
        f"{report['model']}: +{len(report['added'])} tokens, held out {before:.1f} -> {after:.1f}"
    )
    assert after < 0.97 * before, (before, after)
    for text in held_out:
        ids = new(text, add_special_tokens=False)["input_ids"]
        assert new.decode(ids) == text


def test_legacy_metaspace_is_refused_in_one_line(
    zoo: Path, corpora: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``prepend_scheme: always`` puts a ``▁`` after every added token: refused, not saved."""
    legacy = tmp_path / "legacy-mistral"
    shutil.copytree(zoo / "tiny-mistral", legacy)
    pipeline = json.loads((legacy / "tokenizer.json").read_text(encoding="utf-8"))
    for part in (pipeline["pre_tokenizer"], pipeline["decoder"]["decoders"][1]):
        part["prepend_scheme"] = "always"
    (legacy / "tokenizer.json").write_text(json.dumps(pipeline), encoding="utf-8")
    args = [
        "vocab",
        "expand",
        "--model",
        str(legacy),
        "--corpus",
        str(corpora[0]),
        "--add",
        "20",
        "--output",
        str(tmp_path / "out"),
    ]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "round trip" in err and "prepend_scheme 'always'" in err, err
    assert not (tmp_path / "out").exists()
