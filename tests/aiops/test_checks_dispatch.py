"""The dispatcher: claiming due checks, the state machine (retries, pending, down, upside down), alerts, leases."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from aiops import services
from aiops.checks.schedule import next_due
from aiops.models import Alert, Check, CheckHourlyStat, CheckOutage, CheckResult, Incident

from .check_targets import Target, closed_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


def make_check(operator, url: str, **options) -> Check:
    return services.create_check(
        actor=operator, name=options.pop("name", "Checkout API"), kind=options.pop("kind", "http"),
        config=options.pop("config", {"url": url}), service="checkout", labels={"team": "payments"}, **options,
    )  # fmt: skip


def run_now(check: Check) -> Check:
    """Make the check due and let the dispatcher run everything due."""
    Check.objects.filter(pk=check.pk).update(next_due_at=timezone.now() - datetime.timedelta(seconds=1))
    services.run_due_checks(budget_seconds=5)
    check.refresh_from_db()
    return check


def test_a_new_check_runs_at_once_and_its_result_is_stored(operator, target, allow_loopback):
    check = make_check(operator, target.url())
    assert check.status == "new" and check.next_due_at <= timezone.now()
    assert services.run_due_checks(budget_seconds=5) == 1
    check.refresh_from_db()
    assert check.status == "up" and check.last_latency_ms > 0 and check.last_error == ""
    result = CheckResult.objects.get()
    assert (result.up, result.status_code, result.check_obj_id) == (True, 200, check.pk)
    # Next run one interval on, nothing due until then.
    assert timezone.now() < check.next_due_at <= timezone.now() + datetime.timedelta(seconds=60)
    assert services.run_due_checks(budget_seconds=5) == 0
    stat = CheckHourlyStat.objects.get()
    assert (stat.total, stat.up) == (1, 1)


def test_failures_below_the_retries_are_pending_then_down_raises_an_incident_and_a_success_resolves_it(
    operator, target, allow_loopback
):
    check = make_check(operator, target.url(), retries=2, severity="critical")
    target.answer(500)
    assert run_now(check).status == "pending"
    assert run_now(check).status == "pending"
    assert Alert.objects.count() == 0
    check = run_now(check)
    assert (check.status, check.consecutive_failures) == ("down", 3)
    alert = Alert.objects.get()
    assert alert.fingerprint == f"check:{check.pk}" and alert.source == "check" and alert.status == "firing"
    assert alert.title == "Checkout API is down" and alert.severity == "critical" and alert.service == "checkout"
    assert alert.labels == {"team": "payments", "check": "Checkout API", "check_kind": "http"}
    assert alert.description == "HTTP 500 Internal Server Error; expected 200-299"
    assert alert.links[0]["href"].endswith(f"/aiops/checks/{check.pk}/")
    services.process_pending_alerts()
    incident = Incident.objects.get()
    assert incident.status == "triggered"
    assert list(services.incidents_opened(check=check)) == [incident]
    outage = CheckOutage.objects.get()
    assert outage.ended_at is None and outage.error.startswith("HTTP 500")

    # Still down: no new alert, no new outage.
    assert run_now(check).status == "down"
    assert Alert.objects.count() == 1 and CheckOutage.objects.count() == 1

    target.answer(200)
    check = run_now(check)
    assert (check.status, check.consecutive_failures) == ("up", 0)
    assert Alert.objects.get().status == "resolved"
    services.process_pending_alerts()
    assert Incident.objects.get().status == "resolved"
    assert CheckOutage.objects.get().ended_at is not None
    assert services.down_periods(check=check, since=timezone.now() - datetime.timedelta(hours=1)) == [
        (outage.started_at, CheckOutage.objects.get().ended_at)
    ]


def test_retries_zero_is_down_on_the_first_failure(operator, allow_loopback):
    check = make_check(operator, "", kind="tcp", config={"host": "127.0.0.1", "port": closed_port()})
    check = run_now(check)
    assert check.status == "down"
    assert "ConnectionRefusedError" in check.last_error
    assert Alert.objects.get().description.startswith("ConnectionRefusedError: [Errno 111]")


def test_upside_down_check_is_down_when_the_target_answers(operator, target, allow_loopback):
    check = make_check(operator, target.url(), upside_down=True)
    assert run_now(check).status == "down"
    target.answer(503)
    assert run_now(check).status == "up"


def test_paused_checks_are_not_run_and_resume_afresh(operator, target, allow_loopback):
    check = make_check(operator, target.url())
    services.bulk_set_paused(check_ids=[check.pk], paused=True, actor=operator)
    Check.objects.filter(pk=check.pk).update(next_due_at=timezone.now() - datetime.timedelta(seconds=1))
    assert services.run_due_checks(budget_seconds=5) == 0
    check.refresh_from_db()
    assert check.status == "paused" and target.hits == 0
    services.bulk_set_paused(check_ids=[check.pk], paused=False, actor=operator)
    check.refresh_from_db()
    assert check.status == "new"
    assert services.run_due_checks(budget_seconds=5) == 1 and target.hits == 1


def test_a_missed_schedule_runs_once_not_a_burst(operator, target, allow_loopback):
    check = make_check(operator, target.url(), interval_seconds=10)
    due = timezone.now() - datetime.timedelta(hours=1, seconds=3)
    Check.objects.filter(pk=check.pk).update(next_due_at=due)
    assert services.run_due_checks(budget_seconds=5) == 1
    check.refresh_from_db()
    assert CheckResult.objects.count() == 1
    # The next run keeps the check's rhythm (due + k * 10 s) and is in the future.
    assert timezone.now() < check.next_due_at <= timezone.now() + datetime.timedelta(seconds=10)
    assert (check.next_due_at - due).total_seconds() % 10 == pytest.approx(0, abs=1e-3)


def test_next_due_keeps_the_grid():
    due = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
    assert next_due(due=due, now=due + datetime.timedelta(seconds=0.4), interval_seconds=1) == due + datetime.timedelta(
        seconds=1
    )
    assert next_due(due=due, now=due + datetime.timedelta(seconds=95), interval_seconds=60) == due + datetime.timedelta(
        seconds=120
    )


def test_a_claimed_check_is_leased_and_claimed_again_when_its_worker_dies(operator, target, allow_loopback, settings):
    check = make_check(operator, target.url(), timeout_seconds=5)
    settings.AIOPS_CHECKS_LEASE_MARGIN_SECONDS = 30
    now = timezone.now()
    (claim,) = services.claim_due_checks(limit=10, now=now)
    assert claim.id == check.pk
    check.refresh_from_db()
    assert check.next_due_at == now + datetime.timedelta(seconds=35)
    # The worker died without storing anything: nobody can claim it during the lease ...
    assert services.claim_due_checks(limit=10, now=now + datetime.timedelta(seconds=34)) == []
    # ... and anyone can once it ends.
    assert [c.id for c in services.claim_due_checks(limit=10, now=now + datetime.timedelta(seconds=36))] == [check.pk]


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_never_claim_the_same_check(operator):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serialises the claim")
    past = timezone.now() - datetime.timedelta(seconds=5)
    checks = [
        services.create_check(actor=operator, name=f"c{n}", kind="tcp", config={"host": "127.0.0.1", "port": 9})
        for n in range(40)
    ]
    Check.objects.update(next_due_at=past)
    locked = threading.Event()
    release = threading.Event()
    first: list[int] = []

    def hold_a_claim() -> None:
        # A dispatcher in the middle of its claim: rows locked, transaction not committed.
        try:
            with transaction.atomic():
                rows = Check.objects.due(timezone.now()).order_by("next_due_at").select_for_update(skip_locked=True)
                first.extend(rows.values_list("id", flat=True)[:15])
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_a_claim)
    holder.start()
    try:
        assert locked.wait(10)
        # The second dispatcher is not blocked by the first's locks and takes only the other checks.
        second = [claim.id for claim in services.claim_due_checks(limit=100)]
    finally:
        release.set()
        holder.join()
    assert len(first) == 15 and len(second) == 25
    assert not set(first) & set(second)
    assert set(first) | set(second) == {check.pk for check in checks}

    # Concurrent claims of everything due, many at once: each check is claimed exactly once.
    Check.objects.update(next_due_at=past)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim() -> None:
        try:
            for _ in range(5):
                ids = [c.id for c in services.claim_due_checks(limit=3)]
                with lock:
                    claimed.extend(ids)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 40


def test_uptime_of_a_list_of_checks_is_one_query(operator, target, allow_loopback, django_assert_num_queries):
    healthy = make_check(operator, target.url(), name="healthy")
    flaky = make_check(operator, target.url(), name="flaky")
    idle = make_check(operator, target.url(), name="idle", paused=True)
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    CheckHourlyStat.objects.bulk_create(
        [
            CheckHourlyStat(check_obj=healthy, hour=hour, total=10, up=10),
            CheckHourlyStat(check_obj=flaky, hour=hour, total=4, up=3),
            CheckHourlyStat(check_obj=flaky, hour=hour - datetime.timedelta(days=3), total=4, up=1),
            CheckHourlyStat(check_obj=flaky, hour=hour - datetime.timedelta(days=20), total=2, up=0),
        ]
    )
    with django_assert_num_queries(1):
        uptime = services.uptime(check_ids=[healthy.pk, flaky.pk, idle.pk], now=now)
    assert uptime[healthy.pk] == services.Uptime(100.0, 100.0, 100.0)
    assert uptime[flaky.pk] == services.Uptime(75.0, 50.0, 40.0)
    assert uptime[idle.pk] == services.Uptime(None, None, None)


def test_latency_series_is_bucketed_in_sql(operator, target, allow_loopback):
    check = make_check(operator, target.url())
    start = timezone.now().replace(microsecond=0) - datetime.timedelta(minutes=10)
    CheckResult.objects.bulk_create(
        [
            CheckResult(check_obj=check, at=start + datetime.timedelta(seconds=s), up=s != 70, latency_ms=float(s))
            for s in range(0, 120, 10)
        ]
    )
    points = services.latency_series(
        check=check, since=start, until=start + datetime.timedelta(seconds=120), max_points=4
    )
    assert len(points) <= 5 and sum(p.runs for p in points) == 12
    assert any(not p.up for p in points)
    assert points[0].at <= start < points[0].at + datetime.timedelta(seconds=30)


def test_seed_demo_adds_checks_with_uptime_history():
    from aiops.demo import seed

    assert seed(actor=None, days=7)
    checks = {check.name: check for check in Check.objects.all()}
    assert set(checks) == {
        "Portal health (demo)",
        "Portal port (demo)",
        "Demo model port (demo)",
        "Nightly backup (demo)",
    }
    health = checks["Portal health (demo)"]
    assert health.config["url"].endswith("/healthz") and health.next_due_at <= timezone.now()
    uptime = services.uptime(check_ids=[health.pk])[health.pk]
    assert 99 < uptime.week < 100 and uptime.day == 100.0
    assert checks["Nightly backup (demo)"].status == "up"
    assert len(services.down_periods(check=health, since=timezone.now() - datetime.timedelta(days=7))) == 1
    # A published status page of those checks, readable without login.
    public = Client().get("/status/demo/")
    assert public.status_code == 200
    assert [check.name for check in public.context["status"].checks] == sorted(checks)
    assert not seed(actor=None, days=7)


def test_a_flapping_check_reopens_its_incident_instead_of_opening_new_ones(operator, target, allow_loopback):
    check = make_check(operator, target.url())
    for _ in range(3):
        target.answer(500)
        assert run_now(check).status == "down"
        services.process_pending_alerts()
        target.answer(200)
        assert run_now(check).status == "up"
        services.process_pending_alerts()
    # Three outages, three alerts (one per occurrence), one incident: reopened within the rule's cool-down.
    assert CheckOutage.objects.filter(check_obj=check).count() == 3
    assert Alert.objects.filter(fingerprint=check.dedup_key).count() == 3
    assert Incident.objects.count() == 1 and Incident.objects.get().status == "resolved"
    assert list(services.incidents_opened(check=check)) == [Incident.objects.get()]


def test_a_target_answering_nul_characters_does_not_break_the_batch(operator, target, allow_loopback):
    target.answer(200, b'{"status": "ok\\u0000", "blob": "' + b"x" * 5000 + b'"}')
    odd = make_check(operator, "", name="odd", config={"url": target.url(), "json_path": "$"})
    fine = make_check(operator, "", name="fine", kind="tcp", config={"host": "127.0.0.1", "port": target.port})
    assert services.run_due_checks(budget_seconds=5) == 2
    result = CheckResult.objects.get(check_obj=odd)
    assert result.up and len(result.details["json_value"]) <= 1001 and "\x00" not in str(result.details)
    assert CheckResult.objects.get(check_obj=fine).up
