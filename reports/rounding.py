"""Rounding and truncation of published numbers, done on exact values.

Binary floats make both go wrong at the edges: the mean of judge scores 0.2 and 0.7 is 0.45, but
in floats it is 0.44999999999999996, which truncates to 0.44. So every value is made exact first:

- a ``Fraction`` (LogicKor means, computed exactly from the judges' scores) is used as is;
- a float (lm-eval's metrics, read from JSON) is taken at its shortest repr, the decimal that
  results.json shows, so 0.29 truncates to 0.29 and not to 0.28 (its binary value is
  0.28999999999999998).

``round`` is round-half-to-even on that exact value. That is the convention of LogicKor's
``score.py``, which prints ``f"{mean:.2f}"`` (Python's float formatting, like ``round()``,
rounds the exact value and sends exact ties to the even digit: ``f"{0.125:.2f}" == "0.12"``).
``truncate`` drops the digits beyond the last place (toward zero), as LogicKor's website shows.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Literal

Rounding = Literal["round", "truncate"]
LOGICKOR_PLACES = 2  # LogicKor publishes two decimals
LMEVAL_PLACES = 4  # model cards print accuracies and F1 with four


def exact(value: Fraction | float | int | Decimal) -> Fraction:
    """The exact number a value stands for (see the module docstring for floats)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        return Fraction(Decimal(repr(value)))
    return Fraction(value)


def quantize(value: Fraction | float | int | Decimal, places: int, mode: Rounding) -> Decimal:
    """``value`` to ``places`` decimals, rounded half-to-even or truncated toward zero."""
    scaled = exact(value) * 10**places
    if mode == "truncate":
        digits = math.trunc(scaled)
    elif mode == "round":
        digits = round(scaled)  # Fraction.__round__: exact, ties to even
    else:
        raise ValueError(f"rounding {mode!r}: expected 'round' or 'truncate'")
    return Decimal(digits).scaleb(-places)


def fmt(value: Decimal | None, places: int, missing: str = "—") -> str:
    """A quantized value with exactly ``places`` decimals, or the missing-cell mark."""
    if value is None:
        return missing
    return f"{value:.{places}f}"
