"""The form of the threshold rule pages (field names are `save_threshold_rule`'s keyword arguments)."""

from __future__ import annotations

from typing import Any

from django import forms

from opsportal.portal.forms import StyledForm

from .metric_forms import ServiceForm
from .models import SEVERITY_CHOICES, ThresholdRule


class ThresholdForm(ServiceForm):
    name = forms.CharField(max_length=100, help_text="The alert's name (alertname).")
    selector = forms.CharField(
        widget=forms.TextInput(attrs={"class": "font-monospace", "placeholder": 'up{job="node"}'}),
        help_text="A series selector: each series it matches is watched on its own.",
    )
    comparison = forms.ChoiceField(choices=ThresholdRule.Comparison.choices, label="Fires when the value is")
    value = forms.FloatField(label="Threshold")
    for_seconds = forms.IntegerField(
        initial=0, label="For (seconds)", help_text="How long it must stay over the line before it fires."
    )
    severity = forms.ChoiceField(choices=SEVERITY_CHOICES, initial="warning")
    service = forms.CharField(
        required=False, max_length=200, help_text="The incident's service; empty: the series' service label."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
    enabled = forms.BooleanField(required=False, initial=True)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The initial values of a new rule's form."""
        return {name: f.initial for name, f in cls.base_fields.items() if f.initial is not None}

    @classmethod
    def initial_for(cls, rule: ThresholdRule) -> dict[str, Any]:
        initial = {name: getattr(rule, name) for name in cls.base_fields}
        if float(rule.value).is_integer() and abs(rule.value) < 1e15:
            initial["value"] = int(rule.value)  # 30, not 30.0
        return initial

    def service_values(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class ThresholdFilterForm(StyledForm):
    q = forms.CharField(required=False, label="Search", help_text="Name or selector.")
    state = forms.MultipleChoiceField(
        choices=[("firing", "Firing"), ("pending", "Pending"), ("ok", "OK"), ("error", "Error"),
                 ("disabled", "Disabled")],
        required=False,
    )  # fmt: skip


class PreviewForm(forms.Form):
    """What the live preview reads as the form is typed: every field optional, a bad value is left out."""

    selector = forms.CharField(required=False)
    comparison = forms.ChoiceField(choices=ThresholdRule.Comparison.choices, required=False)
    value = forms.FloatField(required=False)
    for_seconds = forms.IntegerField(required=False, min_value=0)

    def values(self) -> dict[str, Any]:
        """The fields that are valid (invalid ones as None), with the selector stripped."""
        self.is_valid()
        data = {name: self.cleaned_data.get(name) for name in self.fields}
        data["selector"] = (data["selector"] or "").strip()
        return data
