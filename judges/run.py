"""Judging LogicKor files: every row's two turns, with re-asks, repeats and a resumable output.

Each judgment (row x turn) asks the judge ``repeats`` times; each repeat is asked again while
the reply holds no valid score, up to ``max_asks`` times, and then recorded as ``unparsable``
(never as 0). A repeat whose calls fail after all retries is ``error``. The judgment's
``judge_score`` is the mean of its valid repeats, or null when none is valid.

Rows are appended to a hidden part file as they finish (with fsync), so a kill loses at most
the calls in flight (which the reply cache usually has anyway); when every row is done the
output is written atomically in the input's row order and the part file removed. A resumed
run asks again the judgments the part file holds as ``error`` (an endpoint that was down, a
refused prompt: no tokens were spent on them) and keeps the rest. When the endpoint cannot
be reached (``EndpointUnreachable``) the run stops at once, saying what it kept.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judges.client import CallFailed, JudgeClient
from judges.errors import EndpointUnreachable, JudgeError
from judges.parse import judge_message, parse_score
from judges.pricing import Price
from judges.prompts import TURN_KEYS, build_messages
from judges.settings import JudgeSettings
from runrecords.atomic import write_jsonl_atomic
from runrecords.journal import append_journal, read_journal
from tasks.logickor import GENERATED_FIELDS, check_rows

OK, UNPARSABLE, ERROR = "ok", "unparsable", "error"


@dataclass(frozen=True)
class Job:
    """One file to judge and where its judged rows go."""

    source: Path
    output: Path
    label: str  # org/model/strategy or run/strategy, for messages


@dataclass
class Summary:
    files: list[Path] = field(default_factory=list)
    judgments: dict[str, int] = field(default_factory=lambda: {OK: 0, UNPARSABLE: 0, ERROR: 0})
    cost: float | None = 0.0

    def count(self, status: str) -> None:
        self.judgments[status] += 1


def spent(asks: list[dict[str, Any]], price: Price | None) -> tuple[dict | None, float | None]:
    """The tokens of several asks (``ask_until_parsed`` results) together, and their cost;
    None when any ask's tokens, or the price, are unknown (never 0)."""
    if any(a["tokens"] is None for a in asks):
        return None, None
    tokens = {
        "prompt": sum(a["tokens"][0] for a in asks),
        "completion": sum(a["tokens"][1] for a in asks),
    }
    cost = price.cost(tokens["prompt"], tokens["completion"]) if price is not None else None
    return tokens, cost


def ask_until_parsed(
    client: JudgeClient,
    messages: list[dict],
    settings: JudgeSettings,
    parse: Callable[[str], Any],
    repeat: int = 0,
    missing: str = "nothing parsable",
) -> dict[str, Any]:
    """Ask until ``parse`` finds a value in the reply, at most ``settings.max_asks`` times:
    ``ok`` with the value, ``unparsable`` (the last reply kept, value None, never a default)
    or ``error`` when a call fails after all its retries. Shared by single-answer scores and
    pairwise verdicts, so both keep one contract."""
    tokens = [0, 0]
    known_tokens = True
    requests, reply_text = 0, None

    def result(status: str, value: Any, error: str | None, asks: int) -> dict[str, Any]:
        return {
            "status": status,
            "value": value,
            "reply": reply_text,
            "error": error,
            "tokens": tokens if known_tokens else None,
            "requests": requests,
            "asks": asks,
        }

    for ask in range(settings.max_asks):
        try:
            reply = client.ask(messages, settings.sampling(), {"repeat": repeat, "ask": ask})
        except CallFailed as err:
            requests += err.requests
            return result(ERROR, None, str(err), ask + 1)
        requests += reply.requests
        if reply.prompt_tokens is None or reply.completion_tokens is None:
            known_tokens = False
        else:
            tokens[0] += reply.prompt_tokens
            tokens[1] += reply.completion_tokens
        reply_text = reply.text
        value = parse(reply.text)
        if value is not None:
            return result(OK, value, None, ask + 1)
    return result(UNPARSABLE, None, f"{missing} in {settings.max_asks} replies", settings.max_asks)


