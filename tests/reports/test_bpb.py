"""Lower-is-better metrics in the reports: ko_bpb runs through load, compare, the gate, the
leaderboard, the model card and the HTML page, with nsmc (higher is better) beside it."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from reports import compare, html, leaderboard, lmeval, render, rundir, stats
from reports.load import load, load_runs

from .conftest import LIMIT


def _bpb(run: Path) -> float:
    return rundir.read_results(run, 0)["results"]["ko_bpb"]["bits_per_byte,none"]


@pytest.fixture(scope="module")
def ordered(bpb_runs: dict[str, Path]) -> tuple[Path, Path]:
    """(the run with the lower bits per byte, the one with the higher)."""
    low, high = sorted(bpb_runs.values(), key=_bpb)
    assert _bpb(low) < _bpb(high), "the perturbed copy should move bits per byte"
    return low, high


def _row(comparison: compare.Comparison, metric: str) -> compare.MetricRow:
    return next(r for r in comparison.rows if (r.task, r.metric) == ("ko_bpb", metric))


def test_loaded_rows_know_direction_and_per_document_sums(bpb_runs) -> None:
    loaded = load_runs([bpb_runs["base"], bpb_runs["fused"]])
    scores = loaded.scores[loaded.scores["task"] == "ko_bpb"]
    assert set(scores["metric"]) == {"bits_per_byte", "byte_perplexity", "word_perplexity"}
    assert all(h is False for h in scores["higher_is_better"])
    nsmc = loaded.scores[loaded.scores["task"] == "nsmc"]
    assert all(h is True for h in nsmc["higher_is_better"])
    samples = loaded.samples[
        (loaded.samples["task"] == "ko_bpb") & (loaded.samples["metric"] == "bits_per_byte")
    ]
    assert len(samples) == 2 * LIMIT and samples["gold"].isna().all()
    for row in samples.itertuples():
        record = row.record
        assert row.value == record["resps"][0][0]
        assert row.weight == len(record["doc"]["text"].encode("utf-8"))


def test_higher_bpb_is_worse_and_fails_the_gate(ordered) -> None:
    low, high = ordered
    (worse,) = compare.compare(load_runs([low, high]), resamples=2000)
    row = _row(worse, "bits_per_byte")
    assert row.primary and not row.higher_is_better
    assert row.diff > 0 and row.loss == row.diff  # a rise is a loss
    failures = compare.gate([worse], max_drop=0.0, max_drop_rel=None)
    assert [(f.task, f.metric) for f in failures if f.task == "ko_bpb"] == [
        ("ko_bpb", "bits_per_byte")
    ]
    (failure,) = [f for f in failures if f.task == "ko_bpb"]
    assert failure.reason.startswith("rise ") and not failure.higher_is_better
    relative = compare.gate([worse], None, 0.5 * row.diff / row.base)
    assert any(f.task == "ko_bpb" and "relative rise" in f.reason for f in relative)
    assert not [f for f in compare.gate([worse], row.diff * 1.01, None) if f.task == "ko_bpb"]

    (better,) = compare.compare(load_runs([high, low]), resamples=2000)
    assert _row(better, "bits_per_byte").loss < 0
    assert not [f for f in compare.gate([better], 0.0, 0.0) if f.task == "ko_bpb"]


def test_compare_cli_gate_exit_codes(ordered, capsys: pytest.CaptureFixture[str]) -> None:
    low, high = ordered
    gate = ["--max-drop", "0", "--resamples", "500"]
    assert main(["compare", str(low), str(high), *gate]) == 1
    out = capsys.readouterr().out
    assert "| ko_bpb | 0-shot | bits_per_byte ↓ * |" in out
    assert re.search(r"- \S+: ko_bpb 0-shot bits_per_byte .*\(rise .*lower is better\)", out)
    # The reverse: bits per byte fell (better); only nsmc could fail, so gate ko_bpb alone.
    assert main(["compare", str(high), str(low), "--format", "json", *gate]) in (0, 1)
    data = json.loads(capsys.readouterr().out)
    assert not [f for f in data["gate"]["failures"] if f["task"] == "ko_bpb"]
    (bpb,) = [r for r in data["comparisons"][0]["rows"] if r["metric"] == "bits_per_byte"]
    assert bpb["higher_is_better"] is False and bpb["mcnemar_p"] is None


def test_bpb_interval_is_a_paired_ratio_bootstrap(ordered) -> None:
    """The interval recomputes -sum(ll) / (ln 2 * sum(bytes)) on each resample of documents
    (the same documents for both runs), checked with a plain numpy loop on the samples
    files, read independently of the loaders."""
    low, high = ordered
    (comparison,) = compare.compare(load_runs([low, high]), resamples=20_000, seed=1)
    row = _row(comparison, "bits_per_byte")
    assert row.note is None and row.mcnemar is None and row.n == LIMIT

    def pairs(run: Path) -> np.ndarray:
        lines = rundir.samples_path(run, 0, "ko_bpb").read_text().splitlines()
        records = sorted(map(json.loads, lines), key=lambda r: r["doc_id"])
        return np.array([r["bits_per_byte"] for r in records], dtype=float)

    a, b = pairs(low), pairs(high)
    assert -a[:, 0].sum() / (math.log(2) * a[:, 1].sum()) == pytest.approx(row.base, rel=1e-9)
    rng = np.random.default_rng(2024)
    diffs = []
    for _ in range(20_000):
        idx = rng.integers(0, len(a), len(a))
        ratio = [-x[idx, 0].sum() / (math.log(2) * x[idx, 1].sum()) for x in (a, b)]
        diffs.append(ratio[1] - ratio[0])
    expected_low, expected_high = np.percentile(diffs, [2.5, 97.5])
    width = expected_high - expected_low
    assert row.bootstrap.diff.low == pytest.approx(expected_low, abs=0.05 * width)
    assert row.bootstrap.diff.high == pytest.approx(expected_high, abs=0.05 * width)
    # The perplexities are ratios too (exp of -sum ll / sum count), reproduced and bootstrapped.
    for metric in ("byte_perplexity", "word_perplexity"):
        other = _row(comparison, metric)
        assert other.note is None and other.bootstrap is not None and other.mcnemar is None


def test_leaderboard_keeps_bpb_out_of_the_average(bpb_runs) -> None:
    loaded = load([bpb_runs["base"], bpb_runs["fused"]])
    (board,) = leaderboard.build(loaded.scores)
    assert board.columns == ["nsmc", "ko_bpb", "average"]
    assert board.headers["ko_bpb"] == "ko_bpb ↓" and board.lower_is_better == {"ko_bpb"}
    for row in board.rows:
        assert row.scores["average"] == row.scores["nsmc"]  # nsmc is the only higher column
    note = render.board_note(board, "round")
    assert "ko_bpb bits_per_byte (lower is better)" in note and "left out" in note


def test_board_of_bpb_alone_ranks_lowest_first(ordered) -> None:
    low, high = ordered
    loaded = load([high, low])
    scores = loaded.scores[loaded.scores["task"] == "ko_bpb"]
    (board,) = leaderboard.build(scores)
    assert board.ascending and [r.run for r in board.rows] == [low.name, high.name]
    assert "lowest first" in render.board_note(board, "round")


def test_model_card_and_html_read_the_direction(ordered) -> None:
    low, high = ordered
    loaded = load_runs([low, high])
    comparisons = compare.compare(loaded, resamples=500)
    card = compare.model_card(comparisons)
    assert card is not None and card.lower_is_better == {"ko_bpb": "bits_per_byte"}
    labels = [cells[0] for cells in render.model_card_rows(card)]
    assert "ko_bpb (bits_per_byte ↓)" in labels and "nsmc" in labels
    failures = compare.gate(comparisons, 0.0, None)
    page = html.page(
        loaded,
        leaderboard.build(loaded.scores),
        "round",
        2,
        comparisons,
        card,
        failures,
        render.gate_lines(failures, 0.0, None),
    )
    # The bits-per-byte rise is marked as a loss (red), its metric as lower-is-better.
    rise = f"{_row(comparisons[0], 'bits_per_byte').diff:+.4f}"
    assert f'<td class="num down">{rise}</td>' in page
    assert "bits_per_byte ↓ *" in page and "lower is better" in page
    assert "log-likelihood " in page  # the sample browser shows (log-likelihood, count)


def test_results_without_a_named_aggregation_use_lm_evals_defaults() -> None:
    """lm-eval's own wikitext task lists bare metric names: its registry supplies them."""
    results = {
        "results": {"wikitext": {"bits_per_byte,none": 1.2, "word_perplexity,none": 30.0}},
        "configs": {"wikitext": {"metric_list": [{"metric": "bits_per_byte"}]}},
    }
    assert lmeval.aggregation(results, "wikitext", "bits_per_byte") == "bits_per_byte"
    assert lmeval.aggregation(results, "wikitext", "word_perplexity") == "weighted_perplexity"
    assert lmeval.higher_is_better(results, "wikitext", "bits_per_byte") is False
    assert lmeval.ratio_metrics(results, "wikitext") == {"bits_per_byte", "word_perplexity"}
    assert lmeval.higher_is_better(results, "wikitext", "acc") is True
    assert stats.RATIO_STATISTICS["weighted_perplexity"] is stats.weighted_perplexity


def test_eval_run_records_and_prints_ko_bpb(bpb_runs) -> None:
    """`fusebench eval --tasks nsmc,ko_bpb --num-fewshot 0` (the fixture) records the task's
    source and split, and its closing table says which way bits per byte is better."""
    from rich.console import Console

    from harness.summary import summary_table

    manifest = rundir.read_manifest(bpb_runs["base"])
    (entry,) = [t for t in manifest.tasks if t.name == "ko_bpb"]
    assert (entry.benchmark, entry.split, entry.metric) == ("ko_bpb", "validation", "bits_per_byte")
    assert entry.source.startswith("local:")
    console = Console(width=200, record=True)
    console.print(summary_table(bpb_runs["base"]))
    text = console.export_text()
    assert "bits_per_byte (lower is better)" in text and "nsmc" in text
