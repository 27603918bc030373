"""A registered model's page and its actions: details, policy, tags, versions, aliases, rollback, rename, delete."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db.models import CharField, F, FloatField, Func, Prefetch, Q, QuerySet, Value
from django.db.models.expressions import Case, When
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, has_role, role_required
from opsportal.errors import InvalidInput
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.actions import PageAction, dispatch
from opsportal.portal.charts import figure_data
from opsportal.portal.requests import form_problem

from .. import charts, services
from ..forms import (
    AliasForm,
    DeleteModelForm,
    ModelDetailsForm,
    PolicyForm,
    RegisterVersionForm,
    RenameForm,
    RollbackForm,
    TagForm,
)
from ..models import ApprovalRequest, ModelAlias, ModelVersion, RegisteredModel
from .common import HISTORY_LIMIT, model_or_404, said_plainly, say_transition

VERSION_PAGE_SIZE = 50
KEY_METRIC_COLUMNS = 4
ORDERS = ("desc", "asc")


def _metric_names(model: RegisteredModel) -> list[str]:
    """Every metric any version of the model reports, the most reported first (then by name)."""
    counts = Counter(
        key for metrics in ModelVersion.objects.filter(model=model).values_list("metrics", flat=True)
        for key in (metrics or {})
    )  # fmt: skip
    return [key for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


@dataclass
class VersionTable:
    """What the versions table shows, read from the query string: `metric` (repeated; with `columns=chosen`,
    none means none), `sort` (a metric) with `order` (desc or asc), and `chart` (the metric charted)."""

    names: list[str]
    columns: list[str]
    sort: str = ""
    order: str = "desc"
    chart: str = ""
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, query, names: list[str]) -> VersionTable:
        known = set(names)
        problems = []
        if query.get("columns") == "chosen":
            asked = query.getlist("metric")
            unknown = [name for name in asked if name not in known]
            if unknown:
                problems.append(f"No version reports {', '.join(repr(n) for n in unknown)}: shown are the others.")
            columns = [name for name in names if name in asked]
        else:
            columns = names[:KEY_METRIC_COLUMNS]
        sort, order = query.get("sort", ""), query.get("order", "desc")
        if sort and sort not in known:
            problems.append(f"sort: no version reports the metric {sort!r}; sorted by version instead.")
            sort = ""
        if order not in ORDERS:
            problems.append(f"order: {order!r} is neither desc nor asc; sorted descending.")
            order = "desc"
        if sort and sort not in columns:
            columns.append(sort)
        chart = query.get("chart", "")
        if chart and chart not in known:
            problems.append(f"chart: no version reports the metric {chart!r}.")
            chart = ""
        chart = chart or sort or (columns[0] if columns else (names[0] if names else ""))
        return cls(names=names, columns=columns, sort=sort, order=order, chart=chart, problems=problems)

    def query(self, **changes: object) -> str:
        """The query string of this table with some parameters changed (None drops one)."""
        params: dict[str, object] = {"columns": "chosen", "metric": self.columns, "sort": self.sort,
                                     "order": self.order if self.sort else "", "chart": self.chart}  # fmt: skip
        params.update(changes)
        return urlencode({k: v for k, v in params.items() if v not in (None, "", [])}, doseq=True)

    def headers(self) -> list[dict]:
        """Each metric column's header: its name, the link that sorts by it, and its current sort."""
        rows = []
        for name in self.columns:
            current = self.order if name == self.sort else ""
            following = "asc" if current == "desc" else "desc"
            label = f"Sort by {name}, {'ascending' if following == 'asc' else 'descending'}"
            rows.append({"name": name, "sorted": current, "url": "?" + self.query(sort=name, order=following),
                         "label": label})  # fmt: skip
        return rows

    def order_versions(self, versions: QuerySet) -> QuerySet:
        """Versions by the sort metric (those without it last, whatever the order), then newest first: stable."""
        if not self.sort:
            return versions.order_by("-version")
        number = Case(
            When(Q(metric_type="number"), then=Cast(KeyTextTransform(self.sort, "metrics"), FloatField())),
            default=Value(None, output_field=FloatField()),
        )
        versions = versions.annotate(
            metric_type=Func(KeyTransform(self.sort, "metrics"), function="jsonb_typeof", output_field=CharField()),
            sort_value=number,
        )
        value = F("sort_value").desc(nulls_last=True) if self.order == "desc" else F("sort_value").asc(nulls_last=True)
        return versions.order_by(value, "-version")


