"""Reading a score out of what judges really write.

The contract of both templates is a last line ``점수: N``. Judges decorate it: ``**점수:** 8``,
``점수 : 8/10``, ``점수: 7.5``, a full-width colon (``점수：8``), ``[[8]]``, trailing text
(``점수: 8점입니다``). Anything else is not a score: no ``점수`` line, a number outside 0-10,
a fraction over something other than 10. Unlike LogicKor's parser (first match, and a reply
without one becomes 0.0 after four tries) the *last* ``점수`` line counts, since judges often
restate the output format before answering, and no match is ``None``, never 0.
"""

from __future__ import annotations

import re

SCORE_MIN, SCORE_MAX = 0.0, 10.0
# Markdown emphasis and code marks around the label or the number are dropped first.
_DECORATION = re.compile(r"[*_`]")
_SCORE = re.compile(
    r"점수\s*[:：]\s*[\[\(]*\s*(?P<num>[+-]?\d+(?:\.\d+)?)\s*[\]\)]*"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?"
)
# LogicKor keeps the text between "평가:" and "점수:" as the judge message.
_MESSAGE = re.compile(r"평가\s*[:：](.*?)점수\s*[:：]", re.DOTALL)


def parse_score(reply: str | None) -> float | None:
    """The score in ``reply``, or None when there is no valid one."""
    if not reply:
        return None
    matches = list(_SCORE.finditer(_DECORATION.sub("", reply)))
    if not matches:
        return None
    last = matches[-1]
    value = float(last.group("num"))
    if last.group("den") is not None and float(last.group("den")) != SCORE_MAX:
        return None
    if not SCORE_MIN <= value <= SCORE_MAX:
        return None
    return value


def judge_message(reply: str | None) -> str:
    """The judge's reasoning as LogicKor stores it (its text before the score), or the whole
    reply when it does not follow the ``평가: ... 점수:`` layout."""
    if not reply:
        return ""
    found = _MESSAGE.search(_DECORATION.sub("", reply))
    return found.group(1).strip() if found else reply.strip()
