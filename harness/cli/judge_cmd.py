"""``fusebench judge``: LogicKor judging with an LLM over any OpenAI-compatible endpoint."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from harness.cli.options import FromSpec, QuietOption
from harness.specs import JudgeRequest, Template
from judges.errors import JudgeError
from runrecords.lock import hold

_P = "Judge"
_R = "Robustness"
_C = "Cost"
_W = "Pairwise"
_J = FromSpec(JudgeRequest)
_D = _J.defaults


def _api_key(var: str, base_url: str) -> str | None:
    key = os.environ.get(var)
    if key:
        return key
    if urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1"):
        return None  # local servers (transformers serve, vllm serve) need no key
    raise JudgeError(
        f"the API key environment variable {var} is not set (keys are read from "
        "the environment only; --api-key-env names another variable)"
    )


def judge_command(
    target: Annotated[Path, _J.argument("target")],
    judge_model: Annotated[str, _J.option("judge_model", rich_help_panel=_P)] = _D.judge_model,
    base_url: Annotated[str, _J.option("base_url", rich_help_panel=_P)] = _D.base_url,
    api_key_env: Annotated[str, _J.option("api_key_env", rich_help_panel=_P)] = _D.api_key_env,
    template: Annotated[Template, _J.option("template", rich_help_panel=_P)] = _D.template,
    repeats: Annotated[int, _J.option("repeats", min=1, rich_help_panel=_P)] = _D.repeats,
    temperature: Annotated[float, _J.option("temperature", rich_help_panel=_P)] = _D.temperature,
    max_tokens: Annotated[int | None, _J.option("max_tokens", rich_help_panel=_P)] = _D.max_tokens,
    output: Annotated[Path | None, _J.option("output")] = _D.output,
    concurrency: Annotated[
        int, _J.option("concurrency", min=1, rich_help_panel=_R)
    ] = _D.concurrency,
    requests_per_minute: Annotated[
        int | None, _J.option("requests_per_minute", min=1, rich_help_panel=_R)
    ] = _D.requests_per_minute,
    timeout: Annotated[float, _J.option("timeout", rich_help_panel=_R)] = _D.timeout,
    max_retries: Annotated[
        int, _J.option("max_retries", min=0, rich_help_panel=_R)
    ] = _D.max_retries,
    backoff: Annotated[float, _J.option("backoff", rich_help_panel=_R)] = _D.backoff,
    max_connection_failures: Annotated[
        int, _J.option("max_connection_failures", min=1, rich_help_panel=_R)
    ] = _D.max_connection_failures,
    max_asks: Annotated[int, _J.option("max_asks", min=1, rich_help_panel=_R)] = _D.max_asks,
    cache: Annotated[Path | None, _J.option("cache", rich_help_panel=_R)] = _D.cache,
    no_cache: Annotated[
        bool, typer.Option(help="Do not cache replies.", rich_help_panel=_R)
    ] = not _D.use_cache,
    price_in: Annotated[float | None, _J.option("price_in", rich_help_panel=_C)] = _D.price_in,
    price_out: Annotated[float | None, _J.option("price_out", rich_help_panel=_C)] = _D.price_out,
    pairwise: Annotated[
        list[Path] | None, _J.option("pairwise", metavar="OTHER", rich_help_panel=_W)
    ] = None,
    limit: Annotated[int | None, _J.option("limit", min=1, rich_help_panel=_W)] = _D.limit,
    quiet: QuietOption = _D.quiet,
    verbose: Annotated[bool, typer.Option(help="Show library logs.")] = False,
) -> None:
    """Judge LogicKor answers in TARGET with an LLM; prints LogicKor's table at the end.
    With --pairwise OTHER: TARGET is the base, and the judge compares its answers with
    OTHER's, in both orders; prints win rates, intervals and the judge's consistency."""
    from harness import logs
    from harness.judging import public_url, run_judge
    from harness.pairwise_judging import run_pairwise

    logs.configure(verbose)
    request = JudgeRequest(
        target=target,
        output=output,
        judge_model=judge_model,
        base_url=base_url,
        api_key=_api_key(api_key_env, base_url),
        api_key_env=api_key_env,
        public_base_url=public_url(base_url),
        template=template,
        repeats=repeats,
        temperature=temperature,
        max_tokens=max_tokens,
        concurrency=concurrency,
        requests_per_minute=requests_per_minute,
        timeout=timeout,
        max_retries=max_retries,
        backoff=backoff,
        max_connection_failures=max_connection_failures,
        max_asks=max_asks,
        cache=None if no_cache else cache,
        use_cache=not no_cache,
        price_in=price_in,
        price_out=price_out,
        pairwise=pairwise or [],
        limit=limit,
        quiet=quiet,
    )
    # The directory judged files and the record go to: --output, or a run judged in place
    # (a target that is neither is refused by run_judge, with nothing to lock).
    written = output if output is not None else (target if target.is_dir() else None)
    if pairwise:
        if output is None:
            raise JudgeError("--pairwise needs --output DIR for its judgments")
        if repeats != 1 or template != _D.template:
            raise JudgeError(
                "--repeats and --template apply to single scores; --pairwise judging asks "
                "once per order with its own prompt"
            )
        with hold(output, "fusebench judge"):
            run_pairwise(request)
        return
    if limit is not None:
        raise JudgeError("--limit applies to --pairwise judging only")
    with hold(written, "fusebench judge") if written is not None else nullcontext():
        run_judge(request)
