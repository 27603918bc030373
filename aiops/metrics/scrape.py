"""Scraping targets, as Prometheus does: fetch, parse, label, plus `up` and the scrape's own series.

The async part only fetches (many targets at once); parsing and labelling run after, and writing
is the caller's (`aiops.services.scrape_targets`). A scrape that fails (connection, timeout, HTTP status, a
body that does not parse, too many samples) stores no sample of the target's own, only `up` = 0
and the scrape series, so the series already stored are kept as they were.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from . import exposition, http
from .store import SeriesKey

SCRAPE_SERIES = ("up", "scrape_duration_seconds", "scrape_samples_scraped")


@dataclass
class TargetSpec:
    """What a scrape needs, read from the ScrapeTarget row before going async."""

    id: int
    name: str
    url: str
    timeout: float
    headers: dict[str, str]
    labels: dict[str, str]


@dataclass
class ScrapeOutcome:
    target_id: int
    started: float
    duration: float = 0.0
    ok: bool = False
    error: str = ""
    scraped: int = 0
    samples: list[tuple[SeriesKey, float, float]] = field(default_factory=list)
    kinds: dict[SeriesKey, str] = field(default_factory=dict)
    preview: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def target_labels(name: str, url: str, labels: dict[str, str]) -> dict[str, str]:
    """`job` and `instance` (host:port, the scheme's port when the URL has none), then the target's own."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    instance = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {"job": name, "instance": instance, **labels}


async def _fetch_all(specs: list[TargetSpec]) -> list[tuple[TargetSpec, float, http.Fetched]]:
    async with http.client(concurrency=max(1, min(len(specs), 200))) as session:

        async def one(spec: TargetSpec) -> tuple[TargetSpec, float, http.Fetched]:
            started = time.time()
            fetched = await http.fetch(
                session,
                spec.url,
                headers={"Accept": exposition.ACCEPT, **spec.headers},
                timeout=spec.timeout,
                max_bytes=settings.METRICS_SCRAPE_MAX_BYTES,
            )
            return spec, started, fetched

        return await asyncio.gather(*(one(spec) for spec in specs))


def scrape(specs: list[TargetSpec], *, preview: int = 0) -> list[ScrapeOutcome]:
    """Scrape every target concurrently; each outcome carries the samples to store (with the scrape series).

    `preview` keeps the first few parsed samples (name, labels, value) for a "test" answer.
    """
    if not specs:
        return []
    outcomes = []
    for spec, started, fetched in asyncio.run(_fetch_all(specs)):
        outcomes.append(_outcome(spec, started, fetched, preview))
    return outcomes


def _outcome(spec: TargetSpec, started: float, fetched: http.Fetched, preview: int) -> ScrapeOutcome:
    outcome = ScrapeOutcome(target_id=spec.id, started=started, duration=fetched.duration)
    base = target_labels(spec.name, spec.url, spec.labels)
    if fetched.ok:
        body = fetched.body.decode("utf-8", errors="replace")
        limit = settings.METRICS_SCRAPE_SAMPLE_LIMIT
        if exposition.is_openmetrics(fetched.content_type) or not _fast(outcome, spec.id, body, base, started):
            try:
                parsed = exposition.parse(body, fetched.content_type)
            except exposition.ExpositionError as exc:
                outcome.error = f"the body does not parse: {exc}"
            else:
                outcome.ok = True
                outcome.scraped = len(parsed)
                if len(parsed) <= limit:
                    _label(outcome, parsed, base, started)
        if outcome.ok and outcome.scraped > limit:
            outcome.ok = False
            outcome.samples, outcome.kinds = [], {}
            outcome.error = f"sample limit exceeded: {outcome.scraped} samples, the limit is {limit}"
        if outcome.ok and preview:
            outcome.preview = [(key[0], dict(key[1]), value) for key, _, value in outcome.samples[:preview]]
    else:
        outcome.error = fetched.error
    for name, value in zip(
        SCRAPE_SERIES, (1.0 if outcome.ok else 0.0, outcome.duration, float(outcome.scraped)), strict=True
    ):
        key = (name, tuple(sorted(base.items())))
        outcome.samples.append((key, started, value))
        outcome.kinds[key] = "gauge"
    return outcome


def _labelled(name: str, labels: dict[str, str], base: dict[str, str]) -> SeriesKey:
    """The series key with the target's labels; an exposed label that clashes becomes `exported_<name>`."""
    if any(label in labels for label in base):
        labels = dict(labels)
        for label in base:
            if label in labels:
                labels[f"exported_{label}"] = labels.pop(label)
    return name, tuple(sorted((*labels.items(), *base.items())))


def _label(outcome: ScrapeOutcome, parsed: list[exposition.ParsedSample], base: dict[str, str], started: float) -> None:
    samples = outcome.samples
    kinds = outcome.kinds
    for sample in parsed:
        key = _labelled(sample.name, sample.labels, base)
        samples.append((key, sample.timestamp if sample.timestamp is not None else started, sample.value))
        if key not in kinds:
            kinds[key] = sample.kind


# Per target (and its labels): series text as exposed -> series key, so a repeated scrape resolves each line
# with one dict look-up.
KEY_CACHES: dict[tuple, dict[str, SeriesKey]] = {}
KEY_CACHE_LIMIT = 500_000


def _fast(outcome: ScrapeOutcome, target_id: int, body: str, base: dict[str, str], started: float) -> bool:
    """The text format's fast path; False (nothing kept) when the body has a line it does not take."""
    cache_key = (target_id, tuple(base.items()))
    cache = KEY_CACHES.get(cache_key)
    if cache is None or len(cache) > KEY_CACHE_LIMIT:
        if len(KEY_CACHES) > 10_000:
            KEY_CACHES.clear()
        cache = KEY_CACHES[cache_key] = {}
    reader = exposition.FastText()
    samples: list[tuple[SeriesKey, float, float]] = []
    new: list[tuple[SeriesKey, str]] = []
    try:
        for series, value, timestamp in reader.lines(body):
            key = cache.get(series)
            if key is None:
                parsed = exposition.series_of(series)
                if parsed is None:
                    return False
                key = cache[series] = _labelled(parsed[0], parsed[1], base)
                new.append((key, parsed[0]))
            samples.append((key, started if timestamp is None else timestamp, value))
    except exposition.FastText.NotPlain:
        return False
    outcome.ok = True
    outcome.scraped = len(samples)
    outcome.samples = samples
    outcome.kinds = {key: exposition.kind_of(name, reader.types) for key, name in new}
    return True
