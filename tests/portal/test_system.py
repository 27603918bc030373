"""Health, readiness, metrics, the system page and the overview."""

from __future__ import annotations

import pytest

from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role
from opsportal.system import services
from opsportal.system.models import TaskCounter, WorkerHeartbeat

pytestmark = pytest.mark.django_db


def test_healthz_answers_while_the_process_serves(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_200_when_database_and_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"]["ok"] and response.json()["checks"]["broker"]["ok"]


def test_readyz_is_503_when_the_broker_is_unreachable(client, dead_broker):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]


def test_metrics_expose_requests_tasks_and_queues(viewer_api):
    services.count_task(name="opsportal.system.tasks.run_probe", state="SUCCESS")
    services.count_task(name="opsportal.system.tasks.run_probe", state="SUCCESS")
    viewer_api.get("/api/v1/accounts/me/")
    response = viewer_api.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'opsportal_http_requests_total{method="GET",status="200",view="api:me"}' in text
    assert "opsportal_http_request_duration_seconds_bucket" in text
    assert 'opsportal_celery_tasks_total{state="SUCCESS",task="opsportal.system.tasks.run_probe"} 2.0' in text
    assert 'opsportal_celery_queue_depth{queue="evals"}' in text
    assert "opsportal_celery_workers_online" in text


def test_task_counter_counts_each_state_apart():
    for state in ("SUCCESS", "SUCCESS", "FAILURE"):
        services.count_task(name="t", state=state)
    assert dict(TaskCounter.objects.filter(name="t").values_list("state", "count")) == {"SUCCESS": 2, "FAILURE": 1}


def test_system_page_shows_workers_queues_and_periodic_tasks(client, viewer):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    services.record_worker_heartbeat(hostname="celery@box1", pid=123, queues=["default", "evals"], concurrency=4)
    every = IntervalSchedule.objects.create(every=60, period="seconds")
    PeriodicTask.objects.create(
        name="system.mark-stale-workers", task="opsportal.system.tasks.mark_stale_workers", interval=every
    )
    client.force_login(viewer)
    page = client.get("/system/").content.decode()
    assert "celery@box1" in page and "online" in page
    assert "system.mark-stale-workers" in page and "never" in page
    for queue in ("default", "collection", "checks", "evals"):
        assert f"<td>{queue}</td>" in page
    partial = client.get("/system/", HTTP_HX_REQUEST="true").content.decode()
    assert "celery@box1" in partial and "<nav" not in partial


def test_periodic_tasks_that_never_ran_show_their_schedule_and_first_run(client, viewer):
    import datetime

    from django.utils import timezone
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    now = timezone.now()
    daily = IntervalSchedule.objects.create(every=86400, period="seconds")
    minute = IntervalSchedule.objects.create(every=60, period="seconds")
    # An hour two hours ahead: the next run is today or tomorrow, never one that passed since registration.
    hour = (now + datetime.timedelta(hours=2)).astimezone(datetime.UTC).hour
    at_three = CrontabSchedule.objects.create(minute="0", hour=str(hour), timezone="UTC")
    PeriodicTask.objects.create(name="sessions", task="opsportal.accounts.tasks.clear_expired_sessions", interval=daily)
    PeriodicTask.objects.create(name="nightly", task="x.tasks.nightly", crontab=at_three)
    PeriodicTask.objects.create(name="paused", task="x.tasks.paused", interval=minute, enabled=False)
    PeriodicTask.objects.create(
        name="stale", task="x.tasks.stale", interval=minute, last_run_at=now - datetime.timedelta(hours=1, seconds=30),
        total_run_count=3,
    )  # fmt: skip
    # Beat registered the entries (saving them) an hour ago and has not run the daily one yet.
    PeriodicTask.objects.update(date_changed=now - datetime.timedelta(hours=1, seconds=30))

    rows = {row.name: row for row in services.periodic_tasks()}
    sessions = rows["sessions"]
    assert sessions.schedule == "every day" and sessions.first_run and not sessions.overdue
    expected = now + datetime.timedelta(hours=22, minutes=59, seconds=30)
    assert abs((sessions.next_run_at - expected).total_seconds()) < 5
    assert rows["nightly"].schedule == f"daily at {hour:02d}:00 (UTC)"
    next_three = rows["nightly"].next_run_at.astimezone(datetime.UTC)
    assert (next_three.hour, next_three.minute) == (hour, 0)
    assert now + datetime.timedelta(hours=1) <= next_three <= now + datetime.timedelta(hours=2)
    assert rows["paused"].next_run_at is None and rows["stale"].overdue

    client.force_login(viewer)
    page = client.get("/system/").content.decode()
    row = page[page.index("<td>sessions") : page.index("</tr>", page.index("<td>sessions"))]
    assert "every day" in row and "never" in row and "first run in 22\xa0hours, 59\xa0minutes" in row
    assert f"daily at {hour:02d}:00 (UTC)" in page and "paused" in page and "overdue since 59\xa0minutes" in page


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(15, "every 15 seconds"), (60, "every minute"), (120, "every 2 minutes"), (90, "every 90 seconds"),
     (7200, "every 2 hours")],
)  # fmt: skip
def test_intervals_read_as_words(seconds, words):
    assert services.describe_interval(seconds) == words


def test_silent_workers_are_shown_offline(settings):
    import datetime

    from django.utils import timezone

    services.record_worker_heartbeat(hostname="celery@gone", pid=1, queues=[], concurrency=1)
    WorkerHeartbeat.objects.filter(hostname="celery@gone").update(
        last_seen_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    assert [w.online for w in services.workers()] == [False]
    assert services.mark_stale_workers() == 1


def test_viewers_cannot_send_test_tasks(client, viewer):
    client.force_login(viewer)
    assert client.post("/system/probe/").status_code == 403


def test_overview_shows_real_counts_and_the_activity_chart(client, admin_user):
    for name in ("u1", "u2"):
        accounts.create_user(username=name, role=Role.VIEWER, actor=admin_user)
    accounts.create_api_token(user=admin_user, name="t", actor=admin_user)
    client.force_login(admin_user)
    response = client.get("/")
    assert response.status_code == 200
    stats = dict(response.context["portal_stats"])
    assert stats["Users"] == 3
    assert stats["Active API tokens"] == 1
    assert stats["Changes in 24 h"] >= 4
    chart = response.context["activity_chart"]
    assert [trace["name"] for trace in chart["data"]] == ["accounts", "auth"]
    assert sum(chart["data"][1]["y"]) >= 2
    html = response.content.decode()
    assert 'id="activity-chart"' in html and "vendor/plotly/plotly.min.js" in html
    assert [app.title for app in response.context["apps"]] == ["AIOps", "MLOps", "LLMOps"]
    assert 'id="aiops-open-by-severity"' in html and 'id="aiops-response-trend"' in html


@pytest.mark.parametrize("path", ["/mlops/", "/llmops/"])
def test_app_pages_render(client, viewer, path):
    client.force_login(viewer)
    response = client.get(path)
    assert response.status_code == 200
    assert b"Latest changes in" in response.content
