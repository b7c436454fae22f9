"""Scripted pairwise judges for ``ScriptedJudge(respond=...)``: each reads the two answers of
the prompt, as a real judge would, and answers in the pairwise prompt's contract.

- ``prefers_a``: always position A (a judge with a pure position bias);
- ``prefers_longer``: the longer answer, a tie within 5% (a judge with a pure length bias);
- ``planted``: consistent, following the outcome planted in the other model's answer
  (``S:<outcome>`` in turn 1, ``M:<outcome>`` in turn 2; ``none`` is a reply without a
  verdict). A pytest plugin (``tests/conftest.py``): tests get them from ``pairwise_judges``.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

_BLOCK = r"\[어시스턴트 {0}(?:의 답변|와의 대화) 시작\]\n(.*?)\n\[어시스턴트 {0}(?:의 답변|와의 대화) 끝\]"
_A, _B = re.compile(_BLOCK.format("A"), re.S), re.compile(_BLOCK.format("B"), re.S)
_PLANT = {"S": re.compile(r"S:(\w+)"), "M": re.compile(r"M:(\w+)")}
# The other model's outcome -> the verdict label when the other model is A (mirrored for B).
_LABEL_AS_A = {"bigwin": "A>>B", "win": "A>B", "tie": "A=B", "loss": "B>A", "bigloss": "B>>A"}
_MIRROR = {"A>>B": "B>>A", "A>B": "B>A", "A=B": "A=B", "B>A": "A>B", "B>>A": "A>>B"}


def answers(messages: list[dict]) -> tuple[str, str, str]:
    """(turn marker S or M, answer A, answer B) of a pairwise prompt."""
    user = messages[-1]["content"]
    turn = "M" if "대화 시작]" in user else "S"
    return turn, _A.search(user).group(1), _B.search(user).group(1)


def prefers_a(messages: list[dict]) -> str:
    return "평가: 첫 번째 답변이 더 좋다.\n판정: [[A>B]]"


def prefers_longer(messages: list[dict]) -> str:
    _, a, b = answers(messages)
    verdict = "A>B" if len(a) > 1.05 * len(b) else "B>A" if len(b) > 1.05 * len(a) else "A=B"
    return f"평가: 더 자세한 답변이 낫다.\n**판정:** [[{verdict}]]"


def planted(messages: list[dict]) -> str:
    turn, a, b = answers(messages)
    in_a = _PLANT[turn].findall(a)
    outcome = (in_a or _PLANT[turn].findall(b))[-1]
    if outcome == "none":
        return "평가: 판단할 수 없다."
    label = _LABEL_AS_A[outcome] if in_a else _MIRROR[_LABEL_AS_A[outcome]]
    return f"평가: 근거를 들어 비교했다.\n판정 : {label}"


def judge_pairwise(
    base: Path, other: Path, out: Path, server: Any, cache: Path, *extra: str
) -> tuple[int, str]:
    """``fusebench judge BASE --pairwise OTHER --output OUT`` against ``server``: (exit code,
    what it printed)."""
    from harness.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = main(
            [
                "judge",
                str(base),
                "--pairwise",
                str(other),
                "--output",
                str(out),
                "--base-url",
                server.base_url,
                "--judge-model",
                "scripted-pairwise",
                "--cache",
                str(cache),
                "--backoff",
                "0.01",
                "--quiet",
                *extra,
            ]
        )
    return code, stdout.getvalue()


@pytest.fixture(scope="session")
def pairwise_judges() -> SimpleNamespace:
    """The scripted judges, ``answers`` (of a prompt) and ``run``: :func:`judge_pairwise`."""
    return SimpleNamespace(
        prefers_a=prefers_a,
        prefers_longer=prefers_longer,
        planted=planted,
        answers=answers,
        run=judge_pairwise,
    )
