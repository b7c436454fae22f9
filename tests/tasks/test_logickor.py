"""LogicKor as data: questions and templates from the data directory, and the online format
(LogicKor's ``templates.py``) read without executing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.errors import TaskDataError
from tasks.logickor import load_questions, load_templates, parse_questions, parse_templates_py


def test_questions_and_templates_load(data_root: Path) -> None:
    questions = load_questions(data_root)
    assert len(questions) == 42 and len({q["category"] for q in questions}) == 6
    assert all(len(q["questions"]) >= 2 and len(q["references"]) == 2 for q in questions)
    templates = load_templates(data_root)
    assert set(templates.strategies) == {"default", "1-shot", "cot-1-shot"}
    assert templates.strategies["default"] == []
    assert "점수" in templates.judge_system["single_turn"]


def test_templates_py_is_read_as_data(data_root: Path) -> None:
    """The same dicts written as LogicKor's templates.py writes them parse to the same data."""
    expected = load_templates(data_root)
    text = (
        f"PROMPT_STRATEGY = {expected.strategies!r}\n\nJUDGE_TEMPLATE = {expected.judge_system!r}\n"
    )
    assert parse_templates_py(text, "templates.py") == expected
    with pytest.raises(TaskDataError, match="not a literal"):
        parse_templates_py("PROMPT_STRATEGY = open('x')\nJUDGE_TEMPLATE = {}\n", "t.py")


def test_bad_question_names_file_line_and_field() -> None:
    with pytest.raises(TaskDataError, match=r"q.jsonl:2: field 'questions'"):
        parse_questions(
            '{"id": 1, "category": "c", "questions": ["a", "b"]}\n'
            '{"id": 2, "category": "c", "questions": ["a"]}\n',
            "q.jsonl",
        )
