"""The form of the anomaly monitor pages (field names are `save_anomaly_monitor`'s keyword arguments)."""

from __future__ import annotations

from typing import Any

from django import forms

from . import anomaly
from .metric_forms import ServiceForm
from .models import SEVERITY_CHOICES, AnomalyMonitor


class AnomalyMonitorForm(ServiceForm):
    name = forms.CharField(max_length=100, help_text="The alert's name (alertname).")
    selector = forms.CharField(
        widget=forms.TextInput(attrs={"class": "font-monospace", "placeholder": 'http_latency_ms{job="api"}'}),
        help_text="Each gauge series it matches is scored on its own (counters are left out: monitor a rate "
        "recorded by a watched query).",
    )
    detector = forms.ChoiceField(choices=[], initial=anomaly.DEFAULT_DETECTOR)
    sensitivity = forms.ChoiceField(
        choices=AnomalyMonitor.Sensitivity.choices, initial="medium", widget=forms.RadioSelect,
        help_text="Low alerts on fewer, clearer anomalies; high misses fewer.",
    )  # fmt: skip
    severity = forms.ChoiceField(choices=SEVERITY_CHOICES, initial="warning")
    service = forms.CharField(
        required=False, max_length=200, help_text="The incident's service; empty: the series' service label."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["detector"].choices = [(name, name) for name in anomaly.detector_names()]

    @classmethod
    def initial_for(cls, monitor: AnomalyMonitor) -> dict[str, Any]:
        return {name: getattr(monitor, name) for name in cls.base_fields}

    def service_values(self) -> dict[str, Any]:
        return dict(self.cleaned_data)
