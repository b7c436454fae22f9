"""``fusebench merge CONFIG``: parameter-space merge of models of one architecture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fusion.merge.methods import METHODS
from fusion.merge.spec import describe_fields
from harness.cli.options import QuietOption, progress_bars
from runrecords.lock import hold

_MERGEKIT = ", ".join(name for name, backend in METHODS.items() if backend == "mergekit")
_HELP = f"""Merge models of one architecture (mergekit methods, or VaRM) into one model.

Methods: {_MERGEKIT} (mergekit) and varm (FuseChat's variance-based merge).

CONFIG is YAML with these keys (example: configs/merge_varm.yaml):

{describe_fields()}
"""


def merge_command(
    config: Annotated[Path, typer.Argument(help="Merge config (YAML).")],
    output: Annotated[
        Path | None, typer.Option(help="Output model directory (overrides the config's).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
    quiet: QuietOption = False,
) -> None:
    from fusion.merge.run import check_target, merge
    from fusion.merge.spec import MergeError, load_spec

    spec = load_spec(config)
    target = output or spec.output
    if target is None:
        raise MergeError(f"{config}: no output: set the output key or pass --output")
    check_target(spec, target, overwrite)  # refused before the lock creates the folder
    with hold(target, "fusebench merge"):
        merge(spec, target, overwrite=overwrite, progress=progress_bars(quiet))
    typer.echo(f"merged model ({spec.method}): {target}")


merge_command.__doc__ = _HELP
