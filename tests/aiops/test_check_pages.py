"""Check pages: the list, one check, the create/edit form with Test now, and the actions, as people use them."""

from __future__ import annotations

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.models import Check, CheckHourlyStat, CheckOutage, CheckResult
from aiops.services.check_runs import alert_for
from opsportal.audit.models import AuditEntry
from tests.aiops.check_targets import Target, closed_port
from tests.aiops.pages import json_script, text_of
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


def http_check(name: str = "Checkout API", url: str = "https://checkout.example/health", **extra) -> Check:
    return services.create_check(actor=None, name=name, kind="http", config={"url": url}, **extra)


def add_runs(
    check: Check, latencies: list[float | None], *, failed: set[int] = frozenset(), error: str = "", minutes: int = 1
) -> None:
    """Results `minutes` apart ending now (index in `failed`: down with `error`), and their hourly counts."""
    now = timezone.now()
    results = [
        CheckResult(
            check_obj=check,
            at=now - datetime.timedelta(minutes=minutes * (len(latencies) - i)),
            up=i not in failed,
            latency_ms=latency,
            status_code=200 if i not in failed else 503,
            error="" if i not in failed else error,
        )
        for i, latency in enumerate(latencies)
    ]
    CheckResult.objects.bulk_create(results)
    hour = now.replace(minute=0, second=0, microsecond=0)
    CheckHourlyStat.objects.create(check_obj=check, hour=hour, total=len(latencies), up=len(latencies) - len(failed))


def state(check: Check, status: str, **fields) -> None:
    changed = timezone.now() - datetime.timedelta(minutes=10)
    Check.objects.filter(pk=check.pk).update(status=status, status_changed_at=changed, **fields)


# --- List ----------------------------------------------------------------------------------------


def test_the_list_shows_each_checks_state_in_words_latency_uptime_sparkline_and_next_run(viewer):
    api = http_check("Checkout API", service="checkout")
    add_runs(api, [10, 20, 30, 40], failed={1}, error="503 Service Unavailable")
    state(api, Check.Status.UP, last_latency_ms=40.4)
    web = http_check(("Website " + "very long name " * 10).strip(), url="https://www.example/")
    state(web, Check.Status.DOWN)
    cron = services.create_check(actor=None, name="Nightly backup", kind="heartbeat", period_seconds=3600)

    response = client_for(viewer).get("/aiops/checks/")

    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(rf'<tr id="check-{api.pk}">(.*?)</tr>', html, re.S).group(1)
    assert "check-state-up" in row and ">Up<" in row
    assert "https://checkout.example/health" in row and "checkout" in row
    assert "40 ms" in row
    assert '<td class="text-end text-nowrap uptime-24h">75%</td>' in row
    assert "Latency of the last 4 runs: 10 to 40 ms, 1 failed" in row
    assert row.count("<circle") == 1
    down_row = re.search(rf'<tr id="check-{web.pk}">(.*?)</tr>', html, re.S).group(1)
    assert ">Down<" in down_row and "no runs yet" in down_row
    assert f'class="cell-text" href="/aiops/checks/{web.pk}/" title="{web.name}">{web.name}</a>' in down_row
    assert "waiting for a ping" in re.search(rf'<tr id="check-{cron.pk}">(.*?)</tr>', html, re.S).group(1)
    services.record_ping(ping_uuid=str(cron.ping_uuid), kind="success")
    services.record_ping(ping_uuid=str(cron.ping_uuid), kind="fail")
    html = client_for(viewer).get("/aiops/checks/").content.decode()
    pinged = re.search(rf'<tr id="check-{cron.pk}">(.*?)</tr>', html, re.S).group(1)
    # A heartbeat's pings have no latency: one dot each, red when it failed.
    assert "The last 2 runs: 1 up, 1 failed" in pinged and pinged.count("<circle") == 2
    text = text_of(response)
    assert "Up 1" in text and "Down 1" in text and "New 1" in text
    # Viewers read: no selection boxes, no bulk buttons, no New check.
    assert 'name="ids"' not in html and "Pause selected" not in html and "New check" not in html


