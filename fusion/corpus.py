"""The pre-split corpus every model is extracted from: ``work_dir/corpus/rows.jsonl``.

Texts are read once (JSONL, plain text with one row per line, TSV with a header, a folder of
them, the shared NSMC reviews, or a Hub dataset) and long texts are split to at most
``max_chars`` characters at paragraph, sentence or word boundaries, which depend on the text
only, never on a tokenizer: every model, fused now or later, sees the identical rows. The
fingerprint (sha256 of rows.jsonl) goes into every store's manifest.

A conversation corpus (JSONL rows with ``messages``, or the shared KoBEST BoolQ train split as
conversations) is rendered once with the target's chat template (fusion/conversation.py): each
row's text is the rendering and its ``spans`` are the assistant responses' character ranges,
the only text trained on. Conversations are never split at ``max_chars`` (a cut would break
the template); one longer than a model's ``extract.max_length`` is an error naming it.

A JSONL row (text or conversation) may carry a ``group`` (a non-empty string, e.g. the
domain it came from); every piece of a split row keeps it, so the strength check after
extraction (fusion/strength.py) can report per group. Rows without one are in the group
``NO_GROUP``. A row's group is written to rows.jsonl only when it has one, so a corpus without
groups keeps its fingerprint (and its stores). Other formats (plain text, TSV, Hub) carry none.
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

from fusion.conversation import Renderer, Span, check_messages
from fusion.errors import FusionError
from fusion.layout import WorkDir
from runrecords.atomic import dumps, write_atomic, write_json_atomic
from runrecords.digest import sha256_file
from runrecords.jsonl import json_lines

ROWS = "rows.jsonl"
META = "meta.json"
SHARED = {
    "nsmc": ("nsmc/ratings_test.txt", "tsv", "document"),
    "kobest_boolq_chat": ("kobest_v1/boolq/train.tsv", "boolq-chat", ""),
}
# The BoolQ train split as conversations: passage and question from the user, the answer from
# the assistant (the train split only: dev and test are evaluation data).
BOOLQ_SYSTEM = "주어진 글을 읽고 질문에 예 또는 아니요로 답하세요."
BOOLQ_ANSWERS = {"TRUE": "예, 맞습니다.", "FALSE": "아니요, 그렇지 않습니다."}
NO_GROUP = "(none)"  # the group of rows that name none
GROUP_FIELD = "group"
_SENTENCE_END = re.compile(r"[.!?。…]+[\"')\]]*\s")


class CorpusError(FusionError):
    """The corpus cannot be read, is empty, or does not match the work directory's rows."""


@dataclass
class Corpus:
    """The pre-split rows, where each came from, and their fingerprint; for a conversation
    corpus also each row's response spans (character ranges of the rendered text)."""

    rows: list[str]
    origins: list[str]
    fingerprint: str
    directory: Path
    spans: list[list[Span]] | None = None
    groups: list[str | None] | None = None  # None: no row names a group

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def conversation(self) -> bool:
        return self.spans is not None

    def where(self, row: int) -> str:
        return f"corpus row {row} ({self.origins[row]})"

    def group(self, row: int) -> str:
        """The row's group (``NO_GROUP`` when it names none)."""
        named = self.groups[row] if self.groups is not None else None
        return named if named is not None else NO_GROUP


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


def _kind(path: Path, fmt: str) -> str:
    """A file's format: ``fmt``, else by suffix; a .jsonl whose first row has ``messages`` is
    a conversation file."""
    if fmt != "auto":
        return fmt
    if path.suffix == ".tsv":
        return "tsv"
    if path.suffix != ".jsonl":
        return "text"
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    record = json.loads(raw)
                except ValueError:
                    return "jsonl"  # the reader names the line
                return "messages" if isinstance(record, dict) and "messages" in record else "jsonl"
    return "jsonl"


