"""The contamination check's core against a plain-Python derivation, on real data.

``tasks.contamination`` hashes windows in numpy and verifies hits; the derivation in
``tests/tasks/naive_contamination.py`` keeps every evaluation n-gram as a string in a set. Both
must flag the same documents of real KoBEST tasks against real Korean text (the zoo's KoBEST
train text, where passages recur across splits), with the overlap and the rows right.
"""

from __future__ import annotations

import pytest

from fusion import zoo_data
from tasks.contamination.check import Settings, check, shared_with
from tasks.contamination.documents import JOINED, Document, TaskDocuments, load_documents
from tasks.contamination.ngrams import (
    codes_of_text,
    distinct_per_window,
    normalized_chars,
    units_with_spans,
    window_hashes,
)
from tests.tasks.naive_contamination import contaminated

LENGTHS = {"chars": 25, "words": 13}


def test_window_hashes_equal_the_polynomial_sum() -> None:
    from tasks.contamination.ngrams import _BASE, _mixed

    text = "국가대표팀은 어제 경기에서 2:1로 이겼다. Merry Christmas!" * 2
    codes = codes_of_text(normalized_chars(text))
    mixed = [int(x) for x in _mixed(codes)]
    for n in (1, 2, 3, 7, 13, 25, len(codes)):
        expected = [
            sum(mixed[i + j] * pow(_BASE, n - 1 - j, 1 << 64) for j in range(n)) % (1 << 64)
            for i in range(len(codes) - n + 1)
        ]
        assert [int(h) for h in window_hashes(codes, n)] == expected
    assert len(window_hashes(codes, len(codes) + 1)) == 0


def test_distinct_counts_and_spans() -> None:
    text = "ㅋㅋㅋㅋ 좋아요, 정말 좋아요!"
    codes = codes_of_text(normalized_chars(text))
    for n in (1, 4, 6):
        flat = normalized_chars(text)
        assert list(distinct_per_window(codes, n)) == [
            len(set(flat[i : i + n])) for i in range(len(flat) - n + 1)
        ]
    units = units_with_spans(text, "chars")
    assert "".join(units.items) == normalized_chars(text)
    start, end = units.source_span(4, 6)  # 좋아요 after the four ㅋ
    assert text[start:end] == "좋아요"


@pytest.fixture(scope="module")
def kobest() -> list[TaskDocuments]:
    return load_documents(["kobest_boolq", "kobest_hellaswag", "kobest_wic"])


@pytest.fixture(scope="module")
def train_text() -> list[str]:
    return list(zoo_data.text_source("general"))


def test_flags_the_documents_the_plain_derivation_flags(
    kobest: list[TaskDocuments], train_text: list[str]
) -> None:
    """Every scored text of three KoBEST tasks (multi-field documents included) against the
    zoo's KoBEST train text: the same documents, and each finding's rows really hold it."""
    result = check(kobest, [(str(i), t) for i, t in enumerate(train_text)], Settings(LENGTHS))
    for task, outcome in zip(kobest, result.tasks, strict=True):
        texts = [
            (doc.index, name, text) for doc in task.documents for name, text in doc.texts.items()
        ]
        found = contaminated([t for _, _, t in texts], train_text, LENGTHS)
        whole = {
            i
            for i, (index, name, _) in enumerate(texts)
            if name == JOINED or len(task.documents[index].texts) == 1
        }
        # the naive rule's whole-row matches count for a document's whole text only
        expected = {
            texts[i][0]
            for i, rows in found.items()
            if i in whole
            or len(normalized_chars(texts[i][2])) >= 25
            or len(texts[i][2].split()) >= 13
        }
        assert {f.index for f in outcome.findings} == expected, task.task
        for finding in outcome.findings:
            if finding.unit != "chars" or finding.match != "ngram":
                continue
            # The row named first holds some window of the field (the longest run shown may
            # join windows found in other rows).
            text = normalized_chars(task.documents[finding.index].texts[finding.field])
            row = normalized_chars(train_text[int(finding.corpus[0])])
            assert any(text[i : i + 25] in row for i in range(len(text) - 24))
    flagged = sum(t.contaminated for t in result.tasks)
    assert flagged >= 20  # BoolQ passages and HellaSwag contexts recur in train (measured: 34)


def test_laughter_and_short_rows_are_not_evidence() -> None:
    docs = [
        Document(0, {"text": "ㅋ" * 60}),  # one distinct unit in every window
        Document(1, {"text": "좋아요"}),  # shorter than the whole-row minimum
        Document(2, {"text": "배송이 빨라서 정말 좋았어요"}),  # a whole row of 13 letters
    ]
    task = TaskDocuments("t", "test", "1", docs)
    corpus = [("a:1", "ㅋ" * 80), ("a:2", "좋아요"), ("a:3", "배송이 빨라서, 정말 좋았어요!")]
    result = check([task], corpus)
    assert [(f.index, f.match, f.corpus) for f in result.tasks[0].findings] == [
        (2, "whole row", ["a:3"])
    ]
    assert result.tasks[0].checkable == 1  # only the laughter is 25 letters long


def test_shared_with_is_the_check_on_plain_texts() -> None:
    train = ["서울은 대한민국의 수도이며 가장 큰 도시이다. 한강이 도시를 가로지른다."]
    texts = [
        "오늘 서울은 대한민국의 수도이며 가장 큰 도시이다. 한강이 도시를 가로지른다고 배웠다",
        "부산은 대한민국 제2의 도시이다.",
    ]
    assert shared_with(texts, train) == {0}
