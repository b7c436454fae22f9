"""A ``generate_until`` task (lm-eval's generation path, as hrm8k's) through ``fusebench eval``:
one run directory, resume, the response cache, and reports and the gate that read the
metric under the task's first filter.

The task folder is made here (YAML plus JSON lines). Its first filter maps any generation to
"X" (a regex that never matches, with "X" as its fallback), so its exact_match is the share
of documents whose target is "X", whatever a random model generates; its second filter keeps
the generation, which matches no target. The two filters' scores differ by design, so a
report that read the wrong one is caught.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from reports import rundir

# Documents 0-1 have target "X" (scored 1 under the first filter), the others "Y" (0).
_ROWS = [
    {"question": f"{a} 더하기 {b}은?", "answer": str(a + b), "target": "X" if i < 2 else "Y"}
    for i, (a, b) in enumerate([(1, 2), (3, 4), (5, 6), (7, 8), (2, 2), (9, 1)])
]
GEN_TASK = {
    "task": "my_gen",
    "dataset_path": "json",
    "output_type": "generate_until",
    "test_split": "test",
    "fewshot_split": "train",
    "doc_to_text": "질문: {{question}}\n답:",
    "doc_to_target": "{{target}}",
    "generation_kwargs": {"until": ["\n"], "max_gen_toks": 6, "do_sample": False},
    "filter_list": [
        {
            "name": "strict-match",
            "filter": [
                {"function": "regex", "regex_pattern": "(@@@)", "fallback": "X"},
                {"function": "take_first"},
            ],
        },
        {"name": "flexible", "filter": [{"function": "take_first"}]},
    ],
    "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    "metadata": {"version": 1.0},
}


def write_gen_task(folder: Path, data: Path) -> None:
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _ROWS), "utf-8")
    files = {"dataset_kwargs": {"data_files": {"test": str(data), "train": str(data)}}}
    (folder / "my_gen.yaml").write_text(json.dumps({**GEN_TASK, **files}, ensure_ascii=False))


@pytest.fixture(scope="module")
def gen_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gen")
    folder = root / "tasks"
    folder.mkdir()
    write_gen_task(folder, root / "data.jsonl")
    return folder


def _eval(model: Path, out: Path, folder: Path, *extra: str) -> int:
    argv = ["eval", str(model), "--tasks", "my_gen", "--include-path", str(folder)]
    return main([*argv, "--batch-size", "4", "--output", str(out), *extra])


@pytest.mark.slow  # indexes lm-eval's registry for a folder of its own: seconds
def test_generation_task_runs_resumes_and_uses_the_cache(
    gen_tasks: Path,
    zoo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, out, cache = zoo / "tiny-qwen2", tmp_path / "run", tmp_path / "cache"
    assert _eval(model, out, gen_tasks, "--num-fewshot", "0,1", "--cache-dir", str(cache)) == 0
    manifest = rundir.read_manifest(out)
    assert manifest.status == "complete" and len(manifest.completed) == 2
    [entry] = manifest.tasks
    assert (entry.output_type, entry.metric, entry.origin) == (
        "generate_until",
        "exact_match",
        "include-path",
    )
    for shots in (0, 1):
        row = rundir.read_results(out, shots)["results"]["my_gen"]
        assert row["exact_match,strict-match"] == pytest.approx(2 / 6)
        assert row["exact_match,flexible"] == 0.0
        samples = [json.loads(x) for x in rundir.samples_path(out, shots, "my_gen").open()]
        assert len(samples) == 12  # one record per document and filter
        assert {s["filter"] for s in samples} == {"strict-match", "flexible"}
        assert all(isinstance(s["resps"][0][0], str) for s in samples)
    summary = capsys.readouterr().out
    assert summary.count("exact_match,strict-match") == 2 and "0.3333" in summary

    # Resume: nothing is generated again.
    from harness.backends.shared_context import SharedContextLM

    def no_generation(self, requests, disable_tqdm=False):
        raise AssertionError(f"generated {len(requests)} request(s) again")

    monkeypatch.setattr(SharedContextLM, "generate_until", no_generation)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}
    assert _eval(model, out, gen_tasks, "--num-fewshot", "0,1", "--cache-dir", str(cache)) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")} == stamps
    # --cache-dir: another run directory answers every generation from lm-eval's cache.
    again = tmp_path / "again"
    assert _eval(model, again, gen_tasks, "--num-fewshot", "0,1", "--cache-dir", str(cache)) == 0
    for shots in (0, 1):
        assert rundir.samples_path(again, shots, "my_gen").read_text() == (
            rundir.samples_path(out, shots, "my_gen").read_text()
        )


def test_reports_and_gate_read_the_first_filter(
    gen_tasks: Path, zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The primary score of a filtered task is its metric under the config's first filter
    (strict-match: 2/6 here, flexible 0), in the summary, the report and the gate."""
    six, three = tmp_path / "six", tmp_path / "three"
    assert _eval(zoo / "tiny-qwen2", six, gen_tasks, "--limit", "6") == 0
    assert _eval(zoo / "tiny-qwen2", three, gen_tasks, "--limit", "3") == 0  # 2/3
    capsys.readouterr()
    assert main(["report", str(six)]) == 0
    report = capsys.readouterr().out
    assert "my_gen exact_match,strict-match" in report and "0.3333" in report
    # 2/3 -> 2/6 under strict-match is a drop (flexible: 0 -> 0 is none).
    assert main(["compare", str(three), str(six), "--max-drop", "0.1", "--force"]) == 1
    gate = capsys.readouterr().out
    assert "FAIL" in gate and "exact_match,strict-match" in gate


