"""Pairwise judgments in, the tables a base-versus-fused decision rests on out.

Reads what ``fusebench judge BASE --pairwise OTHER`` writes (``<dir>/pairwise/<strategy>/
<other>.jsonl``, one line per question and turn) and builds, per strategy and judge model:

- per other model, per LogicKor category and overall: wins, ties, losses (the other model's),
  the win rate (ties as half) with a 95% bootstrap interval over questions, the judgments
  left out (unparsable, error: counted, never scored), and the judge's position consistency
  (the share of judgments whose verdict kept its direction when the answers swapped places);
- per other model: each side's mean answer length (characters) and the length-controlled
  win rate with its interval;
- Bradley-Terry scores anchored at the base (0), with intervals, and as the probability of
  beating the base;
- per other model: the coverage, how many of the questions either file holds were judged
  (``pairwise.json`` records it per judgment file): an OTHER that holds 30 of 42 questions is
  said in every report, and the ``--min-win-rate`` gate fails on it unless partial coverage
  is allowed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import jsonio
from reports import pairwise_stats as ps
from reports.errors import BadFile, ReportError
from reports.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, Interval

RECORD = "pairwise.json"
FOLDER = "pairwise"
OVERALL = "overall"
COLUMNS = [
    "id",
    "category",
    "turn",
    "strategy",
    "base",
    "other",
    "status",
    "outcome",
    "consistent",
    "judge_model",
    "len_base",
    "len_other",
    "record",
]


def is_pairwise(path: Path) -> bool:
    """A folder ``fusebench judge --pairwise`` wrote (it holds ``pairwise.json``)."""
    return path.is_dir() and (path / RECORD).is_file() and (path / FOLDER).is_dir()


def _rows(path: Path) -> list[dict]:
    out = []
    for number, line in enumerate(path.read_text("utf-8").split("\n"), 1):  # see runrecords.jsonl
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BadFile(path, f"line {number}: not JSON ({err.msg})") from None
        missing = [k for k in ("id", "turn", "base", "other", "status") if k not in row]
        if missing:
            raise BadFile(path, f"line {number}: missing field {missing[0]!r}")
        out.append(row)
    return out


def _coverage_of(path: Path) -> dict[str, dict]:
    """The coverage ``pairwise.json`` records per judgment file (relative path -> entry);
    empty for a folder judged before it was recorded."""
    try:
        record = json.loads((path / RECORD).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path / RECORD}: unreadable ({err})") from None
    coverage = record.get("coverage") if isinstance(record, dict) else None
    return coverage if isinstance(coverage, dict) else {}


def load(paths: list[Path]) -> pd.DataFrame:
    """Every judgment under the pairwise folders ``paths``, one row each; the coverage of
    each judgment file is in ``frame.attrs["coverage"]`` (its entry, or None when not
    recorded, with the file's strategy, judge, base and other)."""
    records: list[dict] = []
    coverage: list[dict] = []
    for path in paths:
        if not is_pairwise(path):
            raise ReportError(f"{path}: not a pairwise judgment folder (no {RECORD})")
        recorded = _coverage_of(path)
        for file in sorted((path / FOLDER).rglob("*.jsonl")):
            try:
                rows = _rows(file)
            except BadFile as err:
                raise ReportError(str(err)) from None
            if rows:
                first = rows[0]
                key = {k: str(first.get(k)) for k in ("strategy", "judge_model", "base", "other")}
                entry = recorded.get(file.relative_to(path).as_posix())
                judged = len({r["id"] for r in rows})
                coverage.append({**key, "entry": entry, "judged_ids": judged})
            records += rows
    if not records:
        raise ReportError(f"{', '.join(map(str, paths))}: no pairwise judgments")
    frame = pd.DataFrame(
        {
            **{k: [r.get(k) for r in records] for k in COLUMNS[:10]},
            "len_base": [len((r.get("answers") or {}).get("base") or "") for r in records],
            "len_other": [len((r.get("answers") or {}).get("other") or "") for r in records],
            "record": records,
        }
    )
    frame["category"] = frame["category"].fillna("")
    frame.attrs["coverage"] = coverage
    return frame


# ---------------------------------------------------------------- tables


@dataclass
class Row:
    """One other model in one category (or overall)."""

    other: str
    category: str
    wins: int
    ties: int
    losses: int
    rate: float | None
    interval: Interval | None
    unparsable: int
    errors: int
    consistency: float | None  # share of ok judgments whose two orders agreed


@dataclass
class LengthRow:
    other: str
    mean_len_base: float
    mean_len_other: float
    rate: float | None
    lc_rate: float | None
    lc_interval: Interval | None
    slope: float | None


@dataclass
class BTRow:
    model: str
    score: float
    interval: Interval | None
    p_beats_base: float


@dataclass
class Coverage:
    """Which questions of the two files one other model was judged on."""

    other: str
    judged: int  # questions judged (both turns)
    questions: int | None  # questions either file holds; None: not recorded
    missing_in_other: list = field(default_factory=list)  # ids only the base holds
    missing_in_base: list = field(default_factory=list)  # ids only the other model holds
    left_out_by_limit: int = 0  # questions both hold that --limit left out

    @classmethod
    def of(cls, other: str, entry: dict | None, judged: int) -> Coverage:
        """From a ``pairwise.json`` coverage entry (None: not recorded; ``judged``, the
        questions the judgment file holds, is all that is known)."""
        if not isinstance(entry, dict):
            return cls(other, judged, None)
        questions = entry.get("questions")
        return cls(
            other,
            int(entry.get("judged", judged)),
            int(questions) if questions is not None else None,
            list(entry.get("missing_in_other") or []),
            list(entry.get("missing_in_base") or []),
            int(entry.get("left_out_by_limit") or 0),
        )

    @property
    def recorded(self) -> bool:
        return self.questions is not None

    @property
    def complete(self) -> bool:
        return self.questions is not None and self.judged == self.questions


def _coverage(entries: list[dict]) -> list[Coverage]:
    """One ``Coverage`` per other model from its judgment files' entries (several files of
    one other model and table: summed)."""
    out: dict[str, Coverage] = {}
    for e in entries:
        other = e["other"]
        c = Coverage.of(other, e["entry"], e["judged_ids"])
        if other in out:
            had = out[other]
            c = Coverage(
                other,
                had.judged + c.judged,
                None if None in (had.questions, c.questions) else had.questions + c.questions,
                had.missing_in_other + c.missing_in_other,
                had.missing_in_base + c.missing_in_base,
                had.left_out_by_limit + c.left_out_by_limit,
            )
        out[other] = c
    return list(out.values())


@dataclass
class Table:
    strategy: str
    judge_model: str
    base: str
    rows: list[Row] = field(default_factory=list)
    lengths: list[LengthRow] = field(default_factory=list)
    bradley_terry: list[BTRow] = field(default_factory=list)
    consistency: float | None = None  # over every ok judgment of the table
    judgments: int = 0
    coverage: list[Coverage] = field(default_factory=list)


def _row(group: pd.DataFrame, other: str, category: str, resamples: int, seed: int) -> Row:
    ok = group[group["status"] == "ok"]
    rate = ps.win_rate(ok["id"], ok["outcome"], resamples, seed)
    return Row(
        other,
        category,
        rate.wins,
        rate.ties,
        rate.losses,
        rate.rate,
        rate.interval,
        int((group["status"] == "unparsable").sum()),
        int((group["status"] == "error").sum()),
        float(ok["consistent"].astype(bool).mean()) if len(ok) else None,
    )


def _values(ok: pd.DataFrame) -> np.ndarray:
    return ok["outcome"].map(ps.OUTCOME_VALUE).to_numpy(dtype=float)


def _table(frame: pd.DataFrame, key: tuple, resamples: int, seed: int, fit_resamples: int) -> Table:
    strategy, judge, base = key
    table = Table(str(strategy), str(judge), str(base), judgments=len(frame))
    ok_all = frame[frame["status"] == "ok"]
    table.consistency = float(ok_all["consistent"].astype(bool).mean()) if len(ok_all) else None
    for other, group in frame.groupby("other", sort=False):
        for category, in_cat in group.groupby("category", sort=False):
            table.rows.append(_row(in_cat, str(other), str(category), resamples, seed))
        table.rows.append(_row(group, str(other), OVERALL, resamples, seed))
        ok = group[group["status"] == "ok"]
        lc = ps.length_controlled(
            ok["id"], _values(ok), ok["len_other"], ok["len_base"], fit_resamples, seed
        )
        table.lengths.append(
            LengthRow(
                str(other),
                float(group["len_base"].mean()),
                float(group["len_other"].mean()),
                float(_values(ok).mean()) if len(ok) else None,
                lc.rate,
                lc.interval,
                lc.slope,
            )
        )
    if ok_all["other"].nunique() >= 1 and len(ok_all):
        battles = pd.DataFrame(
            {
                "model_a": ok_all["base"],
                "model_b": ok_all["other"],
                "score_a": 1 - _values(ok_all),
                "question": ok_all["id"].astype(str),
            }
        )
        scores = ps.bradley_terry(battles, str(base))
        intervals = ps.bradley_terry_intervals(battles, str(base), fit_resamples, seed)
        table.bradley_terry = sorted(
            (
                BTRow(m, s, intervals.get(m), ps.to_probability(s))
                for m, s in scores.items()
                if math.isfinite(s)
            ),
            key=lambda r: -r.score,
        )
    return table


def tables(
    frame: pd.DataFrame,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    fit_resamples: int = 1000,
) -> list[Table]:
    """One table per (strategy, judge model, base)."""
    keys = ["strategy", "judge_model", "base"]
    out = []
    for key, group in frame.groupby(keys, sort=False):
        table = _table(group, key, resamples, seed, fit_resamples)
        table.coverage = _coverage(
            [
                e
                for e in frame.attrs.get("coverage", [])
                if (e["strategy"], e["judge_model"], e["base"]) == tuple(map(str, key))
            ]
        )
        out.append(table)
    return out


# ---------------------------------------------------------------- gate


def gate(
    tables_: list[Table], min_win_rate: float | None, allow_partial: bool = False
) -> list[str]:
    """A line per other model whose overall win rate against the base (the point estimate)
    is below ``min_win_rate``, or that has no ok judgment at all; and, unless
    ``allow_partial``, per other model judged on part of the questions (or whose coverage
    was not recorded): a gate passed on a subset would say more than was judged."""
    if min_win_rate is None:
        return []
    failures = []
    for t in tables_:
        for c in t.coverage:
            if not allow_partial and not c.complete:
                failures.append(
                    f"{c.other} vs {t.base} ({t.strategy}, judge {t.judge_model}): "
                    f"{coverage_text(c, t.base, ids=False)}; the gate needs every question "
                    "(--allow-partial gates on the questions judged)"
                )
        for r in t.rows:
            if r.category != OVERALL:
                continue
            if r.rate is None or r.rate < min_win_rate:
                shown = "no ok judgment" if r.rate is None else f"{r.rate:.3f}"
                failures.append(
                    f"{r.other} vs {t.base} ({t.strategy}, judge {t.judge_model}): "
                    f"win rate {shown} < {min_win_rate:g}"
                )
    return failures


# ---------------------------------------------------------------- text


def pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def ci_text(interval: Interval | None, percent: bool = True) -> str:
    if interval is None:
        return "—"
    if percent:
        return f"[{100 * interval.low:.1f}, {100 * interval.high:.1f}]"
    return f"[{interval.low:+.2f}, {interval.high:+.2f}]"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return [line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)]


