"""``fusebench contamination CORPUS... --tasks ...``: which scored documents a corpus holds.

Prints a table per task, writes ``contamination.json`` and ``contamination.md`` under
``--output``, and exits 1 when a task's contaminated share is above ``--max-rate`` (a CI gate).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.cli.options import QuietOption, progress_bars
from tasks.contamination.check import DEFAULT_N

_N = "N-grams"


def contamination_command(
    corpus: Annotated[
        list[Path],
        typer.Argument(
            help="Corpus files or folders: JSONL (field --field, or `messages` "
            "conversations), .txt (a row a line) or .tsv with a header.",
        ),
    ],
    tasks: Annotated[
        str,
        typer.Option(
            "--tasks",
            help="Comma-separated tasks or groups (any `fusebench eval` takes), and `logickor` "
            "for LogicKor's questions and references.",
        ),
    ],
    text_field: Annotated[
        str, typer.Option("--field", help="The text field of JSONL rows, the column of TSV.")
    ] = "text",
    chars: Annotated[
        int,
        typer.Option(
            "--chars",
            min=0,
            help="Character n-gram length (letters and digits, spaces ignored); 0: off.",
            rich_help_panel=_N,
        ),
    ] = DEFAULT_N["chars"],
    words: Annotated[
        int,
        typer.Option("--words", min=0, help="Word n-gram length; 0: off.", rich_help_panel=_N),
    ] = DEFAULT_N["words"],
    max_rate: Annotated[
        float,
        typer.Option(
            "--max-rate",
            min=0.0,
            max=1.0,
            help="Exit 1 when a task has more than this share of its scored documents "
            "contaminated (0: any).",
        ),
    ] = 0.0,
    output: Annotated[
        Path, typer.Option(help="Folder for contamination.json and contamination.md.")
    ] = Path("contamination"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON, not a table.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Documents of the tasks' scored splits that share a long n-gram with the corpus."""
    from fusion.corpus import file_texts
    from harness.contamination import run_check, write_outputs
    from harness.errors import HarnessError
    from reports import contamination as report
    from runrecords.atomic import check_output_path
    from tasks.contamination.check import Settings

    shown = progress_bars(quiet)
    lengths = {unit: n for unit, n in (("chars", chars), ("words", words)) if n}
    if not lengths:
        raise HarnessError("--chars 0 and --words 0: nothing to compare")
    for path in corpus:
        if not path.exists():
            raise HarnessError(f"{path}: corpus file not found")
    check_output_path(output, directory=True)
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    total = sum(
        f.stat().st_size
        for p in corpus
        for f in ([p] if p.is_file() else p.rglob("*"))
        if f.is_file()
    )
    rows = (row for path in corpus for row in file_texts(path, "auto", text_field))
    data = run_check(
        names,
        rows,
        sources=[str(p) for p in corpus],
        settings=Settings(lengths),
        max_rate=max_rate,
        total_bytes=total,
        quiet=not shown,
    )
    json_path, md_path = write_outputs(data, output)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        _print(data)
        typer.echo(f"json: {json_path}")
        typer.echo(f"markdown: {md_path}")
    if report.over(data):
        Console(stderr=True).print(f"[red]{report.verdict(data)}[/]", highlight=False)
        raise typer.Exit(1)


def _print(data: dict) -> None:
    from reports import contamination as report

    table = Table(title="contamination check")
    for column in report.SUMMARY_HEADER:
        table.add_column(column)
    for row in report.summary_rows(data):
        table.add_row(*row)
    console = Console(width=None if Console().is_terminal else 120)
    console.print(table)
    for task in data["tasks"]:
        for finding in task["findings"][:3]:
            overlap = " ".join(finding["overlap"].split())[:80]
            console.print(
                f"  {task['task']}[{finding['index']}] {finding['field']}: {overlap!r} "
                f"<- {finding['corpus'][0]}",
                highlight=False,
                markup=False,
            )
        if task["contaminated"] > 3:
            console.print(f"  {task['task']}: {task['contaminated'] - 3} more in the JSON")
    if not report.over(data):
        console.print(report.verdict(data), highlight=False, markup=False)
