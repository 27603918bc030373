"""A real Celery worker, against the configured broker and database, runs what the portal sends."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker

from opsportal.celery import app
from opsportal.system import services
from opsportal.system.models import TaskCounter, TaskProbe, WorkerHeartbeat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def worker(isolated_broker):
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10) as w:
        yield w


def probe_done() -> bool:
    return TaskProbe.objects.filter(status=TaskProbe.Status.DONE).exists()


def test_test_task_sent_from_the_system_page_is_run_by_the_worker(client, operator, worker):
    client.force_login(operator)
    response = client.post("/system/probe/", follow=True)
    assert b"Test task sent" in response.content
    assert wait_for(probe_done), "the worker never ran the probe"
    probe = TaskProbe.objects.get()
    assert probe.worker and probe.worker in worker.hostname
    assert probe.round_trip_seconds() >= 0
    assert wait_for(
        lambda: TaskCounter.objects.filter(name="opsportal.system.tasks.run_probe", state="SUCCESS").exists()
    )
    heartbeat = WorkerHeartbeat.objects.get(hostname=worker.hostname)
    assert heartbeat.online and set(heartbeat.queues) == {"default", "collection", "checks", "evals"}
    page = client.get("/system/").content.decode()
    assert worker.hostname in page and "done" in page


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