def test_operators_get_selection_boxes_bulk_actions_and_new_check(operator):
    check = http_check()
    html = client_for(operator).get("/aiops/checks/").content.decode()
    assert f'name="ids" value="{check.pk}"' in html
    assert "Pause selected" in html and "Resume selected" in html
    assert 'href="/aiops/checks/new/"' in html


def test_filters_by_status_kind_service_and_search_and_names_values_they_do_not_know(viewer):
    http_check("Checkout API", service="checkout")
    state(http_check("Search API", url="https://search.example/", service="search"), Check.Status.DOWN)
    services.create_check(actor=None, name="Backup", kind="heartbeat", service="ops")
    client = client_for(viewer)

    def names(query: str) -> list[str]:
        html = client.get(f"/aiops/checks/{query}").content.decode()
        return re.findall(r'<a class="cell-text" href="/aiops/checks/\d+/" title="([^"]+)"', html)

    assert names("?status=down") == ["Search API"]
    assert names("?kind=heartbeat") == ["Backup"]
    assert names("?service=checkout") == ["Checkout API"]
    assert names("?q=search.example") == ["Search API"]
    assert names("?q=api&kind=http") == ["Checkout API", "Search API"]
    response = client.get("/aiops/checks/?status=sideways&kind=smtp")
    text = text_of(response)
    assert "Filter status: “sideways” — not a value it knows" in text
    assert "Filter kind: “smtp” — not a value it knows" in text
    assert names("?status=sideways") == ["Backup", "Checkout API", "Search API"]


