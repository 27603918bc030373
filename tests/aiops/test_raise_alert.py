"""Other apps open incidents with aiops.services.raise_alert, through the same pipeline as senders' alerts."""

from __future__ import annotations

import pytest

from aiops import services
from aiops.models import Alert, Delivery, Incident, Integration, Notification
from opsportal.audit.models import AuditEntry
from opsportal.errors import InvalidInput, NotAllowed
from tests.helpers import client_for

from . import factories

pytestmark = pytest.mark.django_db

DRIFT = {
    "source": "mlops",
    "dedup_key": "drift:fraud-model:3",
    "title": "Feature drift on fraud-model v3",
    "severity": "error",
    "labels": {"service": "fraud-scoring", "model": "fraud-model", "version": "3"},
    "links": [{"href": "https://portal.example/mlops/models/fraud-model/3/", "text": "Model version"}],
    "description": "PSI of amount is 0.41 (threshold 0.2).",
}


def test_an_alert_from_another_app_opens_an_incident_people_see(viewer):
    raised = services.raise_alert(**DRIFT)
    assert raised.created and not raised.resolved
    assert raised.alert.title == DRIFT["title"] and raised.alert.status == "firing"
    assert services.process_pending_alerts() == 1

    incident = Incident.objects.get()
    assert (incident.status, incident.severity, incident.service) == ("triggered", "error", "fraud-scoring")
    assert incident.title == "Feature drift on fraud-model v3 on fraud-scoring"
    assert incident.summary == DRIFT["description"]
    assert incident.links == DRIFT["links"]
    page = client_for(viewer).get(f"/aiops/incidents/{incident.pk}/").content.decode()
    assert "Feature drift on fraud-model v3" in page
    assert "model=fraud-model" in page and "version=3" in page
    assert 'href="https://portal.example/mlops/models/fraud-model/3/"' in page
    # The alert names the app it came from.
    alert = Alert.objects.get()
    assert alert.integration.name == "mlops (internal)" and alert.source == "mlops"


def test_the_same_key_again_updates_the_alert_and_opens_no_second_incident():
    first = services.raise_alert(**DRIFT)
    services.process_pending_alerts()
    again = services.raise_alert(**DRIFT)
    changed = services.raise_alert(**{**DRIFT, "severity": "critical"})
    services.process_pending_alerts()

    assert not again.created and not changed.created
    assert again.alert.pk == changed.alert.pk == first.alert.pk
    alert = Alert.objects.get()
    assert alert.times_seen == 3 and alert.severity == "critical"
    assert Incident.objects.count() == 1
    # Each call is recorded as a delivery of the app's one integration, as a sender's are.
    assert Integration.objects.filter(internal_source="mlops").count() == 1
    assert Delivery.objects.filter(integration__internal_source="mlops").count() == 3


def test_resolve_closes_the_incident_and_a_new_firing_reopens_it():
    services.raise_alert(**DRIFT)
    services.process_pending_alerts()

    resolved = services.raise_alert(source="mlops", dedup_key=DRIFT["dedup_key"], resolve=True)
    assert resolved.resolved and resolved.alert.status == "resolved"
    # A resolve repeats nothing it was not told: title, severity and labels stay.
    assert (resolved.alert.title, resolved.alert.severity) == (DRIFT["title"], "error")
    assert resolved.alert.labels == DRIFT["labels"]
    services.process_pending_alerts()
    incident = Incident.objects.get()
    assert incident.status == "resolved"
    assert incident.events.filter(message="Resolved: all its alerts resolved.").exists()

    # Resolving again, or a key that never fired, stores nothing.
    deliveries = Delivery.objects.count()
    assert services.raise_alert(source="mlops", dedup_key=DRIFT["dedup_key"], resolve=True).alert is None
    assert services.raise_alert(source="llmops", dedup_key="never-fired", resolve=True).alert is None
    assert Delivery.objects.count() == deliveries
    assert not Integration.objects.filter(internal_source="llmops").exists()

    refired = services.raise_alert(**DRIFT)
    services.process_pending_alerts()
    assert refired.created and refired.alert.pk != resolved.alert.pk
    incident.refresh_from_db()
    assert incident.status == "triggered" and Incident.objects.count() == 1


def test_silences_correlation_rules_and_notifications_apply(operator, admin_user):
    factories.silence(actor=operator, service="fraud-scoring")
    silenced = services.raise_alert(**DRIFT)
    services.process_pending_alerts()
    assert silenced.alert.suppressed_by is not None and not Incident.objects.exists()

    services.save_rule(actor=admin_user, name="by model", position=1, matchers=[], group_by=["model"])
    factories.email_channel(actor=admin_user, services=["ranking"])
    for version in ("1", "2"):
        services.raise_alert(
            source="mlops",
            dedup_key=f"drift:ranker:{version}",
            title=f"Drift on ranker v{version}",
            labels={"service": "ranking", "model": "ranker", "version": version},
        )
    services.process_pending_alerts()
    incident = Incident.objects.get()  # one rule groups both versions
    assert incident.alert_count == 2 and incident.rule.name == "by model"
    assert Notification.objects.filter(incident=incident, event="opened").count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": "ML Ops!"}, "source"),
        ({"source": ""}, "source"),
        ({"dedup_key": "  "}, "dedup_key"),
        ({"dedup_key": "k" * 129}, "dedup_key"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"title": ""}, "title"),
        ({"labels": {"version": 3}}, "labels.version"),
        ({"labels": ["model"]}, "labels"),
        ({"annotations": {"psi": 0.41}}, "annotations.psi"),
        ({"links": [{"text": "no href"}]}, "links[0].href"),
        ({"links": "https://portal.example/"}, "links"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(change, field):
    with pytest.raises(InvalidInput) as refused:
        services.raise_alert(**{**DRIFT, **change})
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert not Integration.objects.exists() and not Alert.objects.exists() and not Delivery.objects.exists()


def test_the_apps_integration_is_audited_takes_no_http_deliveries_and_can_be_disabled(admin_user):
    services.raise_alert(**DRIFT)
    integration = Integration.objects.get(internal_source="mlops")
    assert AuditEntry.objects.for_object("aiops", "integration", integration.pk).filter(action="create").exists()
    # No token was ever shown, and none works over HTTP.
    assert not services.token_matches(integration=integration, raw_token="internal")
    with pytest.raises(NotAllowed):
        services.rotate_integration_token(integration=integration, actor=admin_user)

    services.update_integration(integration=integration, actor=admin_user, enabled=False)
    with pytest.raises(NotAllowed) as refused:
        services.raise_alert(**{**DRIFT, "dedup_key": "another"})
    assert refused.value.field == "source"
    assert Alert.objects.count() == 1
