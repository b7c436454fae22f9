"""ko_bpb: held-out BoolQ passages, lm-eval's wikitext metrics, checked by hand.

The hand computation never goes through lm-eval: the text's own tokens (no special tokens)
are scored by the transformers model, the first one conditioned on the tokenizer's BOS token
(its EOS when it has none), and bits per byte is -sum(log p) / (ln 2 * UTF-8 bytes) over
all documents together.
"""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from lm_eval import simple_evaluate
from lm_eval.tasks import get_task_dict
from lm_eval.tasks._yaml_loader import load_yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.backends import BackendOptions
from harness.backends.hf import build, build_lm_eval
from harness.backends.shared_context import rolling_scores_bos
from harness.cli import main
from tasks import catalog, loaders
from tasks.datadir import ENV_VAR
from tasks.loaders import heldout_passages, load_benchmark
from tests.tasks.hand_scoring import hand_loglikelihoods
from tests.tasks.naive_contamination import contaminated

# Short, fixed Korean texts (not from the data): Hangul, digits, Latin, Hanja (byte fallback
# in the metaspace tokenizer), punctuation; two lengths, so a mean of per-document ratios
# would differ from the ratio of sums.
TEXTS = [
    "구한말, 통영 안뒤산 기슭 간창골에 김봉제 형제가 살았다.",
    "이화여자대학교(梨花女子大學校, Ewha Womans University)는 1886년에 세워진 대한민국의 "
    "사립 여자 대학교이다. 빵은 세르비아 요리의 가장 기본적인 구성을 이룬다!",
]
RELATIVE = 1e-5


def _task_on(texts: list[str]) -> dict:
    """ko_bpb's own definition (metrics, output type) with these texts as its documents."""
    config = load_yaml(catalog.TASKS_DIR / "ko_bpb.yaml", resolve_func=True)
    docs = datasets.Dataset.from_list([{"text": t, "index": i} for i, t in enumerate(texts)])
    config.update(
        task="ko_bpb_fixed",
        custom_dataset=lambda **_: datasets.DatasetDict({"validation": docs}),
    )
    return config


def _evaluate(lm: Any, texts: list[str]) -> tuple[dict, list[float]]:
    out = simple_evaluate(
        model=lm, tasks=[_task_on(texts)], log_samples=True, task_manager=catalog.task_manager()
    )
    samples = sorted(out["samples"]["ko_bpb_fixed"], key=lambda s: s["doc_id"])
    return out["results"]["ko_bpb_fixed"], [s["resps"][0][0] for s in samples]


def _options() -> BackendOptions:
    return BackendOptions(device="cpu", dtype="float32", batch_size=2)


@pytest.mark.parametrize(
    ("model", "prepends_bos"),
    [
        ("tiny-gpt2", False),  # byte-level BPE (Ġ); BOS = EOS = <|endoftext|>, not added
        ("tiny-llama", True),  # byte-level BPE whose tokenizer prepends <s>
        ("tiny-mistral", True),  # metaspace BPE (▁) with byte fallback, prepends <s>
        ("tiny-qwen2", False),  # Qwen2's byte-level pipeline (NFC, split regex), no BOS added
    ],
)
def test_bits_per_byte_equals_the_hand_computation(
    zoo: Path, model: str, prepends_bos: bool
) -> None:
    hand = hand_loglikelihoods(zoo / model, TEXTS)
    n_bytes = sum(len(t.encode("utf-8")) for t in TEXTS)
    n_words = sum(len(t.split()) for t in TEXTS)
    expected_bpb = -sum(hand) / (math.log(2) * n_bytes)

    lm = build(str(zoo / model), _options())  # --backend hf
    results, per_doc = _evaluate(lm, TEXTS)
    assert per_doc == pytest.approx(hand, rel=RELATIVE)
    assert results["bits_per_byte,none"] == pytest.approx(expected_bpb, rel=RELATIVE)
    assert results["byte_perplexity,none"] == pytest.approx(
        math.exp(-sum(hand) / n_bytes), rel=RELATIVE
    )
    assert results["word_perplexity,none"] == pytest.approx(
        math.exp(-sum(hand) / n_words), rel=RELATIVE
    )
    # Not the mean of per-document figures: the texts' lengths differ enough to tell.
    mean_of_ratios = sum(
        -ll / (math.log(2) * len(t.encode("utf-8"))) for ll, t in zip(hand, TEXTS, strict=True)
    ) / len(TEXTS)
    assert not math.isclose(mean_of_ratios, expected_bpb, rel_tol=1e-3)

    # --backend hf-lm-eval is lm-eval's model unchanged: with a tokenizer that prepends BOS it
    # scores that BOS after its prefix token as part of the text (and the text after both).
    plain = build_lm_eval(str(zoo / model), _options())
    assert rolling_scores_bos(plain) is prepends_bos and rolling_scores_bos(lm) is False
    _, plain_per_doc = _evaluate(plain, TEXTS)
    expected = hand_loglikelihoods(zoo / model, TEXTS, scored_bos=prepends_bos)
    assert plain_per_doc == pytest.approx(expected, rel=RELATIVE)