def test_an_htmx_refresh_answers_the_table_alone(viewer):
    http_check()
    response = client_for(viewer).get("/aiops/checks/?status=new", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert '<table class="table table-hover align-middle" id="checks">' in html
    assert "<html" not in html and "Checkout API" in html


def test_the_list_reads_a_page_of_checks_in_a_constant_number_of_queries(viewer):
    client = client_for(viewer)
    client.get("/aiops/checks/")  # session and user are cached from here on

    def queries_for(count: int) -> int:
        existing = Check.objects.count()
        for n in range(existing, count):
            check = http_check(f"check {n:02d}", url=f"https://h{n}.example/")
            add_runs(check, [5, 6, 7])
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/aiops/checks/")
        assert response.status_code == 200
        assert response.content.decode().count('<svg class="sparkline"') == count
        return len(captured)

    assert queries_for(3) == queries_for(15)


# --- One check ------------------------------------------------------------------------------------


def test_the_check_page_charts_latency_with_down_periods_shaded_and_lists_results_newest_first(viewer):
    check = http_check(service="checkout")
    add_runs(check, [12, 15, None], failed={2}, error="[Errno 111] Connection refused", minutes=10)
    started = timezone.now() - datetime.timedelta(minutes=30)
    CheckOutage.objects.create(check_obj=check, started_at=started, ended_at=started + datetime.timedelta(minutes=5))
    CheckOutage.objects.create(check_obj=check, started_at=timezone.now() - datetime.timedelta(minutes=1))
    state(check, Check.Status.DOWN, last_error="[Errno 111] Connection refused")

    response = client_for(viewer).get(f"/aiops/checks/{check.pk}/")

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    figure = json_script(response, "check-latency")
    latency = figure["data"][0]
    assert [y for y in latency["y"] if y is not None] == [12.0, 15.0]
    assert len(figure["data"][1]["x"]) == 1  # the failed run's bucket, marked
    shapes = figure["layout"]["shapes"]
    assert len(shapes) == 2 and all(s["type"] == "rect" and s["yref"] == "paper" for s in shapes)
    buttons = [b["label"] for b in figure["layout"]["xaxis"]["rangeselector"]["buttons"]]
    assert buttons == ["1 h", "6 h", "1 d", "7 d", "all"]
    html = response.content.decode()
    rows = re.findall(r'<tr class="result-(up|down)">', html)
    assert rows == ["down", "up", "up"]  # newest first
    assert "[Errno 111] Connection refused" in html
    text = text_of(response)
    assert "2 down periods shaded red" in text
    assert "24 hours 66.667%" in text
    assert "Down since 10 minutes ago" in text
    # Viewers see no actions.
    assert "Run now" not in html and "/edit/" not in html


def test_the_window_links_change_the_charted_span_and_an_unknown_one_falls_back_to_a_day(viewer):
    check = http_check()
    client = client_for(viewer)
    week = json_script(client.get(f"/aiops/checks/{check.pk}/?window=7d"), "check-latency")
    start, end = (datetime.datetime.fromisoformat(v) for v in week["layout"]["xaxis"]["range"])
    assert round((end - start).total_seconds() / 86400) == 7
    odd = json_script(client.get(f"/aiops/checks/{check.pk}/?window=1y"), "check-latency")
    start, end = (datetime.datetime.fromisoformat(v) for v in odd["layout"]["xaxis"]["range"])
    assert round((end - start).total_seconds() / 3600) == 24


def test_results_are_paged(viewer):
    check = http_check()
    add_runs(check, [float(n) for n in range(60)])
    client = client_for(viewer)
    first = client.get(f"/aiops/checks/{check.pk}/").content.decode()
    assert first.count('<tr class="result-up">') == 50 and "Page 1 of 2" in first
    second = client.get(f"/aiops/checks/{check.pk}/?part=results&page=2", HTTP_HX_REQUEST="true")
    assert second.content.decode().count('<tr class="result-up">') == 10
    assert "<html" not in second.content.decode()


def test_the_check_page_links_the_incidents_its_alert_opened(viewer):
    check = http_check()
    alert_for(check, down=True, error="503")
    services.process_pending_alerts()
    incident = services.incidents_opened(check=check).get()
    html = client_for(viewer).get(f"/aiops/checks/{check.pk}/").content.decode()
    assert f'href="/aiops/incidents/{incident.pk}/"' in html


def test_a_heartbeats_page_shows_its_ping_url_copy_button_examples_and_recent_pings(viewer):
    check = services.create_check(actor=None, name="Nightly backup", kind="heartbeat", period_seconds=86400)
    services.record_ping(ping_uuid=str(check.ping_uuid), kind="start")
    services.record_ping(ping_uuid=str(check.ping_uuid), kind="fail", body=b"disk full\nno space left", method="POST")

    response = client_for(viewer).get(f"/aiops/checks/{check.pk}/")

    html = response.content.decode()
    url = f"http://testserver/ping/{check.ping_uuid}"
    assert f'value="{url}" id="ping-url"' in html and 'data-copy="#ping-url"' in html
    text = text_of(response)
    assert f"curl -fsS -m 10 --retry 5 -o /dev/null {url}/start" in text
    assert f"/usr/local/bin/backup.sh; curl -fsS -m 10 --retry 5 -o /dev/null {url}/$?" in text
    assert "*/5 * * * *" in text
    pings = re.search(r'<table class="table table-sm align-middle" id="check-pings">(.*?)</table>', html, re.S).group(1)
    assert "Fail" in pings and "Start" in pings and "POST" in pings
    assert "disk full" in pings
    assert "Run now" not in html
    assert response["Cache-Control"].startswith("max-age=0")


# --- Actions --------------------------------------------------------------------------------------


def test_operators_pause_resume_and_delete_a_check_viewers_cannot(viewer, operator):
    check = http_check()
    assert client_for(viewer).post(f"/aiops/checks/{check.pk}/pause/").status_code == 403
    client = client_for(operator)

    response = client.post(f"/aiops/checks/{check.pk}/pause/", follow=True)
    check.refresh_from_db()
    assert check.paused and check.status == Check.Status.PAUSED
    assert "Paused: not run, no alerts, until resumed." in text_of(response)
    assert ">Resume</button>" in response.content.decode()

    client.post(f"/aiops/checks/{check.pk}/resume/")
    check.refresh_from_db()
    assert not check.paused and check.status == Check.Status.NEW

    response = client.post(f"/aiops/checks/{check.pk}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == "/aiops/checks/"
    assert "Check Checkout API deleted." in text_of(response)
    assert not Check.objects.filter(pk=check.pk).exists()
    assert AuditEntry.objects.filter(action="delete", object_repr="Checkout API").exists()


def test_run_now_stores_a_result_and_says_how_it_went(operator, target, allow_loopback):
    check = http_check(url=target.url("/health"))
    client = client_for(operator)
    response = client.post(f"/aiops/checks/{check.pk}/run/", follow=True)
    assert re.search(r"Ran: up in \d+ ms\.", text_of(response))
    target.answer(500)
    response = client.post(f"/aiops/checks/{check.pk}/run/", follow=True)
    assert "Ran: down" in text_of(response)
    assert CheckResult.objects.filter(check_obj=check).count() == 2


def test_a_heartbeat_cannot_be_run_now_and_says_why(operator):
    check = services.create_check(actor=None, name="Backup", kind="heartbeat")
    response = client_for(operator).post(f"/aiops/checks/{check.pk}/run/", follow=True)
    assert "a heartbeat is not run by the portal" in text_of(response)


def test_bulk_pause_and_resume_keep_the_filtered_list(operator, viewer):
    a, b, c = http_check("a"), http_check("b"), http_check("c")
    client = client_for(operator)
    response = client.post(
        "/aiops/checks/bulk/", {"ids": [a.pk, b.pk], "action": "pause", "next": "/aiops/checks/?kind=http"}
    )
    assert response.status_code == 302 and response["Location"] == "/aiops/checks/?kind=http"
    assert set(Check.objects.filter(paused=True).values_list("pk", flat=True)) == {a.pk, b.pk}
    response = client.post("/aiops/checks/bulk/", {"ids": [a.pk], "action": "resume"}, follow=True)
    assert "1 check resumed." in text_of(response)
    assert set(Check.objects.filter(paused=True).values_list("pk", flat=True)) == {b.pk}
    response = client.post("/aiops/checks/bulk/", {"ids": [c.pk, 99999], "action": "pause"}, follow=True)
    assert "ids: no check with id 99999." in text_of(response)
    assert not Check.objects.get(pk=c.pk).paused
    response = client.post("/aiops/checks/bulk/", {"action": "pause"}, follow=True)
    assert "Select checks first." in text_of(response)
    assert client_for(viewer).post("/aiops/checks/bulk/", {"ids": [c.pk], "action": "pause"}).status_code == 403


# --- Form -----------------------------------------------------------------------------------------


def http_form(**values) -> dict:
    return {
        "name": "Checkout API", "kind": "http", "severity": "critical", "service": "checkout",
        "http_url": "https://checkout.example/health", "http_method": "GET", "http_expected_status": "200-299, 301",
        "interval_seconds": "30", "timeout_seconds": "5", "retries": "2", "labels": "team=payments\nenv=prod",
        "http_follow_redirects": "on", "http_verify_tls": "on", "schedule": "period", "grace_seconds": "300",
        "tz": "UTC", **values,
    }  # fmt: skip


def test_viewers_cannot_open_the_form(viewer):
    assert client_for(viewer).get("/aiops/checks/new/").status_code == 403
    check = http_check()
    assert client_for(viewer).get(f"/aiops/checks/{check.pk}/edit/").status_code == 403


def test_an_operator_creates_an_http_check_with_its_options(operator):
    client = client_for(operator)
    assert client.get("/aiops/checks/new/").status_code == 200
    response = client.post(
        "/aiops/checks/new/",
        http_form(
            http_headers="Accept: application/json",
            http_keyword="ok",
            http_keyword_absent="on",
            http_json_path="$.status",
            http_json_expected='"ok"',
            http_max_latency_ms="800",
            http_tls_min_days_left="14",
            http_follow_redirects="",
        ),
    )
    check = Check.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/aiops/checks/{check.pk}/"
    assert check.kind == "http" and check.severity == "critical" and check.service == "checkout"
    assert check.interval_seconds == 30 and check.timeout_seconds == 5 and check.retries == 2
    assert check.labels == {"team": "payments", "env": "prod"}
    config = check.config
    assert config["url"] == "https://checkout.example/health"
    assert config["expected_status"] == ["200-299", "301"]
    assert config["headers"] == {"Accept": "application/json"}
    assert config["keyword"] == "ok" and config["keyword_absent"] is True
    assert config["json_path"] == "$.status" and config["json_expected"] == "ok"
    assert config["max_latency_ms"] == 800 and config["tls_min_days_left"] == 14
    assert config["follow_redirects"] is False and config["verify_tls"] is True
    assert AuditEntry.objects.filter(action="create", object_repr="Checkout API").exists()


def test_other_kinds_are_created_from_their_own_fields(operator):
    client = client_for(operator)
    base = {"severity": "error", "interval_seconds": "60", "timeout_seconds": "10", "retries": "0"}
    client.post("/aiops/checks/new/", {**base, "name": "db port", "kind": "tcp", "tcp_host": "db.internal",
                                       "tcp_port": "5432", "http_url": "ignored"})  # fmt: skip
    client.post("/aiops/checks/new/", {**base, "name": "mx", "kind": "dns", "dns_name": "example.com",
                                       "dns_record_type": "MX", "dns_expected": "10 mx.example.com.",
                                       "dns_nameservers": "9.9.9.9, 1.1.1.1"})  # fmt: skip
    client.post("/aiops/checks/new/", {**base, "name": "cert", "kind": "tls", "tls_host": "example.com",
                                       "tls_port": "8443", "tls_min_days_left": "21", "tls_verify": "on"})  # fmt: skip
    client.post("/aiops/checks/new/", {**base, "name": "backup", "kind": "heartbeat", "schedule": "cron",
                                       "cron": "0 3 * * *", "tz": "Europe/Berlin", "grace_seconds": "600",
                                       "period_seconds": "3600"})  # fmt: skip
    checks = {c.name: c for c in Check.objects.all()}
    assert checks["db port"].config == {"host": "db.internal", "port": 5432}
    assert checks["mx"].config["record_type"] == "MX" and checks["mx"].config["expected"] == ["10 mx.example.com."]
    assert checks["mx"].config["nameservers"] == ["9.9.9.9", "1.1.1.1"]
    assert checks["cert"].config["port"] == 8443 and checks["cert"].config["min_days_left"] == 21
    backup = checks["backup"]
    assert (backup.cron, backup.tz, backup.grace_seconds, backup.period_seconds) == (
        "0 3 * * *",
        "Europe/Berlin",
        600,
        None,
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"http_url": "ftp://files.example/"}, "id_http_url", "must start with http:// or https://"),
        ({"http_url": ""}, "id_http_url", "required: an http:// or https:// URL."),
        ({"interval_seconds": "0"}, "id_interval_seconds", "at least 1 second"),
        ({"http_json_path": "$[?("}, "id_http_json_path", "not a JSON path"),
        ({"http_expected_status": "2000"}, "id_http_expected_status", "is not a status code"),
        ({"labels": "no equals sign"}, "id_labels", "is not name=value"),
        ({"kind": "smtp"}, "id_kind", "Select a valid choice"),
        ({"kind": "heartbeat", "schedule": "cron", "cron": "every day"}, "id_cron", "is not a cron expression"),
        ({"kind": "tcp", "tcp_host": "db", "tcp_port": ""}, "id_tcp_port", "required: a port from 1 to 65535."),
    ],
)
def test_bad_input_is_a_400_with_the_error_on_the_named_field(operator, values, field, message):
    response = client_for(operator).post("/aiops/checks/new/", http_form(**values))
    assert response.status_code == 400
    html = response.content.decode()
    # The error follows its own field's input (and help text), before the next field's label.
    block = re.search(rf'id="{field}"(.*?)(<label|</fieldset>)', html, re.S)
    assert block and message in block.group(1), html[:200]
    assert Check.objects.count() == 0


