"""AIOps figures: alert ingest through the real HTTP stack, and list pages on a big database.

Ingest: gunicorn (4 workers) serving the portal on the benchmark database; clients
POST Alertmanager payloads of 100 alerts (a pool of fingerprints, so most alerts
are re-sends that deduplicate), then the correlation service drains what is
pending. Reported: alerts/s through HTTP, p50/p99 per request, correlation
alerts/s, and the ratio to a raw psycopg COPY of the same number of rows into the
same table in the same run (PostgreSQL only).

Lists: 1,000,000 alerts and 100,000 incidents loaded with COPY, then the incident
and alert list pages and API are timed, with their query counts.
"""

from __future__ import annotations

import datetime
import http.client
import io
import json
import os
import random
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from django.db import connection
from django.test import Client
from django.utils import timezone

from aiops import services
from aiops.models import Alert, Incident, Integration
from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role

from . import server

ROOT = Path(__file__).resolve().parent.parent
# 1,000 payloads of 100 alerts over 6,000 fingerprints: the first ~60 mostly open new alerts, the
# rest are mostly re-sends (what Alertmanager does every group_interval).
PAYLOADS = int(os.environ.get("BENCH_AIOPS_PAYLOADS", "1000"))
ALERTS_PER_PAYLOAD = 100
FINGERPRINT_POOL = 6000
# Two gunicorn workers per core: while one waits on PostgreSQL the other computes.
WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "4"))
CLIENT_THREADS = int(os.environ.get("BENCH_CLIENT_THREADS", "4"))
LIST_ALERTS = int(os.environ.get("BENCH_AIOPS_ALERTS", "1000000"))
LIST_INCIDENTS = LIST_ALERTS // 10
LIST_REPEAT = int(os.environ.get("BENCH_AIOPS_LIST_REPEAT", "50"))


