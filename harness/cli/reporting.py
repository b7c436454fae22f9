"""How the CLI shows a pipeline's progress: status lines on stderr, results on stdout."""

from __future__ import annotations

import typer

from fusion.pipeline import Reporter


def cli_reporter() -> Reporter:
    """Status lines on stderr; results as ``label: path`` on stdout, where scripts read them."""
    return Reporter(
        status=lambda text: typer.echo(text, err=True),
        output=lambda label, path: typer.echo(f"{label}: {path}"),
    )
