"""The strength check's report section (reports/strength.py): Markdown, an escaped
self-contained HTML fragment, the loader's one-line errors, and the page that carries it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from reports import html, leaderboard
from reports.errors import BadFile
from reports.load import load
from reports.strength import html_section, load_strength, markdown

GROUP = "요리 <b>&amp; | 기타"  # markup, an entity and a table pipe in a user's group name
WARNING = (
    "warning: no source has lower bits per byte than the target tiny-llama on any corpus "
    "group; fusion can transfer only what a source predicts better than the target"
)


def _cell(bpb: float, rows: int) -> dict[str, Any]:
    return {"rows": rows, "bytes": 100 * rows, "tokens": 30 * rows, "nll_nats": 1.0, "bpb": bpb}


# What fusion/strength.py writes (the shape; the numbers are made up for the rendering).
STRENGTH: dict[str, Any] = {
    "format": "fusebench-strength",
    "version": 1,
    "definition": "bits per UTF-8 byte",
    "target": "tiny-llama",
    "groups": ["소설", GROUP],
    "rows": 5,
    "rows_excluded": 0,
    "models": {
        "tiny-llama": {
            "role": "target",
            "exact": True,
            "note": None,
            "groups": {"소설": _cell(3.1, 2), GROUP: _cell(2.9, 3)},
            "total": _cell(3.0, 5),
        },
        "tiny-gpt2": {
            "role": "source",
            "exact": False,
            "note": "approximate: the tokenizer prepends no BOS",
            "groups": {"소설": _cell(3.05, 2), GROUP: _cell(3.2, 3)},
            "total": _cell(3.1, 5),
        },
        "tiny-mistral": {
            "role": "source",
            "exact": True,
            "note": None,
            "groups": {"소설": _cell(3.3, 2), GROUP: _cell(2.7, 3)},
            "total": _cell(2.95, 5),
        },
    },
    "best": {"소설": "tiny-llama", GROUP: "tiny-mistral"},
    "best_total": "tiny-mistral",
    "criterion": "min_ce_aligned",
    "wins": {
        "min_ce": {
            "소설": {"tiny-llama": 1, "tiny-gpt2": 1, "tiny-mistral": 0},
            GROUP: {"tiny-llama": 0, "tiny-gpt2": 1, "tiny-mistral": 2},
        },
        "min_ce_aligned": {
            "소설": {"tiny-llama": 2, "tiny-gpt2": 0, "tiny-mistral": 0},
            GROUP: {"tiny-llama": 1, "tiny-gpt2": 0, "tiny-mistral": 2},
        },
    },
    "wins_note": None,
    "margin": {"source": "tiny-mistral", "group": GROUP, "bpb_diff": -0.2},
    "warning": None,
}


def test_markdown_marks_the_best_per_group_and_counts_wins() -> None:
    text = markdown(STRENGTH)
    assert text.startswith("## Strength check (before training)")
    escaped = GROUP.replace("|", "\\|")
    assert f"| model | 소설 | {escaped} | total |" in text
    assert "| tiny-llama (target) | **3.1000** | 2.9000 | 3.0000 |" in text
    assert "| tiny-gpt2 | ~3.0500 | ~3.2000 | ~3.1000 |" in text  # approximate: never best
    assert "| tiny-mistral | 3.3000 | **2.7000** | **2.9500** |" in text
    assert "- ~ tiny-gpt2: approximate: the tokenizer prepends no BOS" in text
    configured = text.index("Rows won per group, min_ce_aligned (the configured criterion)")
    assert configured < text.index("Rows won per group, min_ce:")
    assert "| tiny-mistral | 0/2 | 2/3 |" in text  # min_ce_aligned comes first
    assert "| tiny-gpt2 | 1/2 | 1/3 |" in text  # and min_ce below it
    assert "warning" not in text
    warned = copy.deepcopy(STRENGTH) | {"warning": WARNING, "wins": None, "wins_note": "old"}
    text = markdown(warned)
    assert f"**{WARNING}**" in text and "Rows won per group: unavailable (old)." in text


def test_an_exact_number_with_a_note_has_no_approximate_mark() -> None:
    """A model without a BOS scored completely (the store's start sidecar): compared, best
    where it is lowest, its note below the table without ``~``."""
    data = copy.deepcopy(STRENGTH)
    gpt2 = data["models"]["tiny-gpt2"]
    gpt2.update(exact=True, first_token="start", note="complete code length, not lm-eval's")
    data["best"]["소설"] = "tiny-gpt2"
    text = markdown(data)
    assert "| tiny-gpt2 | **3.0500** | 3.2000 | 3.1000 |" in text
    assert "- tiny-gpt2: complete code length, not lm-eval's" in text and "~" not in text


def test_html_fragment_is_escaped_and_self_contained() -> None:
    fragment = html_section(copy.deepcopy(STRENGTH) | {"warning": WARNING + " <i>x</i>"})
    assert "<b>" not in fragment and "&amp;amp;" in fragment and "<i>" not in fragment
    assert "요리 &lt;b&gt;&amp;amp; | 기타" in fragment
    assert fragment.startswith('<section id="strength-check">')
    assert fragment.rstrip().endswith("</section>")
    assert not re.search(r"<(script|style|link|img)\b|(src|href)=", fragment)
    assert '<td class="best"><strong>2.7000</strong></td>' in fragment
    assert "<td>~3.0500</td>" in fragment and 'class="warning"' in fragment


def test_load_strength(tmp_path: Path) -> None:
    assert load_strength(tmp_path / "strength.json") is None  # aligned before the check
    good = tmp_path / "good.json"
    good.write_text(json.dumps(STRENGTH, ensure_ascii=False), encoding="utf-8")
    assert load_strength(good) == STRENGTH
    for body, why in [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not a strength check"),
        ('{"format": "fusebench-strength", "target": "x"}', "without groups, models"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(body, encoding="utf-8")
        with pytest.raises(BadFile) as err:
            load_strength(bad)
        assert str(err.value).startswith(f"{bad}: ") and why in str(err.value)
        assert "\n" not in str(err.value)


def test_the_page_carries_the_section(logickor_dir: Path) -> None:
    loaded = load([logickor_dir / "openai/gpt-4-1106-preview"])
    page = html.page(
        loaded,
        leaderboard.build(loaded.scores),
        "round",
        sections=[html_section(STRENGTH)],
    )
    assert page.count('<section id="strength-check">') == 1
    assert "요리 &lt;b&gt;&amp;amp; | 기타" in page and GROUP not in page
