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
