"""The lm-eval leaderboard: primary metric per task, the average, missing cells, order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reports import leaderboard, render, rundir
from reports.load import load


def test_cells_are_each_tasks_primary_metric(runs: dict[str, Path]) -> None:
    boards = leaderboard.build(load([runs["base"], runs["fused"]]).scores)
    (board,) = boards
    assert board.columns == ["kobest_boolq", "korunsmile", "nsmc", "average"]
    assert board.metrics == {"kobest_boolq": "acc", "korunsmile": "f1", "nsmc": "acc"}
    rows = json.loads(render.boards_json(boards))["rows"]
    assert len(rows) == 4  # two models x two shot counts
    for row in rows:
        results = rundir.read_results(
            runs[row["model"] == "tiny-llama" and "base" or "fused"], row["num_fewshot"]
        )["results"]
        want = {
            "kobest_boolq": results["kobest_boolq"]["acc,none"],
            "korunsmile": results["korunsmile"]["f1,none"],  # macro-F1, not accuracy
            "nsmc": results["nsmc"]["acc,none"],
        }
        for task, value in want.items():
            assert row["scores"][task] == round(value, 4)
        assert row["scores"]["average"] == round(sum(want.values()) / 3, 4)
    averages = [row["scores"]["average"] for row in rows]
    assert averages == sorted(averages, reverse=True)


def test_missing_cells_are_shown_as_missing(runs: dict[str, Path], tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(runs["fused"], partial)
    results_file = partial / "0-shot" / rundir.RESULTS
    results = json.loads(results_file.read_text())
    del results["results"]["nsmc"]
    results_file.write_text(json.dumps(results))
    boards = leaderboard.build(load([runs["base"], partial]).scores)
    md = render.boards_md(boards, "round")
    row = next(line for line in md.splitlines() if line.startswith("| tiny-llama-fused | 0 |"))
    assert row.endswith("| — | — |")  # nsmc missing, so no average either
    assert md.splitlines()[-3].startswith("| tiny-llama-fused | 0 |")  # sorted last
    rows = json.loads(render.boards_json(boards))["rows"]
    last = rows[-1]
    assert last["scores"]["nsmc"] is None and last["scores"]["average"] is None
    csv_row = render.boards_csv(boards).splitlines()[-1]
    assert csv_row.startswith("tiny-llama-fused,0,,") and csv_row.endswith(",,")


def test_same_model_in_two_runs_is_told_apart(runs: dict[str, Path], tmp_path: Path) -> None:
    again = tmp_path / "base-again"
    shutil.copytree(runs["base"], again)
    rows = json.loads(render.boards_json(leaderboard.build(load([runs["base"], again]).scores)))
    assert {r["model"] for r in rows["rows"]} == {"tiny-llama [base]", "tiny-llama [base-again]"}
