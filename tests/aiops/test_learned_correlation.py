"""Learned correlation: alerts of one failure join one incident even when names and services differ,
with the reason and confidence on the timeline; history, merges and splits teach it; merge
suggestions are accepted or rejected by operators."""

from __future__ import annotations

import datetime
import re

import pytest
from django.test import Client
from django.utils import timezone

from aiops import services
from aiops.models import Alert, CorrelationRule, Incident, MergeSuggestion
from aiops.tasks import process_alerts
from opsportal.audit.models import AuditEntry

from .factories import am_alert, am_payload, deliver

pytestmark = pytest.mark.django_db

DB = {"alertname": "PostgresDown", "service": "orders-db", "team": "data", "db": "orders"}
API = {"alertname": "HTTP5xxRate", "service": "checkout-api", "team": "web", "path": "/pay"}
NOISE = {"alertname": "BackupLate", "service": "backup", "team": "infra", "job": "restic"}


@pytest.fixture
def learned_rule(admin_user):
    return services.save_rule(actor=admin_user, name="one failure", kind="learned", position=1, window_minutes=30)


def fire(integration, token, *labels: dict, ago: float = 0) -> list[Alert]:
    """Fire alerts with these labels (first seen `ago` seconds back) and correlate them."""
    before = set(Alert.objects.values_list("pk", flat=True))
    alerts = [am_alert(**{**labels_, "instance": f"i-{n}"}) for n, labels_ in enumerate(labels)]
    response = deliver(integration, token, am_payload(*alerts, group_key=f"g-{timezone.now().timestamp()}"))
    assert response.status_code == 202, response.content
    new = Alert.objects.exclude(pk__in=before)
    if ago:
        new.update(first_seen_at=timezone.now() - datetime.timedelta(seconds=ago))
    process_alerts()  # the worker's task: correlate, then learn what fired together
    return list(new)


def resolve_all(integration, token) -> None:
    """Every alert resolves, and everything so far moves a day into the past."""
    firing = [
        am_alert(**{k: v for k, v in a.labels.items() if k != "severity"}, status="resolved")
        for a in Alert.objects.firing()
    ]
    if firing:
        deliver(integration, token, am_payload(*firing, group_key=f"r-{timezone.now().timestamp()}"))
        process_alerts()
    day = datetime.timedelta(days=1)
    for alert in Alert.objects.all():
        Alert.objects.filter(pk=alert.pk).update(first_seen_at=alert.first_seen_at - day)
    for incident in Incident.objects.all():
        Incident.objects.filter(pk=incident.pk).update(
            resolved_at=(incident.resolved_at or timezone.now()) - day, last_alert_at=incident.last_alert_at - day
        )


def cascade(integration, token):
    """db down, then 40 s later the API behind it errs; returns (db alert, api alert)."""
    (db,) = fire(integration, token, DB, ago=40)
    (api,) = fire(integration, token, API)
    return Alert.objects.get(pk=db.pk), Alert.objects.get(pk=api.pk)


def joined_event(alert: Alert):
    return alert.incident.events.get(kind="alert_firing", data__alert=alert.pk)


def test_without_history_different_services_stay_apart(alertmanager, learned_rule):
    integration, token = alertmanager
    db, api = cascade(integration, token)
    assert db.incident_id != api.incident_id
    assert "Opened by one failure" in api.incident.events.get(kind="opened").message


def test_cascade_learned_from_history_joins_with_reason_and_confidence(alertmanager, learned_rule):
    integration, token = alertmanager
    for _ in range(5):
        cascade(integration, token)
        resolve_all(integration, token)
    db, api = cascade(integration, token)
    assert api.incident_id == db.incident_id
    event = joined_event(api)
    assert "Joined with confidence" in event.message
    assert "fired within 40 s of PostgresDown on orders-db 5 of the last 5 times" in event.message
    assert event.data["confidence"] >= 0.6
    assert Incident.objects.get(pk=db.incident_id).alert_count == 2


