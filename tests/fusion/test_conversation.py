"""Conversation corpora (FuseChat): rendering with the target's template, response spans, the
per-token mask on every zoo tokenizer, refusals with file:line, the masked store format."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from transformers import AutoTokenizer

from fusion.chat import ChatConfig
from fusion.config import CorpusSection, validate_config
from fusion.conversation import Renderer, check_messages, token_mask, token_masks
from fusion.corpus import CorpusError, prepare
from fusion.store import (
    SequenceTopK,
    StoreError,
    StoreManifest,
    StoreWriter,
    TopKStore,
    mean_gold_nll,
)
from fusion.train.clm_data import ClmDataset
from fusion.train.loss import IGNORE

ZOO = ("tiny-llama", "tiny-gpt2", "tiny-qwen2", "tiny-mistral")
# Byte-fallback (emoji on tiny-mistral), a leading space, a newline inside a response.
CHAT = [
    {"role": "system", "content": "너는 친절한 도우미다."},
    {"role": "user", "content": "비글은 넓은 공간에서 키워야 하나요?"},
    {"role": "assistant", "content": "네, 맞습니다. 😀 활동량이 많아요."},
    {"role": "user", "content": "왜요?"},
    {"role": "assistant", "content": " 활동량이\n많기 때문입니다"},
]
END_OF_TURN = {
    "tiny-llama": "</s>",
    "tiny-gpt2": "<|endoftext|>",
    "tiny-qwen2": "<|im_end|>",
    "tiny-mistral": "<|im_end|>",
}


@pytest.fixture(scope="module")
def tokenizers(zoo: Path) -> dict[str, Any]:
    return {name: AutoTokenizer.from_pretrained(zoo / name) for name in ZOO}


def entry(path: Path) -> SimpleNamespace:
    return SimpleNamespace(name=path.name, path=str(path), revision=None, trust_remote_code=False)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


# ---------------------------------------------------------------- rendering and spans


@pytest.mark.parametrize("target", ZOO)
def test_spans_are_the_responses_and_their_end_of_turn(tokenizers: dict, target: str) -> None:
    tokenizer = tokenizers[target]
    text, spans = Renderer.for_tokenizer(tokenizer, target).render(check_messages(CHAT))
    marker = END_OF_TURN[target]
    assert [text[a:b] for a, b in spans] == [
        CHAT[2]["content"] + marker,
        CHAT[4]["content"] + marker,
    ]
    # The row's tokens are the template's own tokenization: one BOS, not two.
    expected = tokenizer.apply_chat_template(CHAT)["input_ids"]
    assert tokenizer(text, add_special_tokens=True)["input_ids"] == expected


@pytest.mark.parametrize("target", ZOO)
def test_masked_in_tokens_are_exactly_the_responses_on_every_zoo_tokenizer(
    tokenizers: dict, target: str
) -> None:
    """Every model (target and sources) is masked on its own tokens of the target's text."""
    text, spans = Renderer.for_tokenizer(tokenizers[target], target).render(check_messages(CHAT))
    responses = "".join(text[a:b] for a, b in spans)
    for name, tokenizer in tokenizers.items():
        [(ids, mask)] = token_masks(tokenizer, [text], [spans], name)
        assert ids == tokenizer(text)["input_ids"] and mask.dtype == np.uint8
        assert mask[-1] == 0
        trained = [ids[t + 1] for t in np.flatnonzero(mask)]
        assert tokenizer.decode(trained) == responses, (target, name)
        # In characters: the trained tokens cover the spans and nothing else.
        offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
        covered = {c for t in np.flatnonzero(mask) for c in range(*offsets[t + 1])}
        assert covered == {c for a, b in spans for c in range(a, b)}, (target, name)


def test_token_mask_rule_by_hand() -> None:
    # tokens: BOS (zero width), "ab", 3 byte pieces of one character, "c", "de"
    offsets = [(0, 0), (0, 2), (2, 3), (2, 3), (2, 3), (3, 4), (4, 6)]
    # span [2, 4): the byte-fallback character and "c"; position t is trained iff token t+1 is in
    assert token_mask(offsets, [(2, 4)]).tolist() == [0, 1, 1, 1, 1, 0, 0]
    # a span overlapping a token partly trains the whole token; the last position never
    assert token_mask(offsets, [(5, 6)]).tolist() == [0, 0, 0, 0, 0, 1, 0]
    assert token_mask(offsets, [(0, 1)]).tolist() == [1, 0, 0, 0, 0, 0, 0]


def test_template_without_bos_keeps_the_text_and_leading_bos_is_dropped_once(
    tokenizers: dict,
) -> None:
    llama = Renderer.for_tokenizer(tokenizers["tiny-llama"], "tiny-llama")
    qwen = Renderer.for_tokenizer(tokenizers["tiny-qwen2"], "tiny-qwen2")
    assert llama.drop_bos == "<s>" and qwen.drop_bos is None
    text, _ = llama.render(check_messages(CHAT))
    assert text.startswith("### System:")
    assert qwen.render(check_messages(CHAT))[0] == tokenizers["tiny-qwen2"].apply_chat_template(
        CHAT, tokenize=False
    )


