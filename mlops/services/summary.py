"""MLOps's card on the combined overview, and the registry's counts."""

from __future__ import annotations

import datetime

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from opsportal.portal.summary import AppSummary, activity_stats

from ..models import ApprovalRequest, ModelVersion, RegisteredModel, Stage, VersionEvent


def registry_counts() -> dict[str, int]:
    """How many models, versions, versions in Production and pending approval requests there are."""
    counts = RegisteredModel.objects.aggregate(models=Count("id"))
    counts["versions"] = ModelVersion.objects.count()
    counts["production"] = ModelVersion.objects.filter(stage=Stage.PRODUCTION).count()
    counts["pending_approvals"] = ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING).count()
    return counts


def recent_transitions(limit: int = 8) -> list[VersionEvent]:
    """The latest stage changes, newest first."""
    return list(
        VersionEvent.objects.filter(kind=VersionEvent.Kind.STAGE_CHANGED)
        .select_related("model", "version")
        .order_by("-created_at", "-id")[:limit]
    )


def overview(*, with_charts: bool = False) -> AppSummary:
    """MLOps's card on the combined overview: models in Production, pending approvals, recent transitions."""
    counts = registry_counts()
    since = timezone.now() - datetime.timedelta(days=30)
    transitions = VersionEvent.objects.filter(kind=VersionEvent.Kind.STAGE_CHANGED, created_at__gte=since).count()
    stats = [
        ("Registered models", counts["models"]),
        ("Versions in Production", counts["production"]),
        ("Pending approvals", counts["pending_approvals"]),
        ("Stage transitions (30 days)", transitions),
        *activity_stats("mlops"),
    ]
    charts = []
    if with_charts and counts["versions"]:
        # Plotly is slow to import, and Celery workers import these services but never draw.
        from opsportal.portal.charts import figure_data

        from .. import charts as mlops_charts

        charts.append(("mlops-stages", "Model versions by stage", figure_data(mlops_charts.versions_by_stage())))
    return AppSummary(
        label="mlops",
        title="MLOps",
        description="The model registry: versions, stages, aliases, lineage, artifacts and approvals.",
        url=reverse("mlops:index"),
        stats=stats,
        charts=charts,
        recent=[
            (
                f"{e.model.name} v{e.version.version if e.version else '?'}: {e.data.get('to_stage', '')}",
                e.version.get_absolute_url() if e.version else e.model.get_absolute_url(),
                e.created_at,
            )
            for e in recent_transitions(5)
        ],
        recent_title="Recent transitions",
    )
