"""Tasks fusebench does not define: lm-eval's registry and the user's ``--include-path`` folders.

Indexing lm-eval's registry parses thousands of YAML files (seconds), so nothing here runs
unless a name is not one of fusebench's own tasks (``tasks.catalog``). The index is lm-eval's
own (``TaskManager(include_path=...)``): a task in a user's folder replaces a registry task of
the same name, as with ``lm_eval --include_path``, and fusebench says so. A task's
``TaskInfo`` (metric, direction, split, version) is read from its indexed config, with
includes resolved and no data loaded; the data is loaded only to evaluate it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from tasks.errors import TaskDataError

LMEVAL = "lm-eval"
INCLUDE_PATH = "include-path"
# Keys of a group's config that describe the group itself; any other key overrides its tasks.
_MISSING = object()  # a key a task's config does not have
_GROUP_KEYS = {"group", "group_alias", "task", "aggregate_metric_list", "metadata", "tag"}
_OFFLINE_HINT = (
    "without the Hub, prepare HF_DATASETS_CACHE on a machine with access, or point "
    "dataset_path at local files in a task under --include-path"
)


class _Captured(logging.Handler):
    """lm-eval's index warnings (duplicates, overrides), kept instead of printed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _captured_index_logs() -> Iterator[_Captured]:
    logger = logging.getLogger("lm_eval.tasks._index")
    handler, propagate = _Captured(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def lmeval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).resolve().parent


def _within(path: Path | None, root: Path) -> bool:
    return path is not None and path.resolve().is_relative_to(root)


@dataclass
class Foreign:
    """lm-eval's registry plus the user's task folders, indexed once per process."""

    manager: Any  # lm_eval.tasks.TaskManager
    include_path: tuple[Path, ...]
    replaced: dict[str, str]  # include-path task -> the registry YAML it replaces
    built: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> Task, shots

    @property
    def index(self) -> dict[str, Any]:
        return self.manager.task_index

    def source(self, name: str) -> str:
        """``lm-eval`` or ``include-path``: where ``name``'s definition was found."""
        entry = self.index[name]
        if entry.yaml_path is None:  # a tag: the source of its tasks
            members = sorted(entry.tags)
            return self.source(members[0]) if members else LMEVAL
        return (
            INCLUDE_PATH if any(_within(entry.yaml_path, p) for p in self.include_path) else LMEVAL
        )

    def kind(self, name: str) -> str:
        return self.index[name].kind.name.lower()  # task, py_task, group, tag

    def expand(self, name: str, seen: tuple[str, ...] = ()) -> list[str]:
        """The tasks a task, group or tag name stands for, in the group's order."""
        from lm_eval.tasks._index import Kind

        if name in seen:
            raise TaskDataError(f"group {seen[-1]!r} includes itself through {name!r}")
        entry = self.index.get(name)
        if entry is None:
            raise TaskDataError(f"{seen[-1]!r} names {name!r}, which lm-eval does not know")
        if entry.kind is Kind.TASK:
            return [name]
        if entry.kind is Kind.PY_TASK:
            raise TaskDataError(
                f"{name}: lm-eval defines it as a Python class ({entry.yaml_path}); fusebench "
                "runs YAML tasks only"
            )
        cfg = {} if entry.kind is Kind.TAG else (entry.cfg or {})
        members = sorted(entry.tags) if entry.kind is Kind.TAG else (cfg.get("task") or [])
        if any(not isinstance(m, str) for m in members):
            self._refuse(name, "defines a task inline")
        out: list[str] = []
        for member in members:
            out += [t for t in self.expand(member, (*seen, name)) if t not in out]
        overrides = self._overrides(cfg, out)
        if overrides:
            self._refuse(name, f"sets {', '.join(overrides)} for its tasks")
        return out

    def _overrides(self, cfg: dict, tasks: list[str]) -> list[str]:
        """The group-level keys that change a task's config. A key every task already has
        with the same value (hrm8k's metric_list) changes nothing, in lm-eval as here."""
        keys = sorted(set(cfg) - _GROUP_KEYS)
        return [k for k in keys if any(self.config(t).get(k, _MISSING) != cfg[k] for t in tasks)]

    def _refuse(self, name: str, what: str) -> NoReturn:
        raise TaskDataError(
            f"group {name} ({self.index[name].yaml_path}) {what}: fusebench evaluates a "
            "group's tasks one by one under their own names; name the tasks instead"
        )

    def leaf_configs(self, name: str, seen: tuple[str, ...] = ()) -> list[dict]:
        """The configs of the tasks ``name`` stands for, inline ones included, whether or not
        fusebench can run the group (``fusebench tasks --all`` says where their data is)."""
        entry = self.index.get(name)
        if entry is None or name in seen:
            return []
        if entry.kind.name == "TAG":
            members: list = sorted(entry.tags)
        elif entry.kind.name == "GROUP":
            members = (entry.cfg or {}).get("task") or []
        else:
            return [self.config(name)]
        out: list[dict] = []
        for member in members:
            if isinstance(member, str):
                out += self.leaf_configs(member, (*seen, name))
            elif isinstance(member, dict):
                out.append(member)
        return out

    def digest(self, name: str) -> str:
        """``config_digest`` of the task's config, its folders named, not spelled out."""
        roots = {str(lmeval_tasks_dir()): "<lm-eval>"}
        roots |= {str(p): f"<include-path {i}>" for i, p in enumerate(self.include_path)}
        return config_digest(self.config(name), roots)

    def config(self, name: str) -> dict:
        """The task's config as indexed: includes resolved, ``!function`` left unresolved."""
        return dict(self.index[name].cfg or {})

    def build_task(self, name: str):
        """lm-eval's Task for ``name``, its data loaded (once per process: the check before
        the model loads and every shot count's evaluation share it); a failure to load is one
        line. lm-eval's ``simple_evaluate`` re-seeds the few-shot sampler and builds the
        requests afresh each time, but it writes the shot count into the task's config and
        leaves a config's 0 alone (a task whose YAML says 0 shots stays at 0): the config's
        own value is put back here, or a 0-shot evaluation would make every later one 0-shot."""
        if name not in self.built:
            try:
                task = self.manager.load([name])["tasks"][name]
            except Exception as err:  # offline, gated, a missing file, a bad template
                self._cannot_load(name, err)
            self.built[name] = (task, task.get_config("num_fewshot"))
        task, shots = self.built[name]
        task.set_config(key="num_fewshot", value=shots)
        return task

    def _cannot_load(self, name: str, err: Exception) -> NoReturn:
        """One line naming the task, its YAML and its data (the causes are all user-side)."""
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        dataset = self.config(name).get("dataset_path", "?")
        raise TaskDataError(
            f"{name} ({self.source(name)}, {self.index[name].yaml_path}): its data "
            f"({dataset}) could not be loaded: {reason}; {_OFFLINE_HINT}"
        ) from None


