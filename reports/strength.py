"""The strength check (``work_dir/align/strength.json``, written by fusion/strength.py before
training) as Markdown and as a self-contained HTML fragment.

Read from the JSON file only (``reports`` imports nothing of ``fusion``): bits per byte per
model (rows) and corpus group (columns), the best exact number per group marked, approximate
numbers prefixed ``~`` with their reason below (an exact number's note, such as how a model
without a BOS had its first token scored, below them without ``~``), then the rows each
model won per group under the configured criterion and the other one, and the check's
warning when it gave one.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from reports.errors import BadFile
from reports.jsonio import read_formatted
from reports.render import md_table

FORMAT = "fusebench-strength"
_REQUIRED = ("target", "groups", "models", "best", "criterion")
TITLE = "Strength check (before training)"
INTRO = (
    "Bits per UTF-8 byte of the fusion corpus per model and corpus group (lower is better), "
    "from each model's top-k store. Fusion can transfer only what a source predicts better "
    "than the target."
)


def load_strength(path: Path) -> dict[str, Any] | None:
    """The strength check, or None when the file is not there (a run made before the check);
    a file that is not one is a one-line error naming it."""
    data = read_formatted(path, FORMAT, "a strength check")
    if data is None:
        return None
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise BadFile(path, f"strength check without {', '.join(missing)}")
    if not isinstance(data["models"], dict) or not isinstance(data["groups"], list):
        raise BadFile(path, "strength check: models must be an object and groups a list")
    return data


def _columns(data: dict[str, Any]) -> list[tuple[str, bool]]:
    """(column title, is the total): the groups, and the total when there are several."""
    cols = [(str(g), False) for g in data["groups"]]
    return cols + ([("total", True)] if len(data["groups"]) > 1 else [])


def _cells(data: dict[str, Any], name: str) -> list[tuple[str, bool]]:
    """(number as text, best) per column for one model."""
    entry = data["models"][name]
    out = []
    for title, total in _columns(data):
        cell = entry.get("total") if total else entry.get("groups", {}).get(title)
        best = (data.get("best_total") if total else data["best"].get(title)) == name
        value = None if not cell else cell.get("bpb")
        if value is None:
            out.append(("-", False))
        else:
            out.append((f"{'' if entry.get('exact', True) else '~'}{value:.4f}", best))
    return out


def _label(data: dict[str, Any], name: str) -> str:
    return f"{name} (target)" if name == data["target"] else name


def _win_rows(data: dict[str, Any], criterion: str) -> list[list[str]]:
    won = (data.get("wins") or {}).get(criterion) or {}
    rows = []
    for name in data["models"]:
        counts = []
        for group in data["groups"]:
            per = won.get(group) or {}
            counts.append(f"{per.get(name, 0)}/{sum(per.values())}")
        rows.append([_label(data, name), *counts])
    return rows


def _criteria(data: dict[str, Any]) -> list[str]:
    """The configured criterion first, then the others the file counts."""
    found = list((data.get("wins") or {}).keys())
    return [data["criterion"], *(c for c in found if c != data["criterion"])]


def _notes(data: dict[str, Any]) -> list[str]:
    notes = [
        f"{'' if e.get('exact', True) else '~ '}{n}: {e['note']}"
        for n, e in data["models"].items()
        if e.get("note")
    ]
    if data.get("rows_excluded"):
        notes.append(f"{data['rows_excluded']} row(s) excluded from some store: left out for all")
    return notes


def markdown(data: dict[str, Any]) -> str:
    """The section as Markdown: bits per byte (best per group in bold), notes, win counts."""
    header = ["model", *(title for title, _ in _columns(data))]
    rows = [
        [_label(data, n), *(f"**{text}**" if best else text for text, best in _cells(data, n))]
        for n in data["models"]
    ]
    parts = [f"## {TITLE}\n\n{INTRO}\n\n{md_table(header, rows)}"]
    parts += ["\n".join(f"- {note}" for note in _notes(data))] if _notes(data) else []
    if data.get("wins"):
        for criterion in _criteria(data):
            shown = " (the configured criterion)" if criterion == data["criterion"] else ""
            table = md_table(["rows won", *data["groups"]], _win_rows(data, criterion))
            parts.append(f"Rows won per group, {criterion}{shown}:\n\n{table}")
    elif data.get("wins_note"):
        parts.append(f"Rows won per group: unavailable ({data['wins_note']}).")
    if data.get("warning"):
        parts.append(f"**{data['warning']}**")
    return "\n\n".join(parts) + "\n"


def _html_table(header: list[str], rows: list[list[tuple[str, bool]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="best"><strong>{html.escape(text)}</strong></td>'
            if best
            else f"<td>{html.escape(text)}</td>"
            for text, best in row
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="strength"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def html_section(data: dict[str, Any]) -> str:
    """The section as an HTML fragment: every text escaped, no script, style or asset."""
    header = ["model", *(title for title, _ in _columns(data))]
    rows = [[(_label(data, n), False), *_cells(data, n)] for n in data["models"]]
    parts = [
        f'<section id="strength-check"><h2>{html.escape(TITLE)}</h2>',
        f'<p class="note">{html.escape(INTRO)} Best exact number per group in bold.</p>',
        _html_table(header, rows),
    ]
    notes = _notes(data)
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    if data.get("wins"):
        for criterion in _criteria(data):
            shown = " (the configured criterion)" if criterion == data["criterion"] else ""
            parts.append(f"<h3>Rows won per group, {html.escape(criterion + shown)}</h3>")
            win_rows = [[(cell, False) for cell in r] for r in _win_rows(data, criterion)]
            parts.append(_html_table(["rows won", *data["groups"]], win_rows))
    elif data.get("wins_note"):
        parts.append(f"<p>Rows won per group: unavailable ({html.escape(data['wins_note'])}).</p>")
    if data.get("warning"):
        parts.append(f'<p class="warning"><strong>{html.escape(data["warning"])}</strong></p>')
    return "\n".join(parts) + "\n</section>\n"
