"""``fusebench tasks``: what can be evaluated, from where, with which metric and version."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def tasks_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List tasks (name, source, split, metric, version) and groups."""
    from tasks import catalog

    tasks, groups = catalog.all_tasks(), catalog.all_groups()
    if as_json:
        print(
            json.dumps(
                {
                    "tasks": [
                        {
                            "name": t.name,
                            "source": t.source,
                            "split": t.split,
                            "split_note": t.split_note,
                            "metric": t.metric,
                            "higher_is_better": t.higher_is_better,
                            "version": t.version,
                            "fewshot_split": t.fewshot_split,
                            "zero_shot_only": t.zero_shot_only,
                        }
                        for t in tasks.values()
                    ],
                    "groups": [
                        {"name": g.name, "tasks": list(g.tasks), "version": g.version}
                        for g in groups.values()
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    table = Table(title="tasks")
    for column in ("name", "source", "split", "metric", "version", "few-shot from"):
        table.add_column(column)
    for t in tasks.values():
        metric = t.metric if t.higher_is_better else f"{t.metric} (lower is better)"
        fewshot = "0-shot only" if t.zero_shot_only else t.fewshot_split or "-"
        split = f"{t.split}: {t.split_note}" if t.split_note else t.split
        table.add_row(t.name, t.source, split, metric, t.version, fewshot)
    groups_table = Table(title="groups")
    for column in ("name", "tasks", "version"):
        groups_table.add_column(column)
    for g in groups.values():
        groups_table.add_row(g.name, ", ".join(g.tasks), g.version)
    console = Console()
    console.print(table)
    console.print(groups_table)
