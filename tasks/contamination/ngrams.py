"""Text as units (characters or words) and hashes of every window of n units, vectorized.

Two views of a text, both after lowercasing and dropping everything that is not a letter or a
digit (punctuation, symbols, the underscore):

- ``chars``: the letters and digits with the spaces removed too. Korean spacing is loose (the
  same sentence is written with and without its spaces), and a Korean word (eojeol) is a stem
  with particles attached, so a word n-gram misses what a character n-gram finds.
- ``words``: runs of letters and digits, as lm-eval's decontamination splits text after
  removing punctuation (its janitor: lowercase, strip punctuation, split on whitespace).

Window hashes are polynomial hashes modulo 2**64 (numpy's unsigned overflow), computed for all
windows of a long array at once by doubling (a window of 2m units from two of m), so a window
of n units costs about 2 log2(n) array operations, not n. Written by hand: no library hashes
every window of a stream against a small set and reports where (see docs/contamination.md for
what was considered). Hashes are only a filter: every hit is verified on the units themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

Unit = Literal["chars", "words"]
UNITS: tuple[Unit, ...] = ("chars", "words")

_NOT_ALNUM = re.compile(r"[\W_]+")
_WORD = re.compile(r"[^\W_]+")
_ALNUM_CHAR = re.compile(r"[^\W_]")
_BASE = 0x9E3779B97F4A7C15  # odd, so multiplication by it is a bijection modulo 2**64
_MIX = np.uint64(0xBF58476D1CE4E5B9)


def normalized_chars(text: str) -> str:
    """The letters and digits of ``text``, lowercased, nothing else (spaces removed)."""
    return _NOT_ALNUM.sub("", text.lower())


def normalized_words(text: str) -> list[str]:
    """The words of ``text``: lowercased runs of letters and digits."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Units:
    """A text's units with, for each, the span of the original text it came from (for
    showing an overlap as the user wrote it)."""

    items: list[str]
    starts: list[int]
    ends: list[int]

    def __len__(self) -> int:
        return len(self.items)

    def source_span(self, first: int, last: int) -> tuple[int, int]:
        """Original character range of units ``first`` .. ``last`` (inclusive)."""
        return self.starts[first], self.ends[last]


def units_with_spans(text: str, unit: Unit) -> Units:
    """The units of one (evaluation) text with their original positions. Per character, so
    it agrees with ``normalized_chars``/``normalized_words`` on the same text."""
    items: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    if unit == "words":
        for match in _WORD.finditer(text.lower()):
            items.append(match.group())
            starts.append(match.start())
            ends.append(match.end())
        if len(text.lower()) != len(text):  # lowercasing changed lengths: positions unreliable
            starts = [min(s, len(text)) for s in starts]
            ends = [min(e, len(text)) for e in ends]
        return Units(items, starts, ends)
    lowered = text.lower()
    if len(lowered) == len(text):  # the usual case: one lowercase character per character
        starts = [m.start() for m in _ALNUM_CHAR.finditer(lowered)]
        return Units([lowered[i] for i in starts], starts, [i + 1 for i in starts])
    for index, char in enumerate(text):
        for low in char.lower():
            if low.isalnum():
                items.append(low)
                starts.append(index)
                ends.append(index + 1)
    return Units(items, starts, ends)


def unit_codes(items: list[str], unit: Unit) -> np.ndarray:
    """One uint64 per unit: the code point of a character, a word's hash (``_mix_words``:
    the same in every process)."""
    if unit == "chars":
        return codes_of_text("".join(items))
    return _mix_words(codes_of_text(" ".join(items)))[0]


