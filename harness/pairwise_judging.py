"""``fusebench judge BASE --pairwise OTHER``: pairwise judging end to end, then its tables.

The same client, cache, concurrency, rate limits, progress and cost accounting as
``fusebench judge`` (``harness.judging``); the judgments go to ``OUTPUT/pairwise/<strategy>/
<other>.jsonl`` with a record ``OUTPUT/pairwise.json``, and the tables of
``reports.pairwise`` are printed at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import __version__
from harness.judging import judging, make_client, settings_of, spending, spending_line
from harness.specs import JudgeRequest
from judges.pairwise import TURNS, PairJob, PairwiseJudge, coverage, pair_rows
from judges.pricing import price_for
from judges.run import ERROR, OK, UNPARSABLE, read_rows
from judges.targets import PAIRWISE_RECORD, resolve_pairwise
from reports import rundir
from runrecords.atomic import write_json_atomic


def run_pairwise(request: JudgeRequest, console: Console | None = None) -> list[Path]:
    """Judge BASE against every ``--pairwise`` model; returns the judgment files."""
    console = console or Console()
    jobs = resolve_pairwise(request.target, list(request.pairwise), request.output)
    assert request.output is not None  # resolve_pairwise refuses a run without one
    # Every input read and paired before any call.
    rows = {job: (read_rows(job.base), read_rows(job.other)) for job in jobs}
    pairs = {job: pair_rows(*rows[job], job) for job in jobs}
    if request.limit is not None:
        pairs = {job: p[: request.limit] for job, p in pairs.items()}
    covered = {job: _entry(job, request.output, coverage(*rows[job], pairs[job])) for job in jobs}
    _say_partial(covered, console)
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
            "coverage": _recorded_coverage(request.output, covered),
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


def _entry(job: PairJob, output: Path, counts: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(judgment file relative to the output, its coverage entry for the record)."""
    entry = {
        "strategy": job.strategy,
        "base": job.base_label,
        "other": job.other_label,
        "base_file": str(job.base),
        "other_file": str(job.other),
        **counts,
    }
    return job.output.relative_to(output).as_posix(), entry


def _say_partial(covered: dict[PairJob, tuple[str, dict]], console: Console) -> None:
    """Before any call: which pairs will be judged on part of the questions only."""
    from reports.pairwise import Coverage, coverage_text

    for job, (_, entry) in covered.items():
        c = Coverage.of(job.other_label, entry, entry["judged"])
        if not c.complete:
            console.print(
                f"note: {job.other_label} vs {job.base_label} · {job.strategy}: "
                f"{coverage_text(c, job.base_label)} ({job.other} against {job.base})",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )


def _recorded_coverage(output: Path, covered: dict[PairJob, tuple[str, dict]]) -> dict:
    """This run's coverage entries over those an earlier run into the same folder recorded
    for its other judgment files (which stay in the folder and in its reports)."""
    try:
        earlier = json.loads((output / PAIRWISE_RECORD).read_text("utf-8")).get("coverage")
    except (OSError, ValueError, AttributeError):
        earlier = None
    kept = {
        path: entry
        for path, entry in (earlier if isinstance(earlier, dict) else {}).items()
        if (output / path).is_file()
    }
    return {**kept, **dict(covered.values())}
