"""The pairwise judge prompt: the project's own Korean text, LogicKor's grading rules as criteria.

LogicKor grades one answer at a time and has no pairwise prompt; MT-Bench and Arena-Hard have
English ones. This one is written for this project: the criteria are LogicKor's rules (the
question's requirements, what is missing, length must not matter, the reference when given,
Korean required unless the question asks for another language), the layout is MT-Bench's
(each assistant's whole conversation for the second turn), and the verdict uses Arena-Hard's
five labels, read by ``judges.verdict``.

Each answer sits between start and end lines that name its assistant; the question and the
reference are shown once.
"""

from __future__ import annotations

SYSTEM = {
    "single_turn": (
        "너는 사용자 질문에 대한 두 한국어 AI 어시스턴트(A와 B)의 답변을 비교하는 공정한 "
        "심사위원이다. 아래 규칙에 따라 어느 답변이 더 나은지 판정하라.\n\n"
        "# 평가 기준\n"
        "1. 질문의 요구사항을 얼마나 충실히 반영하였는지 분석할 것.\n"
        "2. 각 답변에서 누락되었거나 부족한 부분을 분석할 것.\n"
        "3. 답변의 길이가 판정에 영향을 미치지 않도록 할 것. 더 길다고 더 나은 답변이 아니다.\n"
        "4. 참고 답안이 주어지면 정확성을 판단할 때 참고할 것.\n"
        "5. 답변이 제시된 순서가 판정에 영향을 미치지 않도록 할 것.\n\n"
        "# 언어 요구사항\n"
        "- 답변은 반드시 한국어여야 한다. 질문이 다른 언어로 답할 것을 요구할 때만 예외이다.\n"
        "- 이 요구를 어긴 답변은 다른 답변보다 나을 수 없다.\n\n"
        "# 출력 형식\n"
        "평가: 두 답변을 비교한 근거를 3~5문장으로 작성\n"
        "판정: 다음 다섯 가지 중 하나만 쓸 것\n"
        "[[A>>B]] A가 훨씬 낫다, [[A>B]] A가 낫다, [[A=B]] 비슷하다, "
        "[[B>A]] B가 낫다, [[B>>A]] B가 훨씬 낫다"
    ),
    "multi_turn": (
        "너는 두 한국어 AI 어시스턴트(A와 B)가 사용자와 나눈 대화를 비교하는 공정한 심사위원이다. "
        "첫 질문과 답변에 이어진 후속 질문에 대한 두 번째 답변만 비교하여, 아래 규칙에 따라 "
        "어느 쪽이 더 나은지 판정하라.\n\n"
        "# 평가 기준\n"
        "1. 후속 질문의 요구사항을 얼마나 충실히 반영하였는지 분석할 것.\n"
        "2. 앞선 대화와 모순 없이 이어지는지 분석할 것.\n"
        "3. 각 답변에서 누락되었거나 부족한 부분을 분석할 것.\n"
        "4. 답변의 길이가 판정에 영향을 미치지 않도록 할 것. 더 길다고 더 나은 답변이 아니다.\n"
        "5. 참고 답안이 주어지면 정확성을 판단할 때 참고할 것.\n"
        "6. 대화가 제시된 순서가 판정에 영향을 미치지 않도록 할 것.\n\n"
        "# 언어 요구사항\n"
        "- 답변은 반드시 한국어여야 한다. 질문이 다른 언어로 답할 것을 요구할 때만 예외이다.\n"
        "- 이 요구를 어긴 답변은 다른 답변보다 나을 수 없다.\n\n"
        "# 출력 형식\n"
        "평가: 두 번째 답변들을 비교한 근거를 3~5문장으로 작성\n"
        "판정: 다음 다섯 가지 중 하나만 쓸 것\n"
        "[[A>>B]] A가 훨씬 낫다, [[A>B]] A가 낫다, [[A=B]] 비슷하다, "
        "[[B>A]] B가 낫다, [[B>>A]] B가 훨씬 낫다"
    ),
}


def answer_block(name: str, text: str) -> str:
    return f"[어시스턴트 {name}의 답변 시작]\n{text}\n[어시스턴트 {name}의 답변 끝]"


def _conversation(name: str, questions: list[str], outputs: list[str]) -> str:
    turns = "\n\n".join(
        f"### 사용자:\n{q}\n\n### 어시스턴트 {name}:\n{a}"
        for q, a in zip(questions, outputs, strict=True)
    )
    return f"[어시스턴트 {name}와의 대화 시작]\n{turns}\n[어시스턴트 {name}와의 대화 끝]"


def build_pairwise_messages(
    questions: list[str],
    references: list[str | None],
    first: list[str],
    second: list[str],
    turn: int,
) -> list[dict[str, str]]:
    """The messages that ask which of ``first`` (shown as A) and ``second`` (B) answers turn
    ``turn`` (0 or 1) better; turn 1 shows each assistant's whole conversation."""
    reference = references[turn] if turn < len(references) else None
    if turn == 0:
        parts = [f"[질문]\n{questions[0]}"]
        if reference:
            parts.append(f"[참고 답안]\n{reference}")
        parts += [answer_block("A", first[0]), answer_block("B", second[0])]
        system = SYSTEM["single_turn"]
    else:
        parts = []
        if reference:
            parts.append(f"[후속 질문의 참고 답안]\n{reference}")
        parts += [
            _conversation("A", questions[:2], first[:2]),
            _conversation("B", questions[:2], second[:2]),
        ]
        system = SYSTEM["multi_turn"]
    user = "\n\n".join(parts) + "\n\n위 기준과 출력 형식에 따라 판정하라."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
