"""``fusebench compare``: base versus fused with paired statistics, and a regression gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.cli._reporting import (
    Format,
    OutputOption,
    SamplesOption,
    SkipBadOption,
    VerboseOption,
    emit,
    warn_skipped,
)
from reports.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

_G = "Regression gate"
_S = "Statistics"


def compare_command(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="BASE FUSED and any more: run directories (or lm-eval results, or LogicKor "
            "model folders); each is compared with the first. Pairwise judgment folders "
            "(judge --pairwise --output DIR) are reported as win rates."
        ),
    ],
    max_drop: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 if a task's primary score falls by more than this (its own units).",
            rich_help_panel=_G,
        ),
    ] = None,
    max_drop_rel: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 if it falls by more than this fraction of the base score (0.02 = 2%).",
            rich_help_panel=_G,
        ),
    ] = None,
    min_win_rate: Annotated[
        float | None,
        typer.Option(
            help="Pairwise: exit 1 if a model's overall win rate against the base is below "
            "this (0.5 = no worse than even).",
            rich_help_panel=_G,
        ),
    ] = None,
    allow_partial: Annotated[
        bool,
        typer.Option(
            help="Pairwise: let --min-win-rate pass on a model judged on part of the questions "
            "(an OTHER that lacks some of the base's, or the base some of its, or --limit); "
            "without it the gate fails on partial coverage.",
            rich_help_panel=_G,
        ),
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", help="md, csv, json or html.")] = Format.md,
    output: OutputOption = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Compare what the runs share even when task versions, shots, limits or "
            "documents differ."
        ),
    ] = False,
    resamples: Annotated[
        int, typer.Option(help="Bootstrap resamples.", rich_help_panel=_S)
    ] = DEFAULT_RESAMPLES,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.", rich_help_panel=_S)] = DEFAULT_SEED,
    skip_bad: SkipBadOption = False,
    samples: SamplesOption = 50,
    verbose: VerboseOption = False,
) -> None:
    """Per task, metric and setting: both values, the difference, its 95% paired-bootstrap
    interval and (accuracy) an exact McNemar p-value; the model-card table for several shot
    counts; with --max-drop / --max-drop-rel, exit 1 listing every task that fell too far."""
    from harness import logs
    from reports import compare, leaderboard, render
    from reports.errors import ReportError
    from reports.load import load_runs

    logs.configure(verbose)
    from harness.cli import _pairwise

    pair_dirs, runs = _pairwise.split(runs)
    if runs and len(runs) < 2:
        raise ReportError("compare needs BASE and at least one other run")
    for name, value in (("--max-drop", max_drop), ("--max-drop-rel", max_drop_rel)):
        if value is not None and value < 0:
            raise ReportError(f"{name} must be >= 0")
    if min_win_rate is not None and not 0 <= min_win_rate <= 1:
        raise ReportError("--min-win-rate must be between 0 and 1")
    if resamples < 100:
        raise ReportError("--resamples must be at least 100")
    pair = _pairwise.load(pair_dirs, min_win_rate, resamples, seed, allow_partial)
    if pair is not None and fmt is Format.csv:
        raise ReportError("pairwise judgments: --format md, json or html (not csv)")
    if not runs:
        assert pair is not None  # typer requires at least one path
        _pairwise_only(pair, fmt, output, samples)
        if pair.failures:
            raise typer.Exit(1)
        return
    loaded = load_runs(runs, skip_bad=skip_bad)
    warn_skipped(loaded.skipped, loaded.warnings)
    comparisons = compare.compare(loaded, force=force, resamples=resamples, seed=seed)
    card = compare.model_card(comparisons)
    failures = compare.gate(comparisons, max_drop, max_drop_rel)
    gate = render.gate_lines(failures, max_drop, max_drop_rel)
    if fmt is Format.md:
        text = render.comparisons_md(comparisons, card, gate)
        text += ("\n" + pair.markdown()) if pair else ""
    elif fmt is Format.csv:
        text = render.comparisons_csv(comparisons)
    elif fmt is Format.json:
        text = render.comparisons_json(comparisons, card, failures, max_drop, max_drop_rel)
        text = pair.merged_json(text) if pair else text
    else:
        from reports import html

        boards = leaderboard.build(loaded.scores, "round")
        text = html.page(
            loaded,
            boards,
            "round",
            samples,
            comparisons,
            card,
            failures,
            gate,
            **(pair.html(samples) if pair else {}),
        )
    emit(text, output, "comparison")
    if output is not None or fmt is not Format.md:  # else both are in the Markdown above
        console = Console(stderr=True)
        for note in (n for c in comparisons for n in c.notes):
            console.print(f"[yellow]note[/] {note}", highlight=False, soft_wrap=True)
        for index, line in enumerate(gate):
            style = ("red" if failures else "green") if index == 0 else "default"
            console.print(line, style=style, highlight=False, soft_wrap=True)
        if pair is not None:
            _print_gate(pair)
    if failures or (pair is not None and pair.failures):
        raise typer.Exit(1)


def _print_gate(pair) -> None:
    console = Console(stderr=True)
    for index, line in enumerate(pair.gate_lines):
        style = ("red" if pair.failures else "green") if index == 0 else "default"
        console.print(line, style=style, highlight=False, soft_wrap=True, markup=False)


def _pairwise_only(pair, fmt: Format, output: Path | None, samples: int) -> None:
    """Pairwise judgment folders alone: their tables, the gate, the HTML page."""
    from harness.cli._pairwise import empty_loaded

    if fmt is Format.md:
        text = pair.markdown()
    elif fmt is Format.json:
        text = pair.merged_json(None)
    else:
        from reports import html

        text = html.page(empty_loaded(), [], "round", samples, **pair.html(samples))
    emit(text, output, "comparison")
    if output is not None or fmt is not Format.md:
        _print_gate(pair)