def _windowed_hand(path: Path, text: str, window: int) -> float:
    """log P(text) in windows of ``window`` tokens as lm-eval's rolling scheme defines them
    (context_len 1): the first window predicts the first ``window`` tokens after the start
    token; each later one predicts the next ``window`` tokens (fewer at the end) from the
    ``window`` tokens before its last one. Every token is predicted exactly once."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

    def score(inputs: list[int], targets: list[int]) -> float:
        with torch.no_grad():
            logits = model(torch.tensor([inputs])).logits[0].double()
        logp = torch.log_softmax(logits[len(inputs) - len(targets) :], dim=-1)
        return float(logp[torch.arange(len(targets)), torch.tensor(targets)].sum())

    first = min(window, len(ids))
    total, predicted = score([start, *ids[: first - 1]], ids[:first]), first
    while predicted < len(ids):
        n = min(window, len(ids) - predicted)
        end = predicted + n
        total += score(ids[end - window - 1 : end - 1], ids[end - n : end])
        predicted = end
    return total


def test_rolling_windows_score_the_text_alone(zoo: Path) -> None:
    """Documents longer than the model's window (16 tokens here) run through lm-eval's rolling
    windows; encoded without the tokenizer's BOS, they match the hand computation too."""
    options = BackendOptions(device="cpu", dtype="float32", batch_size=2, max_length=16)
    lm = build(str(zoo / "tiny-mistral"), options)
    assert len(lm.tok_encode(TEXTS[1], add_special_tokens=False)) > 3 * 16
    _, per_doc = _evaluate(lm, TEXTS)
    expected = [_windowed_hand(zoo / "tiny-mistral", text, 16) for text in TEXTS]
    assert per_doc == pytest.approx(expected, rel=RELATIVE)


# ---------------------------------------------------------------- the loader


def _column(path: Path, column: str) -> list[str]:
    """A TSV column read with the csv module alone (independent of tasks.loaders)."""
    csv.field_size_limit(2**31 - 1)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row[column] for row in rows]


def test_passages_are_boolq_dev_less_train(data_root: Path) -> None:
    dev = _column(data_root / "kobest_v1/boolq/dev.tsv", "Text")
    train = set(_column(data_root / "kobest_v1/boolq/train.tsv", "Text"))
    shared = [p for p in dict.fromkeys(dev) if p in train]
    assert len(dev) == 700 and len(shared) == 2  # the overlap the task documents

    docs = load_benchmark("ko_bpb", data_root)
    assert list(docs) == ["validation"]
    texts = docs["validation"]["text"]
    unseen = [p for p in dict.fromkeys(dev) if p not in train]  # file order, each once
    # less those sharing text with train, by the plain-Python rule (tests/tasks/naive_...)
    sharing = contaminated(unseen, sorted(train), {"chars": 25, "words": 13})
    assert texts == [p for i, p in enumerate(unseen) if i not in sharing]
    assert len(texts) == 684 and len(sharing) == 14 and not set(texts) & train
    assert all(dev[i] == t for i, t in zip(docs["validation"]["index"], texts, strict=True))


