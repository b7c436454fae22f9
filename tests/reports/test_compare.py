"""compare on real run directories: values, paired statistics, refusals, the model card."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest

from reports import compare, render, rundir
from reports.errors import ReportError
from reports.load import load_runs

from .conftest import LIMIT


def _samples(run: Path, shots: int, task: str) -> dict[int, dict]:
    lines = rundir.samples_path(run, shots, task).read_text().splitlines()
    return {r["doc_id"]: r for r in map(json.loads, lines)}


def _loop_bootstrap(base: list[float], other: list[float], resamples: int = 4000) -> tuple:
    """A plain-Python paired percentile bootstrap of the mean difference (another RNG)."""
    rng = random.Random(12345)
    n = len(base)
    diffs = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(sum(other[i] - base[i] for i in idx) / n)
    diffs.sort()
    return diffs[int(0.025 * resamples)], diffs[int(0.975 * resamples) - 1]


@pytest.fixture(scope="module")
def comparison(runs: dict[str, Path]) -> compare.Comparison:
    (result,) = compare.compare(load_runs([runs["base"], runs["fused"]]))
    return result


def test_values_counts_and_mcnemar_from_the_samples(runs, comparison) -> None:
    rows = {(r.task, r.setting, r.metric): r for r in comparison.rows}
    assert len(rows) == (2 + 2 + 1) * 2  # boolq acc+f1, korunsmile f1+acc, nsmc acc; 2 shots
    for (task, shots, metric), row in rows.items():
        base = rundir.read_results(runs["base"], shots)["results"][task][f"{metric},none"]
        other = rundir.read_results(runs["fused"], shots)["results"][task][f"{metric},none"]
        assert (row.base, row.other, row.diff) == (base, other, other - base)
        assert row.n == LIMIT and row.bootstrap is not None
        assert row.primary == (metric == ("f1" if task == "korunsmile" else "acc"))
        if metric != "acc":
            assert row.mcnemar is None  # macro-F1 is no proportion of documents
            continue
        a, b = _samples(runs["base"], shots, task), _samples(runs["fused"], shots, task)
        base_only = sum(a[d]["acc"] == 1 and b[d]["acc"] == 0 for d in a)
        other_only = sum(a[d]["acc"] == 0 and b[d]["acc"] == 1 for d in a)
        assert (row.mcnemar.base_only, row.mcnemar.other_only) == (base_only, other_only)
        k, n = min(base_only, other_only), base_only + other_only
        p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
        assert row.mcnemar.p_value == pytest.approx(p)


def test_intervals_agree_with_an_independent_bootstrap(runs, comparison) -> None:
    moved = [r for r in comparison.rows if r.metric == "acc" and r.diff != 0]
    assert moved, "the fused copy should change some accuracy (else this test proves little)"
    for row in moved:
        a = _samples(runs["base"], row.setting, row.task)
        b = _samples(runs["fused"], row.setting, row.task)
        low, high = _loop_bootstrap([a[d]["acc"] for d in a], [b[d]["acc"] for d in a])
        step = 1 / LIMIT  # resample means move in steps of 1/n
        assert row.bootstrap.diff.low == pytest.approx(low, abs=step + 1e-9)
        assert row.bootstrap.diff.high == pytest.approx(high, abs=step + 1e-9)
        assert row.bootstrap.diff.low <= row.diff <= row.bootstrap.diff.high


def test_model_card_table(runs, comparison) -> None:
    card = compare.model_card([comparison])
    md = render.comparisons_md([comparison], card, [])
    assert "| Dataset | Base (0 shot) | Fuse (0 shot) | Base (2 shot) | Fuse (2 shot) |" in md
    card_md = md.split("## Model card", 1)[1]
    line = next(x for x in card_md.splitlines() if x.startswith("| korunsmile | "))
    f1 = [
        rundir.read_results(runs[r], s)["results"]["korunsmile"]["f1,none"]
        for s in (0, 2)
        for r in ("base", "fused")
    ]
    assert line == "| korunsmile | " + " | ".join(f"{v:.4f}" for v in f1) + " |"


def _copy(run: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(run, target)
    return target


def _edit_manifest(run: Path, edit) -> None:
    path = run / rundir.MANIFEST
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_refuses_different_versions_shots_and_limits(runs, tmp_path: Path) -> None:
    versioned = _copy(runs["fused"], tmp_path, "versioned")
    _edit_manifest(versioned, lambda m: m["tasks"][1].update(version="1.1"))  # nsmc
    shots = _copy(runs["fused"], tmp_path, "shots")
    shutil.rmtree(shots / "2-shot")
    limited = _copy(runs["fused"], tmp_path, "limited")
    _edit_manifest(limited, lambda m: m.update(limit=10))
    for other, message in (
        (versioned, "nsmc version 1.0 vs 1.1"),
        (shots, "kobest_boolq shots 0,2 vs 0"),
        (limited, "limit 20 vs 10"),
    ):
        loaded = load_runs([runs["base"], other])
        with pytest.raises(ReportError, match=message):
            compare.compare(loaded)
        forced = compare.compare(loaded, force=True, resamples=200)[0]
        assert any(message in note for note in forced.notes)
    forced = compare.compare(load_runs([runs["base"], shots]), force=True, resamples=200)[0]
    assert {r.setting for r in forced.rows} == {0}  # compares the shots both have


def test_refuses_different_documents_under_one_doc_id(runs, tmp_path: Path) -> None:
    other = _copy(runs["fused"], tmp_path, "other-docs")
    path = rundir.samples_path(other, 0, "nsmc")
    records = [json.loads(x) for x in path.read_text().splitlines()]
    records[3]["doc_hash"] = "0" * 64
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    loaded = load_runs([runs["base"], other])
    with pytest.raises(ReportError, match=r"nsmc 0-shot acc: 1 doc_id\(s\) hold different "):
        compare.compare(loaded)
    forced = compare.compare(loaded, force=True, resamples=200)[0]
    row = next(r for r in forced.rows if (r.task, r.setting, r.metric) == ("nsmc", 0, "acc"))
    assert row.n == LIMIT - 1


def test_gate(runs) -> None:
    comparisons = compare.compare(load_runs([runs["fused"], runs["base"]]), resamples=200)
    drops = {(r.task, r.setting): r.base - r.other for r in comparisons[0].rows if r.primary}
    worst = max(drops.values())
    assert worst > 0, "one direction of the comparison must show a drop"
    assert compare.gate(comparisons, worst, None) == []  # not more than the threshold
    failures = compare.gate(comparisons, worst / 2, None)
    assert {(f.task, f.setting) for f in failures} == {k for k, d in drops.items() if d > worst / 2}
    assert compare.gate(comparisons, None, None) == []
    relative = compare.gate(comparisons, None, 0.0)
    assert {(f.task, f.setting) for f in relative} == {k for k, d in drops.items() if d > 0}


def test_logickor_models_compare(logickor_dir: Path) -> None:
    base = logickor_dir / "yanolja" / "EEVE-Korean-Instruct-10.8B-v1.0"
    other = logickor_dir / "yanolja" / "Bookworm-10.7B-v0.4-DPO"
    (c,) = compare.compare(load_runs([base, other]), resamples=2000)
    assert len(c.rows) == 3 * 9 and all(r.bootstrap and r.mcnemar is None for r in c.rows)
    overall = {r.setting: r for r in c.rows if r.primary}
    assert set(overall) == {"default", "1-shot", "cot-1-shot"}
    assert all(r.metric == "overall" and r.n == 42 for r in overall.values())
    category = next(r for r in c.rows if r.metric == "수학(Math)" and r.setting == "default")
    assert category.n == 7
    # The overall difference is the mean over questions of the per-question differences.
    rows = {}
    for name, path in (("a", base), ("b", other)):
        rows[name] = {
            r["id"]: r
            for r in map(
                json.loads, (path / "default.jsonl").read_text(encoding="utf-8-sig").splitlines()
            )
        }
    per_q = [
        (
            (
                rows["b"][i]["query_single"]["judge_score"]
                + rows["b"][i]["query_multi"]["judge_score"]
            )
            - (
                rows["a"][i]["query_single"]["judge_score"]
                + rows["a"][i]["query_multi"]["judge_score"]
            )
        )
        / 2
        for i in rows["a"]
    ]
    assert overall["default"].diff == pytest.approx(sum(per_q) / 42)


def test_three_runs(runs, tmp_path: Path) -> None:
    third = _copy(runs["fused"], tmp_path, "fused-again")
    comparisons = compare.compare(load_runs([runs["base"], runs["fused"], third]), resamples=200)
    assert [c.other.label for c in comparisons] == ["fused", "fused-again"]
    card = compare.model_card(comparisons)
    assert card.columns[:3] == ["Base (0 shot)", "fused (0 shot)", "fused-again (0 shot)"]