def _boolq_messages(path: Path, line: int, row: dict[str, str]) -> list[dict[str, str]]:
    passage, question = (row.get("Text") or "").strip(), (row.get("Question") or "").strip()
    answer = BOOLQ_ANSWERS.get((row.get("Answer") or "").strip().upper())
    if not passage or not question or answer is None:
        raise CorpusError(f"{path}:{line}: expected Text, Question and Answer (TRUE or FALSE)")
    return [
        {"role": "system", "content": BOOLQ_SYSTEM},
        {"role": "user", "content": f"{passage}\n질문: {question}"},
        {"role": "assistant", "content": answer},
    ]


def _group(path: Path, line: int, record: dict[str, Any]) -> str | None:
    """A JSONL row's optional group: absent, or a non-empty string."""
    value = record.get(GROUP_FIELD)
    if value is None and GROUP_FIELD not in record:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CorpusError(
            f"{path}:{line}: field {GROUP_FIELD!r} must be a non-empty string, got {value!r}"
        )
    return value


def _read_file(path: Path, kind: str, field: str) -> Iterator[tuple[int, Any, str | None]]:
    """(line, text, group), or (line, messages, group) for the conversation kinds."""
    with path.open(encoding="utf-8", newline="") as handle:
        if kind in ("tsv", "boolq-chat"):
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            if kind == "tsv" and field not in (reader.fieldnames or []):
                raise CorpusError(f"{path}: no column {field!r} in the header (corpus.text_field)")
            for line, row in enumerate(reader, start=2):
                yield (
                    line,
                    (
                        _boolq_messages(path, line, row)
                        if kind == "boolq-chat"
                        else row.get(field) or ""
                    ),
                    None,
                )
            return
        for line, raw in enumerate(handle, start=1):
            if kind == "text":
                yield line, raw, None
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                raise CorpusError(f"{path}:{line}: not valid JSON") from None
            if kind == "messages":
                if not isinstance(record, dict) or "messages" not in record:
                    raise CorpusError(
                        f"{path}:{line}: no `messages` (a conversation corpus has "
                        "them on every row)"
                    )
                yield line, record["messages"], _group(path, line, record)
                continue
            if not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise CorpusError(f"{path}:{line}: no string field {field!r} (corpus.text_field)")
            yield line, record[field], _group(path, line, record)


# origin, text, response spans (conversations), group
Row = tuple[str, str, list[Span] | None, str | None]


def _rendered(where: str, messages: Any, renderer: Renderer) -> tuple[str, list[Span]]:
    try:
        return renderer.render(check_messages(messages))
    except ValueError as err:
        raise CorpusError(f"{where}: {err}") from None


def _file_rows(path: Path, kind: str, field: str, renderer: Renderer | None) -> Iterator[Row]:
    for line, value, group in _read_file(path, kind, field):
        if renderer is None:
            yield f"{path.name}:{line}", value, None, group
        else:
            yield f"{path.name}:{line}", *_rendered(f"{path}:{line}", value, renderer), group


def _hub_rows(section: Any, renderer: Renderer | None) -> Iterator[Row]:
    """A Hub dataset's texts or conversations (real code path for users; tests run offline
    with files)."""
    import datasets

    data = datasets.load_dataset(section.hub_dataset, section.hub_config, split=section.hub_split)
    column = "messages" if renderer is not None else section.text_field
    if column not in data.column_names:
        raise CorpusError(f"{section.hub_dataset}: no column {column!r}")
    for index, value in enumerate(data[column]):
        where = f"{section.hub_dataset}[{index}]"
        if renderer is None:
            yield where, value or "", None, None
        else:
            yield where, *_rendered(where, value, renderer), None


def _sources(section: Any, shared_root: Path | None) -> tuple[list[Path], str, str]:
    if section.shared:
        if shared_root is None:
            from tasks.datadir import ENV_VAR, data_dir  # fusion may read tasks' data setting

            shared_root = data_dir()
            if shared_root is None:
                raise CorpusError(
                    f"corpus.shared: {section.shared} needs the data directory ({ENV_VAR})"
                )
        relative, fmt, field = SHARED[section.shared]
        file = shared_root / relative
        if not file.is_file():
            raise CorpusError(f"{file}: missing from the shared data directory")
        return [file], fmt, field
    return _files(Path(section.path)), section.format, section.text_field


