"""A review or comment made of digits only stays text in the prompt (lm-eval turns a
template's all-digit rendering into an int when the task has choices; a 5-shot nsmc prompt
that sampled NSMC's "1010101010" review stopped with "Context is not a string")."""

from __future__ import annotations

import pytest

from tasks import catalog


@pytest.mark.parametrize(
    ("task", "doc"),
    [
        ("nsmc", {"id": "1", "document": "1010101010", "label": 1}),
        ("korunsmile", {"text": "18181818", "gold": 1, "문장": "18181818", "labels": [0] * 10}),
    ],
)
def test_all_digit_text_stays_a_string(task: str, doc: dict) -> None:
    loaded = catalog.task_manager().load_task_or_group([task])[task]
    text = loaded.doc_to_text(doc)
    assert text == next(v for k, v in doc.items() if k in ("document", "text"))
    assert isinstance(text, str)


def test_nsmc_data_has_such_a_review(data_root) -> None:
    """The case is real: NSMC's test split holds all-digit reviews."""
    lines = (data_root / "nsmc" / "ratings_test.txt").read_text(encoding="utf-8").splitlines()
    assert any(line.split("\t")[1].isdigit() for line in lines[1:] if line.count("\t") == 2)
