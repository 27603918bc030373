"""The metrics API: Prometheus's query format (what Grafana reads) and CRUD for targets, sources, rules."""

from __future__ import annotations

import pytest
from django.utils import timezone

from aiops.metrics import partitions, store
from aiops.models import PromSource, ScrapeTarget, ThresholdRule, WatchedQuery
from opsportal.audit.models import AuditEntry

from .metrics_helpers import ExpositionServer

pytestmark = pytest.mark.django_db

PREFIXES = ["/api/v1/aiops/metrics/", "/api/v1/aiops/metrics/api/v1/"]


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


@pytest.fixture
def base() -> int:
    return int(timezone.now().timestamp() - 3600) // 60 * 60


@pytest.fixture
def stored(base):
    """Two series of http_requests_total and a gauge, every 15 s for ten minutes; the 500s counter resets."""
    samples = []
    for code, rate in (("200", 10.0), ("500", 1.0)):
        key = store.series_key("http_requests_total", {"job": "api", "code": code})
        for k in range(40):
            value = rate * 15 * k if code == "200" or k < 20 else rate * 15 * (k - 20)
            samples.append((key, base + 15 * k, value))
    gauge = store.series_key("temperature_celsius", {"job": "api", "room": "server"})
    samples += [(gauge, base + 15 * k, 20.0 + (k % 3) * 0.5) for k in range(40)]
    store.write_samples(samples)
    return base


@pytest.mark.parametrize("prefix", PREFIXES)
def test_query_range_answers_exactly_prometheus_json(viewer_api, stored, prefix):
    response = viewer_api.get(
        f"{prefix}query_range",
        {"query": 'temperature_celsius{room="server"}', "start": stored, "end": stored + 60, "step": 30},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": "temperature_celsius", "job": "api", "room": "server"},
                    "values": [[stored, "20"], [stored + 30, "21"], [stored + 60, "20.5"]],
                }
            ],
        },
    }


def test_grafana_posts_a_form_and_gets_rates_with_the_reset(viewer_api, stored):
    t = stored + 15 * 25  # the 500s counter reset at sample 20; (t - 60, t] holds samples 22..25
    response = viewer_api.post(
        "/api/v1/aiops/metrics/api/v1/query_range",
        {"query": 'rate(http_requests_total{job="api"}[1m])', "start": str(t), "end": str(t), "step": "15s"},
    )
    assert response.status_code == 200, response.content
    result = {item["metric"]["code"]: item["values"] for item in response.json()["data"]["result"]}
    assert result == {"200": [[t, "10"]], "500": [[t, "1"]]}
    assert all("__name__" not in item["metric"] for item in response.json()["data"]["result"])
    increase = viewer_api.get(
        "/api/v1/aiops/metrics/query_range",
        {"query": 'increase(http_requests_total{code="500"}[2m])', "start": t, "end": t, "step": 15},
    ).json()["data"]["result"]
    # Samples 18..25 in (t - 120, t]: 270, 285, then 0 (reset), 15 .. 75; 285 + 75 - 270 = 90 over 105 s -> 120 s.
    assert increase == [{"metric": {"code": "500", "job": "api"}, "values": [[t, "102.85714285714285"]]}]


