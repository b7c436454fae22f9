"""The section a fusion report opens with: did the fusion term help? Fused minus clm-only per
task (primary metric), per training seed and pooled, as a forest plot and a table.

Markdown links the plot as ``forest.svg`` beside compare.md; the HTML page embeds the same SVG.
"""

from __future__ import annotations

from typing import Any

from reports import forest
from reports.compare import setting_label
from reports.render import LOWER, MISSING, md_table
from reports.seeds import Pooled, PooledRow

TITLE = "Fused minus clm-only: what the fusion term adds"


def intro(pooled: Pooled) -> str:
    seeds = len(pooled.seeds)
    if seeds > 1:
        how = (
            f"{seeds} training seeds ({', '.join(map(str, pooled.seeds))}): each trains its own "
            "fused model and control on the same fused store. Pooled: the mean of the seeds' "
            "differences; its 95% interval is a paired bootstrap over documents, one draw of "
            "documents for every seed (the seeds answer the same documents), the metric "
            "recomputed per seed as lm-eval aggregates it (ratio of sums for bits per byte, "
            "macro-F1 from the pairs). 'k/n seeds': seeds whose own difference has the pooled "
            "sign."
        )
    else:
        how = (
            f"One training seed ({pooled.seeds[0] if pooled.seeds else MISSING}); 95% interval: "
            "paired bootstrap over documents."
        )
    return (
        f"Primary metric per task. {forest.RIGHT_IS_BETTER.capitalize()} on every row (for "
        f"{LOWER} metrics, where lower is better, the chart plots clm-only - fused); the "
        f"numbers are fused - clm-only in the metric's units. {how}"
    )


def header(pooled: Pooled) -> list[str]:
    several = len(pooled.seeds) > 1
    out = [
        "Task",
        "Setting",
        "Metric",
        "clm-only",
        "fused",
        "Δ fused - clm-only",
        "95% CI",
        "Verdict",
    ]
    if several:
        out[3:5] = ["clm-only (mean)", "fused (mean)"]
        out += ["Seeds agreeing", "Δ per seed"]
    return out


def _cells(r: PooledRow) -> list[str]:
    ci = f"[{r.interval.low:+.4f}, {r.interval.high:+.4f}]" if r.interval else (r.note or MISSING)
    metric = r.metric if r.higher_is_better else f"{r.metric} {LOWER}"
    out = [
        r.task,
        setting_label(r.setting),
        metric,
        f"{r.control_mean:.4f}",
        f"{r.fused_mean:.4f}",
        f"{r.diff:+.4f}",
        ci,
        forest.verdict(r.diff, r.interval, r.higher_is_better),
    ]
    if len(r.seeds) > 1:
        out.append(f"{r.agree}/{len(r.seeds)} seeds")
        out.append(", ".join(f"{s}: {d:+.4f}" for s, d in zip(r.seeds, r.diffs, strict=True)))
    return out


def primary_rows(pooled: Pooled) -> list[PooledRow]:
    return [r for r in pooled.rows if r.primary]


def markdown(pooled: Pooled, figure: str, machine_line: str) -> str:
    rows = [_cells(r) for r in primary_rows(pooled)]
    parts = [
        f"## {TITLE}",
        f"![fused minus clm-only per task and seed]({figure})",
        md_table(header(pooled), rows) if rows else "No lm-eval task was compared.",
        intro(pooled),
        machine_line,
    ]
    parts += [f"- note: {n}" for n in pooled.notes]
    return "\n\n".join(parts) + "\n"


def view(pooled: Pooled, uri: str, machine_line: str) -> dict[str, Any]:
    return {
        "title": TITLE,
        "uri": uri,
        "header": header(pooled),
        "rows": [_cells(r) for r in primary_rows(pooled)],
        "note": intro(pooled),
        "machine": machine_line,
        "notes": pooled.notes,
    }
