"""Pairwise judging of two LogicKor files: every question, both turns, both orders.

For each question the base and the other model share, and each turn, the judge is asked
twice: base as A and other as B, then the other way round. Each ask follows the single-score
contract (``judges.run.ask_until_parsed``: re-asked while the reply holds no verdict, then
``unparsable``; ``error`` when the calls fail after their retries; never a default verdict).
A judgment (question x turn) is ``ok`` only when both orders are; its outcome is the other
model's win, tie or loss (``judges.verdict.combine``), and it records whether the two orders
agreed.

Judgments are appended to a hidden part file as they finish, like ``fusebench judge``, so a
killed run resumes without asking again (judgments that ended in ``error`` are asked again);
the output is written atomically when all are done. An unreachable endpoint stops the run at
once, saying what it kept (``judges.run.stopped``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judges.client import JudgeClient
from judges.errors import EndpointUnreachable, JudgeError
from judges.pairwise_prompts import build_pairwise_messages
from judges.pricing import Price
from judges.run import (
    ERROR,
    OK,
    UNPARSABLE,
    add_cost,
    ask_until_parsed,
    finish_file,
    part_path,
    spent,
    stopped,
)
from judges.settings import JudgeSettings
from judges.verdict import combine, label, parse_verdict
from runrecords.journal import append_journal, read_journal

TURNS = ("single", "multi")  # LogicKor's query_single / query_multi
ORDERS = ("base-first", "other-first")


@dataclass(frozen=True)
class PairJob:
    """One base file against one other model's file of the same strategy."""

    base: Path
    other: Path
    base_label: str
    other_label: str
    strategy: str
    output: Path


@dataclass
class PairSummary:
    files: list[Path] = field(default_factory=list)
    judgments: dict[str, int] = field(default_factory=lambda: {OK: 0, UNPARSABLE: 0, ERROR: 0})
    inconsistent: int = 0
    cost: float | None = 0.0


def pair_rows(base: list[dict], other: list[dict], job: PairJob) -> list[tuple[dict, dict]]:
    """(base row, other row) for every id both files hold, in the base's order."""
    by_id = {row["id"]: row for row in other}
    pairs = [(row, by_id[row["id"]]) for row in base if row["id"] in by_id]
    if not pairs:
        raise JudgeError(f"{job.base} and {job.other}: no question id in common")
    for b, o in pairs:
        if b["questions"] != o["questions"]:
            raise JudgeError(
                f"{job.other}: question id {o['id']!r} asks something else than in {job.base}"
            )
    return pairs


def coverage(
    base: list[dict], other: list[dict], judged: list[tuple[dict, dict]]
) -> dict[str, Any]:
    """Which questions of the two files ``judged`` (``pair_rows``'s pairs, after any
    ``--limit``) covers, for the record and the reports: an OTHER holding 30 of 42 questions
    must not pass for a comparison on all 42."""
    base_ids = [r["id"] for r in base]
    other_ids = [r["id"] for r in other]
    in_base, in_other = set(base_ids), set(other_ids)
    common = len(in_base & in_other)
    return {
        "base_questions": len(in_base),
        "other_questions": len(in_other),
        "questions": len(in_base | in_other),
        "judged": len(judged),
        "missing_in_other": [i for i in base_ids if i not in in_other],
        "missing_in_base": [i for i in other_ids if i not in in_base],
        "left_out_by_limit": common - len(judged),
    }


