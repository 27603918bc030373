from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opsportal import registry

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from opsportal.portal.changes import Change
    from opsportal.portal.summary import AppSummary


class AIOpsConfig(registry.PortalApp):
    """Alerts, incidents and (later) checks: the ops team's room."""

    name = "aiops"
    verbose_name = "AIOps"
    order = 10
    colour = "#d63384"
    urls = "aiops.urls"
    api_urls = "aiops.api.urls"
    # Public: published status pages, and heartbeat pings (no login; the ping URL's UUID is the secret);
    # Loki's push API for log senders (a logs integration token).
    extra_urls = (("status/", "aiops.status_urls"), ("ping/", "aiops.ping_urls"), ("loki/", "aiops.loki_urls"))

    def summary(self, *, with_charts: bool) -> AppSummary:
        # Services import models, which exist only once the registry is ready: imported here, not above.
        from .services import overview

        return overview(with_charts=with_charts)

    def seed_demo(self, *, users: Mapping[str, User]) -> str:
        from .demo import seed

        created = seed(actor=users.get("oncall"))
        return f"AIOps demo data {'created' if created else 'already there'}"

    def recent_changes(self, *, start: datetime.datetime, end: datetime.datetime, limit: int) -> list[Change]:
        """Edits of correlation rules, silences, checks and anomaly monitors, from the audit log (one query)."""
        from .services.changes import recent_changes

        return recent_changes(start=start, end=end, limit=limit)
