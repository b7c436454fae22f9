"""``fusebench zoo build``: the tiny models that tests and the demo run on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Tiny local models for tests and demos.", no_args_is_help=True)


@app.command("build")
def build_command(
    output: Annotated[Path, typer.Option(help="Folder to write the models into.")] = Path("zoo"),
    quick: Annotated[
        bool, typer.Option(help="Tiny random-initialised models, built in seconds.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Initialisation seed.")] = 0,
    names: Annotated[str | None, typer.Option(help="Comma-separated subset of the zoo.")] = None,
) -> None:
    """Build small causal LMs of several architectures with their own Korean tokenizers."""
    from fusion.zoo import build_zoo

    paths = build_zoo(output, quick=quick, seed=seed,
                      names=names.split(",") if names else None)  # fmt: skip
    for path in paths:
        typer.echo(f"model: {path}")
    typer.echo(f"zoo: {output}")
