"""The demo zoo's training text comes from training splits only, formatted as the tasks
prompt, and the fusion corpus is a seeded sample of it."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from fusion import zoo_data
from fusion.errors import FusionError

csv.field_size_limit(2**31 - 1)


def _column(path: Path, column: str) -> set[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {(row[column] or "").strip() for row in reader} - {""}


def _evaluation_only_texts(root: Path) -> set[str]:
    """Texts that occur in an evaluation split (KoBEST dev/test, UnSmile valid, NSMC test,
    LogicKor questions) and in no training split: none of them may reach a zoo model."""
    kobest = root / "kobest_v1"
    columns = {
        "boolq": ["Text", "Question"],
        "copa": ["sentence", "1", "2"],
        "hellaswag": ["context"],
        "sentineg": ["Text"],
        "wic": ["SENTENCE1", "SENTENCE2"],
    }
    evaluation: set[str] = set()
    training: set[str] = set()
    for task, names in columns.items():
        for name in names:
            training |= _column(kobest / task / "train.tsv", name)
            for split in ("dev", "test"):
                evaluation |= _column(kobest / task / f"{split}.tsv", name)
    unsmile = root / "korean_unsmile"
    training |= _column(unsmile / "unsmile_train_v1.0.tsv", "문장")
    evaluation |= _column(unsmile / "unsmile_valid_v1.0.tsv", "문장")
    evaluation |= _column(root / "nsmc" / "ratings_test.txt", "document")
    for line in (root / "logickor" / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            evaluation |= {turn.strip() for turn in json.loads(line)["questions"]}
    # Texts of a few characters (a one-word review) say nothing about provenance.
    return {text for text in evaluation - training if len(text) >= 20}


@pytest.fixture(scope="module")
def evaluation_only(data_root: Path) -> set[str]:
    return _evaluation_only_texts(data_root)


def _embedded_texts(row: str) -> list[str]:
    """The data texts inside a zoo row: the row itself, or the text a task prompt wraps."""
    boolq = re.fullmatch(r"(.*) 질문: (.*) 답변:  (예|아니오)", row, flags=re.S)
    if boolq:
        return [boolq[1], boolq[2]]
    sentineg = re.fullmatch(r"문장: (.*) 긍부정: (긍정|부정)", row, flags=re.S)
    if sentineg:
        return [sentineg[1]]
    labelled = re.fullmatch(r"(.*) (혐오|악플|양호|\(긍정\)|\(부정\))", row, flags=re.S)
    return [labelled[1], row] if labelled else [row]


@pytest.mark.parametrize("source", list(zoo_data.SOURCES))
def test_no_evaluation_text_reaches_a_source(source: str, evaluation_only: set[str]) -> None:
    rows = zoo_data.text_source(source)
    assert len(rows) > 1000
    leaked = [text for row in rows for text in _embedded_texts(row) if text in evaluation_only]
    assert not leaked, leaked[:3]


def test_the_leak_check_can_fail(evaluation_only: set[str]) -> None:
    """An evaluation text wrapped in a task prompt is found by the check above."""
    planted = sorted(evaluation_only)[0]
    assert planted in _embedded_texts(f"{planted} 악플")
    assert planted in _embedded_texts(f"문장: {planted} 긍부정: 긍정")


def test_rows_are_formatted_as_the_tasks_prompt() -> None:
    """The task-formatted rows equal lm-eval's own prompt + delimiter + gold choice."""
    from tasks.catalog import task_manager

    manager = task_manager()
    tasks = manager.load_task_or_group(["korunsmile", "kobest_boolq", "kobest_sentineg"])
    expected: dict[str, set[str]] = {}
    for name, task in tasks.items():
        rows = set()
        for doc in list(task.training_docs())[:50]:
            choices = task.doc_to_choice(doc)
            rows.add(
                task.doc_to_text(doc)
                + task.config.target_delimiter
                + choices[task.doc_to_target(doc)]
            )
        expected[name] = rows
    assert expected["korunsmile"] <= set(zoo_data.text_source("unsmile"))
    assert expected["kobest_boolq"] <= set(zoo_data.text_source("boolq"))
    assert expected["kobest_sentineg"] <= set(zoo_data.text_source("sentiment"))


def test_mixture_is_seeded_sized_and_grouped() -> None:
    counts = {"general": 30, "unsmile": 20}
    first, again = zoo_data.mixture(counts, seed=0), zoo_data.mixture(counts, seed=0)
    assert first == again and len(first) == 50
    assert zoo_data.mixture(counts, seed=1) != first
    unsmile = set(zoo_data.text_source("unsmile"))
    assert sum(row in unsmile for _, row in first) == 20
    assert all((group == "unsmile") == (row in unsmile) for group, row in first)


def test_general_text_holds_no_review_or_comment() -> None:
    """The target trains on ``general`` alone: the sources' domains stay out of it, so a
    source can know its domain better than the target."""
    general = set(zoo_data.text_source("general"))
    assert not general & set(zoo_data.text_source("reviews"))
    assert not general & set(zoo_data.text_source("comments"))


def test_weighted_entries() -> None:
    assert zoo_data.weighted("reviews*6") == ("reviews", 6)
    assert zoo_data.weighted("general") == ("general", 1)
    with pytest.raises(FusionError, match="expected NAME or NAME\\*K"):
        zoo_data.weighted("general*x")


def test_demo_corpus_rows_carry_their_group(tmp_path: Path) -> None:
    from fusion.zoo import DEMO_CORPUS_MIX, write_demo_corpus

    rows = [
        json.loads(line)
        for line in write_demo_corpus(tmp_path, seed=0).read_text(encoding="utf-8").splitlines()
    ]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["group"]] = counts.get(row["group"], 0) + 1
        assert row["text"] in zoo_data.text_source(row["group"])
    assert counts == DEMO_CORPUS_MIX


def test_held_out_split_is_disjoint_and_seeded() -> None:
    rows = tuple(f"row {i}" for i in range(200))
    train, held = zoo_data.split_held_out(rows, 0.1, seed=3)
    assert len(held) == 20 and not set(train) & set(held) and len(train) + len(held) == 200
    assert zoo_data.split_held_out(rows, 0.1, seed=3) == (train, held)
