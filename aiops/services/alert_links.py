"""Where the alerts another app raised went: for pages of that app that link a condition to its incident.

`raise_alert(source=..., dedup_key=...)` stores the key as the alert's fingerprint on the app's internal
integration; `raised_alert_links` reads those alerts back (one query) with their incidents, so MLOps can
show, next to a breach, the incident people triage. Read-only.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Alert


@dataclass(frozen=True)
class RaisedAlertLink:
    """One occurrence of a raised alert and the incident it joined (None until correlation has run)."""

    alert_id: int
    alert_url: str
    status: str
    first_seen_at: datetime.datetime
    incident_id: int | None
    incident_url: str
    incident_title: str
    incident_status: str


def raised_alert_links(*, source: str, dedup_keys: Iterable[str]) -> dict[str, list[RaisedAlertLink]]:
    """Every alert app `source` raised under each of `dedup_keys`, newest first, with its incident."""
    keys = {key for key in dedup_keys if key}
    if not keys:
        return {}
    alerts = (
        Alert.objects.filter(integration__internal_source=source, fingerprint__in=keys)
        .select_related("incident")
        .only("id", "fingerprint", "status", "first_seen_at", "incident__id", "incident__title", "incident__status")
        .order_by("-first_seen_at", "-id")
    )
    links: dict[str, list[RaisedAlertLink]] = {}
    for alert in alerts:
        incident = alert.incident
        links.setdefault(alert.fingerprint, []).append(
            RaisedAlertLink(
                alert_id=alert.pk,
                alert_url=alert.get_absolute_url(),
                status=alert.status,
                first_seen_at=alert.first_seen_at,
                incident_id=incident.pk if incident else None,
                incident_url=incident.get_absolute_url() if incident else "",
                incident_title=incident.title if incident else "",
                incident_status=incident.status if incident else "",
            )
        )
    return links