# ---------------------------------------------------------------- the corpus


def test_conversation_corpus_is_rendered_once_not_split(tmp_path: Path, zoo: Path) -> None:
    long_answer = "아주 긴 대답입니다. " * 40  # over max_chars: a conversation is never split
    rows = [
        {"messages": CHAT},
        {
            "messages": [
                {"role": "user", "content": "안녕?"},
                {"role": "assistant", "content": long_answer},
            ]
        },
    ]
    file = write_jsonl(tmp_path / "chat.jsonl", rows)
    section = CorpusSection(path=str(file), max_chars=100)
    corpus = prepare(section, tmp_path / "work", chat_model=entry(zoo / "tiny-qwen2"))
    assert corpus.conversation and len(corpus) == 2
    assert corpus.origins == ["chat.jsonl:1", "chat.jsonl:2"]
    assert corpus.rows[1][slice(*corpus.spans[1][0])] == long_answer + "<|im_end|>"
    meta = json.loads((tmp_path / "work" / "corpus" / "meta.json").read_text())
    assert meta["conversation"] and "chat_template" in meta["settings"]
    # A rerun reuses it; another target's template made other rows: refused, not mixed.
    assert (
        prepare(section, tmp_path / "work", chat_model=entry(zoo / "tiny-qwen2")).rows
        == corpus.rows
    )
    with pytest.raises(CorpusError, match="other corpus settings"):
        prepare(section, tmp_path / "work", chat_model=entry(zoo / "tiny-llama"))
    # An explicit format works on any suffix; text corpora need no template.
    (tmp_path / "chat.txt").write_text(file.read_text(encoding="utf-8"), encoding="utf-8")
    explicit = CorpusSection(path=str(tmp_path / "chat.txt"), format="messages", max_chars=100)
    again = prepare(explicit, tmp_path / "work2", chat_model=entry(zoo / "tiny-qwen2"))
    assert again.rows == corpus.rows and again.spans == corpus.spans
    text = write_jsonl(tmp_path / "text.jsonl", [{"text": "좋은 영화"}])
    assert not prepare(CorpusSection(path=str(text)), tmp_path / "work3").conversation


def test_shared_boolq_train_split_as_conversations(tmp_path: Path, zoo: Path) -> None:
    section = CorpusSection(shared="kobest_boolq_chat", max_rows=5)
    corpus = prepare(section, tmp_path / "work", chat_model=entry(zoo / "tiny-llama"))
    assert len(corpus) == 5 and corpus.origins[0] == "train.tsv:2"
    for text, spans in zip(corpus.rows, corpus.spans, strict=True):
        assert text.startswith("### System:\n") and "질문: " in text
        [(a, b)] = spans
        assert text[a:b] in ("예, 맞습니다.</s>", "아니요, 그렇지 않습니다.</s>")


def _no_template(tmp_path: Path, zoo: Path) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(zoo / "tiny-gpt2")
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path / "no-template")
    return tmp_path / "no-template"


def _trimming_template(tmp_path: Path, zoo: Path) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(zoo / "tiny-gpt2")
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] | trim + '\n' }}{% endfor %}"
    )
    tokenizer.save_pretrained(tmp_path / "trimming")
    return tmp_path / "trimming"


@pytest.mark.parametrize(
    ("rows", "model", "expected"),
    [
        (
            [{"messages": CHAT}, {"messages": CHAT[:2]}],
            "tiny-llama",
            "chat.jsonl:2: no assistant message",
        ),
        (
            [{"messages": CHAT}, {"messages": "hello"}],
            "tiny-llama",
            "chat.jsonl:2: `messages` must be a non-empty list",
        ),
        (
            [{"messages": [{"role": "bot", "content": "hi"}]}],
            "tiny-llama",
            "chat.jsonl:1: message 0: role 'bot'",
        ),
        (
            [{"messages": [{"role": "user", "content": 3}]}],
            "tiny-llama",
            "chat.jsonl:1: message 0: `content` must be a string",
        ),
        (
            [{"messages": [{"role": "user", "content": "a", "name": "x"}]}],
            "tiny-llama",
            "chat.jsonl:1: message 0: unexpected key(s) name",
        ),
        ([{"messages": CHAT}, {"text": "plain"}], "tiny-llama", "chat.jsonl:2: no `messages`"),
        ([{"messages": CHAT}], "no-template", "no-template) has no chat template"),
        (
            [
                {
                    "messages": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": " 공백 "},
                    ]
                }
            ],
            "trimming",
            "chat.jsonl:1: message 1: the chat template does not render the assistant content "
            "verbatim",
        ),
    ],
)
def test_bad_conversations_are_refused_with_file_and_line(
    tmp_path: Path, zoo: Path, rows: list, model: str, expected: str
) -> None:
    makers = {"no-template": _no_template, "trimming": _trimming_template}
    path = makers[model](tmp_path, zoo) if model in makers else zoo / model
    file = write_jsonl(tmp_path / "chat.jsonl", rows)
    with pytest.raises(CorpusError) as caught:
        prepare(CorpusSection(path=str(file)), tmp_path / "work", chat_model=entry(path))
    message = str(caught.value)
    assert expected in message and "\n" not in message, message
    assert not (tmp_path / "work" / "corpus" / "rows.jsonl").exists()


