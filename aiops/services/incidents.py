"""Triage: what people do to incidents (acknowledge, resolve, assign, comment, merge, split)."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.errors import InvalidInput

from ..models import SEVERITY_RANK, Alert, Incident, IncidentEvent
from .actor import Actor, actor_name, user_of
from .correlation import incident_links, queue_notifications


def add_event(*, incident: Incident, kind: str, message: str, actor: Actor, **data: object) -> IncidentEvent:
    """One entry on the incident's timeline."""
    return IncidentEvent.objects.create(
        incident=incident, kind=kind, message=message, actor=user_of(actor), actor_name=actor_name(actor), data=data
    )


def _locked(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident.pk)


@transaction.atomic
def acknowledge_incident(*, incident: Incident, actor: Actor) -> Incident:
    """Triggered -> acknowledged. Acknowledging twice, or a resolved incident, changes nothing."""
    incident = _locked(incident)
    if incident.status != Incident.Status.TRIGGERED:
        return incident
    incident.status, incident.acknowledged_at = Incident.Status.ACKNOWLEDGED, timezone.now()
    incident.save(update_fields=["status", "acknowledged_at"])
    add_event(
        incident=incident, kind=IncidentEvent.Kind.STATUS, message="Acknowledged.", actor=actor, status="acknowledged"
    )
    audit.record(
        action=audit.Action.STATE, actor=actor, obj=incident, changes={"status": ["triggered", "acknowledged"]}
    )
    queue_notifications([(incident, "acknowledged")])
    return incident


@transaction.atomic
def resolve_incident(*, incident: Incident, actor: Actor, note: str = "") -> Incident:
    """Resolve by hand (`note` goes on the timeline); resolving twice changes nothing."""
    incident = _locked(incident)
    if incident.status == Incident.Status.RESOLVED:
        return incident
    before = incident.status
    now = timezone.now()
    incident.status, incident.resolved_at = Incident.Status.RESOLVED, now
    if incident.acknowledged_at is None:
        incident.acknowledged_at = now
    incident.save(update_fields=["status", "resolved_at", "acknowledged_at"])
    message = "Resolved." + (f" {note}" if note else "")
    add_event(incident=incident, kind=IncidentEvent.Kind.STATUS, message=message, actor=actor, status="resolved")
    audit.record(action=audit.Action.STATE, actor=actor, obj=incident, changes={"status": [before, "resolved"]})
    queue_notifications([(incident, "resolved")])
    return incident


@transaction.atomic
def reopen_incident(*, incident: Incident, actor: Actor) -> Incident:
    """Resolved -> triggered again; an open incident stays as it is."""
    incident = _locked(incident)
    if incident.status != Incident.Status.RESOLVED:
        return incident
    incident.status, incident.resolved_at, incident.acknowledged_at = Incident.Status.TRIGGERED, None, None
    incident.save(update_fields=["status", "resolved_at", "acknowledged_at"])
    add_event(incident=incident, kind=IncidentEvent.Kind.STATUS, message="Reopened.", actor=actor, status="triggered")
    audit.record(action=audit.Action.STATE, actor=actor, obj=incident, changes={"status": ["resolved", "triggered"]})
    return incident


@transaction.atomic
def assign_incident(*, incident: Incident, assignee: User | None, actor: Actor) -> Incident:
    """Give the incident to `assignee` (None unassigns)."""
    incident = _locked(incident)
    before = incident.assignee.get_username() if incident.assignee else None
    after = assignee.get_username() if assignee else None
    if before == after:
        return incident
    incident.assignee = assignee
    incident.save(update_fields=["assignee"])
    message = f"Assigned to {after}." if after else "Unassigned."
    add_event(incident=incident, kind=IncidentEvent.Kind.ASSIGNED, message=message, actor=actor, assignee=after)
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=incident, changes={"assignee": [before, after]})
    return incident


@transaction.atomic
def comment_on_incident(*, incident: Incident, body: str, actor: Actor) -> IncidentEvent:
    """A comment on the timeline (audited too)."""
    body = body.strip()
    if not body:
        raise InvalidInput("a comment cannot be empty.", field="body")
    event = add_event(incident=incident, kind=IncidentEvent.Kind.COMMENT, message=body, actor=actor)
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=incident, message=f"Comment: {body[:200]}")
    return event


