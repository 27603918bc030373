"""What a span's stored row adds to what the sender said: its cost from the price table, its prompt version.

Each web process keeps what it read for REFRESH_SECONDS: the price table and the providers' models (a
changed price applies to spans arriving after that) and the prompt versions it did not find (one created
meanwhile is linked from then on). Versions found are asked for with each export: a prompt may be
deleted and made again, and a stale id would break the trace's foreign key.

Cost (per million tokens) = uncached input x input price + cache read x cache read price + cache
write x cache write price + output x output price, where an empty cache price is the input price.
Under both conventions (OpenTelemetry GenAI, OpenInference) the input count includes the cached
tokens, read and written, and the output count includes the reasoning tokens, so uncached input =
input - cache read - cache write and no cached token is charged twice; cache counts larger than the
input count mean the sender counted them apart (Anthropic's own `usage`), and then the whole input
count is uncached (`llmops.models.evaluation.Prices.cost`). A sender that knows the exact cost sends
it (`gen_ai.usage.cost`, `llm.cost.total`) and that is kept instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from ..models import LLMModel, PriceEntry, PromptVersion
from ..models.evaluation import Prices

REFRESH_SECONDS = 10.0


class PriceBook:
    """Prices per million tokens by model name: the price table (exact names, then the longest `prefix*`),
    then the providers' models."""

    def __init__(self) -> None:
        self._exact: dict[str, Prices] = {}
        self._prefixes: list[tuple[str, Prices]] = []
        self._models: dict[str, Prices] = {}
        columns = ("input_per_million", "output_per_million", "cache_read_per_million", "cache_write_per_million")
        for name, *values in PriceEntry.objects.values_list("model_name", *columns):
            price = Prices.from_values(*values)
            if name.endswith("*"):
                self._prefixes.append((name[:-1], price))
            else:
                self._exact[name] = price
        self._prefixes.sort(key=lambda item: -len(item[0]))
        for name, *values in LLMModel.objects.values_list("name", *columns).order_by("id"):
            if any(values) and name not in self._models:
                self._models[name] = Prices.from_values(*values)

    def price(self, names: Iterable[str]) -> Prices | None:
        """The prices of the first of `names` (response model, then request model) that has them."""
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

    def cost(
        self,
        names: Iterable[str],
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float | None:
        """USD for the tokens, or None when no price is known or no tokens were reported."""
        if input_tokens is None and output_tokens is None:
            return None
        price = self.price(names)
        if price is None:
            return None
        return round(price.cost(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens), 8)


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