def codes_of_text(text: str) -> np.ndarray:
    """The code points of ``text`` as uint64 (a lone surrogate, which real text holds, too)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)


def _mixed(codes: np.ndarray) -> np.ndarray:
    """Spreads small codes (code points) over 64 bits before the polynomial hash."""
    with np.errstate(over="ignore"):
        mixed = (codes + np.uint64(1)) * _MIX
        return mixed ^ (mixed >> np.uint64(31))


def window_hashes(codes: np.ndarray, n: int) -> np.ndarray:
    """The hash of every window of ``n`` consecutive codes: ``len(codes) - n + 1`` values
    (none when the array is shorter). ``h(w) = sum_j mix(w_j) * B**(n-1-j) mod 2**64``."""
    count = len(codes) - n + 1
    if n < 1:
        raise ValueError(f"window length must be at least 1, not {n}")
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    block = _mixed(codes)  # windows of ``size`` codes, one per start position
    size = 1
    result: np.ndarray | None = None
    length = 0  # units covered by ``result``
    remaining = n
    with np.errstate(over="ignore"):
        while True:
            if remaining & 1:
                if result is None:
                    result, length = block, size
                else:
                    # result covers [i, i+length); append block's [i+length, i+length+size)
                    shift = np.uint64(pow(_BASE, size, 1 << 64))
                    width = len(codes) - (length + size) + 1
                    result = result[:width] * shift + block[length : length + width]
                    length += size
            remaining >>= 1
            if not remaining:
                break
            shift = np.uint64(pow(_BASE, size, 1 << 64))
            width = len(codes) - 2 * size + 1
            block = block[:width] * shift + block[size : size + width]
            size *= 2
    assert result is not None and length == n
    return result[:count]


def distinct_per_window(codes: np.ndarray, n: int) -> np.ndarray:
    """How many distinct codes each window of ``n`` holds (``len(codes) - n + 1`` values):
    a position counts when the previous occurrence of its code lies before the window."""
    count = len(codes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    previous = np.full(len(codes), -1, dtype=np.int64)
    same = codes[order][1:] == codes[order][:-1]
    previous[order[1:][same]] = order[:-1][same]
    starts = np.arange(count)
    distinct = np.zeros(count, dtype=np.int64)
    for j in range(n):
        distinct += previous[j : j + count] < starts
    return distinct


def informative(codes: np.ndarray, n: int) -> np.ndarray:
    """Windows with at least ``n // 2`` distinct units: a run of laughter (ㅋㅋㅋ...) or a
    repeated word is in many texts and proves no leak."""
    return distinct_per_window(codes, n) >= max(1, n // 2)


SEPARATOR = "\x00"  # between rows of a batch: neither a letter nor a digit


@dataclass(frozen=True)
class Batch:
    """Many rows normalized in a few calls over one joined string (per-row Python calls were
    most of the scan's time): the units of every row in one array, with the row of each.

    ``rows[i]`` is the row of unit ``i``; ``keys[r]`` is row ``r`` normalized (characters: the
    letters and digits; words: the words joined by single spaces), the key of a whole row.
    """

    unit: Unit
    codes: np.ndarray
    rows: np.ndarray
    keys: list[str]
    first: np.ndarray  # index of each row's first unit (rows without units: where they'd be)

    def window_rows(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of every window of ``n`` units, and the row of each (-1: it crosses rows)."""
        found = window_hashes(self.codes, n)
        count = len(found)
        same = self.rows[:count] == self.rows[n - 1 : n - 1 + count]
        return found, np.where(same, self.rows[:count], -1)

    def units_of(self, row: int) -> str | list[str]:
        key = self.keys[row]
        return key if self.unit == "chars" else key.split()


def _joined(texts: list[str]) -> str:
    """The rows lowercased and joined by the separator (a separator inside a row is removed)."""
    joined = SEPARATOR.join(texts)
    if joined.count(SEPARATOR) != max(0, len(texts) - 1):
        joined = SEPARATOR.join(t.replace(SEPARATOR, "") for t in texts)
    return joined.lower()


def _mix_words(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(one hash per word, the index of each word's first character) of ``codes``: words are
    runs of codes other than space (32) and the separator (0). A word's hash sums each of its
    characters mixed with its place in the word, so no per-word Python call is needed."""
    in_word = (codes != 32) & (codes != 0)
    if not in_word.any():
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    previous = np.concatenate(([False], in_word[:-1]))
    starts = np.flatnonzero(in_word & ~previous)
    index = np.arange(len(codes))
    word_start = np.maximum.accumulate(np.where(in_word & ~previous, index, 0))
    place = (index - word_start).astype(np.uint64)
    with np.errstate(over="ignore"):
        values = _mixed(codes ^ (place << np.uint64(32)))
    values = np.where(in_word, values, np.uint64(0))
    # Sum each word's characters: segments start at every word start; the non-word codes
    # between words were set to 0 and add nothing.
    return np.add.reduceat(values, starts).astype(np.uint64), starts


@cache
def _alnum_table() -> np.ndarray:
    """``str.isalnum`` of every code point (what ``\\w`` matches, less the underscore)."""
    return np.fromiter((chr(c).isalnum() for c in range(0x110000)), dtype=bool, count=0x110000)


def _text_of(codes: np.ndarray) -> str:
    return codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


def _single_spaces(codes: np.ndarray) -> np.ndarray:
    """``codes`` with spaces (32) kept only between two word characters of one row."""
    index = np.arange(len(codes))
    letter = (codes != 32) & (codes != 0)
    last_letter = np.maximum.accumulate(np.where(codes != 32, index, -1))
    previous = np.concatenate(([-1], last_letter[:-1]))
    following = np.minimum.accumulate(np.where(codes != 32, index, len(codes))[::-1])[::-1]
    before_ok = (previous >= 0) & letter[np.maximum(previous, 0)]
    after_ok = (following < len(codes)) & letter[np.minimum(following, len(codes) - 1)]
    keep = (codes != 32) | (before_ok & after_ok & (np.concatenate(([0], codes[:-1])) != 32))
    return codes[keep]


def batch(texts: list[str], unit: Unit) -> Batch:
    """``texts`` as one ``Batch`` of ``unit`` (each row as ``normalized_chars`` or
    ``normalized_words`` gives it), in numpy: a code point table, not a regex per row."""
    codes = codes_of_text(_joined(texts))
    alnum = _alnum_table()[codes.astype(np.int64)]
    if unit == "chars":
        kept = codes[alnum | (codes == 0)]
        keys = _text_of(kept).split(SEPARATOR)
        is_unit = kept != 0
        row_of = np.cumsum(~is_unit)  # separators before each position
        units, rows = kept[is_unit], row_of[is_unit]
    else:
        spaced = _single_spaces(np.where(alnum | (codes == 0), codes, np.uint64(32)))
        keys = _text_of(spaced).split(SEPARATOR)
        units, starts = _mix_words(spaced)
        rows = np.cumsum(spaced == 0)[starts] if len(starts) else starts
    rows = rows.astype(np.int64)
    first = np.searchsorted(rows, np.arange(len(texts)), side="left")
    return Batch(unit, units, rows, keys, first)
