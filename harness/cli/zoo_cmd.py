"""``fusebench zoo build``: the small models the demo (trained) and the tests (random) run on."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from fusion.zoo import build_zoo
from harness.cli.options import FromSpec, QuietOption, progress_bars
from runrecords.atomic import check_output_path
from runrecords.lock import hold

app = typer.Typer(help="Small local models for the demo and the tests.", no_args_is_help=True)
_D = FromSpec(build_zoo).defaults


class ZooKind(str, Enum):
    demo = "demo"
    random = "random"
    random_large = "random-large"


@app.command("build")
def build_command(
    output: Annotated[Path, typer.Option(help="Folder to write the models into.")] = Path("zoo"),
    kind: Annotated[
        ZooKind,
        typer.Option(
            help="demo: trained here on training splits, with complementary strengths "
            "(minutes, cached); random: random-initialised tiny models (seconds, for tests); "
            "random-large: the same, wider and deeper."
        ),
    ] = ZooKind.demo,
    quick: Annotated[bool, typer.Option(hidden=True, help="Deprecated: --kind random.")] = False,
    seed: Annotated[int, typer.Option(help="Initialisation and training seed.")] = _D.seed,
    names: Annotated[str | None, typer.Option(help="Comma-separated subset of the zoo.")] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Trained models built at once, each on one thread (default: one per core). "
            "The weights do not depend on it.",
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Build small causal LMs of several architectures with their own Korean tokenizers."""
    check_output_path(output, directory=True)  # a file in the way: named before the lock
    with hold(output, "fusebench zoo build"):
        paths = build_zoo(
            output,
            kind=ZooKind.random.value if quick else kind.value,
            seed=seed,
            names=names.split(",") if names else None,
            progress=progress_bars(quiet),
            jobs=jobs,
        )
    for path in paths:
        typer.echo(f"model: {path}")
    typer.echo(f"zoo: {output}")
