"""``fuse run``'s contamination check: the fusion corpus against the ``evaluate`` section's
tasks (and LogicKor when a judge is configured), before anything is extracted.

The result is ``work_dir/report/contamination.json|md``, reused while the corpus files
(sha256), the tasks (names and versions) and the n-gram settings are the same, and a section
of the comparison page. Contaminated tasks are named one per line; the run stops unless
``evaluate.allow_contamination`` is set.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fusion.config import FuseConfig
from fusion.corpus import section_inputs, section_texts
from fusion.layout import WorkDir
from fusion.pipeline import Reporter
from harness.contamination import run_check
from harness.errors import HarnessError
from reports import contamination as contamination_report
from runrecords.atomic import write_json_atomic, write_text_atomic
from tasks.contamination.check import Settings
from tasks.contamination.documents import LOGICKOR


class ContaminatedCorpus(HarnessError):
    """The fusion corpus holds scored documents and the config does not allow it."""


def _versions(names: list[str]) -> dict[str, str]:
    from tasks import catalog

    infos = catalog.all_tasks()
    return {n: (infos[n].version if n in infos else "1") for n in names}


def check_key(
    config: FuseConfig, names: list[str], settings: Settings, inputs: list[dict[str, str]]
) -> str:
    """What the check depends on: the corpus content (``inputs``: its files' sha256), the
    tasks and their versions."""
    data = {
        "corpus": inputs,
        "section": config.corpus.model_dump(mode="json", exclude={"path"}),
        "tasks": _versions(names),
        **settings.to_json(),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _recorded(layout: WorkDir, key: str) -> dict[str, Any] | None:
    try:
        data = contamination_report.load(layout.contamination_json)
    except Exception:  # noqa: BLE001 - an unreadable record is made again
        return None
    return data if data is not None and data.get("key") == key else None


def check_corpus(
    config: FuseConfig,
    task_names: list[str],
    *,
    judged: bool,
    progress: bool,
    report: Reporter,
) -> dict[str, Any]:
    """The check (made, or reused); raises ``ContaminatedCorpus`` when it must stop."""
    assert config.evaluate is not None
    names = [*task_names, *([LOGICKOR] if judged else [])]
    settings = Settings()
    layout = WorkDir(config.work_dir)
    inputs = section_inputs(config.corpus)  # each corpus file hashed once
    key = check_key(config, names, settings, inputs)
    data = _recorded(layout, key)
    if data is None:
        report.status(f"contamination check: the fusion corpus against {', '.join(names)}")
        data = run_check(
            names,
            section_texts(config.corpus),
            sources=[str(i.get("file") or i.get("hub")) for i in inputs],
            settings=settings,
            max_rate=0.0,
            quiet=not progress,
        )
        data["key"] = key
        layout.report.mkdir(parents=True, exist_ok=True)
        write_json_atomic(layout.contamination_json, data)
    write_text_atomic(layout.contamination_md, contamination_report.markdown(data))
    found = [t for t in data["tasks"] if t["contaminated"]]
    for task in found:
        first = task["findings"][0]
        report.status(
            f"contamination: {task['task']}: {task['contaminated']} of {task['documents']} "
            f"scored documents are in the fusion corpus (first: document {first['index']} at "
            f"{first['corpus'][0]})"
        )
    if not found:
        report.status(f"contamination check: clean ({', '.join(names)})")
    report.output("contamination check", layout.contamination_md)
    if found and not config.evaluate.allow_contamination:
        raise ContaminatedCorpus(
            f"{config.source_file}: the fusion corpus holds scored documents of "
            f"{', '.join(t['task'] for t in found)} (see {layout.contamination_md}); remove "
            "them from the corpus, or set evaluate.allow_contamination: true"
        )
    return data
