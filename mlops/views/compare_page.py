"""Comparing two or more versions of a model side by side (the rows come from `mlops.compare`)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from opsportal.accounts.roles import Role, role_required
from opsportal.portal.charts import figure_data
from opsportal.portal.requests import query_without

from .. import charts
from ..compare import comparison, version_numbers
from ..models import ModelVersion
from .common import model_or_404

CHOICES_SHOWN = 100


@role_required(Role.VIEWER)
def compare(request: HttpRequest, name: str) -> HttpResponse:
    """Two or more versions side by side (?v=1&v=2...): details, parameters, metrics and a chart."""
    model = model_or_404(name)
    numbers, problems = version_numbers(request.GET.getlist("v"))
    versions = list(ModelVersion.objects.filter(model=model, version__in=numbers).order_by("version"))
    missing = sorted(set(numbers) - {v.version for v in versions})
    if missing:
        problems.append(f"{model.name} has no version {', '.join(map(str, missing))}.")
    only_differences = request.GET.get("diff") == "1"
    context = {
        "model": model,
        "versions": versions,
        "problems": problems,
        "only_differences": only_differences,
        "query_all": query_without(request, "diff"),
        "choices": list(
            ModelVersion.objects.filter(model=model)
            .order_by("-version")
            .values_list("version", "stage")[:CHOICES_SHOWN]
        ),
        "selected": {v.version for v in versions},
    }
    if len(versions) >= 2:
        for version in versions:
            version.model = model
        tables = comparison(versions, only_differences=only_differences)
        context.update(tables)
        context["chart"] = figure_data(charts.compare_metrics(versions)) if tables["metrics"] else None
    return render(request, "mlops/compare.html", context)
