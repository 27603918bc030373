"""Collection by a real Celery worker: a local exposition server, node_exporter, Prometheus, the portal's /metrics."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from aiops import services
from aiops.metrics import partitions, store
from aiops.models import Sample, ScrapeTarget, Series, WatchedQuery
from opsportal import enqueue
from tests.helpers import wait_for
from tests.portal.factories import make_token

from .metrics_helpers import ExpositionServer, NodeExporter, PrometheusServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


def samples_of(name: str, **labels: str) -> list[float]:
    matching = Series.objects.filter(name=name, **{f"labels__{k}": v for k, v in labels.items()})
    ids = list(matching.values_list("id", flat=True))
    return [s.number for s in Sample.objects.filter(series_id__in=ids).order_by("time")]


def dispatch_until(condition, timeout: float = 30.0) -> bool:
    """Send the dispatcher as beat would every few seconds, until `condition` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        enqueue.send("aiops.tasks.collect_due")
        if wait_for(condition, timeout=min(5.0, max(0.1, deadline - time.monotonic()))):
            return True
    return bool(condition())


def test_a_worker_scrapes_on_schedule_and_a_garbage_answer_keeps_the_series(operator, worker, allow_loopback):
    server = ExpositionServer('# TYPE jobs_total counter\njobs_total{queue="mail"} 7\n')
    try:
        target = services.save_scrape_target(actor=operator, name="app", url=server.url, interval_seconds=1)
        assert dispatch_until(lambda: len(samples_of("up", job="app")) >= 3), "the worker did not scrape every second"
        assert set(samples_of("up", job="app")) == {1.0}
        assert samples_of("jobs_total", queue="mail")[0] == 7.0
        server.body = "<html>502 Bad Gateway</html>\n"
        assert dispatch_until(lambda: 0.0 in samples_of("up", job="app")), "the garbage scrape was not recorded"
        target.refresh_from_db()
        assert target.last_ok is False and "does not parse" in target.last_error
        assert Series.objects.filter(name="jobs_total").exists()
    finally:
        server.close()


def test_node_exporter_is_scraped_by_the_worker(operator, worker, allow_loopback, tmp_path):
    exporter = NodeExporter(tmp_path)
    try:
        services.save_scrape_target(actor=operator, name="node", url=exporter.url, interval_seconds=2)
        assert dispatch_until(lambda: Series.objects.filter(name="node_load1").exists(), timeout=40), (
            exporter.log.read_text()[-2000:]
        )
    finally:
        exporter.close()
    load = Series.objects.get(name="node_load1")
    assert load.labels == {"job": "node", "instance": f"127.0.0.1:{exporter.port}"} and load.kind == "gauge"
    assert Series.objects.filter(name="node_cpu_seconds_total", labels__mode="idle").exists()
    target = ScrapeTarget.objects.get()
    assert target.last_ok is True and target.last_sample_count > 50
    now = timezone.now().timestamp()
    result = services.run_query_range(query_text='node_load1{job="node"}', start=now - 60, end=now, step=5)
    assert result.series and result.series[0].points


def test_prometheus_is_a_source_whose_watched_query_the_worker_pulls(operator, worker, allow_loopback, tmp_path):
    exporter = NodeExporter(tmp_path)
    prometheus = PrometheusServer(tmp_path, [f"127.0.0.1:{exporter.port}"])
    try:
        assert wait_for(lambda: prometheus.query('up{job="node"}')["data"]["result"], timeout=30), "Prometheus idle"
        source = services.save_prom_source(actor=operator, name="prom", base_url=prometheus.url)
        assert services.test_prom_source(source=source).ok
        watched = services.save_watched_query(
            actor=operator, source=source, name="node:up", query='up{job="node"}', interval_seconds=1, step_seconds=1
        )
        assert dispatch_until(lambda: len(samples_of("node:up")) >= 3, timeout=40), prometheus.log.read_text()[-2000:]
        watched.refresh_from_db()
        assert watched.last_ok is True and watched.last_end_at is not None
        series = Series.objects.get(name="node:up")
        assert series.labels == {"job": "node", "instance": f"127.0.0.1:{exporter.port}"}
        # What the portal stored is what Prometheus answers for the same steps.
        ours = {s.time.timestamp(): s.number for s in Sample.objects.filter(series_id=series.id)}
        answer = prometheus.query_range('up{job="node"}', min(ours), max(ours), 1)
        theirs = {float(t): float(v) for t, v in answer["data"]["result"][0]["values"]}
        assert ours == {t: v for t, v in theirs.items() if t in ours} and len(ours) >= 3
        bad = services.save_watched_query(
            actor=operator, source=source, name="broken", query="sum(", interval_seconds=1
        )
        assert dispatch_until(lambda: WatchedQuery.objects.get(pk=bad.pk).last_ok is False, timeout=20)
        assert WatchedQuery.objects.get(pk=bad.pk).last_error == (
            "HTTP 400: bad_data: 1:5: parse error: unclosed left parenthesis"
        )
    finally:
        prometheus.close()
        exporter.close()


def test_the_portals_own_metrics_are_a_target(operator, viewer, worker, live_server, allow_loopback):
    url = live_server.url.replace("localhost", "127.0.0.1") + "/metrics"
    services.save_scrape_target(
        actor=operator, name="opsportal", url=url, interval_seconds=2, auth="bearer", secret=make_token(viewer)
    )
    # The second scrape counts the first one among the requests served.
    assert dispatch_until(lambda: Series.objects.filter(name="opsportal_http_requests_total").exists())
    assert Series.objects.filter(name="opsportal_celery_workers_online").exists()
    assert set(samples_of("up", job="opsportal")) == {1.0}


def test_the_demo_scrapes_the_portals_own_metrics(operator, live_server, allow_loopback, settings):
    from aiops import demo

    settings.OPSPORTAL_BASE_URL = live_server.url.replace("localhost", "127.0.0.1")
    assert demo._metrics(operator) is True
    assert demo._metrics(operator) is False  # once
    target = ScrapeTarget.objects.get(name=demo.DEMO_SCRAPE_TARGET)
    services.collect_targets(target_ids=[target.pk])
    target.refresh_from_db()
    assert target.last_ok is True, target.last_error
    assert services.find_series(selector='up{job="opsportal-demo"}')[0].labels["env"] == "demo"
