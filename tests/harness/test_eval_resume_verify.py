"""Resume trusts the files, not the manifest: what the manifest records as finished but is
missing, truncated or altered on disk is redone (and said so), the rest is skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from reports import rundir

TASKS = ("kobest_boolq", "nsmc")


def _eval(model: Path, out: Path) -> int:
    return main(
        [
            "eval",
            str(model),
            "--tasks",
            ",".join(TASKS),
            "--num-fewshot",
            "0,2",
            "--limit",
            "6",
            "--batch-size",
            "4",
            "--output",
            str(out),
        ]
    )


@pytest.fixture(scope="module")
def finished(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "base"
    assert _eval(zoo / "tiny-qwen2", out) == 0
    return out


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run, to break."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def _rerun(zoo: Path, run: Path, capsys: pytest.CaptureFixture) -> list[str]:
    """Rerun; the 'redo' / 'forget' lines it printed (whitespace-normalised)."""
    capsys.readouterr()
    assert _eval(zoo / "tiny-qwen2", run) == 0
    err = capsys.readouterr().err
    lines = [" ".join(line.split()) for line in err.splitlines()]
    return sorted(line for line in lines if line.startswith(("redo ", "forget ")))


def _assert_whole(run: Path, finished: Path) -> None:
    """Every task at every shot count is in results.json, with the original samples, and the
    manifest records each (task, shots) once."""
    manifest = rundir.read_manifest(run)
    assert manifest.status == "complete"
    pairs = sorted((c.task, c.num_fewshot) for c in manifest.completed)
    assert pairs == sorted((t, n) for t in TASKS for n in (0, 2))
    for shots in (0, 2):
        got, want = rundir.read_results(run, shots), rundir.read_results(finished, shots)
        assert set(got["results"]) == set(TASKS)
        assert got["results"] == want["results"]
        for task in TASKS:
            assert (
                rundir.samples_path(run, shots, task).read_bytes()
                == rundir.samples_path(finished, shots, task).read_bytes()
            )


def test_intact_run_is_skipped_whole(run: Path, zoo: Path, capsys) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*.json*") if p.name != "manifest.json"}
    assert _rerun(zoo, run, capsys) == []
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_hashes_are_recorded(finished: Path) -> None:
    for entry in rundir.read_manifest(finished).completed:
        assert entry.results_sha256 and len(entry.results_sha256) == 64
        assert entry.samples_sha256 and len(entry.samples_sha256) == 64


def test_deleted_results_json_redoes_that_shot_count(
    run: Path, finished: Path, zoo: Path, capsys
) -> None:
    (rundir.shot_dir(run, 2) / rundir.RESULTS).unlink()
    untouched = rundir.samples_path(run, 0, "nsmc").stat().st_mtime_ns
    assert _rerun(zoo, run, capsys) == [
        "redo kobest_boolq 2-shot: 2-shot/results.json is missing",
        "redo nsmc 2-shot: 2-shot/results.json is missing",
    ]
    assert rundir.samples_path(run, 0, "nsmc").stat().st_mtime_ns == untouched
    _assert_whole(run, finished)


def test_deleted_samples_file_redoes_that_task_only(
    run: Path, finished: Path, zoo: Path, capsys
) -> None:
    rundir.samples_path(run, 0, "nsmc").unlink()
    untouched = rundir.samples_path(run, 0, "kobest_boolq").stat().st_mtime_ns
    assert _rerun(zoo, run, capsys) == ["redo nsmc 0-shot: 0-shot/samples/nsmc.jsonl is missing"]
    assert rundir.samples_path(run, 0, "kobest_boolq").stat().st_mtime_ns == untouched
    _assert_whole(run, finished)  # the redone task merged into results.json beside the other


def test_truncated_results_json_is_redone(run: Path, finished: Path, zoo: Path, capsys) -> None:
    path = rundir.shot_dir(run, 0) / rundir.RESULTS
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    redone = _rerun(zoo, run, capsys)
    assert [line.split(":")[0] for line in redone] == [
        "redo kobest_boolq 0-shot",
        "redo nsmc 0-shot",
    ]
    assert all("0-shot/results.json is unreadable (not JSON" in line for line in redone)
    _assert_whole(run, finished)


def test_altered_entry_fails_its_sha256(run: Path, finished: Path, zoo: Path, capsys) -> None:
    path = rundir.shot_dir(run, 2) / rundir.RESULTS
    data = json.loads(path.read_text())
    data["results"]["nsmc"]["acc,none"] = 1.0  # a planted score: parses, holds the task
    path.write_text(json.dumps(data))
    assert _rerun(zoo, run, capsys) == [
        "redo nsmc 2-shot: nsmc's entry in 2-shot/results.json does not match its recorded sha256"
    ]
    _assert_whole(run, finished)


def test_run_without_recorded_hashes_falls_back_to_presence_and_parse(
    run: Path, finished: Path, zoo: Path, capsys
) -> None:
    """A run directory written before hashes were recorded still resumes; a samples file cut
    short is found by its row count, one that is not JSON Lines by parsing."""
    manifest = json.loads((run / rundir.MANIFEST).read_text())
    for entry in manifest["completed"]:
        del entry["results_sha256"], entry["samples_sha256"]
    (run / rundir.MANIFEST).write_text(json.dumps(manifest))
    short = rundir.samples_path(run, 2, "kobest_boolq")
    short.write_text("".join(short.read_text().splitlines(keepends=True)[:-1]))
    torn = rundir.samples_path(run, 0, "nsmc")
    torn.write_bytes(torn.read_bytes()[:-40])
    assert _rerun(zoo, run, capsys) == [
        "redo kobest_boolq 2-shot: 2-shot/samples/kobest_boolq.jsonl holds 5 rows, "
        "the manifest records 6",
        "redo nsmc 0-shot: 0-shot/samples/nsmc.jsonl is unreadable (line 6: not JSON "
        "(Unterminated string starting at))",
    ]
    _assert_whole(run, finished)
    hashed = {
        (c.task, c.num_fewshot) for c in rundir.read_manifest(run).completed if c.samples_sha256
    }
    assert hashed == {("kobest_boolq", 2), ("nsmc", 0)}  # the redone ones now carry hashes


def test_broken_entry_not_asked_for_is_forgotten_then_redone_later(
    run: Path, finished: Path, zoo: Path, capsys
) -> None:
    """A rerun that asks for fewer tasks drops a broken entry it does not redo, so the manifest
    never claims it; the next run that asks for it redoes it."""
    rundir.samples_path(run, 2, "kobest_boolq").unlink()
    capsys.readouterr()
    only_nsmc = ["--tasks", "nsmc", "--num-fewshot", "0,2", "--limit", "6", "--output", str(run)]
    assert main(["eval", str(zoo / "tiny-qwen2"), *only_nsmc]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "forget kobest_boolq 2-shot: 2-shot/samples/kobest_boolq.jsonl is missing" in said
    assert not rundir.read_manifest(run).is_done("kobest_boolq", 2)
    assert _rerun(zoo, run, capsys) == []  # nothing broken any more: it is simply pending
    _assert_whole(run, finished)
