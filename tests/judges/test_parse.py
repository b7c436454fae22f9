"""The score parser on what judges really write, and on what is not a score."""

from __future__ import annotations

import pytest

from judges.parse import judge_message, parse_score


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("평가: 좋다\n점수: 8", 8.0),
        ("**평가:** 좋다\n**점수:** 8", 8.0),
        ("평가: 좋다\n점수 : 8/10", 8.0),
        ("점수: 7.5", 7.5),
        ("점수：9", 9.0),  # full-width colon
        ("점수: 6점입니다. 감사합니다.", 6.0),
        ("점수: [[3]]", 3.0),
        ("점수: 0", 0.0),
        ("점수: 10/10", 10.0),
        ("# 출력 형식\n점수: 숫자\n\n평가: 무난\n점수: 4", 4.0),  # the last score line counts
    ],
)
def test_scores_judges_write(reply: str, score: float) -> None:
    assert parse_score(reply) == score


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "평가: 채점할 수 없다.",
        "점수: 11",
        "점수: -1",
        "점수: 8/5",
        "점수: 숫자",
        "score: 8",
        "8점",
    ],
)
def test_what_is_not_a_score(reply: str) -> None:
    assert parse_score(reply) is None


def test_judge_message_as_logickor_keeps_it() -> None:
    assert judge_message("**평가:** 잘 했다.\n**점수:** 8") == "잘 했다."
    assert judge_message("그냥 글\n점수: 8") == "그냥 글\n점수: 8"
