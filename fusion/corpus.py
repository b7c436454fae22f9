"""The pre-split corpus every model is extracted from: ``work_dir/corpus/rows.jsonl``.

Texts are read once (JSONL, plain text with one row per line, TSV with a header, a folder of
them, the shared NSMC reviews, or a Hub dataset) and long texts are split to at most
``max_chars`` characters at paragraph, sentence or word boundaries, which depend on the text
only, never on a tokenizer: every model, fused now or later, sees the identical rows. The
fingerprint (sha256 of rows.jsonl) goes into every store's manifest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusion.errors import FusionError
from runrecords.atomic import write_atomic, write_json_atomic
from runrecords.digest import sha256_file

ROWS = "rows.jsonl"
META = "meta.json"
SHARED = {"nsmc": ("nsmc/ratings_test.txt", "tsv", "document")}
_SENTENCE_END = re.compile(r"[.!?。…]+[\"')\]]*\s")


class CorpusError(FusionError):
    """The corpus cannot be read, is empty, or does not match the work directory's rows."""


@dataclass
class Corpus:
    """The pre-split rows, where each came from, and their fingerprint."""

    rows: list[str]
    origins: list[str]
    fingerprint: str
    directory: Path

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, row: int) -> str:
        return f"corpus row {row} ({self.origins[row]})"


def split_text(text: str, max_chars: int) -> list[str]:
    """Pieces of at most ``max_chars`` characters, cut at the last paragraph break, else
    sentence end, else whitespace inside the window (hard cut only in a run with none)."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > max_chars:
        window = rest[: max_chars + 1]
        cut = window.rfind("\n", max_chars // 4)
        if cut <= 0:
            ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() > max_chars // 4]
            cut = ends[-1] if ends else 0
        if cut <= 0:
            cut = max(window.rfind(" "), window.rfind("\t"))
        if cut <= 0:
            cut = max_chars
        piece, rest = rest[:cut].strip(), rest[cut:].strip()
        if piece:
            pieces.append(piece)
    if rest:
        pieces.append(rest)
    return pieces


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in {".jsonl", ".txt", ".tsv"})
        if not found:
            raise CorpusError(f"{path}: no .jsonl, .txt or .tsv files in the folder")
        return found
    if not path.is_file():
        raise CorpusError(f"{path}: corpus file not found")
    return [path]


def _read_file(path: Path, fmt: str, field: str) -> Iterator[tuple[str, str]]:
    kind = fmt if fmt != "auto" else {".jsonl": "jsonl", ".tsv": "tsv"}.get(path.suffix, "text")
    with path.open(encoding="utf-8", newline="") as handle:
        if kind == "tsv":
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            if field not in (reader.fieldnames or []):
                raise CorpusError(f"{path}: no column {field!r} in the header (corpus.text_field)")
            for line, row in enumerate(reader, start=2):
                yield f"{path.name}:{line}", row.get(field) or ""
            return
        for line, raw in enumerate(handle, start=1):
            if kind == "text":
                yield f"{path.name}:{line}", raw
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                raise CorpusError(f"{path}:{line}: not valid JSON") from None
            if not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise CorpusError(f"{path}:{line}: no string field {field!r} (corpus.text_field)")
            yield f"{path.name}:{line}", record[field]


def _hub_texts(section: Any) -> Iterator[tuple[str, str]]:
    """A Hub dataset's texts (real code path for users; tests run offline with files)."""
    import datasets

    data = datasets.load_dataset(section.hub_dataset, section.hub_config, split=section.hub_split)
    if section.text_field not in data.column_names:
        raise CorpusError(f"{section.hub_dataset}: no column {section.text_field!r}")
    for index, text in enumerate(data[section.text_field]):
        yield f"{section.hub_dataset}[{index}]", text or ""


def _sources(section: Any, shared_root: Path | None) -> tuple[list[Path], str, str]:
    if section.shared:
        if shared_root is None:
            from tasks.datadir import ENV_VAR, data_dir  # fusion may read tasks' data setting

            shared_root = data_dir()
            if shared_root is None:
                raise CorpusError(f"corpus.shared: {section.shared} needs the data directory "
                                  f"({ENV_VAR})")  # fmt: skip
        relative, fmt, field = SHARED[section.shared]
        file = shared_root / relative
        if not file.is_file():
            raise CorpusError(f"{file}: missing from the shared data directory")
        return [file], fmt, field
    return _files(Path(section.path)), section.format, section.text_field


def prepare(section: Any, work_dir: Path, shared_root: Path | None = None) -> Corpus:
    """Write ``work_dir/corpus`` once (a rerun with the same inputs reuses it) and load it."""
    directory = Path(work_dir) / "corpus"
    if section.path or section.shared:
        files, fmt, field = _sources(section, shared_root)
        inputs = [{"file": f.name, "sha256": sha256_file(f)} for f in files]
    elif section.hub_dataset:
        files, fmt, field, inputs = [], "hub", section.text_field, [{"hub": section.hub_dataset}]
    else:
        raise CorpusError("corpus: give `path`, `shared` or `hub_dataset`")
    # What the rows depend on: the splitting settings and the files' content, not where they lie.
    settings = {"section": section.model_dump(mode="json", exclude={"path"}), "inputs": inputs}
    meta_file = directory / META
    if meta_file.is_file() and (directory / ROWS).is_file():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("settings") != settings:
            raise CorpusError(
                f"{directory}: built from other corpus settings or files; the stores in this "
                "work_dir belong to those rows, so use a new work_dir"
            )
        return load(work_dir)
    texts = (_hub_texts(section) if fmt == "hub"
             else (t for f in files for t in _read_file(f, fmt, field)))  # fmt: skip
    rows: list[dict[str, str]] = []
    empty = 0
    for origin, text in texts:
        pieces = split_text(text, section.max_chars)
        empty += not pieces
        rows.extend({"text": p, "origin": origin} for p in pieces)
        if section.max_rows is not None and len(rows) >= section.max_rows:
            rows = rows[: section.max_rows]
            break
    if not rows:
        where = ", ".join(i.get("file") or i.get("hub", "") for i in inputs)
        raise CorpusError(f"{where}: the corpus has no text rows (empty input)")
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    write_atomic(directory / ROWS, lambda tmp: tmp.write_bytes(body))
    write_json_atomic(meta_file, {"fingerprint": hashlib.sha256(body).hexdigest(),
                                  "num_rows": len(rows), "empty_texts_skipped": empty,
                                  "settings": settings})  # fmt: skip
    return load(work_dir)


def load(work_dir: Path) -> Corpus:
    """The rows of ``work_dir/corpus`` (checked against their fingerprint)."""
    directory = Path(work_dir) / "corpus"
    file = directory / ROWS
    if not file.is_file():
        raise CorpusError(f"{directory}: no prepared corpus (run `fusebench fuse extract`)")
    body = file.read_bytes()
    meta = json.loads((directory / META).read_text(encoding="utf-8"))
    fingerprint = hashlib.sha256(body).hexdigest()
    if fingerprint != meta.get("fingerprint"):
        raise CorpusError(f"{file}: sha256 does not match {META} (the rows were edited)")
    records = [json.loads(line) for line in body.decode("utf-8").splitlines()]
    return Corpus([r["text"] for r in records], [r["origin"] for r in records], fingerprint,
                  directory)  # fmt: skip
