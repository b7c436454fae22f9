"""lm-eval results objects and per-sample records into tidy rows.

Both places lm-eval output lives are read the same way: fusebench run directories
(``<n>-shot/results.json`` + ``<n>-shot/samples/<task>.jsonl``) and lm-eval's own CLI output
(``results_<date>.json`` + ``samples_<task>_<date>.jsonl`` side by side).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.errors import BadFile
from reports.jsonio import iter_jsonl, read_json
from reports.stats import RATIO_STATISTICS
from reports.table import RunInfo

# Keys of a per-task results entry that are not metrics.
_NOT_METRICS = {"name", "alias", "sample_len"}
_SAMPLE_METRICS = ("acc", "acc_norm", "f1", "mcc", "exact_match")


@dataclass
class Part:
    """What one source contributes: its run description and its rows."""

    info: RunInfo
    scores: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_nan(value: Any) -> bool:
    """A metric lm-eval recorded as NaN (a task whose documents all failed to score): kept
    and shown as NaN, not dropped, which would read as "not evaluated"."""
    return isinstance(value, float) and math.isnan(value)


def display_model(name: str) -> str:
    """Hub ids stay as they are; a local model is known by its folder's name."""
    path = Path(name)
    if path.is_absolute() or name.startswith(".") or path.exists():
        return path.name or name
    return name


def check_results(results: Any, path: Path) -> dict:
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise BadFile(path, "not an lm-eval results file (no 'results' object)")
    for task, entry in results["results"].items():
        if not isinstance(entry, dict):
            raise BadFile(path, f"results[{task!r}] is not an object")
    return results


def _groups(results: dict) -> set[str]:
    """Group rows (kobest, ko_fusellm) aggregate their members; the members are reported."""
    return {g for g, members in (results.get("group_subtasks") or {}).items() if members}


@functools.cache
def _registered(metric: str) -> tuple[str | None, bool | None]:
    """lm-eval's defaults for a metric its task config does not describe (its wikitext task
    lists bare metric names): (aggregation name, higher is better), None where unknown."""
    try:
        import lm_eval.api.metrics  # noqa: F401  (fills the registries)
        from lm_eval.api import registry

        function = registry.metric_agg_registry.get(metric, None)
        higher = registry.higher_is_better_registry.get(metric, None)
    except (ImportError, AttributeError, KeyError, TypeError):
        return None, None
    return getattr(function, "__name__", None), higher if isinstance(higher, bool) else None


def _configured(results: dict, task: str, metric: str) -> dict:
    config = (results.get("configs") or {}).get(task) or {}
    for entry in config.get("metric_list") or []:
        if isinstance(entry, dict) and entry.get("metric") == metric:
            return entry
    return {}


def configured_primary(results: dict, task: str) -> str | None:
    """The metric the task's config lists first (its primary, as fusebench reads it)."""
    config = (results.get("configs") or {}).get(task) or {}
    for entry in config.get("metric_list") or []:
        if isinstance(entry, dict) and isinstance(entry.get("metric"), str):
            return entry["metric"]
        return None
    return None


def primary_filter(results: dict, task: str) -> str:
    """The filter whose scores are the task's primary: the first of its config's
    ``filter_list`` (a generation task's ``strict-match`` before ``flexible-extract``, as its
    author lists them and lm-eval prints them), else ``none``."""
    config = (results.get("configs") or {}).get(task) or {}
    filters = config.get("filter_list")
    if isinstance(filters, list) and filters and isinstance(filters[0], dict):
        name = filters[0].get("name")
        if isinstance(name, str) and name:
            return name
    return "none"


def aggregation(results: dict, task: str, metric: str) -> str | None:
    """How lm-eval aggregated ``metric`` over ``task``'s documents: the name its config gives,
    else lm-eval's default for the metric; None for a function of the task's own (the config
    then holds its source code), whose statistic only the task knows."""
    named = _configured(results, task, metric).get("aggregation")
    if named is None:
        return _registered(metric)[0]
    return named if isinstance(named, str) and named.isidentifier() else None


def higher_is_better(results: dict, task: str, metric: str) -> bool | None:
    """The direction lm-eval's results record for the metric (``higher_is_better``), else
    its config's, else lm-eval's default for the metric; None where nothing says."""
    recorded = ((results.get("higher_is_better") or {}).get(task) or {}).get(metric)
    if isinstance(recorded, bool):
        return recorded
    configured = _configured(results, task, metric).get("higher_is_better")
    if isinstance(configured, bool):
        return configured
    return _registered(metric)[1]


def ratio_metrics(results: dict, task: str) -> set[str]:
    """The task's metrics whose per-document records are (log-likelihood, count): those
    aggregated as a ratio of sums over documents (lm-eval's wikitext metrics)."""
    config = (results.get("configs") or {}).get(task) or {}
    names = {e.get("metric") for e in config.get("metric_list") or [] if isinstance(e, dict)}
    entry = (results.get("results") or {}).get(task) or {}
    names |= {key.split(",", 1)[0] for key in entry if "," in key and key not in _NOT_METRICS}
    names = {m for m in names if isinstance(m, str) and not m.endswith("_stderr")}
    return {m for m in names if aggregation(results, task, m) in RATIO_STATISTICS}


def task_shots(results: dict, task: str) -> int:
    shots = (results.get("n-shot") or {}).get(task)
    if shots is None:
        shots = ((results.get("configs") or {}).get(task) or {}).get("num_fewshot")
    return int(shots or 0)