Cells = tuple[list[str], list[list[str]]]  # (header, rows) of a table, as text


def win_cells(t: Table) -> Cells:
    header = [
        "Model",
        "Category",
        "W",
        "T",
        "L",
        "Win rate",
        "95% CI",
        "Consistent",
        "Unparsable",
        "Error",
    ]
    rows = [
        [r.other, r.category, str(r.wins), str(r.ties), str(r.losses), pct(r.rate),
         ci_text(r.interval), pct(r.consistency), str(r.unparsable), str(r.errors)]
        for r in t.rows
    ]  # fmt: skip
    return header, rows


def length_cells(t: Table) -> Cells:
    header = [
        "Model",
        f"Mean length {t.base}",
        "Mean length model",
        "Win rate",
        "LC win rate",
        "95% CI",
        "Length slope",
    ]
    rows = [
        [r.other, f"{r.mean_len_base:.0f}", f"{r.mean_len_other:.0f}", pct(r.rate),
         pct(r.lc_rate), ci_text(r.lc_interval), "—" if r.slope is None else f"{r.slope:+.2f}"]
        for r in t.lengths
    ]  # fmt: skip
    return header, rows


def bt_cells(t: Table) -> Cells:
    header = ["Model", "Score", "95% CI", f"P(beats {t.base})"]
    rows = [
        [b.model, f"{b.score:+.2f}", ci_text(b.interval, percent=False), pct(b.p_beats_base)]
        for b in t.bradley_terry
    ]
    return header, rows