@transaction.atomic
def update_incident(
    *,
    incident: Incident,
    actor: Actor,
    title: str | None = None,
    summary: str | None = None,
    severity_override: str | None = None,
) -> Incident:
    """Edit title, summary or override the severity ("" removes the override)."""
    incident = _locked(incident)
    fields = ("title", "summary", "severity_override")
    before = audit.snapshot(incident, fields)
    if title is not None:
        if not title.strip():
            raise InvalidInput("cannot be empty.", field="title")
        incident.title = title.strip()[:300]
    if summary is not None:
        incident.summary = summary
    if severity_override is not None:
        if severity_override and severity_override not in SEVERITY_RANK:
            raise InvalidInput(f"must be one of {', '.join(SEVERITY_RANK)} or empty.", field="severity_override")
        incident.severity_override = severity_override
    incident.save(update_fields=list(fields))
    changes = audit.diff(before, audit.snapshot(incident, fields))
    if changes:
        audit.record(action=audit.Action.UPDATE, actor=actor, obj=incident, changes=changes)
        if "severity_override" in changes:
            new = incident.severity_override or f"{incident.severity} (from alerts)"
            add_event(
                incident=incident, kind=IncidentEvent.Kind.SEVERITY, message=f"Severity set to {new}.", actor=actor
            )
    return incident


@transaction.atomic
def merge_incidents(*, source: Incident, target: Incident, actor: Actor) -> Incident:
    """Move every alert of `source` into `target` and resolve `source` as merged."""
    if source.pk == target.pk:
        raise InvalidInput("cannot merge an incident into itself.", field="into")
    source, target = _locked(source), _locked(target)
    if source.merged_into_id:
        raise InvalidInput(f"incident #{source.pk} is already merged into #{source.merged_into_id}.")
    moved = Alert.objects.filter(incident=source).update(incident=target)
    firing = Alert.objects.filter(incident=target, status=Alert.Status.FIRING).count()
    target.alert_count += moved
    target.firing_count = firing
    if SEVERITY_RANK[source.severity] > SEVERITY_RANK[target.severity]:
        target.severity = source.severity
    target.last_alert_at = max(target.last_alert_at, source.last_alert_at)
    if firing and target.status == Incident.Status.RESOLVED:
        target.status, target.resolved_at = Incident.Status.TRIGGERED, None
    target.save()
    now = timezone.now()
    source.merged_into = target
    source.alert_count = source.firing_count = 0
    if source.status != Incident.Status.RESOLVED:
        source.status, source.resolved_at = Incident.Status.RESOLVED, now
    source.save()
    message = f"Merged #{source.pk} ({moved} alerts) into this incident."
    add_event(incident=target, kind=IncidentEvent.Kind.MERGED, message=message, actor=actor, source=source.pk)
    add_event(
        incident=source,
        kind=IncidentEvent.Kind.MERGED,
        message=f"Merged into #{target.pk}.",
        actor=actor,
        target=target.pk,
    )
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=source, changes={"merged_into": [None, target.pk]})
    return target


@transaction.atomic
def split_alert(*, incident: Incident, alert: Alert, actor: Actor) -> Incident:
    """Move one alert out of an incident into a new incident of its own."""
    incident = _locked(incident)
    if alert.incident_id != incident.pk:
        raise InvalidInput(f"alert {alert.pk} does not belong to incident #{incident.pk}.", field="alert")
    if incident.alert_count <= 1:
        raise InvalidInput("the incident has only this alert; nothing to split.", field="alert")
    firing = alert.status == Alert.Status.FIRING
    new = Incident.objects.create(
        title=alert.title,
        summary=alert.description,
        severity=alert.severity,
        service=alert.service,
        rule=incident.rule,
        group_key=f"split-{alert.pk}",
        group_labels=incident.group_labels,
        links=incident_links(alert),
        alert_count=1,
        firing_count=int(firing),
        last_alert_at=alert.last_seen_at,
        status=Incident.Status.TRIGGERED if firing else Incident.Status.RESOLVED,
        resolved_at=None if firing else timezone.now(),
    )
    Alert.objects.filter(pk=alert.pk).update(incident=new)
    incident.alert_count -= 1
    incident.firing_count = max(0, incident.firing_count - int(firing))
    incident.save(update_fields=["alert_count", "firing_count"])
    add_event(
        incident=incident, kind=IncidentEvent.Kind.SPLIT, message=f"Split “{alert.title}” out into #{new.pk}.",
        actor=actor, alert=alert.pk, target=new.pk,
    )  # fmt: skip
    add_event(incident=new, kind=IncidentEvent.Kind.OPENED, message=f"Split out of #{incident.pk}.", actor=actor)
    audit.record(action=audit.Action.CREATE, actor=actor, obj=new, message=f"Split out of #{incident.pk}")
    return new


def bulk_transition(*, incidents: Iterable[Incident], action: str, actor: Actor) -> int:
    """Acknowledge or resolve many incidents; returns how many changed."""
    service = {"acknowledge": acknowledge_incident, "resolve": resolve_incident}[action]
    changed = 0
    for incident in incidents:
        before = incident.status
        changed += service(incident=incident, actor=actor).status != before
    return changed
