"""Judge prompts for one answer: LogicKor's exact layout, or fusebench's own rubric.

``logickor`` reproduces LogicKor's ``evaluator.py``: the system prompt is its judge template
for the turn (loaded from the data, ``judge_system_prompts``), and the user prompt is its
layout: an instruction line, ``**Question**``, ``**Additional Reference**`` when there is one,
``**Model's Response**``, and for the second turn ``**Follow-up Question.**`` with its
reference and response, closed by ``[[대화 종료. 평가 시작.]]``. The instruction and the
section labels are LogicKor's prompt format (a few words of glue, not benchmark data), kept
verbatim here because any change to them changes the judge's scores.

``fusebench`` is the project's own Korean rubric, written for this project, with the same
output contract (``평가: ...`` then ``점수: N``, N from 0 to 10).
"""

from __future__ import annotations

from enum import Enum


class Template(str, Enum):
    """The judge prompt templates (``fusebench judge --template``)."""

    logickor = "logickor"
    fusebench = "fusebench"


TEMPLATES: tuple[str, ...] = tuple(template.value for template in Template)
TURN_KEYS = {"query_single": "single_turn", "query_multi": "multi_turn"}

# LogicKor evaluator.py's user-prompt glue, verbatim (see the module docstring).
_LK_INSTRUCTION = (
    "아래의 내용을 주어진 평가 기준들을 충실히 반영하여 평가해라. "
    "특히 모델 답변이 언어 요구사항을 준수하는지 반드시 확인해야 한다.\n\n"
)
_LK_END = "\n\n[[대화 종료. 평가 시작.]]"

_FB_SYSTEM = {
    "single_turn": (
        "당신은 한국어 챗봇의 답변을 채점하는 심사위원입니다. 아래 기준에 따라 사용자 질문에 대한 "
        "답변 하나를 채점하세요.\n\n"
        "채점 기준\n"
        "- 정확성: 사실, 계산, 논리에 오류가 없는가. 참고 답안이 주어지면 그것과 대조한다.\n"
        "- 지시 이행: 질문이 요구한 형식, 분량, 조건을 모두 지켰는가.\n"
        "- 완결성: 빠뜨린 부분 없이 질문 전체에 답했는가.\n"
        "- 한국어: 질문이 다른 언어를 요구하지 않는 한 자연스러운 한국어로 답해야 한다. "
        "한국어가 아닌 답변은 0점이다.\n"
        "- 길이 자체는 점수에 반영하지 않는다.\n\n"
        "출력 형식 (이 두 줄만 쓰세요)\n"
        "평가: 근거를 들어 3~5문장으로 설명\n"
        "점수: 0에서 10 사이의 숫자"
    ),
    "multi_turn": (
        "당신은 한국어 챗봇의 대화를 채점하는 심사위원입니다. 첫 질문과 답변에 이어진 후속 질문에 "
        "대한 두 번째 답변만 채점하세요.\n\n"
        "채점 기준\n"
        "- 정확성: 사실, 계산, 논리에 오류가 없는가. 참고 답안이 주어지면 그것과 대조한다.\n"
        "- 지시 이행: 후속 질문이 요구한 형식, 분량, 조건을 모두 지켰는가.\n"
        "- 맥락 유지: 앞선 대화의 내용과 모순 없이 이어지는가.\n"
        "- 한국어: 질문이 다른 언어를 요구하지 않는 한 자연스러운 한국어로 답해야 한다. "
        "한국어가 아닌 답변은 0점이다.\n"
        "- 길이 자체는 점수에 반영하지 않는다.\n\n"
        "출력 형식 (이 두 줄만 쓰세요)\n"
        "평가: 근거를 들어 3~5문장으로 설명\n"
        "점수: 0에서 10 사이의 숫자"
    ),
}


def _logickor_user(row: dict, multi: bool) -> str:
    questions, outputs = row["questions"], row["outputs"]
    references = row.get("references") or [None, None]
    prompt = _LK_INSTRUCTION + f"**Question**\n{questions[0]}"
    if references and references[0]:
        prompt += f"\n\n**Additional Reference**\n{references[0]}"
    prompt += f"\n\n**Model's Response**\n{outputs[0]}"
    if multi:
        prompt += f"\n\n**Follow-up Question.**\n{questions[1]}"
        if references and len(references) > 1 and references[1]:
            prompt += f"\n\n**Additional Reference**\n{references[1]}"
        prompt += f"\n\n**Model's Response**\n{outputs[1]}"
    return prompt + _LK_END


def _fusebench_user(row: dict, multi: bool) -> str:
    questions, outputs = row["questions"], row["outputs"]
    references = row.get("references") or [None, None]
    parts = [f"[질문]\n{questions[0]}"]
    if references and references[0]:
        parts.append(f"[참고 답안]\n{references[0]}")
    parts.append(f"[답변]\n{outputs[0]}")
    if multi:
        parts.append(f"[후속 질문]\n{questions[1]}")
        if references and len(references) > 1 and references[1]:
            parts.append(f"[후속 질문의 참고 답안]\n{references[1]}")
        parts.append(f"[후속 답변 — 채점 대상]\n{outputs[1]}")
    else:
        parts[-1] = f"[답변 — 채점 대상]\n{outputs[0]}"
    return "\n\n".join(parts) + "\n\n위 기준과 출력 형식에 따라 채점하세요."


def build_messages(
    row: dict, turn_key: str, template: str, judge_system: dict[str, str]
) -> list[dict[str, str]]:
    """The chat messages that judge ``row`` at ``turn_key`` (query_single or query_multi)."""
    turn = TURN_KEYS[turn_key]
    multi = turn == "multi_turn"
    if template == "logickor":
        return [
            {"role": "system", "content": judge_system[turn]},
            {"role": "user", "content": _logickor_user(row, multi)},
        ]
    if template == "fusebench":
        return [
            {"role": "system", "content": _FB_SYSTEM[turn]},
            {"role": "user", "content": _fusebench_user(row, multi)},
        ]
    raise ValueError(f"unknown template {template!r}")
