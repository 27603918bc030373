"""The LLMOps overview page: figures, charts, prompts with their labels and scores, recent runs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from opsportal.accounts.roles import Role, role_required
from opsportal.audit.models import AuditEntry
from opsportal.portal.htmx import render_page_or_partial, wants_partial

from .. import services
from ..models import Dataset, LLMModel, Prompt, Provider
from .common import prompts_with_stats, runs_queryset


@role_required(Role.VIEWER)
def index(request: HttpRequest) -> HttpResponse:
    """The app at a glance: figures, charts, prompts with their labels and scores, recent runs."""
    runs = list(runs_queryset()[:10])
    context = {"runs": runs, "runs_active": any(not run.finished for run in runs)}
    if wants_partial(request):
        return render_page_or_partial(request, "llmops/index.html", "llmops/_recent_runs.html", context)
    summary = services.overview(with_charts=True)
    context.update(
        {
            "app": summary,
            "prompts": list(prompts_with_stats(Prompt.objects.order_by("-updated_at"))[:10]),
            "prompt_count": Prompt.objects.count(),
            "datasets": Dataset.objects.count(),
            "providers": Provider.objects.filter(enabled=True).count(),
            "models": LLMModel.objects.count(),
            "recent": AuditEntry.objects.filter(app_label="llmops")[:10],
        }
    )
    return render_page_or_partial(request, "llmops/index.html", "llmops/_recent_runs.html", context)
