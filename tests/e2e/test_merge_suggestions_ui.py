"""An operator decides merge suggestions of a learned rule on the incident page: one click merges,
another keeps two incidents apart for good; the timeline says why alerts were grouped."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from aiops import services
from aiops.models import Alert, Incident, MergeSuggestion
from aiops.tasks import process_alerts
from opsportal.accounts.roles import Role
from tests.aiops.conftest import am_alert, am_payload, deliver
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ORDERS_WORKER = {"alertname": "OrdersQueueBacklog", "service": "orders-worker", "namespace": "orders", "team": "orders"}
ORDERS_API = {"alertname": "OrdersApiSlow", "service": "orders-api", "namespace": "orders", "team": "orders"}
BILLING_WORKER = {
    "alertname": "BillingQueueBacklog", "service": "billing-worker", "namespace": "billing", "team": "billing"
}  # fmt: skip
BILLING_API = {"alertname": "BillingApiSlow", "service": "billing-api", "namespace": "billing", "team": "billing"}


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """The test correlates alerts itself; what it enqueues goes to a broker folder no developer's worker reads."""


NOISE = {"alertname": "BackupLate", "service": "backup", "team": "infra", "job": "restic"}


def fire(integration, token, labels: dict, *others: dict, ago: float = 0) -> Alert:
    """An alert with these labels (and `others` in the same delivery), first seen `ago` seconds back,
    correlated; returns the first."""
    alerts = [am_alert(**{**each, "instance": f"i-{n}"}) for n, each in enumerate((labels, *others))]
    response = deliver(integration, token, am_payload(*alerts, group_key=labels["alertname"]))
    assert response.status_code == 202, response.content
    names = [each["alertname"] for each in (labels, *others)]
    if ago:
        Alert.objects.filter(labels__alertname__in=names).update(
            first_seen_at=timezone.now() - datetime.timedelta(seconds=ago)
        )
    process_alerts()  # the worker's task: correlate, then learn what fired together
    return Alert.objects.get(labels__alertname=labels["alertname"])


def test_accept_one_suggestion_and_reject_another(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    UserFactory(username="otto", role=Role.OPERATOR)
    services.save_rule(actor=admin, name="One failure", kind="learned", position=1, window_minutes=30)
    integration, token = services.create_integration(name="prod", kind="alertmanager", actor=admin)
    # Unrelated noise at the same time, as in production, so what the two alike alerts share stands out.
    worker = fire(integration, token, ORDERS_WORKER, NOISE, ago=60)
    api = fire(integration, token, ORDERS_API)
    billing_worker = fire(integration, token, BILLING_WORKER, {**NOISE, "alertname": "BackupLateAgain"}, ago=60)
    billing_api = fire(integration, token, BILLING_API)
    pending = MergeSuggestion.objects.filter(state="pending")
    assert {(s.incident_id, s.other_id) for s in pending} == {
        (api.incident_id, worker.incident_id), (billing_api.incident_id, billing_worker.incident_id)
    }  # fmt: skip

    log_in(page, "otto")
    page.goto(api.incident.get_absolute_url())
    panel = page.locator("#merge-suggestions")
    expect(panel).to_contain_text(f"Likely the same failure as #{worker.incident_id} OrdersQueueBacklog")
    expect(panel).to_contain_text("namespace=orders")
    page.get_by_role("button", name=f"Merge into #{worker.incident_id}").click()

    # The page becomes the incident that remains, with both alerts and the merge on its timeline.
    expect(page).to_have_url(re.compile(rf"/aiops/incidents/{worker.incident_id}/$"))
    expect(page.get_by_text(f"Merged #{api.incident_id} into #{worker.incident_id}.")).to_be_visible()
    alerts = page.locator("#incident-alerts tbody tr")
    expect(alerts).to_have_count(2)
    expect(alerts.filter(has_text="OrdersApiSlow")).to_have_count(1)
    expect(page.locator("#timeline")).to_contain_text("Merged")
    assert Incident.objects.get(pk=api.incident_id).merged_into_id == worker.incident_id

    page.goto(billing_worker.incident.get_absolute_url())
    panel = page.locator("#merge-suggestions")
    expect(panel).to_contain_text(f"Likely the same failure: #{billing_api.incident_id} BillingApiSlow")
    panel.get_by_role("button", name="Keep apart").click()
    expect(panel).to_contain_text(f"Suggestion rejected: #{billing_api.incident_id} stays apart")
    expect(panel.get_by_role("button", name="Keep apart")).to_have_count(0)
    page.reload()
    expect(page.locator("#incident-alerts tbody tr")).to_have_count(1)
    expect(page.locator("#merge-suggestions")).not_to_contain_text("Likely the same failure")
    assert Incident.objects.get(pk=billing_api.incident_id).merged_into_id is None

    assert not page.console_errors and not page.outside_requests
