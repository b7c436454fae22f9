"""``fusebench zoo build``: the tiny models that tests and the demo run on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fusion.zoo import build_zoo
from harness.cli.options import FromSpec, QuietOption, progress_bars

app = typer.Typer(help="Tiny local models for tests and demos.", no_args_is_help=True)
_D = FromSpec(build_zoo).defaults


@app.command("build")
def build_command(
    output: Annotated[Path, typer.Option(help="Folder to write the models into.")] = Path("zoo"),
    quick: Annotated[
        bool, typer.Option(help="Tiny random-initialised models, built in seconds.")
    ] = _D.quick,
    seed: Annotated[int, typer.Option(help="Initialisation seed.")] = _D.seed,
    names: Annotated[str | None, typer.Option(help="Comma-separated subset of the zoo.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Build small causal LMs of several architectures with their own Korean tokenizers."""
    paths = build_zoo(
        output,
        quick=quick,
        seed=seed,
        names=names.split(",") if names else None,
        progress=progress_bars(quiet),
    )
    for path in paths:
        typer.echo(f"model: {path}")
    typer.echo(f"zoo: {output}")
