"""Log ingest (OTLP protobuf and JSON, Loki JSON and snappy protobuf, JSON lines), validation, mining with
persisted state, alerts for new error patterns and bursts, search, pages and retention."""

from __future__ import annotations

import base64
import datetime
import gzip
import json

import cramjam
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from aiops.logs import decode, mining, store
from aiops.models import Alert, Integration, LogMinerState, LogRecord, LogTemplate, LogTemplateBucket, Series
from aiops.services import logs as log_services

from . import factories

OTLP = "/api/v1/aiops/otlp/v1/logs"
LOKI = "/loki/api/v1/push"
JSONL = "/api/v1/aiops/logs/ingest/"
UTC = datetime.UTC


@pytest.fixture(autouse=True)
def _fresh_miners():
    """Each test starts like a fresh process: no miner in memory, no partition assumed to exist."""
    mining.forget()
    store.forget_known()
    yield
    mining.forget()


@pytest.fixture
def logs_integration(admin_user) -> tuple[Integration, str]:
    return factories.integration("logs", "app logs", actor=admin_user)


def _ns(at: datetime.datetime) -> int:
    return int(at.timestamp() * 1e9)


def otlp_request(records: list[dict], service: str = "checkout") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attr = resource_logs.resource.attributes.add(key="service.name")
    attr.value.string_value = service
    env = resource_logs.resource.attributes.add(key="deployment.environment")
    env.value.string_value = "prod"
    scope = resource_logs.scope_logs.add()
    for spec in records:
        log = scope.log_records.add()
        log.time_unix_nano = _ns(spec.get("time", timezone.now()))
        log.severity_number = spec.get("severity_number", 9)
        log.body.string_value = spec["body"]
        for key, value in spec.get("attributes", {}).items():
            log.attributes.add(key=key).value.string_value = value
        if "trace_id" in spec:
            log.trace_id = bytes.fromhex(spec["trace_id"])
            log.span_id = bytes.fromhex(spec["span_id"])
    return request


def post(path: str, body: bytes, token: str | None, content_type: str, **headers: str):
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    if token is not None:
        extra.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
    return Client().post(path, data=body, content_type=content_type, **extra)


def jsonl(*records: dict) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


@pytest.mark.django_db
def test_otlp_protobuf_with_gzip_stores_every_field_and_answers_in_protobuf(logs_integration):
    _, token = logs_integration
    at = timezone.now().replace(microsecond=123000)
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    body = otlp_request(
        [
            {"body": "payment 42 failed: card declined", "severity_number": 17, "time": at,
             "attributes": {"http.route": "/pay"}, "trace_id": trace, "span_id": span},
            {"body": "payment 43 failed: card declined", "severity_number": 17},
            {"body": "user 7 logged in", "severity_number": 9},
        ]
    ).SerializeToString()  # fmt: skip
    response = post(OTLP, gzip.compress(body), token, "application/x-protobuf", Content_Encoding="gzip")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(response.content).HasField("partial_success")

    records = list(LogRecord.objects.order_by("id"))
    assert len(records) == 3
    first = records[0]
    assert (first.service, first.severity, first.body) == ("checkout", "error", "payment 42 failed: card declined")
    assert first.time == at
    assert first.attributes == {"http.route": "/pay", "deployment.environment": "prod"}
    assert (first.trace_id, first.span_id) == (trace, span)
    assert records[2].severity == "info"
    assert all(r.template_id for r in records)
    assert records[0].template_id == records[1].template_id != records[2].template_id
    template = LogTemplate.objects.get(pk=first.template_id)
    assert template.template == "payment <*> failed: card declined"
    assert (template.count, template.severity) == (2, "error")


