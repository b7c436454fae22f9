"""The table ``fusebench eval`` prints at the end: each task's primary metric per shot count."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from reports import rundir
from tasks import catalog


def summary_table(run: Path) -> Table:
    manifest = rundir.read_manifest(run)
    metrics = {t.name: t.metric for t in manifest.tasks}
    name = manifest.label or Path(manifest.model.name_or_path).name
    table = Table(title=f"{name}  ({run})")
    for column in ("task", "shots", "metric", "value", "± stderr", "n"):
        table.add_column(
            column, justify="right" if column in ("value", "± stderr", "n") else "left"
        )
    for shots in manifest.num_fewshot:
        results = rundir.read_results(run, shots) or {}
        for task, metric in metrics.items():
            if not catalog.scored_at(task, shots):
                continue  # a rolling task (ko_bpb): 0 shots only
            row = results.get("results", {}).get(task)
            if row is None:
                table.add_row(task, str(shots), metric, "missing", "", "")
                continue
            stderr = row.get(f"{metric}_stderr,none")
            n = results.get("n-samples", {}).get(task, {}).get("effective", "")
            higher = results.get("higher_is_better", {}).get(task, {}).get(metric, True)
            table.add_row(
                task,
                str(shots),
                metric if higher is not False else f"{metric} (lower is better)",
                f"{row[f'{metric},none']:.4f}",
                f"{stderr:.4f}" if isinstance(stderr, (int, float)) else "n/a",
                str(n),
            )
    return table
