"""``fusebench judge BASE --pairwise OTHER``: pairwise judging end to end, then its tables.

The same client, cache, concurrency, rate limits, progress and cost accounting as
``fusebench judge`` (``harness.judging``); the judgments go to ``OUTPUT/pairwise/<strategy>/
<other>.jsonl`` with a record ``OUTPUT/pairwise.json``, and the tables of
``reports.pairwise`` are printed at the end.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from harness import __version__
from harness.judging import judging, make_client, settings_of, spending, spending_line
from harness.specs import JudgeRequest
from judges.pairwise import TURNS, PairwiseJudge, pair_rows
from judges.pricing import price_for
from judges.run import ERROR, OK, UNPARSABLE, read_rows
from judges.targets import PAIRWISE_RECORD, resolve_pairwise
from reports import rundir
from runrecords.atomic import write_json_atomic


def run_pairwise(request: JudgeRequest, console: Console | None = None) -> list[Path]:
    """Judge BASE against every ``--pairwise`` model; returns the judgment files."""
    console = console or Console()
    jobs = resolve_pairwise(request.target, list(request.pairwise), request.output)
    # Every input read and paired before any call.
    pairs = {job: pair_rows(read_rows(job.base), read_rows(job.other), job) for job in jobs}
    if request.limit is not None:
        pairs = {job: p[: request.limit] for job, p in pairs.items()}
    started = rundir.now()
    client, replies, cache_path = make_client(request)
    settings = settings_of(request)
    price = price_for(request.judge_model, request.price_in, request.price_out)
    total = sum(len(TURNS) * len(p) for p in pairs.values())
    with judging(request, client, replies, total) as advance:
        judge = PairwiseJudge(client, settings, price, advance)
        for job in jobs:
            advance.describe(f"{job.other_label} vs {job.base_label} · {job.strategy}")
            judge.run(job, pairs[job])
    summary = judge.summary
    assert request.output is not None  # resolve_pairwise refuses a run without one
    write_json_atomic(
        request.output / PAIRWISE_RECORD,
        {
            "fusebench_version": __version__,
            "kind": "pairwise",
            "started_at": started,
            "finished_at": rundir.now(),
            "base": str(request.target),
            "others": [str(p) for p in request.pairwise],
            "limit": request.limit,
            "judge_model": request.judge_model,
            "base_url": request.public_base_url,
            "api_key_env": request.api_key_env,
            "sampling": settings.sampling(),
            "max_asks": request.max_asks,
            "files": [str(f) for f in summary.files],
            "judgments": summary.judgments,
            "position_inconsistent": summary.inconsistent,
            **spending(client, cache_path, summary.cost, price),
        },
    )
    from reports import pairwise

    tables = pairwise.tables(pairwise.load([request.output]))
    console.print(pairwise.to_markdown(tables), highlight=False, soft_wrap=True, markup=False)
    counts = summary.judgments
    console.print(
        f"judgments: {counts[OK]} ok, {counts[UNPARSABLE]} unparsable, {counts[ERROR]} error "
        f"(unparsable and error are counted and left out, never given a verdict); "
        f"{summary.inconsistent} position-inconsistent (counted as ties); "
        f"{spending_line(client, summary.cost)}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    console.print(f"pairwise judgments: {request.output}", highlight=False, soft_wrap=True)
    return summary.files
