"""Metric collection: scraping real HTTP endpoints, storing samples, partitions, rollups, the allow-list."""

from __future__ import annotations

import datetime
import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.metrics import exposition, partitions, rollups, store
from aiops.models import Rollup5m, Sample, ScrapeTarget, Series
from opsportal.errors import InvalidInput

from .metrics_helpers import OPENMETRICS_FORMAT, ExpositionServer

pytestmark = pytest.mark.django_db

EXPOSITION = """# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/"} 1027
http_requests_total{code="500",path="/"} 3
# HELP temperature_celsius Temperature.
# TYPE temperature_celsius gauge
temperature_celsius{room="a",job="exposed"} 21.5
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 4
latency_seconds_bucket{le="+Inf"} 5
latency_seconds_sum 0.9
latency_seconds_count 5
"""


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test's database rows roll back; the writer's per-process caches must forget them too."""
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


@pytest.fixture
def exporter():
    server = ExpositionServer(EXPOSITION)
    yield server
    server.close()


def make_target(operator, url: str, **kwargs) -> ScrapeTarget:
    return services.save_scrape_target(actor=operator, name=kwargs.pop("name", "app"), url=url, **kwargs)


def values_of(name: str, **labels: str) -> list[float]:
    series = Series.objects.get(name=name, **{f"labels__{k}": v for k, v in labels.items()})
    return [s.number for s in Sample.objects.filter(series_id=series.id).order_by("time")]


def test_the_parsers_read_text_and_openmetrics_and_word_garbage():
    text = exposition.parse(EXPOSITION, "text/plain; version=0.0.4")
    assert ("http_requests_total", {"code": "500", "path": "/"}, 3.0, "counter") in [
        (s.name, s.labels, s.value, s.kind) for s in text
    ]
    assert len(text) == 7
    om = exposition.parse('# TYPE jobs counter\njobs_total{q="a"} 7 1700000000.5\n# EOF\n', OPENMETRICS_FORMAT)
    assert [(s.name, s.value, s.timestamp) for s in om] == [("jobs_total", 7.0, 1700000000.5)]
    with pytest.raises(exposition.ExpositionError, match=r"Invalid line|invalid metric name|could not convert"):
        exposition.parse("<html><body>Welcome to nginx!</body></html>\n", "text/html")


def test_a_scrape_stores_the_samples_with_job_instance_and_its_own_series(operator, exporter, allow_loopback):
    target = make_target(operator, exporter.url, labels={"env": "test"})
    stored = services.collect_targets(target_ids=[target.pk])
    target.refresh_from_db()
    assert target.last_ok is True and target.last_error == "" and target.last_sample_count == 7
    assert stored == 7 + 3
    instance = f"127.0.0.1:{exporter.port}"
    series = Series.objects.get(name="http_requests_total", labels__code="500")
    assert series.labels == {"code": "500", "path": "/", "job": "app", "instance": instance, "env": "test"}
    assert series.kind == "counter"
    # An exposed label that clashes with a target label is kept as exported_<name>, as in Prometheus.
    temperature = Series.objects.get(name="temperature_celsius")
    assert temperature.labels["job"] == "app" and temperature.labels["exported_job"] == "exposed"
    assert values_of("up", job="app") == [1.0]
    assert values_of("scrape_samples_scraped", job="app") == [7.0]
    (duration,) = values_of("scrape_duration_seconds", job="app")
    assert 0 < duration < 5
    assert "application/openmetrics-text" in exporter.requests[0]["headers"]["Accept"]


def test_openmetrics_is_parsed_when_the_target_answers_it(operator, allow_loopback):
    server = ExpositionServer('# TYPE jobs counter\njobs_total{queue="mail"} 42\n# EOF\n', OPENMETRICS_FORMAT)
    try:
        target = make_target(operator, server.url)
        services.collect_targets(target_ids=[target.pk])
    finally:
        server.close()
    assert values_of("jobs_total", queue="mail") == [42.0]


def test_garbage_fails_the_scrape_with_the_parsers_words_and_keeps_the_series(operator, exporter, allow_loopback):
    target = make_target(operator, exporter.url)
    services.collect_targets(target_ids=[target.pk])
    before = Series.objects.count()
    exporter.body = "<html>Welcome to nginx!</html>\n"
    services.collect_targets(target_ids=[target.pk])
    target.refresh_from_db()
    assert target.last_ok is False
    assert target.last_error.startswith("the body does not parse: ") and "nginx" in target.last_error
    assert Series.objects.count() == before
    assert values_of("http_requests_total", code="500") == [3.0]  # nothing new, nothing lost
    assert values_of("up", job="app") == [1.0, 0.0]
    assert values_of("scrape_samples_scraped", job="app") == [7.0, 0.0]


def test_http_errors_and_timeouts_mark_the_scrape_down(operator, exporter, allow_loopback):
    target = make_target(operator, exporter.url, timeout_seconds=0.5)
    exporter.status = 503
    services.collect_targets(target_ids=[target.pk])
    target.refresh_from_db()
    assert (target.last_ok, target.last_error) == (False, "HTTP 503")
    exporter.status, exporter.delay = 200, 2.0
    services.collect_targets(target_ids=[target.pk])
    target.refresh_from_db()
    assert (target.last_ok, target.last_error) == (False, "timed out after 0.5 s")
    assert values_of("up", job="app") == [0.0, 0.0]


def test_bearer_and_basic_auth_are_sent_and_the_secret_is_encrypted_at_rest(operator, exporter, allow_loopback):
    exporter.token = "s3cr3t-token"
    target = make_target(operator, exporter.url, auth="bearer", secret="s3cr3t-token")
    assert "s3cr3t-token" not in ScrapeTarget.objects.filter(pk=target.pk).values_list("secret_encrypted", flat=True)[0]
    services.collect_targets(target_ids=[target.pk])
    target.refresh_from_db()
    assert target.last_ok is True
    exporter.token, exporter.basic = None, ("scraper", "pa:ss")
    services.save_scrape_target(actor=operator, target=target, auth="basic", username="scraper", secret="wrong")
    services.collect_targets(target_ids=[target.pk])
    target.refresh_from_db()
    assert (target.last_ok, target.last_error) == (False, "HTTP 401")
    services.save_scrape_target(actor=operator, target=target, secret="pa:ss")
    services.collect_targets(target_ids=[target.pk])
    target.refresh_from_db()
    assert target.last_ok is True


def test_target_urls_obey_the_outbound_allow_list(operator, exporter, settings):
    with pytest.raises(InvalidInput) as refused:
        make_target(operator, exporter.url)
    assert refused.value.field == "url" and "OPSPORTAL_OUTBOUND_ALLOWLIST" in refused.value.message
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    target = make_target(operator, exporter.url)
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []  # an admin took it back: the next scrape is refused, not sent
    services.collect_targets(target_ids=[target.pk])
    target.refresh_from_db()
    assert target.last_ok is False and "not a public address" in target.last_error
    assert exporter.requests == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "ftp://example.com/metrics"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": 0.5}, "interval_seconds"),
        ({"timeout_seconds": 30, "interval_seconds": 10}, "timeout_seconds"),
        ({"auth": "digest"}, "auth"),
        ({"auth": "bearer"}, "secret"),
        ({"auth": "basic"}, "username"),
        ({"labels": {"__meta": "x"}}, "labels"),
        ({"labels": {"env": 3}}, "labels"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_targets_are_refused_naming_the_field(operator, allow_loopback, changes, field):
    values = {"name": "app", "url": "http://127.0.0.1:9/metrics", **changes}
    with pytest.raises(InvalidInput) as refused:
        services.save_scrape_target(actor=operator, **values)
    assert refused.value.field == field


def test_the_writer_resolves_series_once_then_only_copies(operator):
    now = timezone.now()
    keys = [store.series_key("load", {"host": f"h{i}"}) for i in range(50)]
    first = store.write_samples([(key, now.timestamp() - 30, 1.0) for key in keys], now=now)
    assert (first.samples, first.new_series) == (50, 50)
    with CaptureQueriesContext(connection) as queries:
        second = store.write_samples([(key, now.timestamp() - 15, 2.0) for key in keys], now=now)
    assert (second.samples, second.new_series) == (50, 0)
    assert not [q for q in queries.captured_queries if "aiops_series" in q["sql"]]
    assert Sample.objects.count() == 100
    old = store.write_samples([(keys[0], now.timestamp() - 9 * 86400, 1.0)], now=now)
    assert (old.samples, old.dropped) == (0, 1)  # past raw retention: there is nowhere to keep it


def test_nan_and_infinities_round_trip(operator):
    now = timezone.now()
    key = store.series_key("odd", {})
    store.write_samples([(key, now.timestamp() - 3, math.nan), (key, now.timestamp() - 2, math.inf)], now=now)
    store.write_samples([(key, now.timestamp() - 1, -math.inf)], now=now)
    stored = values_of("odd")
    assert math.isnan(stored[0]) and stored[1:] == [math.inf, -math.inf]


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="partitions are PostgreSQL's")
def test_partitions_are_created_ahead_and_dropped_past_retention():
    today = datetime.datetime.now(datetime.UTC).date()
    # The writer makes the partition of a day that has none (a week ago: the migration made none for it).
    week_ago = datetime.datetime.combine(today - datetime.timedelta(days=7), datetime.time(12), datetime.UTC)
    store.write_samples([(store.series_key("x", {}), week_ago.timestamp(), 1.0)])
    names = partitions.partitions("aiops_sample")
    assert partitions.sample_partition_name(week_ago.date()) in names
    later = timezone.now() + datetime.timedelta(days=30)
    partitions.ensure_sample_partitions({later.date() - datetime.timedelta(days=n) for n in range(1, 12)})
    done = partitions.maintain(later)
    names = partitions.partitions("aiops_sample")
    ahead = [partitions.sample_partition_name(later.date() + datetime.timedelta(days=n)) for n in range(4)]
    assert set(ahead) <= set(names) and set(ahead) <= set(done.created)
    assert partitions.sample_partition_name(week_ago.date()) in done.dropped
    oldest_kept = min(datetime.datetime.strptime(n[-8:], "%Y%m%d").date() for n in names)
    assert oldest_kept == (later - datetime.timedelta(days=8)).date()
    month = later.date().replace(day=1)
    assert partitions.rollup_partition_name(month) in partitions.partitions("aiops_rollup5m")
    # 400 days on, this month's rollups go too.
    done = partitions.maintain(later + datetime.timedelta(days=460))
    assert partitions.rollup_partition_name(month) in done.dropped


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="partitions are PostgreSQL's")
def test_samples_of_a_day_whose_partition_was_rolled_back_are_still_stored():
    """The writer caches the partitions it made; one made in a transaction that rolled back is gone
    (seed_demo, a failed task): the next write of that day makes it again instead of failing."""
    from django.db import transaction

    day = datetime.datetime.combine(
        datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=5), datetime.time(23, 55), datetime.UTC
    )
    key = store.series_key("rolled_back", {})
    with pytest.raises(RuntimeError), transaction.atomic():
        store.write_samples([(key, day.timestamp(), 1.0)])
        raise RuntimeError("the caller's transaction fails")
    assert partitions.sample_partition_name(day.date()) not in partitions.partitions("aiops_sample")

    store.write_samples([(key, day.timestamp(), 2.0)])

    assert list(
        Sample.objects.filter(series_id=Series.objects.get(name="rolled_back").id).values_list("value", flat=True)
    ) == [2.0]


def test_rollups_keep_min_max_sum_count_and_a_reset_aware_increase():
    start = rollups.floor_bucket(timezone.now() - datetime.timedelta(hours=1))
    key = store.series_key("requests_total", {"job": "api"})
    # 10 s apart: 100, 110, ..., a reset to 5 at the 33rd sample (in the third bucket), then +10 again.
    values = [100.0 + 10 * i for i in range(33)] + [5.0 + 10 * i for i in range(27)]
    samples = [(key, start.timestamp() + 10 * i + 1, value) for i, value in enumerate(values)]
    store.write_samples(samples)
    written = rollups.roll_up(start + datetime.timedelta(minutes=12))
    assert written == 2  # two buckets are complete (grace: two minutes)
    rollups.roll_up(timezone.now())
    rows = list(Rollup5m.objects.filter(series_id=Series.objects.get(name="requests_total").id).order_by("bucket"))
    assert [r.count for r in rows] == [30, 30]
    first, second = rows
    assert (first.min_value, first.max_value, first.first_value, first.last_value) == (100.0, 390.0, 100.0, 390.0)
    assert first.sum_value == sum(values[:30]) and first.increase == 290.0
    # The second bucket: 400..420, then the reset to 5 (counted as +5), then 15..265; plus +10 from the first.
    assert second.min_value == 5.0 and second.max_value == 420.0
    assert second.increase == 10 + 20 + 5 + 26 * 10
    assert rollups.checkpoint() is not None


def test_the_dispatcher_claims_due_runs_within_its_horizon_without_a_burst(operator, allow_loopback):
    now = timezone.now()
    fast = make_target(operator, "http://127.0.0.1:9/metrics", name="fast", interval_seconds=2)
    late = make_target(operator, "http://127.0.0.1:9/metrics", name="late", interval_seconds=60)
    paused = make_target(operator, "http://127.0.0.1:9/metrics", name="paused", enabled=False)
    ScrapeTarget.objects.filter(pk__in=[fast.pk, paused.pk]).update(next_due_at=now)
    ScrapeTarget.objects.filter(pk=late.pk).update(next_due_at=now - datetime.timedelta(hours=1))  # a worker was down
    assert services.dispatch_due_collection(now=now) == 3 + 1  # fast at now, +2 s, +4 s; late once, now
    fast.refresh_from_db()
    late.refresh_from_db()
    assert fast.next_due_at == now + datetime.timedelta(seconds=6)
    assert late.next_due_at == now + datetime.timedelta(seconds=60)
    assert services.dispatch_due_collection(now=now) == 0  # claimed already


def _both_paths(body: str) -> tuple[list | None, list]:
    """The samples (name, labels, value, timestamp) from the fast path (None: it left the body to the
    library) and from prometheus_client's parser."""
    from aiops.metrics import scrape

    base = scrape.target_labels("t", "http://h:1/m", {})
    fast = scrape.ScrapeOutcome(target_id=-1, started=1000.0)
    took = scrape._fast(fast, -1, body, base, 1000.0)
    scrape.KEY_CACHES.clear()
    slow = scrape.ScrapeOutcome(target_id=-1, started=1000.0)
    scrape._label(slow, exposition.parse(body, "text/plain"), base, 1000.0)

    def plain(samples: list) -> list:
        return sorted((key[0], key[1], repr(value), at) for key, at, value in samples)

    return (plain(fast.samples) if took else None), plain(slow.samples)