def test_loader_reads_boolq_dev_and_train_only(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data directory holding nothing but BoolQ's dev and train files is enough, and those
    are the only files opened; the documents come from dev alone."""
    boolq = tmp_path / "kobest_v1" / "boolq"
    boolq.mkdir(parents=True)
    for name in ("dev.tsv", "train.tsv"):
        shutil.copy(data_root / "kobest_v1" / "boolq" / name, boolq / name)
    opened: list[Path] = []
    read_tsv = loaders.read_tsv

    def spy(path: Path, convert: Any):
        opened.append(path.relative_to(tmp_path))
        return read_tsv(path, convert)

    monkeypatch.setattr(loaders, "read_tsv", spy)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    docs = load_benchmark("ko_bpb")
    assert sorted(map(str, opened)) == ["kobest_v1/boolq/dev.tsv", "kobest_v1/boolq/train.tsv"]
    assert set(docs["validation"]["text"]) <= set(_column(boolq / "dev.tsv", "Text"))


def test_derivation_dedups_and_excludes_deterministically() -> None:
    def split(passages: list[str]) -> datasets.Dataset:
        rows = [{"paragraph": p, "question": "q", "label": 0} for p in passages]
        return datasets.Dataset.from_list(rows)

    splits = datasets.DatasetDict(
        {
            "train": split(["seen", "other"]),
            "validation": split(["b", "seen", "a", "b", "c", "a"]),
            "test": split(["a", "b", "c"]),  # never consulted
        }
    )
    out = heldout_passages(splits)
    assert out["validation"].to_list() == [
        {"text": "b", "index": 0},
        {"text": "a", "index": 2},
        {"text": "c", "index": 4},
    ]
    assert heldout_passages(splits)["validation"].to_list() == out["validation"].to_list()


def test_hub_source_is_boolq_validation_with_the_same_exclusion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def fake_load_dataset(path: str, name: str | None = None) -> datasets.DatasetDict:
        calls.append((path, name))
        row = {"paragraph": "", "question": "q", "label": 0}
        return datasets.DatasetDict(
            {
                "train": datasets.Dataset.from_list([{**row, "paragraph": "in train"}]),
                "validation": datasets.Dataset.from_list(
                    [{**row, "paragraph": p} for p in ("held out", "in train", "held out")]
                ),
                "test": datasets.Dataset.from_list([{**row, "paragraph": "test only"}]),
            }
        )

    monkeypatch.setenv(ENV_VAR, "")
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    docs = load_benchmark("ko_bpb")
    assert calls == [("skt/kobest_v1", "boolq")]
    assert docs["validation"].to_list() == [{"text": "held out", "index": 0}]


def test_kobest_boolq_uses_test_documents_and_train_examples_never_dev(data_root: Path) -> None:
    """ko_bpb's text is BoolQ's dev split: the boolq task must not read it for documents or
    few-shot examples (else its passages would sit in every boolq prompt)."""
    task = get_task_dict(["kobest_boolq"], catalog.task_manager())["kobest_boolq"]
    boolq = load_benchmark("kobest_boolq", data_root)
    assert list(task.eval_docs) == boolq["test"].to_list()
    assert list(task.fewshot_docs()) == boolq["train"].to_list()


# ---------------------------------------------------------------- catalogue and CLI


def test_catalogue_entry() -> None:
    info = catalog.all_tasks()["ko_bpb"]
    assert (info.metric, info.higher_is_better, info.split) == (
        "bits_per_byte",
        False,
        "validation",
    )
    assert info.zero_shot_only and info.fewshot_split is None
    assert "less those in or sharing text with train" in (info.split_note or "")


def test_tasks_lists_source_split_and_direction(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["tasks", "--json"]) == 0
    (entry,) = [t for t in json.loads(capsys.readouterr().out)["tasks"] if t["name"] == "ko_bpb"]
    assert entry["split"] == "validation" and entry["source"].startswith("local:")
    assert entry["metric"] == "bits_per_byte" and entry["higher_is_better"] is False
    assert entry["zero_shot_only"] is True


@pytest.mark.parametrize("shots", ["5", "2,3"])
def test_shots_without_zero_are_refused_in_one_line(
    zoo: Path, tmp_path: Path, shots: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(zoo / "tiny-gpt2"), "--tasks", "nsmc,ko_bpb", "--num-fewshot", shots]
    assert main([*argv, "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "ko_bpb is scored at 0 shots only" in err and f"--num-fewshot {shots}" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_with_zero_among_the_shots_it_runs_at_zero_only(zoo: Path, tmp_path: Path) -> None:
    """``--num-fewshot 0,2`` with nsmc and ko_bpb: nsmc at both, ko_bpb at 0 only; the run is
    complete and its summary lists no missing row."""
    from harness.summary import summary_table
    from reports import rundir

    out = tmp_path / "run"
    argv = ["eval", str(zoo / "tiny-gpt2"), "--tasks", "nsmc,ko_bpb", "--num-fewshot", "0,2"]
    assert main([*argv, "--limit", "3", "--output", str(out)]) == 0
    manifest = rundir.read_manifest(out)
    assert manifest.status == "complete"
    assert sorted((c.task, c.num_fewshot) for c in manifest.completed) == [
        ("ko_bpb", 0),
        ("nsmc", 0),
        ("nsmc", 2),
    ]
    assert "ko_bpb" not in (rundir.read_results(out, 2) or {}).get("results", {})
    table = summary_table(out)
    assert "missing" not in [cell for column in table.columns for cell in column._cells]


def test_lm_eval_itself_refuses_few_shots(zoo: Path) -> None:
    """Outside fusebench (lm-eval's own CLI, simple_evaluate) the task's sampler refuses."""
    lm = build(str(zoo / "tiny-gpt2"), _options())
    with pytest.raises(ValueError, match="ko_bpb is scored at 0 shots only"):
        simple_evaluate(
            model=lm, tasks=["ko_bpb"], num_fewshot=3, limit=2, task_manager=catalog.task_manager()
        )
