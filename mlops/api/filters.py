"""Filters shared by the MLOps API and pages."""

from __future__ import annotations

import django_filters
from django.db.models import Exists, OuterRef

from opsportal.portal.forms import StyledForm

from ..models import ApprovalRequest, ModelVersion, RegisteredModel, RegisteredModelTag, Stage


class RegisteredModelFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    tag = django_filters.CharFilter(method="filter_tag", label="Tag (key or key=value)")
    stage = django_filters.ChoiceFilter(choices=Stage.choices, method="filter_stage", label="Has a version in stage")
    owner_team = django_filters.CharFilter(label="Owner team")

    class Meta:
        model = RegisteredModel
        fields = ["q", "tag", "stage", "owner_team"]
        form = StyledForm

    def filter_tag(self, queryset, name: str, value: str):
        key, sep, tag_value = value.partition("=")
        tags = RegisteredModelTag.objects.filter(model=OuterRef("pk"), key=key.strip())
        if sep:
            tags = tags.filter(value=tag_value.strip())
        return queryset.filter(Exists(tags))

    def filter_stage(self, queryset, name: str, value: str):
        return queryset.filter(Exists(ModelVersion.objects.filter(model=OuterRef("pk"), stage=value)))


class ModelVersionFilter(django_filters.FilterSet):
    stage = django_filters.MultipleChoiceFilter(choices=Stage.choices)
    run_id = django_filters.CharFilter()

    class Meta:
        model = ModelVersion
        fields = ["stage", "run_id"]


class ApprovalRequestFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ApprovalRequest.Status.choices)
    model = django_filters.CharFilter(field_name="version__model__name")

    class Meta:
        model = ApprovalRequest
        fields = ["status", "model"]
