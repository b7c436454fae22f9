"""Korean-language compliance on hand-made answers, and its table in ``fusebench report``."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from harness.cli import main
from tasks.language import KOREAN_THRESHOLD, asks_other_language, hangul_share, is_korean

KOREAN = "서울은 대한민국의 수도이며, 인구는 약 940만 명입니다."
ENGLISH = "Seoul is the capital of South Korea, with about 9.4 million people."
MIXED = "The answer is 42. 정답은 42입니다."  # 11 Latin letters, 6 Hangul syllables
KOREAN_WITH_CODE = "다음 코드를 보세요.\n```python\ndef fibonacci(n):\n    return n\n```\n끝."
KOREAN_WITH_TERMS = "LLM은 GPU에서 학습합니다. 트랜스포머 구조를 사용합니다."


def test_hangul_share_of_hand_made_answers() -> None:
    assert hangul_share(KOREAN) == 1.0  # digits and punctuation are not letters
    assert hangul_share(ENGLISH) == 0.0
    assert hangul_share(MIXED) == pytest.approx(6 / 17)
    assert hangul_share(KOREAN_WITH_CODE) == 1.0  # code is left out
    assert hangul_share(KOREAN_WITH_TERMS) == pytest.approx(21 / 27)  # 6 Latin, 21 Hangul
    assert hangul_share("42") is None and hangul_share("") is None


def test_answers_under_the_threshold_are_flagged() -> None:
    assert KOREAN_THRESHOLD == 0.5
    assert is_korean(KOREAN) is True and is_korean(KOREAN_WITH_TERMS) is True
    assert is_korean(ENGLISH) is False and is_korean(MIXED) is False
    assert is_korean("你好，世界。这是中文回答。") is False  # Han characters are not Hangul
    assert is_korean("42") is None  # no letters: no language to check
    # A question that asks for English exempts its answer.
    assert is_korean(ENGLISH, "위 답변을 영어 문장 3개로 요약해라.") is None


def test_report_shows_compliance_beside_the_logickor_table(tmp_path: Path, data_root: Path) -> None:
    """One model: a Korean answer scored 8, an English one scored 0 (caught), an English one
    scored 7 (missed), a Korean one scored 0, the rest Korean and scored 5."""
    questions = [
        json.loads(line)
        for line in (data_root / "logickor" / "questions.jsonl").read_text("utf-8").splitlines()
    ]
    plan = {0: (KOREAN, 8), 1: (ENGLISH, 0), 2: (ENGLISH, 7), 3: (KOREAN, 0)}
    rows = []
    for i, q in enumerate(questions):
        answer, score = plan.get(i, (KOREAN_WITH_TERMS, 5))
        rows.append(
            {
                **q,
                "outputs": [answer, KOREAN],
                "query_single": {"judge_message": "평가", "judge_score": score},
                "query_multi": {"judge_message": "평가", "judge_score": 5},
            }
        )
    path = tmp_path / "org" / "model" / "default.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(["report", str(tmp_path / "org")]) == 0
    text = stdout.getvalue()
    assert "## LogicKor" in text and "### Korean-language compliance" in text
    exempt = sum(asks_other_language(q["questions"][t]) for q in questions for t in (0, 1))
    checked = 84 - exempt
    # Two not Korean; the judge missed one (scored 7) and gave one Korean answer 0.
    assert f"| org/model | default | {checked} | 2 | {100 * 2 / checked:.1f}% | 1 | 1 |" in text
