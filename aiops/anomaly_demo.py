"""Demo anomaly detection for `manage.py seed_demo` (the lead's aiops.demo calls `seed_anomalies`).

A demo checkout latency series gets a day of samples every minute (rows with past timestamps, as the
demo's other history): a daily swing with noise, a burst of slow requests three hours ago (over since), and
a spike three minutes ago. A monitor on it is scored through the real services twice, as the minute task
would have: first with the samples up to four hours ago (the detector learns the series), then with the
rest: the burst is recorded as an ended anomaly and the spike is an open one with its alert firing, both
shaded in the explorer beside the expected band.
"""

from __future__ import annotations

import datetime
import math
import random

from django.contrib.auth.models import User
from django.utils import timezone

from . import services
from .metrics import store
from .models import AnomalyMonitor

DEMO_MONITOR = "Checkout latency (demo)"
DEMO_LABELS = {"job": "checkout-demo", "instance": "web1:8080", "service": "checkout"}
METRIC = "http_request_duration_p99_ms"
STEP = 60
DAY = 86400


def seed_anomalies(*, actor: User | None) -> bool:
    """Create the demo series and monitor once (False when they are there); it is scored before this returns."""
    if AnomalyMonitor.objects.filter(name=DEMO_MONITOR).exists():
        return False
    end = timezone.now().timestamp() // STEP * STEP
    samples = _latency(end)
    learned = [sample for sample in samples if sample[1] <= end - 4 * 3600]
    store.write_samples(learned, kinds={learned[0][0]: "gauge"})
    monitor = services.save_anomaly_monitor(
        actor=actor, name=DEMO_MONITOR, selector=f'{METRIC}{{job="checkout-demo"}}', sensitivity="medium",
        severity="warning", service="checkout",
        description="Demo: the checkout's p99 latency left its expected band.",
    )  # fmt: skip
    services.score_monitor(monitor_id=monitor.pk, now=_dt(end - 4 * 3600 + 1))
    store.write_samples(samples[len(learned) :])
    services.score_monitor(monitor_id=monitor.pk, now=_dt(end + 1))
    return True


def _dt(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC)


def _latency(end: float) -> list[tuple]:
    rng = random.Random(7)
    key = store.series_key(METRIC, DEMO_LABELS)
    count = DAY // STEP
    samples = []
    for index in range(count):
        at = end - (count - 1 - index) * STEP
        ago = (count - 1 - index) * STEP
        # A daily swing whose top (18 h ago) and bottom (6 h ago) the detector sees while it learns.
        value = 180 + 40 * math.sin(2 * math.pi * (at - end) / DAY) + rng.uniform(-6, 6)
        if 3 * 3600 - 600 <= ago <= 3 * 3600:
            value += 160  # ten minutes of slow requests, three hours ago
        if ago == 3 * STEP:
            value += 260  # a spike three minutes ago
        samples.append((key, at, round(value, 1)))
    return samples
