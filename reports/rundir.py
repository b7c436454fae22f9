"""The run directory: the file layout and manifest schema shared by the harness and reports.

The harness writes run directories and reports reads them; the schema lives here, in the
reading package, because ``reports`` may not import ``harness`` (dependencies point one way).

    runs/<name>/manifest.json                  what was run, how, and how far it got
    runs/<name>/<n>-shot/results.json          lm-eval's results object (all tasks at n shots)
    runs/<name>/<n>-shot/samples/<task>.jsonl  lm-eval's per-sample records

One shot setting is one lm-eval evaluation, so each gets its own folder: a run made with
``--num-fewshot 0,5`` holds ``0-shot/`` and ``5-shot/`` side by side under one manifest.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reports.errors import BadFile
from reports.jsonio import read_json
from runrecords.atomic import write_json_atomic, write_status_json

MANIFEST_FORMAT = "fusebench.run/1"
MANIFEST = "manifest.json"
RESULTS = "results.json"
SAMPLES = "samples"


def shot_dir(run: Path, num_fewshot: int) -> Path:
    return run / f"{num_fewshot}-shot"


def samples_path(run: Path, num_fewshot: int, task: str) -> Path:
    return shot_dir(run, num_fewshot) / SAMPLES / f"{task}.jsonl"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- manifest


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(_Model):
    name_or_path: str
    revision: str | None = None
    local: bool
    sha256: str | None = Field(None, description="Of the weight files, for local models.")


class BackendInfo(_Model):
    name: str
    args: dict[str, Any] = Field(default_factory=dict, description="No secrets.")


class TaskEntry(_Model):
    name: str
    version: str
    benchmark: str  # fusebench's benchmark; lm-eval's dataset_path[:dataset_name]
    source: str
    split: str
    metric: str  # the primary metric, as lm-eval names it
    higher_is_better: bool = True  # of the primary metric
    origin: str = "fusebench"  # fusebench, lm-eval or include-path
    output_type: str | None = None  # lm-eval's (multiple_choice, loglikelihood_rolling, ...)
    config_sha256: str | None = None  # lm-eval and include-path tasks: their config's digest
    zero_shot_only: bool = False  # scored at 0 shots only (its config fixes num_fewshot: 0)


class GroupEntry(_Model):
    """A group named in --tasks: its tasks (as run) and how lm-eval aggregates them."""

    name: str
    tasks: list[str]
    aggregate_metric_list: list[dict[str, Any]] = Field(default_factory=list)


class ChatSettings(_Model):
    """How prompts were formatted (``fusebench eval --apply-chat-template``, ...); the default
    (no template, no system instruction) is what a manifest without this entry means."""

    apply_chat_template: bool | str = Field(
        False, description="lm-eval's setting: False, True (the tokenizer's default) or a name."
    )
    chat_template_sha256: str | None = Field(
        None, description="Of the template text applied (resolved as lm-eval resolves it)."
    )
    system_instruction: str | None = None
    fewshot_as_multiturn: bool = False

    def comparable(self) -> dict[str, Any]:
        """What changes the prompts: the template's text (not the name it was chosen by)."""
        return {
            "chat template": self.chat_template_sha256 if self.apply_chat_template else None,
            "system instruction": self.system_instruction,
            "fewshot as multiturn": self.fewshot_as_multiturn,
        }


class Completed(_Model):
    task: str
    num_fewshot: int
    finished_at: str
    seconds: float
    n_samples: int
    truncated: int | None = Field(
        None,
        description="Documents whose context was cut from the left to fit the model's maximum "
        "length (as lm-eval does); None where the backend cannot count them.",
    )
    results_sha256: str | None = Field(
        None,
        description="Of this task's entry in <n>-shot/results.json (`task_digest`); None in "
        "runs made before it was recorded (resume then checks presence and parse).",
    )
    samples_sha256: str | None = Field(None, description="Of <n>-shot/samples/<task>.jsonl.")


class Manifest(_Model):
    format: str = MANIFEST_FORMAT
    fusebench_version: str
    git_commit: str | None
    model: ModelInfo
    backend: BackendInfo
    requested_tasks: list[str]
    tasks: list[TaskEntry]
    num_fewshot: list[int]
    seeds: dict[str, int]
    limit: int | float | None
    started_at: str
    label: str | None = Field(
        None,
        description="The run's name in reports and the model name their tables show "
        "(`fusebench eval --label`); None: the directory's and the model folder's names.",
    )
    include_path: list[str] = Field(
        default_factory=list,
        description="The --include-path folders, absolute, of every invocation into this run "
        "(a resumed run may name others: each task's config_sha256 decides whether it is the "
        "same task); empty in manifests written before it was recorded.",
    )
    chat: ChatSettings | None = Field(
        None, description="Chat formatting; None in runs made before it was recorded (none used)."
    )
    groups: list[GroupEntry] = Field(
        default_factory=list,
        description="The group names among requested_tasks, with their tasks and "
        "aggregate_metric_list (reports show their aggregate); empty in older manifests.",
    )
    finished_at: str | None = None
    status: Literal["running", "complete", "failed", "interrupted"] = "running"
    error: str | None = None
    completed: list[Completed] = Field(default_factory=list)

    def is_done(self, task: str, num_fewshot: int) -> bool:
        return any(c.task == task and c.num_fewshot == num_fewshot for c in self.completed)


def read_manifest(run: Path) -> Manifest:
    """The run's manifest; a missing, foreign or invalid one is a ``BadFile`` naming it."""
    path = run / MANIFEST
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise BadFile(path, f"format {found!r}, expected {MANIFEST_FORMAT!r}")
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadFile(path, f"not a valid run manifest ({where}: {first['msg']})") from None


def write_manifest(run: Path, manifest: Manifest) -> None:
    write_json_atomic(run / MANIFEST, manifest.model_dump(mode="json"))


def write_end_status(run: Path, manifest: Manifest) -> None:
    """The manifest as a run ends (failed, interrupted): written even on a full disk when it
    fits in place of the old one (runrecords.atomic.write_status_json)."""
    write_status_json(run / MANIFEST, manifest.model_dump(mode="json"))


# ---------------------------------------------------------------- results


_MERGED_KEYS = (
    "results",
    "configs",
    "versions",
    "n-shot",
    "higher_is_better",
    "n-samples",
    "group_subtasks",
)


def merge_results(existing: dict | None, new: dict) -> dict:
    """lm-eval results objects of single-task evaluations merged into one, as lm-eval would
    have returned for all of them together (per-task keys unioned, run-level keys latest)."""
    if not existing:
        return dict(new)
    merged = {**existing, **{k: v for k, v in new.items() if k not in _MERGED_KEYS}}
    for key in _MERGED_KEYS:
        merged[key] = {**existing.get(key, {}), **new.get(key, {})}
    return merged


def task_digest(results: dict, task: str) -> str:
    """sha256 of one task's part of a results object (every per-task key), so a file that
    holds all tasks of a shot count can be checked task by task."""
    part = {key: (results.get(key) or {}).get(task) for key in _MERGED_KEYS}
    text = json.dumps(part, sort_keys=True, ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_results(run: Path, num_fewshot: int) -> dict | None:
    path = shot_dir(run, num_fewshot) / RESULTS
    if not path.is_file():
        return None
    return read_json(path)
