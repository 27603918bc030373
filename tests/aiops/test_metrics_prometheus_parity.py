"""The portal's PromQL subset answers what Debian's Prometheus answers over the very same samples.

The samples (counters with resets and gaps, a gauge with a gap longer than the lookback) are
backfilled into a fresh Prometheus with `promtool tsdb create-blocks-from openmetrics` and written
to the portal's store; both are asked the same range queries at the same steps. Samples sit 7 s
off the step grid, so no sample falls exactly on a window's edge, where Prometheus 2 (closed
windows) and 3 (left-open, as the portal) differ.
"""

from __future__ import annotations

import math
import pathlib
import random
import shutil
import subprocess

import pytest
from django.utils import timezone

from aiops import services
from aiops.metrics import partitions, store
from tests.conftest import need_service

from .metrics_helpers import PrometheusServer

pytestmark = [pytest.mark.django_db, pytest.mark.services]

PROMTOOL = "/usr/bin/promtool"
QUERIES = [
    'jobs_total{queue="mail"}',
    "rate(jobs_total[1m])",
    "rate(jobs_total[5m])",
    "increase(jobs_total[2m])",
    "increase(jobs_total[10m])",
    "avg_over_time(temperature[5m])",
    "min_over_time(temperature[3m])",
    "max_over_time(temperature[3m])",
    "sum_over_time(temperature[2m])",
    "count_over_time(temperature[4m])",
    "last_over_time(temperature[1m])",
    "temperature",
]


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


def make_samples(base: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[int, float]]]:
    """Two hours of samples every 15 s (some missing), 7 s off the grid: two counters with resets, one gauge."""
    rng = random.Random(11)
    series: dict = {}
    for queue, resets in (("mail", {120, 300}), ("sms", {200})):
        value, points = 0.0, []
        for k in range(480):
            if rng.random() < 0.1:
                continue  # a missed scrape
            value = rng.uniform(0, 5) if k in resets else value + rng.uniform(0, 20)
            points.append((base + 7 + 15 * k, round(value, 3)))
        series[("jobs_total", (("queue", queue),))] = points
    gauge = [(base + 7 + 15 * k, round(20 + 5 * math.sin(k / 20) + rng.uniform(-1, 1), 3)) for k in range(480)]
    series[("temperature", (("room", "a"),))] = [p for p in gauge if not 200 <= (p[0] - base) // 15 < 230]
    return series


def openmetrics(series: dict) -> str:
    """The samples as OpenMetrics text, one family after the other (what promtool backfills from)."""
    families = {"jobs_total": ["# TYPE jobs counter"], "temperature": ["# TYPE temperature gauge"]}
    for (name, labels), points in sorted(series.items()):
        inner = ",".join(f'{k}="{v}"' for k, v in labels)
        families[name] += [f"{name}{{{inner}}} {value} {at}" for at, value in points]
    return "\n".join(families["jobs_total"] + families["temperature"]) + "\n# EOF\n"


def test_range_queries_match_prometheus(tmp_path: pathlib.Path):
    if not shutil.which(PROMTOOL):
        need_service("Debian's promtool (package prometheus)")
    now = int(timezone.now().timestamp())
    base = (now - 4 * 3600) // 3600 * 3600
    series = make_samples(base)
    source = tmp_path / "samples.om"
    source.write_text(openmetrics(series))
    data = tmp_path / "prom-data"
    backfill = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr
    for (name, labels), points in series.items():
        key = store.series_key(name, dict(labels))
        store.write_samples([(key, float(at), value) for at, value in points])
    prometheus = PrometheusServer(tmp_path, [], data_dir=data)
    try:
        start, end, step = base + 600, base + 7200, 30
        for text in QUERIES:
            theirs = prometheus.query_range(text, start, end, step)
            assert theirs["status"] == "success", theirs
            ours = services.run_query_range(query_text=text, start=start, end=end, step=step).to_prometheus()
            assert ours["resultType"] == "matrix"
            expected = {_key(item["metric"]): item["values"] for item in theirs["data"]["result"]}
            answered = {_key(item["metric"]): item["values"] for item in ours["result"]}
            assert answered.keys() == expected.keys(), text
            for metric, values in expected.items():
                mine = answered[metric]
                assert [t for t, _ in mine] == [t for t, _ in values], f"{text} {metric}: different steps"
                for (at, mine_value), (_, their_value) in zip(mine, values, strict=True):
                    assert float(mine_value) == pytest.approx(float(their_value), rel=1e-9, abs=1e-9), (
                        f"{text} {metric} at {at}: {mine_value} != Prometheus's {their_value}"
                    )
    finally:
        prometheus.close()


def _key(metric: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(metric.items()))
