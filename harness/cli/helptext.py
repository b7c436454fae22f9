"""Help text that flows: docstrings are wrapped at 90 columns in the source, and typer's rich
help keeps those hard line breaks in the command list and in every paragraph after the first
("95% paired-bootstrap" / "interval" on two lines). Joining the lines of each paragraph
once, before typer reads the docstrings, lets the terminal wrap them instead."""

from __future__ import annotations

import inspect

import typer
from typer.models import DefaultPlaceholder


def flow(text: str | None) -> str | None:
    """``text`` with the lines of each paragraph joined; paragraphs (blank-line separated)
    stay apart, and one marked with click's ``\\b`` keeps its lines."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


def flow_app(app: typer.Typer) -> None:
    """Every command's and group's help in ``app`` and its sub-apps, flowed in place."""
    for command in app.registered_commands:
        if command.callback is not None:
            command.help = flow(command.help or inspect.getdoc(command.callback))
    info = app.info
    if isinstance(info.help, str):
        info.help = flow(info.help)
    for group in app.registered_groups:
        if isinstance(group.help, str):
            group.help = flow(group.help)
        if group.typer_instance is not None:
            flow_app(group.typer_instance)
    callback = app.registered_callback
    if callback is not None and not isinstance(callback.help, DefaultPlaceholder):
        callback.help = flow(callback.help)
