"""Demo capacity forecasts for `manage.py seed_demo` (aiops.demo calls `seed_forecasts`).

Two demo filesystems get a week of samples every 5 minutes up to now (rows with past
timestamps, as the demo's other history): one filling 12 GB a day with a daily swing (full in
about four days, so its warning fires), one almost flat. A forecast on them, limited by their
size series matched by instance and mountpoint, is fitted at once through the real services
(and refitted hourly while the samples are at most a day old).
"""

from __future__ import annotations

import math
import random

from django.contrib.auth.models import User
from django.utils import timezone

from . import services
from .metrics import store
from .models import CapacityForecast

DEMO_DISKS = "Disks (demo)"
GB = 1e9
DAY = 86400
STEP = 300


def seed_forecasts(*, actor: User | None, days: int = 7) -> bool:
    """Create the demo forecasts once (False when they are there); the disks' is fitted before this returns."""
    if CapacityForecast.objects.filter(name=DEMO_DISKS).exists():
        return False
    _disks(days)
    disks = services.save_capacity_forecast(
        actor=actor, name=DEMO_DISKS, usage_selector='node_filesystem_used_bytes{job="node-demo"}',
        limit_kind="series", limit_selector='node_filesystem_size_bytes{job="node-demo"}',
        match_labels=["instance", "mountpoint"], horizon_days=7, severity="warning", service="storage",
    )  # fmt: skip
    services.compute_forecast(forecast_id=disks.pk)
    return True


def _disks(days: int) -> None:
    rng = random.Random(12)
    end = timezone.now().timestamp() // STEP * STEP
    samples = []
    kinds = {}
    for instance, used_now, per_day in (("db1:9100", 452.0, 12.0), ("web1:9100", 120.0, 0.2)):
        labels = {"job": "node-demo", "instance": instance, "device": "/dev/sda1", "mountpoint": "/data"}
        used_key = store.series_key("node_filesystem_used_bytes", labels)
        size_key = store.series_key("node_filesystem_size_bytes", labels)
        kinds.update({used_key: "gauge", size_key: "gauge"})
        wander = 0.0
        for index in range(days * DAY // STEP):
            at = end - index * STEP
            swing = 6 * math.sin(2 * math.pi * ((at / DAY) % 1 - 0.25))
            # Growth that is not quite steady (a random walk) and noise, so the interval has something to say.
            wander += rng.gauss(0, 0.15)
            used = used_now - per_day * index * STEP / DAY + swing + wander + rng.gauss(0, 1.5)
            samples.append((used_key, at, used * GB))
            if index % 12 == 0:
                samples.append((size_key, at, 500 * GB))
    store.write_samples(samples, kinds=kinds)
