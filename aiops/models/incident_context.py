"""An incident's troubleshooting context, as last assembled (aiops.services.incident_context)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from . import Incident

__all__ = ["IncidentContext"]


class IncidentContext(models.Model):
    """What else went wrong or changed around an incident's start: the items its context panel shows.

    `items` is a list of `ContextItem.to_json()` dicts (kind, title, detail, at, url, severity), in the
    order the providers gave them; `window_start`/`window_end` is the time range they looked at.
    """

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="context")
    items = models.JSONField(default=list, blank=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "incident context"

    def __str__(self) -> str:
        return f"context of incident {self.incident_id} ({len(self.items)} items)"
