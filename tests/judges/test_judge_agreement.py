"""Several judges on the same answers: ``fusebench report`` shows their agreement.

Two scripted judges score the same LogicKor answers (``fusebench judge`` twice, another
``--judge-model`` each time): one gives the score planted in the answer, the other the same
score on half the questions and its reverse on the rest. Two pairwise judges (a consistent
one and one that always prefers position A) judge the same pair.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from scipy.stats import kendalltau, spearmanr

from harness.cli import main

_PLANTED = re.compile(r"\*\*Model's Response\*\*\n점수표 (\d+)")


def _score_judge(reverse_odd: bool):
    def respond(messages: list[dict]) -> str:
        user = messages[-1]["content"]
        value = int(_PLANTED.findall(user)[-1])
        if reverse_odd and value % 2:
            value = 10 - value
        return f"평가: 채점했다.\n점수: {value}"

    return respond


def _cli(*args: str) -> str:
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(list(args)) == 0
    return stdout.getvalue()


def _questions(data_root: Path, n: int) -> list[dict]:
    path = data_root / "logickor" / "questions.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()][:n]


def test_two_judges_scores_are_correlated_and_averaged(
    tmp_path: Path, data_root: Path, scripted_judge
) -> None:
    rows = [
        {**q, "outputs": [f"점수표 {i % 11}", f"점수표 {(3 * i) % 11}"]}
        for i, q in enumerate(_questions(data_root, 20))
    ]
    target = tmp_path / "in" / "org" / "model" / "default.jsonl"
    target.parent.mkdir(parents=True)
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    for name, reverse in (("judge-one", False), ("judge-two", True)):
        with scripted_judge(respond=_score_judge(reverse)) as server:
            _cli(
                "judge", str(tmp_path / "in"), "--output", str(tmp_path / name),
                "--base-url", server.base_url, "--judge-model", name,
                "--cache", str(tmp_path / "c.sqlite"), "--quiet",
            )  # fmt: skip
    text = _cli("report", str(tmp_path / "judge-one"), str(tmp_path / "judge-two"))
    one = [float(r["outputs"][t].split()[1]) for r in rows for t in (0, 1)]
    two = [10 - v if v % 2 else v for v in one]
    line = next(x for x in text.splitlines() if x.startswith("| default | judge-one | judge-two"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert int(cells[3]) == 40
    assert float(cells[4]) == pytest.approx(spearmanr(one, two).statistic, abs=1e-3)
    assert float(cells[5]) == pytest.approx(kendalltau(one, two).statistic, abs=1e-3)
    mean_one, mean_two = sum(one) / 40, sum(two) / 40
    assert cells[6:9] == [f"{mean_one:.2f}", f"{mean_two:.2f}", f"{(mean_one + mean_two) / 2:.2f}"]
    # Both judged copies are on the leaderboard, one row each.
    assert text.count("| org/model") >= 2


def test_two_pairwise_judges_get_a_kappa(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    questions = _questions(data_root, 12)
    outcomes = ["win", "tie", "loss", "bigwin"]
    for name, outputs in (
        ("org/base", lambda i: ["기본", "기본"]),
        ("org/fused", lambda i: [f"S:{outcomes[i % 4]}", f"M:{outcomes[(i + 1) % 4]}"]),
    ):
        path = tmp_path / name / "default.jsonl"
        path.parent.mkdir(parents=True)
        rows = [{**q, "outputs": outputs(i)} for i, q in enumerate(questions)]
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    for name, respond in (
        ("consistent", pairwise_judges.planted),
        ("a-first", pairwise_judges.prefers_a),
    ):
        with scripted_judge(respond=respond) as server:
            _cli(
                "judge", str(tmp_path / "org/base"), "--pairwise", str(tmp_path / "org/fused"),
                "--output", str(tmp_path / name), "--base-url", server.base_url,
                "--judge-model", name, "--cache", str(tmp_path / "c.sqlite"), "--quiet",
            )  # fmt: skip
    text = _cli("report", str(tmp_path / "consistent"), str(tmp_path / "a-first"))
    line = next(x for x in text.splitlines() if x.startswith("| default | a-first | consistent"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    # The position-biased judge calls every judgment a tie: no agreement beyond chance.
    assert cells[3:5] == ["24", "0.000"]
    assert cells[5] == "50.0%"  # all ties
    # The consistent judge follows the planted cycle: 12 wins, 6 ties, 6 losses of 24.
    assert cells[6] == f"{100 * (12 + 6 * 0.5) / 24:.1f}%"
    page = tmp_path / "page.html"
    _cli("report", str(tmp_path / "consistent"), str(tmp_path / "a-first"), "--format", "html",
         "--output", str(page))  # fmt: skip
    html = page.read_text("utf-8")
    assert 'id="agreement"' in html and '<td class="num">0.000</td>' in html
