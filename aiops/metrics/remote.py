"""Pulling watched queries from Prometheus-compatible HTTP APIs (Prometheus, Thanos, Mimir, VictoriaMetrics).

Each pull POSTs `/api/v1/query_range` (form-encoded, as Grafana does, so long queries fit) for the
steps since the last one stored. Its series are stored like a recording rule's: named after the
watched query, with the result's labels (its `__name__` dropped) and the query's own labels.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field

from django.conf import settings

from . import http
from .store import SeriesKey


@dataclass
class QuerySpec:
    id: int
    name: str
    base_url: str
    query: str
    start: float
    end: float
    step: float
    timeout: float
    headers: dict[str, str]
    labels: dict[str, str]


@dataclass
class PullOutcome:
    query_id: int
    duration: float = 0.0
    ok: bool = False
    error: str = ""
    series: int = 0
    samples: list[tuple[SeriesKey, float, float]] = field(default_factory=list)


def api_url(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/api/v1/{path}"


async def _pull_all(specs: list[QuerySpec]) -> list[tuple[QuerySpec, http.Fetched]]:
    async with http.client(concurrency=max(1, min(len(specs), 50))) as session:

        async def one(spec: QuerySpec) -> tuple[QuerySpec, http.Fetched]:
            form = {
                "query": spec.query,
                "start": f"{spec.start:.3f}",
                "end": f"{spec.end:.3f}",
                "step": f"{spec.step:g}",
            }
            fetched = await http.fetch(
                session,
                api_url(spec.base_url, "query_range"),
                method="POST",
                headers={"Accept": "application/json", **spec.headers},
                data=form,
                timeout=spec.timeout,
                max_bytes=settings.METRICS_SCRAPE_MAX_BYTES,
            )
            return spec, fetched

        return await asyncio.gather(*(one(spec) for spec in specs))


def pull(specs: list[QuerySpec]) -> list[PullOutcome]:
    """Run every watched query concurrently; each outcome carries its samples."""
    if not specs:
        return []
    return [_outcome(spec, fetched) for spec, fetched in asyncio.run(_pull_all(specs))]


def _outcome(spec: QuerySpec, fetched: http.Fetched) -> PullOutcome:
    outcome = PullOutcome(query_id=spec.id, duration=fetched.duration)
    body: object = None
    if fetched.body:
        try:
            body = json.loads(fetched.body)
        except ValueError:
            body = None
    if not fetched.ok:
        detail = body.get("error") if isinstance(body, dict) else None
        if detail and body.get("errorType"):
            detail = f"{body['errorType']}: {detail}"
        outcome.error = f"{fetched.error}: {detail}" if detail else fetched.error
        return outcome
    if not isinstance(body, dict):
        outcome.error = "the answer is not JSON"
        return outcome
    if body.get("status") != "success":
        outcome.error = f"{body.get('errorType', 'error')}: {body.get('error', 'the query failed')}"
        return outcome
    data = body.get("data") or {}
    if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        outcome.error = f"expected a matrix, got {data.get('resultType')!r}"
        return outcome
    try:
        for item in data["result"]:
            labels = {k: str(v) for k, v in (item.get("metric") or {}).items() if k != "__name__"}
            labels.update(spec.labels)
            key = (spec.name, tuple(sorted(labels.items())))
            for at, value in item.get("values") or []:
                number = float(value)
                if math.isfinite(float(at)):
                    outcome.samples.append((key, float(at), number))
            outcome.series += 1
    except (TypeError, ValueError, AttributeError) as exc:
        outcome.error = f"unexpected answer: {exc}"
        outcome.samples = []
        return outcome
    outcome.ok = True
    return outcome
