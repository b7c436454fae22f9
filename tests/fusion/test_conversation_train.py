"""Training on a conversation corpus: masked positions give exactly zero gradient, and
`fusebench fuse chat` on a `messages` corpus masks every store and trains on responses only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from fusion.conversation import Renderer, check_messages, token_masks
from fusion.corpus import load as load_corpus
from fusion.store import (
    PAD_ID,
    SequenceTopK,
    StoreManifest,
    StoreWriter,
    TopKStore,
    mean_gold_nll,
    tokenizer_fingerprint,
)
from fusion.train.data import Collator, FusedDataset
from fusion.train.loss import IGNORE, fused_loss


def boolq_conversations(data_root: Path, count: int) -> list[list[dict[str, str]]]:
    """Conversations from the KoBEST BoolQ *train* split (never evaluation data); every
    other one gets a second user turn and answer."""
    out = []
    with open(data_root / "kobest_v1" / "boolq" / "train.tsv", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle, delimiter="\t")):
            if number == count:
                break
            answer = "예, 맞습니다." if row["Answer"] == "TRUE" else "아니요, 그렇지 않습니다."
            chat = [
                {"role": "system", "content": "글을 읽고 질문에 답하세요."},
                {"role": "user", "content": f"{row['Text']}\n질문: {row['Question']}"},
                {"role": "assistant", "content": answer},
            ]
            if number % 2:
                chat += [
                    {"role": "user", "content": "이유를 한 문장으로 말해 주세요."},
                    {"role": "assistant", "content": row["Question"]},
                ]
            out.append(chat)
    return out


@torch.no_grad()
def masked_fused_store(target: Path, out: Path, chats: list, k: int = 4) -> Path:
    """A masked fused store of ``target`` over ``chats``: targets are a random teacher's top-k."""
    tokenizer = AutoTokenizer.from_pretrained(target)
    renderer = Renderer.for_tokenizer(tokenizer, "target")
    rendered = [renderer.render(check_messages(chat)) for chat in chats]
    pairs = token_masks(tokenizer, [t for t, _ in rendered], [s for _, s in rendered], "target")
    torch.manual_seed(7)
    teacher = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(target)).eval()
    rows = []
    for row_id, (ids, mask) in enumerate(pairs):
        logp = torch.log_softmax(teacher(input_ids=torch.tensor([ids])).logits[0] * 4, -1)
        top = torch.topk(logp, k, dim=-1)
        nll = np.zeros(len(ids), dtype=np.float16)
        nll[:-1] = (-logp[:-1].gather(-1, torch.tensor(ids[1:])[:, None]))[:, 0].numpy()
        rows.append(
            SequenceTopK(
                row_id=row_id,
                token_ids=np.asarray(ids, dtype=np.int32),
                topk_ids=top.indices.to(torch.int32).numpy(),
                topk_logprobs=top.values.numpy().astype(np.float16),
                nll=nll,
                mean_nll=mean_gold_nll(nll, mask),
                loss_mask=mask,
            )
        )
    manifest = StoreManifest(
        kind="fused",
        model="target",
        vocab_size=len(tokenizer),
        k=k,
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
        corpus_fingerprint="chats",
        num_rows=len(rows),
        rows_per_shard=len(rows),
        masked=True,
    )
    writer = StoreWriter(out, manifest)
    writer.write_shard(0, rows)
    writer.finalize()
    return out


def _loss_and_grads(model, batch) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits.retain_grad()
    parts = fused_loss(
        logits, batch["labels"], batch["topk_ids"], batch["topk_logprobs"], lambda_clm=0.9
    )
    parts.loss.backward()
    return parts.loss.detach(), logits.grad, [p.grad.clone() for p in model.parameters()]


def test_masked_positions_contribute_exactly_zero_gradient(
    tmp_path: Path, zoo: Path, data_root: Path
) -> None:
    store = TopKStore(
        masked_fused_store(
            zoo / "tiny-llama", tmp_path / "fused", boolq_conversations(data_root, 4)
        )
    )
    dataset = FusedDataset(store, max_length=512)
    items = [dataset[i] for i in range(len(dataset))]
    for i, item in enumerate(items):  # labels: the next token on responses, IGNORE elsewhere
        seq = store.sequence(i)
        expected = np.where(seq.loss_mask == 1, np.append(seq.token_ids[1:], IGNORE), IGNORE)
        assert item["labels"].tolist() == expected.tolist()
        assert 0 < (item["labels"] != IGNORE).sum() < len(item["labels"]) // 4
    batch = Collator(pad_token_id=0)(items)
    model = AutoModelForCausalLM.from_pretrained(zoo / "tiny-llama", dtype=torch.float32)
    loss, logit_grad, grads = _loss_and_grads(model, batch)

    masked = (batch["labels"] == IGNORE) & (batch["attention_mask"] == 1)
    assert masked.sum() > 0 and logit_grad[masked].abs().max() == 0  # exactly, not nearly
    assert logit_grad[batch["labels"] != IGNORE].abs().sum(-1).min() > 0

    # Any fused targets at the masked positions: the loss and every gradient are bit-identical.
    gen = torch.Generator().manual_seed(0)
    other = dict(batch)
    other["topk_ids"] = batch["topk_ids"].clone()
    other["topk_logprobs"] = batch["topk_logprobs"].clone()
    vocab = model.config.vocab_size
    other["topk_ids"][masked] = torch.randint(
        0, vocab, other["topk_ids"][masked].shape, generator=gen
    )
    other["topk_logprobs"][masked] = (
        -torch.rand(other["topk_logprobs"][masked].shape, generator=gen) * 5
    )
    loss2, _, grads2 = _loss_and_grads(model, other)
    assert torch.equal(loss, loss2)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads2, strict=True))

    # ...while the same change at a response position does change them (the test can see).
    response = batch["labels"] != IGNORE
    other["topk_ids"] = batch["topk_ids"].clone()
    other["topk_ids"][response] = PAD_ID
    other["topk_ids"][..., 0][response] = 5
    loss3, _, _ = _loss_and_grads(model, other)
    assert not torch.equal(loss, loss3)


