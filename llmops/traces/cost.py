"""What a span's stored row adds to what the sender said: its cost from the price table, its prompt version.

The price table and the providers' models are small: they are read once per export that has
generations, so a changed price applies from the next export on. Prompt versions never change: each
web process keeps those it found (a missing one is asked for again, it may be created meanwhile).

Cost = input tokens x input price + output tokens x output price (per million tokens). Under both
conventions the input count includes cached tokens and the output count includes reasoning tokens,
so they are priced with them: the price table has no separate rate for cached input; a sender that
knows the exact cost sends it (`gen_ai.usage.cost`, `llm.cost.total`) and that is kept instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..models import LLMModel, PriceEntry, PromptVersion


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


class PromptVersions:
    """PromptVersion ids by (prompt name, version number), kept once found."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, int], int] = {}

    def resolve(self, pairs: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The ids of those of `pairs` that exist (one query for those not known yet)."""
        wanted = [pair for pair in pairs if pair not in self._found]
        if wanted:
            names = {name for name, _ in wanted}
            versions = {version for _, version in wanted}
            rows = PromptVersion.objects.filter(prompt__name__in=names, version__in=versions)
            for pk, name, version in rows.values_list("pk", "prompt__name", "version"):
                self._found[(name, version)] = pk
        return {pair: self._found[pair] for pair in pairs if pair in self._found}

    def forget(self) -> None:
        self._found.clear()


PROMPT_VERSIONS = PromptVersions()
