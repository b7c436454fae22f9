"""Rounding and truncation on exact values, where binary floats would go wrong."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from reports.rounding import exact, fmt, quantize


def test_truncation_of_an_exact_value_that_floats_miss() -> None:
    # Judge scores 0.2 and 0.7 average to 0.45; in floats to 0.44999999999999996 (-> 0.44).
    as_float = (0.2 + 0.7) / 2
    assert as_float < 0.45
    assert quantize((exact(0.2) + exact(0.7)) / 2, 2, "truncate") == Decimal("0.45")
    # 0 and 2.3 average to 1.15, which prints as 1.15 but times 100 is 114.99999999999999.
    assert int((0.0 + 2.3) / 2 * 100) == 114
    assert quantize((exact(0.0) + exact(2.3)) / 2, 2, "truncate") == Decimal("1.15")


def test_floats_are_taken_at_the_decimal_they_print_as() -> None:
    assert int(0.29 * 100) == 28  # the trap
    assert quantize(0.29, 2, "truncate") == Decimal("0.29")
    assert quantize(0.55, 4, "round") == Decimal("0.5500")
    assert exact(2.3) == Fraction(23, 10)


@pytest.mark.parametrize(
    ("value", "rounded", "truncated"),
    [
        (Fraction(125, 1000), "0.12", "0.12"),  # exact tie: to even, as f"{0.125:.2f}" does
        (Fraction(135, 1000), "0.14", "0.13"),  # exact tie: to even (up this time)
        (Fraction(6799, 1000), "6.80", "6.79"),
        (Fraction(143, 21), "6.81", "6.80"),  # 6.8095...
        (Fraction(-1, 300), "0.00", "0.00"),
        (Fraction(-1999, 1000), "-2.00", "-1.99"),  # truncation goes toward zero
        (10, "10.00", "10.00"),
    ],
)
def test_round_half_even_and_truncate(value, rounded: str, truncated: str) -> None:
    assert fmt(quantize(value, 2, "round"), 2) == rounded
    assert fmt(quantize(value, 2, "truncate"), 2) == truncated


def test_round_agrees_with_pythons_float_formatting_used_by_logickor() -> None:
    """LogicKor's score.py prints f"{mean:.2f}"; on exact ties and elsewhere we agree."""
    for numerator in range(0, 1001):
        value = Fraction(numerator, 84)  # every possible overall of 42 two-turn integer scores
        assert fmt(quantize(value, 2, "round"), 2) == f"{float(value):.2f}"
    for value in (0.125, 0.375, 2.5, 0.005):
        assert fmt(quantize(Fraction(value), 2, "round"), 2) == f"{value:.2f}"


def test_missing_and_bad_values() -> None:
    assert fmt(None, 2) == "—"
    with pytest.raises(ValueError):
        quantize(float("nan"), 2, "round")
    with pytest.raises(ValueError):
        quantize(1.0, 2, "ceil")  # type: ignore[arg-type]
