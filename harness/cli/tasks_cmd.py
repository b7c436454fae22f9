"""``fusebench tasks``: what can be evaluated, from where, with which metric and version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def tasks_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    show_all: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also every task, group and tag of lm-eval's registry and --include-path, "
            "with its source (indexing the registry takes seconds).",
        ),
    ] = False,
    include_path: Annotated[
        list[Path] | None,
        typer.Option("--include-path", help="Folder of lm-eval YAML tasks to list (with --all)."),
    ] = None,
) -> None:
    """List tasks (name, source, split, metric, version) and groups."""
    from tasks import catalog

    tasks, groups = catalog.all_tasks(), catalog.all_groups()
    if show_all or include_path:
        _list_all(tuple(str(p) for p in include_path or ()), as_json)
        return
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
                            "needs_hub": t.needs_hub,
                        }
                        for t in tasks.values()
                    ],
                    "groups": [
                        {
                            "name": g.name,
                            "tasks": list(g.tasks),
                            "version": g.version,
                            "needs_hub": _group_needs_hub(g),
                        }
                        for g in groups.values()
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    table = Table(title="tasks")
    for column in ("name", "source", "data", "split", "metric", "version", "few-shot from"):
        table.add_column(column)
    for t in tasks.values():
        metric = t.metric if t.higher_is_better else f"{t.metric} (lower is better)"
        fewshot = "0-shot only" if t.zero_shot_only else t.fewshot_split or "-"
        split = f"{t.split}: {t.split_note}" if t.split_note else t.split
        data = "Hub" if t.needs_hub else "local"
        table.add_row(t.name, t.source, data, split, metric, t.version, fewshot)
    groups_table = Table(title="groups")
    for column in ("name", "tasks", "data", "version"):
        groups_table.add_column(column)
    for g in groups.values():
        groups_table.add_row(g.name, ", ".join(g.tasks), _group_data(g), g.version)
    console = Console()
    console.print(table)
    console.print(groups_table)


def _group_needs_hub(group) -> bool:
    """A group's data needs the Hub when a member's does: lm-eval's members (ko_suite's
    kmmlu, haerae, click: Hub datasets; not indexed here, which costs seconds) always."""
    from tasks import catalog

    own = catalog.all_tasks()
    return bool(group.foreign_members) or any(own[m].needs_hub for m in group.tasks)


def _group_data(group) -> str:
    """``local``, ``Hub``, or which members need the Hub (or a local copy of its data)."""
    if not _group_needs_hub(group):
        return "local"
    if group.foreign_members and len(group.foreign_members) < len(group.tasks):
        return f"Hub for {', '.join(group.foreign_members)} (or a local copy); the rest local"
    return "Hub"


def _data_of(reg, name: str) -> str | None:
    """``Hub`` or ``local`` for an indexed task, group or tag, from its tasks' configs (a
    group's, even one fusebench cannot run); None when it names no task."""
    from tasks.registry import reads_hub

    configs = reg.leaf_configs(name)
    if not configs:
        return None
    return "Hub" if any(reads_hub(cfg) for cfg in configs) else "local"


def _list_all(include_path: tuple[str, ...], as_json: bool) -> None:
    """Every name ``--tasks`` takes, by source: fusebench's first (they win a name), then
    lm-eval's registry and the --include-path folders, with each task's primary metric."""
    from tasks import catalog
    from tasks.registry import foreign, primary_of

    reg = foreign(include_path)
    own = {**catalog.all_tasks(), **catalog.all_groups()}
    rows = [
        {
            "name": name,
            "kind": "group" if name in catalog.all_groups() else "task",
            "source": catalog.FUSEBENCH,
            "metric": getattr(info, "metric", None),
            "higher_is_better": getattr(info, "higher_is_better", None),
            "data": (
                ("Hub" if info.needs_hub else "local")
                if isinstance(info, catalog.TaskInfo)
                else ("Hub" if _group_needs_hub(info) else "local")
            ),
        }
        for name, info in own.items()
    ]
    for name in sorted(reg.index):
        if name in own:
            continue  # fusebench's task of that name is the one --tasks runs
        kind = reg.kind(name)
        metric, higher = primary_of(reg.config(name)) if kind == "task" else (None, None)
        rows.append(
            {
                "name": name,
                "kind": kind,
                "source": reg.source(name),
                "metric": metric,
                "higher_is_better": higher,
                "data": _data_of(reg, name),
            }
        )
    if as_json:
        print(json.dumps({"tasks": rows}, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"tasks ({len(rows)})")
    for column in ("name", "kind", "source", "data", "metric"):
        table.add_column(column)
    for row in rows:
        metric = row["metric"] or ""
        if metric and row["higher_is_better"] is False:
            metric += " (lower is better)"
        table.add_row(row["name"], row["kind"], row["source"], row["data"] or "?", metric)
    console = Console()
    console.print(table)
    console.print(
        "data Hub: read from the Hugging Face Hub; offline, from a copy in HF_DATASETS_CACHE "
        "made where the Hub can be reached, or a task under --include-path whose dataset_path "
        "points at local files",
        soft_wrap=True,
    )
