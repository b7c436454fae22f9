"""``fuse run`` with several training seeds (``evaluate.seeds``): the config's checks, the
per-seed layout, the pooled headline, a rerun that does nothing, and a resume that redoes only
the seed whose evaluation is gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main


def _config(fuse_config, tmp_path: Path, comment_rows, **evaluate: object) -> Path:
    return fuse_config(
        tmp_path,
        comment_rows(12),
        train={
            "zero_stage": 2,
            "precision": "fp32",
            "micro_batch_size": 4,
            "max_length": 256,
            "learning_rate": 1e-3,
            "max_steps": 2,
            "seed": 0,
        },
        evaluate=evaluate,
    )


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([], "field evaluate.seeds: name at least one seed"),
        ([1, 2, 1], "field evaluate.seeds: seeds must be distinct: 1 repeated"),
        ([0, -3], "field evaluate.seeds: seeds must be non-negative integers"),
        ([0, "x"], "field evaluate.seeds.1: Input should be a valid integer"),
        (2, "field evaluate.seeds: Input should be a valid list"),
    ],
)
def test_bad_seeds_are_one_line_naming_the_field(
    seeds, message, tmp_path: Path, fuse_config, comment_rows, no_judge, capsys
) -> None:
    config = _config(fuse_config, tmp_path, comment_rows, tasks=["nsmc"], seeds=seeds)
    assert main(["fuse", "run", str(config), "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and f"{config}: {message}" in err[0], err
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("1,x", "--seeds 1,x: expected comma-separated integers, e.g. 0,1,2"),
        ("1,2,1", "--seeds 1,2,1: seeds must be distinct: 1 repeated"),
        ("0,-3", "--seeds 0,-3: seeds must be non-negative integers"),
    ],
)
def test_bad_seeds_option_is_one_line(
    option, message, tmp_path: Path, fuse_config, comment_rows, no_judge, capsys
) -> None:
    config = _config(fuse_config, tmp_path, comment_rows, tasks=["nsmc"])
    assert main(["fuse", "run", str(config), "--quiet", "--seeds", option]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "work").exists()


def test_seeds_option_replaces_the_config_field(tmp_path: Path, fuse_config, comment_rows) -> None:
    from fusion.config import ConfigError, load_config, with_seeds

    path = _config(fuse_config, tmp_path, comment_rows, tasks=["nsmc"], seeds=[0])
    config = load_config(path)
    seeded = with_seeds(config, "0,1,2")
    assert seeded.evaluate.seeds == [0, 1, 2] and config.evaluate.seeds == [0]
    assert seeded.evaluate.tasks == config.evaluate.tasks
    plain = config.model_copy(update={"evaluate": None})
    with pytest.raises(ConfigError, match="has no evaluate section"):
        with_seeds(plain, "1")


def test_seed_layout_and_labels(tmp_path: Path, fuse_config, comment_rows) -> None:
    """train.seed keeps the one-seed folders; another seed gets its own; absent seeds leave
    the settings key as it was before the field existed."""
    from fusion.config import load_config
    from fusion.seeds import seeded, seeded_control, training_seeds
    from fusion.train.setup import run_paths
    from harness.fuse_eval.plan import make_plan, seed_labels
    from harness.fuse_eval.stage import _labels, settings_key

    config = load_config(_config(fuse_config, tmp_path, comment_rows, tasks=["nsmc"], seeds=[3, 0]))
    work = tmp_path / "work"
    assert training_seeds(config) == [3, 0]
    assert run_paths(seeded(config, 0)).output == work / "train"
    assert run_paths(seeded_control(config, 0)).output == work / "control"
    three = seeded(config, 3)
    assert three.train.seed == 3 and run_paths(three).output == work / "train-seed-3"
    control = seeded_control(config, 3)
    assert run_paths(control).output == work / "control-seed-3"
    assert control.train.lambda_clm == 1.0 and control.train.seed == 3
    assert run_paths(control).store == run_paths(config).store  # one fused store
    assert _labels(config) == ["base", "tiny-mistral", "clm-only-seed-3", "fused-seed-3"] + [
        "clm-only",
        "fused",
    ]
    assert [(s.fused, s.fused_shown) for s in seed_labels(config)] == [
        ("fused-seed-3", "fused-seed-3"),
        ("fused", "fused-seed-0"),
    ]

    one = load_config(_config(fuse_config, tmp_path, comment_rows, tasks=["nsmc"]))
    assert training_seeds(one) == [0] and _labels(one)[-2:] == ["clm-only", "fused"]
    plan = make_plan(one)
    key = settings_key(one, 1, plan, None)
    dumped = one.model_dump(mode="json")
    dumped["evaluate"].pop("seeds")
    legacy = {"config": dumped, "nproc": 1, "tasks": plan.tasks, "judge": None}
    import hashlib

    assert key == hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()
    assert settings_key(config, 1, make_plan(config), None) != key


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_two_seeds_train_evaluate_pool_rerun_and_resume(
    tmp_path: Path, fuse_config, comment_rows, no_judge, capsys, run_fusebench
) -> None:
    config = _config(
        fuse_config,
        tmp_path,
        comment_rows,
        tasks=["nsmc"],
        num_fewshot=[0],
        limit=8,
        sources=False,
        seeds=[0, 1],
    )
    work = tmp_path / "work"
    # Two ranks, as `make demo` runs: training in torchrun's processes, so no DeepSpeed
    # process group of an earlier test in this process gets in its way.
    argv = ["fuse", "run", str(config), "--quiet", "--nproc", "2"]
    assert main(argv) == 0
    first = capsys.readouterr()

    # Seed 0 (= train.seed) where a one-seed run trains; seed 1 beside it; one fused store.
    for folder in ("train", "control", "train-seed-1", "control-seed-1"):
        assert (work / folder / "final" / "config.json").is_file(), folder
    runs = {"base": None, "clm-only": "control", "fused": "train"}
    runs |= {"clm-only-seed-1": "control-seed-1", "fused-seed-1": "train-seed-1"}
    for label, trained in runs.items():
        manifest = json.loads((work / "eval" / label / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["label"] == label
        if trained:
            assert manifest["model"]["name_or_path"] == str(work / trained / "final")
    assert sorted(p.name for p in (work / "eval").iterdir()) == sorted(runs)

    # Pooled in compare.json, per seed in the comparisons, the headline with n/2 seeds.
    data = json.loads((work / "report" / "compare.json").read_text())
    assert data["seeds"]["seeds"] == [0, 1]
    (pooled,) = [r for r in data["seeds"]["pooled"] if r["primary"]]
    assert pooled["task"] == "nsmc" and [p["seed"] for p in pooled["per_seed"]] == [0, 1]
    assert pooled["diff"] == pytest.approx(sum(p["diff"] for p in pooled["per_seed"]) / 2)
    fused_vs_control = [c for c in data["comparisons"] if c["base"].startswith("clm-only")]
    assert [c["run"] for c in fused_vs_control] == ["fused-seed-0", "fused-seed-1"]
    line = next(x for x in first.out.splitlines() if x.strip().startswith("nsmc"))
    assert line.endswith(f"{pooled['seeds_agreeing']}/2 seeds"), line
    assert f"fused - clm-only {pooled['diff']:+.4f}" in line
    assert "means over 2 seeds" in first.out
    page = (work / "report" / "compare.html").read_text()
    assert (
        page.index('id="claim"')
        < page.index('id="strength-matrix"')
        < page.index('id="comparison"')
    )

    # A rerun: nothing trained, evaluated or written.
    before = _mtimes(work)
    assert main(argv) == 0
    again = capsys.readouterr()
    assert _mtimes(work) == before
    status = again.err.strip().splitlines()
    assert len(status) == 1 and "finished earlier (2 seeds," in status[0], status
    assert again.out.splitlines()[-4:] == first.out.splitlines()[-4:]

    # One seed's evaluation gone: only it is evaluated again; no training, no other run.
    shutil.rmtree(work / "eval" / "fused-seed-1")
    before = _mtimes(work)
    assert main(argv) == 0
    resumed = capsys.readouterr()
    after = _mtimes(work)
    redone = {p for p in after if p not in before or after[p] != before[p]}
    assert redone, "the deleted evaluation was not made again"
    # The other runs are resumed (their manifests touched), none is evaluated again.
    evaluated = {p for p in redone if "/eval/" in p and not p.endswith("manifest.json")}
    assert evaluated and all("/eval/fused-seed-1/" in p for p in evaluated), sorted(redone)
    assert not any(f"/{d}/" in p for p in redone for d in ("train", "train-seed-1"))
    assert not any(f"/{d}/" in p for p in redone for d in ("control", "control-seed-1"))
    assert "training: finished earlier (2 seeds)" in resumed.err
    assert "evaluate fused-seed-1" in resumed.err
    assert (work / "eval" / "fused-seed-1" / "manifest.json").is_file()

    # A run stopped during seed 1's control: the other trainings are kept, only it trains
    # (in a child process, as a user runs it: DeepSpeed keeps the first process group this
    # process made, so a second in-process training after the first run's group is gone fails).
    shutil.rmtree(work / "control-seed-1")
    before = _mtimes(work)
    done = run_fusebench(*argv)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _mtimes(work)
    trained = {p for p in after if p not in before or after[p] != before[p]}
    assert any("/control-seed-1/final/" in p for p in trained)
    for folder in ("train", "control", "train-seed-1"):
        assert not any(f"/work/{folder}/" in p for p in trained), folder
