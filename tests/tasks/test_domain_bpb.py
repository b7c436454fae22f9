"""The domain held-out bits-per-byte tasks: text each demo source is meant to know, that no
zoo model trained on, scored exactly as ko_bpb (checked against a hand computation)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from fusion import zoo_data
from harness.cli import main
from reports import rundir
from tasks import catalog
from tasks.loaders import load_benchmark
from tests.tasks.hand_scoring import hand_loglikelihoods
from tests.tasks.naive_contamination import contaminated

DOMAIN_TASKS = {
    # task: (split, note fragment)
    "ko_bpb_comments": ("validation", "UnSmile valid comments"),
    "ko_bpb_products": ("test", "SentiNeg dev and test sentences"),
    "ko_bpb_reviews": ("test", "NSMC test reviews"),
}


def _column(path: Path, column: str) -> list[str]:
    """A TSV column read with the csv module alone (independent of tasks.loaders)."""
    csv.field_size_limit(2**31 - 1)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row[column] or "").strip() for row in rows]


def _expected(data_root: Path) -> dict[str, list[str]]:
    """Each task's documents, derived here from the raw files: file order, each once."""
    unsmile = data_root / "korean_unsmile"
    sentineg = data_root / "kobest_v1" / "sentineg"
    comments_train = set(_column(unsmile / "unsmile_train_v1.0.tsv", "문장"))
    products_train = set(_column(sentineg / "train.tsv", "Text"))
    comments = _column(unsmile / "unsmile_valid_v1.0.tsv", "문장")
    products = _column(sentineg / "dev.tsv", "Text") + _column(sentineg / "test.tsv", "Text")
    reviews = _column(data_root / "nsmc" / "ratings_test.txt", "document")

    def held_out(texts: list[str], train: set[str]) -> list[str]:
        unseen = [t for t in dict.fromkeys(texts) if t and t not in train]
        sharing = contaminated(unseen, sorted(train), {"chars": 25, "words": 13})
        return [t for i, t in enumerate(unseen) if i not in sharing]

    return {
        "ko_bpb_comments": held_out(comments, comments_train),
        "ko_bpb_products": held_out(products, products_train),
        "ko_bpb_reviews": [t for t in dict.fromkeys(reviews) if t],
    }


@pytest.fixture(scope="module")
def expected(data_root: Path) -> dict[str, list[str]]:
    return _expected(data_root)


@pytest.mark.parametrize("task", list(DOMAIN_TASKS))
def test_documents_are_the_held_out_texts(
    task: str, data_root: Path, expected: dict[str, list[str]]
) -> None:
    split, _ = DOMAIN_TASKS[task]
    docs = load_benchmark(task, data_root)
    assert list(docs) == [split]
    texts = docs[split]["text"]
    assert texts == expected[task]
    assert len(texts) >= 500  # the demo's limit finds enough documents


@pytest.mark.parametrize("task", list(DOMAIN_TASKS))
def test_no_zoo_model_trained_on_the_text(task: str, expected: dict[str, list[str]]) -> None:
    """Held out: no row of any zoo text source (or the text a task row wraps) is a document."""
    documents = set(expected[task])
    trained = set()
    for name in zoo_data.SOURCES:
        for row in zoo_data.text_source(name):
            trained.add(row.strip())
            trained.add(row.rpartition(" ")[0].strip())  # a labelled row less its class word
    # Texts of a few characters ("ㅋㅋㅋㅋ") say nothing about provenance.
    leaked = [text for text in documents if text in trained and len(text) >= 20]
    assert not leaked, leaked[:3]


@pytest.mark.parametrize("task", list(DOMAIN_TASKS))
def test_catalogue_and_listing(task: str, capsys: pytest.CaptureFixture[str]) -> None:
    split, note = DOMAIN_TASKS[task]
    info = catalog.all_tasks()[task]
    assert (info.metric, info.higher_is_better, info.split) == ("bits_per_byte", False, split)
    assert info.zero_shot_only and note in (info.split_note or "")
    assert main(["tasks", "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)["tasks"]}
    assert listed[task]["source"].startswith("local:") and listed[task]["split"] == split


def test_eval_scores_the_hand_computation(
    zoo: Path, tmp_path: Path, expected: dict[str, list[str]]
) -> None:
    """``fusebench eval --tasks ko_bpb_comments,ko_bpb_reviews`` on a zoo model: bits per
    byte of the first documents equals -sum(log p) / (ln 2 * bytes) from transformers."""
    out = tmp_path / "run"
    tasks = "ko_bpb_comments,ko_bpb_reviews"
    argv = ["eval", str(zoo / "tiny-mistral"), "--tasks", tasks, "--limit", "4"]
    assert main([*argv, "--output", str(out)]) == 0
    results = (rundir.read_results(out, 0) or {})["results"]
    for task in tasks.split(","):
        texts = expected[task][:4]
        hand = hand_loglikelihoods(zoo / "tiny-mistral", texts)
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        assert results[task]["bits_per_byte,none"] == pytest.approx(
            -sum(hand) / (math.log(2) * n_bytes), rel=1e-5
        )


def test_few_shots_are_refused_naming_the_task(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(zoo / "tiny-gpt2"), "--tasks", "ko_bpb_products", "--num-fewshot", "5"]
    assert main([*argv, "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ko_bpb_products is scored at 0 shots only" in err
