"""The whole loop with a real Celery worker: a local service starts failing, its HTTP check goes down, the
incident opens, a runbook matching the check's alert calls the service's restart endpoint, the check recovers,
the incident resolves and the run counts as a remediation. In approval mode nothing is sent until an operator
approves."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from aiops import services
from aiops.models import Alert, Check, Incident, RunbookRun
from aiops.runbooks import engine
from aiops.services import runbooks as runbook_services
from tests.helpers import wait_for

from .test_runbooks import Service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


@contextlib.contextmanager
def beat(period: float = 0.5) -> Iterator[None]:
    """What celery beat does: the checks dispatcher every `period` seconds, correlation every second."""
    from opsportal.celery import app

    stop = threading.Event()

    def tick() -> None:
        count = 0
        while not stop.wait(period):
            app.send_task("aiops.tasks.run_checks_due", expires=period * 2)
            count += 1
            if count % 2 == 0:
                app.send_task("aiops.tasks.process_alerts", expires=2)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.fixture
def service():
    target = Service()
    yield target
    target.close()


def incident_of(check: Check) -> Incident | None:
    alert = Alert.objects.filter(fingerprint=check.dedup_key, incident__isnull=False).order_by("-id").first()
    return Incident.objects.get(pk=alert.incident_id) if alert else None


def status(check: Check) -> str:
    return Check.objects.get(pk=check.pk).status


def setup_loop(service: Service, operator, admin_user, mode: str) -> tuple[Check, object]:
    check = services.create_check(
        actor=operator, name="Storefront health", kind="http", config={"url": service.base + "/health"},
        interval_seconds=1, service="storefront", severity="critical",
    )  # fmt: skip
    runbook = runbook_services.create_runbook(
        actor=admin_user, name=f"Restart storefront ({mode})", trigger_mode=mode, window_minutes=5,
        match={"service": "storefront"},
        steps=[
            {"kind": "http", "name": "restart", "method": "POST",
             "url": service.base + "/restart?incident={{ incident.id }}", "expect_status": 200,
             "extract": {"restart_id": "$.id"}},
            {"kind": "wait", "name": "healthy", "until": "check_up", "check": "Storefront health",
             "timeout_seconds": 60, "interval_seconds": 1},
        ],
    )  # fmt: skip
    return check, runbook


def test_a_failing_service_is_restarted_and_the_run_counts_as_a_remediation(
    service, operator, admin_user, admin_api, worker, allow_loopback
):
    check, runbook = setup_loop(service, operator, admin_user, "run")
    with beat():
        assert wait_for(lambda: status(check) == "up", timeout=30), "the check never ran"
        service.healthy = False  # the service starts failing: /health answers 503
        assert wait_for(lambda: incident_of(check) is not None, timeout=30), "the failing check opened no incident"
        incident = incident_of(check)
        assert incident.service == "storefront"

        # The worker runs the runbook: it calls /restart, waits for the check, and the incident resolves.
        assert wait_for(lambda: RunbookRun.objects.filter(runbook=runbook).exists(), timeout=30)
        run = RunbookRun.objects.get(runbook=runbook)
        assert run.incident_id == incident.pk and run.trigger == "automatic"
        assert wait_for(lambda: RunbookRun.objects.get(pk=run.pk).is_finished, timeout=60), "the run never ended"
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        assert [r["path"] for r in service.paths("/restart")] == [f"/restart?incident={incident.pk}"]
        assert status(check) == "up"
        assert wait_for(lambda: Incident.objects.get(pk=incident.pk).status == "resolved", timeout=30), (
            "the recovered check's incident never resolved"
        )

    runs = admin_api.get(f"/api/v1/aiops/runbooks/{runbook.pk}/runs/").json()["results"]
    assert [(r["id"], r["status"], r["remediated"]) for r in runs] == [(run.pk, "succeeded", True)]
    assert [s["status"] for s in runs[0]["steps"]] == ["succeeded", "succeeded"]
    assert runs[0]["steps"][0]["extracted"] == {"restart_id": 1}
    engine.verify_runs()
    assert RunbookRun.objects.get(pk=run.pk).remediated is True
    messages = list(incident.events.filter(kind="runbook").values_list("message", flat=True))
    assert any("step 1 (restart) succeeded" in m for m in messages)
    assert any("step 2 (healthy) succeeded" in m and "is up" in m for m in messages)


def test_in_approval_mode_nothing_is_sent_until_an_operator_approves(
    service, operator, admin_user, operator_api, worker, allow_loopback
):
    check, runbook = setup_loop(service, operator, admin_user, "approval")
    with beat():
        assert wait_for(lambda: status(check) == "up", timeout=30), "the check never ran"
        service.healthy = False
        assert wait_for(lambda: RunbookRun.objects.filter(runbook=runbook).exists(), timeout=30)
        run = RunbookRun.objects.get(runbook=runbook)
        assert run.status == "awaiting_approval"
        time.sleep(3)  # the worker has had every chance to act
        assert not service.paths("/restart") and status(check) == "down"
        assert RunbookRun.objects.get(pk=run.pk).status == "awaiting_approval"

        response = operator_api.post(f"/api/v1/aiops/runbooks/{runbook.pk}/runs/{run.pk}/approve/")
        assert response.status_code == 200, response.content
        assert wait_for(lambda: RunbookRun.objects.get(pk=run.pk).is_finished, timeout=60), "the run never ended"
        assert RunbookRun.objects.get(pk=run.pk).status == "succeeded"
        assert len(service.paths("/restart")) == 1
        incident = incident_of(check)
        assert wait_for(lambda: Incident.objects.get(pk=incident.pk).status == "resolved", timeout=30)
    assert RunbookRun.objects.get(pk=run.pk).remediation() is True
