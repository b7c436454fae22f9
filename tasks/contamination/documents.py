"""The scored documents of a task, as texts to look for in a corpus.

A document's texts are its string fields as the data set holds them (before any prompt
template: a leak of the raw item is found whatever prompt a task wraps it in), a list of
strings giving one text per element, plus, when it has several, all of them joined in field
order (a whole item of short fields, such as a COPA premise with its alternatives, is longer
than any one of them). Numbers, identifiers and labels are not text (a string with no letter
is left out).

Tasks come from lm-eval's task manager (fusebench's catalogue: the scored split, the
``test_split`` of the task's YAML, or its validation split when it has no test split), and
``logickor`` is LogicKor's questions and references (both turns of each).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from tasks.errors import TaskDataError

LOGICKOR = "logickor"
JOINED = "(all fields)"


@dataclass(frozen=True)
class Document:
    """One scored document: where it is (task, split, index in the split) and its texts."""

    index: int
    texts: dict[str, str]  # field name (``choices[1]`` for list items) -> text


@dataclass(frozen=True)
class TaskDocuments:
    task: str
    split: str
    version: str
    documents: list[Document]

    def digest(self) -> str:
        """sha256 of every document's texts: changes when the scored data changes."""
        digest = hashlib.sha256()
        for doc in self.documents:
            digest.update(json.dumps(doc.texts, ensure_ascii=False, sort_keys=True).encode())
        return digest.hexdigest()


def document_texts(record: dict) -> dict[str, str]:
    """The texts of one raw document (see the module docstring); identical texts once."""
    texts: dict[str, str] = {}
    seen: set[str] = set()

    def add(name: str, value: str) -> None:
        value = value.strip()
        # An identifier ("6270596") or a number is not text: it would join the real text into
        # a document text no corpus row equals.
        if any(char.isalpha() for char in value) and value not in seen:
            seen.add(value)
            texts[name] = value

    for name, value in record.items():
        if isinstance(value, str):
            add(str(name), value)
        elif isinstance(value, list | tuple):
            for position, item in enumerate(value):
                if isinstance(item, str):
                    add(f"{name}[{position}]", item)
    if len(texts) > 1:
        texts[JOINED] = "\n".join(texts.values())
    return texts


def documents_of(records: Iterable[dict]) -> list[Document]:
    return [Document(index, document_texts(dict(record))) for index, record in enumerate(records)]


def _lmeval_task(name: str, task_manager) -> TaskDocuments:
    """A task's scored split, raw, through lm-eval (fusebench's loaders for its own tasks)."""
    from lm_eval.tasks import get_task_dict

    try:
        task = get_task_dict([name], task_manager)[name]
    except TaskDataError:
        raise
    except Exception as err:  # noqa: BLE001 - lm-eval and datasets raise many kinds
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TaskDataError(f"task {name}: its data could not be loaded ({first})") from None
    config = task.config
    split = config.test_split or config.validation_split
    if not split:
        raise TaskDataError(f"task {name}: has neither a test nor a validation split to check")
    version = str((config.metadata or {}).get("version", "0"))
    return TaskDocuments(name, split, version, documents_of(task.dataset[split]))


def _logickor() -> TaskDocuments:
    from tasks.logickor import load_questions

    rows = [
        {"questions": row.get("questions") or [], "references": row.get("references") or []}
        for row in load_questions()
    ]
    return TaskDocuments(LOGICKOR, "questions", "1", documents_of(rows))


def load_documents(names: list[str]) -> list[TaskDocuments]:
    """The scored documents of each task or group named (``logickor`` included), in order."""
    from tasks import catalog

    wanted = [n.strip() for n in names if n.strip()]
    with_logickor = LOGICKOR in wanted
    others = [n for n in wanted if n != LOGICKOR]
    out: list[TaskDocuments] = []
    if others:
        manager = catalog.task_manager()
        expanded = catalog.expand_own(others, "contamination")
        out += [_lmeval_task(name, manager) for name in expanded]
    if with_logickor:
        out.append(_logickor())
    if not out:
        raise TaskDataError("no task given (--tasks is empty)")
    return out
