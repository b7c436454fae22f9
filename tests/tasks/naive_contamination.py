"""A plain-Python contamination check, written from the rule alone (no numpy, no hashing of
ours): every n-gram of every evaluation text in a ``set`` of strings, the corpus streamed row
by row. The independent derivation the tests compare ``tasks.contamination`` with on real
data, and the baseline ``bench/contamination_speed.py`` times it against.

The rule: text is lowercased and reduced to letters and digits (characters: spaces dropped
too; words: runs of letters and digits). A text is contaminated when one of its windows of n
units that holds at least n // 2 distinct units is a window of a corpus row, or when the whole
text (n > its length >= the minimum, half its units distinct) equals a whole corpus row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NOT_ALNUM = re.compile(r"[\W_]+")
_WORD = re.compile(r"[^\W_]+")
MIN_WHOLE = {"chars": 10, "words": 5}


def units(text: str, unit: str) -> tuple[str, ...]:
    lowered = text.lower()
    return tuple(_NOT_ALNUM.sub("", lowered)) if unit == "chars" else tuple(_WORD.findall(lowered))


def _informative(window: tuple[str, ...]) -> bool:
    return len(set(window)) >= max(1, len(window) // 2)


Index = tuple[dict, dict]


def index(texts: list[str], lengths: dict[str, int]) -> Index:
    """Every informative n-gram and every short whole text of ``texts``, as strings."""
    windows: dict[tuple[str, tuple[str, ...]], set[int]] = {}
    wholes: dict[tuple[str, tuple[str, ...]], set[int]] = {}
    for i, text in enumerate(texts):
        for unit, n in lengths.items():
            seq = units(text, unit)
            for j in range(len(seq) - n + 1):
                if _informative(seq[j : j + n]):
                    windows.setdefault((unit, seq[j : j + n]), set()).add(i)
            if MIN_WHOLE[unit] <= len(seq) < n and _informative(seq):
                wholes.setdefault((unit, seq), set()).add(i)
    return windows, wholes


def scan(built: Index, corpus: Iterable[str], lengths: dict[str, int]) -> dict[int, set[int]]:
    """{text index: corpus row indices} of every contaminated text."""
    windows, wholes = built
    found: dict[int, set[int]] = {}
    for r, row in enumerate(corpus):
        for unit, n in lengths.items():
            seq = units(row, unit)
            hits = set(wholes.get((unit, seq), ()))
            for j in range(len(seq) - n + 1):
                hits |= windows.get((unit, seq[j : j + n]), set())
            for i in hits:
                found.setdefault(i, set()).add(r)
    return found


def contaminated(
    texts: list[str], corpus: Iterable[str], lengths: dict[str, int]
) -> dict[int, set[int]]:
    """{text index: corpus row indices} of every contaminated text."""
    return scan(index(texts, lengths), corpus, lengths)
