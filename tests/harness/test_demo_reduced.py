"""The demo's own config (configs/demo.yaml) end to end on a reduced *trained* zoo: the same
recipes at a test's size (the ``small_demo`` fixture), few training steps and ``limit``.
Every output exists and parses, the comparison has base, clm-only and fused rows (the
bits-per-byte task lower-is-better), and the gate follows a regression planted in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fusion import zoo
from harness.cli import main
from tests.harness.planting import plant_metric

ROOT = Path(__file__).resolve().parents[2]


def _demo_config(tmp_path: Path, zoo_dir: Path) -> Path:
    """configs/demo.yaml with its paths on the reduced zoo and its budget cut for a test."""
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    raw["work_dir"] = str(tmp_path / "runs" / "demo")
    raw["target"]["path"] = str(zoo_dir / raw["target"]["name"])
    for source in raw["sources"]:
        source["path"] = str(zoo_dir / source["name"])
    raw["corpus"]["path"] = str(zoo_dir / zoo.DEMO_CORPUS)
    raw["train"]["epochs"] = 1
    raw["evaluate"]["limit"] = 12
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.slow
def test_reduced_demo_runs_end_to_end_and_gates(
    small_demo, tmp_path: Path, no_judge, capsys
) -> None:
    zoo_dir = tmp_path / "zoo"
    zoo.build_zoo(zoo_dir, kind="demo", progress=False)
    config = _demo_config(tmp_path, zoo_dir)
    demo = yaml.safe_load(config.read_text(encoding="utf-8"))
    argv = ["fuse", "run", str(config), "--nproc", "2", "--quiet"]  # as `make demo` runs it
    assert main(argv) == 0
    out = capsys.readouterr().out

    work = Path(demo["work_dir"])
    labels = ["base", *(s["name"] for s in demo["sources"]), "clm-only", "fused"]
    for label in labels:
        manifest = json.loads((work / "eval" / label / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["label"] == label
    report = work / "report"
    data = json.loads((report / "compare.json").read_text())
    assert [(c["base"], c["run"]) for c in data["comparisons"]] == [
        ("base", "clm-only"),
        ("base", "fused"),
        ("clm-only", "fused"),
    ]
    tasks = {r["task"] for r in data["comparisons"][2]["rows"] if r["primary"]}
    assert {"ko_bpb", "korunsmile", "nsmc", "kobest_sentineg"} <= tasks
    bpb = next(r for r in data["comparisons"][1]["rows"] if r["task"] == "ko_bpb")
    assert bpb["higher_is_better"] is False and 0 < bpb["base"] < 10
    assert "## fused vs clm-only" in (report / "compare.md").read_text()
    card = (report / "model-card.md").read_text()
    assert "| Dataset | Base (0 shot) | clm-only (0 shot) | fused (0 shot) |" in card
    assert "| ko_bpb" in card
    strengths = (report / "strengths.md").read_text()
    assert all(f"| {label} | 0 |" in strengths for label in labels)
    assert (report / "compare.html").read_text().lower().startswith("<!doctype html>")
    assert "ko_bpb (bits_per_byte ↓, 0-shot)" in out and "fused - clm-only" in out
    # The strength check ran before training, per corpus group (the demo mix sets `group`).
    strength = json.loads((work / "align" / "strength.json").read_text())
    assert set(strength["groups"]) == set(zoo.DEMO_CORPUS_MIX)
    assert all(m["exact"] for m in strength["models"].values())  # gpt2 too (start file)
    assert "Strength check" in (report / "compare.md").read_text()
    assert (report / "strength-check.md").is_file()

    # --nproc 2 evaluated two models at a time, one thread each: the scores are those of a
    # plain sequential `fusebench eval` of the same model with the same settings.
    alone = tmp_path / "base-alone"
    shots = ",".join(str(n) for n in demo["evaluate"]["num_fewshot"])
    eval_argv = ["eval", demo["target"]["path"], "--tasks", ",".join(demo["evaluate"]["tasks"])]
    eval_argv += ["--num-fewshot", shots, "--limit", "12", "--output", str(alone), "--quiet"]
    assert main(eval_argv) == 0
    capsys.readouterr()
    for shot_dir in sorted(alone.glob("*-shot")):
        want = json.loads((shot_dir / "results.json").read_text())["results"]
        got = json.loads((work / "eval" / "base" / shot_dir.name / "results.json").read_text())
        assert got["results"] == want

    # A planted regression on the lower-is-better task: fused bits per byte 1.0 above base.
    base = json.loads((work / "eval" / "base" / "0-shot" / "results.json").read_text())
    metric = "bits_per_byte,none"
    plant_metric(
        work / "eval" / "fused", 0, "ko_bpb", metric, base["results"]["ko_bpb"][metric] + 1
    )
    assert main(argv) == 1
    failed = capsys.readouterr().out
    assert "FAIL" in failed and "ko_bpb" in failed
    assert json.loads((report / "compare.json").read_text())["gate"]["passed"] is False


@pytest.mark.slow
def test_reduced_demo_over_two_seeds(small_demo, tmp_path: Path, no_judge, capsys) -> None:
    """`make demo-seeds` reduced: seed 0 as `make demo` trains it, then `--seeds 0,1` adds
    seed 1 only (seed 0's training is reused), and the headline pools the two seeds."""
    zoo_dir = tmp_path / "zoo"
    zoo.build_zoo(zoo_dir, kind="demo", progress=False)
    config = _demo_config(tmp_path, zoo_dir)
    work = Path(yaml.safe_load(config.read_text(encoding="utf-8"))["work_dir"])
    argv = ["fuse", "run", str(config), "--nproc", "2", "--quiet"]
    assert main(argv) == 0
    seed0 = (work / "train" / "final" / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*argv, "--seeds", "0,1"]) == 0
    out = capsys.readouterr().out
    assert (work / "train" / "final" / "model.safetensors").stat().st_mtime_ns == seed0
    for folder in ("train-seed-1", "control-seed-1", "eval/fused-seed-1", "eval/clm-only-seed-1"):
        assert (work / folder).is_dir(), folder
    data = json.loads((work / "report" / "compare.json").read_text())
    assert data["seeds"]["seeds"] == [0, 1]
    pooled = {row["task"]: row for row in data["seeds"]["pooled"]}
    assert {"ko_bpb_comments", "ko_bpb_products", "ko_bpb"} <= set(pooled)
    assert "/2 seeds" in out and data["machine"]["torch"]