CONVERSATION_KINDS = ("messages", "boolq-chat")


def _plain(value: Any) -> str:
    """A row's text as written: a text row itself, a conversation's contents one per line."""
    if isinstance(value, str):
        return value
    return "\n".join(str(m.get("content") or "") for m in value if isinstance(m, dict))


def file_texts(path: Path, fmt: str = "auto", field: str = "text") -> Iterator[tuple[str, str]]:
    """Every row of the corpus files at ``path`` (a file or a folder of them) as
    ``("file:line", text)``, before any splitting or rendering: what a contamination check
    reads, so that a finding names the line the user wrote."""
    for file in _files(path):
        yield from _texts_of(file, fmt, field)


def _texts_of(file: Path, fmt: str, field: str) -> Iterator[tuple[str, str]]:
    try:
        for line, value, _ in _read_file(file, _kind(file, fmt), field):
            yield f"{file}:{line}", _plain(value)
    except UnicodeDecodeError as err:
        raise CorpusError(f"{file}: not UTF-8 text (byte {err.start})") from None


def section_texts(section: Any, shared_root: Path | None = None) -> Iterator[tuple[str, str]]:
    """``file_texts`` of a config's corpus section (a path, a shared corpus or a Hub data
    set, whose rows are named ``dataset[index]``)."""
    if section.path or section.shared:
        files, fmt, field = _sources(section, shared_root)
        for file in files:
            yield from _texts_of(file, fmt, field)
        return
    if section.hub_dataset:
        import datasets

        data = datasets.load_dataset(
            section.hub_dataset, section.hub_config, split=section.hub_split
        )
        column = "messages" if section.format == "messages" else section.text_field
        if column not in data.column_names:
            raise CorpusError(f"{section.hub_dataset}: no column {column!r}")
        for index, value in enumerate(data[column]):
            yield f"{section.hub_dataset}[{index}]", _plain(value or "")
        return
    raise CorpusError("corpus: give `path`, `shared` or `hub_dataset`")


def section_inputs(section: Any, shared_root: Path | None = None) -> list[dict[str, str]]:
    """What the corpus section's rows depend on: each file's sha256 (a Hub data set: its id
    and split), for caching a check of them."""
    if section.path or section.shared:
        files, _, _ = _sources(section, shared_root)
        return [{"file": str(f), "sha256": sha256_file(f)} for f in files]
    return [{"hub": f"{section.hub_dataset}/{section.hub_config}/{section.hub_split}"}]


def _renderer(chat_model: Any, where: str) -> Renderer:
    """The target's chat template (``chat_model``: the target's config entry)."""
    if chat_model is None:
        raise CorpusError(
            f"{where}: a conversation corpus is rendered with the target's chat "
            "template, and this command has no target model"
        )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        chat_model.path,
        revision=getattr(chat_model, "revision", None),
        trust_remote_code=getattr(chat_model, "trust_remote_code", False),
    )
    try:
        return Renderer.for_tokenizer(tokenizer, chat_model.path)
    except ValueError as err:
        raise CorpusError(f"{where}: {err}") from None


