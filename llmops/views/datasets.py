"""Dataset pages: the list (search, create), a dataset (items, add, edit, delete), import with a preview (all rows
or none), export as JSONL or CSV."""

from __future__ import annotations

import base64
import secrets
import zlib

from django.contrib import messages
from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from opsportal.accounts.roles import Role, require_role, role_required
from opsportal.errors import InvalidInput
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.actions import apply_form
from opsportal.portal.htmx import wants_partial
from opsportal.portal.requests import on_site, query_without, safe_next

from .. import importers, services
from ..forms import DatasetForm, DeleteConfirmForm, ImportForm, ItemForm
from ..models import Dataset, DatasetItem, EvalRun
from .common import PAGE_SIZE, download_name, runs_queryset

ITEMS_PAGE_SIZE = 50
PREVIEW_ROWS = 20
SHOWN_IMPORT_ERRORS = 100
IMPORT_SESSION_KEY = "llmops.pending-import"


@role_required(Role.VIEWER)
def dataset_list(request: HttpRequest) -> HttpResponse:
    form = DatasetForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Creating a dataset")
        form = DatasetForm(request.POST, prefix="new")
        ok, dataset = apply_form(form, lambda data: services.create_dataset(
            name=data["name"].strip(), description=data["description"], actor=request.user
        ))  # fmt: skip
        if ok:
            messages.success(request, f"Dataset {dataset.name} created. Add items or import a file.")
            return redirect(dataset)
    q = request.GET.get("q", "").strip()
    items = DatasetItem.objects.filter(dataset=OuterRef("pk")).order_by().values("dataset").annotate(n=Count("id"))
    runs = EvalRun.objects.filter(dataset=OuterRef("pk")).order_by().values("dataset").annotate(n=Count("id"))
    datasets = Dataset.objects.select_related("created_by").annotate(
        item_count=Coalesce(Subquery(items.values("n"), output_field=IntegerField()), 0),
        run_count=Coalesce(Subquery(runs.values("n"), output_field=IntegerField()), 0),
    )
    if q:
        datasets = datasets.filter(Q(name__icontains=q) | Q(description__icontains=q))
    page = Paginator(datasets.order_by("name"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "llmops/dataset_list.html",
        {"page": page, "form": form, "q": q, "query": query_without(request, "page")},
        status=400 if form.errors else 200,
    )


def _dataset_page(request: HttpRequest, dataset: Dataset, status: int = 200, **forms) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    tag = request.GET.get("tag", "").strip()
    items = dataset.items.order_by("id")
    if q:
        items = items.filter(Q(expected_output__icontains=q) | Q(context__icontains=q))
    if tag:
        items = items.filter(tags__contains=[tag]) if _json_contains_supported() else items.filter(tags__icontains=tag)
    page = Paginator(items, ITEMS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "dataset": dataset,
        "page": page,
        "q": q,
        "tag": tag,
        "query": query_without(request, "page"),
        "item_form": forms.get("item_form") or ItemForm(prefix="item"),
        "delete_form": forms.get("delete_form") or DeleteConfirmForm(prefix="delete"),
        "total": dataset.items.count(),
        "runs": runs_queryset().filter(dataset=dataset)[:10],
        "gated": list(dataset.gated_prompts.order_by("name")),
    }
    return render(request, "llmops/dataset_detail.html", context, status=status)


def _json_contains_supported() -> bool:
    return connection.features.supports_json_field_contains


@role_required(Role.VIEWER)
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Items (paginated, searchable), add an item, import, export, the runs on this dataset."""
    dataset = get_object_or_404(Dataset.objects.select_related("created_by"), pk=pk)
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Adding an item")
        form = ItemForm(request.POST, prefix="item")
        ok, _ = apply_form(form, lambda data: services.add_item(dataset=dataset, actor=request.user, **data))
        if ok:
            messages.success(request, "Item added.")
            last_page = (dataset.items.count() - 1) // ITEMS_PAGE_SIZE + 1
            return redirect(f"{dataset.get_absolute_url()}?page={last_page}")
        return _dataset_page(request, dataset, 400, item_form=form)
    return _dataset_page(request, dataset)


@role_required(Role.VIEWER)
def dataset_item(request: HttpRequest, pk: int, item: int) -> HttpResponse:
    """One item's edit form: inline in the table (htmx) or as a page."""
    dataset = get_object_or_404(Dataset, pk=pk)
    row = get_object_or_404(DatasetItem, pk=item, dataset=dataset)
    form = ItemForm(prefix=f"edit-{row.pk}", initial=ItemForm.initial_for(row))
    back = request.GET.get("next") or request.POST.get("next") or dataset.get_absolute_url()
    if not on_site(request, back):
        back = dataset.get_absolute_url()
    status = 200
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Editing an item")
        form = ItemForm(request.POST, prefix=f"edit-{row.pk}")
        ok, _ = apply_form(form, lambda data: services.update_item(item=row, actor=request.user, **data))
        if ok:
            messages.success(request, f"Item {row.pk} saved.")
            return redirect(back)
        status = 400
    context = {"dataset": dataset, "item": row, "form": form, "next": back}
    if wants_partial(request) and request.method == "GET":
        return render(request, "llmops/_item_edit_row.html", context)
    return render(request, "llmops/dataset_item.html", context, status=status)


@require_POST
@role_required(Role.OPERATOR)
def dataset_item_delete(request: HttpRequest, pk: int, item: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=pk)
    row = get_object_or_404(DatasetItem, pk=item, dataset=dataset)
    services.delete_item(item=row, actor=request.user)
    messages.success(request, f"Item {item} deleted.")
    return redirect(safe_next(request, dataset.get_absolute_url()))


@require_POST
@role_required(Role.ADMIN)
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=pk)
    form = DeleteConfirmForm(request.POST, prefix="delete")

    def delete(data: dict) -> None:
        if data["confirm"].strip() != dataset.name:
            raise InvalidInput(f"Type {dataset.name} exactly to delete this dataset.", field="confirm")
        services.delete_dataset(dataset=dataset, actor=request.user)

    ok, _ = apply_form(form, delete, {"dataset": "confirm"})  # a gated dataset's refusal, under the name typed
    if not ok:
        return _dataset_page(request, dataset, 400, delete_form=form)
    messages.success(request, f"Dataset {dataset.name} deleted; its runs keep their own copy of the items.")
    return redirect("llmops:datasets")


