"""MLOps's card on the combined overview, and the registry's counts."""

from __future__ import annotations

import datetime

from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from opsportal.portal.summary import AppSummary, activity_stats

from ..models import (
    ApprovalRequest,
    Breach,
    ModelVersion,
    Monitor,
    MonitoringBatch,
    RegisteredModel,
    Stage,
    VersionEvent,
)

HEALTH_ITEMS = 6


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


def monitoring_health() -> tuple[int, int, list[tuple[str, str, str]]]:
    """Models drifting (an enabled monitor whose newest batch shows dataset drift), monitors breached (an
    open breach), and the lines of the overview's health panel: breached monitors first, then drifting."""
    newest = MonitoringBatch.objects.filter(monitor=OuterRef("pk")).order_by("-end", "-id")
    monitors = list(
        Monitor.objects.filter(enabled=True)
        .annotate(
            drifting=Subquery(newest.values("dataset_drift")[:1]),
            drifted=Subquery(newest.values("drifted_columns")[:1]),
            open_breaches=Count("breaches", filter=Q(breaches__resolved_at__isnull=True)),
        )
        .filter(Q(drifting=True) | Exists(Breach.objects.filter(monitor=OuterRef("pk"), resolved_at__isnull=True)))
        .select_related("model")
        .only("id", "name", "model__name")
        .order_by("-open_breaches", "model__name", "name")
    )
    drifting_models = len({m.model_id for m in monitors if m.drifting})
    breached = sum(1 for m in monitors if m.open_breaches)
    lines = []
    for monitor in monitors[:HEALTH_ITEMS]:
        url = monitor.get_absolute_url()
        if monitor.open_breaches:
            text = f"{monitor.model.name} / {monitor.name}: {monitor.open_breaches} open breach" + (
                "es" if monitor.open_breaches > 1 else ""
            )
            lines.append((text, url, "bad"))
        else:
            columns = ", ".join((monitor.drifted or [])[:3]) + ("…" if len(monitor.drifted or []) > 3 else "")
            lines.append((f"{monitor.model.name} / {monitor.name}: drift in {columns}", url, "warn"))
    return drifting_models, breached, lines


def overview(*, with_charts: bool = False) -> AppSummary:
    """MLOps's card on the combined overview: models in Production, pending approvals, monitoring health,
    recent transitions."""
    counts = registry_counts()
    since = timezone.now() - datetime.timedelta(days=30)
    transitions = VersionEvent.objects.filter(kind=VersionEvent.Kind.STAGE_CHANGED, created_at__gte=since).count()
    drifting, breached, health = monitoring_health()
    stats = [
        ("Registered models", counts["models"]),
        ("Versions in Production", counts["production"]),
        ("Pending approvals", counts["pending_approvals"]),
        ("Models drifting", drifting),
        ("Monitors breached", breached),
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
        health=health,
        health_title="Monitoring health" if Monitor.objects.exists() else "",
    )
