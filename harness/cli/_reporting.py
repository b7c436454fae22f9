"""What ``report`` and ``compare`` share: output formats and where the output goes."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape


class Format(str, Enum):
    md = "md"
    csv = "csv"
    json = "json"
    html = "html"


class RoundingMode(str, Enum):
    round = "round"
    truncate = "truncate"


# Options both commands take, declared once so their help and defaults cannot drift apart.
OutputOption = Annotated[Path | None, typer.Option(help="Write here instead of stdout.")]
SkipBadOption = Annotated[
    bool, typer.Option(help="Leave out bad or foreign files (listed) and load the rest.")
]
SamplesOption = Annotated[
    int, typer.Option(help="html: documents per run, task and setting in the sample browser.")
]
VerboseOption = Annotated[bool, typer.Option(help="Show library logs.")]


def emit(text: str, output: Path | None, what: str) -> None:
    """To ``output`` (atomically, saying where it went) or to stdout."""
    if output is None:
        print(text, end="" if text.endswith("\n") else "\n")
        return
    from runrecords.atomic import check_output_path, write_text_atomic

    if output.is_dir():
        from reports.errors import ReportError

        raise ReportError(f"--output {output}: is a directory; give a file name")
    check_output_path(output)
    write_text_atomic(output, text)
    Console(stderr=True).print(f"{what}: {output}", highlight=False, soft_wrap=True)


def warn_skipped(skipped: list[str], warnings: Sequence[str] = ()) -> None:
    """Bad files left out, then what loaded but deserves a look (a NaN metric)."""
    console = Console(stderr=True)
    for line in skipped:
        console.print(f"[yellow]skipped[/] {escape(line)}", highlight=False, soft_wrap=True)
    for line in warnings:
        console.print(f"[yellow]warning[/] {escape(line)}", highlight=False, soft_wrap=True)