LEGEND = (
    "Win rate: the model's wins plus half its ties, over the judgments the judge answered in "
    "both orders; its interval resamples questions (both turns together). Consistent: the "
    "share of those judgments whose verdict kept its direction when the answers swapped "
    "places (the others count as ties). LC win rate: the win rate a logistic model of the "
    "verdict on the length difference predicts at equal length; a positive length slope "
    "means the judge favoured the longer answer. Bradley-Terry score: the log-odds of beating "
    "the base."
)


def _ids(ids: list, shown: int = 20) -> str:
    head = ", ".join(map(str, ids[:shown]))
    return head + (f", … ({len(ids) - shown} more)" if len(ids) > shown else "")


def coverage_text(c: Coverage, base: str, ids: bool = True) -> str:
    """The coverage of one other model in words, e.g. "judged 30 of 42 questions; 12
    missing in org/fused: ids 31, 32, ..."."""
    if c.questions is None:
        return (
            f"judged {c.judged} questions; how many the two files held was not recorded "
            "(judged by an older fusebench: judge again, from the cache, to record it)"
        )
    if c.complete:
        return f"judged all {c.questions} questions"
    parts = [f"judged {c.judged} of {c.questions} questions"]
    for missing, where in ((c.missing_in_other, c.other), (c.missing_in_base, base)):
        if missing:
            parts.append(
                f"{len(missing)} missing in {where}" + (f": ids {_ids(missing)}" if ids else "")
            )
    if c.left_out_by_limit:
        parts.append(f"{c.left_out_by_limit} left out by --limit")
    return "; ".join(parts)


