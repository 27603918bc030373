"""The portal's own Prometheus metrics.

Request counts and latencies are recorded in-process by a middleware (set
PROMETHEUS_MULTIPROC_DIR when gunicorn runs several workers). Task counts,
queue depths and worker counts are read at scrape time from the database and
the broker, so they are right whichever machine the workers run on.
"""

from __future__ import annotations

import os
import time

from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REQUESTS = Counter(
    "opsportal_http_requests_total", "HTTP requests served, by method, view and status.", ["method", "view", "status"]
)
LATENCY = Histogram(
    "opsportal_http_request_duration_seconds",
    "Time to serve HTTP requests, by method and view.",
    ["method", "view"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestMetricsMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The route name, never the raw path, keeps label cardinality bounded.
        view = match.view_name if match else ("static" if request.path.startswith("/static/") else "unresolved")
        LATENCY.labels(request.method, view).observe(time.perf_counter() - start)
        REQUESTS.labels(request.method, view, str(response.status_code)).inc()
        return response


class PortalCollector:
    """Collects task, queue and worker figures at scrape time."""

    def collect(self):
        from . import services
        from .models import TaskCounter

        tasks = CounterMetricFamily(
            "opsportal_celery_tasks", "Celery tasks finished, by task name and final state.", labels=["task", "state"]
        )
        for name, state, count in TaskCounter.objects.values_list("name", "state", "count"):
            tasks.add_metric([name, state], count)
        yield tasks

        depth = GaugeMetricFamily("opsportal_celery_queue_depth", "Messages waiting in each queue.", labels=["queue"])
        for queue, value in services.queue_depths().items():
            if value is not None:
                depth.add_metric([queue], value)
        yield depth

        workers = services.workers()
        yield GaugeMetricFamily(
            "opsportal_celery_workers_online", "Workers with a recent heartbeat.", value=sum(w.online for w in workers)
        )


def render_metrics() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(PortalCollector())
        return generate_latest(registry), CONTENT_TYPE_LATEST
    portal = CollectorRegistry()
    portal.register(PortalCollector())
    return generate_latest(REGISTRY) + generate_latest(portal), CONTENT_TYPE_LATEST