def _write_parity_folder(root: Path) -> Path:
    """The generation task, two multiple-choice tasks of different sizes and a group of the
    two that aggregates acc weighted by size (as lm-eval's own groups do)."""
    folder = root / "tasks"
    folder.mkdir()
    write_gen_task(folder, root / "gen.jsonl")
    mc_rows = [
        {"question": r["question"], "choices": [r["answer"], str(int(r["answer"]) + 1)]}
        for r in _ROWS
    ]
    for i, row in enumerate(mc_rows):
        row["label"] = i % 2
        row["choices"] = row["choices"][:: 1 if i % 2 == 0 else -1]
    for name, rows, text in (
        ("my_mc", mc_rows, "질문: {{question}}\n답:"),
        ("my_mc2", mc_rows[:3], "{{question}} 정답은"),
    ):
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
        cfg = {
            "task": name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data), "train": str(data)}},
            "output_type": "multiple_choice",
            "test_split": "test",
            "fewshot_split": "train",
            "doc_to_text": text,
            "doc_to_target": "{{label}}",
            "doc_to_choice": "{{choices}}",
            "target_delimiter": " ",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
            "metadata": {"version": 1.0},
        }
        (folder / f"{name}.yaml").write_text(json.dumps(cfg, ensure_ascii=False), "utf-8")
    group = {
        "group": "my_pair",
        "task": ["my_mc", "my_mc2"],
        "aggregate_metric_list": [
            {"metric": "acc", "aggregation": "mean", "weight_by_size": True},
        ],
        "metadata": {"version": 1.0},
    }
    (folder / "_my_pair.yaml").write_text(json.dumps(group), "utf-8")
    return folder


def _by_doc(records: list[dict]) -> dict[tuple, dict]:
    return {(r["doc_id"], r.get("filter", "none")): r for r in records}


@pytest.mark.slow
def test_include_path_results_equal_lm_eval_cli(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The same task folder through ``fusebench eval --backend hf`` and ``python -m lm_eval
    --model hf``: per-document log-likelihoods within 1e-4, generations identical (greedy),
    metrics equal; and the group's aggregate as lm-eval computes it."""
    import subprocess
    import sys

    folder = _write_parity_folder(tmp_path)
    model = zoo / "tiny-qwen2"
    tasks, shots = "my_gen,my_pair", "1"
    lm_out = tmp_path / "lm_eval"
    subprocess.run(
        [
            sys.executable, "-m", "lm_eval", "--model", "hf",
            "--model_args", f"pretrained={model},dtype=float32",
            "--include_path", str(folder), "--tasks", tasks, "--num_fewshot", shots,
            "--device", "cpu", "--batch_size", "4", "--seed", "1234,1234,1234,1234",
            "--log_samples", "--output_path", str(lm_out),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )  # fmt: skip
    [results_file] = lm_out.rglob("results_*.json")
    theirs = json.loads(results_file.read_text())
    out = tmp_path / "run"
    argv = ["eval", str(model), "--tasks", tasks, "--include-path", str(folder)]
    argv += ["--num-fewshot", shots, "--seed", "1234", "--dtype", "float32", "--output", str(out)]
    assert main([*argv, "--batch-size", "4"]) == 0
    ours = rundir.read_results(out, int(shots))
    for task in ("my_gen", "my_mc", "my_mc2"):
        [samples] = results_file.parent.glob(f"samples_{task}_*.jsonl")
        lm = _by_doc([json.loads(x) for x in samples.open()])
        fb = _by_doc([json.loads(x) for x in rundir.samples_path(out, int(shots), task).open()])
        assert lm.keys() == fb.keys() and lm
        for key, record in lm.items():
            assert fb[key]["doc_hash"] == record["doc_hash"]
            assert fb[key]["prompt_hash"] == record["prompt_hash"]  # the same prompts
            if task == "my_gen":
                assert fb[key]["resps"] == record["resps"]
                assert fb[key]["filtered_resps"] == record["filtered_resps"]
            else:
                # lm-eval's CLI writes each response as text ("-17.14", "False").
                mine = [x[0] for x in fb[key]["filtered_resps"]]
                theirs_ll = [float(x[0]) for x in record["filtered_resps"]]
                assert mine == pytest.approx(theirs_ll, abs=1e-4)
        metrics = {k: v for k, v in theirs["results"][task].items() if "," in k}
        assert {k: ours["results"][task][k] for k in metrics} == pytest.approx(metrics)
    # The group: recorded with its tasks, aggregated from the stored results by lm-eval's
    # own functions, weighted by size as its YAML says; the tasks' scores differ, so the
    # weighting shows.
    from reports.groups import aggregate

    [group] = rundir.read_manifest(out).groups
    assert (group.name, group.tasks) == ("my_pair", ["my_mc", "my_mc2"])
    scores = [ours["results"][t]["acc,none"] for t in group.tasks]
    assert scores[0] != scores[1]  # 3 of 6 against k of 3
    agg = aggregate(group, ours)
    group_metrics = {k: v for k, v in theirs["results"]["my_pair"].items() if "," in k}
    assert group_metrics and agg == pytest.approx({**group_metrics, "sample_len": 9})
    assert "my_pair (group)" in capsys.readouterr().out  # the closing summary table
