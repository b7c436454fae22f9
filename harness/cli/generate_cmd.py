"""``fusebench generate``: LogicKor's two-turn answers from a model into a run directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.options import FromSpec, QuietOption
from harness.errors import HarnessError
from harness.specs import GenerateSpec, Server
from runrecords.lock import hold

_S = "Server"
DTYPES = ("auto", "float16", "bfloat16", "float32")
_T = "Generation"
_G = FromSpec(GenerateSpec)
_D = _G.defaults


def generate_command(
    model: Annotated[str, _G.argument("model")],
    strategies: Annotated[
        str,
        _G.option(
            "strategies",
            help="Comma-separated prompt strategies (default, 1-shot, cot-1-shot).",
        ),
    ] = ",".join(_D.strategies),
    output: Annotated[Path, _G.option("output")] = _D.output,
    base_url: Annotated[str | None, _G.option("base_url", rich_help_panel=_S)] = _D.base_url,
    serve: Annotated[Server | None, _G.option("serve", rich_help_panel=_S)] = _D.serve,
    api_key_env: Annotated[str, _G.option("api_key_env", rich_help_panel=_S)] = _D.api_key_env,
    device: Annotated[str, _G.option("device", rich_help_panel=_S)] = _D.device,
    trust_remote_code: Annotated[
        bool, _G.option("trust_remote_code", rich_help_panel=_S)
    ] = _D.trust_remote_code,
    startup_timeout: Annotated[
        float, _G.option("startup_timeout", min=1, rich_help_panel=_S)
    ] = _D.startup_timeout,
    tensor_parallel_size: Annotated[
        int | None, _G.option("tensor_parallel_size", min=1, rich_help_panel=_S)
    ] = _D.tensor_parallel_size,
    max_model_len: Annotated[
        int | None, _G.option("max_model_len", min=2, rich_help_panel=_S)
    ] = _D.max_model_len,
    dtype: Annotated[str | None, _G.option("dtype", rich_help_panel=_S)] = _D.dtype,
    gpu_memory_utilization: Annotated[
        float | None, _G.option("gpu_memory_utilization", min=0.01, max=1.0, rich_help_panel=_S)
    ] = _D.gpu_memory_utilization,
    chat_template: Annotated[
        Path | None, _G.option("chat_template", rich_help_panel=_T)
    ] = _D.chat_template,
    max_tokens: Annotated[int, _G.option("max_tokens", min=1, rich_help_panel=_T)] = _D.max_tokens,
    stop: Annotated[
        str | None,
        typer.Option(
            help="Stop sequences, comma-separated (default: LogicKor's "
            "list of chat markers); '' for none.",
            rich_help_panel=_T,
        ),
    ] = None,
    concurrency: Annotated[
        int, _G.option("concurrency", min=1, rich_help_panel=_T)
    ] = _D.concurrency,
    timeout: Annotated[float, _G.option("timeout", rich_help_panel=_T)] = _D.timeout,
    overwrite: Annotated[bool, _G.option("overwrite")] = _D.overwrite,
    quiet: QuietOption = _D.quiet,
    verbose: Annotated[bool, typer.Option(help="Show library logs.")] = False,
) -> None:
    """Answer LogicKor's 42 two-turn questions with MODEL; writes OUTPUT/logickor/<strategy>.jsonl."""
    from harness import logs
    from harness.generate import run_generate

    logs.configure(verbose)
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    if not names:
        raise HarnessError("--strategies: give at least one")
    stops = _D.stop if stop is None else [s for s in stop.split(",") if s]
    if dtype is not None and dtype not in DTYPES:
        raise HarnessError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    spec = GenerateSpec(
        model=model,
        output=output,
        strategies=names,
        base_url=base_url,
        serve=serve,
        chat_template=chat_template,
        max_tokens=max_tokens,
        stop=stops,
        concurrency=concurrency,
        timeout=timeout,
        api_key=os.environ.get(api_key_env),
        api_key_env=api_key_env,
        device=device,
        trust_remote_code=trust_remote_code,
        startup_timeout=startup_timeout,
        tensor_parallel_size=tensor_parallel_size,
        max_model_len=max_model_len,
        dtype=dtype,
        gpu_memory_utilization=gpu_memory_utilization,
        overwrite=overwrite,
        quiet=quiet,
    )
    with hold(output, "fusebench generate"):
        result = run_generate(spec)
    for strategy, counts in result.items():
        failed = counts.get("failed", 0)
        typer.echo(
            f"{strategy}: {counts['generated']} questions generated, "
            f"{counts['already_done']} already done"
            + (f", {failed} failed (reasons in logickor/generation.json)" if failed else "")
        )
    typer.echo(f"run directory: {output}")