@pytest.mark.django_db
def test_otlp_json_is_accepted_with_camel_case_fields(logs_integration):
    _, token = logs_integration
    payload = {
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "search"}}]},
            "scopeLogs": [{"logRecords": [{
                "timeUnixNano": str(_ns(timezone.now())), "severityText": "WARN",
                "body": {"stringValue": "slow query took 1200 ms"},
                "attributes": [{"key": "db.rows", "value": {"intValue": "12"}}],
                "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            }]}],
        }]
    }  # fmt: skip
    response = post(OTLP, json.dumps(payload).encode(), token, "application/json")
    assert response.status_code == 200, response.content
    assert response.json() == {"partialSuccess": {}}
    record = LogRecord.objects.get()
    assert (record.service, record.severity, record.body) == ("search", "warning", "slow query took 1200 ms")
    assert record.attributes == {"db.rows": "12"}
    assert record.trace_id == "5b8efff798038103d269b633813fc60c"


@pytest.mark.django_db
def test_loki_json_and_snappy_protobuf_with_basic_auth(logs_integration):
    _, token = logs_integration
    now_ns = _ns(timezone.now())
    payload = {
        "streams": [
            {"stream": {"job": "varlogs", "service_name": "billing", "level": "error"},
             "values": [[str(now_ns), "invoice 991 could not be sent"],
                        [str(now_ns + 1), "invoice 992 could not be sent",
                        {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}]]},
            {"stream": {"job": "nginx"}, "values": [[str(now_ns), "GET /health 200"]]},
        ]
    }  # fmt: skip
    basic = base64.b64encode(f"promtail:{token}".encode()).decode()
    response = post(LOKI, json.dumps(payload).encode(), None, "application/json", Authorization=f"Basic {basic}")
    assert response.status_code == 204, response.content

    push = decode.LokiPushRequest()
    stream = push.streams.add(labels='{service="api", job="ignored", level="warn"}')
    entry = stream.entries.add(line="retrying connection to db-1 in 5s")
    entry.timestamp.FromNanoseconds(now_ns)
    compressed = bytes(cramjam.snappy.compress_raw(push.SerializeToString()))
    response = post(LOKI, compressed, token, "application/x-protobuf")
    assert response.status_code == 204, response.content

    by_body = {r.body: r for r in LogRecord.objects.all()}
    billing = by_body["invoice 991 could not be sent"]
    assert (billing.service, billing.severity) == ("billing", "error")  # service_name before job
    assert billing.attributes == {"job": "varlogs", "level": "error"}
    assert by_body["invoice 992 could not be sent"].trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert by_body["GET /health 200"].service == "nginx"
    api = by_body["retrying connection to db-1 in 5s"]
    assert (api.service, api.severity) == ("api", "warning")


@pytest.mark.django_db
def test_json_lines(logs_integration):
    _, token = logs_integration
    body = jsonl(
        {"time": "2026-01-01T00:00:00Z", "service": "batch", "level": "info", "message": "too old"},
        {"service": "batch", "severity": "ERROR", "body": "job 12 crashed", "attributes": {"attempt": 3}},
    )
    response = post(JSONL, body, token, "application/x-ndjson")
    assert response.status_code == 202, response.content
    # The first record is older than the retention: refused, and said so.
    assert response.json()["accepted"] == 1 and response.json()["rejected"] == 1
    record = LogRecord.objects.get()
    assert (record.service, record.severity, record.attributes) == ("batch", "error", {"attempt": "3"})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "content_type", "body", "record", "field"),
    [
        (JSONL, "application/x-ndjson", jsonl({"body": "ok"}, {"body": "ok", "severity": "loud"}), 1, "severity"),
        (JSONL, "application/x-ndjson", jsonl({"body": "ok"}, {"body": "x", "trace_id": "xyz"}), 1, "trace_id"),
        (LOKI, "application/json",
         json.dumps({"streams": [{"stream": {"job": "a"}, "values": [["1", "a"], ["x", "b"]]}]}),
         1, "streams[0].values[1][0]"),
        (OTLP, "application/json", json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"body": {"stringValue": "fine"}}, {"body": {"stringValue": "bad"}, "timeUnixNano": "soon"}]}]}]}),
         1, "timeUnixNano"),
        (OTLP, "application/x-protobuf", b"\xff\xff not protobuf", None, "(body)"),
    ],
)  # fmt: skip
def test_a_malformed_batch_is_a_400_naming_record_and_field_and_stores_nothing(
    logs_integration, path, content_type, body, record, field
):
    _, token = logs_integration
    response = post(path, body if isinstance(body, bytes) else body.encode(), token, content_type)
    assert response.status_code == 400, response.content
    answer = response.json()
    assert (answer["record"], answer["field"]) == (record, field)
    if record is not None:
        assert f"record {record}" in answer["detail"]
    assert LogRecord.objects.count() == 0
    assert LogTemplate.objects.count() == 0


@pytest.mark.django_db
def test_only_a_logs_integration_token_is_accepted(logs_integration, admin_user):
    _, alert_token = factories.integration("alertmanager", "am", actor=admin_user)
    body = jsonl({"body": "hello"})
    assert post(JSONL, body, None, "application/x-ndjson").status_code == 401
    assert post(JSONL, body, alert_token, "application/x-ndjson").status_code == 401
    assert post(LOKI, b"{}", "opi_wrong", "application/json").status_code == 401
    integration, token = logs_integration
    Integration.objects.filter(pk=integration.pk).update(enabled=False)
    assert post(JSONL, body, token, "application/x-ndjson").status_code == 401
    assert LogRecord.objects.count() == 0


