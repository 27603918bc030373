from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opsportal import registry

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from opsportal.portal.changes import Change
    from opsportal.portal.summary import AppSummary


class MLOpsConfig(registry.PortalApp):
    """The model registry, with its MLflow-compatible API."""

    name = "mlops"
    verbose_name = "MLOps"
    order = 20
    colour = "#0d6efd"
    urls = "mlops.urls"
    api_urls = "mlops.api.urls"
    extra_urls = (("mlflow/", "mlops.mlflow_api.urls"),)

    def summary(self, *, with_charts: bool) -> AppSummary:
        # Services import models, which exist only once the registry is ready: imported here, not above.
        from .services import overview

        return overview(with_charts=with_charts)

    def seed_demo(self, *, users: Mapping[str, User]) -> str:
        from . import monitoring_demo
        from .demo import seed

        created = seed(scientist=users["datasci"], admin=users["mllead"])
        monitored = monitoring_demo.seed(scientist=users["datasci"], admin=users["mllead"])
        return (
            f"MLOps demo registry {'created' if created else 'already there'}, "
            f"monitoring {'created' if monitored else 'already there'}"
        )

    def recent_changes(self, *, start: datetime.datetime, end: datetime.datetime, limit: int) -> list[Change]:
        """Stage transitions (promotions, archiving, rollbacks) and alias moves of model versions (one query)."""
        from django.urls import reverse

        from opsportal.portal.changes import Change

        from .models import VersionEvent

        kinds = [VersionEvent.Kind.STAGE_CHANGED, VersionEvent.Kind.ALIAS_SET, VersionEvent.Kind.ALIAS_DELETED]
        events = (
            VersionEvent.objects.filter(kind__in=kinds, created_at__gte=start, created_at__lte=end)
            .select_related("model", "version")
            .only("message", "actor_name", "created_at", "model__name", "version__version")
            .order_by("-created_at", "-id")[:limit]
        )
        changes = []
        for event in events:
            if event.version is not None:
                name, number = event.model.name, event.version.version
                subject, url = f"{name} v{number}", reverse("mlops:version", args=[name, number])
            else:
                subject, url = event.model.name, event.model.get_absolute_url()
            changes.append(
                Change(
                    title=f"Model {subject}: {event.message}",
                    at=event.created_at,
                    actor=event.actor_name,
                    url=url,
                    app=self.label,
                )
            )
        return changes
