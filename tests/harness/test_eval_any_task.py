"""`--tasks` beyond fusebench's own: lm-eval's registry and a user's `--include-path` folder.

The user's folder is made here: lm-eval YAML tasks whose data are JSON lines written from a
few KoBEST BoolQ rows (read through FUSEBENCH_DATA_DIR, as the tasks read them), so the
tests run offline. Registry tasks are resolved from lm-eval's index alone (no data), and one
whose data is on the Hub fails in one line here, where the Hub cannot be reached.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli import main
from reports import rundir
from tasks import catalog
from tasks.loaders import load_benchmark

_PROMPT = {
    "output_type": "multiple_choice",
    "training_split": "train",
    "test_split": "test",
    "doc_to_text": "{{paragraph}} 질문: {{question}} 답변: ",
    "doc_to_target": "{{label}}",
    "doc_to_choice": ["아니오", "예"],
}


def _write_task(
    folder: Path, name: str, data: dict[str, Path], metrics: list[dict], **more: object
) -> None:
    cfg = {
        **more,
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {split: str(p) for split, p in data.items()}},
        **_PROMPT,
        "metric_list": metrics,
        "metadata": {"version": 3.0},
    }
    (folder / f"{name}.yaml").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def user_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A task folder as a user writes one: two tasks on the same rows, and a group."""
    root = tmp_path_factory.mktemp("user")
    boolq = load_benchmark("kobest_boolq")
    data = {}
    for split, n in (("train", 4), ("test", 8)):
        data[split] = root / f"{split}.jsonl"
        rows = boolq[split].select(range(n))
        data[split].write_text(
            "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in rows),
            encoding="utf-8",
        )
    folder = root / "tasks"
    folder.mkdir()
    # Lower is better, and listed first: the primary metric, though acc follows.
    brier = {"metric": "brier_score", "aggregation": "brier_score", "higher_is_better": False}
    acc = {"metric": "acc", "aggregation": "mean", "higher_is_better": True}
    _write_task(folder, "my_boolq", data, [brier, acc])
    _write_task(folder, "my_boolq_acc", data, [acc])
    _write_task(folder, "my_boolq_zero", data, [acc], num_fewshot=0)  # as hrm8k's YAML
    (folder / "_my_suite.yaml").write_text(
        "group: my_suite\ntask:\n  - my_boolq_acc\n  - my_boolq\n", encoding="utf-8"
    )
    # Group-level metric_list: the same as each task's own (as hrm8k's), then not.
    for group, tasks in (("my_same", ["my_boolq_acc", "my_boolq_zero"]), ("my_over", ["my_boolq"])):
        cfg = {"group": group, "task": tasks, "metric_list": [acc]}
        (folder / f"_{group}.yaml").write_text(json.dumps(cfg), encoding="utf-8")
    return folder


def _eval(model: Path, out: Path, folder: Path, *extra: str) -> int:
    argv = ["eval", str(model), "--tasks", "my_boolq", "--include-path", str(folder)]
    return main([*argv, "--limit", "4", "--batch-size", "4", "--output", str(out), *extra])


