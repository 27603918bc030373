"""Demo logs for `manage.py seed_demo` (aiops.demo calls `seed_logs`).

A logs integration "App logs (demo)" and six hours of records from three services up to now, sent
through the real ingest service (mined, counted, stored), so the search page, the patterns page
with its sparklines and "new" badges, and the metric series `log_template_records` have data: steady
info patterns, a few warnings, and, in the last 20 minutes, an error pattern never seen before
(its new-pattern alert fires) bursting in `payments`, which the minute task then reports as a burst.
"""

from __future__ import annotations

import datetime
import random

from django.contrib.auth.models import User
from django.utils import timezone

from . import services
from .logs.decode import Batch, ParsedRecord
from .models import Integration
from .services import logs as log_services

DEMO_INTEGRATION = "App logs (demo)"
HOURS = 6
STEADY = {
    "checkout": [
        ("info", "order {n} placed by customer {m}"),
        ("info", "GET /api/cart/{m} answered 200 in {ms} ms"),
        ("warning", "slow response from inventory: {ms} ms"),
    ],
    "payments": [
        ("info", "charge {n} authorised for {m}.00 EUR"),
        ("info", "webhook {hex} delivered to merchant {m}"),
    ],
    "search": [
        ("info", "query for term {word} returned {m} hits in {ms} ms"),
        ("debug", "index segment {m} merged"),
    ],
}
WORDS = ("shoes", "laptop", "coffee", "lamp", "desk")
BURST = ("error", "charge {n} failed: card processor timeout after {ms} ms")


def _render(rng: random.Random, text: str) -> str:
    return text.format(
        n=rng.randrange(10_000, 99_999), m=rng.randrange(1, 400), ms=rng.randrange(5, 900),
        hex=f"{rng.getrandbits(40):010x}", word=rng.choice(WORDS),
    )  # fmt: skip


def seed_logs(*, actor: User | None) -> bool:
    """Create the demo logs once (False when the integration is already there)."""
    if Integration.objects.filter(name=DEMO_INTEGRATION).exists():
        return False
    integration, _ = services.create_integration(name=DEMO_INTEGRATION, kind="logs", actor=actor)
    rng = random.Random(13)
    now = timezone.now()
    start = now - datetime.timedelta(hours=HOURS)
    records: list[ParsedRecord] = []
    for minute in range(HOURS * 60):
        at = start + datetime.timedelta(minutes=minute)
        for service, patterns in STEADY.items():
            for _ in range(rng.randrange(2, 6)):
                severity, text = rng.choice(patterns)
                stamp = at + datetime.timedelta(seconds=rng.uniform(0, 59))
                records.append(ParsedRecord(stamp, service, severity, _render(rng, text), {"env": "demo"}, "", ""))
        if minute >= HOURS * 60 - 20:
            for _ in range(rng.randrange(15, 30)):
                stamp = at + datetime.timedelta(seconds=rng.uniform(0, 59))
                body = _render(rng, BURST[1])
                records.append(ParsedRecord(stamp, "payments", BURST[0], body, {"env": "demo"}, "", ""))
        if minute % 60 == 59:  # an hour a push, in time order
            records.sort(key=lambda record: record.time)
            log_services.ingest_logs(integration=integration, batch=Batch(records))
            records = []
    log_services.evaluate_log_templates()
    return True
