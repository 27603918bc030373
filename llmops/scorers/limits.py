"""Limits on the size, latency and cost of an output."""

from __future__ import annotations

from .base import CannotScore, Case, ConfigField, ConfigProblem, Measure, ScorerInfo

NOT_FOR_LIMITS = "a limit already states its bounds; change min/max instead of negating it"


def build_word_count(config: dict) -> Measure:
    low, high = config.get("min"), config.get("max")
    if low is None and high is None:
        raise ConfigProblem("min", "set min, max or both")
    if low is not None and high is not None and low > high:
        raise ConfigProblem("max", f"must be at least min ({low})")

    def measure(case: Case) -> tuple[float, str, float | None]:
        count = len(case.output.split())
        if low is not None and count < low:
            return 0.0, f"{count} words, fewer than {low}", float(count)
        if high is not None and count > high:
            return 0.0, f"{count} words, more than {high}", float(count)
        return 1.0, f"{count} words", float(count)

    return measure


def build_latency(config: dict) -> Measure:
    limit = config["max_ms"]

    def measure(case: Case) -> tuple[float, str, float | None]:
        if case.latency_ms is None:
            raise CannotScore("no latency recorded for this case")
        took = float(case.latency_ms)
        if took <= limit:
            return 1.0, f"{took:.0f} ms (limit {limit:g} ms)", took
        return 0.0, f"{took:.0f} ms, over the limit of {limit:g} ms", took

    return measure


def build_cost(config: dict) -> Measure:
    limit = config["max_usd"]

    def measure(case: Case) -> tuple[float, str, float | None]:
        if case.cost is None:
            raise CannotScore("no cost recorded for this case")
        cost = float(case.cost)
        if cost <= limit:
            return 1.0, f"${cost:.6f} (limit ${limit:g})", cost
        return 0.0, f"${cost:.6f}, over the limit of ${limit:g}", cost

    return measure


SCORERS = [
    ScorerInfo(
        name="word-count",
        label="Word count",
        description="The number of words (runs of non-whitespace) is within [min, max]; either bound may be left "
        "out. The value is the word count.",
        passing="the word count is within the bounds",
        config_fields=(
            ConfigField("min", "integer", "Fewest words allowed.", minimum=0),
            ConfigField("max", "integer", "Most words allowed.", minimum=0),
        ),
        supports_not=False,
        not_reason=NOT_FOR_LIMITS,
        build=build_word_count,
    ),
    ScorerInfo(
        name="latency",
        label="Latency",
        description="The call took at most max_ms milliseconds (case.latency_ms). The value is the latency; a case "
        "without a recorded latency fails.",
        passing="the latency is at most max_ms",
        config_fields=(ConfigField("max_ms", "number", "Slowest latency allowed, in milliseconds.", True, minimum=0),),
        supports_not=False,
        not_reason=NOT_FOR_LIMITS,
        build=build_latency,
    ),
    ScorerInfo(
        name="cost",
        label="Cost",
        description="The call cost at most max_usd US dollars (case.cost). The value is the cost; a case without a "
        "recorded cost fails.",
        passing="the cost is at most max_usd",
        config_fields=(ConfigField("max_usd", "number", "Highest cost allowed, in US dollars.", True, minimum=0),),
        supports_not=False,
        not_reason=NOT_FOR_LIMITS,
        build=build_cost,
    ),
]