@pytest.mark.slow  # indexes lm-eval's registry for a folder of its own: seconds
def test_include_path_task_runs_end_to_end(
    user_tasks: Path, zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    assert _eval(zoo / "tiny-qwen2", out, user_tasks, "--num-fewshot", "0,2") == 0
    manifest = rundir.read_manifest(out)
    assert manifest.status == "complete" and len(manifest.completed) == 2
    [entry] = manifest.tasks
    assert (entry.name, entry.origin, entry.metric) == ("my_boolq", "include-path", "brier_score")
    assert entry.higher_is_better is False and entry.version == "3.0"
    assert entry.split == "test" and entry.output_type == "multiple_choice"
    assert entry.source.startswith("include-path:json:") and len(entry.config_sha256 or "") == 64
    for shots in (0, 2):
        results = rundir.read_results(out, shots)
        assert results["n-shot"]["my_boolq"] == shots
        assert results["higher_is_better"]["my_boolq"]["brier_score"] is False
        assert {"brier_score,none", "acc,none"} <= set(results["results"]["my_boolq"])
        assert len(rundir.samples_path(out, shots, "my_boolq").read_text().splitlines()) == 4
    printed = capsys.readouterr().out
    assert "brier_score (lower is better)" in printed  # the closing summary table

    # Resume: the same command redoes nothing; a changed YAML is another task.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}
    assert _eval(zoo / "tiny-qwen2", out, user_tasks, "--num-fewshot", "0,2") == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")} == stamps
    changed = tmp_path / "changed"
    changed.mkdir()
    cfg = json.loads((user_tasks / "my_boolq.yaml").read_text(encoding="utf-8"))
    cfg["doc_to_text"] = "{{paragraph}} 질문: {{question}} 답: "
    (changed / "my_boolq.yaml").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    capsys.readouterr()
    assert _eval(zoo / "tiny-qwen2", out, changed, "--num-fewshot", "0,2") == 2
    assert "config of my_boolq (its YAML changed)" in capsys.readouterr().err


def test_config_fixing_zero_shots_is_scored_at_zero_only(
    user_tasks: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """lm-eval keeps a config's ``num_fewshot: 0`` whatever it is asked (hrm8k): fusebench
    scores such a task at 0 shots only, as ko_bpb, and refuses a run with no 0 in one line
    (before the model loads), rather than file a 0-shot figure under 2-shot/."""
    include = (str(user_tasks),)
    infos = catalog.resolve(["my_boolq_zero", "my_boolq"], include)
    zero = infos["my_boolq_zero"]
    assert zero.config_shots == 0 and zero.zero_shot_only and not infos["my_boolq"].zero_shot_only
    assert catalog.scored_at("my_boolq_zero", 0, zero)
    assert not catalog.scored_at("my_boolq_zero", 2, zero)
    assert catalog.scored_at("my_boolq", 2, infos["my_boolq"])
    catalog.check_shots(infos, [0, 2])  # with 0 it runs, at 0 shots only
    capsys.readouterr()
    model = tmp_path / "no-model"  # refused before a model is looked for
    argv = ["eval", str(model), "--tasks", "my_boolq_zero,my_boolq"]
    argv += ["--include-path", str(user_tasks), "--num-fewshot", "2"]
    assert main([*argv, "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: my_boolq_zero is scored at 0 shots only (its config sets num_fewshot: 0, "
        "which lm-eval does not override), but --num-fewshot 2 has no 0: add 0 (it then "
        "runs at 0 shots only)"
    )
    assert not (tmp_path / "run").exists()


def test_reports_and_gate_read_the_yaml_direction(
    user_tasks: Path, zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A metric fusebench has never seen, lower is better, listed first: reports show it as
    the task's primary and the gate counts its rise as the loss."""
    from reports import leaderboard
    from reports.load import load_runs

    runs = {m: tmp_path / m for m in ("tiny-qwen2", "tiny-llama")}
    for model, out in runs.items():
        assert _eval(zoo / model, out, user_tasks) == 0
    loaded = load_runs(list(runs.values()))
    [board] = [b for b in leaderboard.build(loaded.scores) if b.kind == "lm-eval"]
    assert board.metrics == {"my_boolq": "brier_score"} and board.lower_is_better == {"my_boolq"}
    brier = {
        m: rundir.read_results(out, 0)["results"]["my_boolq"]["brier_score,none"]
        for m, out in runs.items()
    }
    worse, better = sorted(brier, key=brier.get, reverse=True)
    assert brier[worse] > brier[better]
    capsys.readouterr()
    assert main(["compare", str(runs[better]), str(runs[worse]), "--max-drop", "0"]) == 1
    gate = capsys.readouterr().out
    assert "FAIL" in gate and "my_boolq 0-shot brier_score" in gate and "lower is better" in gate
    assert "rise" in gate
    assert main(["compare", str(runs[worse]), str(runs[better]), "--max-drop", "0"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_tasks_all_lists_every_source(user_tasks: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tasks", "--all", "--json", "--include-path", str(user_tasks)]) == 0
    rows = json.loads(capsys.readouterr().out)["tasks"]
    by_name = {r["name"]: r for r in rows}
    assert len(by_name) == len(rows)  # each name once: fusebench's wins kobest_boolq
    assert by_name["kobest_boolq"]["source"] == "fusebench"
    assert by_name["kobest"] == {**by_name["kobest"], "kind": "group", "source": "fusebench"}
    assert by_name["kmmlu"]["kind"] == "group" and by_name["kmmlu"]["source"] == "lm-eval"
    assert by_name["kmmlu_accounting"]["metric"] == "acc"
    assert by_name["haerae_history"]["source"] == "lm-eval"
    mine = by_name["my_boolq"]
    assert (mine["source"], mine["metric"], mine["higher_is_better"]) == (
        "include-path",
        "brier_score",
        False,
    )
    assert by_name["my_suite"]["kind"] == "group"
    # Which data needs the Hub: lm-eval's KMMLU and ko_suite with it; the local copies not.
    assert {n: by_name[n]["data"] for n in ("kmmlu", "kmmlu_accounting", "ko_suite")} == {
        n: "Hub" for n in ("kmmlu", "kmmlu_accounting", "ko_suite")
    }
    local = ("my_boolq", "my_suite", "my_over", "kobest", "nsmc")  # my_over: refused, yet known
    assert {by_name[n]["data"] for n in local} == {"local"}
    assert by_name["hrm8k"]["data"] == "Hub"  # a group's data is its tasks'
    assert main(["tasks", "--json"]) == 0  # the short listing: no registry indexed
    listed = json.loads(capsys.readouterr().out)
    groups = {g["name"]: g["needs_hub"] for g in listed["groups"]}
    assert groups["ko_suite"] is True and groups["kobest"] is False
    assert not any(t["needs_hub"] for t in listed["tasks"])  # FUSEBENCH_DATA_DIR has them


def test_registry_names_resolve_without_data(user_tasks: Path) -> None:
    info = catalog.resolve(["kmmlu_accounting"])["kmmlu_accounting"]
    assert (info.origin, info.benchmark, info.metric, info.higher_is_better) == (
        "lm-eval",
        "HAERAE-HUB/KMMLU:Accounting",
        "acc",
        True,
    )
    assert (info.split, info.fewshot_split, info.version) == ("test", "dev", "2.0")
    assert info.output_type == "multiple_choice"
    kmmlu = catalog.expand(["kmmlu"])  # group -> subgroups -> tags -> tasks
    assert len(kmmlu) == 45 and "kmmlu_accounting" in kmmlu
    assert len(catalog.expand(["haerae"])) == 5
    # ko_suite: lm-eval's kmmlu, haerae and click (Hub data), then fusebench's seven.
    suite = catalog.resolve(["ko_suite"])
    seven = [*catalog.all_groups()["kobest"].tasks, "korunsmile", "nsmc"]
    hub = [*kmmlu, *catalog.expand(["haerae"]), *catalog.expand(["click"])]
    assert list(suite) == hub + seven and len(catalog.expand(["click"])) == 11
    assert {(suite[t].origin, suite[t].needs_hub) for t in hub} == {("lm-eval", True)}
    assert {(suite[t].origin, suite[t].needs_hub) for t in seven} == {("fusebench", False)}
    # Groups named in --tasks, for the manifest: their tasks and lm-eval's aggregation.
    found = catalog.requested_groups(["kmmlu", "kobest", "ko_suite", "nsmc"])
    by_name = {g["name"]: g for g in found}
    kmmlu_group, kobest = by_name["kmmlu"], by_name["kobest"]
    assert kmmlu_group == {
        "name": "kmmlu",
        "tasks": kmmlu,
        "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}],
    }
    assert kobest["tasks"] == seven[:5] and kobest["aggregate_metric_list"][0]["metric"] == "acc"
    # ...and the groups inside them that aggregate (lm-eval reports those too), each once,
    # a group before its own: ko_suite's haerae and click, kmmlu's four, click's two.
    kmmlu_parts = ["kmmlu_stem", "kmmlu_other", "kmmlu_applied_science", "kmmlu_humss"]
    assert [g["name"] for g in found] == [
        "kmmlu",
        *kmmlu_parts,
        "kobest",
        "ko_suite",
        "haerae",
        "click",
        "click_lang",
        "click_cul",
    ]
    assert sum(len(by_name[p]["tasks"]) for p in kmmlu_parts) == 45
    suite_groups = {g["name"]: g for g in catalog.requested_groups(["ko_suite"])}
    assert suite_groups["kmmlu"] == kmmlu_group  # named inside ko_suite only: still recorded
    both = [
        {"metric": m, "aggregation": "mean", "weight_by_size": True} for m in ("acc", "acc_norm")
    ]
    assert suite_groups["haerae"]["aggregate_metric_list"] == both
    assert suite_groups["click"]["aggregate_metric_list"] == both
    assert suite_groups["click"]["tasks"] == catalog.expand(["click"])
    with pytest.raises(Exception, match="ko_suite includes lm-eval's kmmlu, haerae, click"):
        catalog.expand_own(["ko_suite"], "contamination")
    # fusebench's names stay fusebench's, alone or inside another list.
    both = catalog.resolve(["kobest_boolq", "haerae_history"])
    assert [i.origin for i in both.values()] == ["fusebench", "lm-eval"]
    mine = catalog.resolve(["my_suite"], (str(user_tasks),))
    assert list(mine) == ["my_boolq_acc", "my_boolq"]
    assert {i.origin for i in mine.values()} == {"include-path"}
    # A group-level key equal to every task's own value changes nothing: hrm8k runs as a
    # group; one that would change a task's config is refused, naming the key.
    hrm8k = ["hrm8k_gsm8k", "hrm8k_ksm", "hrm8k_math", "hrm8k_mmmlu", "hrm8k_omni_math"]
    assert catalog.expand(["hrm8k"]) == hrm8k
    include = (str(user_tasks),)
    assert catalog.expand(["my_same"], include) == ["my_boolq_acc", "my_boolq_zero"]
    with pytest.raises(Exception, match=r"group my_over \(.*_my_over.yaml\) sets metric_list"):
        catalog.expand(["my_over"], include)
    with pytest.raises(Exception, match="unknown task 'kmmluu'. Did you mean 'kmmlu'"):
        catalog.resolve(["kmmluu"])


def test_registry_task_without_its_data_is_one_line(zoo: Path, tmp_path: Path) -> None:
    """KMMLU is on the Hub, which cannot be reached here (HF_DATASETS_OFFLINE): ko_suite,
    whose first task is KMMLU's, fails in one line naming it, before the model loads."""
    exe = str(Path(sys.executable).parent / "fusebench")
    out = tmp_path / "run"
    args = ["eval", str(zoo / "tiny-gpt2"), "--tasks", "ko_suite", "--limit", "2"]
    done = subprocess.run(
        [exe, *args, "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    first = catalog.expand(["kmmlu"])[0]  # the registry is indexed here already
    assert lines[0].startswith(f"error: {first} (lm-eval, ")
    assert "its data (HAERAE-HUB/KMMLU) could not be loaded" in lines[0]
    assert "HF_DATASETS_CACHE" in lines[0]
    assert "loading" not in done.stdout + done.stderr  # the model was never loaded
    manifest = rundir.read_manifest(out)
    assert manifest.status == "failed" and not manifest.completed
    assert [t.name for t in manifest.tasks] == catalog.expand(["ko_suite"])


def test_fusebench_names_never_index_the_registry(
    user_tasks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Indexing lm-eval's registry costs seconds: runs of fusebench's tasks do without it,
    with an --include-path too (only the user's folder is read, to say what it shadows).
    The index is replaced by a tripwire, not cleared: other tests keep the one built."""
    from harness.evaluate import _note_replaced
    from tasks import registry

    def tripwire(*_: object) -> None:
        raise AssertionError("lm-eval's registry was indexed")

    monkeypatch.setattr(registry, "foreign", tripwire)
    infos = catalog.resolve(["ko_fusellm", "kobest_copa"], (str(user_tasks),))
    assert all(i.origin == "fusebench" for i in infos.values())
    _note_replaced(infos, (str(user_tasks),), Console(file=io.StringIO()))


@pytest.mark.slow  # indexes lm-eval's registry for a folder of its own: seconds
def test_user_task_replacing_a_name_is_said(user_tasks: Path, tmp_path: Path) -> None:
    """As with lm_eval --include_path, the user's task replaces the registry's of that name
    (and eval says so); fusebench's own name is never replaced (and eval says that)."""
    from harness.evaluate import _note_replaced

    cfg = json.loads((user_tasks / "my_boolq_acc.yaml").read_text(encoding="utf-8"))
    for name in ("haerae_history", "kobest_copa"):
        (tmp_path / f"{name}.yaml").write_text(json.dumps({**cfg, "task": name}), "utf-8")
    include = (str(tmp_path),)
    infos = catalog.resolve(["haerae_history", "kobest_copa"], include)
    assert infos["haerae_history"].origin == "include-path"
    assert infos["haerae_history"].benchmark.startswith("json:")
    assert infos["kobest_copa"].origin == "fusebench"
    out = io.StringIO()
    _note_replaced(infos, include, Console(file=out, width=400))
    said = out.getvalue()
    assert "kobest_copa: fusebench's own task runs, not the --include-path task" in said
    assert "haerae_history: the --include-path task replaces lm-eval's (" in said
    assert "haerae/haerae_hi.yaml" in said


@pytest.mark.slow  # three evaluations
def test_task_data_is_loaded_once_and_each_shot_count_is_right(
    user_tasks: Path, zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before the model loads and every shot count's evaluation share one built
    task; the shot counts it is evaluated at in turn give what a fresh build gives."""
    from lm_eval.tasks import TaskManager

    from tasks import registry

    loads: list[list] = []
    real = TaskManager.load
    monkeypatch.setattr(TaskManager, "load", lambda self, t: loads.append(t) or real(self, t))
    registry.foreign((str(user_tasks),)).built.clear()
    both = tmp_path / "both"
    assert _eval(zoo / "tiny-qwen2", both, user_tasks, "--num-fewshot", "0,2") == 0
    assert [names for names in loads if isinstance(names[0], str)] == [["my_boolq"]]
    # The built task, last evaluated at 2 shots, then at 0; a fresh build at 2 shots.
    zero = tmp_path / "zero"
    assert _eval(zoo / "tiny-qwen2", zero, user_tasks, "--num-fewshot", "0") == 0
    registry.foreign((str(user_tasks),)).built.clear()
    two = tmp_path / "two"
    assert _eval(zoo / "tiny-qwen2", two, user_tasks, "--num-fewshot", "2") == 0
    for shots, alone in ((0, zero), (2, two)):
        assert rundir.read_results(alone, shots)["n-shot"]["my_boolq"] == shots
        assert rundir.samples_path(alone, shots, "my_boolq").read_bytes() == (
            rundir.samples_path(both, shots, "my_boolq").read_bytes()
        )
    # The manifest records the folders; one written before that field still loads.
    assert rundir.read_manifest(both).include_path == [str(user_tasks.resolve())]
    raw = json.loads((both / rundir.MANIFEST).read_text(encoding="utf-8"))
    del raw["include_path"], raw["groups"]
    (both / rundir.MANIFEST).write_text(json.dumps(raw), encoding="utf-8")
    assert rundir.read_manifest(both).include_path == []
    assert rundir.read_manifest(both).groups == []
