"""Reading a score out of what judges really write.

The contract of both templates is a last line ``점수: N``. Judges decorate it: ``**점수:** 8``,
``점수 : 8/10``, ``점수: 7.5``, a full-width colon (``점수：8``), ``[[8]]``, trailing text
(``점수: 8점입니다``), a heading mark (``### 점수: 8``), full-width forms read as ASCII
(``점수：［［８］］``). Only a line that *starts* with the label is the judge's own score line:
the answer being judged may carry a planted ``점수: 10`` that the judge quotes inside its
reasoning, and a quote is never a score. Two score lines with different values (a quoted line
of its own, or a restated template) make the reply unparsable, so it is asked again rather
than guessed. Anything else is not a score either:
no ``점수`` line, a number outside 0-10, a fraction over something other than 10, a range
(``점수: 1-10``). Unlike LogicKor's parser (first match anywhere, and a reply without one
becomes 0.0 after four tries) no match is ``None``, never 0.
"""

from __future__ import annotations

import re

SCORE_MIN, SCORE_MAX = 0.0, 10.0
# Full-width forms (U+FF01-U+FF5E: ``［］：＞＜＝Ａ８``...) and the ideographic space, which judges
# writing CJK text use, read as their ASCII forms; nothing else is folded.
_ASCII_FORMS = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def ascii_forms(text: str) -> str:
    """``text`` with full-width ASCII forms as ASCII, before a score or verdict is looked for."""
    return text.translate(_ASCII_FORMS)


# Markdown emphasis and code marks around the label or the number are dropped first.
_DECORATION = re.compile(r"[*_`]")
# The label at the start of a line (after blanks and heading marks), then the number; the
# number is whole (no digit after it) and not the start of a range such as ``1-10``.
_SCORE_LINE = re.compile(
    r"^[ \t#]*점수\s*[:：]\s*[\[\(]*\s*(?P<num>[+-]?\d+(?:\.\d+)?)(?!\d|\.\d)\s*[\]\)]*"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?(?!\s*[-~–]\s*\d)"
)
# LogicKor keeps the text after "평가:" up to the score line as the judge message; the label
# may be decorated (``**평가:**``) but the message itself is kept as written.
_MESSAGE_LABEL = re.compile(r"^[\s#*_`]*평가[\s*_`]*[:：][*_`]*\s*")


def _line_score(line: str) -> tuple[bool, float | None]:
    """(is a score line, its valid value or None)."""
    found = _SCORE_LINE.match(_DECORATION.sub("", ascii_forms(line)))
    if found is None:
        return False, None
    value = float(found.group("num"))
    if found.group("den") is not None and float(found.group("den")) != SCORE_MAX:
        return True, None
    if not SCORE_MIN <= value <= SCORE_MAX:
        return True, None
    return True, value


def _score_lines(reply: str) -> list[tuple[int, float | None]]:
    """(line index, value) of every line that is a score line."""
    out = []
    for index, line in enumerate(reply.splitlines()):
        is_score, value = _line_score(line)
        if is_score:
            out.append((index, value))
    return out


def parse_score(reply: str | None) -> float | None:
    """The score of the judge's own score line in ``reply``, or None when there is none,
    it is not valid, or two score lines disagree."""
    if not reply:
        return None
    values = {value for _, value in _score_lines(reply)}
    if len(values) != 1:
        return None
    return values.pop()


def judge_message(reply: str | None) -> str:
    """The judge's reasoning as LogicKor stores it (the text after ``평가:`` up to the score
    line, whole, whatever it quotes), or the whole reply when it does not follow the
    ``평가: ... 점수:`` layout."""
    if not reply:
        return ""
    lines = reply.splitlines()
    scores = _score_lines(reply)
    if not scores:
        return reply.strip()
    end = scores[0][0]
    for start in range(end - 1, -1, -1):
        label = _MESSAGE_LABEL.match(lines[start])
        if label is not None:
            first = lines[start][label.end() :]
            return "\n".join([first, *lines[start + 1 : end]]).strip()
    return reply.strip()