class PairwiseJudge:
    """Judges pair jobs with one client; ``progress(n)`` is called per finished judgment."""

    def __init__(
        self,
        client: JudgeClient,
        settings: JudgeSettings,
        price: Price | None,
        progress: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.client, self.settings, self.price = client, settings, price
        self.progress = progress
        self.summary = PairSummary(cost=0.0 if price is not None else None)

    def signature(self) -> dict[str, Any]:
        """What makes two judged rows comparable (a part file of other settings, or of the
        same model name at another endpoint, is not resumed)."""
        return {
            "kind": "pairwise",
            "endpoint": self.client.endpoint,
            "model": self.client.settings.model,
            "max_asks": self.settings.max_asks,
            "sampling": self.settings.sampling(),
        }

    def _ask(self, base: dict, other: dict, turn: int, order: str) -> dict[str, Any]:
        first, second = (base, other) if order == "base-first" else (other, base)
        messages = build_pairwise_messages(
            base["questions"],
            base.get("references") or [None, None],
            first["outputs"],
            second["outputs"],
            turn,
        )
        asked = ask_until_parsed(
            self.client, messages, self.settings, parse_verdict, 0, "no verdict"
        )
        value = asked.pop("value")
        asked["verdict"] = None if value is None else label(value)
        # The verdict from the other model's side: A is the other model when it went first.
        asked["other_score"] = (
            None if value is None else (value if order == "other-first" else -value)
        )
        asked["order"] = order
        return asked

    def _judgment(self, job: PairJob, base: dict, other: dict, turn: int) -> dict[str, Any]:
        orders = [self._ask(base, other, turn, order) for order in ORDERS]
        statuses = [o["status"] for o in orders]
        status = ERROR if ERROR in statuses else UNPARSABLE if UNPARSABLE in statuses else OK
        tokens, cost = spent(orders, self.price)
        combined = (
            combine(orders[0]["other_score"], orders[1]["other_score"]) if status == OK else None
        )
        base_answer, other_answer = base["outputs"][turn], other["outputs"][turn]
        self.progress(1)
        return {
            "id": base["id"],
            "category": base.get("category"),
            "turn": TURNS[turn],
            "strategy": job.strategy,
            "base": job.base_label,
            "other": job.other_label,
            "status": status,
            "outcome": combined.outcome if combined else None,
            "consistent": combined.consistent if combined else None,
            "score": combined.score if combined else None,
            "orders": [
                {
                    "order": o["order"],
                    "status": o["status"],
                    "verdict": o["verdict"],
                    "other_score": o["other_score"],
                    "raw_reply": o["reply"],
                    "error": o["error"],
                    "asks": o["asks"],
                    "requests": o["requests"],
                }
                for o in orders
            ],
            "question": base["questions"][turn],
            "answers": {"base": base_answer, "other": other_answer},
            "judge_model": self.client.settings.model,
            "tokens": tokens,
            "cost": cost,
        }

    def run(self, job: PairJob, pairs: list[tuple[dict, dict]]) -> Path:
        signature = self.signature()
        part = part_path(job.output, "pairwise")
        job.output.parent.mkdir(parents=True, exist_ok=True)
        keys = {(b["id"], t) for b, _ in pairs for t in TURNS}
        kept = [
            r
            for r in read_journal(part)
            if r.get("_judge") == signature and (r.get("id"), r.get("turn")) in keys
        ]
        if not kept:
            part.unlink(missing_ok=True)
        # An error (an endpoint that was down, a refused prompt) is asked again.
        done = {(r["id"], r["turn"]): r for r in kept if r.get("status") != ERROR}
        self.progress(len(done))
        todo = [
            (b, o, t)
            for b, o in pairs
            for t in range(len(TURNS))
            if (b["id"], TURNS[t]) not in done
        ]
        write_lock = threading.Lock()
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            futures = [pool.submit(self._judgment, job, b, o, t) for b, o, t in todo]
            try:
                for future in as_completed(futures):
                    judged = {**future.result(), "_judge": signature}
                    append_journal(part, judged, write_lock)
                    done[(judged["id"], judged["turn"])] = judged
            except EndpointUnreachable as err:
                pool.shutdown(wait=False, cancel_futures=True)
                finished = sum(r["status"] != ERROR for r in done.values())
                raise stopped(err, part, finished) from None
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        final = finish_file(
            job.output, part, [done[(b["id"], turn)] for b, _ in pairs for turn in TURNS]
        )
        self._tally(final)
        self.summary.files.append(job.output)
        return job.output

    def _tally(self, rows: list[dict]) -> None:
        for row in rows:
            self.summary.judgments[row["status"]] += 1
            self.summary.inconsistent += row["consistent"] is False
            self.summary.cost = add_cost(self.summary.cost, row.get("cost"))