def _chat_config(tmp_path: Path, zoo: Path, data_root: Path) -> Path:
    corpus = tmp_path / "conversations.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"messages": c}, ensure_ascii=False) + "\n"
            for c in boolq_conversations(data_root, 8)
        ),
        encoding="utf-8",
    )
    raw = {
        "work_dir": "work",
        "pivot": {"name": "tiny-llama", "path": str(zoo / "tiny-llama")},
        "sources": [{"name": "tiny-mistral", "path": str(zoo / "tiny-mistral")}],
        "corpus": {"path": "conversations.jsonl"},
        "extract": {
            "k": 5,
            "max_length": 1024,
            "batch_size": 8,
            "rows_per_shard": 4,
            "dtype": "float32",
        },
        "train": {
            "zero_stage": 2,
            "precision": "fp32",
            "micro_batch_size": 4,
            "max_length": 1024,
            "learning_rate": 1e-3,
            "save_every": 10,
        },
        "merge": {"method": "varm"},
    }
    file = tmp_path / "chat.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


def test_fuse_chat_on_conversations_trains_on_responses_only(
    tmp_path: Path, zoo: Path, data_root: Path, run_fusebench
) -> None:
    config = _chat_config(tmp_path, zoo, data_root)
    done = run_fusebench("fuse", "chat", str(config), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp_path / "work"
    assert done.stdout.splitlines()[-1] == f"model: {work / 'merged'}"
    assert "conversations rendered with tiny-llama's chat template" in done.stderr

    # The corpus is the pivot's rendering; every store is masked on its own tokens.
    corpus = load_corpus(work)
    assert corpus.conversation and len(corpus) == 8
    assert all(text.startswith("### System:") for text in corpus.rows)
    for name in ("tiny-llama", "tiny-mistral"):
        store = TopKStore(work / "stores" / name)
        assert store.manifest.masked and len(store) == 8
        tokenizer = AutoTokenizer.from_pretrained(zoo / name)
        model = AutoModelForCausalLM.from_pretrained(zoo / name, dtype=torch.float32).eval()
        expected = token_masks(tokenizer, corpus.rows, corpus.spans, name)
        for seq in store:
            ids, mask = expected[seq.row_id]
            assert seq.token_ids.tolist() == ids and seq.loss_mask.tolist() == mask.tolist()
            # Sequence CE (min_ce's choice) is the mean NLL over the response positions.
            with torch.no_grad():
                logp = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
            nll = -logp[:-1].gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].double().numpy()
            assert seq.mean_nll == pytest.approx(nll[mask[:-1] == 1].mean(), rel=1e-5, abs=0)
            assert abs(seq.mean_nll - nll.mean()) > 1e-4  # not the mean over every position

    # The fused store carries the pivot's mask, and training ran on it.
    pair = work / "pairs" / "tiny-mistral"
    fused = TopKStore(pair / "fused")
    pivot = TopKStore(work / "stores" / "tiny-llama")
    assert fused.manifest.masked
    for seq, own in zip(fused, pivot, strict=True):
        assert seq.loss_mask.tolist() == own.loss_mask.tolist()
    log = [json.loads(line) for line in (pair / "train" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(0 < row["clm"] < 20 and 0 < row["fuse"] < 20 for row in log)
    assert (work / "merged" / "model.safetensors").is_file()


def test_row_without_a_response_token_is_refused_with_its_line(
    tmp_path: Path, zoo: Path, run_fusebench
) -> None:
    """A template that writes only the content: an assistant-only row of one token has no
    position that predicts a response token."""
    tokenizer = AutoTokenizer.from_pretrained(zoo / "tiny-gpt2")
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tokenizer.save_pretrained(tmp_path / "bare")
    chats = [
        [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "네"}],
        [{"role": "assistant", "content": "네"}],
    ]
    (tmp_path / "chat.jsonl").write_text(
        "".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in chats),
        encoding="utf-8",
    )
    raw = {
        "work_dir": "work",
        "target": {"name": "bare", "path": str(tmp_path / "bare")},
        "sources": [{"name": "tiny-gpt2", "path": str(zoo / "tiny-gpt2")}],
        "corpus": {"path": "chat.jsonl"},
    }
    (tmp_path / "fuse.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    done = run_fusebench("fuse", "extract", str(tmp_path / "fuse.yaml"), "--no-progress")
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "corpus row 1 (chat.jsonl:2): no response token to train on for bare" in last
    assert "Traceback" not in done.stderr
