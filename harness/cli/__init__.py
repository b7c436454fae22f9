"""The ``fusebench`` command: wires one module per command; no logic lives here."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from harness.cli import (
    compare_cmd,
    contamination_cmd,
    eval_cmd,
    fuse_cmd,
    generate_cmd,
    judge_cmd,
    merge_cmd,
    report_cmd,
    tasks_cmd,
    vocab_cmd,
    zoo_cmd,
)
from harness.cli.helptext import flow_app
from runrecords.errors import UserError
from runrecords.space import DiskFull, disk_full, disk_full_errno

app = typer.Typer(
    name="fusebench",
    help="Knowledge fusion of heterogeneous LLMs and Korean evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from harness import __version__

        typer.echo(f"fusebench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Knowledge fusion of heterogeneous LLMs and Korean evaluation."""


app.command("eval")(eval_cmd.eval_command)
app.command("tasks")(tasks_cmd.tasks_command)
app.command("generate")(generate_cmd.generate_command)
app.command("judge")(judge_cmd.judge_command)
app.command("report")(report_cmd.report_command)
app.command("compare")(compare_cmd.compare_command)
app.command("merge")(merge_cmd.merge_command)
app.command("contamination")(contamination_cmd.contamination_command)
app.add_typer(zoo_cmd.app, name="zoo")
app.add_typer(fuse_cmd.app, name="fuse")
app.add_typer(vocab_cmd.app, name="vocab")
flow_app(app)  # docstrings wrapped in the source flow in --help (harness/cli/helptext.py)


def main(argv: list[str] | None = None) -> int:
    """Entry point (its return value is the exit code).

    Usage errors are typer's (usage line, exit 2); fusebench's user errors become one red
    line and their exit code, never a traceback. Anything else is a bug and shows one.
    """
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        app(args=argv)
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    except UserError as err:
        _print_error(err)
        return err.exit_code
    except Exception as err:
        full = _disk_full(err)
        if full is None:
            raise
        _print_error(full)
        return full.exit_code
    return 0


def _print_error(err: UserError) -> None:
    # The message is text, not markup: "fusebench[merge]" or a path with brackets stays.
    Console(stderr=True).print(
        f"[red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True
    )


def _disk_full(err: Exception) -> UserError | None:
    """A full disk met by a write that fusebench's writers do not wrap (a mkdir, a lock
    file, a library's cache): one line naming the file when the error names it."""
    code = disk_full_errno(err)
    if code is None:
        return None
    where = getattr(err, "filename", None)
    return disk_full(where, code) if where else DiskFull(f"cannot write: {err}")


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    """A scheduler's SIGTERM takes the same path as Ctrl-C: save, then stop."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
