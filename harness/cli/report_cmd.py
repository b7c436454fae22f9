"""``fusebench report``: leaderboards from run directories, lm-eval output and LogicKor files."""

from __future__ import annotations

import json
from dataclasses import asdict
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
            "folders (<org>/<model>/<strategy>.jsonl), pairwise judgment folders (judge "
            "--pairwise --output DIR)."
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
    from harness.cli import _pairwise
    from reports import agreement, language, leaderboard, render
    from reports.errors import ReportError
    from reports.jsonio import dumps_strict
    from reports.load import load
    from reports.pairwise import json_safe
    from reports.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

    logs.configure(verbose)

    pair_dirs, paths = _pairwise.split(paths)
    pair = _pairwise.load(pair_dirs, None, DEFAULT_RESAMPLES, DEFAULT_SEED)
    if pair is not None and fmt is Format.csv:
        raise ReportError("pairwise judgments: --format md, json or html (not csv)")
    if paths:
        loaded = load(paths, skip_bad=skip_bad)
        warn_skipped(loaded.skipped, loaded.warnings)
    else:
        loaded = _pairwise.empty_loaded()
    boards = leaderboard.build(loaded.scores, rounding.value)
    compliance = language.compliance(loaded.samples)
    agree_scores = agreement.scores(loaded.samples)
    agree_verdicts = agreement.verdicts(pair.frame) if pair else []
    if fmt is Format.md:
        text = render.boards_md(boards, rounding.value) if paths else ""
        if compliance:
            text += "\n" + language.to_markdown(compliance)
        text += ("\n" + pair.markdown()) if pair else ""
        if agree_scores or agree_verdicts:
            text += "\n" + agreement.to_markdown(agree_scores, agree_verdicts)
    elif fmt is Format.csv:
        text = render.boards_csv(boards)
    elif fmt is Format.json:
        text = render.boards_json(boards) if paths else "{}"
        data = json.loads(text)
        if compliance:
            data["language_compliance"] = [asdict(c) for c in compliance]
        if agree_scores or agree_verdicts:
            data["judge_agreement"] = json_safe(
                {
                    "scores": [asdict(r) for r in agree_scores],
                    "verdicts": [asdict(r) for r in agree_verdicts],
                }
            )
        text = dumps_strict(data)
        text = pair.merged_json(text) if pair else text
    else:
        from reports import html

        text = html.page(
            loaded,
            boards,
            rounding.value,
            max_samples=samples,
            compliance=language.view(compliance),
            agreement=agreement.views(agree_scores, agree_verdicts),
            **(pair.html(samples) if pair else {}),
        )
    emit(text, output, "report")
