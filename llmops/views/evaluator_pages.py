"""Evaluator pages: the online evaluators with what they scored, a form to make one (operators), and one
evaluator's scores over time per prompt version and model (Plotly, `llmops.score_charts`)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, has_role, role_required
from opsportal.errors import ServiceError
from opsportal.portal.charts import figure_data

from .. import score_charts
from ..models import Evaluator, LLMModel, Score
from ..services import scores as score_services
from ..services.base import InvalidInput

WINDOWS = {"1": 1, "7": 7, "30": 30}


def _form_fields(post) -> dict:
    """The evaluator's fields from the form: scorers as JSON, the filter from its inputs."""
    try:
        scorers = json.loads(post.get("scorers") or "[]")
    except ValueError as exc:
        raise InvalidInput(f"not JSON: {exc}", field="scorers") from None
    filter_ = {key: post.get(key, "").strip() for key in ("service", "model", "prompt", "prompt_version")}
    filter_["name"] = post.get("span_name", "").strip()
    judge = LLMModel.objects.filter(pk=post.get("judge_model") or 0).first()
    return {"scorers": scorers, "filter": {k: v for k, v in filter_.items() if v}, "judge_model": judge,
            "sampling_rate": post.get("sampling_rate", "1"), "description": post.get("description", "")}  # fmt: skip


@role_required(Role.VIEWER)
def evaluator_list(request: HttpRequest) -> HttpResponse:
    """The evaluators; operators make one here."""
    status = 200
    if request.method == "POST":
        if not has_role(request.user, Role.OPERATOR):
            return HttpResponse("Making evaluators needs the operator role.", status=403)
        try:
            evaluator = score_services.create_evaluator(name=request.POST.get("name"), actor=request.user,
                                                        **_form_fields(request.POST))  # fmt: skip
        except ServiceError as exc:
            messages.error(request, str(exc))
            status = 400
        else:
            messages.success(request, f"Evaluator {evaluator.name} scores new generations from now on.")
            return redirect(evaluator.get_absolute_url())
    context = {"evaluators": Evaluator.objects.select_related("judge_model"), "models": LLMModel.objects.all(),
               "is_operator": has_role(request.user, Role.OPERATOR), "post": request.POST}  # fmt: skip
    return render(request, "llmops/evaluator_list.html", context, status=status)


@role_required(Role.VIEWER)
def evaluator_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One evaluator: its scorers and filter, and each score's mean over time per prompt version and model."""
    evaluator = score_services.get_evaluator(pk=pk)
    days = WINDOWS.get(request.GET.get("days", "7"), 7)
    names = list(Score.objects.filter(evaluator=evaluator).order_by("name").values_list("name", flat=True).distinct())
    charts = []
    for name in names:
        for by in ("prompt_version", "model"):
            series = score_services.score_series(name=name, days=days, by=by, evaluator=evaluator)
            figure = score_charts.score_over_time(series, name=name, hourly=days <= 7)
            charts.append({"id": f"chart-{len(charts)}", "name": name, "by": by, "figure": figure_data(figure)})
    latest = Score.objects.filter(evaluator=evaluator).order_by("-created_at")[:25]
    context = {"evaluator": evaluator, "charts": charts, "latest": latest, "days": days, "windows": WINDOWS,
               "scorers": json.dumps(evaluator.scorers, indent=2),
               "is_operator": has_role(request.user, Role.OPERATOR)}  # fmt: skip
    return render(request, "llmops/evaluator_detail.html", context)


@require_POST
@role_required(Role.OPERATOR)
def evaluator_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    evaluator = get_object_or_404(Evaluator, pk=pk)
    score_services.update_evaluator(evaluator=evaluator, actor=request.user, enabled=not evaluator.enabled)
    messages.success(request, f"Evaluator {evaluator.name} {'paused' if evaluator.enabled else 'running'}.")
    return redirect(evaluator.get_absolute_url())