def test_mixed_and_template_less_corpora_are_refused(tmp_path: Path, zoo: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"messages": CHAT}])
    write_jsonl(folder / "b.jsonl", [{"text": "좋은 영화"}])
    with pytest.raises(CorpusError, match="b.jsonl: text rows among conversation files"):
        prepare(
            CorpusSection(path=str(folder)), tmp_path / "w1", chat_model=entry(zoo / "tiny-llama")
        )
    with pytest.raises(CorpusError, match="a.jsonl: a conversation corpus is rendered with"):
        prepare(CorpusSection(path=str(folder / "a.jsonl")), tmp_path / "w2")


# ---------------------------------------------------------------- the masked store


def _row(row_id: int, mask: list[int] | None) -> SequenceTopK:
    n = 5
    rng = np.random.default_rng(row_id)
    nll = rng.uniform(0.5, 3, n).astype(np.float16)
    nll[-1] = 0
    loss_mask = None if mask is None else np.asarray(mask, dtype=np.uint8)
    return SequenceTopK(
        row_id=row_id,
        token_ids=np.arange(n, dtype=np.int32),
        topk_ids=np.tile(np.arange(2, dtype=np.int32), (n, 1)),
        topk_logprobs=np.full((n, 2), -0.7, np.float16),
        nll=nll,
        mean_nll=mean_gold_nll(nll, loss_mask),
        loss_mask=loss_mask,
    )


def test_masked_store_round_trip_and_mixing_is_refused(tmp_path: Path) -> None:
    manifest = StoreManifest(
        model="m",
        tokenizer_fingerprint="t",
        vocab_size=8,
        k=2,
        corpus_fingerprint="c",
        num_rows=2,
        rows_per_shard=2,
        masked=True,
    )
    rows = [_row(0, [0, 1, 1, 0, 0]), _row(1, [0, 0, 0, 1, 0])]
    writer = StoreWriter(tmp_path / "s", manifest)
    with pytest.raises(StoreError, match="masks are all or none"):
        writer.write_shard(0, [rows[0], _row(1, None)])
    writer.write_shard(0, rows)
    writer.finalize()
    store = TopKStore(tmp_path / "s")
    assert store.manifest.masked
    for row, back in zip(rows, store, strict=True):
        assert back.loss_mask.dtype == np.uint8
        assert back.loss_mask.tolist() == row.loss_mask.tolist()
        assert back.mean_nll == pytest.approx(
            float(row.nll[row.loss_mask == 1].astype(np.float32).mean())
        )
    # The same store unmasked is another store: refused, not mixed into this one.
    with pytest.raises(StoreError, match="masked"):
        StoreWriter(tmp_path / "s", manifest.model_copy(update={"masked": False}))
    # Unmasked stores are as before: no loss_mask array, mean over every gold position.
    plain = manifest.model_copy(update={"masked": False})
    writer = StoreWriter(tmp_path / "p", plain)
    writer.write_shard(0, [_row(0, None), _row(1, None)])
    writer.finalize()
    seq = TopKStore(tmp_path / "p").sequence(0)
    assert seq.loss_mask is None
    assert seq.mean_nll == pytest.approx(float(seq.nll[:-1].astype(np.float32).mean()))


def test_example_config_is_a_valid_conversation_chat_config() -> None:
    path = Path(__file__).resolve().parents[2] / "configs" / "tiny-fusechat-conversations.yaml"
    config = validate_config(ChatConfig, yaml.safe_load(path.read_text(encoding="utf-8")), path)
    assert config.corpus.shared == "kobest_boolq_chat"


def test_plain_clm_data_of_a_conversation_corpus_is_masked_too(
    tmp_path: Path, zoo: Path, tokenizers: dict
) -> None:
    file = write_jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}])
    corpus = prepare(CorpusSection(path=str(file)), tmp_path, chat_model=entry(zoo / "tiny-llama"))
    tokenizer = tokenizers["tiny-llama"]
    item = ClmDataset(tmp_path, tokenizer, max_length=512)[0]
    [(ids, mask)] = token_masks(tokenizer, corpus.rows, corpus.spans, "tiny-llama")
    assert item["input_ids"].tolist() == ids
    assert item["labels"].tolist() == np.where(mask == 1, ids[1:] + [IGNORE], IGNORE).tolist()
