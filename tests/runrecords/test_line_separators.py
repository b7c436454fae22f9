"""U+2028, U+2029 and U+0085 inside JSON Lines strings (real model outputs and web text hold
them): written escaped, and every reader splits at newlines only (issue 27, item 6).

``str.splitlines`` cuts at those characters, so a file written with them raw split one row in
two: a corpus row stopped ``fuse extract`` on every rerun, a pairwise judgment made ``report``
fail after the judge was paid.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from runrecords.atomic import dumps

SEPARATORS = "앞\u2028가운데\u2029뒤\u0085끝"


def test_dumps_escapes_line_separators_and_round_trips() -> None:
    text = dumps({"text": SEPARATORS}, indent=None)
    assert "\u2028" not in text and "\u2029" not in text and "\u0085" not in text
    assert "\\u2028" in text and len(text.splitlines()) == 1
    assert json.loads(text) == {"text": SEPARATORS}


def test_corpus_rows_keep_a_row_with_separators(tmp_path: Path) -> None:
    from fusion.corpus import load, prepare

    source = tmp_path / "c.jsonl"
    rows = [{"text": "첫 줄 " + SEPARATORS}, {"text": "둘째 줄"}]
    # The user's file holds the characters raw, as ensure_ascii=False writes them.
    source.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    section = SimpleNamespace(
        path=str(source),
        shared=None,
        format="auto",
        text_field="text",
        hub_dataset=None,
        max_rows=None,
        max_chars=2000,
        model_dump=lambda **_: {"path": str(source), "max_chars": 2000},
    )
    prepared = prepare(section, tmp_path / "work")
    again = load(tmp_path / "work")
    assert again.rows == prepared.rows == ["첫 줄 " + SEPARATORS, "둘째 줄"]
    assert "\\u2028" in (tmp_path / "work" / "corpus" / "rows.jsonl").read_text(encoding="utf-8")


def test_training_log_reads_a_record_with_separators(tmp_path: Path) -> None:
    from fusion.train.logbook import read_log

    log = tmp_path / "log.jsonl"
    records = [{"step": 1, "note": SEPARATORS}, {"step": 2, "note": "ok"}]
    log.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    assert read_log(log) == records


def test_pairwise_judgments_with_separators_are_read(tmp_path: Path) -> None:
    from reports.pairwise import _rows

    part = tmp_path / "judgments.jsonl"
    row = {"id": 1, "turn": 1, "base": "a", "other": "b", "status": "ok", "answer": SEPARATORS}
    part.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert _rows(part) == [row]


def test_logickor_answers_with_separators_count_as_judged(tmp_path: Path) -> None:
    from harness.fuse_eval import logickor
    from harness.generate import LOGICKOR_DIR
    from harness.judging import RECORD

    judge = SimpleNamespace(identity=lambda: {"model": "j"})
    folder = tmp_path / LOGICKOR_DIR
    folder.mkdir()
    (folder / RECORD).write_text(json.dumps({"model": "j"}), encoding="utf-8")
    row = {"id": 1, "query_single": {"judge": SEPARATORS}, "query_multi": {"judge": "x"}}
    (folder / "default.jsonl").write_text(
        json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    assert logickor._judged(tmp_path, "default", judge) is True


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u0085"])
def test_each_separator_is_escaped(char: str) -> None:
    assert char not in dumps([char]) and json.loads(dumps([char])) == [char]
