"""What a judge's or grounder's model call costs, and the cap a job's calls share.

Prices come from genai-prices' maintained table; `LIBRA_MODEL_PRICE` prices a model it lacks.
A model with no known price is refused rather than guessed, since a guess would make `--max-cost`
wrong without saying so.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

PRICE_ENV = "LIBRA_MODEL_PRICE"  # "IN,OUT" USD per million tokens, for a model the price table lacks


class UnknownModelPrice(LookupError):
    """No price is known for the model, so a budget (`--max-cost`) cannot be kept."""


def _price_override() -> tuple[float, float] | None:
    raw = os.environ.get(PRICE_ENV)
    if not raw:
        return None
    try:
        pin, pout = (float(x) for x in raw.split(","))
    except ValueError:
        raise UnknownModelPrice(f"{PRICE_ENV}={raw!r}: give input and output USD per million tokens, "
                                "e.g. 3,15") from None
    return pin, pout


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @classmethod
    def of(cls, u: Any) -> Usage:
        g = (lambda k: getattr(u, k, None) or 0) if not isinstance(u, dict) else (lambda k: u.get(k) or 0)
        return cls(g("input_tokens"), g("output_tokens"), g("cache_creation_input_tokens"),
                   g("cache_read_input_tokens"))

    def __add__(self, o: Usage) -> Usage:
        return Usage(self.input_tokens + o.input_tokens, self.output_tokens + o.output_tokens,
                     self.cache_creation_input_tokens + o.cache_creation_input_tokens,
                     self.cache_read_input_tokens + o.cache_read_input_tokens)


def cost_usd(model: str, u: Usage, batch: bool = False) -> float:
    """What the call cost, from genai-prices' maintained table (cache reads and writes priced as
    the provider prices them); LIBRA_MODEL_PRICE for a model the table lacks, else UnknownModelPrice.

    A guess would make a budget wrong without saying so, so an unknown model is refused.
    """
    override = _price_override()
    if override is not None:
        pin, pout = override
        c = (u.input_tokens * pin + u.cache_creation_input_tokens * pin * 1.25
             + u.cache_read_input_tokens * pin * 0.1 + u.output_tokens * pout) / 1e6
    else:
        import genai_prices

        usage = genai_prices.Usage(  # its input_tokens count cached tokens too; Anthropic's do not
            input_tokens=u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens,
            cache_write_tokens=u.cache_creation_input_tokens, cache_read_tokens=u.cache_read_input_tokens,
            output_tokens=u.output_tokens)
        try:
            c = float(genai_prices.calc_price(usage, model_ref=model, provider_id="anthropic").total_price)
        except LookupError:
            raise UnknownModelPrice(
                f"no price is known for model {model!r} (genai-prices {genai_prices.__version__}); set "
                f"{PRICE_ENV}=IN,OUT (USD per million input and output tokens) so costs and --max-cost "
                "hold, or upgrade genai-prices") from None
    return c * (0.5 if batch else 1.0)


class BudgetExceeded(RuntimeError):
    pass


class Budget:
    """A spending cap shared by a job's calls; reservations keep concurrent calls under it."""

    def __init__(self, max_cost: float | None = None, spent: float = 0.0):
        self.max_cost = max_cost
        self.spent = spent
        self._reserved = 0.0
        self._n = 0
        self._mean = 0.0
        self._lock = threading.Lock()
        self.exhausted = threading.Event()  # once set, calls in flight finish and no new ones start

    def reserve(self, estimate: float) -> float:
        """Hold back money for one call; returns the amount held, to pass to `settle`.

        The first calls hold a pessimistic estimate; once costs are observed, twice the
        mean observed cost, so a job can use its budget rather than stop far short of it.
        """
        with self._lock:
            if self._n >= 3:
                estimate = min(estimate, 2 * self._mean)
            if self.max_cost is not None and self.spent + self._reserved + estimate > self.max_cost:
                self.exhausted.set()
                raise BudgetExceeded(
                    f"budget ${self.max_cost:.4f} reached (spent ${self.spent:.4f}); stopping cleanly")
            self._reserved += estimate
            return estimate

    def settle(self, held: float, actual: float) -> None:
        with self._lock:
            self._reserved = max(0.0, self._reserved - held)
            self.spent += actual
            if actual > 0:
                self._n += 1
                self._mean += (actual - self._mean) / self._n
