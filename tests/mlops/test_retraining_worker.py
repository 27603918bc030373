"""The monitoring loop with a real Celery worker: a drifted batch arrives through `record_batch`, the worker runs
the monitor's checks, the breach opens an incident, the check's retraining webhook calls a local receiver, and
the receiver's answer lands on the incident's timeline and the model's history; a clean batch then resolves the
incident."""

from __future__ import annotations

import pytest

from aiops.models import Alert, Incident, IncidentEvent
from mlops import services as mlops_services
from mlops.models import Breach, MonitoringBatch, RetrainingCall, Stage, VersionEvent
from mlops.services import monitor_checks, retraining
from tests.helpers import wait_for

from . import factories

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def incident_of(breach: Breach) -> Incident | None:
    alert = Alert.objects.filter(fingerprint=breach.dedup_key, incident__isnull=False).order_by("-id").first()
    return Incident.objects.get(pk=alert.incident_id) if alert else None


def test_a_drifted_batch_becomes_an_incident_and_a_retraining_call_whose_answer_is_on_the_timeline(
    operator, admin_user, media, receiver, allow_loopback, worker
):
    model = factories.registered_model(actor=operator, name="churn")
    mlops_services.transition_stage(version=factories.version(model, 1), stage=Stage.PRODUCTION, actor=admin_user)
    monitor = factories.monitor(model=model, actor=admin_user)
    hook = retraining.save_retraining_hook(
        model=model, actor=admin_user, name="retrain", kind="generic", url=receiver.url, secret="s3cret"
    )
    monitor_checks.save_check(
        monitor=monitor, actor=admin_user, name="Dataset drift", kind="dataset_drift", severity="critical",
        retraining=hook,
    )  # fmt: skip

    drifted = factories.monitoring_batch(monitor=monitor, seed=7, shift=2.0)
    assert wait_for(lambda: Breach.objects.filter(batch=drifted).exists(), timeout=30), "the batch was never checked"
    breach = Breach.objects.get(batch=drifted)
    assert MonitoringBatch.objects.get(pk=drifted.pk).evaluated_at is not None

    assert wait_for(lambda: receiver.requests, timeout=30), "the retraining webhook was never called"
    body = receiver.json()
    assert body["breach"]["id"] == breach.pk and body["model"]["name"] == "churn"
    assert body["report_url"].endswith(f"/monitoring/batches/{drifted.pk}/")
    assert wait_for(lambda: RetrainingCall.objects.get(breach=breach).status == "sent", timeout=30)

    assert wait_for(lambda: incident_of(breach) is not None, timeout=30), "the breach opened no incident"
    incident = incident_of(breach)
    assert incident.severity == "critical" and "Dataset drift" in incident.title
    assert wait_for(
        lambda: IncidentEvent.objects.filter(
            incident=incident, data__source="mlops", message="Retraining webhook retrain answered HTTP 200"
        ).exists(),
        timeout=30,
    ), "the retraining answer is not on the incident's timeline"
    history = set(VersionEvent.objects.filter(model=model).values_list("kind", flat=True))
    assert {"breach_opened", "retraining"} <= history

    clean = factories.monitoring_batch(monitor=monitor, seed=8, start="2026-01-05T02:00:00+00:00")
    assert wait_for(lambda: MonitoringBatch.objects.get(pk=clean.pk).evaluated_at is not None, timeout=30)
    assert Breach.objects.get(pk=breach.pk).resolved_at is not None
    assert wait_for(lambda: Incident.objects.get(pk=incident.pk).status == "resolved", timeout=30), (
        "the recovered check's incident never resolved"
    )
