"""Datasets of test cases: their items, and import (all rows or none) from CSV or JSONL."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from opsportal.audit import services as audit

from .. import importers
from ..models import Dataset, DatasetItem
from .base import Actor, InvalidInput, NotFound, clean_name, user_of


def get_dataset(*, reference: object) -> Dataset:
    queryset = Dataset.objects.all()
    dataset = (
        queryset.filter(pk=int(reference)).first()
        if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit())
        else queryset.filter(name=reference).first()
    )
    if dataset is None:
        raise NotFound(f"No dataset {reference!r}.")
    return dataset


@transaction.atomic
def create_dataset(*, name: object, actor: Actor, description: str = "") -> Dataset:
    name = clean_name(name)
    if Dataset.objects.filter(name=name).exists():
        raise InvalidInput(f"a dataset named {name!r} exists already", field="name")
    dataset = Dataset.objects.create(name=name, description=description or "", created_by=user_of(actor))
    audit.record(action="create", actor=actor, obj=dataset)
    return dataset


@transaction.atomic
def update_dataset(*, dataset: Dataset, actor: Actor, **fields: object) -> Dataset:
    """Rename a dataset or change its description (runs keep their own snapshot of the items)."""
    unknown = set(fields) - {"name", "description"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    if "name" in fields:
        fields["name"] = clean_name(fields["name"])
        if Dataset.objects.filter(name=fields["name"]).exclude(pk=dataset.pk).exists():
            raise InvalidInput(f"a dataset named {fields['name']!r} exists already", field="name")
    if "description" in fields:
        fields["description"] = fields["description"] or ""
    before = audit.snapshot(dataset, fields)
    for key, value in fields.items():
        setattr(dataset, key, value)
    dataset.updated_at = timezone.now()
    dataset.save()
    audit.record(action="update", actor=actor, obj=dataset, changes=audit.diff(before, audit.snapshot(dataset, fields)))
    return dataset


@transaction.atomic
def delete_dataset(*, dataset: Dataset, actor: Actor) -> None:
    gated = list(dataset.gated_prompts.values_list("name", flat=True))
    if gated:
        raise InvalidInput(
            f"it is the release gate of {', '.join(sorted(gated))}; change their gate first", field="dataset"
        )
    audit.record(action="delete", actor=actor, obj=dataset, message=f"{dataset.items.count()} items")
    dataset.delete()


def _clean_item(data: dict) -> dict:
    cleaned = {}
    if "input" in data:
        if not isinstance(data["input"], dict):
            raise InvalidInput("must be a JSON object of variables", field="input")
        cleaned["input"] = data["input"]
    for key in ("expected_output", "context"):
        if key in data:
            cleaned[key] = "" if data[key] is None else str(data[key])
    if "metadata" in data:
        if not isinstance(data["metadata"] or {}, dict):
            raise InvalidInput("must be a JSON object", field="metadata")
        cleaned["metadata"] = data["metadata"] or {}
    if "tags" in data:
        tags = data["tags"] or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidInput("must be a list of text", field="tags")
        cleaned["tags"] = tags
    return cleaned


@transaction.atomic
def add_item(*, dataset: Dataset, actor: Actor, **data: object) -> DatasetItem:
    cleaned = _clean_item(data)
    if not cleaned.get("input"):
        raise InvalidInput("give at least one variable", field="input")
    item = DatasetItem.objects.create(dataset=dataset, **cleaned)
    Dataset.objects.filter(pk=dataset.pk).update(updated_at=timezone.now())
    audit.record(action="create", actor=actor, obj=item, message=f"Item added to {dataset.name}")
    return item


@transaction.atomic
def update_item(*, item: DatasetItem, actor: Actor, **data: object) -> DatasetItem:
    cleaned = _clean_item(data)
    before = audit.snapshot(item, cleaned)
    for key, value in cleaned.items():
        setattr(item, key, value)
    item.updated_at = timezone.now()
    item.save()
    Dataset.objects.filter(pk=item.dataset_id).update(updated_at=item.updated_at)
    audit.record(action="update", actor=actor, obj=item, changes=audit.diff(before, audit.snapshot(item, cleaned)))
    return item


@transaction.atomic
def delete_item(*, item: DatasetItem, actor: Actor) -> None:
    audit.record(action="delete", actor=actor, obj=item)
    Dataset.objects.filter(pk=item.dataset_id).update(updated_at=timezone.now())
    item.delete()


def preview_import(*, data: bytes, filename: str = "", require_output: bool = False) -> importers.ImportResult:
    return importers.parse(data, filename, require_output=require_output)


@transaction.atomic
def import_items(*, dataset: Dataset, data: bytes, filename: str, actor: Actor) -> importers.ImportResult:
    """Import a CSV or JSONL file whole: on any bad row nothing is stored and the result lists the errors."""
    result = importers.parse(data, filename)
    if not result.ok:
        return result
    DatasetItem.objects.bulk_create(
        [
            DatasetItem(
                dataset=dataset,
                input=row.input,
                expected_output=row.expected_output,
                context=row.context,
                metadata=row.metadata,
                tags=row.tags,
            )
            for row in result.rows
        ],
        batch_size=1000,
    )
    Dataset.objects.filter(pk=dataset.pk).update(updated_at=timezone.now())
    audit.record(action="import", actor=actor, obj=dataset, message=f"{len(result.rows)} items from {filename}")
    return result
