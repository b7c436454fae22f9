"""``fusebench fuse run`` with an ``evaluate`` section: fuse, the CLM-only control, evaluation
of every model, the report under work_dir/report, the headline, the gate and LogicKor.

The end-to-end test runs the real pipeline in this process (one DeepSpeed rank, gloo) on the
tiny zoo, real lm-eval on 20 documents per task; the LogicKor leg uses the scripted
OpenAI-compatible server of tests/judges as the judge *and* as the model server (a real
``transformers serve`` of the two tiny models takes 3.5 minutes here: 2 x 84 requests).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from tests.harness.planting import plant_metric

TASKS = ["kobest_boolq", "nsmc"]
SECRET = "sk-test-judge-key-DO-NOT-LEAK"


def _config(fuse_config, tmp_path: Path, comment_rows, **evaluate: object) -> Path:
    return fuse_config(
        tmp_path,
        comment_rows(16),
        train={
            "zero_stage": 2,
            "precision": "fp32",
            "micro_batch_size": 4,
            "max_length": 256,
            "learning_rate": 1e-3,
            "max_steps": 2,
        },
        evaluate=evaluate,
    )


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rundir_limit(run: Path) -> float:
    return json.loads((run / "manifest.json").read_text())["limit"]


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ errors, before any work


@pytest.mark.parametrize(
    ("evaluate", "sources", "message"),
    [
        ({"num_fewshot": [-1]}, None, "field evaluate.num_fewshot.0: Input should be greater"),
        ({"limit": 0}, None, "field evaluate.limit: Input should be greater than 0"),
        ({"bogus": 1}, None, "field evaluate.bogus: Extra inputs are not permitted"),
        ({"backend": "tgi"}, None, "field evaluate.backend: Input should be 'hf' or 'vllm'"),
        ({"tasks": ["kobest_bolq"]}, None, "field evaluate.tasks: unknown task 'kobest_bolq'"),
        ({}, [{"name": "fused", "path": "x"}], "field sources.0.name: 'fused' is an evaluation"),
    ],
)
def test_a_bad_evaluate_field_is_one_line_naming_file_and_field(
    evaluate, sources, message, tmp_path: Path, fuse_config, comment_rows, no_judge, capsys
) -> None:
    config = _config(fuse_config, tmp_path, comment_rows, **evaluate)
    if sources:
        raw = yaml.safe_load(config.read_text())
        config.write_text(yaml.safe_dump({**raw, "sources": sources}))
    assert main(["fuse", "run", str(config), "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and f"{config}: {message}" in err[0], err
    assert not (tmp_path / "work").exists()  # refused before any stage ran


def test_half_a_judge_is_refused(
    tmp_path: Path, fuse_config, comment_rows, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("FUSEBENCH_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("FUSEBENCH_JUDGE_MODEL", raising=False)
    config = _config(fuse_config, tmp_path, comment_rows, tasks=TASKS)
    assert main(["fuse", "run", str(config), "--quiet"]) == 2
    assert "FUSEBENCH_JUDGE_MODEL is not set" in capsys.readouterr().err


def test_default_tasks_skip_what_the_catalogue_lacks(
    tmp_path: Path, fuse_config, comment_rows
) -> None:
    """The default [ko_fusellm, ko_bpb] works whether or not ko_bpb (another branch) is here."""
    from fusion.config import load_config
    from harness.fuse_eval.plan import make_plan
    from tasks import catalog

    plan = make_plan(load_config(_config(fuse_config, tmp_path, comment_rows)))
    here = set(catalog.all_tasks()) | set(catalog.all_groups())
    assert plan.tasks == [t for t in ("ko_fusellm", "ko_bpb") if t in here]
    assert plan.skipped == [t for t in ("ko_fusellm", "ko_bpb") if t not in here]
    assert plan.num_fewshot == [0, 5] and "nsmc" in plan.expanded


def test_the_control_config_survives_the_rank_launch(
    tmp_path: Path, fuse_config, comment_rows
) -> None:
    """With --nproc > 1 the control's config is written to YAML and read by every rank."""
    from fusion.config import load_config, load_train_config
    from fusion.control import control_config
    from fusion.train.setup import run_paths

    config = load_config(_config(fuse_config, tmp_path, comment_rows, tasks=TASKS, limit=0.5))
    control = control_config(config)
    path = tmp_path / "launch-config.yaml"
    path.write_text(yaml.safe_dump(control.model_dump(mode="json"), allow_unicode=True))
    again = load_train_config(path)
    assert again.train.lambda_clm == 1.0 and config.train.lambda_clm == 0.9
    assert run_paths(again).output == tmp_path / "work" / "control"
    assert run_paths(again).store == run_paths(config).store  # the same fused store
    assert again.train.model_dump(exclude={"lambda_clm", "output"}) == config.train.model_dump(
        exclude={"lambda_clm", "output"}
    )


# ------------------------------------------------------------------ end to end


@contextlib.contextmanager
def _served_by(server) -> Iterator[object]:
    """``harness.serve.serve`` stand-in: the model 'server' is the scripted one."""
    from harness.serve import Served

    yield Served(base_url=server.base_url, model="scripted-model")


