"""A worker killed with SIGKILL in the middle of a run: a new worker resumes it, and every result is stored once.

Real Celery worker processes (`celery -A opsportal worker -P solo`) on the configured broker (Redis when
REDIS_URL is set, else the embedded filesystem broker in folders of this test), the test database, and the
local OpenAI-compatible server answering slowly.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from kombu import Exchange, Queue

from llmops import engine, services, tasks
from llmops.models import EvalRun, RunResult
from opsportal.celery import app
from tests.helpers import wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 30
CONCURRENCY = 2
DELAY = 0.2


def database_url() -> str:
    """The test database as a DATABASE_URL, for the worker processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    """Starts worker processes on a queue of this test's own and kills them."""

    def __init__(self, env: dict[str, str], queue: str, logs: Path) -> None:
        self.env, self.queue, self.logs = env, queue, logs
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        number = len(self.processes) + 1
        command = [
            str(Path(sys.executable).parent / "celery"), "-A", "opsportal", "worker", "-Q", self.queue, "-P", "solo",
            "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "WARNING",
            "-n", f"llmops-kill-test-{number}@%h",
        ]  # fmt: skip
        log = (self.logs / f"worker-{number}.log").open("w")
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def log(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.logs.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(transactional_db, tmp_path, monkeypatch):
    queue = f"llmops-kill-test-{uuid.uuid4().hex[:8]}"  # nobody else's worker takes these messages
    env = {**os.environ, "DATABASE_URL": database_url(), "SECRET_KEY": settings.SECRET_KEY,
           "DJANGO_SETTINGS_MODULE": "opsportal.settings", "OPSPORTAL_VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    if app.conf.broker_url.startswith("filesystem"):
        # The workers' settings put the broker folders under their OPSPORTAL_VAR_DIR; this process sends there too.
        folders = {}
        for option, name in (("data_folder_in", "queue"), ("processed_folder", "processed"),
                             ("control_folder", "control")):  # fmt: skip
            path = tmp_path / "var" / "broker" / name
            path.mkdir(parents=True)
            folders[option] = str(path)
        folders["data_folder_out"] = folders["data_folder_in"]
        monkeypatch.setitem(app.conf, "broker_transport_options", {**app.conf.broker_transport_options, **folders})
        monkeypatch.setattr(app, "_pool", None)
        monkeypatch.setattr(app.amqp, "_producer_pool", None)
    logs = tmp_path / "logs"
    logs.mkdir()
    pool = Workers(env, queue, logs)
    yield pool
    pool.stop_all()
    forget_queue(queue)
    app._pool = None
    app.amqp._producer_pool = None


def forget_queue(queue: str) -> None:
    """Remove the test's queue from the broker, with the message the killed worker never acknowledged."""
    with app.connection_for_write() as broker:
        channel = broker.default_channel
        declared = Queue(queue, Exchange(queue), routing_key=queue)(channel)  # as `celery worker -Q` declares it
        declared.declare()
        declared.delete()
        redis = getattr(channel, "client", None)  # Redis keeps unacknowledged messages aside
        if redis is not None:
            for tag, message in redis.hgetall(channel.unacked_key).items():
                if queue.encode() in message:
                    redis.hdel(channel.unacked_key, tag)
                    redis.zrem(channel.unacked_index_key, tag)


def test_a_run_survives_its_worker_being_killed(workers, fake_llm, llm, capitals_prompt, operator, broker_outage):
    fake_llm.delay = DELAY
    dataset = services.create_dataset(name="thirty", actor=operator)
    for index in range(ITEMS):
        services.add_item(dataset=dataset, actor=operator, input={"country": f"Country {index}"})
    # The run's own enqueue goes to the shared `evals` queue; with the broker unreachable it is only logged, and
    # the test sends the task to its own queue instead (what the sweeper would do).
    with broker_outage():
        run = services.create_run(
            dataset=dataset, prompt_versions=[capitals_prompt.versions.get()], models=[llm],
            scorers=[{"type": "icontains", "config": {"value": "capital"}}], actor=operator, concurrency=CONCURRENCY,
        )  # fmt: skip
    first = workers.start()
    tasks.execute_run.apply_async(args=[run.pk], queue=workers.queue)

    def stored() -> int:
        return RunResult.objects.filter(run=run).count()

    assert wait_for(lambda: stored() >= 6, timeout=90, interval=0.02), (
        f"the first worker stored nothing:\n{workers.log()}"
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    time.sleep(DELAY * 2)  # what the dead worker had asked for has arrived (and is answered into the void)
    stored_at_kill, requests_at_kill = stored(), len(fake_llm.chat_requests)
    assert stored_at_kill < ITEMS, "the run finished before the kill; nothing to resume"

    run.refresh_from_db()
    assert run.status == "running" and run.lease_owner.endswith(f":{first.pid}")
    assert run.pk not in engine.stalled_runs()  # its lease has not run out yet: it might only be slow
    # What LEASE_SECONDS of silence does: the lease runs out and the sweeper takes the run for stalled.
    EvalRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert engine.stalled_runs() == [run.pk]

    workers.start()
    for run_id in engine.stalled_runs():  # tasks.resume_stalled_runs, sent to this test's queue
        tasks.execute_run.apply_async(args=[run_id], queue=workers.queue)

    finished = wait_for(lambda: EvalRun.objects.get(pk=run.pk).finished, timeout=90, interval=0.02)
    assert finished, f"the run was not resumed:\n{workers.log()}"
    run.refresh_from_db()
    assert (run.status, run.total, run.done, run.errors) == ("completed", ITEMS, ITEMS, 0)
    cells = RunResult.objects.filter(run=run).values("item", "column").annotate(n=Count("id"))
    assert len(cells) == ITEMS and {cell["n"] for cell in cells} == {1}
    # The second worker asked only for the cells that had no stored result ...
    requests = len(fake_llm.chat_requests)
    assert requests == requests_at_kill + (ITEMS - stored_at_kill)
    # ... so the only work done twice is what the kill lost: the requests in flight (at most CONCURRENCY) plus
    # answers that had arrived but were not stored yet (the engine stores in batches every FLUSH_EVERY_SECONDS;
    # the kill came right after a batch, so that is at most about one more round).
    assert requests - ITEMS == requests_at_kill - stored_at_kill <= 2 * CONCURRENCY
