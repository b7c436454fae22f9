"""The task catalogue: what fusebench can evaluate, read from the YAML definitions themselves.

The YAML files under ``tasks/lmeval`` are the single source of truth (name, split, metric,
version); this module only reads them, so ``fusebench tasks`` and the run manifests can never
drift from what lm-eval actually runs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tasks.errors import TaskDataError
from tasks.loaders import describe_source, get_benchmark

TASKS_DIR = Path(__file__).resolve().parent / "lmeval"


@dataclass(frozen=True)
class TaskInfo:
    name: str
    benchmark: str
    split: str
    fewshot_split: str | None
    metric: str  # primary metric, as lm-eval names it in results ("acc", "f1")
    version: str
    higher_is_better: bool = True  # of the primary metric (bits_per_byte: False)
    output_type: str = "multiple_choice"

    @property
    def zero_shot_only(self) -> bool:
        """A rolling log-likelihood scores the document alone: lm-eval would build few-shot
        examples and drop them, so every shot count would repeat the 0-shot figure."""
        return self.output_type == "loglikelihood_rolling"

    @property
    def source(self) -> str:
        return describe_source(self.benchmark)

    @property
    def split_note(self) -> str | None:
        """What a derived split holds (ko_bpb: which passages), for listings."""
        return get_benchmark(self.benchmark).derived_note


@dataclass(frozen=True)
class GroupInfo:
    name: str
    tasks: tuple[str, ...]
    version: str


def _load_yaml(path: Path) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval's own include resolution

    return load_yaml(path, resolve_func=False)


@cache
def _catalogue() -> tuple[dict[str, TaskInfo], dict[str, GroupInfo]]:
    tasks: dict[str, TaskInfo] = {}
    groups: dict[str, GroupInfo] = {}
    for path in sorted(TASKS_DIR.glob("*.yaml")):
        cfg = _load_yaml(path)
        version = str((cfg.get("metadata") or {}).get("version", "0"))
        if "group" in cfg:
            groups[cfg["group"]] = GroupInfo(cfg["group"], tuple(cfg["task"]), version)
            continue
        primary = cfg["metric_list"][0]
        output_type = cfg["output_type"]
        tasks[cfg["task"]] = TaskInfo(
            name=cfg["task"],
            benchmark=cfg["dataset_kwargs"]["benchmark"],
            split=cfg["test_split"],
            fewshot_split=cfg.get("fewshot_split") or cfg.get("training_split"),
            metric=primary["metric"],
            version=version,
            higher_is_better=bool(primary.get("higher_is_better", True)),
            output_type=output_type,
        )
    return tasks, groups


def all_tasks() -> dict[str, TaskInfo]:
    return _catalogue()[0]


def all_groups() -> dict[str, GroupInfo]:
    return _catalogue()[1]


def check_shots(names: list[str], shots: list[int]) -> None:
    """Refuses a run in which a task would be scored at no shot count at all: a rolling task
    (ko_bpb) is scored at 0 shots only, so it needs 0 among the shot counts."""
    if 0 in shots:
        return
    infos = all_tasks()
    for name in names:
        if infos[name].zero_shot_only:
            listed = ",".join(map(str, sorted(set(shots))))
            raise TaskDataError(
                f"{name} is scored at 0 shots only (a rolling log-likelihood has no prompt), "
                f"but --num-fewshot {listed} has no 0: add 0 (it then runs at 0 shots only)"
            )


def scored_at(name: str, shots: int) -> bool:
    """Whether a run scores ``name`` at ``shots``: every task at every shot count, except a
    rolling task (0 shots only; it is left out of the others, and reports say so)."""
    info = all_tasks().get(name)
    return shots == 0 or info is None or not info.zero_shot_only


def expand(names: list[str]) -> list[str]:
    """Task names for a list of task and group names, in order, each once.

    An unknown name is a user error that lists what is known and suggests the closest.
    """
    tasks, groups = _catalogue()
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name in groups:
            members = list(groups[name].tasks)
        elif name in tasks:
            members = [name]
        else:
            known = sorted(tasks) + sorted(groups)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TaskDataError(f"unknown task {name!r}.{hint} Known: {', '.join(known)}")
        out.extend(m for m in members if m not in out)
    if not out:
        raise TaskDataError("no task given (--tasks is empty)")
    return out


def task_manager():
    """An lm-eval TaskManager that sees only fusebench's tasks.

    Built-in tasks share the kobest names; leaving them out avoids lm-eval's override warnings
    and the cost of indexing thousands of YAML files on every run.
    """
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
