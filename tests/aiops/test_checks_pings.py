"""Heartbeat pings: /ping/<uuid>[/start|/fail|/<exit status>], no login, body kept, rate-limited, state at once."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.test import Client
from django.utils import timezone

from aiops import services
from aiops.models import Alert, Check, CheckResult, Incident, Ping

pytestmark = pytest.mark.django_db


@pytest.fixture
def beat(operator) -> Check:
    check = services.create_check(
        actor=operator, name="Nightly backup", kind="heartbeat", period_seconds=3600, grace_seconds=300,
        service="backups", severity="critical",
    )  # fmt: skip
    return check


def url(check: Check, suffix: str = "") -> str:
    return f"/ping/{check.ping_uuid}{suffix}"


def test_a_success_ping_needs_no_login_and_makes_the_heartbeat_up(beat):
    response = Client().get(url(beat), HTTP_USER_AGENT="curl/8.5.0")
    assert response.status_code == 200 and response.content == b"OK"
    assert response["Content-Type"].startswith("text/plain")
    beat.refresh_from_db()
    assert beat.status == "up" and beat.last_success_at is not None
    # Late after the period plus the grace time.
    assert beat.next_due_at == beat.last_success_at + datetime.timedelta(seconds=3600 + 300)
    ping = Ping.objects.get()
    assert (ping.kind, ping.method, ping.user_agent, ping.remote_addr) == ("success", "GET", "curl/8.5.0", "127.0.0.1")
    assert CheckResult.objects.get().up


def test_post_keeps_the_first_10_kb_of_the_body_and_head_works(beat):
    body = b"backup done\n" + b"x" * 20000
    assert Client().post(url(beat), data=body, content_type="text/plain").content == b"OK"
    assert Client().head(url(beat)).status_code == 200
    assert Client().put(url(beat)).status_code == 405
    stored = Ping.objects.order_by("at").first()
    assert stored.method == "POST" and stored.body.startswith("backup done") and len(stored.body) == 10 * 1024


def test_fail_and_a_nonzero_exit_status_are_down_at_once_and_raise_the_alert(beat):
    Client().get(url(beat))
    response = Client().post(url(beat, "/fail"), data=b"disk full: /var/backups\nmore", content_type="text/plain")
    assert response.content == b"OK"
    beat.refresh_from_db()
    assert beat.status == "down" and beat.last_error == "a /fail ping: disk full: /var/backups"
    alert = Alert.objects.get()
    assert alert.status == "firing" and alert.severity == "critical" and alert.title == "Nightly backup is down"
    services.process_pending_alerts()
    assert Incident.objects.get().status == "triggered"

    assert Client().get(url(beat, "/0")).content == b"OK"
    beat.refresh_from_db()
    assert beat.status == "up"
    assert Alert.objects.get().status == "resolved"

    Client().get(url(beat, "/3"))
    beat.refresh_from_db()
    assert beat.status == "down" and beat.last_error == "exit status 3"
    assert Client().get(url(beat, "/256")).status_code == 400


def test_a_start_without_a_success_within_the_grace_time_is_down(beat):
    Client().get(url(beat))
    Client().get(url(beat, "/start"))
    beat.refresh_from_db()
    started = beat.started_at
    assert started is not None and beat.next_due_at == started + datetime.timedelta(seconds=300)
    assert services.evaluate_heartbeats(check_ids=[beat.pk], now=started + datetime.timedelta(seconds=299)) == 0
    assert services.evaluate_heartbeats(check_ids=[beat.pk], now=started + datetime.timedelta(seconds=301)) == 1
    beat.refresh_from_db()
    assert beat.status == "down" and beat.last_error.startswith("started at ")
    assert "no success within the grace time (5 min)" in beat.last_error
    # The success that finally comes ends the run (its duration kept) and recovers the check.
    Client().get(url(beat))
    beat.refresh_from_db()
    assert beat.status == "up" and Ping.objects.filter(kind="success").latest("at").duration_ms is not None


def test_a_heartbeat_that_stops_pinging_goes_down_through_the_dispatcher(beat):
    Client().get(url(beat))
    beat.refresh_from_db()
    # Over an hour and five minutes later nothing came: the dispatcher finds it due and late.
    Check.objects.filter(pk=beat.pk).update(
        last_success_at=timezone.now() - datetime.timedelta(seconds=4000),
        next_due_at=timezone.now() - datetime.timedelta(seconds=1),
    )
    assert services.run_due_checks(budget_seconds=5) == 1
    beat.refresh_from_db()
    assert beat.status == "down" and beat.next_due_at is None
    assert (
        beat.last_error.startswith("no success ping since ") and "(expected every 1 h, grace 5 min)" in beat.last_error
    )
    assert Alert.objects.get().status == "firing"


def test_cron_heartbeats_are_due_in_their_time_zone(operator):
    check = services.create_check(
        actor=operator, name="Report", kind="heartbeat", cron="30 2 * * *", tz="Europe/Berlin", grace_seconds=600
    )
    Client().get(url(check))
    check.refresh_from_db()
    # Late at the next 02:30 Berlin time plus ten minutes of grace, within a day of the ping.
    local = check.next_due_at.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (2, 40)
    assert datetime.timedelta(0) < check.next_due_at - check.last_success_at <= datetime.timedelta(days=1, minutes=10)


def test_unknown_uuids_and_other_checks_are_404(beat, operator):
    other = services.create_check(actor=operator, name="web", kind="http", config={"url": "https://example.com/"})
    assert Client().get("/ping/00000000-0000-0000-0000-000000000001").status_code == 404
    assert Client().get(f"/ping/{other.ping_uuid}").content == b"not found"
    assert Client().get("/ping/not-a-uuid").status_code == 404


def test_pings_are_rate_limited_per_uuid(beat, settings):
    settings.AIOPS_PING_RATE_PER_MINUTE = 3
    statuses = [Client().get(url(beat)).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    limited = Client().get(url(beat))
    assert limited.content == b"rate limited" and 1 <= int(limited["Retry-After"]) <= 60
    assert Ping.objects.count() == 3


def test_a_paused_heartbeat_records_pings_but_changes_nothing(beat, operator):
    services.set_paused(check=beat, paused=True, actor=operator)
    Client().get(url(beat, "/fail"))
    beat.refresh_from_db()
    assert beat.status == "paused" and Ping.objects.count() == 1 and not Alert.objects.exists()


def test_a_binary_body_and_odd_headers_are_stored_not_refused(beat):
    response = Client().post(
        url(beat, "/fail"), data=b"\x00\x1f\x8bgzip\x00 data", content_type="application/octet-stream",
        HTTP_USER_AGENT="agent\x00x", HTTP_X_FORWARDED_FOR="not-an-ip",
    )  # fmt: skip
    assert response.content == b"OK"
    ping = Ping.objects.get()
    assert "\x00" not in ping.body and "gzip" in ping.body and ping.user_agent == "agent\ufffdx"
    beat.refresh_from_db()
    assert beat.status == "down"
