"""LogicKor as data: its 42 two-turn questions, prompt strategies and judge system prompts.

Read from the data directory (``logickor/questions.jsonl``, ``logickor/templates.json``) or,
with no data directory, from the LogicKor repository on GitHub (``questions.jsonl`` and the
two dicts of ``templates.py``). fusebench embeds none of LogicKor's texts: they are loaded.

The online path is written against the repository's raw files and is untested here (the
development machine has no internet); the offline path is what the tests use.
"""

from __future__ import annotations

import ast
import json
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runrecords.jsonl import BadLine, json_lines
from tasks.datadir import ENV_VAR, data_dir
from tasks.encoding import read_utf8
from tasks.errors import TaskDataError

VERSION = "1"
QUESTIONS = "logickor/questions.jsonl"
TEMPLATES = "logickor/templates.json"
UPSTREAM = "https://raw.githubusercontent.com/instructkr/LogicKor/main"
TURN_PROMPTS = ("single_turn", "multi_turn")
_ROLES = {"system", "user", "assistant"}
# What every LogicKor row holds; generated (and judged) rows add the model's outputs.
QUESTION_FIELDS = ("id", "category", "questions")
GENERATED_FIELDS = (*QUESTION_FIELDS, "outputs")


@dataclass(frozen=True)
class Templates:
    """Prompt strategies (name -> chat messages put before the question) and the judge's
    system prompt per turn (``single_turn``, ``multi_turn``)."""

    strategies: dict[str, list[dict[str, str]]]
    judge_system: dict[str, str]


def row_problem(
    row: Any, fields: Sequence[str], lists: Sequence[str] = (), nonempty: bool = False
) -> str | None:
    """What is wrong with a LogicKor row's shared fields, or None: it must be a JSON object
    holding ``fields``, each of ``lists`` a list of at least two strings (non-empty ones with
    ``nonempty``). Questions, generated and judged files all hold such rows."""
    if not isinstance(row, dict):
        return "not a JSON object"
    for field in fields:
        if field not in row:
            return f"missing field {field!r}"
    for name in lists:
        # At least two: LogicKor's question 3 carries a third (a reworded second turn) that
        # its generators ignore; the row keeps it, generation and judging use the first two.
        value = row[name]
        if (
            not isinstance(value, list)
            or len(value) < 2
            or not all(isinstance(v, str) and (v or not nonempty) for v in value)
        ):
            return f"field {name!r} must hold two {'non-empty ' if nonempty else ''}strings"
    return None


def check_rows(
    lines: Iterable[str],
    bad_line: BadLine,
    fields: Sequence[str],
    lists: Sequence[str] = (),
    nonempty: bool = False,
    extra: Callable[[dict], str | None] = lambda row: None,
) -> list[dict]:
    """The rows of a LogicKor JSONL file, each checked by ``row_problem`` and then by
    ``extra`` (a reason, or None), their ids unique; ``bad_line(line, reason)`` makes the
    error (the caller's class and file name)."""
    rows, seen = [], set()
    for number, row in json_lines(lines, bad_line):
        reason = row_problem(row, fields, lists, nonempty) or extra(row)
        if reason is not None:
            raise bad_line(number, reason)
        if row["id"] in seen:
            raise bad_line(number, f"id {row['id']!r} appears twice")
        seen.add(row["id"])
        rows.append(row)
    return rows


def _question_problem(row: dict) -> str | None:
    if not isinstance(row["category"], str):
        return "field 'category' must be a string"
    references = row.get("references") or [None, None]
    if not isinstance(references, list) or len(references) != 2:
        return "field 'references' must be a list of two (or null)"
    return None


def parse_questions(text: str, source: str) -> list[dict]:
    """Rows of ``questions.jsonl``, checked; errors name ``source:line: field``."""
    rows = check_rows(
        text.lstrip("\ufeff").split("\n"),
        lambda line, why: TaskDataError(f"{source}:{line}: {why}"),
        QUESTION_FIELDS,
        ["questions"],
        nonempty=True,
        extra=_question_problem,
    )
    if not rows:
        raise TaskDataError(f"{source}: no questions")
    return [
        {
            "id": row["id"],
            "category": row["category"],
            "questions": list(row["questions"]),
            "references": list(row.get("references") or [None, None]),
        }
        for row in rows
    ]


