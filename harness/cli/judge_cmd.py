"""``fusebench judge``: LogicKor judging with an LLM over any OpenAI-compatible endpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from judges.errors import JudgeError

_J = "Judge"
_R = "Robustness"
_C = "Cost"


def public_url(url: str) -> str:
    """The URL without user:password, for manifests and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _api_key(var: str, base_url: str) -> str | None:
    key = os.environ.get(var)
    if key:
        return key
    if urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1"):
        return None  # local servers (transformers serve, vllm serve) need no key
    raise JudgeError(f"the API key environment variable {var} is not set (keys are read from "
                     "the environment only; --api-key-env names another variable)")  # fmt: skip


def judge_command(
    target: Annotated[
        Path,
        typer.Argument(
            help="Run directory, or LogicKor <org>/<model>/<strategy>.jsonl files or folders."
        ),  # fmt: skip
    ],
    judge_model: Annotated[str, typer.Option(help="Judge model name.", rich_help_panel=_J)] = (
        "gpt-4-1106-preview"
    ),
    base_url: Annotated[
        str, typer.Option(help="OpenAI-compatible endpoint.", rich_help_panel=_J)
    ] = "https://api.openai.com/v1",
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key.", rich_help_panel=_J)
    ] = "OPENAI_API_KEY",
    template: Annotated[
        str,
        typer.Option(
            help="logickor (LogicKor's judge prompts, exactly) or fusebench "
            "(the project's own Korean rubric).",
            rich_help_panel=_J,
        ),  # fmt: skip
    ] = "logickor",
    repeats: Annotated[
        int,
        typer.Option(
            min=1,
            help="Judgments per answer; the score is their mean, and "
            "every score and their spread are kept.",
            rich_help_panel=_J,
        ),  # fmt: skip
    ] = 1,
    temperature: Annotated[
        float, typer.Option(help="Judge temperature.", rich_help_panel=_J)
    ] = 0.0,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            help="Judge reply length limit (default: the server's).", rich_help_panel=_J
        ),  # fmt: skip
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the judged files (required unless TARGET is a run "
            "directory, which is judged in place)."
        ),  # fmt: skip
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Requests in flight at most.", rich_help_panel=_R)
    ] = 8,
    requests_per_minute: Annotated[
        int | None,
        typer.Option(
            min=1, help="Request budget per minute (default: none).", rich_help_panel=_R
        ),  # fmt: skip
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds per request.", rich_help_panel=_R)
    ] = 120.0,
    max_retries: Annotated[
        int,
        typer.Option(
            min=0,
            help="Retries of a failed request (429, 5xx, timeout, connection, malformed reply).",
            rich_help_panel=_R,
        ),  # fmt: skip
    ] = 6,
    backoff: Annotated[
        float, typer.Option(help="Base of the exponential backoff, seconds.", rich_help_panel=_R)
    ] = 1.0,
    max_asks: Annotated[
        int,
        typer.Option(
            min=1,
            help="Asks per judgment while the reply has no valid score; "
            "then it is recorded as unparsable.",
            rich_help_panel=_R,
        ),  # fmt: skip
    ] = 3,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Reply cache (SQLite) [default: $XDG_CACHE_HOME/fusebench/judge-cache.sqlite].",
            rich_help_panel=_R,
        ),  # fmt: skip
    ] = None,
    no_cache: Annotated[
        bool, typer.Option(help="Do not cache replies.", rich_help_panel=_R)
    ] = False,
    price_in: Annotated[
        float | None,
        typer.Option(
            help="USD per 1M prompt tokens (default: known models' list price, else cost unknown).",
            rich_help_panel=_C,
        ),  # fmt: skip
    ] = None,
    price_out: Annotated[
        float | None, typer.Option(help="USD per 1M completion tokens.", rich_help_panel=_C)
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    verbose: Annotated[bool, typer.Option(help="Show library logs.")] = False,
) -> None:
    """Judge LogicKor answers in TARGET with an LLM; prints LogicKor's table at the end."""
    from harness import logs
    from harness.judging import JudgeRequest, run_judge

    logs.configure(verbose)
    if template not in ("logickor", "fusebench"):
        raise JudgeError(f"--template {template!r}: expected logickor or fusebench")
    request = JudgeRequest(
        target=target, output=output, judge_model=judge_model, base_url=base_url,
        api_key=_api_key(api_key_env, base_url), api_key_env=api_key_env,
        public_base_url=public_url(base_url), template=template, repeats=repeats,
        temperature=temperature, max_tokens=max_tokens, concurrency=concurrency,
        requests_per_minute=requests_per_minute, timeout=timeout, max_retries=max_retries,
        backoff=backoff, max_asks=max_asks, cache=None if no_cache else cache,
        use_cache=not no_cache, price_in=price_in, price_out=price_out, quiet=quiet,
    )  # fmt: skip
    run_judge(request)
