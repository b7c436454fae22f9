"""A contamination check (``fusebench contamination``, and ``fuse run`` before extraction) as
Markdown, an HTML fragment and console rows, read from its JSON only.

The JSON (``format: fusebench-contamination``) holds the settings, the corpus read, and per
task the scored documents, how many could be checked at the n-gram length, and every
contaminated document with its longest overlap and the corpus rows (``file:line``) it is in.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from reports.jsonio import read_formatted
from reports.render import md_table

FORMAT = "fusebench-contamination"
TITLE = "Contamination check"
SHOWN_PER_TASK = 20  # findings per task on the page (the JSON has all)
# What the defaults miss, measured on KoBEST (bench/contamination_length.py, docs/contamination.md).
MISSES = (
    "A leak is found when 25 letters and digits in a row (spaces and punctuation ignored) or 13 "
    "words are the same. Rewritten text escapes it: of 50 KoBEST test items planted with one "
    "word in ten replaced, 33 were found; with one in four, 1. A document whose whole text is "
    "shorter than that is found only when it is a whole corpus row (10 characters or 5 words "
    "at least); 'checkable' counts the documents long enough for the n-gram test."
)


def load(path: Path) -> dict[str, Any] | None:
    """The check's JSON, or None when the file is not there; another file is one line."""
    return read_formatted(path, FORMAT, "a contamination check")


def over(data: dict[str, Any]) -> list[str]:
    """Tasks whose contaminated share exceeds the check's ``max_rate``."""
    limit = data.get("max_rate", 0.0)
    return [t["task"] for t in data["tasks"] if t["contaminated"] and t["rate"] > limit]


def _ngram(data: dict[str, Any]) -> str:
    names = {"chars": "characters", "words": "words"}
    return ", ".join(f"{n} {names.get(u, u)}" for u, n in data["ngram"].items())


def _pct(rate: float) -> str:
    return f"{rate:.1%}" if rate else "0"


def summary_rows(data: dict[str, Any]) -> list[list[str]]:
    """One row per task: task, split, documents, checkable, contaminated, share, verdict."""
    failing = set(over(data))
    return [
        [
            t["task"],
            t["split"],
            str(t["documents"]),
            str(t["checkable"]),
            str(t["contaminated"]),
            _pct(t["rate"]),
            "over the limit"
            if t["task"] in failing
            else ("found" if t["contaminated"] else "clean"),
        ]
        for t in data["tasks"]
    ]


SUMMARY_HEADER = ["task", "split", "documents", "checkable", "contaminated", "share", "verdict"]
FINDING_HEADER = ["document", "field", "match", "overlap", "coverage", "corpus rows", "found at"]


def _finding_row(f: dict[str, Any]) -> list[str]:
    match = f"{f['n']} {f['unit']}" if f["match"] == "ngram" else f"whole row ({f['unit']})"
    overlap = " ".join(f["overlap"].split())
    if len(overlap) > 120:
        overlap = overlap[:117] + "..."
    return [
        str(f["index"]),
        f["field"],
        match,
        overlap,
        f"{f['coverage']:.0%}",
        str(f["corpus_rows"]),
        ", ".join(f["corpus"]),
    ]


def _corpus_line(data: dict[str, Any]) -> str:
    corpus = data["corpus"]
    sources = ", ".join(corpus["sources"]) or "(rows given)"
    return (
        f"Corpus: {corpus['rows']:,} rows, {corpus['chars']:,} characters, from {sources}. "
        f"N-grams: {_ngram(data)}. Limit: a task fails above {_pct(data.get('max_rate', 0.0))} "
        "of its scored documents contaminated."
    )


def verdict(data: dict[str, Any]) -> str:
    """One sentence: clean, contaminated within the limit, or over it (naming the tasks)."""
    failing = over(data)
    found = sum(t["contaminated"] for t in data["tasks"])
    if failing:
        return f"Contaminated above the limit: {', '.join(failing)}."
    if found:
        return f"{found} contaminated documents, within the limit."
    return "No scored document shares an n-gram with the corpus."


def markdown(data: dict[str, Any]) -> str:
    parts = [
        f"## {TITLE}\n\n{_corpus_line(data)}\n\n**{verdict(data)}**",
        md_table(SUMMARY_HEADER, summary_rows(data)),
    ]
    for task in data["tasks"]:
        if not task["findings"]:
            continue
        shown = task["findings"][:SHOWN_PER_TASK]
        more = len(task["findings"]) - len(shown)
        tail = f"\n\n{more} more in the JSON." if more else ""
        parts.append(
            f"### {task['task']}: {task['contaminated']} contaminated\n\n"
            + md_table(FINDING_HEADER, [_finding_row(f) for f in shown])
            + tail
        )
    parts.append(MISSES)
    return "\n\n".join(parts) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f'<table class="contamination"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def html_section(data: dict[str, Any]) -> str:
    """The check as an HTML fragment: every text (overlaps are data set text) escaped."""
    css = "warning" if over(data) else "note"
    parts = [
        f'<section id="contamination"><h2>{html.escape(TITLE)}</h2>',
        f'<p class="note">{html.escape(_corpus_line(data))}</p>',
        f'<p class="{css}"><strong>{html.escape(verdict(data))}</strong></p>',
        _table(SUMMARY_HEADER, summary_rows(data)),
    ]
    for task in data["tasks"]:
        if task["findings"]:
            parts.append(
                f"<h3>{html.escape(task['task'])}: {task['contaminated']} contaminated</h3>"
            )
            rows = [_finding_row(f) for f in task["findings"][:SHOWN_PER_TASK]]
            parts.append(_table(FINDING_HEADER, rows))
    parts.append(f'<p class="note">{html.escape(MISSES)}</p>')
    return "\n".join(parts) + "\n</section>\n"