@pytest.mark.django_db
def test_templates_survive_a_restart(logs_integration):
    _, token = logs_integration
    lines = [{"service": "api", "body": f"request {n} served in {n * 3} ms"} for n in range(20)]
    lines += [{"service": "api", "body": f"cache miss for key user:{n}"} for n in range(5)]
    assert post(JSONL, jsonl(*lines), token, "application/x-ndjson").status_code == 202
    before = dict(LogTemplate.objects.values_list("template", "id"))
    assert set(before) == {"request <*> served in <*> ms", "cache miss for key <*>"}
    state = LogMinerState.objects.get(service="api")
    assert state.clusters == 2

    mining.forget()  # a new process: the miner comes back from its persisted drain3 state
    more = [{"service": "api", "body": "request 999 served in 1 ms"}, {"service": "api", "body": "disk full on /var"}]
    assert post(JSONL, jsonl(*more), token, "application/x-ndjson").status_code == 202
    after = dict(LogTemplate.objects.values_list("template", "id"))
    assert after["request <*> served in <*> ms"] == before["request <*> served in <*> ms"]
    assert LogTemplate.objects.get(template="request <*> served in <*> ms").count == 21
    assert "disk full on /var" in after
    assert LogMinerState.objects.get(service="api").clusters == 3


@pytest.mark.django_db
def test_a_new_error_template_raises_one_alert_linking_to_its_records(logs_integration, viewer):
    _, token = logs_integration
    info = [{"service": "payments", "severity": "info", "body": f"charge {n} ok"} for n in range(3)]
    assert post(JSONL, jsonl(*info), token, "application/x-ndjson").status_code == 202
    assert not Alert.objects.exists()
    errors = [
        {"service": "payments", "severity": "error", "body": f"charge {n} failed: gateway timeout"} for n in range(3)
    ]
    assert post(JSONL, jsonl(*errors), token, "application/x-ndjson").status_code == 202
    assert post(JSONL, jsonl(*errors), token, "application/x-ndjson").status_code == 202

    alert = Alert.objects.get()
    template = LogTemplate.objects.get(template="charge <*> failed: gateway timeout")
    assert alert.service == "payments" and alert.severity == "error"
    assert alert.labels["alertname"] == "NewErrorLogPattern" and alert.labels["template_id"] == str(template.pk)
    assert "charge <*> failed: gateway timeout" in alert.title
    link = alert.links[0]["href"]
    assert f"template={template.pk}" in link
    path = link.split("127.0.0.1:8000", 1)[-1]
    client = Client()
    client.force_login(viewer)
    page = client.get(path)
    assert page.status_code == 200
    assert page.content.decode().count("gateway timeout") >= 6


@pytest.mark.django_db
def test_search_api_filters(logs_integration, viewer_api):
    _, token = logs_integration
    now = timezone.now()
    lines = [
        {"service": "api", "severity": "error", "body": "Timeout calling payments", "attributes": {"region": "eu"}},
        {"service": "api", "severity": "info", "body": "calling payments", "attributes": {"region": "us"}},
        {"service": "web", "severity": "error", "body": "Timeout rendering page"},
        {"service": "api", "severity": "error", "body": "old timeout",
         "time": (now - datetime.timedelta(hours=3)).isoformat()},
    ]  # fmt: skip
    assert post(JSONL, jsonl(*lines), token, "application/x-ndjson").status_code == 202

    def bodies(**params) -> list[str]:
        response = viewer_api.get("/api/v1/aiops/logs/", params)
        assert response.status_code == 200, response.content
        return [r["body"] for r in response.json()["results"]]

    assert bodies(q="timeout") == ["Timeout rendering page", "Timeout calling payments", "old timeout"]
    assert bodies(q="timeout", service="api", since="1h") == ["Timeout calling payments"]
    assert bodies(severity="ERROR", service="api") == ["Timeout calling payments", "old timeout"]
    assert bodies(**{"attr.region": "us"}) == ["calling payments"]
    result = viewer_api.get("/api/v1/aiops/logs/", {"service": "api", "q": "calling payments"}).json()["results"]
    first = result[-1]
    assert set(first) == {"id", "time", "service", "severity", "body", "attributes", "trace_id", "span_id",
                          "template_id"}  # fmt: skip
    bad = viewer_api.get("/api/v1/aiops/logs/", {"since": "yesterday-ish"})
    assert bad.status_code == 400 and "since" in bad.json()["detail"]
    assert viewer_api.get("/api/v1/aiops/logs/", {"severity": "loud"}).status_code == 400

    patterns = viewer_api.get("/api/v1/aiops/log-patterns/", {"service": "api"}).json()["results"]
    assert {"id", "template", "count", "first_seen", "last_seen"} <= set(patterns[0])
    assert sum(p["count"] for p in patterns) == 3
    assert Client().get("/api/v1/aiops/logs/").status_code in (401, 403)


