"""The task catalogue: what fusebench can evaluate, read from the YAML definitions themselves.

The YAML files under ``tasks/lmeval`` are the single source of truth (name, split, metric,
version); this module only reads them, so ``fusebench tasks`` and the run manifests can never
drift from what lm-eval actually runs.

A name resolves to fusebench's own tasks first, then to lm-eval's registry and the user's
``--include-path`` folders (``tasks.registry``, indexed only when a name is not fusebench's,
since indexing the registry costs seconds). Those tasks get a ``TaskInfo`` from their lm-eval
config, so run directories, resume and reports treat them as they treat fusebench's.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tasks.errors import TaskDataError
from tasks.loaders import describe_source, get_benchmark

TASKS_DIR = Path(__file__).resolve().parent / "lmeval"
FUSEBENCH = "fusebench"


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
    origin: str = FUSEBENCH  # fusebench, lm-eval or include-path
    config_sha256: str | None = None  # lm-eval and include-path tasks: their config's digest
    config_shots: int | None = None  # the config's num_fewshot (lm-eval ignores others if 0)
    hub: bool = False  # lm-eval and include-path tasks: its data is read from the Hub

    @property
    def own(self) -> bool:
        """One of fusebench's tasks (its data read by ``tasks.loaders``)."""
        return self.origin == FUSEBENCH

    @property
    def zero_shot_only(self) -> bool:
        """A rolling log-likelihood scores the document alone: lm-eval would build few-shot
        examples and drop them, so every shot count would repeat the 0-shot figure. A task
        whose config says ``num_fewshot: 0`` (hrm8k) is scored at 0 shots whatever lm-eval
        is asked: filed under 5-shot it would be a 0-shot figure under another name."""
        return self.output_type == "loglikelihood_rolling" or self.config_shots == 0

    @property
    def zero_shot_reason(self) -> str:
        """Why ``zero_shot_only``, for the one-line refusal and notes."""
        if self.output_type == "loglikelihood_rolling":
            return "a rolling log-likelihood has no prompt"
        return "its config sets num_fewshot: 0, which lm-eval does not override"

    @property
    def needs_hub(self) -> bool:
        """Whether its data comes from the Hugging Face Hub (fusebench's: when
        FUSEBENCH_DATA_DIR holds no copy; others: a dataset_path that is no local file)."""
        return self.source.startswith("hub:") if self.own else self.hub

    @property
    def source(self) -> str:
        """Where the data comes from: fusebench's loaders' word, else ``lm-eval:<dataset>``."""
        if not self.own:
            return f"{self.origin}:{self.benchmark}"
        return describe_source(self.benchmark)

    @property
    def split_note(self) -> str | None:
        """What a derived split holds (ko_bpb: which passages), for listings."""
        return get_benchmark(self.benchmark).derived_note if self.own else None


@dataclass(frozen=True)
class GroupInfo:
    name: str
    tasks: tuple[str, ...]  # fusebench's tasks, or lm-eval's task and group names (ko_suite)
    version: str
    aggregate_metric_list: tuple[dict, ...] = ()  # as the YAML gives it (kobest's acc)

    @property
    def foreign_members(self) -> tuple[str, ...]:
        """Members that are not fusebench's tasks: lm-eval's (kmmlu ...), data on the Hub."""
        return tuple(m for m in self.tasks if m not in all_tasks())


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
            aggregate = tuple(cfg.get("aggregate_metric_list") or ())
            groups[cfg["group"]] = GroupInfo(cfg["group"], tuple(cfg["task"]), version, aggregate)
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


def check_shots(infos: dict[str, TaskInfo], shots: list[int]) -> None:
    """Refuses a run in which a task would be scored at no shot count at all: a rolling task
    (ko_bpb), or one whose config fixes ``num_fewshot: 0`` (hrm8k), is scored at 0 shots
    only, so it needs 0 among the shot counts."""
    if 0 in shots:
        return
    for name, info in infos.items():
        if info.zero_shot_only:
            listed = ",".join(map(str, sorted(set(shots))))
            raise TaskDataError(
                f"{name} is scored at 0 shots only ({info.zero_shot_reason}), "
                f"but --num-fewshot {listed} has no 0: add 0 (it then runs at 0 shots only)"
            )


def scored_at(name: str, shots: int, info: TaskInfo | None = None) -> bool:
    """Whether a run scores ``name`` at ``shots``: every task at every shot count, except a
    rolling task or one whose config fixes 0 shots (0 shots only; it is left out of the
    others, and reports say so)."""
    info = info or all_tasks().get(name)
    return shots == 0 or info is None or not info.zero_shot_only


def foreign_info(name: str, include_path: tuple[str, ...] = ()) -> TaskInfo:
    """The TaskInfo of an lm-eval registry or include-path task, from its config (no data)."""
    from tasks.registry import foreign, primary_of, reads_hub

    reg = foreign(include_path)
    cfg = reg.config(name)
    metric, higher = primary_of(cfg)
    kwargs = cfg.get("dataset_kwargs") if isinstance(cfg.get("dataset_kwargs"), dict) else {}
    dataset = str(cfg.get("dataset_path") or ("custom" if cfg.get("custom_dataset") else "?"))
    if cfg.get("dataset_name"):
        dataset += f":{cfg['dataset_name']}"
    elif kwargs.get("data_files"):
        dataset += f":{kwargs['data_files']}"
    return TaskInfo(
        name=name,
        benchmark=dataset,
        split=str(cfg.get("test_split") or cfg.get("validation_split") or "-"),
        fewshot_split=cfg.get("fewshot_split") or cfg.get("training_split"),
        metric=metric,
        version=str((cfg.get("metadata") or {}).get("version", "0")),
        higher_is_better=higher,
        output_type=str(cfg.get("output_type") or "generate_until"),
        origin=reg.source(name),
        config_sha256=reg.digest(name),
        config_shots=cfg.get("num_fewshot") if isinstance(cfg.get("num_fewshot"), int) else None,
        hub=reads_hub(cfg),
    )


