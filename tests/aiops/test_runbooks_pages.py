"""Runbook pages: the list with the kill switch, the form (steps as JSON, errors naming the step, ready-made
steps, write-only secrets), a runbook's page (runs, rates, MTTR chart), a run's page with its buttons, and the
incident page's panel that starts a run in a mode."""

from __future__ import annotations

import json

import pytest

from aiops.models import Runbook, RunbookRun
from aiops.services import runbooks as runbook_services
from tests.helpers import client_for

from . import factories
from .test_runbooks import drive

pytestmark = pytest.mark.django_db

STEPS = [{"kind": "http", "name": "restart", "method": "POST", "url": "http://127.0.0.1:9/restart/{{ incident.id }}"}]


@pytest.fixture
def incident(alertmanager):
    integration, token = alertmanager
    return factories.incident(integration, token, "checkout")


def form_data(**values) -> dict:
    data = {"name": "Restart checkout", "steps": json.dumps(STEPS), "trigger_mode": "manual", "match": "",
            "window_minutes": 15, "max_concurrent_runs": 1, "max_runs_per_hour": 6, "enabled": "on",
            "secrets": ""}  # fmt: skip
    return {**data, **values}


def test_admins_create_runbooks_with_secrets_that_are_never_shown(admin_user, operator):
    admin = client_for(admin_user)
    page = admin.get("/aiops/runbooks/new/")
    assert page.status_code == 200
    body = page.content.decode()
    for title in ("Kubernetes", "AWX", "Rundeck", "GitHub Actions", "Jenkins"):
        assert title in body

    bad = admin.post("/aiops/runbooks/new/", form_data(steps='[{"kind": "http", "name": "restart"}]'))
    assert bad.status_code == 400 and "step 1 (restart): url is required" in bad.content.decode()
    broken = admin.post("/aiops/runbooks/new/", form_data(steps="[{"))
    assert broken.status_code == 400 and "Steps is not valid JSON" in broken.content.decode()
    assert not Runbook.objects.exists()

    response = admin.post("/aiops/runbooks/new/", form_data(secrets="API_TOKEN=very-secret-value"))
    runbook = Runbook.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/aiops/runbooks/{runbook.pk}/"
    detail = admin.get(response["Location"]).content.decode()
    assert "API_TOKEN" in detail and "very-secret-value" not in detail
    edit = admin.get(f"/aiops/runbooks/{runbook.pk}/edit/").content.decode()
    assert "API_TOKEN" in edit and "very-secret-value" not in edit

    assert client_for(operator).get("/aiops/runbooks/new/").status_code == 403
    assert client_for(operator).get(f"/aiops/runbooks/{runbook.pk}/").status_code == 200


def test_the_kill_switch_on_the_list_page(admin_user, operator):
    admin = client_for(admin_user)
    assert "Stop all runbooks" in admin.get("/aiops/runbooks/").content.decode()
    assert client_for(operator).post("/aiops/runbooks/kill-switch/", {"killed": "1"}).status_code == 403
    admin.post("/aiops/runbooks/kill-switch/", {"killed": "1", "reason": "bad deploy"})
    page = admin.get("/aiops/runbooks/").content.decode()
    assert "Kill switch on:" in page and "bad deploy" in page and "Turn the kill switch off" in page
    assert "Stop all runbooks" not in client_for(operator).get("/aiops/runbooks/").content.decode()
    admin.post("/aiops/runbooks/kill-switch/", {"killed": "0"})
    assert "Kill switch off:" in admin.get("/aiops/runbooks/").content.decode()


def test_operators_run_a_runbook_from_the_incident_and_approve_it(admin_user, operator, viewer, incident):
    runbook = runbook_services.create_runbook(actor=admin_user, name="Restart checkout", steps=STEPS)
    assert (
        'hx-get="/aiops/runbooks/incident/'
        in client_for(operator).get(f"/aiops/incidents/{incident.pk}/").content.decode()
    )

    panel = client_for(viewer).get(f"/aiops/runbooks/incident/{incident.pk}/").content.decode()
    assert "No runbook has run on this incident." in panel and "Run runbook" not in panel
    assert (
        client_for(viewer).post(f"/aiops/runbooks/incident/{incident.pk}/", {"runbook": runbook.pk}).status_code == 403
    )

    client = client_for(operator)
    response = client.post(f"/aiops/runbooks/incident/{incident.pk}/", {"runbook": runbook.pk, "mode": "approval"})
    run = RunbookRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/aiops/runbooks/runs/{run.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "Awaiting approval" in page and 'id="run-approve"' in page
    assert f"POST http://127.0.0.1:9/restart/{incident.pk}" in page  # what approving sends
    assert 'id="run-approve"' not in client_for(viewer).get(response["Location"]).content.decode()

    client.post(f"/aiops/runbooks/runs/{run.pk}/approve/")
    run.refresh_from_db()
    assert run.status == "pending" and run.decided_by == operator
    panel = client.get(f"/aiops/runbooks/incident/{incident.pk}/").content.decode()
    assert f"#{run.pk} Restart checkout" in panel

    again = client.post(f"/aiops/runbooks/runs/{run.pk}/approve/", follow=True).content.decode()
    assert f"run #{run.pk} is not awaiting approval" in again


def test_a_runbook_page_shows_runs_rates_and_the_mttr_chart(admin_user, incident, settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []
    runbook = runbook_services.create_runbook(actor=admin_user, name="Restart checkout", steps=STEPS)
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    assert run.status == "failed"
    page = client_for(admin_user).get(f"/aiops/runbooks/{runbook.pk}/").content.decode()
    assert f'id="run-{run.pk}" data-status="failed"' in page
    assert 'id="figure-success">0.0%' in page and 'data-chart="runbook-mttr"' in page
    run_page = client_for(admin_user).get(f"/aiops/runbooks/runs/{run.pk}/").content.decode()
    assert "not a public address" in run_page