def test_instant_queries_and_grafanas_health_check(viewer_api, stored):
    health = viewer_api.get("/api/v1/aiops/metrics/api/v1/query", {"query": "1+1", "time": stored})
    assert health.json() == {"status": "success", "data": {"resultType": "scalar", "result": [stored, "2"]}}
    vector = viewer_api.post(
        "/api/v1/aiops/metrics/query", {"query": "temperature_celsius", "time": str(stored + 600)}
    ).json()
    assert vector["data"] == {
        "resultType": "vector",
        "result": [
            {
                "metric": {"__name__": "temperature_celsius", "job": "api", "room": "server"},
                "value": [stored + 600, "20"],
            }
        ],
    }
    buildinfo = viewer_api.get("/api/v1/aiops/metrics/api/v1/status/buildinfo").json()
    assert buildinfo["status"] == "success" and buildinfo["data"]["version"]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"query": "sum(up)"}, "invalid parameter \"query\": the aggregation 'sum' is not supported; supported: "),
        ({"query": "up", "start": "yesterday"}, "invalid parameter \"start\": cannot parse 'yesterday'"),
        ({"query": "up", "step": "0"}, 'invalid parameter "step": zero or negative'),
        ({"query": "up", "step": "fast"}, "invalid parameter \"step\": 'fast' is not a duration"),
        ({"query": "up", "end": "0"}, 'invalid parameter "end": end timestamp must not be before start time'),
        ({"query": "up", "step": "0.001"}, 'invalid parameter "step": exceeded maximum resolution of 11,000 points'),
        ({"query": "up", "start": "1e300"}, 'invalid parameter "start": cannot parse'),
        ({"query": ""}, 'invalid parameter "query": required'),
    ],
)
def test_bad_queries_are_400_in_prometheus_error_format(viewer_api, stored, params, error):
    response = viewer_api.get(
        "/api/v1/aiops/metrics/query_range", {"start": stored, "end": stored + 600, "step": 15, **params}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["errorType"] == "bad_data"
    assert body["error"].startswith(error), body["error"]


def test_series_labels_and_label_values(viewer_api, stored):
    series = viewer_api.get(
        "/api/v1/aiops/metrics/series", {"match[]": ['http_requests_total{code=~"5.."}', "temperature_celsius"]}
    )
    assert series.json() == {
        "status": "success",
        "data": [
            {"__name__": "http_requests_total", "code": "500", "job": "api"},
            {"__name__": "temperature_celsius", "job": "api", "room": "server"},
        ],
    }
    assert viewer_api.get("/api/v1/aiops/metrics/labels").json()["data"] == ["__name__", "code", "job", "room"]
    matched = viewer_api.get("/api/v1/aiops/metrics/labels", {"match[]": "temperature_celsius"}).json()["data"]
    assert matched == ["__name__", "job", "room"]
    names = viewer_api.get("/api/v1/aiops/metrics/api/v1/label/__name__/values").json()["data"]
    assert names == ["http_requests_total", "temperature_celsius"]
    codes = viewer_api.get("/api/v1/aiops/metrics/label/code/values").json()["data"]
    assert codes == ["200", "500"]
    missing = viewer_api.get("/api/v1/aiops/metrics/series")
    assert (
        missing.status_code == 400
        and missing.json()["error"] == 'invalid parameter "match[]": no match[] parameter provided.'
    )


def test_the_query_api_needs_a_token_and_the_viewer_role_suffices_for_posts(client, viewer_api, stored):
    assert client.get("/api/v1/aiops/metrics/query", {"query": "up"}).status_code == 401
    assert viewer_api.post("/api/v1/aiops/metrics/query", {"query": "up"}).status_code == 200


def test_targets_crud_roles_secrets_and_audit(viewer_api, operator_api, allow_loopback):
    body = {
        "name": "node",
        "url": "http://127.0.0.1:9100/metrics",
        "interval_seconds": 15,
        "auth": "bearer",
        "secret": "t0ken",
        "labels": {"env": "prod"},
    }
    assert viewer_api.post("/api/v1/aiops/metrics/targets/", body, format="json").status_code == 403
    created = operator_api.post("/api/v1/aiops/metrics/targets/", body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["has_secret"] is True and "secret" not in data and data["status"] == "pending"
    assert data["timeout_seconds"] == 10.0 and data["labels"] == {"env": "prod"}
    listed = viewer_api.get("/api/v1/aiops/metrics/targets/").json()
    assert [t["name"] for t in listed["results"]] == ["node"]
    changed = operator_api.patch(f"/api/v1/aiops/metrics/targets/{data['id']}/", {"enabled": False}, format="json")
    assert changed.json()["status"] == "paused"
    entry = AuditEntry.objects.filter(object_id=str(data["id"]), model="scrapetarget").order_by("at").first()
    assert entry.changes["secret"] == ["***", "*** (changed)"]
    assert operator_api.delete(f"/api/v1/aiops/metrics/targets/{data['id']}/").status_code == 204
    assert not ScrapeTarget.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "gopher://x"}, "url"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"auth": "kerberos"}, "auth"),
        ({"auth": "basic"}, "username"),
        ({"labels": {"bad-name": "x"}}, "labels"),
    ],
)
def test_bad_targets_are_400_naming_the_field(operator_api, allow_loopback, body, field):
    response = operator_api.post(
        "/api/v1/aiops/metrics/targets/",
        {"name": "t", "url": "http://127.0.0.1:9/metrics", **body},
        format="json",
    )
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()


def test_a_target_private_address_is_refused_without_the_allow_list(operator_api):
    response = operator_api.post(
        "/api/v1/aiops/metrics/targets/", {"name": "t", "url": "http://10.1.2.3/metrics"}, format="json"
    )
    assert response.status_code == 400
    assert "OPSPORTAL_OUTBOUND_ALLOWLIST" in response.json()["errors"]["url"][0]