def read_rows(path: Path) -> list[dict]:
    """The rows of a generated (or judged) LogicKor file, checked for what judging needs."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise JudgeError(f"{path}: unreadable ({err})") from None
    rows = check_rows(
        text.split("\n"),
        lambda line, why: JudgeError(f"{path}:{line}: {why}"),
        GENERATED_FIELDS,
        ["questions", "outputs"],
    )
    if not rows:
        raise JudgeError(f"{path}: no rows to judge")
    return rows


def part_path(output: Path, kind: str = "judge") -> Path:
    """The journal an interrupted run of ``output`` resumes from (``kind``: judge, pairwise)."""
    return output.parent / f".{output.name}.{kind}-part"


def add_cost(total: float | None, cost: float | None) -> float | None:
    """A running cost that becomes unknown (None) once one part's cost is unknown."""
    return None if total is None or cost is None else total + cost


def finish_file(output: Path, part: Path, rows: list[dict]) -> list[dict]:
    """Write a judged file from its finished rows (their resume signature dropped),
    atomically, then remove the part file it was resumed from; the rows as written."""
    final = [{key: value for key, value in row.items() if key != "_judge"} for row in rows]
    write_jsonl_atomic(output, final)
    part.unlink(missing_ok=True)
    return final


def _read_part(path: Path, signature: dict) -> dict[Any, dict]:
    """Rows finished by an earlier, interrupted run with the same settings. A torn last line
    (a kill during the write) is dropped; its row is judged again (from the cache)."""
    return {row["id"]: row for row in read_journal(path) if row.get("_judge") == signature}


# A turn of a row the run stopped in the middle of: written so that the row's finished turn
# is kept; a resumed run asks this one again, as any error.
NOT_JUDGED = {"status": ERROR, "error": "not judged: the run stopped first"}


def stopped(err: EndpointUnreachable, part: Path, finished: int) -> EndpointUnreachable:
    """The endpoint's error, with what the run kept and how to go on."""
    kept = (
        f"the {finished} judgments finished are kept in {part} and a rerun continues from them"
        if finished
        else "no judgment of this file had finished"
    )
    return EndpointUnreachable(
        f"{err}; stopped: {kept} (--max-connection-failures sets how many failures in a row "
        "stop a run)"
    )


