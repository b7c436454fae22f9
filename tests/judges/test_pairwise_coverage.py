"""Pairwise judging against an OTHER that holds part of the questions (or more than the base):
the coverage is said in the console and in every report (Markdown, JSON, HTML of ``compare``
and ``report``), and ``--min-win-rate`` fails on it unless ``--allow-partial`` is given.

Real LogicKor files, the real CLI and a scripted judge on 127.0.0.1 that prefers the longer
answer (the OTHER's answers are longer, so its win rate passes any gate on what was judged).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from harness.cli import main

DROPPED = [3, 7, 11, 15, 19, 22, 26, 30, 33, 37, 40, 42]  # 12 of LogicKor's 42 ids


def _questions(data_root: Path) -> list[dict]:
    path = data_root / "logickor" / "questions.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _model(root: Path, name: str, questions: list[dict], answer: str) -> Path:
    path = root / name / "default.jsonl"
    path.parent.mkdir(parents=True)
    rows = [{**q, "outputs": [f"{answer} {q['id']}"] * 2} for q in questions]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _cli(*args: str) -> tuple[int, str, str]:
    with (
        contextlib.redirect_stdout(io.StringIO()) as out,
        contextlib.redirect_stderr(io.StringIO()) as err,
    ):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def partial(
    tmp_path_factory: pytest.TempPathFactory, data_root: Path, scripted_judge, pairwise_judges
) -> tuple[Path, str, int]:
    """org/fused holds 30 of the base's 42 questions: (output, what judging printed, requests)."""
    tmp = tmp_path_factory.mktemp("coverage")
    questions = _questions(data_root)
    assert len(questions) == 42
    base = _model(tmp / "in", "org/base", questions, "짧은 답")
    kept = [q for q in questions if q["id"] not in DROPPED]
    other = _model(tmp / "in", "org/fused", kept, "훨씬 더 길고 자세한 답변입니다")
    with scripted_judge(respond=pairwise_judges.prefers_longer) as server:
        code, printed = pairwise_judges.run(base, other, tmp / "out", server, tmp / "c.sqlite")
        assert code == 0, printed
        return tmp / "out", printed, server.requests


IDS = ", ".join(map(str, DROPPED))
SAID = f"judged 30 of 42 questions; 12 missing in org/fused: ids {IDS}"


def test_judging_says_the_coverage_before_and_after(partial: tuple[Path, str, int]) -> None:
    out, printed, requests = partial
    assert requests == 30 * 2 * 2  # the questions both hold, both turns, both orders
    assert f"note: org/fused vs org/base · default: {SAID} (" in printed
    assert f"Coverage of org/fused vs org/base: {SAID}." in printed
    record = json.loads((out / "pairwise.json").read_text("utf-8"))
    (entry,) = record["coverage"].values()
    assert entry["questions"] == 42 and entry["judged"] == 30
    assert entry["base_questions"] == 42 and entry["other_questions"] == 30
    assert entry["missing_in_other"] == DROPPED and entry["missing_in_base"] == []
    assert list(record["coverage"]) == ["pairwise/default/org__fused.jsonl"]


def test_the_gate_fails_on_partial_coverage_unless_allowed(
    partial: tuple[Path, str, int],
) -> None:
    out = str(partial[0])
    code, text, _ = _cli("compare", out, "--min-win-rate", "0.5", "--resamples", "200")
    assert code == 1
    assert f"Coverage of org/fused vs org/base: {SAID}." in text
    overall = next(line for line in text.splitlines() if "| org/fused | **overall** |" in line)
    assert float(overall.split("|")[6].strip().rstrip("%")) > 90  # it wins what was judged
    (why,) = [line for line in text.splitlines() if line.startswith("org/fused vs org/base (")]
    assert "judged 30 of 42 questions; 12 missing in org/fused; the gate needs every" in why
    assert "--allow-partial" in why
    code, text, _ = _cli(
        "compare", out, "--min-win-rate", "0.5", "--allow-partial", "--resamples", "200"
    )
    assert code == 0
    assert "gate passed: every model's overall win rate is at least 0.5 (on part of the " in text
    assert f"Coverage of org/fused vs org/base: {SAID}." in text


