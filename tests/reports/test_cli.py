"""``fusebench report`` and ``fusebench compare`` as a user runs them: output, exit codes,
and one clear line (never a traceback) on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from reports import rundir

REPO = Path(__file__).resolve().parents[2]

HEADER = (
    "| Model | Strategy | 추론 | 수학 | 글쓰기 | 코딩 | 이해 | 문법 | 싱글턴 | 멀티턴 | Overall |"
)


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``fusebench`` from this checkout in a subprocess: exit code, stdout and stderr as a user
    sees them (the installed console script could import another checkout)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The single line a user error prints (and no traceback)."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_report_logickor_markdown(logickor_dir: Path) -> None:
    done = cli("report", str(logickor_dir), "--format", "md")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "## LogicKor" and lines[2] == HEADER
    assert lines[4].startswith("| openai/gpt-4-1106-preview | default | ")
    compliance = lines.index("### Korean-language compliance")
    assert sum(line.startswith("| ") for line in lines[:compliance]) == 2 + 42
    # Beside it, each model and strategy's share of non-Korean answers.
    assert sum(line.startswith("| ") for line in lines[compliance:]) == 2 + 42


def test_report_json_truncated_to_a_file(logickor_dir: Path, runs, tmp_path: Path) -> None:
    out = tmp_path / "board.json"
    done = cli(
        "report",
        str(logickor_dir),
        str(runs["base"]),
        "--format",
        "json",
        "--rounding",
        "truncate",
        "--output",
        str(out),
    )
    assert done.returncode == 0 and done.stdout == ""
    assert f"report: {out}" in done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {"num_fewshot"} <= rows[0].keys() and rows[0]["model"] == "tiny-llama"
    assert sum("strategy" in r for r in rows) == 42 and sum("num_fewshot" in r for r in rows) == 2


def test_report_bad_file_and_skip_bad(logickor_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "org" / "model" / "default.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"id": 1, "category": "x", "questions": ["q"]}\n')
    done = cli("report", str(bad), str(logickor_dir / "google"))
    assert done.returncode == 2
    assert one_error_line(done) == (
        f"error: {bad}: line 1: not judged (no query_single); "
        "LogicKor judged files carry query_single and query_multi "
        "(--skip-bad loads the other files)"
    )
    done = cli("report", str(bad), str(logickor_dir / "google"), "--skip-bad", "--format", "csv")
    assert done.returncode == 0 and f"skipped {bad}: line 1: not judged" in done.stderr
    assert done.stdout.count("google/gemma-7b-it") == 3
    done = cli("report", str(tmp_path / "missing"))
    assert done.returncode == 2 and "missing: no such file or directory" in one_error_line(done)


def test_compare_gate_exit_codes(runs) -> None:
    base, fused = str(runs["base"]), str(runs["fused"])
    done = cli("compare", fused, base, "--format", "json", "--resamples", "500")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["comparisons"][0]["rows"]
    drops = {(r["task"], r["num_fewshot"]): r["base"] - r["other"] for r in rows if r["primary"]}
    worst = max(drops.values())
    assert worst > 0
    done = cli("compare", fused, base, "--max-drop", str(worst / 2), "--resamples", "500")
    assert done.returncode == 1, done.stderr
    failing = sorted({task for (task, _), d in drops.items() if d > worst / 2})
    assert f"FAIL: {len(failing)} task(s) dropped by more than" in done.stdout
    assert f": {', '.join(failing)}" in done.stdout
    for (task, shots), d in drops.items():
        assert (f"- base: {task} {shots}-shot " in done.stdout) == (d > worst / 2)
    done = cli("compare", fused, base, "--max-drop", str(worst + 1e-6), "--resamples", "500")
    assert done.returncode == 0 and "PASS: no primary score dropped" in done.stdout
    done = cli(
        "compare", fused, base, "--max-drop-rel", "0", "--format", "csv", "--resamples", "500"
    )
    assert done.returncode == 1 and "FAIL:" in done.stderr  # gate verdict on stderr for csv
    assert done.stdout.startswith("base_run,run,task,num_fewshot,strategy,metric,primary,")


def test_compare_refusals_are_one_line(runs, tmp_path: Path) -> None:
    other = tmp_path / "limited"
    shutil.copytree(runs["fused"], other)
    manifest = json.loads((other / rundir.MANIFEST).read_text())
    manifest["limit"] = 10
    (other / rundir.MANIFEST).write_text(json.dumps(manifest))
    done = cli("compare", str(runs["base"]), str(other), "--max-drop", "0.01")
    assert done.returncode == 2
    assert one_error_line(done) == (
        "error: base and limited do not compare: limit 20 vs 10 (--force compares what they share)"
    )
    done = cli("compare", str(runs["base"]), str(other), "--force", "--resamples", "500")
    assert done.returncode == 0 and "note: forced past: limit 20 vs 10" in done.stdout
    done = cli("compare", str(runs["base"]))
    assert done.returncode == 2 and "needs BASE and at least one other run" in one_error_line(done)
    done = cli("compare", str(runs["base"]), str(runs["fused"]), "--max-drop", "-1")
    assert done.returncode == 2 and "--max-drop must be >= 0" in one_error_line(done)


def test_compare_html_to_a_file(runs, tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    done = cli(
        "compare",
        str(runs["base"]),
        str(runs["fused"]),
        "--format",
        "html",
        "--output",
        str(out),
        "--max-drop",
        "1",
        "--resamples",
        "500",
    )
    assert done.returncode == 0 and f"comparison: {out}" in done.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "PASS: no primary score dropped" in page
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, not mkstemp's 0600


def _results_file(folder: Path, nsmc: float, version: str = "1.0") -> Path:
    """A results file as lm-eval's CLI writes it (json's NaN included), two tasks at 0 shots."""
    folder.mkdir(parents=True)
    results = {
        "results": {
            "nsmc": {"alias": "nsmc", "acc,none": nsmc, "acc_stderr,none": 0.01},
            "kobest_boolq": {"alias": "kobest_boolq", "acc,none": 0.5, "acc_stderr,none": 0.02},
        },
        "versions": {"nsmc": version, "kobest_boolq": "1.0"},
        "n-shot": {"nsmc": 0, "kobest_boolq": 0},
        "config": {"model_args": f"pretrained={folder.name}"},
    }
    path = folder / "results_2026-01-01T00-00-00.json"
    path.write_text(json.dumps(results), "utf-8")  # json writes NaN as lm-eval does
    return path


def test_a_nan_metric_shows_as_nan_with_a_warning(tmp_path: Path) -> None:
    path = _results_file(tmp_path / "nanmodel", float("nan"))
    assert "NaN" in path.read_text("utf-8")
    done = cli("report", str(path))
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| nanmodel"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # kobest_boolq 0.5000, nsmc NaN, and the average of a NaN is NaN: none reads "—".
    assert cells[2:] == ["0.5000", "NaN", "NaN"], row
    assert "NaN: evaluated, but the results record NaN." in done.stdout
    warning = " ".join(done.stderr.split())
    assert "warning nanmodel: nsmc acc (0-shot) is NaN in its results" in warning


def test_a_compare_refusal_names_the_runs_in_the_order_of_their_values(tmp_path: Path) -> None:
    base = _results_file(tmp_path / "basemodel", 0.6, version="1.0")
    other = _results_file(tmp_path / "othermodel", 0.7, version="2.0")
    done = cli("compare", str(base), str(other))
    assert done.returncode == 2
    assert one_error_line(done) == (
        "error: basemodel and othermodel do not compare: nsmc version 1.0 vs 2.0 "
        "(--force compares what they share)"
    )


def test_an_error_line_is_shown_as_written(tmp_path: Path) -> None:
    """Brackets in a message are text, not console markup (rich dropped '[x]' from paths and
    '[merge]' from 'pip install fusebench[merge]')."""
    missing = tmp_path / "runs[x]" / "base"
    done = cli("report", str(missing))
    assert done.returncode == 2
    assert one_error_line(done) == f"error: {missing}: no such file or directory"


def _strict(text: str) -> object:
    """Parse as a strict reader does (JavaScript's JSON.parse): bare NaN/Infinity refused."""

    def refuse(token: str) -> None:
        raise ValueError(f"bare {token} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_report_json_writes_a_nan_score_as_null_with_the_reason(runs, tmp_path: Path) -> None:
    run = tmp_path / "nanrun"
    shutil.copytree(runs["base"], run)
    path = run / "0-shot" / "results.json"
    results = json.loads(path.read_text("utf-8"))
    results["results"]["nsmc"]["acc,none"] = float("nan")
    path.write_text(json.dumps(results), "utf-8")  # as the run records a NaN metric
    assert "NaN" in path.read_text("utf-8")
    out = tmp_path / "board.json"
    done = cli("report", str(run), "--format", "json", "--output", str(out))
    assert done.returncode == 0, done.stderr
    for text in (out.read_text("utf-8"), cli("report", str(run), "--format", "json").stdout):
        rows = {row["num_fewshot"]: row for row in _strict(text)["rows"]}
        zero, two = rows[0], rows[2]
        assert zero["scores"]["nsmc"] is None and zero["scores"]["average"] is None
        assert zero["null_reasons"] == {
            "scores.nsmc": "NaN: evaluated, but the results record NaN (no number came out)",
            "scores.average": "NaN: the average takes in a score the results record as NaN",
        }
        assert isinstance(zero["scores"]["kobest_boolq"], float)
        assert "null_reasons" not in two and isinstance(two["scores"]["nsmc"], float)
