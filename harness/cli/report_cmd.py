"""``fusebench report``: leaderboards from run directories, lm-eval output and LogicKor files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli._reporting import (
    Format,
    OutputOption,
    RoundingMode,
    SamplesOption,
    SkipBadOption,
    VerboseOption,
    emit,
    warn_skipped,
)


def report_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories, lm-eval results files or folders, LogicKor judged files or "
            "folders (<org>/<model>/<strategy>.jsonl)."
        ),
    ],
    fmt: Annotated[
        Format, typer.Option("--format", help="md (model cards), csv, json, or html (one file).")
    ] = Format.md,
    rounding: Annotated[
        RoundingMode,
        typer.Option(
            help="round: half-to-even, like LogicKor's score.py; truncate: like its website."
        ),
    ] = RoundingMode.round,
    output: OutputOption = None,
    skip_bad: SkipBadOption = False,
    samples: SamplesOption = 50,
    verbose: VerboseOption = False,
) -> None:
    """Leaderboard: a row per model and shot count or LogicKor strategy, a column per task's
    primary metric (LogicKor: its six categories, single- and multi-turn, overall), sorted."""
    from harness import logs
    from reports import leaderboard, render
    from reports.load import load

    logs.configure(verbose)
    loaded = load(paths, skip_bad=skip_bad)
    warn_skipped(loaded.skipped, loaded.warnings)
    boards = leaderboard.build(loaded.scores, rounding.value)
    if fmt is Format.md:
        text = render.boards_md(boards, rounding.value)
    elif fmt is Format.csv:
        text = render.boards_csv(boards)
    elif fmt is Format.json:
        text = render.boards_json(boards)
    else:
        from reports import html

        text = html.page(loaded, boards, rounding.value, max_samples=samples)
    emit(text, output, "report")
