"""Running a contamination check: the tasks' scored documents, a corpus streamed through
them with a progress bar, and the result written as JSON and Markdown (atomically).

Used by ``fusebench contamination`` and by ``fuse run`` before extraction
(``harness/fuse_eval/contamination.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from reports import contamination as contamination_report
from runrecords.atomic import write_json_atomic, write_text_atomic
from tasks.contamination.check import Settings, check
from tasks.contamination.documents import load_documents

JSON_NAME = "contamination.json"
MD_NAME = "contamination.md"


def _counted(rows: Iterable[tuple[str, str]], advance: Callable[[int], None]) -> Iterator:
    """The rows, advancing a bar by each row's UTF-8 size (as the corpus files' sizes)."""
    pending = 0
    for row in rows:
        pending += len(row[1].encode("utf-8", "surrogatepass")) + 1
        if pending >= 1 << 20:
            advance(pending)
            pending = 0
        yield row
    advance(pending)


def run_check(
    task_names: list[str],
    rows: Iterable[tuple[str, str]],
    *,
    sources: list[str],
    settings: Settings,
    max_rate: float,
    total_bytes: int | None = None,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The check's JSON (``reports/contamination.py`` renders it)."""
    if say:
        say(f"contamination: indexing the scored documents of {', '.join(task_names)}")
    tasks = load_documents(task_names)
    progress = Progress(
        TextColumn("contamination check"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
    )
    with progress:
        bar = progress.add_task("corpus", total=total_bytes)
        counted = _counted(rows, lambda size: progress.advance(bar, size))
        result = check(tasks, counted, settings, sources=sources)
        progress.update(bar, completed=total_bytes)
    return result.to_json(max_rate)


def write_outputs(data: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """``contamination.json`` and ``contamination.md`` in ``folder`` (atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / JSON_NAME, folder / MD_NAME
    write_json_atomic(json_path, data)
    write_text_atomic(md_path, contamination_report.markdown(data))
    return json_path, md_path
