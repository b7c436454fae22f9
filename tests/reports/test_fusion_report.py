"""The fusion report (``harness/fuse_eval/report.py``) over real evaluation runs (nsmc and
ko_bpb): it opens with the claim (forest plot, fused - clm-only per seed and pooled), then the
strength matrix, then sections other modules add, then the comparisons; the perplexities stay
out of the page's tables but in compare.json; the machine is recorded."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from fusion.layout import WorkDir
from harness.fuse_eval.headline import lines
from harness.fuse_eval.plan import SeedLabels
from harness.fuse_eval.report import Gate, Section, write_report

SEEDS = [
    SeedLabels(1, "clm-only", "fused", "clm-only-seed-1", "fused-seed-1"),
    SeedLabels(2, "clm-only-seed-2", "fused-seed-2", "clm-only-seed-2", "fused-seed-2"),
]


def _work_dir(root: Path, bpb_runs: dict[str, Path], folders: dict[str, str]) -> WorkDir:
    layout = WorkDir(root)
    for folder, which in folders.items():
        shutil.copytree(bpb_runs[which], layout.eval_run(folder))
    return layout


@pytest.fixture(scope="module")
def two_seeds(bpb_runs, tmp_path_factory: pytest.TempPathFactory):
    """Seed 1 in the one-seed folders (clm-only, fused), seed 2 in its own; each seed's
    control is the base run and its fused model the perturbed one."""
    folders = {
        "base": "base",
        "tiny-gpt2": "fused",  # a source, for the matrix
        "clm-only": "base",
        "fused": "fused",
        "clm-only-seed-2": "base",
        "fused-seed-2": "fused",
    }
    layout = _work_dir(tmp_path_factory.mktemp("two-seeds"), bpb_runs, folders)
    extra = Section("## Extra section\n\nfrom another module\n", '<section id="extra"></section>')
    outcome = write_report(
        layout,
        list(folders),
        ["nsmc", "ko_bpb"],
        Gate(None, None),
        [],
        seeds=SEEDS,
        sections=[extra],
        eval_threads=1,
    )
    return layout, outcome


def test_the_page_leads_with_the_claim_then_the_matrix_then_the_rest(two_seeds) -> None:
    layout, _ = two_seeds
    page = layout.compare_html.read_text()
    order = ['id="claim"', 'id="strength-matrix"', 'id="extra"', 'id="comparison"']
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)
    claim = page[positions[0] : positions[1]]
    assert claim.count("data:image/svg+xml") == 1  # the forest plot, first image of the page
    assert page.index("data:image/svg+xml") > positions[0]
    assert "right of 0: fused better" in claim.lower() or "Right of 0" in claim
    md = layout.compare_md.read_text()
    headings = ["## Fused minus clm-only", "## Strength matrix", "## Extra section"]
    headings.append("## clm-only-seed-1 vs base")
    assert [md.index(h) for h in headings] == sorted(md.index(h) for h in headings)
    assert "![fused minus clm-only per task and seed](forest.svg)" in md
    svg = layout.forest_svg.read_text()
    assert svg.lstrip().startswith("<?xml") and "pooled (2/2 seeds)" in svg


def test_perplexities_stay_out_of_the_tables_but_in_json(two_seeds) -> None:
    layout, _ = two_seeds
    md = layout.compare_md.read_text()
    assert "bits_per_byte" in md
    assert "word_perplexity" not in md and "byte_perplexity" not in md
    page = layout.compare_html.read_text()
    tables = "".join(re.findall(r"<table.*?</table>", page, flags=re.S))
    assert "bits_per_byte" in tables and "word_perplexity" not in tables
    data = json.loads(layout.compare_json.read_text())
    metrics = {r["metric"] for c in data["comparisons"] for r in c["rows"]}
    assert {"bits_per_byte", "byte_perplexity", "word_perplexity"} <= metrics
    assert "word_perplexity" in {r["metric"] for r in data["seeds"]["pooled"]}


def test_pooled_rows_seeds_and_headline(two_seeds) -> None:
    layout, outcome = two_seeds
    data = json.loads(layout.compare_json.read_text())
    assert data["seeds"]["seeds"] == [1, 2]
    assert [c["run"] for c in data["comparisons"]][-2:] == ["fused-seed-1", "fused-seed-2"]
    per_seed = {
        (c["run"], r["task"], r["metric"]): r["diff"]
        for c in data["comparisons"][-2:]
        for r in c["rows"]
    }
    for row in data["seeds"]["pooled"]:
        expected = [per_seed[(f"fused-seed-{s}", row["task"], row["metric"])] for s in (1, 2)]
        assert [p["diff"] for p in row["per_seed"]] == pytest.approx(expected)
        assert row["diff"] == pytest.approx(sum(expected) / 2)
        low, high = row["ci95"]
        assert low <= row["diff"] <= high
        assert row["seeds_agreeing"] == 2  # the same runs in both seeds
    text = "\n".join(lines(outcome))
    assert "means over 2 seeds" in text
    for task in ("nsmc", "ko_bpb"):
        line = next(x for x in text.splitlines() if x.strip().startswith(task))
        assert line.endswith("2/2 seeds"), line


def test_strength_matrix_rows_columns_and_seeds(two_seeds) -> None:
    layout, _ = two_seeds
    data = json.loads(layout.compare_json.read_text())["strength_matrix"]
    assert [r["model"] for r in data["rows"]] == ["base", "tiny-gpt2", "clm-only", "fused"]
    headers = [(c["task"], c["metric"], c["num_fewshot"]) for c in data["columns"]]
    assert headers == [("nsmc", "acc", 0), ("ko_bpb", "bits_per_byte", 0)]
    fused = data["rows"][3]
    assert set(fused["per_seed"]) == {"fused-seed-1", "fused-seed-2"}
    assert data["rows"][0]["per_seed"] is None
    bpb = [r["values"][1] for r in data["rows"]]
    assert data["best"][1] == data["rows"][bpb.index(min(bpb))]["model"]  # lower is better
    page = layout.compare_html.read_text()
    matrix = page[page.index('id="strength-matrix"') : page.index('id="extra"')]
    assert 'class="num best"' in matrix and "ko_bpb (bits_per_byte ↓, 0-shot)" in matrix


def test_the_machine_is_recorded_beside_the_table(two_seeds) -> None:
    import platform

    import torch

    layout, _ = two_seeds
    record = json.loads(layout.compare_json.read_text())["machine"]
    assert record["torch"] == torch.__version__ and record["python"] == platform.python_version()
    assert record["cpu"] and record["cores"] >= 1 and record["torch_threads"] >= 1
    assert record["eval_threads"] == 1
    for text in (layout.compare_md.read_text(), layout.compare_html.read_text()):
        assert f"torch {torch.__version__}" in text and "Machine: " in text


def test_one_seed_keeps_todays_labels_and_headline(bpb_runs, tmp_path: Path) -> None:
    folders = {"base": "base", "clm-only": "base", "fused": "fused"}
    layout = _work_dir(tmp_path, bpb_runs, folders)
    outcome = write_report(layout, list(folders), ["nsmc", "ko_bpb"], Gate(0.5, None), [])
    data = json.loads(layout.compare_json.read_text())
    assert [(c["base"], c["run"]) for c in data["comparisons"]] == [
        ("base", "clm-only"),
        ("base", "fused"),
        ("clm-only", "fused"),
    ]
    text = lines(outcome)
    assert text[0] == "task (metric, setting): base / clm-only / fused; fused - clm-only [95% CI]"
    assert not any("seeds" in line for line in text)
    single = next(r for r in data["comparisons"][2]["rows"] if r["primary"])
    row = next(r for r in outcome.rows if r.task == single["task"])
    assert row.diff == pytest.approx(single["diff"])
    assert [row.low, row.high] == pytest.approx(single["ci95"])  # the same interval as before