def score_rows(
    results: dict, run: str, model: str, versions: dict[str, str], shots: int | None = None
) -> list[dict[str, Any]]:
    """One row per (task, metric) of a results object; ``metric,filter`` keys as lm-eval
    writes them (the default ``none`` filter is dropped from the name). ``shots`` overrides
    the recorded shot count (a fusebench shot folder's name is authoritative)."""
    rows = []
    n_samples = results.get("n-samples") or {}
    for task, entry in results["results"].items():
        if task in _groups(results):
            continue
        n = (n_samples.get(task) or {}).get("effective", entry.get("sample_len"))
        primary = (configured_primary(results, task), primary_filter(results, task))
        for key, value in entry.items():
            if key in _NOT_METRICS or "," not in key or not (is_number(value) or is_nan(value)):
                continue
            metric, filt = key.split(",", 1)
            if metric.endswith("_stderr"):
                continue
            stderr = entry.get(f"{metric}_stderr,{filt}")
            rows.append(
                {
                    "run": run,
                    "model": model,
                    "kind": "lm-eval",
                    "task": task,
                    "metric": metric if filt == "none" else key,
                    "num_fewshot": task_shots(results, task) if shots is None else shots,
                    "strategy": None,
                    "value": float(value),
                    "stderr": float(stderr) if is_number(stderr) else math.nan,
                    "n": int(n) if is_number(n) else None,
                    "version": versions.get(task),
                    "exact": None,
                    "higher_is_better": higher_is_better(results, task, metric),
                    "aggregation": aggregation(results, task, metric),
                    "primary": (metric, filt) == primary,
                }
            )
    return rows


def sample_rows(
    path: Path,
    run: str,
    model: str,
    task: str,
    shots: int,
    ratios: frozenset[str] | set[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Per-document rows of an lm-eval samples file: 0/1 metrics as values, pair metrics
    (lm-eval's f1 stores [gold, prediction]) as gold and pred, and the ``ratios`` metrics
    (bits_per_byte stores [log-likelihood, bytes]) as value and weight."""
    rows = []
    for number, record in iter_jsonl(path):
        if not isinstance(record, dict) or "doc_id" not in record:
            raise BadFile(path, f"line {number}: not an lm-eval sample record (no doc_id)")
        filt = record.get("filter", "none")
        metrics = record.get("metrics") or [m for m in _SAMPLE_METRICS if m in record]
        for metric in metrics:
            value = record.get(metric)
            name = metric if filt == "none" else f"{metric},{filt}"
            base = {
                "run": run,
                "model": model,
                "kind": "lm-eval",
                "task": task,
                "num_fewshot": shots,
                "strategy": None,
                "doc_id": record["doc_id"],
                "doc_hash": record.get("doc_hash"),
                "category": None,
                "metric": name,
                "record": record,
            }
            pair = isinstance(value, (list, tuple)) and len(value) == 2
            none = {"gold": None, "pred": None, "weight": None}
            if is_number(value):
                rows.append({**base, **none, "value": float(value)})
            elif pair and metric in ratios and is_number(value[0]) and is_number(value[1]):
                rows.append({**base, **none, "value": float(value[0]), "weight": float(value[1])})
            elif pair:
                rows.append({**base, **none, "value": math.nan, "gold": value[0], "pred": value[1]})
    return rows


def _model_of(results: dict) -> str:
    config = results.get("config") or {}
    args = config.get("model_args")
    if isinstance(args, str):
        match = re.search(r"(?:^|,)\s*pretrained=([^,]+)", args)
        if match:
            return match.group(1)
    elif isinstance(args, dict) and args.get("pretrained"):
        return str(args["pretrained"])
    name = results.get("model_name") or config.get("model")
    return str(name) if name else "unknown"


def _samples_file(results_path: Path, task: str) -> Path | None:
    """lm-eval's CLI writes samples_<task>_<date>.jsonl beside results_<date>.json;
    a fusebench shot folder holds samples/<task>.jsonl beside results.json."""
    stem = results_path.stem
    if stem.startswith("results_"):
        candidate = results_path.with_name(f"samples_{task}_{stem[len('results_') :]}.jsonl")
    else:
        candidate = results_path.parent / "samples" / f"{task}.jsonl"
    return candidate if candidate.is_file() else None


def load_results_file(path: Path, label: str, bad: Callable[[BadFile], None]) -> Part:
    """A plain lm-eval results file (its CLI's results_*.json), with its samples if present.

    A bad results file raises; a bad samples file goes to ``bad`` (which raises, or records
    it and lets the scores load without that task's samples)."""
    results = check_results(read_json(path), path)
    model = display_model(_model_of(results))
    versions = {t: str(v) for t, v in (results.get("versions") or {}).items()}
    limit = (results.get("config") or {}).get("limit")
    info = RunInfo(
        label=label,
        path=path,
        source="lm-eval output",
        model=model,
        versions=versions,
        limit=limit if is_number(limit) else None,
    )
    part = Part(info, score_rows(results, label, model, versions))
    for task in dict.fromkeys(row["task"] for row in part.scores):
        shots = task_shots(results, task)
        info.settings.setdefault(task, set()).add(shots)
        samples = _samples_file(path, task)
        if samples is not None:
            try:
                ratios = ratio_metrics(results, task)
                part.samples += sample_rows(samples, label, model, task, shots, ratios)
            except BadFile as err:
                bad(err)
    return part
