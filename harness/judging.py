"""``fusebench judge`` end to end: targets, the judge client, progress, a record, the table."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness import __version__
from harness.specs import JudgeRequest
from judges import cache as reply_cache
from judges.client import ClientSettings, JudgeClient
from judges.pricing import price_for
from judges.redact import RedactingFilter
from judges.run import ERROR, OK, UNPARSABLE, Judge, JudgeSettings, read_rows
from judges.targets import LOGICKOR_DIR, is_run_dir, resolve
from reports import rundir
from runrecords.atomic import write_json_atomic

RECORD = "judge.json"


def public_url(url: str) -> str:
    """The URL without user:password, for manifests and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _judge_system(template: str) -> dict[str, str]:
    if template != "logickor":
        return {}
    from tasks.logickor import load_templates

    return load_templates().judge_system


def run_judge(request: JudgeRequest, console: Console | None = None) -> list[Path]:
    """Judge every file of the target; returns the judged files."""
    console = console or Console()
    jobs = resolve(request.target, request.output)
    rows = {job: read_rows(job.source) for job in jobs}  # every input checked before any call
    started = rundir.now()
    cache_path = (request.cache or reply_cache.default_path()) if request.use_cache else None
    replies = reply_cache.ReplyCache(cache_path)
    settings = ClientSettings(
        base_url=request.base_url,
        model=request.judge_model,
        timeout=request.timeout,
        max_retries=request.max_retries,
        backoff_base=request.backoff,
        requests_per_minute=request.requests_per_minute,
    )
    client = JudgeClient(settings, request.api_key, replies)
    judge_settings = JudgeSettings(
        template=request.template,
        repeats=request.repeats,
        max_asks=request.max_asks,
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        concurrency=request.concurrency,
    )
    price = price_for(request.judge_model, request.price_in, request.price_out)
    total = sum(2 * len(r) for r in rows.values())
    progress = Progress(
        TextColumn("judging {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=request.quiet,
    )
    # Log lines (``--verbose`` shows the HTTP library's) get the same masking as messages.
    masking = RedactingFilter(client.redact)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(masking)
    try:
        with progress:
            bar = progress.add_task("", total=total)
            judge = Judge(
                client,
                judge_settings,
                _judge_system(request.template),
                price,
                lambda n: progress.advance(bar, n),
            )
            for job in jobs:
                progress.update(bar, description=job.label)
                judge.run(job, rows[job])
    finally:
        client.close()
        replies.close()
        for handler in handlers:
            handler.removeFilter(masking)
    summary = judge.summary
    record = {
        "fusebench_version": __version__,
        "started_at": started,
        "finished_at": rundir.now(),
        "target": str(request.target),
        "judge_model": request.judge_model,
        "base_url": request.public_base_url,
        "api_key_env": request.api_key_env,
        "template": request.template,
        "repeats": request.repeats,
        "sampling": judge_settings.sampling(),
        "max_asks": request.max_asks,
        "files": [str(f) for f in summary.files],
        "judgments": summary.judgments,
        "requests": client.stats.requests,
        "retries": client.stats.retries,
        "cache_hits": client.stats.cache_hits,
        "cache": str(cache_path) if cache_path else None,
        "tokens_spent": {
            "prompt": client.stats.prompt_tokens,
            "completion": client.stats.completion_tokens,
        },
        "cost_usd": summary.cost,
        "price_per_million": None
        if price is None
        else [price.per_million_in, price.per_million_out],
    }
    write_json_atomic(_record_dir(request) / RECORD, record)
    _print_table(request, summary.files, console)
    counts = summary.judgments
    cost = (
        "unknown (no price for this model: --price-in/--price-out)"
        if summary.cost is None
        else f"${summary.cost:.4f}"
    )
    console.print(
        f"judgments: {counts[OK]} ok, {counts[UNPARSABLE]} unparsable, {counts[ERROR]} error "
        f"(unparsable and error are left out of the means, never scored 0); "
        f"requests {client.stats.requests} ({client.stats.retries} retries, "
        f"{client.stats.cache_hits} from the cache); tokens spent "
        f"{client.stats.prompt_tokens} in / {client.stats.completion_tokens} out; "
        f"cost of these judgments {cost}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"judged files: {', '.join(str(f) for f in summary.files)}", highlight=False, soft_wrap=True
    )
    return summary.files


def _record_dir(request: JudgeRequest) -> Path:
    if is_run_dir(request.target):
        base = request.output if request.output is not None else request.target
        return base / LOGICKOR_DIR
    assert request.output is not None
    return request.output


def _print_table(request: JudgeRequest, files: list[Path], console: Console) -> None:
    """LogicKor's table for what was judged, through the reports package (same conventions
    as ``fusebench report``: exact means, half-to-even rounding, unscored judgments counted)."""
    from reports import leaderboard, render
    from reports.load import load

    run = request.output if request.output is not None else request.target
    sources = [run] if is_run_dir(request.target) and (run / rundir.MANIFEST).is_file() else files
    boards = [b for b in leaderboard.build(load(sources).scores, "round") if b.kind == "logickor"]
    console.print(render.boards_md(boards, "round"), highlight=False, soft_wrap=True)
