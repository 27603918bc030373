from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opsportal import registry

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from opsportal.portal.changes import Change
    from opsportal.portal.summary import AppSummary


class LLMOpsConfig(registry.PortalApp):
    """Prompts, datasets and evaluation runs."""

    name = "llmops"
    verbose_name = "LLMOps"
    order = 30
    colour = "#6f42c1"
    urls = "llmops.urls"
    api_urls = "llmops.api.urls"

    def summary(self, *, with_charts: bool) -> AppSummary:
        # Services import models, which exist only once the registry is ready: imported here, not above.
        from .services import overview

        return overview(with_charts=with_charts)

    def seed_demo(self, *, users: Mapping[str, User]) -> str:
        from .demo import seed
        from .trace_demo import seed_traces

        created = seed(author=users["promptdev"], admin=users["mllead"])
        traces = seed_traces(author=users["promptdev"], reviewer=users["reviewer"])
        return f"LLMOps demo data {'created' if created else 'already there'}, {traces}"

    def recent_changes(self, *, start: datetime.datetime, end: datetime.datetime, limit: int) -> list[Change]:
        """Prompt label moves (and gate overrides), from the audit log: one query, no join."""
        from django.urls import reverse

        from opsportal.audit.models import AuditEntry
        from opsportal.portal.changes import Change

        entries = AuditEntry.objects.filter(
            app_label=self.label,
            model="prompt",
            action__in=[AuditEntry.Action.MOVE_LABEL, AuditEntry.Action.OVERRIDE_GATE],
            at__gte=start,
            at__lte=end,
        ).order_by("-at", "-id")[:limit]
        changes = []
        for entry in entries:
            moves = []
            for field, values in entry.changes.items():
                if not field.startswith("label:") or not isinstance(values, list) or len(values) != 2:
                    continue
                before, after = values
                label = field.removeprefix("label:")
                if after is None:
                    moves.append(f"@{label} removed (was v{before})")
                else:
                    moves.append(f"@{label} -> v{after}" + (f" (was v{before})" if before is not None else ""))
            what = ", ".join(moves) or entry.message
            if entry.action == AuditEntry.Action.OVERRIDE_GATE:
                what += ", release gate overridden"
            changes.append(
                Change(
                    title=f"Prompt {entry.object_repr}: {what}",
                    at=entry.at,
                    actor=entry.actor_name,
                    url=reverse("llmops:prompt", args=[entry.object_repr]),
                    app=self.label,
                )
            )
        return changes
