"""Filters of the LLMOps API."""

from __future__ import annotations

import django_filters
from django.db import connection
from django.db.models import Q

from opsportal.portal.forms import StyledForm

from ..models import DatasetItem, EvalRun, LLMModel, Prompt, RunResult


class LLMModelFilter(django_filters.FilterSet):
    provider = django_filters.CharFilter(field_name="provider__name", label="Provider name")
    name = django_filters.CharFilter()

    class Meta:
        model = LLMModel
        fields = ["provider", "name"]
        form = StyledForm


class PromptFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_text", label="Name or description contains")
    label = django_filters.CharFilter(field_name="labels__name", label="Has this label", distinct=True)

    class Meta:
        model = Prompt
        fields = ["q", "label"]
        form = StyledForm

    def filter_text(self, queryset, name: str, value: str):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class DatasetItemFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(method="filter_tag", label="Has tag")

    class Meta:
        model = DatasetItem
        fields = ["tag"]
        form = StyledForm

    def filter_tag(self, queryset, name: str, value: str):
        # JSON containment is PostgreSQL-only; elsewhere match the quoted tag in the list's JSON text.
        if connection.vendor == "postgresql":
            return queryset.filter(tags__contains=[value])
        return queryset.filter(tags__icontains=f'"{value}"')


class EvalRunFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=EvalRun.Status.choices, distinct=False)
    kind = django_filters.ChoiceFilter(choices=EvalRun.Kind.choices)
    dataset = django_filters.CharFilter(field_name="dataset__name", label="Dataset name")
    prompt = django_filters.CharFilter(
        field_name="columns__prompt_version__prompt__name", distinct=True, label="Prompt name"
    )

    class Meta:
        model = EvalRun
        fields = ["status", "kind", "dataset", "prompt"]
        form = StyledForm


class RunResultFilter(django_filters.FilterSet):
    passed = django_filters.BooleanFilter()
    column = django_filters.NumberFilter(field_name="column_id", label="Column id")
    error = django_filters.BooleanFilter(method="filter_error", label="Has an error")
    item = django_filters.NumberFilter(field_name="item__position", label="Item position")

    class Meta:
        model = RunResult
        fields = ["passed", "column", "error", "item"]
        form = StyledForm

    def filter_error(self, queryset, name: str, value: bool | None):
        if value is None:
            return queryset
        return queryset.exclude(error="") if value else queryset.filter(error="")