def test_co_firings_are_counted_once_and_only_once_correlated(alertmanager, learned_rule):
    from aiops.models import AlertPairStats, AlertSignatureStats

    integration, token = alertmanager
    cascade(integration, token)  # the worker's task correlates, then learns
    pair = AlertPairStats.objects.get()
    assert (pair.a, pair.b) == ("HTTP5xxRate on checkout-api", "PostgresDown on orders-db")
    assert pair.cofired == pytest.approx(1.0, abs=1e-3)
    assert pair.lag_seconds == pytest.approx(-40, abs=2)  # b (the database) fired 40 s before a
    # Learning again finds nothing new: nothing is counted twice.
    assert services.learn_cofirings() == 0
    assert AlertPairStats.objects.get().cofired == pytest.approx(1.0, abs=1e-3)
    # An alert not yet correlated holds the learner back, with everything after it.
    deliver(integration, token, am_payload(am_alert(**NOISE), group_key="pending"))
    assert Alert.objects.filter(pending=True).count() == 1
    assert services.learn_cofirings() == 0
    assert not AlertSignatureStats.objects.filter(signature__startswith="BackupLate").exists()
    process_alerts()
    assert AlertSignatureStats.objects.get(signature="BackupLate on backup").fired == pytest.approx(1.0, abs=1e-3)


def test_unrelated_noise_at_the_same_time_is_not_joined(alertmanager, learned_rule):
    integration, token = alertmanager
    for _ in range(5):
        cascade(integration, token)
        resolve_all(integration, token)
    (db,) = fire(integration, token, DB, ago=40)
    api, noise = fire(integration, token, API, NOISE)
    db.refresh_from_db()
    assert api.incident_id == db.incident_id
    assert noise.incident_id not in (None, db.incident_id)


def test_more_history_means_more_confidence(alertmanager, learned_rule):
    integration, token = alertmanager
    confidences = []
    for _ in range(6):
        db, api = cascade(integration, token)
        if api.incident_id == db.incident_id:
            confidences.append(joined_event(api).data["confidence"])
        resolve_all(integration, token)
    assert len(confidences) >= 2
    assert confidences == sorted(confidences) and confidences[-1] > confidences[0]


def test_a_merge_teaches_and_a_split_unteaches(alertmanager, learned_rule, operator):
    integration, token = alertmanager
    db, api = cascade(integration, token)
    assert db.incident_id != api.incident_id
    services.merge_incidents(source=api.incident, target=db.incident, actor=operator)
    resolve_all(integration, token)

    db, api = cascade(integration, token)
    assert api.incident_id == db.incident_id
    assert "people merged these kinds of alerts 1 time" in joined_event(api).message
    services.split_alert(incident=db.incident, alert=api, actor=operator)
    resolve_all(integration, token)

    db, api = cascade(integration, token)
    assert api.incident_id != db.incident_id


def test_labels_rules_keep_grouping_by_label_values(alertmanager, learned_rule, admin_user):
    services.save_rule(actor=admin_user, rule=learned_rule, matchers=[{"label": "team", "op": "=", "value": "data"}])
    integration, token = alertmanager
    fire(integration, token, API, {**API, "path": "/refund"}, DB)
    web = Incident.objects.get(rule__kind="labels")
    assert web.alert_count == 2 and web.group_labels == {"alertname": "HTTP5xxRate", "service": "checkout-api"}
    assert Incident.objects.get(rule=learned_rule).alert_count == 1


SIMILAR_A = {"alertname": "OrdersQueueBacklog", "service": "orders-worker", "namespace": "orders", "team": "orders"}
SIMILAR_B = {"alertname": "OrdersApiSlow", "service": "orders-api", "namespace": "orders", "team": "orders"}


@pytest.fixture
def suggestion(alertmanager, learned_rule) -> MergeSuggestion:
    """Two alerts alike in labels and titles but never seen together: a suggestion, not a join."""
    integration, token = alertmanager
    fire(integration, token, SIMILAR_A, NOISE, ago=60)
    fire(integration, token, SIMILAR_B)
    found = MergeSuggestion.objects.get()
    assert found.incident.title.startswith("OrdersApiSlow") and found.other.title.startswith("OrdersQueueBacklog")
    assert 0.3 <= found.confidence < 0.6 and "namespace=orders" in found.reason
    return found


