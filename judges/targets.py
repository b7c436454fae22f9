"""What ``fusebench judge TARGET`` judges, and where each judged file goes.

- a run directory (``runs/NAME`` holding ``logickor/<strategy>.jsonl``): judged in place,
  atomically (the generated rows gain their judgments), or under ``--output DIR/logickor/``;
- LogicKor files or folders (``<org>/<model>/<strategy>.jsonl``, e.g. LogicKor's published
  ``generated/`` tree): never written over; ``--output DIR`` is required and mirrors the
  layout below the target (a single file keeps its ``<org>/<model>/`` folders).
"""

from __future__ import annotations

from pathlib import Path

from judges.errors import JudgeError
from judges.pairwise import PairJob
from judges.run import Job

LOGICKOR_DIR = "logickor"


def is_run_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and (path / LOGICKOR_DIR).is_dir()
        and any((path / LOGICKOR_DIR).glob("*.jsonl"))
    )


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def resolve(target: Path, output: Path | None) -> list[Job]:
    if not target.exists():
        raise JudgeError(f"{target}: no such file or directory")
    if is_run_dir(target):
        files = sorted((target / LOGICKOR_DIR).glob("*.jsonl"))
        out_dir = (output / LOGICKOR_DIR) if output is not None else target / LOGICKOR_DIR
        return [Job(f, out_dir / f.name, f"{target.name}/{f.stem}") for f in files]
    if output is None:
        raise JudgeError(
            f"{target}: not a run directory; give --output DIR for the judged "
            "files (LogicKor files are never written over)"
        )
    if target.is_file():
        if target.suffix != ".jsonl":
            raise JudgeError(f"{target}: not a LogicKor .jsonl file or run directory")
        relative = Path(target.parent.parent.name, target.parent.name, target.name)
        return [Job(target, output / relative, str(relative.with_suffix("")))]
    files = sorted(f for f in target.rglob("*.jsonl") if _visible(f, target))
    if not files:
        raise JudgeError(
            f"{target}: no .jsonl files (LogicKor <org>/<model>/<strategy>.jsonl) "
            "or run directory found"
        )
    jobs = []
    for f in files:
        relative = f.relative_to(target)
        jobs.append(Job(f, output / relative, str(relative.with_suffix(""))))
    return jobs


# ---------------------------------------------------------------- pairwise

PAIRWISE_DIR = "pairwise"  # <output>/pairwise/<strategy>/<other>.jsonl
PAIRWISE_RECORD = "pairwise.json"


def model_files(path: Path) -> tuple[str, dict[str, Path]]:
    """(label, strategy -> file) of one model for pairwise judging: a run directory (its
    name), a LogicKor model folder or file (``org/model``)."""
    if not path.exists():
        raise JudgeError(f"{path}: no such file or directory")
    if is_run_dir(path):
        return path.name, {f.stem: f for f in sorted((path / LOGICKOR_DIR).glob("*.jsonl"))}
    if path.is_file():
        if path.suffix != ".jsonl":
            raise JudgeError(f"{path}: not a LogicKor .jsonl file or run directory")
        return f"{path.parent.parent.name}/{path.parent.name}", {path.stem: path}
    files = {f.stem: f for f in sorted(path.glob("*.jsonl"))}
    if not files:
        raise JudgeError(
            f"{path}: no .jsonl files; pairwise judging takes a run directory, a LogicKor "
            "model folder (<org>/<model>/) or one <strategy>.jsonl file per model"
        )
    return f"{path.parent.name}/{path.name}", files


def slug(label: str) -> str:
    return label.replace("/", "__")


def resolve_pairwise(base: Path, others: list[Path], output: Path | None) -> list[PairJob]:
    """One ``PairJob`` per other model and strategy both have; a single file on each side is
    paired whatever the strategies are called (the base's name is kept)."""
    if output is None:
        raise JudgeError("pairwise judging needs --output DIR for its judgments")
    base_label, base_files = model_files(base)
    jobs = []
    for other in others:
        other_label, other_files = model_files(other)
        if other_label == base_label:
            other_label = f"{other_label} ({other})"
        if len(base_files) == 1 and len(other_files) == 1:
            pairs = [(next(iter(base_files)), *base_files.values(), *other_files.values())]
        else:
            pairs = [(s, base_files[s], other_files[s]) for s in base_files if s in other_files]
        if not pairs:
            raise JudgeError(
                f"{base} and {other} share no strategy ({', '.join(base_files)} vs "
                f"{', '.join(other_files)})"
            )
        for strategy, b, o in pairs:
            out = output / PAIRWISE_DIR / strategy / f"{slug(other_label)}.jsonl"
            jobs.append(PairJob(b, o, base_label, other_label, strategy, out))
    return jobs
