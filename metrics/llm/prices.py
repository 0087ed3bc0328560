"""What an agent's model calls cost, from genai-prices' maintained table (any provider).

A run's cost in the app is priced per model here and summed in SQL; a model the table does not
know gets no price (a blank cell), never a guess.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=512)
def per_million(model: str) -> tuple[float, float] | None:
    """USD per million input and output tokens at the base tier, or None for an unknown model."""
    import genai_prices

    try:
        # priced on 1,000 tokens: a million in one request would be billed at a long-context tier
        pin = genai_prices.calc_price(genai_prices.Usage(input_tokens=1000), model_ref=model).total_price
        pout = genai_prices.calc_price(genai_prices.Usage(output_tokens=1000), model_ref=model).total_price
    except LookupError:
        return None
    return float(pin) * 1000, float(pout) * 1000


def price_table(models: list[str]) -> list[tuple[str, float, float]]:
    """(model, input USD/M, output USD/M) for each model genai-prices knows."""
    out = []
    for m in models:
        p = per_million(m) if m else None
        if p is not None:
            out.append((m, *p))
    return out
