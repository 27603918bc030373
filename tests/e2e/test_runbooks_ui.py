"""An operator runs a runbook from the incident page in approval mode, reads on the run page what approving
will send, approves, and sees the step's request and answer once the worker ran it; an admin inserts a
ready-made step in the runbook form."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from aiops import services
from aiops.models import Incident, RunbookRun
from aiops.services import runbooks as runbook_services
from opsportal.accounts.roles import Role
from tests.aiops.conftest import am_alert, am_payload, deliver
from tests.aiops.test_runbooks import Service, drive
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """The test runs the engine itself; what the pages enqueue goes to a broker no developer's worker reads."""


@pytest.fixture
def service():
    target = Service()
    yield target
    target.close()


def test_an_operator_approves_a_run_from_the_incident_page(page, service, allow_loopback):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    UserFactory(username="otto", role=Role.OPERATOR)
    integration, token = services.create_integration(name="prod", kind="alertmanager", actor=admin)
    deliver(integration, token, am_payload(am_alert(service="checkout"), group_key="checkout"))
    services.process_pending_alerts()
    incident = Incident.objects.get()
    runbook_services.create_runbook(
        actor=admin, name="Restart checkout",
        steps=[{"kind": "http", "name": "restart", "method": "POST",
                "url": service.base + "/restart?service={{ incident.service }}", "expect_status": 200}],
    )  # fmt: skip

    log_in(page, "otto")
    page.goto(f"/aiops/incidents/{incident.pk}/")
    panel = page.locator("#incident-runbooks")
    expect(panel.get_by_text("No runbook has run on this incident.")).to_be_visible()
    panel.get_by_label("Runbook").select_option(label="Restart checkout")
    panel.get_by_label("Mode").select_option(label="Run after approval")
    panel.get_by_role("button", name="Run runbook").click()
    run_link = panel.get_by_role("link", name=re.compile(r"#\d+ Restart checkout"))
    expect(run_link).to_be_visible()
    expect(panel.get_by_text("Awaiting approval")).to_be_visible()
    run = RunbookRun.objects.get()
    assert run.status == "awaiting_approval" and not service.requests

    run_link.click()
    expect(page).to_have_url(f"/aiops/runbooks/runs/{run.pk}/")
    expect(page.locator(".step-preview")).to_have_text(f"POST {service.base}/restart?service=checkout")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text(f"Run #{run.pk} approved")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    drive(run)  # what the worker does after the approval
    expect(page.locator("#step-0")).to_have_attribute("data-status", "succeeded", timeout=10_000)  # the page polls
    page.locator("#step-0 summary", has_text="Answer").click()
    expect(page.locator("#step-0")).to_contain_text('"restarted": true')
    assert [r["path"] for r in service.paths("/restart")] == ["/restart?service=checkout"]
    assert not page.console_errors and not page.outside_requests


def test_an_admin_inserts_a_ready_made_step(page):
    UserFactory(username="ada", role=Role.ADMIN)
    log_in(page, "ada")
    page.goto("/aiops/runbooks/")
    page.get_by_role("link", name="New runbook").click()
    page.get_by_label("Name").fill("Restart via Kubernetes")
    page.locator(".insert-step[data-template=kubernetes_rollout_restart]").click()
    steps = json.loads(page.get_by_role("textbox", name="Steps").input_value())
    assert steps[0]["method"] == "PATCH" and "/deployments/" in steps[0]["url"]
    page.get_by_label("Secrets").fill("K8S_TOKEN=abc.def.ghi")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#runbook-name")).to_have_text("Restart via Kubernetes")
    expect(page.locator("#runbook-secrets")).to_contain_text("K8S_TOKEN set")
    expect(page.locator("body")).not_to_contain_text("abc.def.ghi")
    assert not page.console_errors and not page.outside_requests
