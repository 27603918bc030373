"""A real Celery worker runs the checks against local servers; incidents open and resolve through the pipeline."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest
from django.test import Client

from aiops import services
from aiops.models import Alert, Check, CheckResult, Incident
from tests.helpers import wait_for

from .check_targets import Target, closed_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


@contextlib.contextmanager
def beat(period: float = 0.5) -> Iterator[None]:
    """What celery beat does in production: send the dispatcher task every `period` seconds (expiring)."""
    from opsportal.celery import app

    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(period):
            app.send_task("aiops.tasks.run_checks_due", expires=period * 2)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def incident_of(check: Check) -> Incident | None:
    alert = Alert.objects.filter(fingerprint=check.dedup_key, incident__isnull=False).order_by("-id").first()
    return alert.incident if alert else None


def status(check: Check) -> str:
    return Check.objects.get(pk=check.pk).status


def test_the_worker_runs_checks_and_incidents_open_and_resolve(operator, worker, allow_loopback):
    target = Target()
    try:
        web = services.create_check(
            actor=operator, name="Storefront", kind="http", config={"url": target.url("/health")},
            interval_seconds=1, retries=1, service="storefront", severity="critical",
        )  # fmt: skip
        database = services.create_check(
            actor=operator, name="Orders DB", kind="tcp", config={"host": "127.0.0.1", "port": closed_port()},
            interval_seconds=1, service="orders",
        )  # fmt: skip
        backup = services.create_check(
            actor=operator, name="Backup job", kind="heartbeat", period_seconds=2, grace_seconds=1, service="backups"
        )
        assert Client().get(f"/ping/{backup.ping_uuid}").content == b"OK"

        with beat():
            assert wait_for(lambda: status(web) == "up", timeout=30), "the HTTP check never ran"
            assert wait_for(lambda: incident_of(database) is not None, timeout=30), "no incident for the closed port"
            assert "ConnectionRefusedError" in Alert.objects.get(fingerprint=database.dedup_key).description

            # The storefront starts answering 500: one retry (pending), then down, then an incident.
            target.answer(500)
            assert wait_for(lambda: incident_of(web) is not None, timeout=30), "the 500s opened no incident"
            incident = incident_of(web)
            assert incident.severity == "critical" and incident.service == "storefront"
            failures = CheckResult.objects.filter(check_obj=web, up=False).order_by("at")
            assert failures.count() >= 2  # the first failure was only pending (retries=1)
            assert failures.first().error == "HTTP 500 Internal Server Error; expected 200-299"

            # The heartbeat stopped pinging: down after its period plus grace (3 s), found by the dispatcher.
            assert wait_for(lambda: incident_of(backup) is not None, timeout=30), "the silent heartbeat opened none"
            assert Check.objects.get(pk=backup.pk).last_error.startswith("no success ping since ")

            # The storefront recovers: its alert resolves and so does its incident.
            target.answer(200)
            assert wait_for(lambda: status(web) == "up", timeout=30)
            assert wait_for(
                lambda: Incident.objects.get(pk=incident.pk).status == Incident.Status.RESOLVED, timeout=30
            ), "the recovered check's incident never resolved"

        # Every run was stored once, and the checks that still fail stay down with their incidents open.
        assert status(database) == "down" and incident_of(database).status != Incident.Status.RESOLVED
        results = list(CheckResult.objects.filter(check_obj=web).values_list("at", flat=True))
        assert len(results) == len(set(results))
    finally:
        target.close()
