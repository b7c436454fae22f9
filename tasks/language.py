"""Is an answer in Korean? A deterministic check, no judge needed.

LogicKor's judge rules give an answer that is not in Korean 0 points unless the question asks
for another language. This module measures, per answer, the share of Hangul among its letters
(Unicode letters of any script; digits, punctuation, spaces and emoji are not letters), after
leaving out code (fenced ```` ``` ```` blocks and inline `` `code` ``), which is neither
Korean nor foreign prose. An answer under ``KOREAN_THRESHOLD`` is flagged as not Korean.

The threshold, 0.5, is where a reader would say an answer is "in" one language or the
other. Measured on LogicKor's published answers (``evaluated/``: 14 models x 3 strategies x
42 questions x 2 turns = 3,528 answers): 9 in 10 answers have a Hangul share above 0.9;
260 are flagged, 161 of which GPT-4 scored 0; 192 are not checked (below). A question that
asks for another language (it names 영어, 영문, English, 일본어, 중국어, 한자, 번역 ...) exempts its
answer, and so does an answer without letters (a bare number): ``None``, neither Korean nor
flagged.
"""

from __future__ import annotations

import re
import unicodedata

KOREAN_THRESHOLD = 0.5
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.S)
_OTHER_LANGUAGE = re.compile(
    r"영어|영문|English|일본어|일어|중국어|한자|스페인어|프랑스어|독일어|번역|translate", re.I
)


def _is_hangul(char: str) -> bool:
    code = ord(char)
    return (
        0xAC00 <= code <= 0xD7A3  # syllables
        or 0x1100 <= code <= 0x11FF  # jamo
        or 0x3130 <= code <= 0x318F  # compatibility jamo
        or 0xA960 <= code <= 0xA97F
        or 0xD7B0 <= code <= 0xD7FF
    )


def hangul_share(text: str | None) -> float | None:
    """The share of Hangul among the letters of ``text`` outside code; None without letters."""
    if not text:
        return None
    letters = hangul = 0
    for char in _CODE.sub(" ", text):
        if unicodedata.category(char).startswith("L"):
            letters += 1
            hangul += _is_hangul(char)
    return hangul / letters if letters else None


def asks_other_language(question: str | None) -> bool:
    """Whether the question asks for (or about) another language, so that a non-Korean
    answer may be right."""
    return bool(question and _OTHER_LANGUAGE.search(question))


def is_korean(answer: str | None, question: str | None = None) -> bool | None:
    """True: Korean; False: flagged (under the threshold); None: the check does not apply
    (the question asks for another language, or the answer has no letters: a bare number
    is in no language, and an empty answer is a judge's matter)."""
    if asks_other_language(question):
        return None
    share = hangul_share(answer)
    return None if share is None else share >= KOREAN_THRESHOLD