def test_every_report_format_says_the_coverage(
    partial: tuple[Path, str, int], tmp_path: Path
) -> None:
    out = str(partial[0])
    code, text, _ = _cli(
        "compare", out, "--format", "json", "--min-win-rate", "0.5", "--resamples", "200"
    )
    assert code == 1
    data = json.loads(text)
    (table,) = data["pairwise"]
    (coverage,) = table["coverage"]
    assert coverage["judged"] == 30 and coverage["questions"] == 42
    assert coverage["missing_in_other"] == DROPPED and coverage["complete"] is False
    assert coverage["text"] == SAID
    assert data["pairwise_gate"]["passed"] is False
    assert data["pairwise_gate"]["allow_partial"] is False
    assert "judged 30 of 42" in data["pairwise_gate"]["failures"][0]
    page = tmp_path / "page.html"
    code, _, err = _cli(
        "compare", out, "--format", "html", "--output", str(page), "--min-win-rate", "0.5",
        "--resamples", "200",
    )  # fmt: skip
    assert code == 1 and "the gate needs every question" in err
    html = page.read_text("utf-8")
    assert f'<p class="coverage partial">Coverage of org/fused vs org/base: {SAID}.</p>' in html
    for fmt in ("md", "html"):  # report's JSON is compare's, checked above
        target = tmp_path / f"report.{fmt}"
        code, _, _ = _cli("report", out, "--format", fmt, "--output", str(target))
        assert code == 0
        assert SAID in target.read_text("utf-8"), fmt


def test_the_reverse_a_limit_and_an_earlier_run_in_the_same_folder(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    """The base lacks questions the other holds (and the other some of the base's); --limit
    is partial too; a complete other judged into the same folder earlier keeps its coverage
    and passes."""
    questions = _questions(data_root)[:8]
    base = _model(tmp_path / "in", "org/base", questions[:6], "짧은 답")
    other = _model(tmp_path / "in", "org/fused", questions[2:], "훨씬 더 긴 답변입니다")
    whole = _model(tmp_path / "in", "org/whole", questions[:6], "훨씬 더 긴 답변입니다")
    out = tmp_path / "out"
    with scripted_judge(respond=pairwise_judges.prefers_longer) as server:
        for model in (whole, other):
            code, printed = pairwise_judges.run(base, model, out, server, tmp_path / "c.sqlite")
            assert code == 0, printed
        code, limited = pairwise_judges.run(
            base, whole, tmp_path / "limited", server, tmp_path / "c.sqlite", "--limit", "2"
        )
        assert code == 0
    said = (
        "judged 4 of 8 questions; 2 missing in org/fused: ids 1, 2; 2 missing in org/base: ids 7, 8"
    )
    assert f"Coverage of org/fused vs org/base: {said}." in printed
    assert "note: org/whole" not in printed
    assert "judged 2 of 6 questions; 4 left out by --limit" in limited
    code, text, _ = _cli("compare", str(out), "--min-win-rate", "0.5", "--resamples", "200")
    assert code == 1
    assert "Coverage of org/whole vs org/base: judged all 6 questions." in text
    failures = [line for line in text.splitlines() if line.startswith("org/")]
    assert len(failures) == 1 and failures[0].startswith("org/fused vs org/base (")
    code, text, _ = _cli("compare", str(tmp_path / "limited"), "--min-win-rate", "0.5")
    assert code == 1 and "4 left out by --limit; the gate needs every question" in text


def test_a_folder_without_recorded_coverage_fails_the_gate_and_says_so(
    partial: tuple[Path, str, int], tmp_path: Path
) -> None:
    """A pairwise folder written before coverage was recorded: the gate cannot vouch for it."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(partial[0], old)
    record = json.loads((old / "pairwise.json").read_text("utf-8"))
    del record["coverage"]
    (old / "pairwise.json").write_text(json.dumps(record), "utf-8")
    code, text, _ = _cli("compare", str(old), "--min-win-rate", "0.5", "--resamples", "200")
    assert code == 1
    assert "judged 30 questions; how many the two files held was not recorded" in text
    assert _cli("compare", str(old), "--min-win-rate", "0.5", "--allow-partial")[0] == 0