def _pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 6)).decode()


def _unpack(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


@role_required(Role.OPERATOR)
def dataset_import(request: HttpRequest, pk: int) -> HttpResponse:
    """Upload a CSV/JSONL file, see a preview with every bad row, then import all rows or none."""
    dataset = get_object_or_404(Dataset, pk=pk)
    form = ImportForm()
    context = {"dataset": dataset, "form": form}
    if request.method == "POST" and request.POST.get("cancel"):
        request.session.pop(IMPORT_SESSION_KEY, None)
        messages.info(request, "Import cancelled: nothing was imported.")
        return redirect(dataset)
    if request.method == "POST" and request.POST.get("confirm"):
        pending = request.session.get(IMPORT_SESSION_KEY) or {}
        if pending.get("token") != request.POST["confirm"] or pending.get("dataset") != dataset.pk:
            messages.error(request, "That preview has expired; upload the file again.")
            return redirect("llmops:dataset-import", dataset.pk)
        result = services.import_items(
            dataset=dataset, data=_unpack(pending["data"]), filename=pending["filename"], actor=request.user
        )
        request.session.pop(IMPORT_SESSION_KEY, None)
        if not result.ok:
            context.update(_preview_context(result, pending["filename"]))
            return render(request, "llmops/dataset_import.html", context, status=400)
        messages.success(request, f"Imported {len(result.rows)} items from {pending['filename']}.")
        return redirect(dataset)
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        context["form"] = form
        if not form.is_valid():
            return render(request, "llmops/dataset_import.html", context, status=400)
        upload = form.cleaned_data["file"]
        data = upload.read()
        result = services.preview_import(data=data, filename=upload.name)
        context.update(_preview_context(result, upload.name))
        if result.ok:
            token = secrets.token_urlsafe(16)
            request.session[IMPORT_SESSION_KEY] = {
                "token": token, "dataset": dataset.pk, "filename": upload.name, "data": _pack(data),
            }  # fmt: skip
            context["token"] = token
        return render(request, "llmops/dataset_import.html", context, status=200 if result.ok else 400)
    return render(request, "llmops/dataset_import.html", context)


def _preview_context(result: importers.ImportResult, filename: str) -> dict:
    return {
        "result": result,
        "filename": filename,
        "preview_rows": result.rows[:PREVIEW_ROWS],
        "variables": sorted({key for row in result.rows[:PREVIEW_ROWS] for key in row.input}),
        "errors": result.errors[:SHOWN_IMPORT_ERRORS],
        "more_errors": max(0, len(result.errors) - SHOWN_IMPORT_ERRORS),
    }


@require_GET
@role_required(Role.VIEWER)
def dataset_export(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=pk)
    fmt = request.GET.get("format", "jsonl")
    items = dataset.items.order_by("id").iterator(chunk_size=2000)
    if fmt == "csv":
        response = HttpResponse(importers.export_csv(items), content_type="text/csv; charset=utf-8")
        extension = ".csv"
    else:
        response = HttpResponse(importers.export_jsonl(items), content_type="application/x-ndjson; charset=utf-8")
        extension = ".jsonl"
    response["Content-Disposition"] = f'attachment; filename="{download_name(dataset.name, extension)}"'
    return response
