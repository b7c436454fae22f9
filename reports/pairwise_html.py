"""What the HTML report shows of pairwise judgments: plain strings and chart URIs, no markup.

The template (autoescaped) turns every string into text, so an answer that holds
``<script>`` shows as those characters. The sample browser puts the base's and the other
model's answers side by side with the judge's verdict in each order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from reports import plots
from reports.pairwise import (
    LEGEND,
    OVERALL,
    Table,
    bt_cells,
    coverage_lines,
    length_cells,
    pct,
    win_cells,
)
from reports.samples import capped


@dataclass
class PairSample:
    doc_id: str
    title: str
    question: str
    base_answer: str
    other_answer: str
    orders: list[tuple[str, str, str]]  # (order, verdict or status, judge reply)
    outcome: str
    consistent: str


def _table_view(t: Table) -> dict[str, Any]:
    header, rows = win_cells(t)
    length_header, lengths = length_cells(t)
    bt_header, bt = bt_cells(t)
    charts = []
    for other in dict.fromkeys(r.other for r in t.rows):
        mine = [r for r in t.rows if r.other == other]
        shares = [
            tuple(x / max(r.wins + r.ties + r.losses, 1) for x in (r.wins, r.ties, r.losses))
            for r in mine
        ]
        title = f"{other} vs {t.base} · {t.strategy}"
        charts.append(
            {
                "title": title,
                "uri": plots.win_tie_loss(
                    title,
                    [r.category for r in mine],
                    shares,
                    [r.rate for r in mine],
                    [r.interval for r in mine],
                ),
            }
        )
    return {
        "title": f"Other models vs {t.base} · {t.strategy} · judge {t.judge_model}",
        "consistency": pct(t.consistency),
        # (line, whether every question was judged), one per other model
        "coverage": [
            (line, c.complete) for line, c in zip(coverage_lines(t), t.coverage, strict=True)
        ],
        "header": header,
        "rows": rows,
        "overall": OVERALL,
        "length_header": length_header,
        "lengths": lengths,
        "bt_header": bt_header,
        "bradley_terry": bt,
        "charts": charts,
    }


def _sample(record: dict) -> PairSample:
    answers = record.get("answers") or {}
    orders = []
    for o in record.get("orders") or []:
        shown = "A = base, B = other" if o.get("order") == "base-first" else "A = other, B = base"
        verdict = o.get("verdict") or o.get("status") or ""
        orders.append(
            (shown, str(verdict), capped(str(o.get("raw_reply") or o.get("error") or "")))
        )
    consistent = record.get("consistent")
    return PairSample(
        str(record.get("id")),
        f"{record.get('category') or ''} · turn {record.get('turn')}",
        capped(str(record.get("question") or "")),
        capped(str(answers.get("base") or "")),
        capped(str(answers.get("other") or "")),
        orders,
        str(record.get("outcome") or record.get("status")),
        "" if consistent is None else ("consistent" if consistent else "position-inconsistent"),
    )


def view(tables: list[Table], frame: pd.DataFrame, max_samples: int) -> dict[str, Any]:
    """The pairwise section of the report: tables, charts and sample groups."""
    groups = []
    if max_samples > 0:
        for (strategy, base, other), rows in frame.groupby(
            ["strategy", "base", "other"], sort=False
        ):
            shown = [_sample(r) for r in rows["record"].head(max_samples)]
            groups.append(
                {
                    "title": f"{other} vs {base} · {strategy}",
                    "base": str(base),
                    "other": str(other),
                    "total": len(rows),
                    "shown": shown,
                }
            )
    return {"tables": [_table_view(t) for t in tables], "samples": groups, "legend": LEGEND}