@pytest.mark.django_db
def test_bursts_alert_and_template_counts_become_metric_series(logs_integration):
    _, token = logs_integration
    now = timezone.now().replace(second=30, microsecond=0)
    lines = []
    for minutes_ago in range(40, 2, -1):  # one error a minute: the baseline
        at = now - datetime.timedelta(minutes=minutes_ago)
        lines.append({"service": "db", "severity": "error", "body": f"deadlock on table orders id {minutes_ago}",
                      "time": at.isoformat()})  # fmt: skip
    burst_minute = now - datetime.timedelta(minutes=2)
    lines += [
        {"service": "db", "severity": "error", "body": f"deadlock on table orders id {n}",
         "time": (burst_minute + datetime.timedelta(seconds=n % 20)).isoformat()}
        for n in range(60)
    ]  # fmt: skip
    assert post(JSONL, jsonl(*lines), token, "application/x-ndjson").status_code == 202
    template = LogTemplate.objects.get(service="db")
    assert LogTemplateBucket.objects.filter(template=template).count() == 39

    done = log_services.evaluate_log_templates(now=now)
    assert done.bursts == [template.pk]
    burst = Alert.objects.get(labels__alertname="LogErrorBurst")
    assert "60 records" in burst.description and f"template={template.pk}" in burst.links[0]["href"]
    series = Series.objects.get(name=log_services.METRIC_NAME)
    assert series.labels == {"service": "db", "template_id": str(template.pk)}
    # A second run counts nothing twice; a quiet stretch resolves the burst.
    assert log_services.evaluate_log_templates(now=now).minutes == 0
    log_services.evaluate_log_templates(now=now + datetime.timedelta(minutes=10))
    burst.refresh_from_db()
    assert burst.status == "resolved"
    assert LogTemplate.objects.get(pk=template.pk).bursting_since is None


