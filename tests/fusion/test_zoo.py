"""The tiny-model zoo: distinct architectures and tokenizers, loadable offline, deterministic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from fusion import zoo
from fusion.errors import FusionError


def _has_data() -> bool:
    from tasks.datadir import data_dir

    try:
        return data_dir() is not None
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _has_data(), reason="no FUSEBENCH_DATA_DIR data directory")

SPECS = {spec.name: spec for spec in zoo.QUICK_SPECS}
SENTENCES = [
    "이 영화 정말 재밌어요! 배우들 연기도 최고",
    "띄어쓰기  두 번, 이모지 👍 와 漢字, 그리고\n줄바꿈",
]
CHAT = [
    {"role": "system", "content": "친절하게 답하세요."},
    {"role": "user", "content": "안녕?"},
    {"role": "assistant", "content": "네, 안녕하세요."},
    {"role": "user", "content": "오늘 날씨 어때?"},
]


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".zoo.lock"
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    paths = zoo.build_zoo(root, progress=False)
    assert paths == [root / spec.name for spec in zoo.QUICK_SPECS]
    return root


@pytest.fixture(scope="module")
def loaded(built: Path) -> dict[str, tuple[Any, Any]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return {
        name: (
            AutoTokenizer.from_pretrained(built / name),
            AutoModelForCausalLM.from_pretrained(built / name),
        )
        for name in SPECS
    }


def test_manifest_describes_every_model(built: Path) -> None:
    manifest = json.loads((built / zoo.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["zoo_version"] == zoo.ZOO_VERSION
    assert set(manifest["models"]) == set(SPECS)
    for name, entry in manifest["models"].items():
        assert entry["architecture"] == SPECS[name].architecture
        assert entry["vocab_size"] == SPECS[name].vocab_size
        assert 100_000 < entry["parameters"] < 2_000_000
        assert (built / entry["path"] / "model.safetensors").is_file()


def test_architectures_and_tokenizers_differ(loaded: dict[str, tuple[Any, Any]]) -> None:
    classes = {type(model).__name__ for _, model in loaded.values()}
    assert classes == {spec.architecture for spec in SPECS.values()}
    assert len(classes) == len(SPECS)
    assert len({len(tokenizer) for tokenizer, _ in loaded.values()}) == len(SPECS)
    for name, (tokenizer, model) in loaded.items():
        assert len(tokenizer) == model.config.vocab_size == SPECS[name].vocab_size
        assert str(model.dtype) == "torch.float32"
        assert model.config.hidden_size == 64
        tokens = tokenizer.tokenize(SENTENCES[0])
        marker = "▁" if SPECS[name].tokenizer_kind == "metaspace-bpe" else "Ġ"
        assert any(token.startswith(marker) for token in tokens), (name, tokens)
        assert tokenizer.model_max_length == 1024
        assert None not in (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token)
        assert tokenizer.pad_token_id == model.generation_config.pad_token_id is not None
        assert tokenizer.eos_token_id == model.generation_config.eos_token_id is not None


@pytest.mark.parametrize("sentence", SENTENCES)
def test_tokenizers_round_trip_korean(loaded: dict[str, tuple[Any, Any]], sentence: str) -> None:
    for name, (tokenizer, _) in loaded.items():
        ids = tokenizer(sentence)["input_ids"]
        assert (ids[0] == tokenizer.bos_token_id) == SPECS[name].add_bos, name
        assert tokenizer.decode(ids, skip_special_tokens=True) == sentence, name
        unk = tokenizer.unk_token_id
        if unk not in (tokenizer.bos_token_id, tokenizer.eos_token_id):
            assert unk not in ids, name


def test_chat_templates(loaded: dict[str, tuple[Any, Any]]) -> None:
    for name, (tokenizer, _) in loaded.items():
        text = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
        no_prompt = tokenizer.apply_chat_template(CHAT, tokenize=False)
        cue = (
            "<|im_start|>assistant\n" if SPECS[name].chat_style == "chatml" else "### Assistant:\n"
        )
        assert text.endswith(cue) and not no_prompt.endswith(cue), name
        assert all(message["content"] in text for message in CHAT), name
        ids = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True)["input_ids"]
        assert tokenizer.eos_token_id in ids, name  # the finished assistant turn ends with EOS
        assert (ids[0] == tokenizer.bos_token_id) == SPECS[name].add_bos, name
        for special in SPECS[name].extra_special_tokens:  # control tokens stay single tokens
            assert tokenizer.convert_tokens_to_ids(special) in ids, name


def test_models_generate(loaded: dict[str, tuple[Any, Any]]) -> None:
    for name, (tokenizer, model) in loaded.items():
        inputs = tokenizer.apply_chat_template(
            CHAT, add_generation_prompt=True, return_tensors="pt"
        )
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        assert output.shape[1] > inputs["input_ids"].shape[1], name


def test_rebuild_is_a_noop(built: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()}
    digests = _digests(built)
    assert zoo.cached_zoo(built) == built
    zoo.build_zoo(built, progress=False, names=["tiny-gpt2"])
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()} == before
    assert _digests(built) == digests
    assert not [p for p in built.iterdir() if p.name.endswith((".tmp", ".stale"))]


@pytest.mark.slow
def test_same_seed_same_bytes(built: Path, tmp_path: Path) -> None:
    zoo.build_zoo(tmp_path / "again", progress=False)
    assert _digests(tmp_path / "again") == _digests(built)
    other = tmp_path / "seed1" / "tiny-gpt2"
    zoo.build_zoo(tmp_path / "seed1", seed=1, names=["tiny-gpt2"], progress=False)
    tokenizer_file = built / "tiny-gpt2" / "tokenizer.json"
    assert (other / "tokenizer.json").read_bytes() == tokenizer_file.read_bytes()
    weights = (built / "tiny-gpt2" / "model.safetensors").read_bytes()
    assert (other / "model.safetensors").read_bytes() != weights


def test_unknown_name_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(FusionError, match="known: tiny-llama, tiny-gpt2"):
        zoo.build_zoo(tmp_path, names=["tiny-llama", "tiny-nope"], progress=False)
    assert not (tmp_path / "tiny-llama").exists()


def test_no_data_dir_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSEBENCH_DATA_DIR", "")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FusionError, match="FUSEBENCH_DATA_DIR") as caught:
        zoo.build_zoo(tmp_path / "zoo", names=["tiny-gpt2"], progress=False)
    assert "\n" not in str(caught.value)
    assert FusionError.exit_code == 2
    assert not (tmp_path / "zoo" / "tiny-gpt2").exists()
