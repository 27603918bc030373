"""Notes other apps put on the timeline of the incident their alert belongs to (e.g. MLOps: "retraining called").

The app names its alert as it raised it (`source` and `dedup_key` of `raise_alert`); the note goes on the
incident of the newest occurrence of that alert. An alert still waiting for correlation has no incident yet,
so correlation runs first (`process_pending_alerts`, the worker's own step, safe to run anywhere).
"""

from __future__ import annotations

from django.db import transaction

from ..models import Alert, Incident, IncidentEvent
from .correlation import process_pending_alerts


def _newest(source: str, dedup_key: str) -> Alert | None:
    return (
        Alert.objects.filter(integration__internal_source=source, fingerprint=dedup_key)
        .order_by("-first_seen_at", "-id")
        .only("id", "pending", "incident_id")
        .first()
    )


def note_on_alert_incident(*, source: str, dedup_key: str, message: str, **data: object) -> Incident | None:
    """Add `message` (with `data`) to the timeline of the incident of alert `dedup_key` raised by `source`.

    Returns the incident, or None when there is no such alert or it opened no incident (a silence, say).
    The note is written as by `source` (the timeline shows the app, not a user).
    """
    alert = _newest(source, dedup_key)
    if alert is not None and alert.pending:
        process_pending_alerts()
        alert = _newest(source, dedup_key)
    if alert is None or alert.incident_id is None:
        return None
    with transaction.atomic():
        incident = Incident.objects.get(pk=alert.incident_id)
        IncidentEvent.objects.create(
            incident=incident,
            kind=IncidentEvent.Kind.COMMENT,
            message=message,
            actor_name=source,
            data={"source": source, "alert": alert.pk, **data},
        )
    return incident
