"""The analytics page: MTTA/MTTR per service and severity and over time, counts, noisiest alerts."""

from __future__ import annotations

import datetime

from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from opsportal.accounts.roles import Role, role_required
from opsportal.portal.charts import figure_data

from .. import charts
from ..models import Alert, Incident

PERIODS = {"7": 7, "30": 30, "90": 90}


@role_required(Role.VIEWER)
def analytics(request: HttpRequest) -> HttpResponse:
    """MTTA/MTTR (median, p90) per service and severity and over time, counts, noisiest alerts."""
    chosen = request.GET.get("days", "30")
    days = PERIODS.get(chosen, 30)
    now = timezone.now()
    problems = (
        []
        if chosen in PERIODS
        else [
            f"Filter days: “{chosen[:60]}” — not a value it knows; the allowed values are {', '.join(PERIODS)}. "
            "Showing the last 30 days."
        ]
    )
    since = now - datetime.timedelta(days=days)
    period = Incident.objects.filter(created_at__gte=since, merged_into__isnull=True)
    rows = list(period.values_list("created_at", "acknowledged_at", "resolved_at", "service", "severity"))
    by_service = charts.response_times(rows, 3)
    by_severity = charts.response_times(rows, 4)
    noisy = list(
        Alert.objects.filter(last_seen_at__gte=since)
        .values("title", "service")
        .annotate(seen=Sum("times_seen"), occurrences=Count("id"))
        .order_by("-seen")[:15]
    )
    counts = list(period.values("status", "service").annotate(n=Count("id")).order_by())
    overall = charts.response_times(rows, None).get("all", {"mtta": (None, None), "mttr": (None, None), "n": 0})
    context = {
        "days": days,
        "filter_problems": problems,
        "partial_period": "this week" if days > 45 else "today",
        "periods": PERIODS,
        "total": len(rows),
        "overall": overall,
        # The time axis spans the chosen period, not just the days that had incidents; the legend goes
        # above the plot so it doesn't hide the latest days.
        "trend_chart": figure_data(
            charts.response_time_trend(rows, days, now)
            .update_xaxes(range=[since.isoformat(), now.isoformat()])
            .update_layout(legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}, margin={"t": 40})
        ),
        # The cards have their own headings; a figure title would be cut off by the tight top margin.
        "service_chart": figure_data(charts.response_time_bars(by_service, "")),
        "severity_chart": figure_data(charts.response_time_bars(by_severity, "")),
        "counts_chart": figure_data(charts.counts_by_status_and_service(counts)),
        "noisy_chart": figure_data(charts.noisiest_alerts(noisy)),
        "noisy": noisy,
        "by_service": sorted(by_service.items()),
    }
    return render(request, "aiops/analytics.html", context)
