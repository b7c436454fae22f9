"""``fusebench fuse extract|align|train|run|chat CONFIG``: the fusion pipeline, stage by stage.

Every stage reads the same YAML config (``configs/tiny-fuse.yaml`` is an example), writes under
its ``work_dir`` and skips what is already done, so a rerun continues an interrupted one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.fuse_chat_cmd import chat_command
from harness.cli.fuse_train_cmd import train_command

app = typer.Typer(help="Knowledge fusion: extract top-k, align and fuse, train.",
                  no_args_is_help=True)  # fmt: skip

ConfigArg = Annotated[Path, typer.Argument(help="The fusion YAML config.")]
NprocOpt = Annotated[
    int, typer.Option("--nproc", min=1, help="Extraction processes (torchrun ranks).")
]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace a fused store made with other settings.")]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars.")]


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _interrupted(stage: str) -> Exception:
    from runrecords.errors import Interrupted

    return Interrupted(f"{stage} interrupted: finished shards are kept; rerun to continue")


def do_extract(config: Any, nproc: int, progress: bool) -> list[Path]:
    """Prepare the corpus and check every row fits every model here, then extract (in this
    process, or in ``nproc`` torchrun workers that split the shards)."""
    from fusion.corpus import prepare
    from fusion.errors import FusionError
    from fusion.extract import check_rows, extract, models, store_dir

    corpus = prepare(config.corpus, config.work_dir)
    _say(f"corpus: {len(corpus)} rows, fingerprint {corpus.fingerprint[:12]} ({corpus.directory})")
    check_rows(config, corpus)
    try:
        if nproc == 1:
            paths = extract(config, progress=progress)
        else:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={nproc}", "-m", "fusion.extract",
                       str(config.source_file), *([] if progress else ["--no-progress"])]  # fmt: skip
            done = subprocess.run(command, env=dict(os.environ), check=False)
            if done.returncode != 0:
                raise FusionError(f"extraction failed in a worker (exit code {done.returncode}); "
                                  "its message is above")  # fmt: skip
            paths = [store_dir(config, entry) for entry in models(config)]
    except KeyboardInterrupt:
        raise _interrupted("extraction") from None
    for path in paths:
        typer.echo(f"store: {path}")
    return paths


def do_align(config: Any, overwrite: bool, progress: bool) -> Path:
    from fusion.align.stage import run_align

    try:
        out = run_align(config, progress=progress, overwrite=overwrite, say=_say)
    except KeyboardInterrupt:
        raise _interrupted("alignment") from None
    typer.echo(f"fused store: {out}")
    typer.echo(f"report: {config.work_dir / 'align' / 'report.json'}")
    return out


@app.command("extract")
def extract_command(config: ConfigArg, nproc: NprocOpt = 1, progress: ProgressOpt = True) -> None:
    """Top-k log-probabilities of the target and every source over the pre-split corpus."""
    from fusion.config import load_config

    do_extract(load_config(config), nproc, progress)


@app.command("align")
def align_command(
    config: ConfigArg, overwrite: OverwriteOpt = False, progress: ProgressOpt = True
) -> None:
    """Align each source to the target, map vocabularies, project, fuse into one store."""
    from fusion.config import load_config

    do_align(load_config(config), overwrite, progress)


app.command("train")(train_command)
app.command("chat")(chat_command)


@app.command("run")
def run_command(
    config: ConfigArg,
    nproc: NprocOpt = 1,
    overwrite: OverwriteOpt = False,
    resume: Annotated[bool, typer.Option(help="Continue training from its checkpoint.")] = True,
    progress: ProgressOpt = True,
) -> None:
    """extract -> align and fuse -> train, skipping what is finished."""
    from fusion.config import load_config

    loaded = load_config(config)
    do_extract(loaded, nproc, progress)
    do_align(loaded, overwrite, progress)
    from fusion.train.launch import run_training

    try:
        model = run_training(loaded, nproc=nproc, resume=resume)
    except KeyboardInterrupt:
        raise _interrupted("training") from None
    typer.echo(f"model: {model}")
