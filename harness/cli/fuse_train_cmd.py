"""``fusebench fuse train CONFIG``: continue training the target on the fused objective."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.options import QuietOption, progress_bars
from runrecords.lock import hold


def train_command(
    config: Annotated[Path, typer.Argument(help="Fusion config YAML (its `train` section).")],
    nproc: Annotated[
        int,
        typer.Option(help="Processes (ranks) on this machine; >1 starts them through torchrun."),
    ] = 1,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue from the newest intact checkpoint in the output folder (verified by sha256)."
        ),
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Train the target on L = lambda * CLM + (1 - lambda) * L_fuse with DeepSpeed.

    Reads the fused-targets store (work_dir/fused), writes checkpoints, log.jsonl and the
    final Hugging Face model under work_dir/train. SIGTERM or Ctrl-C saves a checkpoint and
    exits 130; --resume continues it exactly. GPUs and several nodes: use the deepspeed
    launcher on `python -m fusion.train.main CONFIG` (see README).
    """
    from fusion import pipeline
    from fusion.config import load_config
    from harness.cli.reporting import cli_reporter

    shown = progress_bars(quiet)
    loaded = load_config(config)
    with hold(loaded.work_dir, "fusebench fuse train"):
        final = pipeline.train(
            loaded, nproc=nproc, resume=resume, progress=shown, report=cli_reporter()
        )
    typer.echo(f"model: {final}")