def prepare(
    section: Any, work_dir: Path, shared_root: Path | None = None, chat_model: Any = None
) -> Corpus:
    """Write ``work_dir/corpus`` once (a rerun with the same inputs reuses it) and load it.

    ``chat_model`` (the target's config entry: path, revision, trust_remote_code) renders a
    conversation corpus with its chat template; text corpora do not use it.
    """
    directory = WorkDir(work_dir).corpus
    if section.path or section.shared:
        files, fmt, field = _sources(section, shared_root)
        kinds = [_kind(f, fmt) for f in files]
        conversation = kinds[0] in CONVERSATION_KINDS
        for file, kind in zip(files, kinds, strict=True):
            if (kind in CONVERSATION_KINDS) != conversation:
                raise CorpusError(
                    f"{file}: {'text' if conversation else 'conversation'} rows "
                    f"among {'conversation' if conversation else 'text'} files; a "
                    "corpus is one or the other"
                )
        inputs = [{"file": f.name, "sha256": sha256_file(f)} for f in files]
        where = str(files[0])
    elif section.hub_dataset:
        files, kinds, field = [], [], section.text_field
        inputs = [{"hub": section.hub_dataset}]
        conversation, where = section.format == "messages", section.hub_dataset
    else:
        raise CorpusError("corpus: give `path`, `shared` or `hub_dataset`")
    # What the rows depend on: the splitting settings and the files' content, not where they lie
    # (and for conversations the template that renders them).
    settings = {"section": section.model_dump(mode="json", exclude={"path"}), "inputs": inputs}
    renderer = _renderer(chat_model, where) if conversation else None
    if renderer is not None:
        settings["chat_template"] = renderer.key()
    meta_file = directory / META
    if meta_file.is_file() and (directory / ROWS).is_file():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("settings") != settings:
            raise CorpusError(
                f"{directory}: built from other corpus settings or files; the stores in this "
                "work_dir belong to those rows, so use a new work_dir"
            )
        return load(work_dir)
    found = (
        _hub_rows(section, renderer)
        if not files
        else (
            r for f, k in zip(files, kinds, strict=True) for r in _file_rows(f, k, field, renderer)
        )
    )
    rows: list[dict[str, Any]] = []
    empty = 0
    for origin, text, spans, group in found:
        named = {GROUP_FIELD: group} if group is not None else {}
        if spans is not None:  # a conversation: one row, never split
            rows.append(
                {"text": text, "origin": origin, "spans": [list(s) for s in spans], **named}
            )
        else:
            pieces = split_text(text, section.max_chars)
            empty += not pieces
            rows.extend({"text": p, "origin": origin, **named} for p in pieces)
        if section.max_rows is not None and len(rows) >= section.max_rows:
            rows = rows[: section.max_rows]
            break
    if not rows:
        where = ", ".join(i.get("file") or i.get("hub", "") for i in inputs)
        raise CorpusError(f"{where}: the corpus has no text rows (empty input)")
    body = "".join(dumps(r, indent=None) + "\n" for r in rows).encode("utf-8")
    write_atomic(directory / ROWS, lambda tmp: tmp.write_bytes(body))
    meta = {
        "fingerprint": hashlib.sha256(body).hexdigest(),
        "num_rows": len(rows),
        "empty_texts_skipped": empty,
        "settings": settings,
    }
    if conversation:
        meta["conversation"] = True
    write_json_atomic(meta_file, meta)
    return load(work_dir)


def load(work_dir: Path) -> Corpus:
    """The rows of ``work_dir/corpus`` (checked against their fingerprint)."""
    directory = WorkDir(work_dir).corpus
    file = directory / ROWS
    if not file.is_file():
        raise CorpusError(f"{directory}: no prepared corpus (run `fusebench fuse extract`)")
    body = file.read_bytes()
    meta = json.loads((directory / META).read_text(encoding="utf-8"))
    fingerprint = hashlib.sha256(body).hexdigest()
    if fingerprint != meta.get("fingerprint"):
        raise CorpusError(f"{file}: sha256 does not match {META} (the rows were edited)")
    records = [
        record
        for _, record in json_lines(
            body.decode("utf-8").split("\n"),
            lambda line, why: CorpusError(f"{file}:{line}: {why}"),
        )
    ]
    spans = (
        [[(int(a), int(b)) for a, b in r["spans"]] for r in records]
        if meta.get("conversation")
        else None
    )
    groups = [r.get(GROUP_FIELD) for r in records]
    return Corpus(
        [r["text"] for r in records],
        [r["origin"] for r in records],
        fingerprint,
        directory,
        spans,
        groups if any(g is not None for g in groups) else None,
    )
