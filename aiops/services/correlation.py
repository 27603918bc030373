"""Correlation: pending alert changes grouped into incidents, in batches, by a worker.

Alerts carry a `pending` flag until they have been correlated, so the periodic
sweeper finishes whatever a lost task did not.
"""

from __future__ import annotations

import datetime
import functools
import gc
import hashlib
import json
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.bulk import binary_execute, copy_rows, fast_bulk_create, fast_bulk_update

from .. import notifications
from ..correlation_learning import memory
from ..correlation_learning.grouping import Decision, LearnedGrouping
from ..models import SEVERITY_RANK, Alert, CorrelationRule, Incident, IncidentEvent, Matcher
from . import incident_context, runbooks

INCIDENT_COUNTER_FIELDS = [
    "status", "severity", "acknowledged_at", "resolved_at", "last_alert_at", "alert_count", "firing_count", "links",
]  # fmt: skip


def rule_for(rules: Iterable[CorrelationRule], labels: dict[str, str]) -> CorrelationRule | None:
    """The first enabled rule (in the order given) whose matchers all match."""
    return next((r for r in rules if r.enabled and (not r.matchers or Matcher.all_match(r.matchers, labels))), None)


def group_of(rule: CorrelationRule | None, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The group key (stable hash) and the grouping label values of an alert under a rule."""
    keys = rule.group_by if rule else ["alertname", "service"]
    values = {k: labels.get(k, "") for k in keys}
    material = f"{rule.pk if rule else 0}|" + "|".join(f"{k}={v}" for k, v in values.items())
    return hashlib.sha256(material.encode()).hexdigest()[:40], values


def _matching_labels(alert: Alert) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in alert.labels.items()}
    labels.setdefault("service", alert.service)
    labels.setdefault("severity", alert.severity)
    labels.setdefault("alertname", alert.title)
    return labels


class _Batch:
    """Incidents touched while processing one batch of alerts, saved together at the end."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now
        self.by_group: dict[tuple[int | None, str], Incident] = {}
        self.touched: dict[int, Incident] = {}
        # Timeline entries as (incident, kind, message, data): written as plain rows at the end of the batch.
        self.events: list[tuple[Incident, str, str, dict]] = []
        self.notify: list[tuple[Incident, str]] = []
        # Incidents that alerts of this batch may join, by group key (one query for the batch).
        self.candidates: dict[str, list[Incident]] = {}
        self.new_incidents: list[Incident] = []
        self.learned: LearnedGrouping | None = None

    def event(self, incident: Incident, kind: str, message: str, **data: object) -> None:
        self.events.append((incident, kind, message, data))

    def touch(self, incident: Incident) -> None:
        if incident.pk is not None:  # new incidents are inserted whole at the end of the batch
            self.touched[incident.pk] = incident

    def canonical(self, incident: Incident) -> Incident:
        """One Python object per incident row in a batch, so counters are not updated on copies."""
        return self.touched.setdefault(incident.pk, incident)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def cyclic_gc_paused(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run `func` with Python's cyclic garbage collector paused (resumed after, if it was running).

    A batch allocates hundreds of thousands of short-lived objects (model instances, tuples, dicts, the
    learner's features) that reference counting frees at once; meanwhile the cyclic collector's passes over
    the worker's whole heap took about a third of the learned rule's batch. Nothing is kept alive by the
    pause: whatever cycles a batch leaves are collected once the collector runs again."""

    @functools.wraps(func)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        running = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if running:
                gc.enable()

    return paused


@cyclic_gc_paused
@transaction.atomic
def process_pending_alerts(*, limit: int = 2000) -> int:
    """Correlate pending alert changes into incidents; returns how many were processed.

    Rows are locked with SKIP LOCKED, so several workers share the backlog and
    each change is applied exactly once.
    """
    alerts = _pending_alerts(limit)
    if not alerts:
        return 0
    rules = list(CorrelationRule.objects.filter(enabled=True))
    batch = _Batch(timezone.now())
    batch.candidates = _candidate_incidents(alerts, rules, batch.now)
    batch.learned = LearnedGrouping.for_batch(alerts, rules, batch.now)
    for alert in alerts:
        change = alert.pending_change
        if change in ("fired", "refired"):
            _attach(alert, rules, batch)
        elif change == "resolved":
            _alert_resolved(alert, batch)
        elif change == "acknowledged" and alert.incident and alert.incident.status == Incident.Status.TRIGGERED:
            incident = batch.canonical(alert.incident)
            incident.status, incident.acknowledged_at = Incident.Status.ACKNOWLEDGED, batch.now
            batch.touch(incident)
            batch.event(incident, IncidentEvent.Kind.STATUS, "Acknowledged by the sender.", status="acknowledged")
            batch.notify.append((incident, "acknowledged"))
        alert.pending, alert.pending_change = False, ""
    fast_bulk_create(batch.new_incidents)
    audit.append_many(
        action=audit.Action.CREATE, actor=None, objs=batch.new_incidents, changes={"status": [None, "triggered"]}
    )
    for alert in alerts:
        if alert.incident is not None:
            alert.incident_id = alert.incident.pk  # set after the new incidents got their ids
    _mark_correlated(alerts)
    fast_bulk_update(list(batch.touched.values()), INCIDENT_COUNTER_FIELDS)
    _write_events(batch)
    if batch.learned is not None:
        batch.learned.finish()
    queue_notifications(batch.notify)
    incident_context.queue_context_assembly([i for i, event in batch.notify if event in ("opened", "reopened")])
    if batch.new_incidents:  # automatic runbooks: one query, none more when no runbook is automatic
        runbooks.trigger_for_new_incidents(batch.new_incidents, alerts)
    return len(alerts)


# What correlating never reads of an alert (its payload, its sender's timestamps): not fetched.
UNREAD_ALERT_FIELDS = ["raw", "annotations", "starts_at", "ends_at", "last_seen_at", "times_seen", "source"]


def _pending_alerts(limit: int) -> list[Alert]:
    """The oldest pending alert changes, locked (SKIP LOCKED: other workers take the next ones)."""
    return list(
        Alert.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pending=True)
        .select_related("incident", "incident__rule")
        .defer(*UNREAD_ALERT_FIELDS)
        .order_by("id")[:limit]
    )


def _mark_correlated(alerts: list[Alert]) -> None:
    """Clear the alerts' pending flags and set their incidents (every alert of a batch ends with
    pending=False and no pending change: only the incident ids differ)."""
    if connection.vendor != "postgresql":
        fast_bulk_update(alerts, ["pending", "pending_change", "incident"])
        return
    table = Alert._meta.db_table
    binary_execute(
        f"UPDATE {table} AS t SET pending = false, pending_change = '', incident_id = v.incident "  # noqa: S608
        "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, incident) WHERE t.id = v.id",
        [[alert.pk for alert in alerts], [alert.incident_id for alert in alerts]],
    )


def _write_events(batch: _Batch) -> None:
    """The batch's timeline entries, after the new incidents got their ids: COPY of plain rows on
    PostgreSQL (no model instance per entry), bulk_create elsewhere."""
    if not batch.events:
        return
    if connection.vendor != "postgresql":
        IncidentEvent.objects.bulk_create(
            [
                IncidentEvent(incident=incident, at=batch.now, kind=kind, message=message, data=data)
                for incident, kind, message, data in batch.events
            ]
        )
        return
    now, events = batch.now, batch.events
    copy_rows(
        IncidentEvent._meta.db_table,
        ["incident_id", "at", "kind", "actor_id", "actor_name", "message", "data"],
        ([incident.pk, now, kind, None, "", message, json.dumps(data)] for incident, kind, message, data in events),
    )


@cyclic_gc_paused
def learn_cofirings() -> int:
    """Count what fired together among the alerts correlated since last time (the learned rules'
    memory); returns how many alerts were read (0: nothing new). Workers call it after each drain."""
    return memory.learn_cofirings()


def _candidate_incidents(alerts: list[Alert], rules: list[CorrelationRule], now: datetime.datetime):
    """Open or recently resolved incidents for the group keys of the batch's firing alerts."""
    keys = set()
    for alert in alerts:
        if alert.pending_change in ("fired", "refired"):
            labels = _matching_labels(alert)
            alert.group = (rule := rule_for(rules, labels)), *group_of(rule, labels)
            if rule is None or rule.kind == CorrelationRule.Kind.LABELS:
                keys.add(alert.group[1])
    if not keys:
        return {}
    longest_cooldown = max([r.reopen_cooldown_minutes for r in rules] + [30])
    found: dict[str, list[Incident]] = {}
    for incident in (
        Incident.objects.filter(group_key__in=keys, merged_into__isnull=True)
        .filter(
            ~Q(status=Incident.Status.RESOLVED) | Q(resolved_at__gte=now - datetime.timedelta(minutes=longest_cooldown))
        )
        .order_by("-last_alert_at")
    ):
        found.setdefault(incident.group_key, []).append(incident)
    return found


def _attach(alert: Alert, rules: list[CorrelationRule], batch: _Batch) -> None:
    rule, group_key, group_values = alert.group
    rule_id = rule.pk if rule else None
    learned = rule is not None and rule.kind == CorrelationRule.Kind.LEARNED and batch.learned is not None
    decision: Decision | None = None
    if learned:
        decision = batch.learned.place(alert, rule)
        incident = decision.incident
        group_key, group_values = f"learned-{rule.pk}", {}
    else:
        incident = batch.by_group.get((rule_id, group_key))
        if incident is None:
            incident = _find_incident(rule, batch.candidates.get(group_key, []), batch.now)
    if incident is not None and incident.pk is not None:
        incident = batch.canonical(incident)
    if incident is None:
        incident = Incident(
            title=_incident_title(alert, group_values),
            summary=alert.description,
            severity=alert.severity,
            service=alert.service,
            rule=rule,
            group_key=group_key,
            group_labels=group_values,
            links=incident_links(alert),
            created_at=batch.now,
            last_alert_at=batch.now,
        )
        batch.new_incidents.append(incident)
        opened = f"Opened by {rule.name if rule else 'default grouping'}."
        if decision is not None:
            opened = f"Opened by {rule.name}: {_opened_reason(decision)}."
        batch.event(incident, IncidentEvent.Kind.OPENED, opened)
        batch.notify.append((incident, "opened"))
    elif incident.status == Incident.Status.RESOLVED:
        incident.status, incident.resolved_at, incident.acknowledged_at = Incident.Status.TRIGGERED, None, None
        batch.event(incident, IncidentEvent.Kind.STATUS, "Reopened: an alert fired again.", status="triggered")
        audit.record(
            action=audit.Action.STATE, actor=None, obj=incident, changes={"status": ["resolved", "triggered"]},
            message="Reopened by a new alert within the cool-down.",
        )  # fmt: skip
        batch.notify.append((incident, "reopened"))
    if decision is not None:
        batch.learned.joined(alert, incident, decision)
    else:
        batch.by_group[(rule_id, group_key)] = incident
    alert.incident = incident
    incident.alert_count += 1
    incident.firing_count += 1
    incident.last_alert_at = batch.now
    if SEVERITY_RANK[alert.severity] > SEVERITY_RANK[incident.severity]:
        batch.event(incident, IncidentEvent.Kind.SEVERITY, f"Severity raised to {alert.severity} by an alert.")
        incident.severity = alert.severity
    for link in incident_links(alert):
        if link not in incident.links and len(incident.links) < 20:
            incident.links.append(link)
    if decision is not None and decision.incident is not None:
        batch.event(
            incident, IncidentEvent.Kind.ALERT_FIRING,
            f"{alert.title} firing. Joined with confidence {decision.confidence:.0%}: {decision.reason}.",
            alert=alert.pk, severity=alert.severity, confidence=round(decision.confidence, 3), reason=decision.reason,
        )  # fmt: skip
    else:
        batch.event(
            incident, IncidentEvent.Kind.ALERT_FIRING, f"{alert.title} firing", alert=alert.pk, severity=alert.severity
        )
    batch.touch(incident)


def _opened_reason(decision: Decision) -> str:
    if decision.suggest is not None:
        return (
            f"closest is #{decision.suggest.pk or 'new'} at {decision.confidence:.0%} ({decision.reason}), "
            "below the join threshold; a merge is suggested"
        )
    if decision.confidence:
        return (
            f"no open incident looked like the same failure (closest at {decision.confidence:.0%}: {decision.reason})"
        )
    return decision.reason


def _find_incident(rule: CorrelationRule | None, candidates: list[Incident], now: datetime.datetime):
    """The open incident the group is still in (firing, or last alert within the window), else
    the incident resolved within the cool-down (to reopen), else None. `candidates` are newest first."""
    window = datetime.timedelta(minutes=rule.window_minutes if rule else 60)
    cooldown = datetime.timedelta(minutes=rule.reopen_cooldown_minutes if rule else 30)
    for incident in candidates:
        if incident.is_open and (incident.firing_count > 0 or incident.last_alert_at >= now - window):
            return incident
    resolved = [i for i in candidates if not i.is_open and i.resolved_at and i.resolved_at >= now - cooldown]
    return max(resolved, key=lambda i: i.resolved_at, default=None)


def _alert_resolved(alert: Alert, batch: _Batch) -> None:
    if alert.incident is None:
        return
    incident = batch.canonical(alert.incident)
    incident.firing_count = max(0, incident.firing_count - 1)
    batch.event(incident, IncidentEvent.Kind.ALERT_RESOLVED, f"{alert.title} resolved", alert=alert.pk)
    auto = incident.rule.auto_resolve if incident.rule else True
    if auto and incident.firing_count == 0 and incident.is_open:
        incident.status, incident.resolved_at = Incident.Status.RESOLVED, batch.now
        batch.event(incident, IncidentEvent.Kind.STATUS, "Resolved: all its alerts resolved.", status="resolved")
        audit.record(
            action=audit.Action.STATE, actor=None, obj=incident, changes={"status": ["open", "resolved"]},
            message="Auto-resolved: all alerts resolved.",
        )  # fmt: skip
        batch.notify.append((incident, "resolved"))
    batch.touch(incident)


def _incident_title(alert: Alert, group_values: dict[str, str]) -> str:
    service = group_values.get("service") or alert.service
    return f"{alert.title} on {service}"[:300] if service and service not in alert.title else alert.title[:300]


def incident_links(alert: Alert) -> list[dict[str, str]]:
    """The alert's links for its incident: the sender's, with the alert's source first."""
    links = [dict(link) for link in alert.links if isinstance(link, dict) and link.get("href")]
    if alert.generator_url and not any(link["href"] == alert.generator_url for link in links):
        links.insert(0, {"href": alert.generator_url, "text": "Source"})
    return links


def queue_notifications(items: list[tuple[Incident, str]]) -> None:
    """Create the outbox rows for incidents that notify; notifications.py sends them."""
    if items:
        notifications.queue(items)