def resolve(names: list[str], include_path: tuple[str, ...] = ()) -> dict[str, TaskInfo]:
    """The tasks a list of task and group names stands for, in order, each once.

    fusebench's own names first; any other name is looked up in lm-eval's registry and
    ``include_path`` (indexed only then). A member of an lm-eval group that is one of
    fusebench's tasks (kobest_boolq ...) is fusebench's. An unknown name is a user error that
    suggests the closest name of all sources.
    """
    tasks, groups = _catalogue()
    out: dict[str, TaskInfo] = {}
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name in groups:
            found = {}
            for member in groups[name].tasks:  # ko_suite names lm-eval's groups too
                more = {member: tasks[member]} if member in tasks else None
                found |= more or _resolve_foreign(member, include_path)
        elif name in tasks:
            found = {name: tasks[name]}
        else:
            found = _resolve_foreign(name, include_path)
        out.update({n: i for n, i in found.items() if n not in out})
    if not out:
        raise TaskDataError("no task given (--tasks is empty)")
    return out


def _resolve_foreign(name: str, include_path: tuple[str, ...]) -> dict[str, TaskInfo]:
    from tasks.registry import foreign

    reg = foreign(include_path)
    if name not in reg.index:
        tasks, groups = _catalogue()
        own = sorted(tasks) + sorted(groups)
        close = difflib.get_close_matches(name, own + sorted(reg.index), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = " or in --include-path" if include_path else ""
        raise TaskDataError(
            f"unknown task {name!r}.{hint} Not one of fusebench's ({', '.join(own)}), "
            f"lm-eval's registry{where} (`fusebench tasks --all` lists them)"
        )
    own_tasks = all_tasks()
    return {t: own_tasks.get(t) or foreign_info(t, include_path) for t in reg.expand(name)}


def expand(names: list[str], include_path: tuple[str, ...] = ()) -> list[str]:
    """Task names for a list of task and group names (``resolve``'s keys)."""
    return list(resolve(names, include_path))


def expand_own(names: list[str], what: str) -> list[str]:
    """``expand`` over fusebench's own tasks only, for commands that read their data with
    fusebench's loaders (``what`` names the command in the error); no registry is indexed."""
    tasks, groups = _catalogue()
    for raw in names:
        name = raw.strip()
        if name and name not in tasks and name not in groups:
            known = sorted(tasks) + sorted(groups)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TaskDataError(
                f"unknown task {name!r}.{hint} {what} takes fusebench's tasks only: "
                f"{', '.join(known)}"
            )
        if name in groups and groups[name].foreign_members:
            raise TaskDataError(
                f"{name} includes lm-eval's {', '.join(groups[name].foreign_members)}: {what} "
                "takes fusebench's tasks only; name those of its tasks instead"
            )
    return expand(names)


def task_manager():
    """An lm-eval TaskManager that sees only fusebench's tasks.

    Built-in tasks share the kobest names; leaving them out avoids lm-eval's override warnings
    and the cost of indexing thousands of YAML files on every run.
    """
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


def requested_groups(names: list[str], include_path: tuple[str, ...] = ()) -> list[dict]:
    """The group names among ``names`` and every group inside them that aggregates
    (ko_suite's kmmlu, kmmlu's kmmlu_stem, click's click_lang): each with its tasks
    (``resolve``'s, in order) and its ``aggregate_metric_list`` (fusebench's group YAML, else
    lm-eval's or the user's group config), for the manifest and the reports' aggregate rows;
    a group before the groups inside it."""
    out: dict[str, dict] = {}
    for raw in dict.fromkeys(n.strip() for n in names):
        _walk_group(raw, include_path, out, named=True)
    return list(out.values())


def _walk_group(
    name: str, include_path: tuple[str, ...], out: dict[str, dict], named: bool
) -> None:
    """Record ``name`` in ``out`` if it is a group (named in --tasks, or one that aggregates),
    then the groups among its members."""
    _, groups = _catalogue()
    if name in out or not name:
        return
    if name in groups:
        aggregate = [dict(a) for a in groups[name].aggregate_metric_list]
        members = list(groups[name].tasks)
    elif name in all_tasks():
        return
    else:
        from tasks.registry import foreign

        reg = foreign(include_path)
        if name not in reg.index or reg.kind(name) != "group":
            return  # a task or a tag: no aggregate of its own
        cfg = reg.config(name)
        aggregate = [dict(a) for a in cfg.get("aggregate_metric_list") or []]
        members = [m for m in cfg.get("task") or [] if isinstance(m, str)]
    if named or aggregate:
        tasks = expand([name], include_path)
        out[name] = {"name": name, "tasks": tasks, "aggregate_metric_list": aggregate}
    for member in members:
        _walk_group(member, include_path, out, named=False)