@cache
def foreign(include_path: tuple[str, ...] = ()) -> Foreign:
    """The index of lm-eval's registry and ``include_path`` (built once per process)."""
    from lm_eval.tasks import TaskManager

    folders = tuple(Path(p).expanduser().resolve() for p in include_path)
    for folder in folders:
        if not folder.is_dir():
            raise TaskDataError(f"--include-path {folder}: not a directory")
    with _captured_index_logs() as logs:
        manager = TaskManager(include_path=[str(f) for f in folders] or None)
    replaced = {
        str(r.args[0]): str(r.args[2])
        for r in logs.records
        if "overrides existing task" in str(r.msg)
        and isinstance(r.args, tuple)
        and len(r.args) == 3
    }
    return Foreign(manager, folders, replaced)


@cache
def include_names(include_path: tuple[str, ...]) -> frozenset[str]:
    """The names the user's folders define (indexed alone: cheap, no registry)."""
    if not include_path:
        return frozenset()
    from lm_eval.tasks._index import TaskIndex

    folders = [Path(p).expanduser().resolve() for p in include_path]
    with _captured_index_logs():
        return frozenset(TaskIndex.build([f for f in folders if f.is_dir()]))


# datasets' builders that read the files a config names (data_files), not a Hub repository.
_LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "webdataset"}


def reads_hub(cfg: dict) -> bool:
    """Whether a task's data is a Hub dataset (``HAERAE-HUB/KMMLU``): not one of datasets'
    file builders, not a local folder, not a ``custom_dataset`` function. Such a task needs
    the Hub, or a copy in HF_DATASETS_CACHE made where the Hub can be reached."""
    path = cfg.get("dataset_path")
    if not isinstance(path, str) or cfg.get("custom_dataset"):
        return False
    return path not in _LOCAL_BUILDERS and not Path(path).expanduser().exists()


def _default_metric(output_type: str) -> str:
    from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY

    return (DEFAULT_METRIC_REGISTRY.get(output_type) or ["acc"])[0]


def _registered_direction(metric: str) -> bool:
    """lm-eval's direction for a metric it registers; higher is better for the others (a
    task's own function), as lm-eval's tables assume. Asked quietly: lm-eval's own lookup
    logs a warning for every unregistered name."""
    import lm_eval.api.metrics  # noqa: F401  (fills the registries)
    from lm_eval.api import registry

    higher = registry.higher_is_better_registry.get(metric, None)
    return higher if isinstance(higher, bool) else True


def _metric_name(metric: Any) -> str:
    """A metric as lm-eval's results name it: a ``!function`` metric (indexed as the path
    ``<folder>/utils.rouge1``) by its function's name."""
    text = str(metric)
    return text.rsplit("/", 1)[-1].rsplit(".", 1)[-1] if "/" in text else text


def primary_of(cfg: dict) -> tuple[str, bool]:
    """The task's primary metric (``metric_list[0]``, else lm-eval's default for its output
    type) and whether higher is better (the config's word, else lm-eval's for the metric)."""
    output_type = cfg.get("output_type") or "generate_until"
    metrics = [m for m in cfg.get("metric_list") or [] if isinstance(m, dict) and "metric" in m]
    if not metrics:
        metric = _default_metric(output_type)
        return metric, _registered_direction(metric)
    metric = _metric_name(metrics[0]["metric"])
    higher = metrics[0].get("higher_is_better")
    return metric, higher if isinstance(higher, bool) else _registered_direction(metric)


def _relative(value: Any, roots: dict[str, str]) -> Any:
    """``value`` with the folders in ``roots`` (path -> name) replaced by their names."""
    if isinstance(value, dict):
        return {k: _relative(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, roots) for v in value]
    if isinstance(value, str):
        for path, name in roots.items():
            if value.startswith(path + "/"):
                return name + value[len(path) :]
    return value


def config_digest(cfg: dict, roots: dict[str, str] | None = None) -> str:
    """sha256 of the config as indexed (includes resolved): a changed task is another task.
    An unresolved ``!function`` is an absolute path; under ``roots`` (lm-eval's tasks folder,
    the include folders) it is hashed relative to it, so moving an environment or a task
    folder does not make another task."""
    text = json.dumps(_relative(cfg, roots or {}), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
