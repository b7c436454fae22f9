"""``fusebench generate``: LogicKor's two-turn answers from a model into a run directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from harness.errors import HarnessError

_S = "Server"
_G = "Generation"


def generate_command(
    model: Annotated[
        str,
        typer.Argument(
            help="Local model directory, Hub id, or (with --base-url) the name the server knows."
        ),
    ],  # fmt: skip
    strategies: Annotated[
        str, typer.Option(help="Comma-separated prompt strategies (default, 1-shot, cot-1-shot).")
    ] = "default,1-shot,cot-1-shot",
    output: Annotated[
        Path, typer.Option(help="Run directory (resumed if it holds the same generation).")
    ] = Path("runs/generate"),
    base_url: Annotated[
        str | None,
        typer.Option(
            help="An OpenAI-compatible server already serving MODEL.", rich_help_panel=_S
        ),  # fmt: skip
    ] = None,
    serve: Annotated[
        str | None,
        typer.Option(
            help="Start a server for MODEL: transformers (CPU or GPU) or "
            "vllm (GPU; untested here).",
            rich_help_panel=_S,
        ),  # fmt: skip
    ] = None,
    api_key_env: Annotated[
        str,
        typer.Option(
            help="Environment variable with the server's API key, if it needs one.",
            rich_help_panel=_S,
        ),  # fmt: skip
    ] = "OPENAI_API_KEY",
    device: Annotated[
        str, typer.Option(help="--serve transformers: device.", rich_help_panel=_S)
    ] = "cpu",
    trust_remote_code: Annotated[
        bool,
        typer.Option(
            help="Run code shipped with the model (off unless asked).", rich_help_panel=_S
        ),  # fmt: skip
    ] = False,
    chat_template: Annotated[
        Path | None,
        typer.Option(
            help="Jinja chat template for a model without one (--serve).", rich_help_panel=_G
        ),  # fmt: skip
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(min=1, help="Tokens per answer at most.", rich_help_panel=_G)
    ] = 1024,  # fmt: skip
    stop: Annotated[
        str | None,
        typer.Option(
            help="Stop sequences, comma-separated (default: LogicKor's "
            "list of chat markers); '' for none.",
            rich_help_panel=_G,
        ),  # fmt: skip
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Questions in flight.", rich_help_panel=_G)
    ] = 1,  # fmt: skip
    timeout: Annotated[
        float, typer.Option(help="Seconds per request.", rich_help_panel=_G)
    ] = 600.0,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a generation with other settings.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    verbose: Annotated[bool, typer.Option(help="Show library logs.")] = False,
) -> None:
    """Answer LogicKor's 42 two-turn questions with MODEL; writes OUTPUT/logickor/<strategy>.jsonl."""
    from harness import logs
    from harness.generate import DEFAULT_STOP, GenerateSpec, run_generate

    logs.configure(verbose)
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    if not names:
        raise HarnessError("--strategies: give at least one")
    stops = list(DEFAULT_STOP) if stop is None else [s for s in stop.split(",") if s]
    spec = GenerateSpec(
        model=model, output=output, strategies=names, base_url=base_url, serve=serve,
        chat_template=chat_template, max_tokens=max_tokens, stop=stops, concurrency=concurrency,
        timeout=timeout, api_key=os.environ.get(api_key_env), device=device,
        trust_remote_code=trust_remote_code, overwrite=overwrite, quiet=quiet,
    )  # fmt: skip
    result = run_generate(spec)
    for strategy, counts in result.items():
        typer.echo(f"{strategy}: {counts['generated']} questions generated, "
                   f"{counts['already_done']} already done")  # fmt: skip
    typer.echo(f"run directory: {output}")
