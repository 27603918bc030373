"""LLMOps at a glance: the latest pass rate per prompt, cost per day, and the app's card on the overview."""

from __future__ import annotations

import datetime

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from opsportal.portal.summary import AppSummary, activity_stats

from ..models import EvalRun, Prompt, RunColumn, RunResult


def latest_runs_per_prompt(*, limit: int = 8) -> list[tuple[str, float | None, EvalRun]]:
    """(prompt name, pass rate, run) of each prompt's latest finished run."""
    latest: dict[str, tuple[str, float | None, EvalRun]] = {}
    columns = (
        RunColumn.objects.filter(run__status=EvalRun.Status.COMPLETED, prompt_version__isnull=False)
        .select_related("run", "prompt_version__prompt")
        .order_by("-run__finished_at", "position")[:200]
    )
    for column in columns:
        name = column.prompt_version.prompt.name
        if name not in latest:
            latest[name] = (name, column.pass_rate, column.run)
    return list(latest.values())[:limit]


def cost_per_day(*, days: int = 30) -> list[tuple[datetime.date, float]]:
    since = timezone.now() - datetime.timedelta(days=days)
    rows = (
        RunResult.objects.filter(created_at__gte=since, cost__isnull=False)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Sum("cost"))
        .order_by("day")
    )
    return [(row["day"], row["total"]) for row in rows]


def _latest_text(name: str, rate: float | None, run: EvalRun) -> str:
    """A prompt's line on the card: its pass rate, and the errors that kept results from being scored."""
    text = f"{name}: {rate:.0%} passed" if rate is not None else f"{name}: nothing scored"
    if run.errors:
        text += f", {run.errors} error{'s' if run.errors != 1 else ''}"
    return text


def overview(*, with_charts: bool = False) -> AppSummary:
    """LLMOps's card on the overview: pass rate of the latest runs per prompt, and cost per day."""
    counts = EvalRun.objects.aggregate(
        running=Count("id", filter=Q(status__in=[EvalRun.Status.QUEUED, EvalRun.Status.RUNNING])),
        week=Count("id", filter=Q(created_at__gte=timezone.now() - datetime.timedelta(days=7))),
    )
    stats: list[tuple[str, object]] = [
        ("Prompts", Prompt.objects.count()),
        ("Runs in progress", counts["running"]),
        ("Runs in 7 days", counts["week"]),
    ]
    charts = []
    latest = latest_runs_per_prompt(limit=12)
    recent = [
        (_latest_text(name, rate, run), run.get_absolute_url(), run.finished_at or run.created_at)
        for name, rate, run in latest[:5]
    ]
    if with_charts:
        # Plotly loads only for a page that draws the charts, not for every importer of the services.
        from opsportal.portal.charts import figure_data

        from .. import charts as llmops_charts

        # Empty charts say nothing: each appears once there is something to show.
        if latest:
            charts.append(("llmops-pass-rates", "Pass rate of the latest run per prompt",
                           figure_data(llmops_charts.latest_pass_rates(latest))))  # fmt: skip
        costs = cost_per_day(days=30)
        if costs:
            charts.append(("llmops-cost", "Evaluation cost per day (USD)",
                           figure_data(llmops_charts.cost_per_day(costs))))  # fmt: skip
    return AppSummary(
        label="llmops",
        title="LLMOps",
        description="Prompts with versions and labels, datasets, evaluation runs, comparison and release gates.",
        url=reverse("llmops:index"),
        stats=stats + activity_stats("llmops")[:1],
        charts=charts,
        recent=recent,
        recent_title="Latest runs per prompt",
    )
