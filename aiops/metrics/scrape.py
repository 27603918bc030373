"""Scraping targets, as Prometheus does: fetch, parse, label, plus `up` and the scrape's own series.

The async part only fetches (many targets at once); parsing and labelling run after, and writing is
the caller's (`aiops.services.metrics`). A scrape that fails (connection, timeout, HTTP status, a
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
        try:
            parsed = exposition.parse(fetched.body.decode("utf-8", errors="replace"), fetched.content_type)
        except exposition.ExpositionError as exc:
            outcome.error = f"the body does not parse: {exc}"
        else:
            limit = settings.METRICS_SCRAPE_SAMPLE_LIMIT
            if len(parsed) > limit:
                outcome.error = f"sample limit exceeded: {len(parsed)} samples, the limit is {limit}"
            else:
                outcome.ok = True
                outcome.scraped = len(parsed)
                _label(outcome, parsed, base, started, preview)
    else:
        outcome.error = fetched.error
    for name, value in zip(
        SCRAPE_SERIES, (1.0 if outcome.ok else 0.0, outcome.duration, float(outcome.scraped)), strict=True
    ):
        key = (name, tuple(sorted(base.items())))
        outcome.samples.append((key, started, value))
        outcome.kinds[key] = "gauge"
    return outcome


def _label(
    outcome: ScrapeOutcome, parsed: list[exposition.ParsedSample], base: dict[str, str], started: float, preview: int
) -> None:
    """Give each sample the target's labels; an exposed label that clashes becomes `exported_<name>`."""
    base_items = tuple(base.items())
    samples = outcome.samples
    kinds = outcome.kinds
    for sample in parsed:
        labels = sample.labels
        if any(label in labels for label in base):
            labels = dict(labels)
            for label in base:
                if label in labels:
                    labels[f"exported_{label}"] = labels.pop(label)
        key = (sample.name, tuple(sorted((*labels.items(), *base_items))))
        samples.append((key, sample.timestamp if sample.timestamp is not None else started, sample.value))
        if key not in kinds:
            kinds[key] = sample.kind
        if len(outcome.preview) < preview:
            outcome.preview.append((sample.name, dict(key[1]), sample.value))
