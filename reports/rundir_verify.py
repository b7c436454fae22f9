"""Resume checks: what a run's manifest records as finished must be on disk and intact.

A manifest entry is a promise that its files were written; a deleted or truncated
``results.json`` or samples file breaks it without a word. ``broken_entries`` checks each
completed (task, shots) against the files (the recorded sha256 where there is one; in runs
made before hashes were recorded: presence, parse and the row count) and says why each
broken one cannot be trusted, so that ``fusebench eval`` redoes it instead of skipping it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reports.errors import BadFile
from reports.jsonio import iter_jsonl, read_json
from reports.rundir import RESULTS, Completed, Manifest, samples_path, shot_dir, task_digest
from runrecords.digest import sha256_file


@dataclass(frozen=True)
class Broken:
    """A completed entry whose files do not back it, and why (one line, paths run-relative)."""

    entry: Completed
    reason: str


def _results(run: Path, shots: int) -> tuple[dict | None, str | None]:
    """The shot count's results object, or why there is none usable."""
    path = shot_dir(run, shots) / RESULTS
    name = f"{shots}-shot/{RESULTS}"
    if not path.is_file():
        return None, f"{name} is missing"
    try:
        data = read_json(path)
    except BadFile as err:
        return None, f"{name} is unreadable ({err.reason})"
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        return None, f"{name} is not an lm-eval results object"
    return data, None


def _samples_problem(run: Path, entry: Completed) -> str | None:
    path = samples_path(run, entry.num_fewshot, entry.task)
    name = path.relative_to(run).as_posix()
    if not path.is_file():
        return f"{name} is missing"
    if entry.samples_sha256:
        if sha256_file(path) != entry.samples_sha256:
            return f"{name} does not match its recorded sha256"
        return None
    try:
        rows = sum(1 for _ in iter_jsonl(path))
    except BadFile as err:
        return f"{name} is unreadable ({err.reason})"
    if rows != entry.n_samples:
        return f"{name} holds {rows} rows, the manifest records {entry.n_samples}"
    return None


def _entry_problem(run: Path, entry: Completed, results: dict) -> str | None:
    name = f"{entry.num_fewshot}-shot/{RESULTS}"
    if entry.task not in results["results"]:
        return f"{name} does not hold {entry.task}"
    if entry.results_sha256 and task_digest(results, entry.task) != entry.results_sha256:
        return f"{entry.task}'s entry in {name} does not match its recorded sha256"
    return _samples_problem(run, entry)


def broken_entries(run: Path, manifest: Manifest) -> tuple[list[Broken], set[int]]:
    """The completed entries the files do not back, and the shot counts whose results.json
    is missing or unusable (a redo merges into that file, so the caller removes a broken one
    and redoes every task it held)."""
    broken: list[Broken] = []
    unusable: set[int] = set()
    cache: dict[int, tuple[dict | None, str | None]] = {}
    for entry in manifest.completed:
        shots = entry.num_fewshot
        if shots not in cache:
            cache[shots] = _results(run, shots)
        results, problem = cache[shots]
        if results is None:
            unusable.add(shots)
        else:
            problem = _entry_problem(run, entry, results)
        if problem:
            broken.append(Broken(entry, problem))
    return broken, unusable
