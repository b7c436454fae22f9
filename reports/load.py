"""Paths in, one tidy table out: finds run directories, lm-eval output and LogicKor files.

A path may be a fusebench run directory (it holds ``manifest.json``), an lm-eval results file
(``results_<date>.json``, or a shot folder's ``results.json``) with its samples beside it, a
LogicKor judged file (``<org>/<model>/<strategy>.jsonl``), or a folder holding any of these at
any depth. The files of one LogicKor model folder (one per prompt strategy) form one run.

A bad or foreign file stops the load with one line naming it, unless ``skip_bad``: then it is
left out, listed in ``Loaded.skipped``, and the rest loads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reports import groups, lmeval, logickor, rundir
from reports.errors import BadFile, ReportError
from reports.jsonio import read_json
from reports.lmeval import Part
from reports.table import SAMPLE_COLUMNS, SCORE_COLUMNS, Loaded, RunInfo, frame, nan_warnings

_SHOT_DIR = re.compile(r"(\d+)-shot")
_RESULTS = re.compile(r"results(_.+)?\.json")


@dataclass(frozen=True)
class Source:
    """Something that loads as one run."""

    kind: str  # "run", "results", "logickor", or "orphan" (lm-eval samples without results)
    path: Path  # the run directory, the results file, or the LogicKor model folder
    files: tuple[Path, ...] = ()  # LogicKor: the strategy files


class _Bad:
    """Raises on a bad file, or (``--skip-bad``) records it and lets the load go on."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.skipped: list[str] = []

    def __call__(self, err: BadFile) -> None:
        if not self.skip:
            raise ReportError(f"{err} (--skip-bad loads the other files)") from None
        self.skipped.append(str(err))


def discover(path: Path) -> list[Source]:
    """The runs under one path given by the user."""
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory")
    if path.is_file():
        return [_file_source(path)]
    if (path / rundir.MANIFEST).is_file():
        return [Source("run", path)]
    sources: list[Source] = []
    logickor_files: dict[Path, list[Path]] = {}
    for folder, dirs, files in os.walk(path):
        here = Path(folder)
        dirs.sort()
        if (here / rundir.MANIFEST).is_file():
            sources.append(Source("run", here))
            dirs.clear()
            continue
        has_results = any(_RESULTS.fullmatch(name) for name in files)
        if here.name == rundir.SAMPLES and (here.parent / rundir.RESULTS).is_file():
            continue  # a shot folder's samples/<task>.jsonl, read with its results.json
        for name in sorted(files):
            file = here / name
            if _RESULTS.fullmatch(name):
                sources.append(Source("results", file))
            elif name.startswith("samples_") and name.endswith(".jsonl"):
                if not has_results:  # read with its results file, if there is one
                    sources.append(Source("orphan", file))
            elif name.endswith(".jsonl"):
                logickor_files.setdefault(here, []).append(file)
    sources += [
        Source("logickor", folder, tuple(files)) for folder, files in logickor_files.items()
    ]
    if not sources:
        raise ReportError(
            f"{path}: no run directory, lm-eval results or LogicKor judged file found in it"
        )
    return sources


def _file_source(path: Path) -> Source:
    if path.suffix == ".jsonl":
        if path.name.startswith("samples_"):
            raise BadFile(
                path,
                "an lm-eval samples file: give its results_<date>.json or the folder holding both",
            )
        return Source("logickor", path.parent, (path,))
    if path.suffix == ".json":
        return Source("results", path)
    raise BadFile(
        path, "not a run directory, lm-eval results file (.json) or LogicKor judged file (.jsonl)"
    )


def _recorded_label(run: Path) -> str | None:
    """The label a run directory's manifest records (``eval --label``); a broken manifest
    is reported when the run is read."""
    try:
        return rundir.read_manifest(run).label
    except BadFile:
        return None


def _default_label(source: Source) -> str:
    """Run directories by their recorded label, else their name; LogicKor folders as
    org/model; lm-eval output by the folder it sits in (lm-eval's CLI names it after the
    model; a shot folder's run)."""
    if source.kind == "run":
        return _recorded_label(source.path) or source.path.name
    if source.kind == "logickor":
        return f"{source.path.parent.name}/{source.path.name}"
    parent = source.path.parent
    if _SHOT_DIR.fullmatch(parent.name):  # a fusebench shot folder read without its manifest
        return parent.parent.name
    return parent.name.rsplit("__", 1)[-1]  # lm-eval's sanitised "org__model" -> "model"


