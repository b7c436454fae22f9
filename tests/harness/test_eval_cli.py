"""``fusebench eval`` end to end: run directory contents, resume, refusal, overwrite, Ctrl-C."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import evaluate
from harness.cli import main
from reports import rundir

TASKS = "kobest_boolq,nsmc"


def _eval(model: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "eval",
            str(model),
            "--tasks",
            TASKS,
            "--num-fewshot",
            "0,2",
            "--limit",
            "6",
            "--batch-size",
            "4",
            "--output",
            str(out),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def finished_run(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "base"
    assert _eval(zoo / "tiny-qwen2", out) == 0
    return out


def test_run_directory_is_complete(finished_run: Path, zoo: Path) -> None:
    manifest = rundir.read_manifest(finished_run)
    assert manifest.status == "complete" and manifest.finished_at
    assert manifest.model.local and len(manifest.model.sha256) == 64
    assert manifest.model.name_or_path == str((zoo / "tiny-qwen2").resolve())
    assert [t.name for t in manifest.tasks] == ["kobest_boolq", "nsmc"]
    assert {t.name: t.version for t in manifest.tasks} == {"kobest_boolq": "1.0", "nsmc": "1.0"}
    assert manifest.num_fewshot == [0, 2] and manifest.limit == 6
    assert manifest.seeds["fewshot"] == 1234
    assert manifest.backend.name == "hf" and manifest.backend.args["batch_size"] == 4
    assert len(manifest.completed) == 4
    for shots in (0, 2):
        results = rundir.read_results(finished_run, shots)
        assert set(results["results"]) == {"kobest_boolq", "nsmc"}
        assert results["n-shot"] == {"kobest_boolq": shots, "nsmc": shots}
        for task in ("kobest_boolq", "nsmc"):
            rows = rundir.samples_path(finished_run, shots, task).read_text().splitlines()
            assert len(rows) == 6
            assert {"doc_id", "doc", "arguments", "resps", "acc"} <= set(json.loads(rows[0]))


def test_rerun_with_same_settings_skips_finished_work(
    finished_run: Path, zoo: Path, capsys
) -> None:
    before = (finished_run / rundir.MANIFEST).read_text()
    stamps = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*.jsonl")}
    assert _eval(zoo / "tiny-qwen2", finished_run, "--batch-size", "2") == 0  # batch may change
    assert {p: p.stat().st_mtime_ns for p in finished_run.rglob("*.jsonl")} == stamps
    acc = rundir.read_results(finished_run, 2)["results"]["nsmc"]["acc,none"]
    printed = capsys.readouterr().out  # the closing summary table shows the stored scores
    assert any(
        [c.strip() for c in line.split("│")[1:5]] == ["nsmc", "2", "acc", f"{acc:.4f}"]
        for line in printed.splitlines()
        if "│" in line
    ), printed
    assert (
        json.loads(before)["completed"]
        == rundir.read_manifest(finished_run).model_dump(mode="json")["completed"]
    )


def test_different_settings_are_refused(finished_run: Path, zoo: Path, capsys) -> None:
    assert _eval(zoo / "tiny-qwen2", finished_run, "--seed", "7") == 2
    assert "different settings (seeds)" in capsys.readouterr().err
    assert _eval(zoo / "tiny-llama", finished_run) == 2  # another model
    assert "different settings (model" in capsys.readouterr().err


def test_overwrite_replaces(zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        main(
            [
                "eval",
                str(zoo / "tiny-gpt2"),
                "--tasks",
                "nsmc",
                "--limit",
                "3",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "eval",
                str(zoo / "tiny-gpt2"),
                "--tasks",
                "nsmc",
                "--limit",
                "4",
                "--output",
                str(out),
                "--overwrite",
            ]
        )
        == 0
    )
    assert rundir.read_manifest(out).limit == 4
    assert len(rundir.samples_path(out, 0, "nsmc").read_text().splitlines()) == 4


def test_interrupted_run_resumes_without_redoing_work(
    zoo: Path, tmp_path: Path, finished_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = evaluate._evaluate_one
    calls: list[tuple[str, int]] = []

    def interrupt_on_third(lm, task, shots, *args):
        calls.append((task, shots))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(lm, task, shots, *args)

    monkeypatch.setattr(evaluate, "_evaluate_one", interrupt_on_third)
    out = tmp_path / "run"
    assert _eval(zoo / "tiny-qwen2", out) == 130
    manifest = rundir.read_manifest(out)
    assert manifest.status == "interrupted" and len(manifest.completed) == 2
    calls.clear()
    monkeypatch.setattr(evaluate, "_evaluate_one", lambda *a: (calls.append(a[1:3]), real(*a))[1])
    assert _eval(zoo / "tiny-qwen2", out) == 0
    assert calls == [("kobest_boolq", 2), ("nsmc", 2)]  # only what was missing
    # The resumed run holds exactly what an uninterrupted run holds.
    for shots in (0, 2):
        for task in ("kobest_boolq", "nsmc"):
            got = rundir.samples_path(out, shots, task).read_text()
            assert got == rundir.samples_path(finished_run, shots, task).read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/model"], "/no/such/model: model path does not exist"),
        pytest.param(  # suggests from lm-eval's registry too: indexes it (~15 s)
            ["{zoo}/tiny-llama", "--tasks", "kobest_bolq"],
            "unknown task 'kobest_bolq'. Did you mean",
            marks=pytest.mark.slow,
        ),
        (["{tmp}"], "no config.json"),
        (["{zoo}/tiny-llama", "--num-fewshot", "x"], "--num-fewshot 'x'"),
        (["{zoo}/tiny-llama", "--output", "{tmp}/other"], "not empty and not a fusebench run"),
    ],
)
def test_user_errors_are_one_line(args, message, zoo: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    argv = [a.format(zoo=zoo, tmp=tmp_path) for a in args]
    fusebench = str(Path(sys.executable).parent / "fusebench")  # the installed console script
    done = subprocess.run(
        [fusebench, "eval", *argv, "--limit", "2"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_model_without_tokenizer(tmp_path: Path, zoo: Path) -> None:
    import shutil

    model = tmp_path / "m"
    shutil.copytree(zoo / "tiny-gpt2", model)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json"):
        (model / name).unlink(missing_ok=True)
    assert main(["eval", str(model), "--output", str(tmp_path / "r")]) == 2


def test_version(capsys) -> None:
    from harness import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fusebench {__version__}"


def test_corrupt_manifest_is_named(zoo: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / rundir.MANIFEST).write_text("{not json")
    assert _eval(zoo / "tiny-gpt2", out) == 2
    assert f"{out / rundir.MANIFEST}: not JSON (line 1" in capsys.readouterr().err


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_hides_every_progress_bar(quiet: bool, zoo: Path, tmp_path: Path) -> None:
    """``--quiet`` silences lm-eval's and the scorer's tqdm bars; without it they are shown."""
    fusebench = str(Path(sys.executable).parent / "fusebench")
    argv = [fusebench, "eval", str(zoo / "tiny-gpt2"), "--tasks", "nsmc", "--limit", "3"]
    argv += ["--output", str(tmp_path / "run"), *(["--quiet"] if quiet else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    bars = [line for line in done.stderr.replace("\r", "\n").splitlines() if "%|" in line]
    assert (not bars) if quiet else bars, done.stderr


def test_label_names_the_run_and_its_model_in_reports(zoo: Path, tmp_path: Path) -> None:
    """``--label``: recorded in the manifest, and the reports' run label and model name
    instead of the model folder's name (a trained model's folder is just ``final``); a run
    without one, as every run made before labels existed, keeps today's names."""
    import shutil

    from reports import leaderboard, render
    from reports.load import load, load_runs

    final = tmp_path / "train" / "final"
    shutil.copytree(zoo / "tiny-gpt2", final)
    labelled, plain = tmp_path / "runs" / "labelled", tmp_path / "runs" / "plain"
    argv = ["eval", str(final), "--tasks", "nsmc", "--limit", "3", "--quiet"]
    assert main([*argv, "--label", "fused", "--output", str(labelled)]) == 0
    assert main([*argv, "--output", str(plain)]) == 0
    assert rundir.read_manifest(labelled).label == "fused"
    assert rundir.read_manifest(plain).label is None

    loaded = load_runs([labelled, plain])
    assert [r.label for r in loaded.runs] == ["fused", "plain"]
    assert [r.model for r in loaded.runs] == ["fused", "final"]
    assert set(loaded.scores["model"]) == set(loaded.samples["model"]) == {"fused", "final"}
    board = render.boards_md(leaderboard.build(load([labelled]).scores, "round"), "round")
    assert "| fused | 0 |" in board and "final" not in board

    # A rerun without --label keeps the label; another --label renames (nothing is redone).
    assert main([*argv, "--output", str(labelled)]) == 0
    assert rundir.read_manifest(labelled).label == "fused"
    assert main([*argv, "--label", "renamed", "--output", str(labelled)]) == 0
    assert load([labelled]).runs[0].label == "renamed"

    # A manifest written before the field existed loads as before.
    manifest = json.loads((plain / rundir.MANIFEST).read_text())
    del manifest["label"]
    (plain / rundir.MANIFEST).write_text(json.dumps(manifest))
    assert load([plain]).runs[0].label == "plain"
