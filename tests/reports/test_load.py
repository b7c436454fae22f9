"""Loading: run directories, lm-eval's own CLI output, shot folders, and bad or foreign files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from reports import rundir
from reports.errors import ReportError
from reports.load import load, load_runs

from .conftest import LIMIT


def test_run_directory_scores_are_the_results_json(runs: dict[str, Path]) -> None:
    loaded = load([runs["base"]])
    (info,) = loaded.runs
    assert info.label == "base" and info.model == "tiny-llama" and info.limit == LIMIT
    assert info.versions == {"kobest_boolq": "1.0", "nsmc": "1.0", "korunsmile": "1.0"}
    assert info.settings == {t: {0, 2} for t in ("kobest_boolq", "nsmc", "korunsmile")}
    scores = loaded.scores
    for shots in (0, 2):
        results = rundir.read_results(runs["base"], shots)["results"]
        for task, entry in results.items():
            for key, value in entry.items():
                metric, _, filt = key.partition(",")
                if filt != "none" or metric.endswith("_stderr") or isinstance(value, str):
                    continue
                row = scores[
                    (scores.task == task)
                    & (scores.metric == metric)
                    & (scores.num_fewshot == shots)
                ]
                assert len(row) == 1 and row.value.iloc[0] == value
                assert row.n.iloc[0] == LIMIT
                stderr = entry.get(f"{metric}_stderr,none")
                if isinstance(stderr, float):
                    assert row.stderr.iloc[0] == stderr
                else:
                    assert math.isnan(row.stderr.iloc[0])  # lm-eval writes "N/A" for F1


def test_run_directory_samples(runs: dict[str, Path]) -> None:
    samples = load([runs["base"]]).samples
    acc = samples[(samples.task == "nsmc") & (samples.metric == "acc") & (samples.num_fewshot == 0)]
    records = [
        json.loads(line)
        for line in rundir.samples_path(runs["base"], 0, "nsmc").read_text().splitlines()
    ]
    assert list(acc.doc_id) == [r["doc_id"] for r in records]
    assert list(acc.value) == [r["acc"] for r in records]
    assert list(acc.doc_hash) == [r["doc_hash"] for r in records]
    f1 = samples[(samples.task == "korunsmile") & (samples.metric == "f1")]
    assert len(f1) == 2 * LIMIT and f1.value.isna().all()
    assert f1.gold.notna().all() and f1.pred.notna().all()


def test_lm_eval_cli_output(lmeval_cli_output: Path) -> None:
    """results_<date>.json with samples_<task>_<date>.jsonl, as lm-eval's CLI writes them."""
    (results_file,) = lmeval_cli_output.rglob("results_*.json")
    loaded = load([lmeval_cli_output])
    (info,) = loaded.runs
    assert info.source == "lm-eval output" and info.model == "tiny-gpt2"
    assert info.settings == {"nsmc": {0}, "korunsmile": {0}} and info.limit == 8
    results = json.loads(results_file.read_text())["results"]
    scores = loaded.scores.set_index(["task", "metric"])["value"]
    assert scores[("nsmc", "acc")] == results["nsmc"]["acc,none"]
    assert scores[("korunsmile", "f1")] == results["korunsmile"]["f1,none"]
    samples = loaded.samples
    assert len(samples[(samples.task == "nsmc") & (samples.metric == "acc")]) == 8
    assert load([results_file]).scores.equals(loaded.scores)  # the file itself works too


def test_a_shot_folder_alone_loads(runs: dict[str, Path]) -> None:
    loaded = load([runs["base"] / "2-shot"])
    assert loaded.runs[0].label == "base"
    assert set(loaded.scores.num_fewshot) == {2} and not loaded.samples.empty


def test_a_folder_of_runs_and_duplicates(runs: dict[str, Path], tmp_path: Path) -> None:
    loaded = load([runs["base"].parent, runs["base"]])  # the folder holds base and fused
    assert sorted(r.label for r in loaded.runs) == ["base", "fused"]


def test_foreign_and_missing_paths(tmp_path: Path, runs: dict[str, Path]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ReportError, match="notes.txt: not a run directory, lm-eval results"):
        load([tmp_path / "notes.txt"])
    with pytest.raises(ReportError, match="no such file or directory"):
        load([tmp_path / "nope"])
    with pytest.raises(ReportError, match="no run directory, lm-eval results or LogicKor"):
        load([tmp_path])
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ReportError, match=r"config.json: not an lm-eval results file"):
        load([tmp_path / "config.json"])
    (tmp_path / "samples_nsmc_2024.jsonl").write_text("{}\n")
    with pytest.raises(ReportError, match="an lm-eval samples file"):
        load([tmp_path / "samples_nsmc_2024.jsonl"])
    (tmp_path / "lm-eval").mkdir()
    shutil.move(tmp_path / "samples_nsmc_2024.jsonl", tmp_path / "lm-eval")
    with pytest.raises(ReportError, match="samples file without its results_<date>.json"):
        load([tmp_path / "lm-eval"])
    # --skip-bad: the good run loads, the bad inputs are listed.
    loaded = load([tmp_path / "config.json", runs["base"]], skip_bad=True)
    assert [r.label for r in loaded.runs] == ["base"]
    assert loaded.skipped == [
        f"{tmp_path / 'config.json'}: not an lm-eval results file (no 'results' object)"
    ]


def test_broken_run_directory_files(runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["base"], run)
    samples = rundir.samples_path(run, 2, "nsmc")
    samples.write_text(samples.read_text() + "garbage\n")
    with pytest.raises(ReportError, match=rf"{samples}: line {LIMIT + 1}: not JSON"):
        load([run])
    loaded = load([run], skip_bad=True)  # scores stay, that file's samples are left out
    assert len(loaded.skipped) == 1
    assert not loaded.scores[
        (loaded.scores.task == "nsmc") & (loaded.scores.num_fewshot == 2)
    ].empty
    s = loaded.samples
    assert s[(s.task == "nsmc") & (s.num_fewshot == 2)].empty
    manifest = run / rundir.MANIFEST
    manifest.write_text(manifest.read_text().replace('"fusebench.run/1"', '"other/9"'))
    with pytest.raises(ReportError, match="format 'other/9', expected 'fusebench.run/1'"):
        load([run])


def test_load_runs_wants_one_run_per_path(runs: dict[str, Path], logickor_dir: Path) -> None:
    loaded = load_runs([runs["base"], runs["fused"]])
    assert [r.label for r in loaded.runs] == ["base", "fused"]
    with pytest.raises(ReportError, match="holds 14 runs"):
        load_runs([runs["base"], logickor_dir])
    with pytest.raises(ReportError, match="given twice"):
        load_runs([runs["base"], runs["base"]])
