"""Triage over the API: list filters, acknowledge, resolve, assign, comment, merge, split, bulk."""

from __future__ import annotations

import pytest

from aiops import services
from aiops.models import Incident
from opsportal.audit.models import AuditEntry

from .factories import am_alert, am_payload, deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def incidents(alertmanager):
    integration, token = alertmanager
    deliver(
        integration,
        token,
        am_payload(
            am_alert(service="checkout", severity="critical", instance="1"),
            am_alert(service="checkout", severity="critical", instance="2"),
            am_alert(service="search", severity="warning"),
            am_alert(alertname="DiskFull", service="db", severity="info"),
        ),
    )
    services.process_pending_alerts()
    return {i.service: i for i in Incident.objects.all()}


def test_list_filters_by_status_severity_and_service(viewer_api, incidents, operator):
    services.acknowledge_incident(incident=incidents["search"], actor=operator)

    def ids(**params):
        body = viewer_api.get("/api/v1/aiops/incidents/", params).json()
        assert set(body) == {"count", "next", "previous", "results"}
        return {row["service"] for row in body["results"]}

    assert ids() == {"checkout", "search", "db"}
    assert ids(status="acknowledged") == {"search"}
    assert ids(severity="critical") == {"checkout"}
    assert ids(service="db") == {"db"}
    assert ids(q="disk") == {"db"}
    assert ids(status=["triggered", "acknowledged"], severity=["warning", "info"]) == {"search", "db"}


def test_acknowledge_resolve_and_timeline(operator_api, incidents):
    incident = incidents["checkout"]
    acked = operator_api.post(f"/api/v1/aiops/incidents/{incident.pk}/acknowledge/")
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_at"] is not None
    resolved = operator_api.post(
        f"/api/v1/aiops/incidents/{incident.pk}/resolve/", {"note": "rolled back"}, format="json"
    )
    assert resolved.json()["status"] == "resolved"
    timeline = operator_api.get(f"/api/v1/aiops/incidents/{incident.pk}/timeline/").json()["results"]
    messages = [(e["kind"], e["actor"], e["message"]) for e in timeline]
    assert ("status", "otto", "Acknowledged.") in messages
    assert ("status", "otto", "Resolved. rolled back") in messages
    audit = AuditEntry.objects.filter(
        app_label="aiops", model="incident", object_id=str(incident.pk), actor_name="otto"
    )
    assert [e.changes["status"] for e in audit.order_by("at")] == [
        ["triggered", "acknowledged"],
        ["acknowledged", "resolved"],
    ]


def test_viewers_cannot_triage(viewer_api, incidents):
    response = viewer_api.post(f"/api/v1/aiops/incidents/{incidents['db'].pk}/acknowledge/")
    assert response.status_code == 403
    assert Incident.objects.get(pk=incidents["db"].pk).status == "triggered"


