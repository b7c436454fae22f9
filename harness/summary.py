"""The table ``fusebench eval`` prints at the end: each task's primary metric per shot count."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from reports import rundir
from reports.lmeval import primary_filter
from tasks import catalog


def summary_table(run: Path) -> Table:
    manifest = rundir.read_manifest(run)
    metrics = {t.name: t.metric for t in manifest.tasks}
    rolling = {
        t.name
        for t in manifest.tasks
        if t.output_type == "loglikelihood_rolling" or t.zero_shot_only
    }
    name = manifest.label or Path(manifest.model.name_or_path).name
    table = Table(title=f"{name}  ({run})")
    for column in ("task", "shots", "metric", "value", "± stderr", "n"):
        table.add_column(
            column, justify="right" if column in ("value", "± stderr", "n") else "left"
        )
    for shots in manifest.num_fewshot:
        results = rundir.read_results(run, shots) or {}
        for task, metric in metrics.items():
            if not catalog.scored_at(task, shots) or (shots and task in rolling):
                continue  # a rolling task (ko_bpb), a config's 0 shots: 0 shots only
            row = results.get("results", {}).get(task)
            key = _metric_key(row or {}, metric, primary_filter(results, task))
            if key is None:
                table.add_row(task, str(shots), metric, "missing", "", "")
                continue
            filt = key.split(",", 1)[1]
            shown = metric if filt == "none" else key
            stderr = row.get(f"{metric}_stderr,{filt}")
            n = results.get("n-samples", {}).get(task, {}).get("effective", "")
            higher = results.get("higher_is_better", {}).get(task, {}).get(metric, True)
            table.add_row(
                task,
                str(shots),
                shown if higher is not False else f"{shown} (lower is better)",
                f"{row[key]:.4f}",
                f"{stderr:.4f}" if isinstance(stderr, (int, float)) else "n/a",
                str(n),
            )
        _group_rows(table, manifest, shots, results)
    return table


def _group_rows(table: Table, manifest: rundir.Manifest, shots: int, results: dict) -> None:
    """A requested group's aggregate rows (kmmlu's acc), after its tasks' rows: lm-eval's
    aggregate of the stored results (``reports.groups``), when every member was scored."""
    from reports.groups import aggregate

    for group in manifest.groups:
        agg = aggregate(group, results)
        for key, value in (agg or {}).items():
            if key == "sample_len" or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            stderr = agg.get(f"{metric}_stderr,{filt}")
            table.add_row(
                f"{group.name} (group)",
                str(shots),
                metric if filt == "none" else key,
                f"{value:.4f}",
                f"{stderr:.4f}" if isinstance(stderr, (int, float)) else "n/a",
                str(agg.get("sample_len", "")),
            )


def _metric_key(row: dict, metric: str, filt: str = "none") -> str | None:
    """The metric under the task's primary filter (``exact_match,strict-match``, the first
    of its config's filter_list, as reports read it), else ``metric,none``, else under any
    filter; None when the results lack it."""
    for key in (f"{metric},{filt}", f"{metric},none"):
        if key in row:
            return key
    return next((k for k in row if k.split(",", 1)[0] == metric and "," in k), None)