class Judge:
    """Judges jobs with one client; ``progress(n)`` is called per finished judgment."""

    def __init__(
        self,
        client: JudgeClient,
        settings: JudgeSettings,
        judge_system: dict[str, str],
        price: Price | None,
        progress: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.client, self.settings, self.price = client, settings, price
        self.judge_system = judge_system
        self.progress = progress
        self.summary = Summary(cost=0.0 if price is not None else None)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ one judgment

    def _repeat(self, messages: list[dict], repeat: int) -> dict[str, Any]:
        """One repeat: ask until the reply holds a score, at most ``max_asks`` times."""
        out = ask_until_parsed(
            self.client, messages, self.settings, parse_score, repeat, "no score"
        )
        out["score"] = out.pop("value")
        return out

    def _judgment(self, row: dict, turn_key: str) -> dict[str, Any]:
        messages = build_messages(row, turn_key, self.settings.template, self.judge_system)
        repeats = [self._repeat(messages, r) for r in range(self.settings.repeats)]
        scores = [r["score"] for r in repeats]
        valid = [s for s in scores if s is not None]
        statuses = [r["status"] for r in repeats]
        status = OK if valid else (UNPARSABLE if UNPARSABLE in statuses else ERROR)
        chosen = next((r for r in repeats if r["status"] == OK), repeats[-1])
        tokens, cost = spent(repeats, self.price)
        out: dict[str, Any] = {
            # LogicKor's two fields first: its tools read only these.
            "judge_message": judge_message(chosen["reply"]) if status == OK else "",
            "judge_score": statistics.fmean(valid) if valid else None,
            "status": status,
            "judge_model": self.client.settings.model,
            "template": self.settings.template,
            "raw_reply": chosen["reply"],
            "error": None if status == OK else chosen["error"],
            "tokens": tokens,
            "cost": cost,
            "requests": sum(r["requests"] for r in repeats),
            "asks": sum(r["asks"] for r in repeats),
        }
        if self.settings.repeats > 1:
            out["scores"] = scores
            out["statuses"] = statuses
            out["spread"] = (
                {
                    "stdev": statistics.stdev(valid) if len(valid) > 1 else None,
                    "min": min(valid),
                    "max": max(valid),
                }
                if valid
                else None
            )
        self.progress(1)
        return out

    # ------------------------------------------------------------ one file

    @staticmethod
    def _keep_halves(
        part: Path,
        todo: list[dict],
        pending: dict[int, dict[str, Any]],
        signature: dict,
        lock: threading.Lock,
    ) -> int:
        """Append the rows with one turn judged and the other not (``NOT_JUDGED``), so that
        a resumed run keeps the judged turn even without a cache; how many were kept."""
        kept = 0
        for index, got in pending.items():
            useful = [t for t in got.values() if t["status"] != ERROR]
            if useful:
                missing = {t: NOT_JUDGED for t in TURN_KEYS if t not in got}
                append_journal(part, {**todo[index], **got, **missing, "_judge": signature}, lock)
                kept += len(useful)
        return kept

    def _tally(self, rows: list[dict]) -> None:
        """Statuses and cost of every judgment in a finished file (resumed rows included)."""
        for row in rows:
            for key in TURN_KEYS:
                judged = row[key]
                self.summary.count(judged["status"])
                self.summary.cost = add_cost(self.summary.cost, judged.get("cost"))

    def signature(self) -> dict[str, Any]:
        """What makes two judged rows comparable: a part file from other settings, or from
        the same model name at another endpoint, is not resumed (its calls are still in the
        cache, under that endpoint)."""
        return {
            "endpoint": self.client.endpoint,
            "model": self.client.settings.model,
            "template": self.settings.template,
            "repeats": self.settings.repeats,
            "max_asks": self.settings.max_asks,
            "sampling": self.settings.sampling(),
        }

    def run(self, job: Job, rows: list[dict]) -> Path:
        signature = self.signature()
        part = part_path(job.output)
        job.output.parent.mkdir(parents=True, exist_ok=True)
        ids = {r["id"] for r in rows}
        kept = {k: v for k, v in _read_part(part, signature).items() if k in ids}
        if not kept:
            part.unlink(missing_ok=True)
        # Judgments kept per row; an error is asked again (it cost no tokens).
        turns = {
            k: {t: v[t] for t in TURN_KEYS if (v.get(t) or NOT_JUDGED)["status"] != ERROR}
            for k, v in kept.items()
        }
        done = {k: kept[k] for k, t in turns.items() if len(t) == len(TURN_KEYS)}
        self.progress(sum(len(t) for t in turns.values()))
        write_lock = threading.Lock()
        todo = [r for r in rows if r["id"] not in done]
        pending: dict[int, dict[str, Any]] = {
            index: dict(turns.get(row["id"], {})) for index, row in enumerate(todo)
        }
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            futures = {
                pool.submit(self._judgment, row, key): (index, key)
                for index, row in enumerate(todo)
                for key in TURN_KEYS
                if key not in pending[index]
            }
            try:
                for future in as_completed(futures):
                    index, key = futures[future]
                    pending[index][key] = future.result()
                    if len(pending[index]) == len(TURN_KEYS):
                        judged = {**todo[index], **pending.pop(index), "_judge": signature}
                        append_journal(part, judged, write_lock)
                        done[judged["id"]] = judged
            except BaseException as err:
                # Ctrl-C / SIGTERM / a dead endpoint: drop what has not started; finished
                # rows are on disk, and so is each half-finished row's finished turn.
                pool.shutdown(wait=False, cancel_futures=True)
                finished = self._keep_halves(part, todo, pending, signature, write_lock)
                finished += sum(
                    row[t]["status"] != ERROR for row in done.values() for t in TURN_KEYS
                )
                if isinstance(err, EndpointUnreachable):
                    raise stopped(err, part, finished) from None
                raise
        final = finish_file(job.output, part, [done[row["id"]] for row in rows])
        self._tally(final)
        self.summary.files.append(job.output)
        return job.output