def _check_templates(data: Any, source: str) -> Templates:
    if not isinstance(data, dict):
        raise TaskDataError(f"{source}: not a JSON object")
    strategies = data.get("prompt_strategies")
    judge = data.get("judge_system_prompts")
    if not isinstance(strategies, dict) or not strategies:
        raise TaskDataError(f"{source}: field 'prompt_strategies' must be a non-empty object")
    for name, messages in strategies.items():
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and m.get("role") in _ROLES and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise TaskDataError(
                f"{source}: prompt_strategies.{name}: expected a list of "
                "{role: system|user|assistant, content: text}"
            )
    if not isinstance(judge, dict):
        raise TaskDataError(f"{source}: field 'judge_system_prompts' must be an object")
    for turn in TURN_PROMPTS:
        if not isinstance(judge.get(turn), str) or not judge[turn]:
            raise TaskDataError(f"{source}: judge_system_prompts.{turn}: missing or empty")
    return Templates(
        {k: [dict(m) for m in v] for k, v in strategies.items()},
        {t: judge[t] for t in TURN_PROMPTS},
    )


def parse_templates_py(text: str, source: str) -> Templates:
    """LogicKor's ``templates.py`` read as data: the literal values of its ``PROMPT_STRATEGY``
    and ``JUDGE_TEMPLATE`` assignments (``ast.literal_eval``; nothing is executed)."""
    found: dict[str, Any] = {}
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise TaskDataError(f"{source}:{err.lineno}: not Python ({err.msg})") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("PROMPT_STRATEGY", "JUDGE_TEMPLATE"):
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    raise TaskDataError(
                        f"{source}:{node.lineno}: {target.id} is not a literal"
                    ) from None
    return _check_templates(
        {
            "prompt_strategies": found.get("PROMPT_STRATEGY"),
            "judge_system_prompts": found.get("JUDGE_TEMPLATE"),
        },
        source,
    )


def _fetch(url: str) -> str:  # pragma: no cover - needs the internet
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read().decode("utf-8")
    except OSError as err:
        raise TaskDataError(
            f"{url}: cannot fetch LogicKor data ({err}); set {ENV_VAR} to a "
            "folder holding logickor/questions.jsonl and templates.json"
        ) from None


def _local(root: Path | None) -> Path | None:
    return root if root is not None else data_dir()


def load_questions(root: Path | None = None) -> list[dict]:
    """The questions (id, category, questions, references), in file order."""
    base = _local(root)
    if base is None:  # pragma: no cover - online
        return parse_questions(_fetch(f"{UPSTREAM}/questions.jsonl"), f"{UPSTREAM}/questions.jsonl")
    path = base / QUESTIONS
    if not path.is_file():
        raise TaskDataError(f"{path}: missing from the data directory ({ENV_VAR}={base})")
    return parse_questions(read_utf8(path), str(path))


def load_templates(root: Path | None = None) -> Templates:
    """Prompt strategies and judge system prompts."""
    base = _local(root)
    if base is None:  # pragma: no cover - online
        return parse_templates_py(_fetch(f"{UPSTREAM}/templates.py"), f"{UPSTREAM}/templates.py")
    path = base / TEMPLATES
    if not path.is_file():
        raise TaskDataError(f"{path}: missing from the data directory ({ENV_VAR}={base})")
    try:
        data = json.loads(read_utf8(path))
    except json.JSONDecodeError as err:
        raise TaskDataError(f"{path}:{err.lineno}: not JSON ({err.msg})") from None
    return _check_templates(data, str(path))


def source_description(root: Path | None = None) -> str:
    """Where the data came from, for manifests."""
    base = _local(root)
    return str(base / "logickor") if base is not None else UPSTREAM
