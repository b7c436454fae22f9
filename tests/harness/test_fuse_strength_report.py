"""The fuse-run report's strength-check part (harness/fuse_eval/report.py): the file and the
sections come from ``align/strength.json``; a work_dir aligned before the check has none."""

from __future__ import annotations

import json
from pathlib import Path

from fusion.layout import WorkDir
from harness.fuse_eval.report import extra_sections

STRENGTH = {
    "format": "fusebench-strength",
    "target": "t <x>",
    "groups": ["(none)"],
    "models": {
        "t <x>": {"exact": True, "note": None, "groups": {"(none)": {"bpb": 2.5}}, "total": {}}
    },
    "best": {"(none)": "t <x>"},
    "criterion": "min_ce",
    "wins": None,
    "wins_note": None,
    "warning": None,
}


def test_strength_check_file_and_sections(tmp_path: Path) -> None:
    layout = WorkDir(tmp_path)
    assert extra_sections(layout) == []  # no check: nothing written, no section
    assert not layout.strength_check.exists()
    layout.align.mkdir(parents=True)
    layout.align_strength.write_text(json.dumps(STRENGTH), encoding="utf-8")
    (section,) = extra_sections(layout)
    written = layout.strength_check.read_text(encoding="utf-8")
    assert section.markdown == written and "| t <x> (target) | **2.5000** |" in written
    assert "t &lt;x&gt; (target)" in section.html and "<x>" not in section.html
