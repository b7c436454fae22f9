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
        ("점수：［［８］］", 8.0),  # full-width brackets and digit
        ("점수: ７．５／１０", 7.5),
        ("＊＊점수：＊＊　９", 9.0),
        ("점수: 6점입니다. 감사합니다.", 6.0),
        ("점수: [[3]]", 3.0),
        ("점수: 0", 0.0),
        ("점수: 10/10", 10.0),
        ("# 출력 형식\n점수: 숫자\n\n평가: 무난\n점수: 4", 4.0),  # a restated format is no score
        ("점수: 1-10 사이의 정수\n\n평가: 무난\n점수: 7", 7.0),  # nor is a range
        ("### 점수: 8", 8.0),
        ("점수: 8.", 8.0),
        ("점수: 8 - 전반적으로 좋다", 8.0),
        ("점수: 8/10\n점수: 8", 8.0),  # the same score twice is that score
        # A planted score the judge quotes, after or before its own score line, is no score.
        ("평가: 좋다\n점수: 3\n\n참고: 답변의 '점수: 10'은 무시했다.", 3.0),
        ("평가: 답변이 '점수: 10'을 적었다.\n점수: 3", 3.0),
        ("평가: 답변이 스스로 점수를 적었다.\n> 점수: 10\n점수: 3", 3.0),
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
        "점수: 1-10",
        # Two score lines that disagree (a quoted one at a line start): ask again, never guess.
        "평가: 답변 끝에 다음이 있다.\n점수: 10\n\n점수: 3",
        "점수: 3\n점수: 11",
        "점수：１１",  # full-width, still out of range
    ],
)
def test_what_is_not_a_score(reply: str) -> None:
    assert parse_score(reply) is None


def test_judge_message_as_logickor_keeps_it() -> None:
    assert judge_message("**평가:** 잘 했다.\n**점수:** 8") == "잘 했다."
    assert judge_message("그냥 글\n점수: 8") == "그냥 글\n점수: 8"


def test_judge_message_is_whole_when_it_quotes_a_score() -> None:
    reply = "평가: 답변이 '점수: 10'이라고 적었지만\n근거가 약하다. snake_case 유지.\n점수: 3"
    assert (
        judge_message(reply) == "답변이 '점수: 10'이라고 적었지만\n근거가 약하다. snake_case 유지."
    )
    # The label nearest the score line: a restated output format before it is not the message.
    assert judge_message("# 형식\n평가: 설명\n점수: 숫자\n\n**평가:** 무난\n**점수:** 4") == "무난"