def coverage_lines(t: Table) -> list[str]:
    """A line per other model of the table: "Coverage of org/fused vs org/base: ..."."""
    return [f"Coverage of {c.other} vs {t.base}: {coverage_text(c, t.base)}." for c in t.coverage]


def to_markdown(tables_: list[Table], gate_lines: list[str] | None = None) -> str:
    out: list[str] = []
    for t in tables_:
        out += [
            f"## Pairwise: other models vs {t.base} · {t.strategy} · judge {t.judge_model}",
            "",
            f"Position consistency of the judge: {pct(t.consistency)} of the ok judgments "
            "kept their verdict when the answers swapped places (the rest count as ties).",
            "",
        ]
        for line in coverage_lines(t):
            out += [line, ""]
        header, rows = win_cells(t)
        for row in rows:
            row[1] = f"**{row[1]}**" if row[1] == OVERALL else row[1]
        out += _md_table(header, rows)
        out += ["", "Length (characters per answer) and the length-controlled win rate:", ""]
        out += _md_table(*length_cells(t))
        if t.bradley_terry:
            out += ["", f"Bradley-Terry scores (log-odds against {t.base}, which is 0):", ""]
            out += _md_table(*bt_cells(t))
        out.append("")
    out.append(LEGEND)
    if gate_lines:
        out += ["", *gate_lines]
    return "\n".join(out) + "\n"


def json_safe(value: Any) -> Any:
    """NaN and infinities as null, with ``null_reasons`` beside them (``jsonio.finite``)."""
    return jsonio.finite(value, _reason)


_REASONS = {
    "spearman": "NaN: a judge gave every answer one score (no rank correlation)",
    "kendall": "NaN: a judge gave every answer one score (no rank correlation)",
}


def _reason(path: str, value: float) -> str | None:
    return _REASONS.get(path.rsplit(".", 1)[-1])


def _table_data(t: Table) -> dict:
    data = json_safe(asdict(t))
    for c, out in zip(t.coverage, data["coverage"], strict=True):
        out.update(complete=c.complete, recorded=c.recorded, text=coverage_text(c, t.base))
    return data


def payload(
    tables_: list[Table],
    failures: list[str],
    min_win_rate: float | None,
    allow_partial: bool = False,
) -> dict:
    """The tables (each with its coverage) and the gate as JSON-ready data (NaN as null)."""
    return {
        "pairwise": [_table_data(t) for t in tables_],
        "pairwise_gate": {
            "min_win_rate": min_win_rate,
            "allow_partial": allow_partial,
            "passed": not failures,
            "failures": failures,
        },
    }


def gate_lines(
    failures: list[str],
    min_win_rate: float | None,
    tables_: list[Table] | None = None,
    allow_partial: bool = False,
) -> list[str]:
    if min_win_rate is None:
        return []
    if not failures:
        partial = allow_partial and any(not c.complete for t in tables_ or [] for c in t.coverage)
        return [
            f"gate passed: every model's overall win rate is at least {min_win_rate:g}"
            + (" (on part of the questions: --allow-partial)" if partial else "")
        ]
    return [f"gate FAILED: {len(failures)} against --min-win-rate {min_win_rate:g}", *failures]
