"""A real Celery worker, against the configured broker and database, runs what the portal sends."""

from __future__ import annotations

import time

import pytest

from opsportal.system import services
from opsportal.system.models import TaskCounter, TaskProbe, WorkerHeartbeat
from tests.helpers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def probe_done() -> bool:
    return TaskProbe.objects.filter(status=TaskProbe.Status.DONE).exists()


def test_test_task_sent_from_the_system_page_is_run_by_the_worker(client, operator, worker):
    client.force_login(operator)
    sent = time.monotonic()
    response = client.post("/system/probe/", follow=True)
    assert b"Test task sent" in response.content
    assert wait_for(probe_done), "the worker never ran the probe"
    probe = TaskProbe.objects.get()
    assert probe.worker and probe.worker in worker.hostname
    # The page's round trip is the time from the request to the worker's answer, not a made-up figure.
    waited = time.monotonic() - sent
    assert 0 < probe.round_trip_seconds() <= waited + 0.5
    assert wait_for(
        lambda: TaskCounter.objects.filter(name="opsportal.system.tasks.run_probe", state="SUCCESS").exists()
    )
    heartbeat = WorkerHeartbeat.objects.get(hostname=worker.hostname)
    assert heartbeat.online and set(heartbeat.queues) == {"default", "collection", "checks", "evals"}
    page = client.get("/system/").content.decode()
    assert worker.hostname in page and "done" in page
    assert f"{probe.round_trip_seconds():.2f} s" in page


def test_work_accepted_while_the_broker_is_down_runs_once_it_is_back(client, operator, worker, broker_outage):
    import datetime

    client.force_login(operator)
    with broker_outage():
        response = client.post("/system/probe/")
        assert response.status_code == 302, "a broker outage must not fail the request"
    assert TaskProbe.objects.get().status == TaskProbe.Status.PENDING
    assert services.requeue_pending_probes(older_than=datetime.timedelta(0)) == 1
    assert wait_for(probe_done), "the sweeper's re-enqueue never reached the worker"
    assert TaskProbe.objects.get().enqueue_attempts == 2


def test_the_sweeper_re_enqueues_pending_work(client, operator, worker):
    import datetime

    probe = TaskProbe.objects.create(requested_by=operator)
    TaskProbe.objects.filter(pk=probe.pk).update(created_at=probe.created_at - datetime.timedelta(minutes=5))
    assert services.requeue_pending_probes() == 1
    assert wait_for(probe_done)
    assert TaskProbe.objects.get().enqueue_attempts == 1