def _model_page(request: HttpRequest, model: RegisteredModel, status: int = 200, **forms) -> HttpResponse:
    """The page, with `forms` (bound ones shown open, with their errors) in place of the empty ones."""
    table = VersionTable.from_query(request.GET, _metric_names(model))
    if table.problems and status == 200:
        status = 400
    versions = table.order_versions(
        ModelVersion.objects.filter(model=model)
        .select_related("created_by")
        .prefetch_related(Prefetch("aliases", queryset=ModelAlias.objects.order_by("alias")))
    )
    page = Paginator(versions, VERSION_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    key_metrics = table.columns
    for version in page.object_list:
        version.key_values = [(version.metrics or {}).get(key) for key in key_metrics]
    chart = None
    if table.chart:
        chart = figure_data(charts.metric_across_versions(model, table.chart))
    is_operator = has_role(request.user, Role.OPERATOR)
    defaults = {
        "details_form": ModelDetailsForm(
            prefix="details", initial={"description": model.description, "owner_team": model.owner_team}
        ),
        "policy_form": PolicyForm(
            prefix="policy",
            initial={
                "approval_required": model.approval_required,
                "protected_aliases": model.protected_aliases,
                "archive_on_promotion": model.archive_on_promotion,
            },
        ),
        "tag_form": TagForm(prefix="tag"),
        "version_form": RegisterVersionForm(prefix="version"),
        "alias_form": AliasForm(prefix="alias"),
        "rollback_form": RollbackForm(prefix="rollback"),
        "rename_form": RenameForm(prefix="rename", initial={"new_name": model.name}),
        "delete_form": DeleteModelForm(prefix="delete"),
    }
    defaults.update(forms)
    context = {
        "model": model,
        "page": page,
        "key_metrics": key_metrics,
        "table": table,
        "metric_headers": table.headers(),
        "query": table.query(),
        "metric_chart": chart,
        "tags": list(model.tags.all()),
        "aliases": list(ModelAlias.objects.filter(model=model).select_related("version").order_by("alias")),
        "latest": services.latest_versions(model),
        "pending": list(
            ApprovalRequest.objects.filter(version__model=model, status=ApprovalRequest.Status.PENDING)
            .select_related("version", "requested_by")
            .order_by("requested_at")
        ),
        "rollback_candidates": services.rollback_candidates(model) if is_operator else [],
        "events": list(model.events.select_related("version")[:HISTORY_LIMIT]),
        "created_by": model.created_by.get_username() if model.created_by_id and model.created_by else "",
        "open_forms": [name for name, form in forms.items() if form.is_bound],
        **defaults,
    }
    return render(request, "mlops/model_detail.html", context, status=status)


@role_required(Role.VIEWER)
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    return _model_page(request, model_or_404(name))


def _update(request: HttpRequest, model: RegisteredModel, data: dict) -> RegisteredModel:
    return services.update_model(model=model, actor=request.user, **data)


def _set_tag(request: HttpRequest, model: RegisteredModel, data: dict) -> object:
    return services.set_model_tag(model=model, actor=request.user, **data)


def _delete_tag(request: HttpRequest, model: RegisteredModel, data: dict) -> str:
    key = request.POST.get("key", "")
    services.delete_model_tag(model=model, key=key, actor=request.user)
    return key


def _register_version(request: HttpRequest, model: RegisteredModel, data: dict) -> ModelVersion:
    return services.create_version(model=model, actor=request.user, **data)


def _point_alias(request: HttpRequest, model: RegisteredModel, data: dict) -> None:
    version = services.get_version(model, data["version"])
    result = services.set_alias(model=model, alias=data["alias"], version=version, actor=request.user)
    say_transition(request, result, f"Alias @{data['alias']} points at version {result.version.version}.")


def _delete_alias(request: HttpRequest, model: RegisteredModel, data: dict) -> str:
    alias = request.POST.get("alias", "")
    services.delete_alias(model=model, alias=alias, actor=request.user)
    return alias


def _rollback(request: HttpRequest, model: RegisteredModel, data: dict) -> None:
    # The rollback form sits in a list of earlier versions: a problem is a message above the page.
    form = RollbackForm(request.POST, prefix="rollback")
    if not form.is_valid():
        raise InvalidInput(form_problem(form))
    version = services.get_version(model, form.cleaned_data["version"])
    result = services.rollback(model=model, to_version=version, actor=request.user, reason=form.cleaned_data["reason"])
    say_transition(request, result, f"Rolled back: version {version.version} is in Production again.")


def _rename(request: HttpRequest, model: RegisteredModel, data: dict) -> RegisteredModel:
    return services.rename_model(model=model, new_name=data["new_name"], actor=request.user)


def _delete(request: HttpRequest, model: RegisteredModel, data: dict) -> None:
    if data["confirm"].strip() != model.name:
        raise InvalidInput(f"Type {model.name} exactly to delete this model.", field="confirm")
    services.delete_model(model=model, actor=request.user)


ADMIN_ONLY = "Changing the approval policy, renaming or deleting a model"
MODEL_ACTIONS = {
    "details": PageAction(
        form=ModelDetailsForm, prefix="details", run=_update, success="Description and owner team saved."
    ),
    "policy": PageAction(
        form=PolicyForm, prefix="policy", run=_update, success="Approval policy saved.",
        fields={"alias": "protected_aliases"}, role=Role.ADMIN, why=ADMIN_ONLY,
    ),
    "tag": PageAction(
        form=TagForm, prefix="tag", run=_set_tag, success=lambda model, tag, data: f"Tag {data['key']} set."
    ),
    "delete-tag": PageAction(run=said_plainly(_delete_tag), success=lambda model, key, data: f"Tag {key} deleted."),
    "register-version": PageAction(
        form=RegisterVersionForm, prefix="version", run=_register_version, fields={"key": "tags", "value": "tags"},
        success=lambda model, version, data: f"Registered version {version.version} of {model.name}.",
        next=lambda model, version: version,
    ),
    "alias": PageAction(form=AliasForm, prefix="alias", run=_point_alias),
    "delete-alias": PageAction(
        run=said_plainly(_delete_alias), success=lambda model, alias, data: f"Alias @{alias} removed."
    ),
    "rollback": PageAction(run=said_plainly(_rollback)),
    "rename": PageAction(
        form=RenameForm, prefix="rename", run=_rename, role=Role.ADMIN, why=ADMIN_ONLY,
        success=lambda model, renamed, data: f"Renamed to {renamed.name}.", next=lambda model, renamed: renamed,
    ),
    "delete": PageAction(
        form=DeleteModelForm, prefix="delete", run=_delete, role=Role.ADMIN, why=ADMIN_ONLY,
        success=lambda model, result, data: f"Deleted model {model.name} with its versions and artifacts.",
        next=lambda model, result: reverse("mlops:index"),
    ),
}  # fmt: skip


@require_POST
@role_required(Role.OPERATOR)
def model_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    """Changes to a model (`MODEL_ACTIONS`); a form with a problem is shown again on the page (400)."""
    model = model_or_404(name)
    return dispatch(
        request, MODEL_ACTIONS, action, model,
        invalid=lambda form: _model_page(request, model, 400, **{f"{form.prefix}_form": form}),
    )  # fmt: skip
