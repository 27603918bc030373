"""LLMOps scorers: 10,000 stored outputs scored in-process, as an evaluation run's worker does.

Two scorer lists: eight cheap checks a typical run carries, and every scorer that needs no
judge model (adds json-schema, BLEU, chrF, ROUGE-L, PII and toxicity). p50/p95 are per case
(one case scored by the whole list); per_second counts scorer results (cases/s x scorers).
No database: the scorers are pure Python.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Iterator

from llmops.scorers import Case, parse_specs, score_case

CASES = 10_000

CHEAP = [
    {"type": "contains", "config": {"value": "{{ city }}"}},
    {"type": "not-icontains", "config": {"value": "as an ai"}},
    {"type": "contains-any", "config": {"values": ["capital", "city", "country"]}},
    {"type": "regex", "config": {"pattern": r"\b[A-Z][a-z]+ is\b"}},
    {"type": "not-refusal"},
    {"type": "word-count", "config": {"min": 5, "max": 200}},
    {"type": "latency", "config": {"max_ms": 2000}},
    {"type": "levenshtein"},
]
FULL = [
    *CHEAP,
    {"type": "cost", "config": {"max_usd": 0.01}},
    {"type": "equals"},
    {"type": "starts-with", "config": {"value": "The"}},
    {"type": "is-json"},
    {"type": "json-schema", "config": {"schema": {"type": "object", "required": ["answer"]}}},
    {"type": "bleu"},
    {"type": "chrf"},
    {"type": "rouge-l"},
    {"type": "pii"},
    {"type": "toxicity"},
]

_FILLER = (
    "the capital of is a city in with about million people river old town museum known for its food art history "
    "many visitors each year and it has been centre trade since century government located north south"
)
_CITIES = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo")]


def make_cases(count: int = CASES, seed: int = 7) -> list[Case]:
    """Outputs like a QA dataset's: short answers, prose of 20-150 words, some refusals, JSON and PII."""
    rng = random.Random(seed)
    words = _FILLER.split()
    cases = []
    for i in range(count):
        country, city = rng.choice(_CITIES)
        expected = f"{city} is the capital of {country}."
        kind = rng.random()
        if kind < 0.05:
            output = "I'm sorry, but I can't help with that request."
        elif kind < 0.15:
            output = json.dumps({"answer": city, "confidence": round(rng.random(), 2)})
        elif kind < 0.55:
            output = rng.choice([expected, f"The capital of {country} is {city}.", f"{city}, of course."])
        else:
            filler = " ".join(rng.choice(words) for _ in range(rng.randint(20, 150)))
            output = f"{city} is the capital of {country}. {filler.capitalize()}."
            if kind > 0.97:
                output += f" Contact jane.doe{i}@example.com or (415) 555-{rng.randint(1000, 9999)}."
        cases.append(
            Case(
                output=output,
                expected=expected,
                variables={"city": city, "country": country},
                latency_ms=rng.uniform(200, 2500),
                cost=rng.uniform(0.0001, 0.02),
            )
        )
    return cases


def measure(specs_data: list[dict], cases: list[Case]) -> dict:
    specs = parse_specs(specs_data)
    for case in cases[:200]:  # warm-up: builds and caches, loads the toxicity model
        score_case(specs, case)
    timings = []
    passed = 0
    started = time.perf_counter()
    for case in cases:
        start = time.perf_counter()
        ok, _score, _results = score_case(specs, case)
        timings.append((time.perf_counter() - start) * 1000)
        passed += ok
    elapsed = time.perf_counter() - started
    timings.sort()
    cases_per_second = len(cases) / elapsed
    return {
        "p50_ms": statistics.median(timings),
        "p95_ms": timings[int(len(timings) * 0.95) - 1],
        "per_second": cases_per_second * len(specs),
        "cases_per_second": cases_per_second,
        "scorers": len(specs),
        "cases": len(cases),
        "passed_cases": passed,
        "queries": 0,
    }


def run() -> Iterator[tuple[str, dict]]:
    cases = make_cases()
    cheap = measure(CHEAP, cases)
    cheap["notes"] = (
        f"{CASES} outputs x {len(CHEAP)} cheap scorers: {cheap['cases_per_second']:.0f} cases/s; per_second = "
        "scorer results/s"
    )
    yield "llmops_scorers", cheap
    full = measure(FULL, cases)
    full["notes"] = (
        f"{CASES} outputs x all {len(FULL)} non-judge scorers: {full['cases_per_second']:.0f} cases/s; per_second "
        "= scorer results/s"
    )
    yield "llmops_scorers_full", full
