"""A requested group's aggregate (kmmlu's acc), computed from its tasks' stored results.

fusebench evaluates a group's tasks one by one, so lm-eval never sees the group; its score
is computed afterwards, from each task's entry in ``<n>-shot/results.json``, by lm-eval's
own ``Group.aggregate`` (``aggregate_subtask_metrics``, ``pooled_sample_stderr`` or the
unweighted stderr, as the group's ``aggregate_metric_list`` says): the figure ``lm_eval``
prints for the group, not a re-implementation of it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from reports.rundir import GroupEntry


def aggregate(group: GroupEntry, results: dict) -> dict[str, Any] | None:
    """``{"acc,none": ..., "acc_stderr,none": ..., "sample_len": n}`` of ``group`` at one
    shot count; None when it aggregates nothing or a member task is missing there (a
    partial aggregate would not be the group's)."""
    if not group.aggregate_metric_list:
        return None
    rows = results.get("results") or {}
    counts = results.get("n-samples") or {}
    if any(task not in rows for task in group.tasks):
        return None
    from lm_eval.api.group import Group

    metrics = {
        task: {**rows[task], "sample_len": (counts.get(task) or {}).get("effective", 0)}
        for task in group.tasks
    }
    lm_group = Group.from_config(
        {"group": group.name, "aggregate_metric_list": list(group.aggregate_metric_list)}
    )
    leaves = [SimpleNamespace(task_name=task) for task in group.tasks]
    lm_group.get_all_tasks = lambda recursive=True: leaves  # the stored tasks, not built ones
    out = lm_group.aggregate(metrics)
    return {k: v for k, v in out.items() if "," in k or k == "sample_len"}


def score_rows(
    groups: list[GroupEntry], results: dict, run: str, model: str, shots: int
) -> list[dict[str, Any]]:
    """The reports' rows (``reports.table.SCORE_COLUMNS``) of each group's aggregate at one
    shot count, marked ``group`` so averages leave them out (their tasks are columns
    already); the first metric of its ``aggregate_metric_list`` is its primary."""
    from reports.lmeval import aggregation, higher_is_better, is_number

    rows = []
    for group in groups:
        agg = aggregate(group, results)
        if not agg:
            continue
        first = group.aggregate_metric_list[0]
        filters = first.get("filter_list") or ["none"]
        primary = (first.get("metric"), filters[0] if isinstance(filters, list) else filters)
        for key, value in agg.items():
            if key == "sample_len" or "_stderr," in key or not is_number(value):
                continue
            metric, filt = key.split(",", 1)
            stderr = agg.get(f"{metric}_stderr,{filt}")
            member = group.tasks[0]
            rows.append(
                {
                    "run": run,
                    "model": model,
                    "kind": "lm-eval",
                    "task": group.name,
                    "metric": metric if filt == "none" else key,
                    "num_fewshot": shots,
                    "strategy": None,
                    "value": float(value),
                    "stderr": float(stderr) if is_number(stderr) else float("nan"),
                    "n": int(agg["sample_len"]) if is_number(agg.get("sample_len")) else None,
                    "version": None,
                    "exact": None,
                    "higher_is_better": higher_is_better(results, member, metric),
                    "aggregation": aggregation(results, member, metric),
                    "primary": (metric, filt) == primary,
                    "group": True,
                }
            )
    return rows
