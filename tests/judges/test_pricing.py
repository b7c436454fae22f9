"""What a judgment costs: listed prices, prices given on the command line, and unknown ones."""

from __future__ import annotations

import pytest

from judges.pricing import KNOWN, Price, price_for


def test_cost_is_tokens_times_the_price_per_million() -> None:
    price = Price(10.0, 30.0)
    assert price.cost(1_000_000, 0) == pytest.approx(10.0)
    assert price.cost(200, 40) == pytest.approx((200 * 10 + 40 * 30) / 1e6)


def test_zero_tokens_cost_zero_and_unknown_tokens_an_unknown_cost() -> None:
    price = Price(2.5, 10.0)
    assert price.cost(0, 0) == 0.0
    assert price.cost(None, 20) is None and price.cost(100, None) is None


def test_a_listed_model_takes_its_list_price() -> None:
    assert price_for("gpt-4o", None, None) == Price(*KNOWN["gpt-4o"])
    assert price_for("gpt-4-1106-preview", None, None) == Price(10.0, 30.0)  # LogicKor's judge


def test_given_prices_win_over_the_list() -> None:
    assert price_for("gpt-4o", 1.0, 2.0) == Price(1.0, 2.0)
    assert price_for("gpt-4o", 1.0, None) == Price(1.0, KNOWN["gpt-4o"][1])
    assert price_for("gpt-4o", None, 2.0) == Price(KNOWN["gpt-4o"][0], 2.0)


def test_an_unlisted_model_costs_what_is_given_or_is_unknown() -> None:
    assert price_for("scripted-judge", 3.0, 4.0) == Price(3.0, 4.0)
    assert price_for("scripted-judge", None, None) is None  # unknown, never 0
    assert price_for("scripted-judge", 3.0, None) is None  # half a price is no price
    assert price_for("scripted-judge", None, 4.0) is None


def test_free_is_a_price_not_an_unknown() -> None:
    price = price_for("local-judge", 0.0, 0.0)
    assert price == Price(0.0, 0.0) and price.cost(500, 50) == 0.0