def test_assign_and_comment(operator_api, incidents, viewer):
    incident = incidents["db"]
    assigned = operator_api.post(f"/api/v1/aiops/incidents/{incident.pk}/assign/", {"assignee": "vera"}, format="json")
    assert assigned.json()["assignee"] == "vera"
    unknown = operator_api.post(f"/api/v1/aiops/incidents/{incident.pk}/assign/", {"assignee": "ghost"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["detail"] == "assignee: No active user named 'ghost'."
    comment = operator_api.post(
        f"/api/v1/aiops/incidents/{incident.pk}/comments/", {"body": "Looking at db-3"}, format="json"
    )
    assert comment.status_code == 201
    empty = operator_api.post(f"/api/v1/aiops/incidents/{incident.pk}/comments/", {"body": " "}, format="json")
    assert empty.status_code == 400 and empty.json()["detail"].startswith("body:")
    comments = operator_api.get(f"/api/v1/aiops/incidents/{incident.pk}/comments/").json()
    assert [c["message"] for c in comments] == ["Looking at db-3"]
    assert operator_api.get("/api/v1/aiops/incidents/", {"assignee": "vera"}).json()["count"] == 1


def test_severity_override_and_title(operator_api, incidents):
    incident = incidents["search"]
    response = operator_api.patch(
        f"/api/v1/aiops/incidents/{incident.pk}/", {"severity_override": "critical"}, format="json"
    )
    assert response.json()["effective_severity"] == "critical" and response.json()["severity"] == "warning"
    bad = operator_api.patch(f"/api/v1/aiops/incidents/{incident.pk}/", {"severity_override": "doom"}, format="json")
    assert bad.status_code == 400 and "severity_override" in bad.json()["detail"]


def test_merge_moves_alerts_and_split_takes_one_out(operator_api, incidents):
    source, target = incidents["search"], incidents["checkout"]
    merged = operator_api.post(f"/api/v1/aiops/incidents/{source.pk}/merge/", {"into": target.pk}, format="json")
    assert merged.status_code == 200 and merged.json()["alert_count"] == 3
    source.refresh_from_db()
    assert source.status == "resolved" and source.merged_into_id == target.pk
    self_merge = operator_api.post(f"/api/v1/aiops/incidents/{target.pk}/merge/", {"into": target.pk}, format="json")
    assert self_merge.status_code == 400

    alert = target.alerts.filter(service="search").first() or target.alerts.first()
    split = operator_api.post(f"/api/v1/aiops/incidents/{target.pk}/split/", {"alert": alert.pk}, format="json")
    assert split.status_code == 201
    new = Incident.objects.get(pk=split.json()["id"])
    assert list(new.alerts.all()) == [alert]
    target.refresh_from_db()
    assert target.alert_count == 2
    kinds = list(target.events.values_list("kind", flat=True))
    assert "merged" in kinds and "split" in kinds


def test_bulk_acknowledge(operator_api, incidents):
    ids = [incidents["checkout"].pk, incidents["db"].pk]
    response = operator_api.post("/api/v1/aiops/incidents/bulk/", {"ids": ids, "action": "acknowledge"}, format="json")
    assert response.json() == {"changed": 2, "requested": 2}
    assert set(Incident.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"acknowledged"}
    missing = operator_api.post("/api/v1/aiops/incidents/bulk/", {"ids": [999999], "action": "resolve"}, format="json")
    assert missing.status_code == 400


def test_alerts_api_lists_and_shows_delivery_history(viewer_api, incidents):
    body = viewer_api.get("/api/v1/aiops/alerts/", {"service": "checkout"}).json()
    assert body["count"] == 2
    detail = viewer_api.get(f"/api/v1/aiops/alerts/{body['results'][0]['id']}/").json()
    assert detail["raw"]["labels"]["service"] == "checkout"
    assert detail["deliveries"][0]["status"] == "firing"


def test_silences_api(operator_api, viewer_api):
    bad = operator_api.post(
        "/api/v1/aiops/silences/",
        {
            "matchers": [{"label": "service", "op": "=~", "value": "("}],
            "ends_at": "2999-01-01T00:00:00Z",
            "comment": "x",
        },
        format="json",
    )
    assert bad.status_code == 400 and "matchers[0].value" in bad.json()["detail"]
    created = operator_api.post(
        "/api/v1/aiops/silences/",
        {"matchers": [{"label": "service", "value": "batch"}], "ends_at": "2999-01-01T00:00:00Z", "comment": "nightly"},
        format="json",
    )
    assert created.status_code == 201 and created.json()["active"] is True
    assert viewer_api.delete(f"/api/v1/aiops/silences/{created.json()['id']}/").status_code == 403
    expired = operator_api.delete(f"/api/v1/aiops/silences/{created.json()['id']}/")
    assert expired.json()["active"] is False


def test_comments_are_one_list_as_the_schema_says(admin_api, admin_user):
    from .factories import incident, integration

    opened = incident(*integration(actor=admin_user))
    services.comment_on_incident(incident=opened, body="looking", actor=admin_user)
    # The incident list's filters do not hide the incident from its own comments.
    listed = admin_api.get(f"/api/v1/aiops/incidents/{opened.pk}/comments/", {"status": "resolved"})
    assert listed.status_code == 200
    assert [event["message"] for event in listed.json()] == ["looking"]
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    answer = schema["paths"]["/api/v1/aiops/incidents/{id}/comments/"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"]["type"] == "array"
