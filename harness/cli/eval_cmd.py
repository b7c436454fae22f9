"""``fusebench eval``: classification benchmarks through lm-eval into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.errors import HarnessError

_B = "Backend"
_R = "Run"


def _parse_shots(value: str) -> list[int]:
    try:
        shots = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise HarnessError(f"--num-fewshot {value!r}: expected integers such as 0 or 0,5") from None
    if not shots:
        raise HarnessError("--num-fewshot: give at least one shot count")
    return shots


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def eval_command(
    model: Annotated[str, typer.Argument(help="Local model directory or Hub id.")],
    tasks: Annotated[
        str, typer.Option(help="Comma-separated task or group names (see `fusebench tasks`).")
    ] = "ko_fusellm",
    num_fewshot: Annotated[
        str, typer.Option(help="Shot counts, one or a list such as 0,5 (all run in this command).")
    ] = "0",
    output: Annotated[
        Path,
        typer.Option(
            help="Run directory to write (resumed if it holds the same run).", rich_help_panel=_R
        ),
    ] = Path("runs/eval"),
    limit: Annotated[
        float | None,
        typer.Option(
            help="Documents per task (a fraction if < 1); for quick checks only.",
            rich_help_panel=_R,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed for python, numpy, torch and few-shot sampling.", rich_help_panel=_R
        ),
    ] = 1234,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace a run with different settings in --output.", rich_help_panel=_R),
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Cache model responses here, keyed by model weights, backend and dtype.",
            rich_help_panel=_R,
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="hf (transformers; each context run once per question), hf-lm-eval "
            "(lm-eval's own transformers model, for comparison) or vllm (GPU).",
            rich_help_panel=_B,
        ),
    ] = "hf",
    batch_size: Annotated[
        int,
        typer.Option(
            help="Sequences per forward pass (hf: contexts, whose answer choices then share "
            "one more pass).",
            rich_help_panel=_B,
        ),
    ] = 8,
    device: Annotated[
        str | None,
        typer.Option(
            help="cpu, cuda, cuda:1 ... (default: cuda when available).", rich_help_panel=_B
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="auto, float32, bfloat16, float16.", rich_help_panel=_B)
    ] = "auto",
    revision: Annotated[
        str | None, typer.Option(help="Hub revision (branch, tag or commit).", rich_help_panel=_B)
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Context length (default: the model's).", rich_help_panel=_B)
    ] = None,
    trust_remote_code: Annotated[
        bool,
        typer.Option(
            help="Run code shipped with the model (off unless asked).", rich_help_panel=_B
        ),
    ] = False,
    tensor_parallel_size: Annotated[
        int, typer.Option(help="vllm: GPUs per model replica.", rich_help_panel=_B)
    ] = 1,
    data_parallel_size: Annotated[
        int, typer.Option(help="vllm: model replicas.", rich_help_panel=_B)
    ] = 1,
    verbose: Annotated[bool, typer.Option(help="Show library logs.")] = False,
) -> None:
    """Evaluate MODEL on kobest / nsmc / korunsmile with lm-eval; writes --output."""
    from harness import logs
    from harness.backends import BackendOptions
    from harness.evaluate import EvalSpec, run_eval

    logs.configure(verbose)
    extra = {}
    if backend == "vllm":
        extra = {"tensor_parallel_size": tensor_parallel_size,
                 "data_parallel_size": data_parallel_size}  # fmt: skip
    if limit is not None and limit <= 0:
        raise HarnessError("--limit must be > 0")
    spec = EvalSpec(
        model=model,
        tasks=tasks.split(","),
        output=output,
        num_fewshot=_parse_shots(num_fewshot),
        backend=backend,
        options=BackendOptions(
            batch_size=batch_size, device=device or _default_device(), dtype=dtype,
            trust_remote_code=trust_remote_code, revision=revision, max_length=max_length,
            extra=extra,
        ),
        limit=int(limit) if limit is not None and limit >= 1 else limit,
        seed=seed,
        overwrite=overwrite,
        cache_dir=cache_dir,
    )  # fmt: skip
    run = run_eval(spec)
    from rich.console import Console

    from harness.summary import summary_table

    Console().print(summary_table(run))
    typer.echo(f"run directory: {run}")