@pytest.mark.slow
def test_fuse_run_evaluates_compares_gates_and_reruns_as_a_no_op(
    tmp_path: Path,
    fuse_config,
    comment_rows,
    no_judge,
    scripted_judge,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    config = _config(
        fuse_config, tmp_path, comment_rows, tasks=TASKS, num_fewshot=[0], limit=20, max_drop=0.2
    )
    work = tmp_path / "work"
    argv = ["fuse", "run", str(config), "--quiet"]
    assert main(argv) == 0
    first = capsys.readouterr()

    # The control: the fused training's rows, order and steps, with no fusion term.
    fused_log, control_log = (
        _log(work / "train" / "log.jsonl"),
        _log(work / "control" / "log.jsonl"),
    )
    assert [r["step"] for r in control_log] == [r["step"] for r in fused_log] == [1, 2]
    assert [r["tokens"] for r in control_log] == [r["tokens"] for r in fused_log]
    assert control_log[0]["clm"] == pytest.approx(fused_log[0]["clm"], abs=1e-6)  # same batch
    assert all(r["loss"] == r["clm"] for r in control_log)
    assert all(r["loss"] != pytest.approx(r["clm"]) for r in fused_log)
    assert (work / "control" / "final" / "config.json").is_file()

    # Every model evaluated under a readable label.
    labels = ["base", "tiny-mistral", "clm-only", "fused"]
    for label in labels:
        manifest = json.loads((work / "eval" / label / "manifest.json").read_text())
        assert manifest["label"] == label and manifest["status"] == "complete"
        assert [t["name"] for t in manifest["tasks"]] == TASKS and manifest["limit"] == 20
    assert json.loads((work / "eval" / "fused" / "manifest.json").read_text())["model"][
        "name_or_path"
    ] == str(work / "train" / "final")

    # The report: every file parses, base first, labels (never `final`) everywhere.
    report = work / "report"
    data = json.loads((report / "compare.json").read_text())
    assert [(c["base"], c["run"]) for c in data["comparisons"]] == [
        ("base", "clm-only"),
        ("base", "fused"),
        ("clm-only", "fused"),
    ]
    assert data["gate"]["passed"] is True and data["gate"]["max_drop"] == 0.2
    for comparison in data["comparisons"]:
        primary = {(r["task"], r["num_fewshot"]) for r in comparison["rows"] if r["primary"]}
        assert primary == {(t, 0) for t in TASKS}
        assert all(r["n"] == 20 and r["ci95"] for r in comparison["rows"] if r["primary"])
    md = (report / "compare.md").read_text()
    assert "## clm-only vs base" in md and "## fused vs base" in md
    assert "## fused vs clm-only" in md and "PASS" in md
    assert "LogicKor was not judged: set FUSEBENCH_JUDGE_BASE_URL and FUSEBENCH_JUDGE_MODEL" in md
    # The contamination check ran before extraction, on TASKS, and the page shows it.
    checked = json.loads((report / "contamination.json").read_text())
    assert [t["task"] for t in checked["tasks"]] == TASKS
    assert all(t["contaminated"] == 0 for t in checked["tasks"])
    assert "## Contamination check" in md and "contamination check: clean" in first.err
    card = (report / "model-card.md").read_text()
    assert "| Dataset | Base (0 shot) | clm-only (0 shot) | fused (0 shot) |" in card
    strengths = (report / "strengths.md").read_text()
    for label in labels:
        assert f"| {label} | 0 |" in strengths
    page = (report / "compare.html").read_text()
    assert page.lower().startswith("<!doctype html>") and "data:image/svg+xml" in page
    assert "fused vs base" in page and "fused vs clm-only" in page
    # The strength check before training: its own file and a section of both pages.
    check = (report / "strength-check.md").read_text()
    assert check.startswith("## Strength check (before training)") and check in md
    assert page.count('<section id="strength-check">') == 1
    for text in (md, card, strengths, page):
        assert "final" not in text.replace("final model", "")

    # The headline: base / clm-only / fused, fused - clm-only with its interval, the page.
    out = first.out
    by_task = {
        t: next(line for line in out.splitlines() if line.strip().startswith(t)) for t in TASKS
    }
    for task, line in by_task.items():
        row = next(r for r in data["comparisons"][2]["rows"] if r["task"] == task and r["primary"])
        base = next(r for r in data["comparisons"][1]["rows"] if r["task"] == task and r["primary"])
        assert f"({row['metric']}, 0-shot): {base['base']:.4f} / {row['base']:.4f} / " in line
        assert f"fused - clm-only {row['diff']:+.4f} [{row['ci95'][0]:+.4f}, " in line
    assert "note: LogicKor was not judged" in out and "PASS" in out
    assert f"comparison page: {report / 'compare.html'}" in out

    # A rerun of the finished run: nothing trained, evaluated or written; the same headline.
    before = _mtimes(work)
    started = time.monotonic()
    assert main(argv) == 0
    seconds = time.monotonic() - started
    again = capsys.readouterr()
    assert _mtimes(work) == before
    status = again.err.strip().splitlines()
    assert len(status) == 1 and status[0].startswith("fuse run: finished earlier"), status
    assert again.out.splitlines()[-6:] == out.splitlines()[-6:]
    assert seconds < 30, seconds

    # A planted regression: the fused model's nsmc falls 0.3 below the base: exit 1, named.
    base_nsmc = json.loads((work / "eval" / "base" / "0-shot" / "results.json").read_text())
    worse = base_nsmc["results"]["nsmc"]["acc,none"] - 0.3
    plant_metric(work / "eval" / "fused", 0, "nsmc", "acc,none", worse)
    assert main(argv) == 1
    failed = capsys.readouterr()
    assert "FAIL: 1 task(s) dropped by more than 0.2 absolute: nsmc" in failed.out
    assert "- fused: nsmc 0-shot acc" in failed.out
    assert "FAIL" in (report / "compare.md").read_text()
    assert json.loads((report / "compare.json").read_text())["gate"]["passed"] is False
    for label in labels:  # evaluations were resumed, not redone
        manifest = json.loads((work / "eval" / label / "manifest.json").read_text())
        assert len(manifest["completed"]) == len(TASKS)

    # Other evaluate settings than the runs were made with: refused, one line, before any
    # evaluation (--overwrite would evaluate anew).
    raw = yaml.safe_load(config.read_text())
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({**raw, "evaluate": {**raw["evaluate"], "limit": 10}}))
    assert main(["fuse", "run", str(changed), "--quiet"]) == 2
    refused = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{work / 'eval' / 'base'}: evaluated with other settings (limit)" in refused
    assert "--overwrite" in refused and rundir_limit(work / "eval" / "base") == 20

    # LogicKor, enabled by the judge variables: base and fused answer and are judged, the
    # table joins the comparison (fused vs base), the key is written nowhere.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with scripted_judge() as server:
        monkeypatch.setattr("harness.serve.serve", lambda *a, **k: _served_by(server))
        monkeypatch.setenv("FUSEBENCH_JUDGE_BASE_URL", server.base_url)
        monkeypatch.setenv("FUSEBENCH_JUDGE_MODEL", "scripted-judge")
        monkeypatch.setenv("FUSEBENCH_JUDGE_API_KEY", SECRET)
        assert main(argv) == 1  # the planted regression still fails the gate
        assert server.authorizations >= {f"Bearer {SECRET}"}
    judged = capsys.readouterr()
    for label in ("base", "fused"):
        rows = _log(work / "eval" / label / "logickor" / "default.jsonl")
        assert len(rows) == 42 and all(r["query_single"]["judge_score"] == 8 for r in rows)
    assert not (work / "eval" / "clm-only" / "logickor").exists()
    data = json.loads((report / "compare.json").read_text())
    logickor = [r for r in data["comparisons"][1]["rows"] if r["task"] == "logickor"]
    assert {r["metric"] for r in logickor if r["primary"]} == {"overall"}
    assert all(r["task"] != "logickor" for c in data["comparisons"][::2] for r in c["rows"])
    assert "not judged" not in (report / "compare.md").read_text()
    assert "logickor (overall, default): 8.00 / — / 8.00; fused - base +0.00" in judged.out
    assert "LogicKor" in (report / "compare.html").read_text()
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".sqlite":
            assert SECRET not in path.read_text(errors="ignore"), path


