"""What several LLMOps pages share: list querysets, the editors of formset rows, the run to compare with."""

from __future__ import annotations

import re

from django import forms
from django.db.models import Count, F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from opsportal.errors import ServiceError

from .. import scorers
from ..models import EvalRun, PromptLabel, PromptVersion, RunColumn

PAGE_SIZE = 50


def posted_initial(request: HttpRequest, multiple: tuple[str, ...] = ()) -> dict:
    """The POST as a form's initial data, to show a form again as it was without its errors."""
    return {key: values if key in multiple else values[-1] for key, values in request.POST.lists()}


def editor_rows(data, prefix: str, fields: tuple[str, ...], limit: int = 50) -> list[dict]:
    """The rows of a formset as posted, for editing the rows (add, remove) before it is submitted."""
    try:
        total = min(int(data.get(f"{prefix}-TOTAL_FORMS") or 0), limit)
    except ValueError:
        total = 0
    return [{name: data.get(f"{prefix}-{index}-{name}", "") for name in fields} for index in range(total)]


def row_error(rows: list[forms.Form], exc: ServiceError, prefix: str) -> bool:
    """Put an error naming a row ("messages[1].content") on that row's field; False when it names no row.

    The row's field shows the whole "messages[1].content: ..." so the path to the problem stays visible.
    """
    match = re.match(rf"^{prefix}\[(\d+)\]\.?([\w.]*)", exc.field or "")
    if not match or int(match.group(1)) >= len(rows):
        return False
    form = rows[int(match.group(1))]
    field, _, rest = (match.group(2) or "").partition(".")
    # A scorer's option shown as its own field ("scorers[0].config.pattern") takes the error on that field.
    option = re.split(r"[.\[]", rest, maxsplit=1)[0]
    if field == "config" and option and hasattr(form, "add_option_error") and form.add_option_error(option, str(exc)):
        return True
    form.add_error(field if field in form.fields else None, str(exc))
    return True


def runs_queryset() -> QuerySet[EvalRun]:
    """Runs for a table: with their dataset, author and number of columns."""
    columns = RunColumn.objects.filter(run=OuterRef("pk")).order_by().values("run").annotate(n=Count("id"))
    return EvalRun.objects.select_related("dataset", "created_by").annotate(
        column_count=Coalesce(Subquery(columns.values("n"), output_field=IntegerField()), 0)
    )


def prompts_with_stats(queryset: QuerySet) -> QuerySet:
    """Prompts with their newest version, labels and the pass rate of their latest finished run (constant queries)."""
    latest = RunColumn.objects.filter(prompt_version__prompt=OuterRef("pk"), run__status=EvalRun.Status.COMPLETED)
    latest = latest.order_by(F("run__finished_at").desc(nulls_last=True), "-run_id", "position")
    newest = PromptVersion.objects.filter(prompt=OuterRef("pk")).order_by("-version")
    return queryset.annotate(
        latest_version=Subquery(newest.values("version")[:1]),
        latest_pass_rate=Subquery(latest.values("pass_rate")[:1]),
        latest_run_id=Subquery(latest.values("run_id")[:1]),
        latest_column=Subquery(latest.values("label")[:1]),
    ).prefetch_related(Prefetch("labels", queryset=PromptLabel.objects.select_related("version").order_by("name")))


def previous_run(run: EvalRun) -> EvalRun | None:
    """The run to compare with: the latest earlier run on the same dataset (any kind), else None."""
    if run.dataset_id is None:
        return None
    return (
        EvalRun.objects.filter(dataset_id=run.dataset_id, created_at__lte=run.created_at)
        .exclude(pk=run.pk)
        .exclude(status=EvalRun.Status.CANCELLED, done=0)
        .filter(Q(created_at__lt=run.created_at) | Q(pk__lt=run.pk))
        .order_by("-created_at", "-id")
        .first()
    )


def scorer_names(specs: list[dict]) -> list[str]:
    """The names results carry for a run's scorers (as the engine names them), in order, without repeats."""
    names = []
    for data in specs:
        try:
            spec = scorers.parse_spec(data)
        except scorers.ScorerConfigError:
            continue
        if spec.display_name not in names:
            names.append(spec.display_name)
    return names


def download_name(name: str, extension: str) -> str:
    """A file name for a download: the object's name with anything but letters, digits, `_.-` as `_`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") + extension
