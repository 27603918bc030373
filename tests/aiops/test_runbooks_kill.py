"""A worker killed with SIGKILL in the middle of a runbook step: a new worker resumes the run at that step, and
the steps completed before it are not repeated.

A real Celery worker process (`celery -A opsportal worker -P solo`) on the configured broker and the test
database; the local service holds its answer to the second step long enough to kill the worker meanwhile.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from aiops.models import RunbookCall, RunbookRun, RunbookStepRun
from aiops.runbooks import engine
from aiops.services import runbooks as runbook_services
from opsportal.celery import app
from tests.helpers import wait_for

from .test_runbooks import Service

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
TASKS = (b"aiops.tasks.advance_runbook_run", b"aiops.tasks.send_runbook_call")


def database_url() -> str:
    """The test database as a DATABASE_URL, for the worker processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def start_worker(tmp_path):
    if app.conf.broker_url.startswith("filesystem"):
        pytest.skip("needs a shared broker (REDIS_URL) for a worker process")
    env = {**os.environ, "DATABASE_URL": database_url(), "SECRET_KEY": settings.SECRET_KEY,
           "DJANGO_SETTINGS_MODULE": "opsportal.settings", "OPSPORTAL_VAR_DIR": str(tmp_path / "var"),
           "OPSPORTAL_OUTBOUND_ALLOWLIST": "127.0.0.1"}  # fmt: skip
    processes: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        number = len(processes) + 1
        command = [
            str(Path(sys.executable).parent / "celery"), "-A", "opsportal", "worker", "-Q", "default", "-P", "solo",
            "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "WARNING",
            "-n", f"runbook-kill-test-{number}@%h",
        ]  # fmt: skip
        log = (tmp_path / f"worker-{number}.log").open("w")
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        return processes[-1]

    start.log = lambda: "\n".join(p.read_text() for p in sorted(tmp_path.glob("worker-*.log")))
    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    forget_unacknowledged()


def forget_unacknowledged() -> None:
    """Drop the message the killed worker never acknowledged, so it is not redelivered into a later test."""
    with app.connection_for_write() as broker:
        redis = getattr(broker.default_channel, "client", None)
        channel = broker.default_channel
        if redis is None:
            return
        for tag, message in redis.hgetall(channel.unacked_key).items():
            if any(task in message for task in TASKS):
                redis.hdel(channel.unacked_key, tag)
                redis.zrem(channel.unacked_index_key, tag)


def test_a_run_resumes_at_the_step_its_killed_worker_was_on(start_worker, admin_user, alertmanager):
    from . import factories

    service = Service()
    try:
        service.delays["/slow"] = 6.0
        integration, token = alertmanager
        incident = factories.incident(integration, token, "checkout")
        steps = [
            {"kind": "http", "name": "first", "url": service.base + "/first"},
            {"kind": "http", "name": "slow", "url": service.base + "/slow"},
            {"kind": "http", "name": "last", "url": service.base + "/last"},
        ]
        runbook = runbook_services.create_runbook(actor=admin_user, name="three steps", steps=steps)
        first = start_worker()
        run = runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user)

        # The worker finished step 1 and is inside step 2's request when it is killed.
        assert wait_for(lambda: service.paths("/slow"), timeout=60), (
            f"the worker never got to step 2:\n{start_worker.log()}"
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        states = dict(RunbookStepRun.objects.filter(run=run).values_list("name", "status"))
        assert states == {"first": "succeeded", "slow": "running", "last": "pending"}
        call = RunbookCall.objects.get(step__run=run, step__name="slow")
        assert call.status == "pending" and call.attempts == 0  # the attempt died with its transaction

        # A new worker, and what the periodic sweeper sends (the killed worker's message is not redelivered yet).
        service.delays.clear()
        start_worker()
        assert engine.sweep(older_than=datetime.timedelta(0)) >= 1
        assert wait_for(lambda: RunbookRun.objects.get(pk=run.pk).is_finished, timeout=60), (
            f"the run was not resumed:\n{start_worker.log()}"
        )
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        # Step 1 ran once; step 2 again (its answer was lost with the worker); step 3 once.
        assert (len(service.paths("/first")), len(service.paths("/slow")), len(service.paths("/last"))) == (1, 2, 1)
        assert RunbookCall.objects.filter(step__run=run).count() == 3
    finally:
        service.close()
