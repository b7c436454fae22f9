"""Pairwise judgments through ``compare`` and ``report``: LogicKor's two published model
generations judged by a scripted local judge end to end (tables, intervals, consistency,
HTML), the ``--min-win-rate`` gate's exit code, and answers escaped in the HTML."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from harness.cli import main

EEVE = "yanolja/EEVE-Korean-Instruct-10.8B-v1.0"
ORION = "OrionStarAI/Orion-14B-Chat"


def _cli(*args: str) -> tuple[int, str]:
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = main(list(args))
    return code, stdout.getvalue()


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, data_root: Path, scripted_judge, pairwise_judges
) -> Path:
    """Orion against EEVE (LogicKor's published default-strategy generations, all 42
    questions), judged by the length-preferring scripted judge."""
    generated = data_root / "logickor" / "generated"
    if not (generated / EEVE).is_dir():
        pytest.fail(f"{generated}: LogicKor's published generations are missing")
    tmp = tmp_path_factory.mktemp("pairwise-published")
    with scripted_judge(respond=pairwise_judges.prefers_longer) as server:
        code, printed = pairwise_judges.run(
            generated / EEVE / "default.jsonl",
            generated / ORION / "default.jsonl",
            tmp / "out",
            server,
            tmp / "c.sqlite",
        )
        assert code == 0, printed
        assert server.requests == 42 * 2 * 2
    assert "Position consistency of the judge: 100.0%" in printed
    return tmp / "out"


def test_published_generations_give_tables_intervals_and_consistency(published: Path) -> None:
    code, text = _cli("compare", str(published), "--resamples", "1000")
    assert code == 0
    assert f"## Pairwise: other models vs {EEVE} · default · judge scripted-pairwise" in text
    assert "Position consistency of the judge: 100.0%" in text
    for category in ("추론(Reasoning)", "수학(Math)", "글쓰기(Writing)", "코딩(Coding)"):
        assert f"| {ORION} | {category} |" in text
    overall = next(line for line in text.splitlines() if f"| {ORION} | **overall** |" in line)
    cells = [c.strip() for c in overall.split("|")[1:-1]]
    wins, ties, losses = map(int, cells[2:5])
    assert wins + ties + losses == 84
    rate = float(cells[5].rstrip("%"))
    low, high = (float(x) for x in cells[6].strip("[]").split(","))
    assert low <= rate <= high and high - low < 40
    assert "Bradley-Terry scores" in text and "LC win rate" in text


def test_the_json_and_the_gate(published: Path) -> None:
    code, text = _cli("compare", str(published), "--format", "json", "--min-win-rate", "0.05")
    assert code == 0
    data = json.loads(text)
    (table,) = data["pairwise"]
    assert table["base"] == EEVE and table["consistency"] == 1.0
    overall = next(r for r in table["rows"] if r["category"] == "overall")
    assert overall["interval"]["low"] <= overall["rate"] <= overall["interval"]["high"]
    assert data["pairwise_gate"]["passed"] is True
    # Orion's answers are shorter and this judge rewards length: far below an even rate.
    code, text = _cli("compare", str(published), "--format", "json", "--min-win-rate", "0.5")
    assert code == 1
    failures = json.loads(text)["pairwise_gate"]["failures"]
    assert len(failures) == 1 and failures[0].startswith(f"{ORION} vs {EEVE}")


def test_the_html_report_shows_bars_and_both_orders(published: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    code, _ = _cli(
        "compare", str(published), "--format", "html", "--output", str(page), "--samples", "3"
    )
    assert code == 0
    html = page.read_text("utf-8")
    assert 'id="pairwise"' in html and 'id="pairwise-samples"' in html
    assert html.count("data:image/svg+xml;base64,") == 1  # the win/tie/loss bars
    assert "A = base, B = other · verdict" in html and "A = other, B = base · verdict" in html
    assert "Position consistency of the judge: <strong>100.0%</strong>" in html


def test_answers_are_escaped_in_the_html(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    questions = [
        json.loads(line)
        for line in (data_root / "logickor" / "questions.jsonl").read_text("utf-8").splitlines()
    ][:2]
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    for name, outputs in (("org/base", ["짧은 답", "짧은 답"]), ("org/fused", [evil, evil])):
        path = tmp_path / name / "default.jsonl"
        path.parent.mkdir(parents=True)
        rows = [{**q, "outputs": outputs} for q in questions]
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    with scripted_judge(respond=pairwise_judges.prefers_longer) as server:
        code, _ = pairwise_judges.run(
            tmp_path / "org/base",
            tmp_path / "org/fused",
            tmp_path / "out",
            server,
            tmp_path / "c.sqlite",
        )
        assert code == 0
    page = tmp_path / "page.html"
    assert _cli("report", str(tmp_path / "out"), "--format", "html", "--output", str(page))[0] == 0
    html = page.read_text("utf-8")
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
