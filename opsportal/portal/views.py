from __future__ import annotations

import datetime

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from opsportal.accounts.models import ApiToken
from opsportal.accounts.roles import Role, role_required
from opsportal.audit.charts import activity_per_day
from opsportal.audit.models import AuditEntry
from opsportal.registry import portal_apps
from opsportal.system import services as system

from .charts import figure_data


@role_required(Role.VIEWER)
def overview(request: HttpRequest) -> HttpResponse:
    """The combined overview: each app's headline figures, portal health and activity."""
    since = timezone.now() - datetime.timedelta(days=1)
    workers = system.workers()
    portal_stats = [
        ("Users", User.objects.filter(is_active=True).count()),
        ("Active API tokens", ApiToken.objects.active().count()),
        ("Workers online", sum(w.online for w in workers)),
        ("Changes in 24 h", AuditEntry.objects.filter(at__gte=since).count()),
    ]
    return render(
        request,
        "portal/overview.html",
        {
            "apps": [app.summary(with_charts=True) for app in portal_apps()],
            "portal_stats": portal_stats,
            "activity_chart": figure_data(activity_per_day(30)),
            "recent": AuditEntry.objects.all()[:8],
        },
    )
