"""The contamination check's JSON as Markdown and HTML: data set text escaped, the limit read
from the file, a wrong file refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports import contamination
from reports.errors import BadFile
from tasks.contamination.check import Settings, check
from tasks.contamination.documents import Document, TaskDocuments

LEAK = "이 문장은 <b>평가 데이터</b>에서 그대로 가져온 문장입니다 | 파이프도 있다"


def _data(max_rate: float) -> dict:
    docs = [
        Document(0, {"text": LEAK}),
        Document(1, {"text": "전혀 다른 문장으로 아무 관계가 없는 글입니다"}),
    ]
    result = check(
        [TaskDocuments("toy", "test", "1", docs)],
        [("corpus.jsonl:7", "앞 " + LEAK + " 뒤")],
        Settings(),
        sources=["corpus.jsonl"],
    )
    return result.to_json(max_rate)


def test_html_escapes_the_overlap_and_markdown_keeps_one_row() -> None:
    data = _data(0.0)
    page = contamination.html_section(data)
    assert "<b>" not in page and "&lt;b&gt;평가 데이터&lt;/b&gt;" in page
    md = contamination.markdown(data)
    row = next(line for line in md.splitlines() if line.startswith("| 0 |"))
    assert "corpus.jsonl:7" in row and r"\|" in row  # the pipe escaped: one table row
    assert contamination.over(data) == ["toy"]
    assert "Contaminated above the limit: toy." in md


def test_the_limit_is_read_from_the_file() -> None:
    data = _data(0.5)  # 1 of 2 documents: not above half
    assert contamination.over(data) == []
    assert contamination.verdict(data) == "1 contaminated documents, within the limit."


def test_a_wrong_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "contamination.json"
    assert contamination.load(path) is None
    path.write_text(json.dumps({"format": "something-else"}), encoding="utf-8")
    with pytest.raises(BadFile, match="not a contamination check"):
        contamination.load(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(BadFile, match="not valid JSON"):
        contamination.load(path)
