"""``fusebench fuse chat CONFIG``: FuseChat, pairwise fusion into a pivot then a merge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.options import LegacyProgressOption, QuietOption, progress_bars
from runrecords.lock import hold


def chat_command(
    config: Annotated[Path, typer.Argument(help="The FuseChat YAML config.")],
    nproc: Annotated[
        int, typer.Option("--nproc", min=1, help="Extraction and training processes.")
    ] = 1,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace a pair's fused store (and, with an evaluate section, evaluation runs) "
            "made with other settings."
        ),
    ] = False,
    quiet: QuietOption = False,
    progress: LegacyProgressOption = True,
) -> None:
    """Fuse each source into the pivot (extract -> align -> train, one pair at a time), then
    merge the pair targets relative to the pivot (merge.method, VaRM by default).

    Writes work_dir/{corpus,stores} (shared extraction: the pivot once), work_dir/pairs/<source>/
    (align, fused, train/final) and work_dir/merged. A rerun skips finished pairs and a
    finished merge; an interrupted pair resumes from its training checkpoint. With an
    `evaluate` section, then the pivot, the pair targets and the merge are evaluated (chat
    template on by default) into work_dir/eval, merged is compared with the pivot under
    work_dir/report, and the command exits 1 if the gate (max_drop, max_drop_rel) fails.
    """
    from fusion import pipeline
    from fusion.chat import load_chat_config
    from harness.cli.reporting import cli_reporter

    shown = progress_bars(quiet, progress)
    loaded = load_chat_config(config)
    with hold(loaded.work_dir, "fusebench fuse chat"):
        if loaded.evaluate is None:
            pipeline.fuse_chat(
                loaded, nproc=nproc, overwrite=overwrite, progress=shown, report=cli_reporter()
            )
            return
        from harness import logs
        from harness.fuse_eval.chat_stage import evaluate_chat, lines

        logs.configure()
        outcome = evaluate_chat(
            loaded, nproc=nproc, overwrite=overwrite, progress=shown, report=cli_reporter()
        )
    for line in lines(outcome):
        typer.echo(line)
    if outcome.failed:
        raise typer.Exit(1)