def test_test_and_scrape_now(operator_api, allow_loopback):
    server = ExpositionServer('# TYPE jobs_total counter\njobs_total{queue="mail"} 4\n')
    try:
        tried = operator_api.post(
            "/api/v1/aiops/metrics/targets/test/", {"url": server.url, "name": "w"}, format="json"
        )
        assert tried.status_code == 200, tried.content
        report = tried.json()
        assert (report["ok"], report["samples_scraped"], report["stored"]) == (True, 1, 0)
        instance = f"127.0.0.1:{server.port}"
        assert report["preview"] == [
            {"name": "jobs_total", "labels": {"instance": instance, "job": "w", "queue": "mail"}, "value": 4.0}
        ]
        assert not ScrapeTarget.objects.exists()
        target = operator_api.post("/api/v1/aiops/metrics/targets/", {"name": "w", "url": server.url}, format="json")
        scraped = operator_api.post(f"/api/v1/aiops/metrics/targets/{target.json()['id']}/scrape/")
        assert scraped.json()["stored"] == 4  # the sample, up, scrape_duration_seconds, scrape_samples_scraped
        server.body = "garbage\n"
        failed = operator_api.post("/api/v1/aiops/metrics/targets/test/", {"url": server.url}, format="json").json()
        assert failed["ok"] is False and failed["error"].startswith("the body does not parse: ")
    finally:
        server.close()


def test_sources_queries_and_threshold_rules(viewer_api, operator_api, allow_loopback):
    source = operator_api.post(
        "/api/v1/aiops/metrics/sources/", {"name": "prom", "base_url": "http://127.0.0.1:9090/"}, format="json"
    )
    assert source.status_code == 201 and source.json()["base_url"] == "http://127.0.0.1:9090"
    watched = operator_api.post(
        "/api/v1/aiops/metrics/queries/",
        {"source": source.json()["id"], "name": "api:error_rate", "query": "sum(rate(x[5m]))", "step_seconds": 30},
        format="json",
    )
    assert watched.status_code == 201, watched.content
    bad_name = operator_api.post(
        "/api/v1/aiops/metrics/queries/",
        {"source": source.json()["id"], "name": "error rate", "query": "up"},
        format="json",
    )
    assert bad_name.status_code == 400 and "name" in bad_name.json()["errors"]
    rule = operator_api.post(
        "/api/v1/aiops/metrics/thresholds/",
        {"name": "hot", "selector": 'temperature_celsius{room="server"}', "comparison": "above", "value": 30,
         "for_seconds": 120, "severity": "critical", "service": "dc"},
        format="json",
    )  # fmt: skip
    assert rule.status_code == 201 and rule.json()["state"] == "ok"
    bad_rule = operator_api.post(
        "/api/v1/aiops/metrics/thresholds/",
        {"name": "x", "selector": "sum(up)", "comparison": "above", "value": 1},
        format="json",
    )
    assert bad_rule.status_code == 400 and "selector" in bad_rule.json()["errors"]
    assert viewer_api.get("/api/v1/aiops/metrics/thresholds/").json()["count"] == 1
    assert viewer_api.patch(f"/api/v1/aiops/metrics/thresholds/{rule.json()['id']}/", {"value": 1}).status_code == 403
    assert operator_api.delete(f"/api/v1/aiops/metrics/sources/{source.json()['id']}/").status_code == 204
    assert not WatchedQuery.objects.exists() and not PromSource.objects.exists() and ThresholdRule.objects.exists()


def test_the_openapi_schema_documents_the_metrics_api(viewer_api):
    schema = viewer_api.get("/api/schema/?format=json").json()
    for path in (
        "/api/v1/aiops/metrics/query_range",
        "/api/v1/aiops/metrics/api/v1/query_range",
        "/api/v1/aiops/metrics/series",
        "/api/v1/aiops/metrics/labels",
        "/api/v1/aiops/metrics/label/{name}/values",
        "/api/v1/aiops/metrics/targets/",
        "/api/v1/aiops/metrics/targets/{id}/scrape/",
        "/api/v1/aiops/metrics/targets/test/",
        "/api/v1/aiops/metrics/sources/{id}/test/",
        "/api/v1/aiops/metrics/queries/{id}/run/",
        "/api/v1/aiops/metrics/thresholds/",
    ):
        assert path in schema["paths"], path
    assert (
        "application/x-www-form-urlencoded"
        in schema["paths"]["/api/v1/aiops/metrics/query_range"]["post"]["requestBody"]["content"]
    )
