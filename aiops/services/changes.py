"""AIOps's contribution to the portal's recent changes (`AIOpsConfig.recent_changes`): edits of what shapes
alerting (correlation rules, silences, checks, anomaly monitors), read from the audit log."""

from __future__ import annotations

import datetime

from django.urls import reverse

from opsportal.audit.models import AuditEntry
from opsportal.portal.changes import Change

# Audit model name -> (what it is called, the page of one object, given its id).
WATCHED = {
    "correlationrule": ("Correlation rule", lambda pk: reverse("aiops:rule_edit", args=[pk])),
    "silence": ("Silence", lambda pk: reverse("aiops:silences")),
    "check": ("Check", lambda pk: reverse("aiops:check", args=[pk])),
    "anomalymonitor": ("Anomaly monitor", lambda pk: reverse("aiops:metric_anomaly_monitor", args=[pk])),
}
VERBS = {
    AuditEntry.Action.CREATE: "created",
    AuditEntry.Action.UPDATE: "edited",
    AuditEntry.Action.DELETE: "deleted",
    AuditEntry.Action.STATE: "changed state",
}


def recent_changes(*, start: datetime.datetime, end: datetime.datetime, limit: int) -> list[Change]:
    """The watched objects' audit entries in [start, end], newest first (one query on `audit_app_at_idx`).

    A deleted object links to its audit history, the others to their page.
    """
    entries = AuditEntry.objects.filter(
        app_label="aiops", model__in=list(WATCHED), at__gte=start, at__lte=end
    ).order_by("-at", "-id")[:limit]
    changes = []
    for entry in entries:
        noun, page = WATCHED[entry.model]
        verb = VERBS.get(entry.action, entry.get_action_display().lower())
        if entry.action == AuditEntry.Action.STATE and (status := entry.changes.get("status")):
            verb = f"{status[0]} -> {status[1]}" if isinstance(status, list) and len(status) == 2 else verb
        gone = entry.action == AuditEntry.Action.DELETE or not entry.object_id.isdigit()
        changes.append(
            Change(
                title=f"{noun} {verb}: {entry.object_repr}",
                at=entry.at,
                actor=entry.actor_name,
                url=(entry.history_url() or "") if gone else page(int(entry.object_id)),
                app="aiops",
            )
        )
    return changes