def test_the_fast_text_path_reads_what_prometheus_client_reads(tmp_path, client, viewer):
    import urllib.request

    from .metrics_helpers import NodeExporter

    exporter = NodeExporter(tmp_path)
    try:
        node = urllib.request.urlopen(exporter.url, timeout=5).read().decode()
    finally:
        exporter.close()
    client.force_login(viewer)
    portal = client.get("/metrics").content.decode()
    odd = (
        '# TYPE jobs counter\njobs 3\njobs{queue="a b}c"} 4 1700000000123\n'
        '# TYPE temp gauge\ntemp{room="x",} NaN\ntemp{room="y"} +Inf\ntemp -2.5e-3\n'
    )
    for body in (EXPOSITION, node, portal, odd):
        fast, slow = _both_paths(body)
        assert fast is not None and fast == slow and len(fast) >= 5
    # A counter declared without _total keeps its name, as Prometheus stores it (prometheus_client would add _total).
    fast, _ = _both_paths(odd)
    assert {sample[0] for sample in fast} == {"jobs", "temp"}
    # Escapes, and anything else unusual, are left to prometheus_client, with the same result.
    escaped = 'x{path="C:\\\\dir",msg="say \\"hi\\"\\n"} 1\n'
    fast, slow = _both_paths(escaped)
    assert fast is None and dict(slow[0][1])["msg"] == 'say "hi"\n'
    from aiops.metrics import scrape

    garbage = scrape.ScrapeOutcome(target_id=-1, started=0.0)
    assert not scrape._fast(garbage, -1, "<html>Welcome to nginx!</html>\n", {}, 0.0) and not garbage.samples
