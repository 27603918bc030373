"""The form of the capacity forecast pages (field names are `save_capacity_forecast`'s keyword arguments)."""

from __future__ import annotations

from typing import Any

from django import forms

from .metric_forms import ServiceForm
from .models import SEVERITY_CHOICES, CapacityForecast


class ForecastForm(ServiceForm):
    name = forms.CharField(max_length=100, help_text="The warning's name (alertname).")
    usage_selector = forms.CharField(
        label="Usage",
        widget=forms.TextInput(
            attrs={"class": "font-monospace", "placeholder": 'node_filesystem_used_bytes{mountpoint="/"}'}
        ),
        help_text="A selector of the usage gauge (bytes used, memory, a quota's use, a percentage); "
        "each series it matches is forecast on its own.",
    )
    limit_kind = forms.ChoiceField(
        choices=CapacityForecast.LimitKind.choices, initial="constant", label="Limit", widget=forms.RadioSelect
    )
    limit_value = forms.FloatField(
        required=False, label="Limit value", help_text="For a constant limit, in the usage's unit (e.g. bytes)."
    )
    limit_selector = forms.CharField(
        required=False,
        label="Limit series",
        widget=forms.TextInput(attrs={"class": "font-monospace", "placeholder": "node_filesystem_size_bytes"}),
        help_text="For a limit series: each usage series is compared with the one of these that has the same labels.",
    )
    match_labels = forms.CharField(
        required=False,
        label="Match on labels",
        widget=forms.TextInput(attrs={"class": "font-monospace", "placeholder": "instance, device, mountpoint"}),
        help_text="The labels that pair a usage series with its limit series; empty: every label the two share.",
    )
    horizon_days = forms.IntegerField(
        initial=14, label="Horizon (days)", help_text="Warn when it may be full within this many days."
    )
    severity = forms.ChoiceField(choices=SEVERITY_CHOICES, initial="warning")
    service = forms.CharField(
        required=False, max_length=200, help_text="The incident's service; empty: the series' service label."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
    enabled = forms.BooleanField(required=False, initial=True)

    @classmethod
    def initial_for(cls, forecast: CapacityForecast) -> dict[str, Any]:
        initial = {name: getattr(forecast, name) for name in cls.base_fields}
        initial["match_labels"] = ", ".join(forecast.match_labels)
        return initial

    def service_values(self) -> dict[str, Any]:
        values = dict(self.cleaned_data)
        values["match_labels"] = [p for p in values["match_labels"].replace(",", " ").split() if p]
        return values
