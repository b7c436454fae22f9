"""``fusebench fuse extract|align|train|run|chat CONFIG``: the fusion pipeline, stage by stage.

Every stage reads the same YAML config (``configs/tiny-fuse.yaml`` is an example), writes under
its ``work_dir`` and skips what is already done, so a rerun continues an interrupted one. The
stage sequences live in ``fusion/pipeline.py``; this module parses arguments and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.fuse_chat_cmd import chat_command
from harness.cli.fuse_train_cmd import train_command
from harness.cli.options import LegacyProgressOption, QuietOption, progress_bars
from harness.cli.reporting import cli_reporter
from runrecords.lock import hold

app = typer.Typer(
    help="Knowledge fusion: extract top-k, align and fuse, train.", no_args_is_help=True
)

ConfigArg = Annotated[Path, typer.Argument(help="The fusion YAML config.")]
NprocOpt = Annotated[
    int, typer.Option("--nproc", min=1, help="Extraction processes (torchrun ranks).")
]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace a fused store made with other settings.")]
RunOverwriteOpt = Annotated[
    bool,
    typer.Option(
        help="Replace a fused store (and, with an evaluate section, evaluation runs) made "
        "with other settings."
    ),
]


@app.command("extract")
def extract_command(
    config: ConfigArg,
    nproc: NprocOpt = 1,
    quiet: QuietOption = False,
    progress: LegacyProgressOption = True,
) -> None:
    """Top-k log-probabilities of the target and every source over the pre-split corpus."""
    from fusion import pipeline
    from fusion.config import load_config

    shown = progress_bars(quiet, progress)
    loaded = load_config(config)
    with hold(loaded.work_dir, "fusebench fuse extract"):
        pipeline.extract(loaded, nproc=nproc, progress=shown, report=cli_reporter())


@app.command("align")
def align_command(
    config: ConfigArg,
    overwrite: OverwriteOpt = False,
    quiet: QuietOption = False,
    progress: LegacyProgressOption = True,
) -> None:
    """Align each source to the target, map vocabularies, project, fuse into one store."""
    from fusion import pipeline
    from fusion.config import load_config

    shown = progress_bars(quiet, progress)
    loaded = load_config(config)
    with hold(loaded.work_dir, "fusebench fuse align"):
        pipeline.align(loaded, overwrite=overwrite, progress=shown, report=cli_reporter())


app.command("train")(train_command)
app.command("chat")(chat_command)


@app.command("run")
def run_command(
    config: ConfigArg,
    nproc: NprocOpt = 1,
    overwrite: RunOverwriteOpt = False,
    resume: Annotated[bool, typer.Option(help="Continue training from its checkpoint.")] = True,
    quiet: QuietOption = False,
    progress: LegacyProgressOption = True,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            metavar="S[,S...]",
            help="Training seeds, in place of the config's evaluate.seeds (e.g. 0,1,2): the "
            "fused model and its control are trained and evaluated once per seed; seeds "
            "already finished in the work_dir are reused.",
        ),
    ] = None,
) -> None:
    """extract -> align and fuse -> train, skipping what is finished. With an `evaluate`
    section, then a CLM-only control, evaluation of base, control, fused (and sources), the
    comparison under work_dir/report, a headline, and exit 1 if the gate fails."""
    from fusion.config import load_config, with_seeds

    shown = progress_bars(quiet, progress)
    loaded = load_config(config)
    if seeds is not None:
        loaded = with_seeds(loaded, seeds)
    with hold(loaded.work_dir, "fusebench fuse run"):
        _run(loaded, nproc=nproc, overwrite=overwrite, resume=resume, shown=shown)


def _run(loaded: Any, *, nproc: int, overwrite: bool, resume: bool, shown: bool) -> None:
    """``fuse run`` inside its work_dir's lock: the fusion, then the evaluation if asked."""
    from fusion import pipeline

    if loaded.evaluate is None:
        pipeline.fuse(
            loaded,
            nproc=nproc,
            overwrite=overwrite,
            resume=resume,
            progress=shown,
            report=cli_reporter(),
        )
        return
    from harness import logs
    from harness.fuse_eval.headline import lines
    from harness.fuse_eval.stage import evaluate_fusion

    logs.configure()
    outcome = evaluate_fusion(
        loaded,
        nproc=nproc,
        overwrite=overwrite,
        resume=resume,
        progress=shown,
        report=cli_reporter(),
    )
    for line in lines(outcome):
        typer.echo(line)
    if outcome.failed:
        raise typer.Exit(1)
