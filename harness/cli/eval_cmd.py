"""``fusebench eval``: classification benchmarks through lm-eval into a run directory."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from harness.backends import Backend, BackendOptions
from harness.cli.options import FromSpec, QuietOption, progress_bars
from harness.errors import HarnessError
from harness.specs import EvalSpec
from runrecords.lock import hold

_B = "Backend"
_R = "Run"
_C = "Chat models"
_E, _O = FromSpec(EvalSpec), FromSpec(BackendOptions)
_DE, _DO = _E.defaults, _O.defaults


def _parse_shots(value: str) -> list[int]:
    """``0,5`` -> [0, 5]; an empty item (``0,,5``, ``0,``) is a typo, not a shot count to drop."""
    items = [item.strip() for item in value.split(",")]
    if not any(items):
        raise HarnessError("--num-fewshot: give at least one shot count")
    if not all(items):
        raise HarnessError(f"--num-fewshot {value!r}: empty item (expected e.g. 0 or 0,5)")
    try:
        shots = [int(item) for item in items]
    except ValueError:
        raise HarnessError(f"--num-fewshot {value!r}: expected integers such as 0 or 0,5") from None
    if any(n < 0 for n in shots):
        raise HarnessError(f"--num-fewshot {value!r}: shot counts must be >= 0")
    return shots


def _parse_limit(limit: float | None) -> int | float | None:
    """A document count (>= 1), a fraction (< 1), or None; nan and inf are refused (nan
    would be recorded in the manifest as it is, inf has no count)."""
    if limit is None:
        return None
    if not math.isfinite(limit) or limit <= 0:
        raise HarnessError(f"--limit {limit}: expected a number > 0 (a count, or a fraction < 1)")
    return int(limit) if limit >= 1 else limit


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def eval_command(
    model: Annotated[str, _E.argument("model")],
    tasks: Annotated[
        str,
        _E.option(
            "tasks",
            help="Comma-separated task or group names: fusebench's, lm-eval's, or in "
            "--include-path (see `fusebench tasks --all`).",
        ),
    ] = ",".join(_DE.tasks),
    include_path: Annotated[list[Path] | None, _E.option("include_path", "--include-path")] = None,
    num_fewshot: Annotated[str, _E.option("num_fewshot")] = ",".join(
        str(shots) for shots in _DE.num_fewshot
    ),
    output: Annotated[Path, _E.option("output", rich_help_panel=_R)] = _DE.output,
    limit: Annotated[float | None, _E.option("limit", rich_help_panel=_R)] = _DE.limit,
    seed: Annotated[int, _E.option("seed", rich_help_panel=_R)] = _DE.seed,
    overwrite: Annotated[bool, _E.option("overwrite", rich_help_panel=_R)] = _DE.overwrite,
    cache_dir: Annotated[Path | None, _E.option("cache_dir", rich_help_panel=_R)] = _DE.cache_dir,
    label: Annotated[str | None, _E.option("label", rich_help_panel=_R)] = _DE.label,
    backend: Annotated[Backend, _E.option("backend", rich_help_panel=_B)] = _DE.backend,
    batch_size: Annotated[int, _O.option("batch_size", rich_help_panel=_B)] = _DO.batch_size,
    device: Annotated[str | None, _O.option("device", rich_help_panel=_B)] = _DO.device,
    dtype: Annotated[str, _O.option("dtype", rich_help_panel=_B)] = _DO.dtype,
    revision: Annotated[str | None, _O.option("revision", rich_help_panel=_B)] = _DO.revision,
    max_length: Annotated[int | None, _O.option("max_length", rich_help_panel=_B)] = _DO.max_length,
    trust_remote_code: Annotated[
        bool, _O.option("trust_remote_code", rich_help_panel=_B)
    ] = _DO.trust_remote_code,
    tensor_parallel_size: Annotated[
        int, typer.Option(help="vllm: GPUs per model replica.", rich_help_panel=_B)
    ] = 1,
    data_parallel_size: Annotated[
        int, typer.Option(help="vllm: model replicas.", rich_help_panel=_B)
    ] = 1,
    apply_chat_template: Annotated[
        bool, _E.option("apply_chat_template", "--apply-chat-template", rich_help_panel=_C)
    ] = False,
    chat_template_name: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Apply the tokenizer's chat template of this name (e.g. tool_use): lm-eval's "
            "--apply_chat_template NAME. Implies --apply-chat-template.",
            rich_help_panel=_C,
        ),
    ] = None,
    system_instruction: Annotated[
        str | None, _E.option("system_instruction", metavar="TEXT", rich_help_panel=_C)
    ] = _DE.system_instruction,
    fewshot_as_multiturn: Annotated[
        bool | None,
        _E.option(
            "fewshot_as_multiturn",
            "--fewshot-as-multiturn/--no-fewshot-as-multiturn",
            rich_help_panel=_C,
        ),
    ] = _DE.fewshot_as_multiturn,
    nproc: Annotated[int, _E.option("nproc", rich_help_panel=_B)] = _DE.nproc,
    quiet: QuietOption = False,
    verbose: Annotated[bool, typer.Option(help="Show library logs.")] = False,
) -> None:
    """Evaluate MODEL with lm-eval on fusebench's tasks or any other lm-eval task; writes --output."""
    from harness import logs
    from harness.evaluate import run_eval

    logs.configure(verbose)
    progress_bars(quiet)
    extra = {}
    if backend is Backend.vllm:
        extra = {
            "tensor_parallel_size": tensor_parallel_size,
            "data_parallel_size": data_parallel_size,
        }
    if label is not None and not label.strip():
        raise HarnessError("--label must not be empty")
    shots, documents = _parse_shots(num_fewshot), _parse_limit(limit)
    spec = EvalSpec(
        model=model,
        tasks=tasks.split(","),
        include_path=include_path or [],
        output=output,
        num_fewshot=shots,
        backend=backend,
        options=BackendOptions(
            batch_size=batch_size,
            device=device or _default_device(),
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            revision=revision,
            max_length=max_length,
            extra=extra,
        ),
        limit=documents,
        seed=seed,
        overwrite=overwrite,
        cache_dir=cache_dir,
        label=label,
        apply_chat_template=chat_template_name
        if chat_template_name is not None
        else apply_chat_template,
        system_instruction=system_instruction,
        fewshot_as_multiturn=fewshot_as_multiturn,
        nproc=nproc,
    )
    with hold(output, "fusebench eval"):
        run = run_eval(spec)
    from rich.console import Console

    from harness.summary import summary_table

    Console().print(summary_table(run))
    typer.echo(f"run directory: {run}")
