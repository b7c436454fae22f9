"""The few lines a fusion run ends with: per task and shot count, base / clm-only / fused and
what the fusion term added over the control (fused - clm-only, with its paired 95% interval),
the gate's verdict and where the report is. With several training seeds (``evaluate.seeds``)
clm-only and fused are means over the seeds, the difference is pooled over them
(``reports.seeds``) and each row says in how many seeds its sign agrees ("3/3 seeds").

An ``Outcome`` is kept in ``report/status.json``, so a rerun of a finished run prints the same
lines without loading anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from reports.compare import Comparison, MetricRow
from reports.render import metric_label
from reports.seeds import Pooled


@dataclass
class Row:
    task: str
    metric: str
    setting: int | str  # shots, or a LogicKor strategy
    base: float
    fused: float
    clm_only: float | None  # LogicKor: not answered by the control
    diff: float  # fused - clm-only (LogicKor: fused - base)
    low: float | None  # its paired 95% bootstrap interval
    high: float | None
    higher_is_better: bool = True  # bits per byte and perplexities: lower is better
    seeds: int | None = None  # training seeds pooled (absent: one, as before seeds existed)
    seeds_agreeing: int | None = None  # of them, those whose difference has the pooled sign


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # skipped tasks, LogicKor not judged
    gate: list[str] = field(default_factory=list)  # render.gate_lines: PASS / FAIL and why
    failed: bool = False
    html: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(**{**data, "rows": [Row(**r) for r in data.get("rows", [])]})


def _primary(comparison: Comparison) -> dict[tuple, MetricRow]:
    return {(r.task, r.setting, r.metric): r for r in comparison.rows if r.primary}


def headline_rows(fused_vs_base: Comparison, pooled: Pooled) -> list[Row]:
    """lm-eval tasks from the fused - clm-only comparison pooled over the training seeds (base
    from fused vs base); LogicKor's overall from fused vs base (the control does not answer
    it)."""
    against_base = _primary(fused_vs_base)
    several = len(pooled.seeds) > 1
    rows = []
    for r in pooled.rows:
        if not r.primary:
            continue
        key = (r.task, r.setting, r.metric)
        base = against_base[key].base if key in against_base else float("nan")
        rows.append(
            Row(
                r.task,
                r.metric,
                r.setting,
                base,
                r.fused_mean,
                r.control_mean,
                r.diff,
                *_ends(r.interval),
                r.higher_is_better,
                len(r.seeds) if several else None,
                r.agree if several else None,
            )
        )
    for r in against_base.values():
        if r.kind == "logickor":
            b = r.bootstrap.diff if r.bootstrap else None
            rows.append(
                Row(
                    r.task,
                    r.metric,
                    r.setting,
                    r.base,
                    r.other,
                    None,
                    r.diff,
                    *_ends(b),
                    r.higher_is_better,
                )
            )
    return rows


def _ends(interval: Any) -> tuple[float | None, float | None]:
    return (interval.low, interval.high) if interval is not None else (None, None)


def lines(outcome: Outcome) -> list[str]:
    """The headline as text: a table, the notes, the gate, the report's path."""
    seeds = next((r.seeds for r in outcome.rows if r.seeds), None)
    if seeds:
        out = [
            f"task (metric, setting): base / clm-only / fused (means over {seeds} seeds); "
            "fused - clm-only pooled [95% CI], seeds with its sign"
        ]
    else:
        out = ["task (metric, setting): base / clm-only / fused; fused - clm-only [95% CI]"]
    for r in outcome.rows:
        places = 2 if isinstance(r.setting, str) else 4
        setting = r.setting if isinstance(r.setting, str) else f"{r.setting}-shot"
        ci = f" [{r.low:+.{places}f}, {r.high:+.{places}f}]" if r.low is not None else ""
        control = "—" if r.clm_only is None else f"{r.clm_only:.{places}f}"
        what = "fused - clm-only" if r.clm_only is not None else "fused - base"
        out.append(
            f"  {r.task} ({metric_label(r.metric, r.higher_is_better)}, {setting}): "
            f"{r.base:.{places}f} / {control} / "
            f"{r.fused:.{places}f}; {what} {r.diff:+.{places}f}{ci}"
            + (f", {r.seeds_agreeing}/{r.seeds} seeds" if r.seeds else "")
        )
    out += [f"note: {n}" for n in outcome.notes]
    out += outcome.gate
    out.append(f"comparison page: {outcome.html}")
    return out
