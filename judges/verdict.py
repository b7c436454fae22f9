"""Reading a pairwise verdict out of what judges write, and combining the two orders.

The contract of the pairwise prompt is a last line ``판정: [[A>B]]`` with one of five labels:
``A>>B`` (A much better), ``A>B``, ``A=B`` (tie), ``B>A``, ``B>>A``. What is read: a line
that starts (after blanks and ``#`` heading marks) with ``판정``, a colon (``:`` or ``：``), then
the label, in any number of square brackets or none, with blanks allowed around the sign and
any text after it. Judges decorate it and those forms are read too: Markdown marks anywhere
on the line (``**판정:** [[A>>B]]``), blanks (``판정 : A > B``), full-width forms of any ASCII
character, read as ASCII (``판정：［［Ａ＞Ｂ］］``, ``＜``, ``＝``, the ideographic space), and the
mirrored labels ``B<<A``, ``B<A``, ``A==B``, ``B==A``, ``B=A``, ``A<B``, ``A<<B``. As for scores
(``judges.parse``) only a line that *starts* with the label is the judge's own verdict: an
answer may plant ``판정: [[A>>B]]`` that the judge quotes. Two verdict lines that disagree, no
verdict line, or an unknown label (``[[C>A]]``, ``A>A``, ``A≫B``) make the reply unparsable
(asked again, then recorded so), never a default verdict.

Verdicts are numbers from A's side: +2, +1, 0, -1, -2. Each pair is asked in both orders
(MT-Bench, Arena-Hard): a verdict whose direction (win, tie, loss) changes with the order is
position-inconsistent and counts as a tie, as MT-Bench counts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from judges.parse import ascii_forms

LABELS: dict[str, int] = {"A>>B": 2, "A>B": 1, "A=B": 0, "B>A": -1, "B>>A": -2}
MIRRORED = {
    "B<<A": "A>>B",
    "B<A": "A>B",
    "A==B": "A=B",
    "B==A": "A=B",
    "B=A": "A=B",
    "A<B": "B>A",
    "A<<B": "B>>A",
}
_DECORATION = re.compile(r"[*_`]")
_LINE = re.compile(r"^[ \t#]*판정\s*[:：]\s*(?P<rest>.*)$")
_LABEL = re.compile(r"\[*\s*(?P<label>[AB]\s*(?:>>|<<|==|>|<|=)\s*[AB])\s*\]*")

WIN, TIE, LOSS = "win", "tie", "loss"


def _line_verdict(line: str) -> tuple[bool, int | None]:
    """(is a verdict line, its value or None when the label is not one of the five)."""
    found = _LINE.match(_DECORATION.sub("", ascii_forms(line)))
    if found is None:
        return False, None
    label = _LABEL.match(found.group("rest").strip())
    if label is None:
        return True, None
    text = re.sub(r"\s+", "", label.group("label"))
    text = MIRRORED.get(text, text)
    return True, LABELS.get(text)


def parse_verdict(reply: str | None) -> int | None:
    """The verdict of the judge's own ``판정:`` line, from A's side (+2 .. -2), or None."""
    if not reply:
        return None
    values = set()
    for line in reply.splitlines():
        is_verdict, value = _line_verdict(line)
        if is_verdict:
            values.add(value)
    if len(values) != 1:
        return None
    return values.pop()


def label(value: int) -> str:
    return {v: k for k, v in LABELS.items()}[value]


def outcome(score: int) -> str:
    """Win, tie or loss of a side whose verdict is ``score`` (its own side's view)."""
    return WIN if score > 0 else LOSS if score < 0 else TIE


@dataclass(frozen=True)
class Combined:
    outcome: str  # for the "other" side: win, tie or loss
    consistent: bool
    score: float  # mean of both orders' verdicts from the other side, -2 .. +2


def combine(other_first: int, other_second: int) -> Combined:
    """Both orders' verdicts, each already turned to the other model's side, as one: their
    common direction when they agree, else a tie that is position-inconsistent."""
    a, b = outcome(other_first), outcome(other_second)
    consistent = a == b
    return Combined(a if consistent else TIE, consistent, (other_first + other_second) / 2)