@pytest.mark.slow  # three spawned processes, each importing lm-eval and torch
def test_each_model_in_a_process_of_its_own(zoo: Path, tmp_path: Path) -> None:
    """The path `evaluate.backend: vllm` takes (vLLM keeps its GPU memory until its process
    exits): every evaluation runs in a spawned process of its own, one after another; shown
    here with the hf backend. Its results equal an evaluation in this process, and an error in
    the child reaches the caller as it was raised."""
    import os

    from fusion.pipeline import Reporter
    from harness.backends import BackendOptions
    from harness.evaluate import run_eval
    from harness.fuse_eval.stage import _each_in_own_process
    from harness.specs import EvalSpec
    from reports import rundir

    def spec(label: str, model: Path) -> EvalSpec:
        return EvalSpec(
            model=str(model),
            tasks=["nsmc"],
            limit=6,
            label=label,
            output=tmp_path / label,
            options=BackendOptions(device="cpu"),
        )

    outputs: dict[str, Path] = {}
    report = Reporter(output=lambda name, path: outputs.setdefault(name, path))
    jobs = [(str(zoo / name), spec(name, zoo / name)) for name in ("tiny-llama", "tiny-gpt2")]
    pid = os.getpid()
    _each_in_own_process(jobs, report)
    assert os.getpid() == pid and set(outputs) == {"eval tiny-llama", "eval tiny-gpt2"}
    here = spec("here", zoo / "tiny-llama")
    run_eval(here)
    scores = [rundir.read_results(tmp_path / label, 0) for label in ("tiny-llama", "here")]
    assert scores[0]["results"]["nsmc"] == scores[1]["results"]["nsmc"]
    with pytest.raises(Exception, match="nope"):
        _each_in_own_process([("nope", spec("bad", tmp_path / "nope"))], report)