@pytest.mark.django_db
def test_pages_search_live_tail_patterns_and_record_neighbours(logs_integration, viewer):
    _, token = logs_integration
    now = timezone.now()
    lines = [{"service": "api", "body": f"step {n} of job done",
              "time": (now - datetime.timedelta(seconds=30 - n)).isoformat()}
             for n in range(30)]  # fmt: skip
    assert post(JSONL, jsonl(*lines), token, "application/x-ndjson").status_code == 202
    client = Client()
    assert client.get("/aiops/logs/").status_code == 302  # login required
    client.force_login(viewer)
    page = client.get("/aiops/logs/", {"service": "api", "q": "step", "tail": "1"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "step 29 of job done" in html and 'id="log-tail"' in html
    newest = LogRecord.objects.order_by("-id").first()
    tail = client.get("/aiops/logs/", {"service": "api", "tail": "1", "after": newest.id}, HTTP_HX_REQUEST="true")
    assert "step" not in tail.content.decode()
    assert (
        post(JSONL, jsonl({"service": "api", "body": "step 99 of job done"}), token, "application/x-ndjson").status_code
        == 202
    )
    tail = client.get("/aiops/logs/", {"service": "api", "tail": "1", "after": newest.id}, HTTP_HX_REQUEST="true")
    assert "step 99 of job done" in tail.content.decode()

    patterns = client.get("/aiops/logs/patterns/", {"service": "api"}).content.decode()
    assert "step &lt;*&gt; of job done" in patterns and ">new<" in patterns and "spark-" in patterns

    middle = LogRecord.objects.get(body="step 15 of job done")
    record_page = client.get(f"/aiops/logs/{middle.pk}/").content.decode()
    assert "step 14 of job done" in record_page and "step 16 of job done" in record_page
    assert client.get("/aiops/logs/", {"since": "whenever"}).status_code == 400


@pytest.mark.django_db
def test_retention_drops_whole_days(settings):
    if connection.vendor != "postgresql":
        pytest.skip("day partitions are PostgreSQL's")
    now = datetime.datetime.now(UTC)
    old_day = (now - datetime.timedelta(days=settings.LOGS_RETENTION_DAYS + 2)).date()
    store.ensure_partitions({old_day})
    done = log_services.maintain_log_storage(now)
    assert store.partition_name(old_day) in done.dropped
    names = [name for name, _, _ in store.partition_sizes()]
    assert store.partition_name(old_day) not in names
    assert store.partition_name(now.date()) in names


@pytest.mark.django_db
def test_a_logs_integration_is_created_on_its_page_and_in_the_api(admin_user, admin_api):
    client = Client()
    client.force_login(admin_user)
    response = client.post("/aiops/integrations/", {"name": "app logs", "kind": "logs", "rate_limit_per_minute": 600})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    token = Integration.objects.get(name="app logs")
    assert "/api/v1/aiops/otlp/v1/logs" in page and "/loki/api/v1/push" in page
    assert "otlphttp/opsportal" in page and "loki.write" in page and "Send test alert" not in page
    raw = page.split('id="token-value"')[0].rsplit('value="', 1)[1].split('"', 1)[0]
    assert post(JSONL, jsonl({"body": "hello from a script"}), raw, "application/x-ndjson").status_code == 202
    assert LogRecord.objects.get().body == "hello from a script"

    created = admin_api.post("/api/v1/aiops/integrations/", {"name": "more logs", "kind": "logs"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["url"].endswith("/api/v1/aiops/otlp/v1/logs")
    assert token.kind == "logs"


@pytest.mark.django_db
def test_the_demo_seeds_logs_with_patterns_and_a_burst():
    from aiops.log_demo import seed_logs

    assert seed_logs(actor=None) is True
    assert seed_logs(actor=None) is False
    services_ = set(LogTemplate.objects.values_list("service", flat=True))
    assert services_ == {"checkout", "payments", "search"}
    burst = LogTemplate.objects.get(template__contains="card processor timeout")
    assert burst.severity == "error" and burst.bursting_since is not None
    assert Alert.objects.filter(labels__alertname="LogErrorBurst", service="payments").exists()
    assert Alert.objects.filter(labels__alertname="NewErrorLogPattern", service="payments").exists()
    assert LogRecord.objects.count() > 3000


@pytest.mark.django_db
def test_log_context_lists_new_and_bursting_patterns_of_the_service(logs_integration):
    _, token = logs_integration
    old = timezone.now() - datetime.timedelta(hours=3)
    lines = [{"service": "api", "body": f"request {n} ok", "time": old.isoformat()} for n in range(3)]
    lines += [{"service": "api", "severity": "error", "body": "db pool exhausted"}, {"service": "web", "body": "hi"}]
    assert post(JSONL, jsonl(*lines), token, "application/x-ndjson").status_code == 202
    now = timezone.now()
    items = log_services.log_context(service="api", since=now - datetime.timedelta(minutes=30), until=now)
    assert [(item.reason, item.template.template) for item in items] == [("new", "db pool exhausted")]
    assert f"template={items[0].template.pk}" in items[0].url
    LogTemplate.objects.filter(template="request <*> ok").update(bursting_since=now - datetime.timedelta(minutes=5))
    items = log_services.log_context(service="api", since=now - datetime.timedelta(minutes=30), until=now)
    assert [item.reason for item in items] == ["burst", "new"]


@pytest.mark.django_db
def test_a_body_over_the_limit_is_refused_even_once_decompressed(logs_integration, settings):
    _, token = logs_integration
    settings.LOGS_MAX_BODY_BYTES = 4096
    small_but_inflating = gzip.compress(jsonl(*[{"body": "x" * 100}] * 200))
    assert len(small_but_inflating) < 4096
    response = post(JSONL, small_but_inflating, token, "application/x-ndjson", Content_Encoding="gzip")
    assert response.status_code == 413 and "decompressed" in response.json()["detail"]
    response = post(JSONL, b"{}" * 3000, token, "application/x-ndjson")
    assert response.status_code == 413
    assert LogRecord.objects.count() == 0


@pytest.mark.django_db
def test_two_processes_give_the_same_template_ids(logs_integration):
    """Each process has its own miners; a state saved by another process is reloaded before mining more."""
    _, token = logs_integration

    def send(*bodies: str) -> None:
        assert post(JSONL, jsonl(*[{"service": "api", "body": b} for b in bodies]), token, "x").status_code == 202

    send("worker 1 started", "queue empty")
    process_a = dict(mining._miners)
    mining.forget()  # process B: loads the state from the database
    send("disk full on volume data", "queue empty")
    mining._miners.clear()
    mining._miners.update(process_a)  # back in process A, whose copy is one version behind
    send("disk full on volume data", "worker 2 started")
    templates = dict(LogTemplate.objects.values_list("template", "count"))
    assert templates == {"worker <*> started": 2, "queue empty": 2, "disk full on volume data": 2}
    assert LogMinerState.objects.get(service="api").clusters == 3