def am_payload(rng: random.Random, batch: int) -> bytes:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    alerts = []
    for _ in range(ALERTS_PER_PAYLOAD):
        n = rng.randrange(FINGERPRINT_POOL)
        alerts.append(
            {
                "status": "firing",
                "labels": {
                    "alertname": f"Alert{n % 40}",
                    "service": f"svc-{n % 25}",
                    "instance": f"host-{n}:9100",
                    "severity": ("critical", "warning", "info")[n % 3],
                },
                "annotations": {"summary": f"Alert{n % 40} on svc-{n % 25}", "description": "bench"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"http://prometheus:9090/graph?g0.expr=a{n}",
                "fingerprint": f"fp{n:08d}",
            }
        )
    body = {
        "version": "4",
        "receiver": "opsportal",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "groupKey": f"bench-{batch}",
        "truncatedAlerts": 0,
    }
    return json.dumps(body).encode()


def post_all(port: int, path: str, token: str, bodies: list[bytes]) -> list[float]:
    """POST every body with CLIENT_THREADS keep-alive connections; returns per-request latencies (ms)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    queue = list(enumerate(bodies))

    def client() -> None:
        try:
            send()
        except Exception as exc:
            errors.append(str(exc))

    def send() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        while True:
            with lock:
                if not queue:
                    return
                _, body = queue.pop()
            start = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - start) * 1000
            if response.status != 202:
                raise RuntimeError(f"ingest answered {response.status}: {response.read()[:300]!r}")
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    return latencies


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by gunicorn and PostgreSQL processes (Linux /proc), to show where time goes."""
    totals = {"gunicorn": 0.0, "postgres": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        if "gunicorn" in command:
            totals["gunicorn"] += used
        elif stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
            totals["postgres"] += used
    return totals


def copy_rate(integration: Integration, rows: int) -> float:
    """Rows/s of a raw psycopg COPY of `rows` alert rows into the alert table (rolled back)."""
    columns = [
        "integration_id", "fingerprint", "status", "severity", "title", "description", "service", "source", "labels",
        "annotations", "starts_at", "first_seen_at", "last_seen_at", "times_seen", "generator_url", "links", "raw",
        "pending", "pending_change",
    ]  # fmt: skip
    now = timezone.now().isoformat()
    labels = json.dumps({"alertname": "A", "service": "s", "instance": "h:9100", "severity": "warning"})
    start = time.perf_counter()
    with connection.cursor() as cursor:
        raw_cursor = cursor.cursor
        with raw_cursor.copy(f"COPY aiops_alert ({', '.join(columns)}) FROM STDIN") as copy:
            for i in range(rows):
                copy.write_row(
                    [integration.pk, f"copy{i}", "resolved", "warning", "A on s", "bench", "s", "", labels, "{}", now,
                     now, now, 1, "", "[]", labels, False, ""]
                )  # fmt: skip
    elapsed = time.perf_counter() - start
    Alert.objects.filter(fingerprint__startswith="copy").delete()
    return rows / elapsed


def bench_ingest(admin) -> dict:
    integration, token = services.create_integration(name="bench", kind="alertmanager", actor=admin)
    rng = random.Random(42)
    bodies = [am_payload(rng, i) for i in range(PAYLOADS)]
    with server.running(workers=WORKERS) as port:
        post_all(port, integration.ingest_path(), token, bodies[:10])  # warm-up
        cpu_before = cpu_seconds()
        start = time.perf_counter()
        latencies = post_all(port, integration.ingest_path(), token, bodies[10:])
        ingest_seconds = time.perf_counter() - start
        cpu_after = cpu_seconds()
    alerts = (PAYLOADS - 10) * ALERTS_PER_PAYLOAD
    start = time.perf_counter()
    correlated = 0
    while processed := services.process_pending_alerts():
        correlated += processed
    correlate_seconds = time.perf_counter() - start
    latencies.sort()
    result = {
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "per_second": alerts / ingest_seconds,
        "queries": 0,
        "requests": len(latencies),
        "alerts": alerts,
        "alerts_per_second_http": alerts / ingest_seconds,
        "correlated": correlated,
        "correlation_alerts_per_second": correlated / correlate_seconds if correlate_seconds else None,
        "end_to_end_alerts_per_second": alerts / (ingest_seconds + correlate_seconds),
        "cpu_ms_per_request": {
            name: round((cpu_after[name] - cpu_before[name]) * 1000 / len(latencies), 2) for name in cpu_after
        },
        "stored_alerts": Alert.objects.count(),
        "incidents": Incident.objects.count(),
    }
    notes = (
        f"{alerts} alerts in {len(latencies)} POSTs of 100 via {WORKERS} gunicorn workers; "
        f"p99 {result['p99_ms']:.0f} ms; "
        f"{result['stored_alerts']} distinct after dedup; "
        f"correlation {result['correlation_alerts_per_second'] or 0:.0f}/s; CPU ms per request: "
        f"gunicorn {result['cpu_ms_per_request']['gunicorn']}, PostgreSQL {result['cpu_ms_per_request']['postgres']}"
    )
    if connection.vendor == "postgresql":
        copy = copy_rate(integration, alerts)
        result["copy_rows_per_second"] = copy
        result["ratio_to_copy"] = result["alerts_per_second_http"] / copy
        notes += f"; COPY {copy:.0f} rows/s, ratio {result['ratio_to_copy']:.2f}"
    result["notes"] = notes
    return result


def load_big_tables(integration: Integration) -> None:
    """LIST_INCIDENTS incidents and LIST_ALERTS alerts, with COPY (PostgreSQL) for speed."""
    now = timezone.now()
    rng = random.Random(3)
    statuses = ("triggered", "acknowledged", "resolved", "resolved", "resolved")
    severities = ("critical", "error", "warning", "info")
    incident_buf = io.StringIO()
    for i in range(LIST_INCIDENTS):
        created = now - datetime.timedelta(minutes=rng.randrange(60 * 24 * 90))
        status = statuses[i % 5]
        ack = (
            (created + datetime.timedelta(minutes=rng.randrange(1, 60))).isoformat() if status != "triggered" else "\\N"
        )
        res = (
            (created + datetime.timedelta(minutes=rng.randrange(60, 600))).isoformat()
            if status == "resolved"
            else "\\N"
        )
        incident_buf.write(
            "\t".join([
                f"Alert{i % 40} on svc-{i % 25}", "", status, severities[i % 4], "", f"svc-{i % 25}",
                f"g{i}", "{}", "[]", created.isoformat(), ack, res, created.isoformat(), "10", "0",
            ]) + "\n"
        )  # fmt: skip
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY aiops_incident (title, summary, status, severity, severity_override, service, group_key,"
            " group_labels, links, created_at, acknowledged_at, resolved_at, last_alert_at, alert_count,"
            " firing_count) FROM STDIN"
        ) as copy:
            copy.write(incident_buf.getvalue())
        cursor.execute("SELECT min(id) FROM aiops_incident")
        first_incident = cursor.fetchone()[0]
        labels = json.dumps({"alertname": "A", "service": "s", "instance": "h:9100"})
        with cursor.cursor.copy(
            "COPY aiops_alert (integration_id, fingerprint, status, severity, title, description, service, source,"
            " labels, annotations, starts_at, first_seen_at, last_seen_at, times_seen, generator_url, links, raw,"
            " pending, pending_change, incident_id) FROM STDIN"
        ) as copy:
            for i in range(LIST_ALERTS):
                seen = (now - datetime.timedelta(seconds=i * 7)).isoformat()
                copy.write_row(
                    [integration.pk, f"big{i}", "resolved" if i % 5 else "firing", severities[i % 4], f"Alert{i % 40}",
                     "", f"svc-{i % 25}", "", labels, "{}", seen, seen, seen, 1 + i % 7, "", "[]", "{}", False, "",
                     first_incident + i % LIST_INCIDENTS]
                )  # fmt: skip
        cursor.execute("ANALYZE aiops_alert; ANALYZE aiops_incident;")


def run() -> Iterator[tuple[str, dict]]:
    admin = accounts.create_user(username="bench-aiops", role=Role.ADMIN, actor=None, password="bench-password-123")
    yield "aiops_ingest_http", bench_ingest(admin)
    if connection.vendor != "postgresql":
        return
    integration = Integration.objects.get(name="bench")
    load_big_tables(integration)
    local_browser = Client()
    local_browser.force_login(admin)
    _token, raw = accounts.create_api_token(user=admin, name="bench", actor=None)
    local_api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    size = f"{LIST_ALERTS:,} alerts / {LIST_INCIDENTS:,} incidents"
    with server.running(workers=1) as port:
        fixed = server.fixed_cost(port, raw)
        browser = server.Http(port, cookie=server.session_cookie(admin))
        api = server.Http(port, raw)
        cases = [
            ("aiops_incident_list_page", browser, "/aiops/", None, local_browser, f"open incidents, {size}"),
            ("aiops_incident_list_filtered", browser, "/aiops/", {"service": "svc-3", "status": "resolved"},
             local_browser, "service + status filter"),
            ("aiops_alert_list_page", browser, "/aiops/alerts/", None, local_browser, size),
            ("aiops_api_incidents", api, "/api/v1/aiops/incidents/", {"severity": "critical", "page": 5}, local_api,
             "API, severity filter, page 5"),
            ("aiops_api_alerts", api, "/api/v1/aiops/alerts/", {"service": "svc-7"}, local_api, "API, by service"),
        ]  # fmt: skip
        for name, client, path, params, local, notes in cases:
            yield name, server.case(client, path, params, fixed, notes, local, repeat=LIST_REPEAT)
        browser.close()
        api.close()
