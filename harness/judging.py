"""``fusebench judge`` end to end: targets, the judge client, progress, a record, the table."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness import __version__
from harness.specs import JudgeRequest
from judges import cache as reply_cache
from judges.client import ClientSettings, JudgeClient
from judges.client import public_url as public_url  # where callers have long found it
from judges.pricing import Price, price_for
from judges.redact import RedactingFilter
from judges.run import ERROR, OK, UNPARSABLE, Judge, JudgeSettings, read_rows
from judges.targets import LOGICKOR_DIR, is_run_dir, resolve
from reports import rundir
from runrecords.atomic import write_json_atomic

RECORD = "judge.json"


def _judge_system(template: str) -> dict[str, str]:
    if template != "logickor":
        return {}
    from tasks.logickor import load_templates

    return load_templates().judge_system


def make_client(request: JudgeRequest) -> tuple[JudgeClient, reply_cache.ReplyCache, Path | None]:
    """The judge client of a request, its reply cache and the cache's path (None: off)."""
    cache_path = (request.cache or reply_cache.default_path()) if request.use_cache else None
    replies = reply_cache.ReplyCache(cache_path)
    settings = ClientSettings(
        base_url=request.base_url,
        model=request.judge_model,
        timeout=request.timeout,
        max_retries=request.max_retries,
        backoff_base=request.backoff,
        requests_per_minute=request.requests_per_minute,
        max_connection_failures=request.max_connection_failures,
    )
    return JudgeClient(settings, request.api_key, replies), replies, cache_path


def settings_of(request: JudgeRequest) -> JudgeSettings:
    return JudgeSettings(
        template=request.template,
        repeats=request.repeats,
        max_asks=request.max_asks,
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        concurrency=request.concurrency,
    )


class _Advance:
    """Progress callback of a judging run: ``advance(n)`` and ``advance.describe(label)``."""

    def __init__(self, progress: Progress, bar: Any) -> None:
        self.progress, self.bar = progress, bar

    def __call__(self, n: int) -> None:
        self.progress.advance(self.bar, n)

    def describe(self, label: str) -> None:
        self.progress.update(self.bar, description=label)


@contextmanager
def judging(
    request: JudgeRequest, client: JudgeClient, replies: reply_cache.ReplyCache, total: int
) -> Iterator[_Advance]:
    """A progress bar on stderr, log lines masked like messages (``--verbose`` shows the
    HTTP library's), and the client and cache closed at the end whatever happens."""
    progress = Progress(
        TextColumn("judging {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=request.quiet,
    )
    masking = RedactingFilter(client.redact)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(masking)
    try:
        with progress:
            yield _Advance(progress, progress.add_task("", total=total))
    finally:
        client.close()
        replies.close()
        for handler in handlers:
            handler.removeFilter(masking)


def spending(
    client: JudgeClient, cache_path: Path | None, cost: float | None, price: Price | None
) -> dict[str, Any]:
    """What a run cost, for its record."""
    return {
        "requests": client.stats.requests,
        "retries": client.stats.retries,
        "cache_hits": client.stats.cache_hits,
        "cache": str(cache_path) if cache_path else None,
        "tokens_spent": {
            "prompt": client.stats.prompt_tokens,
            "completion": client.stats.completion_tokens,
        },
        "cost_usd": cost,
        "price_per_million": None
        if price is None
        else [price.per_million_in, price.per_million_out],
    }


def spending_line(client: JudgeClient, cost: float | None) -> str:
    """What a run cost, in words."""
    money = (
        "unknown (no price for this model: --price-in/--price-out)"
        if cost is None
        else f"${cost:.4f}"
    )
    return (
        f"requests {client.stats.requests} ({client.stats.retries} retries, "
        f"{client.stats.cache_hits} from the cache); tokens spent "
        f"{client.stats.prompt_tokens} in / {client.stats.completion_tokens} out; "
        f"cost of these judgments {money}"
    )


def run_judge(request: JudgeRequest, console: Console | None = None) -> list[Path]:
    """Judge every file of the target; returns the judged files."""
    console = console or Console()
    jobs = resolve(request.target, request.output)
    rows = {job: read_rows(job.source) for job in jobs}  # every input checked before any call
    started = rundir.now()
    client, replies, cache_path = make_client(request)
    judge_settings = settings_of(request)
    price = price_for(request.judge_model, request.price_in, request.price_out)
    total = sum(2 * len(r) for r in rows.values())
    with judging(request, client, replies, total) as advance:
        judge = Judge(client, judge_settings, _judge_system(request.template), price, advance)
        for job in jobs:
            advance.describe(job.label)
            judge.run(job, rows[job])
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
        **spending(client, cache_path, summary.cost, price),
    }
    write_json_atomic(_record_dir(request) / RECORD, record)
    _print_table(request, summary.files, console)
    counts = summary.judgments
    console.print(
        f"judgments: {counts[OK]} ok, {counts[UNPARSABLE]} unparsable, {counts[ERROR]} error "
        f"(unparsable and error are left out of the means, never scored 0); "
        f"{spending_line(client, summary.cost)}",
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