def test_editing_keeps_the_kind_and_shows_the_current_values(operator):
    check = http_check(labels={"team": "payments"}, interval_seconds=120)
    client = client_for(operator)
    html = client.get(f"/aiops/checks/{check.pk}/edit/").content.decode()
    assert 'value="https://checkout.example/health"' in html and "team=payments" in html
    assert re.search(r'<select name="kind"[^>]*disabled', html)
    response = client.post(
        f"/aiops/checks/{check.pk}/edit/",
        http_form(kind="tcp", interval_seconds="15", http_url="https://checkout.example/v2"),
    )
    assert response.status_code == 302
    check.refresh_from_db()
    assert check.kind == "http" and check.interval_seconds == 15
    assert check.config["url"] == "https://checkout.example/v2"
    assert AuditEntry.objects.filter(action="update", object_id=str(check.pk)).exists()


def test_pausing_from_the_form_pauses_the_check(operator):
    check = http_check()
    client_for(operator).post(f"/aiops/checks/{check.pk}/edit/", http_form(paused="on"))
    check.refresh_from_db()
    assert check.paused and check.status == Check.Status.PAUSED


# --- Test now -------------------------------------------------------------------------------------


def test_test_now_runs_the_form_once_and_shows_the_result_in_place_without_saving(operator, target, allow_loopback):
    client = client_for(operator)
    response = client.post(
        "/aiops/checks/new/", http_form(http_url=target.url("/health"), _test="1"), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="test-outcome"' in html
    text = text_of(response)
    assert "Up" in text and "status code 200" in text and re.search(r"latency \d+(\.\d)? ms", text)
    assert "Nothing was saved." in text
    target.answer(503, body=b"maintenance")
    text = text_of(
        client.post("/aiops/checks/new/", http_form(http_url=target.url(), _test="1"), HTTP_HX_REQUEST="true")
    )
    assert "Down" in text and "status code 503" in text and "503" in text
    assert Check.objects.count() == 0


def test_test_now_reports_the_library_error_for_a_closed_port(operator, allow_loopback):
    form = http_form(kind="tcp", tcp_host="127.0.0.1", tcp_port=str(closed_port()), _test="1")
    response = client_for(operator).post("/aiops/checks/new/", form, HTTP_HX_REQUEST="true")
    text = text_of(response)
    assert "Down" in text
    assert re.search(r"refused|Errno", text), text


def test_test_now_refuses_bad_input_naming_the_field(operator):
    client = client_for(operator)
    response = client.post("/aiops/checks/new/", http_form(http_url="not a url", _test="1"), HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "Not run: URL:" in text_of(response)
    response = client.post("/aiops/checks/new/", http_form(kind="heartbeat", _test="1"), HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "a heartbeat is not run by the portal" in text_of(response)


def test_test_now_without_javascript_shows_the_form_again_with_the_result(operator, target, allow_loopback):
    response = client_for(operator).post("/aiops/checks/new/", http_form(http_url=target.url(), _test="1"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="check-form"' in html and 'id="test-outcome"' in html
    assert f'value="{target.url()}"' in html
    assert Check.objects.count() == 0


def test_the_tabs_link_the_checks(viewer):
    html = client_for(viewer).get("/aiops/").content.decode()
    assert 'href="/aiops/checks/">Checks</a>' in html
