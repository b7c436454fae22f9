"""Plant a score in a finished evaluation run as if it had been evaluated so: the value in
``<n>-shot/results.json`` and the entry's recorded sha256 in manifest.json together (a rerun
verifies that sha256 and would otherwise redo the task, undoing the plant)."""

from __future__ import annotations

import json
from pathlib import Path

from reports.rundir import task_digest


def plant_metric(run: Path, shots: int, task: str, metric: str, value: float) -> None:
    results_file = run / f"{shots}-shot" / "results.json"
    results = json.loads(results_file.read_text())
    results["results"][task][metric] = value
    results_file.write_text(json.dumps(results))
    manifest_file = run / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    for entry in manifest["completed"]:
        if entry["task"] == task and entry["num_fewshot"] == shots:
            entry["results_sha256"] = task_digest(results, task)
    manifest_file.write_text(json.dumps(manifest, indent=1))
