"""What a judgment costs: tokens times a price per million tokens.

Prices come from ``--price-in`` / ``--price-out`` or from this small table of list prices
(USD per 1M tokens, OpenAI's published prices; check them before relying on a figure). A
judge model in neither has an unknown cost: ``None``, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass

# model -> (input, output) USD per 1M tokens.
KNOWN: dict[str, tuple[float, float]] = {
    "gpt-4-1106-preview": (10.0, 30.0),  # LogicKor's default judge
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
}


@dataclass(frozen=True)
class Price:
    per_million_in: float
    per_million_out: float

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        if prompt_tokens is None or completion_tokens is None:
            return None
        return (
            prompt_tokens * self.per_million_in + completion_tokens * self.per_million_out
        ) / 1_000_000


def price_for(model: str, price_in: float | None, price_out: float | None) -> Price | None:
    """The price to charge: both options given win, else the table, else unknown (None)."""
    if price_in is not None and price_out is not None:
        return Price(price_in, price_out)
    if model in KNOWN:
        known_in, known_out = KNOWN[model]
        return Price(
            price_in if price_in is not None else known_in,
            price_out if price_out is not None else known_out,
        )
    return None
