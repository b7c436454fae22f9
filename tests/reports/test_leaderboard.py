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


def _with_group(run: Path, target: Path) -> Path:
    """A copy of ``run`` whose manifest records a group over two of its tasks, as ``eval
    --tasks GROUP`` records one (kmmlu's aggregate_metric_list: acc, weighted by size)."""
    shutil.copytree(run, target)
    manifest = rundir.read_manifest(target)
    manifest.groups = [
        rundir.GroupEntry(
            name="mini",
            tasks=["kobest_boolq", "nsmc"],
            aggregate_metric_list=[
                {"metric": "acc", "aggregation": "mean", "weight_by_size": True}
            ],
        )
    ]
    rundir.write_manifest(target, manifest)
    return target


def test_a_groups_aggregate_is_a_column_left_out_of_the_average(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    from reports import groups
    from tests.reports.test_cli import cli

    grouped = _with_group(runs["base"], tmp_path / "grouped")
    done = cli("report", str(grouped), "--format", "json")
    assert done.returncode == 0, done.stderr
    with_group = json.loads(done.stdout)["rows"]
    without = json.loads(render.boards_json(leaderboard.build(load([runs["base"]]).scores)))
    manifest = rundir.read_manifest(grouped)
    for row, plain in zip(with_group, without["rows"], strict=True):
        results = rundir.read_results(grouped, row["num_fewshot"])
        want = groups.aggregate(manifest.groups[0], results)["acc,none"]
        assert row["scores"]["mini"] == round(want, 4)
        assert row["scores"]["average"] == plain["scores"]["average"]  # tasks counted once
        assert list(row["scores"]) == [*plain["scores"]][:-1] + ["mini", "average"]
    md = render.boards_md(leaderboard.build(load([grouped]).scores), "round")
    assert "| mini |" in md


def test_compare_shows_a_groups_aggregate(runs: dict[str, Path], tmp_path: Path) -> None:
    from reports import compare, groups
    from reports.load import load_runs

    base = _with_group(runs["base"], tmp_path / "base")
    fused = _with_group(runs["fused"], tmp_path / "fused")
    loaded = load_runs([base, fused])
    (comparison,) = compare.compare(loaded)
    rows = [r for r in comparison.rows if r.task == "mini" and r.metric == "acc"]
    assert {r.setting for r in rows} == {0, 2}
    group = rundir.read_manifest(base).groups[0]
    for r in rows:
        assert r.primary
        assert r.base == groups.aggregate(group, rundir.read_results(base, r.setting))["acc,none"]
        assert r.other == groups.aggregate(group, rundir.read_results(fused, r.setting))["acc,none"]
