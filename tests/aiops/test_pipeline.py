"""The whole path with real components: senders, the live portal, the broker and a Celery worker."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request

import pytest

from aiops import services
from aiops.models import Alert, Incident
from aiops.tasks import process_alerts
from tests.conftest import need_service
from tests.helpers import running_worker, wait_for

from .factories import am_alert, am_payload, deliver
from .senders import ALERTMANAGER, PROMETHEUS, RealSenders

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def test_deliveries_accepted_while_the_broker_is_down_are_each_processed_once(
    admin_user, broker_outage, isolated_broker
):
    integration, token = services.create_integration(name="am", kind="alertmanager", actor=admin_user)
    payloads = [am_payload(am_alert(instance=f"web-{i}"), group_key=f"g{i}") for i in range(5)]
    with broker_outage():
        for payload in payloads:
            response = deliver(integration, token, payload)
            assert response.status_code == 202, "ingest must not depend on the broker"
        # A retry of the last delivery while the broker is still down stores nothing twice.
        assert deliver(integration, token, payloads[-1]).json()["duplicate"]
    assert Alert.objects.filter(pending=True).count() == 5
    assert Incident.objects.count() == 0

    with running_worker():
        # What beat runs every 15 s: the sweeper drains what the lost enqueues left behind.
        process_alerts.delay()
        assert wait_for(lambda: not Alert.objects.filter(pending=True).exists(), timeout=30)
        process_alerts.delay()  # a second sweep finds nothing left to do
        time.sleep(1)
    incident = Incident.objects.get()
    assert incident.alert_count == 5 and incident.firing_count == 5
    assert incident.events.filter(kind="alert_firing").count() == 5


def test_enqueue_on_commit_gets_alerts_to_the_worker(admin_user, worker, live_server):
    integration, token = services.create_integration(name="am", kind="alertmanager", actor=admin_user)
    request = urllib.request.Request(
        f"{live_server.url}{integration.ingest_path()}",
        data=json.dumps(am_payload(am_alert())).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 202
    assert wait_for(lambda: Incident.objects.exists(), timeout=30), "the worker never correlated the alert"


def test_real_prometheus_and_alertmanager_open_and_resolve_an_incident(admin_user, worker, live_server, tmp_path):
    if not (shutil.which(PROMETHEUS) and shutil.which(ALERTMANAGER)):
        need_service("Debian's prometheus and prometheus-alertmanager")
    integration, token = services.create_integration(name="prometheus", kind="alertmanager", actor=admin_user)
    url = f"{live_server.url}{integration.ingest_path()}"
    with RealSenders(url, token, tmp_path) as senders:
        opened = wait_for(lambda: Incident.objects.filter(status="triggered").exists(), timeout=60)
        assert opened, f"no incident opened; sender logs:\n{senders.logs()}"
        incident = Incident.objects.get()
        assert incident.service == "checkout" and incident.severity == "critical"
        alert = Alert.objects.get()
        assert alert.title == "Checkout is failing" and alert.labels["alertname"] == "OpsPortalTestAlert"
        senders.set_firing(False)
        resolved = wait_for(lambda: Incident.objects.filter(status="resolved").exists(), timeout=60)
        assert resolved, f"the incident never resolved; sender logs:\n{senders.logs()}"
    kinds = list(Incident.objects.get().events.values_list("kind", flat=True))
    assert kinds[:2] == ["opened", "alert_firing"] and "alert_resolved" in kinds and kinds[-1] == "status"
