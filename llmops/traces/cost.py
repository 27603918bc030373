"""What a span's stored row adds to what the sender said: its cost from the price table, its prompt version.

Each web process keeps what it read for REFRESH_SECONDS: the price table and the providers' models (a
changed price applies to spans arriving after that) and the prompt versions it did not find (one created
meanwhile is linked from then on). Versions found are asked for with each export: a prompt may be
deleted and made again, and a stale id would break the trace's foreign key.

Cost = input tokens x input price + output tokens x output price (per million tokens). Under both
conventions the input count includes cached tokens and the output count includes reasoning tokens,
so they are priced with them: the price table has no separate rate for cached input; a sender that
knows the exact cost sends it (`gen_ai.usage.cost`, `llm.cost.total`) and that is kept instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from ..models import LLMModel, PriceEntry, PromptVersion

REFRESH_SECONDS = 10.0


class PriceBook:
    """Prices per million tokens by model name: the price table (exact names, then the longest `prefix*`),
    then the providers' models."""

    def __init__(self) -> None:
        self._exact: dict[str, tuple[float, float]] = {}
        self._prefixes: list[tuple[str, tuple[float, float]]] = []
        self._models: dict[str, tuple[float, float]] = {}
        rows = PriceEntry.objects.values_list("model_name", "input_per_million", "output_per_million")
        for name, price_in, price_out in rows:
            price = (float(price_in), float(price_out))
            if name.endswith("*"):
                self._prefixes.append((name[:-1], price))
            else:
                self._exact[name] = price
        self._prefixes.sort(key=lambda item: -len(item[0]))
        rows = LLMModel.objects.values_list("name", "input_per_million", "output_per_million").order_by("id")
        for name, price_in, price_out in rows:
            if (price_in or price_out) and name not in self._models:
                self._models[name] = (float(price_in), float(price_out))

    def price(self, names: Iterable[str]) -> tuple[float, float] | None:
        """The price of the first of `names` (response model, then request model) that has one."""
        names = [name for name in names if name]
        for name in names:
            if name in self._exact:
                return self._exact[name]
        for name in names:
            for prefix, price in self._prefixes:
                if name.startswith(prefix):
                    return price
        for name in names:
            if name in self._models:
                return self._models[name]
        return None

    def cost(self, names: Iterable[str], input_tokens: int | None, output_tokens: int | None) -> float | None:
        """USD for the tokens, or None when no price is known or no tokens were reported."""
        if input_tokens is None and output_tokens is None:
            return None
        price = self.price(names)
        if price is None:
            return None
        return round(((input_tokens or 0) * price[0] + (output_tokens or 0) * price[1]) / 1_000_000, 8)


_prices: tuple[float, PriceBook] | None = None


def current_prices() -> PriceBook:
    """This process's price book, read again when older than REFRESH_SECONDS."""
    global _prices
    now = time.monotonic()
    if _prices is None or now - _prices[0] >= REFRESH_SECONDS:
        _prices = (now, PriceBook())
    return _prices[1]


def forget_prices() -> None:
    global _prices
    _prices = None


class PromptVersions:
    """PromptVersion ids by (prompt name, version number); a miss is not asked again for REFRESH_SECONDS."""

    def __init__(self) -> None:
        self._missing: dict[tuple[str, int], float] = {}

    def resolve(self, pairs: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The ids of those of `pairs` that exist (one query, unless all of them were missing just now)."""
        now = time.monotonic()
        wanted = [pair for pair in pairs if now - self._missing.get(pair, -REFRESH_SECONDS) >= REFRESH_SECONDS]
        found: dict[tuple[str, int], int] = {}
        if wanted:
            names = {name for name, _ in wanted}
            versions = {version for _, version in wanted}
            rows = PromptVersion.objects.filter(prompt__name__in=names, version__in=versions)
            for pk, name, version in rows.values_list("pk", "prompt__name", "version"):
                if (name, version) in pairs:
                    found[(name, version)] = pk
            self._missing.update({pair: now for pair in wanted if pair not in found})
        return found

    def forget(self) -> None:
        self._missing.clear()


PROMPT_VERSIONS = PromptVersions()