def test_accepting_a_suggestion_merges_and_is_remembered(suggestion, operator):
    target = services.accept_merge_suggestion(suggestion=suggestion, actor=operator)
    suggestion.refresh_from_db()
    assert target == suggestion.other and suggestion.state == "accepted" and suggestion.decided_by == operator
    assert Incident.objects.get(pk=suggestion.incident_id).merged_into == target
    assert target.alerts.count() == 2
    assert services.pending_suggestions(incident=target) == []


def test_rejecting_from_the_incident_page_with_htmx(suggestion, operator, alertmanager):
    client = Client()
    client.force_login(operator)
    panel = client.get(f"/aiops/suggestions/incident/{suggestion.incident_id}/")
    assert (
        panel.status_code == 200 and b"Likely the same failure as" in panel.content and b"Keep apart" in panel.content
    )
    response = client.post(
        f"/aiops/suggestions/{suggestion.pk}/reject/", {"incident": suggestion.incident_id}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and b"Suggestion rejected" in response.content
    assert b"Keep apart" not in response.content
    suggestion.refresh_from_db()
    assert suggestion.state == "rejected" and suggestion.decided_by == operator
    assert Incident.objects.get(pk=suggestion.incident_id).merged_into is None
    again = client.post(f"/aiops/suggestions/{suggestion.pk}/accept/", HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and b"already rejected" in again.content


def test_accepting_from_the_page_redirects_to_the_remaining_incident(suggestion, operator):
    client = Client()
    client.force_login(operator)
    response = client.post(
        f"/aiops/suggestions/{suggestion.pk}/accept/", {"incident": suggestion.incident_id}, HTTP_HX_REQUEST="true"
    )
    assert response["HX-Redirect"] == suggestion.other.get_absolute_url()
    assert Incident.objects.get(pk=suggestion.incident_id).merged_into_id == suggestion.other_id


def test_a_viewer_sees_suggestions_but_cannot_decide(suggestion, viewer):
    client = Client()
    client.force_login(viewer)
    panel = client.get(f"/aiops/suggestions/incident/{suggestion.other_id}/")
    assert b"Likely the same failure" in panel.content and b"Keep apart" not in panel.content
    assert client.post(f"/aiops/suggestions/{suggestion.pk}/accept/").status_code == 403
    suggestion.refresh_from_db()
    assert suggestion.state == "pending"


def test_rule_kind_through_the_api(admin_api):
    learned = admin_api.post("/api/v1/aiops/rules/", {"name": "learned", "kind": "learned"}, format="json")
    assert learned.status_code == 201 and learned.json()["kind"] == "learned" and learned.json()["group_by"] == []
    bad = admin_api.post("/api/v1/aiops/rules/", {"name": "odd", "kind": "magic", "group_by": ["a"]}, format="json")
    assert bad.status_code == 400 and "kind" in bad.json()["detail"]
    plain = admin_api.post("/api/v1/aiops/rules/", {"name": "plain", "group_by": ["cluster"]}, format="json")
    assert plain.json()["kind"] == "labels"


def test_admin_creates_a_learned_rule_on_the_page(admin_user):
    client = Client()
    client.force_login(admin_user)
    form = client.get("/aiops/rules/new/")
    assert b'value="learned"' in form.content
    response = client.post(
        "/aiops/rules/new/",
        {"name": "one failure", "kind": "learned", "position": 5, "matchers": "", "group_by": "",
         "window_minutes": 30, "reopen_cooldown_minutes": 30, "auto_resolve": "on", "enabled": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    assert CorrelationRule.objects.get(name="one failure").kind == "learned"
    listing = client.get("/aiops/rules/")
    assert b"Learned (labels, titles, timing, history)" in listing.content
    plain = client.post(
        "/aiops/rules/new/",
        {"name": "no keys", "kind": "labels", "position": 5, "group_by": "", "window_minutes": 30,
         "reopen_cooldown_minutes": 30},
    )  # fmt: skip
    assert plain.status_code == 400 and b"At least one label key is required" in plain.content


def test_the_incident_page_shows_why_an_alert_joined_and_how_sure(alertmanager, learned_rule, viewer):
    integration, token = alertmanager
    for _ in range(11):
        cascade(integration, token)
        resolve_all(integration, token)
    db, _api = cascade(integration, token)
    client = Client()
    client.force_login(viewer)
    page = client.get(db.incident.get_absolute_url()).content.decode()
    timeline = page[page.index('id="timeline"') :]
    assert re.search(r"firing\. Joined with confidence (9\d|100)%: fired within 40 s of PostgresDown", timeline)
    assert "fired within 40 s of PostgresDown on orders-db 11 of the last 11 times" in timeline
    opened = "Opened by one failure: no open incident of this rule fired near it."
    assert opened in timeline


def test_the_incident_page_loads_its_merge_suggestions_with_htmx(suggestion, operator, alertmanager, learned_rule):
    client = Client()
    client.force_login(operator)
    page = client.get(suggestion.incident.get_absolute_url()).content.decode()
    panel_url = f"/aiops/suggestions/incident/{suggestion.incident_id}/"
    assert f'hx-get="{panel_url}"' in page and 'hx-trigger="load"' in page
    assert "Likely the same failure" not in page  # the page does not wait for the suggestions
    panel = client.get(panel_url, HTTP_HX_REQUEST="true").content.decode()
    assert f"#{suggestion.other_id} OrdersQueueBacklog" in panel and "Merge into" in panel
    # An incident of a label rule has no suggestions to load.
    services.save_rule(actor=operator, rule=learned_rule, matchers=[{"label": "team", "op": "=", "value": "orders"}])
    integration, token = alertmanager
    (plain,) = fire(integration, token, NOISE)
    assert plain.incident.rule.kind == "labels"
    plain_page = client.get(plain.incident.get_absolute_url()).content.decode()
    assert "/aiops/suggestions/" not in plain_page


def test_a_rejected_pair_is_not_suggested_again(suggestion, operator, alertmanager):
    services.reject_merge_suggestion(suggestion=suggestion, actor=operator)
    integration, token = alertmanager
    resolve_all(integration, token)
    fire(integration, token, SIMILAR_A, ago=60)
    (again,) = fire(integration, token, SIMILAR_B)
    assert again.incident_id != Alert.objects.filter(labels__alertname="OrdersQueueBacklog").last().incident_id
    assert not MergeSuggestion.objects.filter(state="pending").exists()
    assert "people split them apart 1 time" in again.incident.events.get(kind="opened").message


def test_a_backlog_drained_one_alert_a_batch_groups_as_the_live_path(alertmanager, learned_rule):
    """Each batch of a drain reuses the memory the first one read: the later batches still see the
    co-firings learned before, and the incidents the earlier batches opened."""
    integration, token = alertmanager
    for _ in range(5):
        cascade(integration, token)
        resolve_all(integration, token)
    alerts = [am_alert(**{**labels, "instance": f"b-{n}"}) for n, labels in enumerate((DB, API, NOISE))]
    assert deliver(integration, token, am_payload(*alerts, group_key="backlog")).status_code == 202
    earlier = timezone.now() - datetime.timedelta(seconds=40)
    Alert.objects.filter(pending=True, labels__alertname="PostgresDown").update(first_seen_at=earlier)
    while services.process_pending_alerts(limit=1):
        pass
    db, api, noise = (Alert.objects.get(labels__alertname=name, labels__instance__startswith="b-") for name in
                      ("PostgresDown", "HTTP5xxRate", "BackupLate"))  # fmt: skip
    assert api.incident_id == db.incident_id
    assert "fired within 40 s of PostgresDown on orders-db 5 of the last 5 times" in joined_event(api).message
    assert noise.incident_id not in (None, db.incident_id)


def test_every_incident_a_batch_opens_has_its_audit_entry_and_opened_event(alertmanager, learned_rule):
    integration, token = alertmanager
    fire(integration, token, DB, NOISE, API)
    incidents = list(Incident.objects.order_by("pk"))
    assert len(incidents) == 3  # no history yet: three incidents
    entries = {
        e.object_id: e
        for e in AuditEntry.objects.filter(app_label="aiops", model="incident", action=AuditEntry.Action.CREATE)
    }
    for incident in incidents:
        entry = entries[str(incident.pk)]
        assert entry.object_repr == str(incident)
        assert entry.changes == {"status": [None, "triggered"]}
        assert entry.actor is None and entry.actor_name == ""
        assert incident.events.filter(kind="opened").count() == 1