def _read_run(path: Path, label: str, bad: _Bad) -> Part:
    manifest = rundir.read_manifest(path)
    # A labelled run is shown by its label: a trained model's folder is often just `final`.
    model = manifest.label or lmeval.display_model(manifest.model.name_or_path)
    versions = {t.name: t.version for t in manifest.tasks}
    info = RunInfo(
        label=label,
        path=path,
        source="run directory",
        model=model,
        versions=dict(versions),
        limit=manifest.limit,
        status=manifest.status,
    )
    part = Part(info)
    shot_dirs = sorted(
        (int(m.group(1)), d)
        for d in path.iterdir()
        if d.is_dir() and (m := _SHOT_DIR.fullmatch(d.name))
    )
    for shots, folder in shot_dirs:
        results_file = folder / rundir.RESULTS
        if not results_file.is_file():
            continue  # the run stopped before finishing anything at this shot count
        try:
            results = lmeval.check_results(read_json(results_file), results_file)
        except BadFile as err:
            bad(err)
            continue
        for task, version in (results.get("versions") or {}).items():
            info.versions.setdefault(task, str(version))
        rows = lmeval.score_rows(results, label, model, info.versions, shots)
        part.scores += rows
        part.scores += groups.score_rows(manifest.groups, results, label, model, shots)
        for task in dict.fromkeys(row["task"] for row in rows):
            info.settings.setdefault(task, set()).add(shots)
            samples = rundir.samples_path(path, shots, task)
            if samples.is_file():
                try:
                    ratios = lmeval.ratio_metrics(results, task)
                    part.samples += lmeval.sample_rows(samples, label, model, task, shots, ratios)
                except BadFile as err:
                    bad(err)
    judged = path / "logickor"
    if judged.is_dir():
        _read_logickor(sorted(judged.glob("*.jsonl")), part, bad)
    return part


def _read_logickor(files: Iterable[Path], part: Part, bad: _Bad) -> None:
    for file in files:
        try:
            rows = logickor.read_judged(file)
        except BadFile as err:
            bad(err)
            continue
        strategy = file.stem
        part.scores += logickor.score_rows(rows, part.info.label, part.info.model, strategy)
        part.samples += logickor.sample_rows(rows, part.info.label, part.info.model, strategy)
        part.info.settings.setdefault(logickor.TASK, set()).add(strategy)


def _read(source: Source, label: str, bad: _Bad) -> Part | None:
    if source.kind == "run":
        return _read_run(source.path, label, bad)
    if source.kind == "results":
        return lmeval.load_results_file(source.path, label, bad)
    if source.kind == "orphan":
        raise BadFile(source.path, "an lm-eval samples file without its results_<date>.json")
    part = Part(RunInfo(label=label, path=source.path, source="logickor files", model=label))
    _read_logickor(source.files, part, bad)
    return part if part.scores else None


def _unique(label: str, taken: set[str]) -> str:
    candidate, number = label, 2
    while candidate in taken:
        candidate, number = f"{label} ({number})", number + 1
    taken.add(candidate)
    return candidate


def load(paths: Iterable[Path | str], skip_bad: bool = False) -> Loaded:
    """Every run under ``paths``, in the order given (each run once)."""
    paths = [Path(p) for p in paths]
    bad = _Bad(skip_bad)
    sources: list[Source] = []
    seen: set[tuple[Path, tuple[Path, ...]]] = set()
    for raw in paths:
        try:
            found = discover(raw)
        except BadFile as err:
            bad(err)
            continue
        for source in found:
            key = (source.path.resolve(), tuple(f.resolve() for f in source.files))
            if key not in seen:
                seen.add(key)
                sources.append(source)
    parts: list[Part] = []
    taken: set[str] = set()
    for source in sources:
        try:
            part = _read(source, _unique(_default_label(source), taken), bad)
        except BadFile as err:
            bad(err)
            continue
        if part is not None and part.scores:
            parts.append(part)
    if not parts:
        skipped = f" ({len(bad.skipped)} bad file(s) skipped)" if bad.skipped else ""
        raise ReportError(f"nothing to report in {', '.join(map(str, paths))}{skipped}")
    scores = frame([r for p in parts for r in p.scores], SCORE_COLUMNS)
    return Loaded(
        scores=scores,
        samples=frame([r for p in parts for r in p.samples], SAMPLE_COLUMNS),
        runs=[p.info for p in parts],
        skipped=bad.skipped,
        warnings=nan_warnings(scores),
    )


def load_runs(paths: Iterable[Path | str], skip_bad: bool = False) -> Loaded:
    """Exactly one run per path, in the order given (compare's BASE FUSED ...)."""
    paths = [Path(p) for p in paths]
    seen: dict[Path, Path] = {}
    for path in paths:
        if path.resolve() in seen:
            raise ReportError(f"{path}: given twice (as {seen[path.resolve()]} too)")
        seen[path.resolve()] = path
    each = [load([path], skip_bad) for path in paths]
    taken: set[str] = set()
    for path, loaded in zip(paths, each, strict=True):
        if len(loaded.runs) != 1:
            names = ", ".join(r.label for r in loaded.runs[:4])
            raise ReportError(
                f"{path}: holds {len(loaded.runs)} runs ({names}...); give one "
                "run directory, results file or LogicKor model folder per argument"
            )
        info = loaded.runs[0]
        label = _unique(info.label, taken)
        if label != info.label:
            loaded.scores["run"] = label
            loaded.samples["run"] = label
            info.label = label
    return Loaded(
        scores=pd.concat([x.scores for x in each], ignore_index=True),
        samples=pd.concat([x.samples for x in each], ignore_index=True),
        runs=[x.runs[0] for x in each],
        skipped=[s for x in each for s in x.skipped],
        warnings=[w for x in each for w in nan_warnings(x.scores)],
    )
