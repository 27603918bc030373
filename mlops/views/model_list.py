"""The model list: search, filters and sorting; operators register a new model here."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Exists, IntegerField, Max, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from opsportal.accounts.roles import Role, require_role, role_required
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.actions import apply_form
from opsportal.portal.filters import checked_filters
from opsportal.portal.htmx import render_page_or_partial
from opsportal.portal.requests import query_without

from .. import services
from ..forms import SORTS, ModelSearchForm, RegisterModelForm
from ..models import ApprovalRequest, ModelAlias, ModelVersion, RegisteredModel, RegisteredModelTag, Stage, VersionEvent

MODEL_PAGE_SIZE = 50
# The registration form asks for aliases and tags as text; the services name what they check.
REGISTER_FIELDS = {"alias": "protected_aliases", "key": "tags", "value": "tags"}


def _version_stats(model_ids: list[int]) -> dict[int, dict]:
    """Per model: how many versions, the newest, and how many (and the newest) in Production and Staging."""
    rows = (
        ModelVersion.objects.filter(model_id__in=model_ids)
        .values("model_id")
        .annotate(
            count=Count("id"),
            latest=Max("version"),
            production=Count("id", filter=Q(stage=Stage.PRODUCTION)),
            production_version=Max("version", filter=Q(stage=Stage.PRODUCTION)),
            staging=Count("id", filter=Q(stage=Stage.STAGING)),
            staging_version=Max("version", filter=Q(stage=Stage.STAGING)),
        )
        .order_by()
    )
    return {row["model_id"]: row for row in rows}


def _matching(request: HttpRequest, search: ModelSearchForm) -> QuerySet[RegisteredModel]:
    """The models the search form and the team/stage filters select, in the chosen order."""
    data = search.cleaned_data
    models = RegisteredModel.objects.all()
    if q := (data.get("q") or "").strip():
        match = Q(name__icontains=q)
        if tag := search.tag_filter():
            key, value = tag
            tags = RegisteredModelTag.objects.filter(model=OuterRef("pk"), key=key)
            match |= Exists(tags.filter(value=value) if value else tags)
        models = models.filter(match)
    # A team or stage that isn't offered (any more) was dropped by checked_filters, which says so.
    if team := data.get("team") or "":
        models = models.filter(owner_team=team)
    if stage := data.get("stage") or "":
        models = models.filter(Exists(ModelVersion.objects.filter(model=OuterRef("pk"), stage=stage)))
    sort = data.get("sort") or "name"
    if "versions" in sort:
        counted = ModelVersion.objects.filter(model=OuterRef("pk")).order_by().values("model").annotate(n=Count("id"))
        models = models.annotate(version_count=Coalesce(Subquery(counted.values("n"), output_field=IntegerField()), 0))
    return models.order_by(*SORTS[sort][1]).prefetch_related(
        "tags", Prefetch("aliases", queryset=ModelAlias.objects.select_related("version").order_by("alias"))
    )


@role_required(Role.VIEWER)
def index(request: HttpRequest) -> HttpResponse:
    """Registered models: search, filters, sorting; operators register new ones here."""
    register_form = RegisterModelForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Registering a model")
        register_form = RegisterModelForm(request.POST, prefix="new")
        done, model = apply_form(
            register_form, lambda data: services.create_model(actor=request.user, **data), REGISTER_FIELDS
        )
        if done:
            messages.success(request, f"Registered model {model.name}. Register its first version below.")
            return redirect(model)

    teams = list(
        RegisteredModel.objects.exclude(owner_team="").values_list("owner_team", flat=True).distinct().order_by()
    )
    # `all` means no filter; a value a filter does not know is named in a message and ignored.
    query, filter_problems = checked_filters(
        request.GET,
        ModelSearchForm(teams=sorted(teams)).fields,
        bind=lambda data: ModelSearchForm(data, teams=sorted(teams)),
    )
    search = ModelSearchForm(query, teams=sorted(teams))
    search.is_valid()
    page = Paginator(_matching(request, search), MODEL_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    stats = _version_stats([m.pk for m in page.object_list])
    for model in page.object_list:
        model.stats = stats.get(model.pk, {"count": 0})

    context = {
        "search": search,
        "filter_problems": filter_problems,
        "sort": search.cleaned_data.get("sort") or "name",
        "page": page,
        "query": query_without(request, "page"),
        "sort_query": query_without(request, "page", "sort"),
        "pending_count": ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING).count(),
        "register_form": register_form,
        "recent_events": VersionEvent.objects.select_related("model", "version")[:10],
    }
    if request.method == "POST":  # the registration form had a problem: show it, filled in as it was
        return render(request, "mlops/model_list.html", context, status=400)
    return render_page_or_partial(request, "mlops/model_list.html", "mlops/partials/model_table.html", context)
